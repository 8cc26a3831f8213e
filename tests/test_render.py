"""Push messages: escaped Telegram HTML, lead cut at a word, never over Telegram's limit."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from telegram.constants import MessageLimit

from bot.counters import CounterReading
from bot.model import StoredStatement
from bot.render import (
    MAX_MESSAGE_LENGTH,
    render_counters_reply,
    render_statement,
    render_statement_list,
)
from bot.text import html_to_text, telegram_length

LONDON = ZoneInfo("Europe/London")
READINGS = [CounterReading(1332, "1332 days have passed since the Salisbury incident")]


def statement(**kw: object) -> StoredStatement:
    fields: dict[str, object] = {
        "id": 1,
        "feed": "statements",
        "key": "k",
        "title": "President Putin's telephone conversation with Boris Johnson",
        "link": "https://www.rusemb.org.uk/fnapr/7012",
        "published": datetime(2021, 10, 25, 18, 40, tzinfo=UTC),
        "lead": "The two leaders discussed bilateral relations.",
        "first_seen": datetime(2021, 10, 26, tzinfo=UTC),
    }
    fields.update(kw)
    return StoredStatement(**fields)  # type: ignore[arg-type]


def test_limit_matches_python_telegram_bot() -> None:
    assert MessageLimit.MAX_TEXT_LENGTH == MAX_MESSAGE_LENGTH


def test_push_reads_title_date_lead_link_counters() -> None:
    html = render_statement(statement(), READINGS, LONDON, 500)
    assert html == (
        "<b>President Putin's telephone conversation with Boris Johnson</b>\n"
        "25.10.2021\n\n"
        "The two leaders discussed bilateral relations.\n\n"
        '<a href="https://www.rusemb.org.uk/fnapr/7012">Read the full text</a>\n\n'
        "<i>1332 days have passed since the Salisbury incident</i>"
    )


def test_date_is_shown_in_the_configured_zone() -> None:
    late = statement(published=datetime(2021, 10, 25, 22, 30, tzinfo=UTC))  # 26th in Moscow
    assert "25.10.2021" in render_statement(late, [], LONDON, 500)
    assert "26.10.2021" in render_statement(late, [], ZoneInfo("Europe/Moscow"), 500)


def test_every_feed_text_is_escaped() -> None:
    evil = statement(
        title="Visa & processing (<15 days) <b>bold</b>",
        lead="urgent: >3 days & <script>alert(1)</script>",
        link='https://example.org/a?x=1&y="2"',
    )
    html = render_statement(evil, [CounterReading(1, "1 day <since> & counting")], LONDON, 500)
    assert "<b>Visa &amp; processing (&lt;15 days) &lt;b&gt;bold&lt;/b&gt;</b>" in html
    assert "urgent: &gt;3 days &amp; &lt;script&gt;" in html
    assert 'href="https://example.org/a?x=1&amp;y=&quot;2&quot;"' in html
    assert "1 day &lt;since&gt; &amp; counting" in html
    # What the reader sees is the original text.
    assert "Visa & processing (<15 days) <b>bold</b>" in html_to_text(html)


def test_lead_is_cut_at_a_word_boundary() -> None:
    lead = "word " * 200
    html = render_statement(statement(lead=lead.strip()), READINGS, LONDON, 100)
    shown = html.split("\n\n")[1]
    assert len(shown) <= 100
    assert shown.endswith("word…")


@pytest.mark.parametrize("unit", ["a ", "я ", "🇬🇧 ", "<&> "])
def test_message_never_exceeds_telegram_limit(unit: str) -> None:
    huge = statement(title=unit * 1000, lead=unit * 5000)
    html = render_statement(huge, READINGS * 3, LONDON, 3500)
    assert telegram_length(html) <= MAX_MESSAGE_LENGTH
    assert html.startswith("<b>") and "Read the full text" in html and "1332 days" in html


def test_statement_without_link_or_date() -> None:
    html = render_statement(statement(link="", published=None, lead=""), READINGS, LONDON, 500)
    assert html == (
        "<b>President Putin's telephone conversation with Boris Johnson</b>\n\n"
        "<i>1332 days have passed since the Salisbury incident</i>"
    )


def test_counters_reply_like_the_banner() -> None:
    html = render_counters_reply(
        "26 October 2021", [("Moscow", "00:54"), ("London", "22:54")], READINGS
    )
    assert html_to_text(html, keep_lines=True) == (
        "26 October 2021\nMoscow: 00:54\nLondon: 22:54\n\n"
        "1332 days have passed since the Salisbury incident"
    )


def test_statement_list_is_dated_and_linked() -> None:
    items = [statement(id=2, title="B & C"), statement(id=1, title="A", link="")]
    html = render_statement_list(items, LONDON)
    assert html.splitlines() == [
        '25.10.2021 - <a href="https://www.rusemb.org.uk/fnapr/7012">B &amp; C</a>',
        "25.10.2021 - A",
    ]


def test_statement_list_fits_the_limit() -> None:
    items = [statement(id=i, title="x" * 300) for i in range(40)]
    assert telegram_length(render_statement_list(items, LONDON)) <= MAX_MESSAGE_LENGTH
