"""Localisation: complete catalogs, Russian plural agreement, dates, zone names, languages."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from bot import i18n
from bot.command_table import COMMANDS


def test_every_language_has_every_message_with_the_same_placeholders() -> None:
    english = i18n.CATALOGS["en"]
    for language, catalog in i18n.CATALOGS.items():
        assert catalog.keys() == english.keys(), language
        for key, text in catalog.items():
            assert i18n.placeholders(text) == i18n.placeholders(english[key]), (language, key)


def test_every_command_has_help_in_every_language() -> None:
    for command in COMMANDS:
        assert set(command.help) == set(i18n.LANGUAGES), command.name
        assert all(text.strip() for text in command.help.values()), command.name


def test_russian_catalog_is_russian() -> None:
    assert i18n.t("ru", "read_full_text") == "Читать полностью"
    assert i18n.t("en", "read_full_text") == "Read the full text"
    # A language the bot does not speak falls back to English, never a KeyError.
    assert i18n.t("de", "read_full_text") == "Read the full text"


RUSSIAN_DAYS_WORD = {"one": "день", "few": "дня", "many": "дней"}


def russian_days_word_by_hand(n: int) -> str:
    """The rule as a Russian grammar states it, to check CLDR's against."""
    if n % 10 == 1 and n % 100 != 11:
        return "день"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return "дня"
    return "дней"


@pytest.mark.parametrize("n", [*range(201), 1324, 1325, 1332, 1001, 1011, 1111, 1112, 1122])
def test_russian_days_word_agrees_with_the_number(n: int) -> None:
    word = RUSSIAN_DAYS_WORD[i18n.plural_category("ru", n)]
    assert word == russian_days_word_by_hand(n)


@pytest.mark.parametrize(
    ("n", "word"),
    [(1, "день"), (21, "день"), (101, "день"), (2, "дня"), (4, "дня"), (22, "дня"),
     (24, "дня"), (1332, "дня"), (1324, "дня"), (5, "дней"), (11, "дней"), (20, "дней"),
     (25, "дней"), (111, "дней"), (1325, "дней"), (0, "дней")],
)  # fmt: skip
def test_the_issues_examples(n: int, word: str) -> None:
    assert RUSSIAN_DAYS_WORD[i18n.plural_category("ru", n)] == word


def test_english_plural() -> None:
    assert [i18n.plural_category("en", n) for n in (0, 1, 2, 21)] == [
        "other",
        "one",
        "other",
        "other",
    ]
    assert i18n.whole_number_categories("en") == {"one", "other"}
    assert i18n.whole_number_categories("ru") == {"one", "few", "many"}


def test_long_date_uses_the_genitive_month_in_russian() -> None:
    assert i18n.long_date(date(2021, 10, 26), "ru") == "26 октября 2021"
    assert i18n.long_date(date(2018, 3, 4), "ru") == "4 марта 2018"
    assert i18n.long_date(date(2021, 10, 26), "en") == "26 October 2021"


def test_zone_labels_per_language_fall_back_to_the_last_part() -> None:
    assert i18n.zone_label(ZoneInfo("Europe/Moscow"), "ru") == "Москва"
    assert i18n.zone_label(ZoneInfo("Europe/London"), "ru") == "Лондон"
    assert i18n.zone_label(ZoneInfo("Europe/Moscow"), "en") == "Moscow"
    # CLDR files Kyiv's city under the zone's old name: found through the alias.
    assert i18n.zone_label(ZoneInfo("Europe/Kyiv"), "ru") == "Киев"
    buenos_aires = ZoneInfo("America/Argentina/Buenos_Aires")
    assert i18n.zone_label(buenos_aires, "en") == "Buenos Aires"
    assert i18n.zone_label(ZoneInfo("Etc/UTC"), "ru") == "UTC"


@pytest.mark.parametrize(
    ("code", "language"),
    [("ru", "ru"), ("ru-RU", "ru"), ("RU", "ru"), ("en", "en"), ("en-GB", "en"), ("de", "en"),
     ("uk", "en"), (None, "en"), ("", "en")],
)  # fmt: skip
def test_a_private_chat_starts_in_its_users_telegram_language(code, language) -> None:
    assert i18n.language_of_user(code) == language


def test_language_names_are_their_own() -> None:
    assert [i18n.language_name(lang) for lang in i18n.LANGUAGES] == ["English", "Русский"]
