"""/search: every stored statement's title and lead, prefixes, both languages, newest first,
and no input that FTS5 could read as syntax."""

# ruff: noqa: RUF001 - Russian titles: their Cyrillic letters are meant

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bot import commands
from bot.config import Config
from bot.model import Statement
from bot.poller import record_poll
from bot.store import Store
from bot.text import html_to_text

TEXTS = [
    ("Salisbury incident: questions to the Foreign Office", "No credible information."),
    ("Заявление о годовщине инцидента в Солсбери", "Никакой достоверной информации."),
    ("Consular Section: new opening hours", "From 1 November (Monday to Friday)."),
    ("Пётр Великий и Лондон", "Ещё одна выставка."),
    ("Comment on NOT and OR: a note", "AND NEAR the end"),
]


@pytest.fixture
def stored(store: Store, config: Config, now: datetime) -> Store:
    items = [
        Statement(f"k{i}", title, f"https://e.org/{i}", now - timedelta(days=len(TEXTS) - i), lead)
        for i, (title, lead) in enumerate(TEXTS)
    ]
    record_poll(store, config.feeds[0], list(reversed(items)), now)
    return store


def found(store: Store, config: Config, text: str) -> list[str]:
    reply = commands.search_reply(store, config, text.split())
    return html_to_text(reply, keep_lines=True).splitlines()


def titles(store: Store, text: str) -> list[str]:
    return [s.title for s in store.search(commands.search_words(text), 10)]


def test_a_prefix_finds_the_statement_as_a_dated_list(stored: Store, config: Config) -> None:
    assert found(stored, config, "Salisb") == [
        "21.10.2021 - Salisbury incident: questions to the Foreign Office"
    ]
    assert "https://e.org/0" in commands.search_reply(stored, config, ["salisbury"])


def test_every_word_must_match_title_or_lead(stored: Store) -> None:
    assert titles(stored, "consular november") == ["Consular Section: new opening hours"]
    assert titles(stored, "consular salisbury") == []


def test_cyrillic_folds_case_and_yo(stored: Store) -> None:
    assert titles(stored, "солсбери") == ["Заявление о годовщине инцидента в Солсбери"]
    assert titles(stored, "СОЛСБ") == ["Заявление о годовщине инцидента в Солсбери"]
    # Russian often writes ye for yo: either finds either.
    assert titles(stored, "петр") == ["Пётр Великий и Лондон"]
    assert titles(stored, "ещё") == ["Пётр Великий и Лондон"]
    assert titles(stored, "салисбери") == []  # another spelling is another word


@pytest.mark.parametrize(
    "text",
    ['"', '"salisbury', "NOT", "AND", "OR", "NEAR", "*", "-", "^", ":", "(", ")", "a:b", "NEAR(a b)",
     "salisbury OR consular", "title:salisbury", "-salisbury", "^salisbury", '""""', "\\", "'", "'; DROP TABLE statements; --"],
)  # fmt: skip
def test_query_syntax_is_searched_as_words_never_an_error(
    stored: Store, config: Config, text: str
) -> None:
    reply = commands.search_reply(stored, config, text.split())
    assert reply  # a list, "no statement matches" or the usage line: never an exception


def test_operators_are_plain_words(stored: Store) -> None:
    assert titles(stored, "NOT OR") == ["Comment on NOT and OR: a note"]
    assert titles(stored, "near end") == ["Comment on NOT and OR: a note"]
    assert titles(stored, "salisbury OR consular") == []  # OR is a word neither has


def test_no_match_is_one_line_and_no_words_is_the_usage(stored: Store, config: Config) -> None:
    assert found(stored, config, "<b>zebra</b>") == ["No statement matches “<b>zebra</b>”."]
    assert found(stored, config, "* ( )") == [
        "Usage: /search WORDS, for example /search Salisbury."
    ]
    reply = commands.search_reply(stored, config, ["зебра"], language="ru")
    assert reply == "Ни одно заявление не подходит под «зебра»."


def test_at_most_ten_newest_first(store: Store, config: Config, now: datetime) -> None:
    items = [
        Statement(f"k{i}", f"Briefing number {i}", "", now - timedelta(days=30 - i), "")
        for i in range(30)
    ]
    record_poll(store, config.feeds[0], list(reversed(items)), now)
    assert titles(store, "briefing") == [f"Briefing number {i}" for i in range(29, 19, -1)]


def test_an_edit_is_found_by_its_new_words_only(
    store: Store, config: Config, now: datetime
) -> None:
    record_poll(store, config.feeds[0], [Statement("k", "Old title", "", now, "")], now)
    record_poll(store, config.feeds[0], [Statement("k", "New heading", "", now, "")], now)
    assert titles(store, "heading") == ["New heading"]
    assert titles(store, "old") == []


def test_search_words_split_as_the_index_does() -> None:
    assert commands.search_words('"Salisbury" (NOT) foo-bar a_b Пётр*') == [
        "Salisbury", "NOT", "foo", "bar", "a", "b", "Пётр",
    ]  # fmt: skip
    assert len(commands.search_words("w " * 50)) == commands.MAX_SEARCH_WORDS


@pytest.mark.parametrize("other_news", [0, 1100])
def test_newest_first_even_when_a_feed_added_later_brings_old_statements(
    store: Store, config: Config, now: datetime, other_news: int
) -> None:
    """Ids follow when statements were first seen, not their dates: a feed added with its
    history has the highest ids and the oldest dates. The newest matches still come first,
    however many statements lie between (1100: the path that reads every match)."""
    from bot.config import FeedConfig

    recent = [
        Statement(f"r{i}", f"Briefing {i}", "", now - timedelta(hours=i), "") for i in range(12)
    ]
    recent += [
        Statement(f"o{i}", f"Other news {i}", "", now - timedelta(minutes=i), "")
        for i in range(other_news)
    ]
    record_poll(store, config.feeds[0], recent, now)
    archive = [
        Statement(f"a{i}", f"Briefing archive {i}", "", now - timedelta(days=400 + i), "")
        for i in range(80)
    ]
    record_poll(store, FeedConfig(name="archive", url="https://e.org/a"), archive, now)
    assert titles(store, "briefing") == [f"Briefing {i}" for i in range(10)]
