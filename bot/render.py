"""Telegram-HTML messages: a statement push, the counters banner, the compact latest list.

Every text that came from a feed goes through html.escape; only our own tags remain.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from bot import i18n
from bot.counters import CounterReading
from bot.model import StoredStatement
from bot.text import html_to_text, shorten, telegram_length

# telegram.constants.MessageLimit.MAX_TEXT_LENGTH; a test keeps the two equal, so that this pure
# module need not import Telegram.
MAX_MESSAGE_LENGTH = 4096
MAX_TITLE_LENGTH = 400


def short_date(moment: datetime, tz: ZoneInfo) -> str:
    """'25.10.2021', the model site's date style, in the configured zone."""
    return moment.astimezone(tz).strftime("%d.%m.%Y")


def render_counters(readings: Sequence[CounterReading]) -> str:
    return "\n".join(f"<i>{html.escape(r.text, quote=False)}</i>" for r in readings)


def render_statement(
    statement: StoredStatement,
    readings: Sequence[CounterReading],
    tz: ZoneInfo,
    lead_length: int,
    max_length: int = MAX_MESSAGE_LENGTH,
    language: str = i18n.DEFAULT_LANGUAGE,
) -> str:
    """The push for one statement: title, date, lead, link, then the counters as of now.

    `max_length` is less than Telegram's limit when the push is part of a longer reply;
    `language` is the reader's, for our own words (the counters come already in it).
    """
    title = html.escape(shorten(statement.title, MAX_TITLE_LENGTH), quote=False)
    head = [f"<b>{title}</b>"]
    if statement.published is not None:
        head.append(short_date(statement.published, tz))
    tail: list[str] = []
    links: list[str] = []
    if statement.telegraph_url:  # its Telegraph page: Telegram opens it as an Instant View
        page = html.escape(statement.telegraph_url, quote=True)
        links.append(f'<a href="{page}">{i18n.t(language, "read_in_full")}</a>')
    if statement.link:
        link = html.escape(statement.link, quote=True)
        links.append(f'<a href="{link}">{i18n.t(language, "read_full_text")}</a>')
    if links:
        tail.append(" · ".join(links))
    counters = render_counters(readings)
    if counters:
        tail.append(counters)

    def assemble(lead: str) -> str:
        blocks = ["\n".join(head)]
        if lead:
            blocks.append(html.escape(lead, quote=False))
        blocks.extend(tail)
        return "\n\n".join(blocks)

    lead = shorten(statement.lead, lead_length)
    message = assemble(lead)
    # Only the lead gives way: it is the one part of unbounded length that a reader can lose.
    while telegram_length(message) > max_length and lead:
        excess = telegram_length(message) - max_length
        lead = shorten(lead, max(0, len(lead) - excess - 8)) if len(lead) > excess + 8 else ""
        message = assemble(lead)
    if telegram_length(message) > max_length:
        # Absurdly long counters or link: cut the visible text, dropping markup, as a last resort.
        message = html.escape(
            shorten(html_to_text(message, keep_lines=True), max_length // 2), quote=False
        )
    return message


def render_counters_reply(
    date_text: str, clocks: Sequence[tuple[str, str]], readings: Sequence[CounterReading]
) -> str:
    """The banner: '26 October 2021', the clocks ('Moscow: 00:54'), then every counter."""
    lines = [f"<b>{html.escape(date_text, quote=False)}</b>"]
    lines.extend(f"{html.escape(label, quote=False)}: {time}" for label, time in clocks)
    blocks = ["\n".join(lines)]
    if readings:
        blocks.append("\n\n".join(html.escape(r.text, quote=False) for r in readings))
    return "\n\n".join(blocks)


def render_statement_list(statements: Sequence[StoredStatement], tz: ZoneInfo) -> str:
    """'25.10.2021 - Title' per line, newest first, each title linking to its statement."""
    lines: list[str] = []
    for st in statements:
        title = html.escape(shorten(st.title, 200), quote=False)
        if st.link:
            title = f'<a href="{html.escape(st.link, quote=True)}">{title}</a>'
        lines.append(f"{short_date(st.sort_at, tz)} - {title}")
    message = "\n".join(lines)
    while telegram_length(message) > MAX_MESSAGE_LENGTH and len(lines) > 1:
        lines.pop()
        message = "\n".join(lines)
    return message
