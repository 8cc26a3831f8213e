"""Localisation: one message catalog per language, plural rules and names from CLDR (Babel).

Every text the bot says comes from here (bot/i18n/en.py, bot/i18n/ru.py); tests keep the
catalogs complete and their placeholders equal. Feed texts and config sentences are not
translated: the config gives those per language itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import cache
from string import Formatter
from zoneinfo import ZoneInfo

from babel import Locale
from babel.core import get_global
from babel.dates import format_date

from bot.i18n import en, ru

DEFAULT_LANGUAGE = "en"
CATALOGS: dict[str, Mapping[str, str]] = {"en": en.MESSAGES, "ru": ru.MESSAGES}
LANGUAGES: tuple[str, ...] = tuple(CATALOGS)  # the order settings offer them in
PLURAL_CATEGORIES = ("zero", "one", "two", "few", "many", "other")  # CLDR's, in its order


def supported(language: str | None) -> str:
    """`language` if the bot speaks it, else the default: never a KeyError later."""
    return language if language in CATALOGS else DEFAULT_LANGUAGE


def t(language: str, key: str, /, **values: object) -> str:
    """The message `key` in `language` (English for a language the bot does not speak), with
    `values` filled in. A missing key is a bug the catalog test catches, so it raises."""
    template = CATALOGS[supported(language)][key]
    return template.format(**values) if values else template


def language_of_user(language_code: str | None) -> str:
    """The language of a new private chat from Telegram's `User.language_code` (an IETF tag
    such as "ru", "ru-RU", "en-GB"): its primary part if the bot speaks it, else English."""
    primary = (language_code or "").split("-")[0].split("_")[0].lower()
    return primary if primary in CATALOGS else DEFAULT_LANGUAGE


def language_name(language: str) -> str:
    """A language's own name ("English", "Русский"): what a settings menu shows."""
    return CATALOGS[supported(language)]["language_name"]


def placeholders(template: str) -> set[str]:
    """The {names} a template fills in."""
    return {name for _, name, _, _ in Formatter().parse(template) if name is not None}


@cache
def _locale(language: str) -> Locale:
    return Locale.parse(language)


def plural_category(language: str, count: int) -> str:
    """CLDR's plural category of `count`: Russian 1, 21, 101 -> "one"; 2-4, 22-24 -> "few";
    0, 5-20, 25, 111 -> "many"; English 1 -> "one", else "other"."""
    return str(_locale(language).plural_form(abs(count)))


@cache
def whole_number_categories(language: str) -> frozenset[str]:
    """The categories whole numbers fall into (Russian: one, few, many; English: one, other):
    a sentence given per category must have each of these, or "other"."""
    return frozenset(plural_category(language, n) for n in range(1000))


def long_date(day: date, language: str) -> str:
    """'26 October 2021', '26 октября 2021' (the month in the genitive, as Russian writes it)."""
    return format_date(day, "d MMMM y", locale=_locale(supported(language)))


def zone_label(zone: ZoneInfo, language: str) -> str:
    """The zone's city in `language` from CLDR ('Europe/Moscow' -> 'Москва' in Russian), else
    the last part of its name ('America/Argentina/Buenos_Aires' -> 'Buenos Aires')."""
    names = _locale(supported(language)).time_zones
    for key in _zone_keys(str(zone.key)):
        city = names.get(key, {}).get("city")
        if city:
            return str(city)
    return str(zone.key).rsplit("/", 1)[-1].replace("_", " ")


@cache
def _zone_keys(key: str) -> tuple[str, ...]:
    # CLDR files a city under one of a zone's names (Europe/Kiev, not Europe/Kyiv): try them all.
    aliases: Mapping[str, str] = get_global("zone_aliases")
    canonical = aliases.get(key, key)
    others = sorted(alias for alias, target in aliases.items() if target == canonical)
    return tuple(dict.fromkeys([key, canonical, *others]))
