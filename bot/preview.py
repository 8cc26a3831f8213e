"""`statement-bot preview`: read one source once and show what the bot would make of it.

This is how an admin writes a page's selectors: nothing is stored, nothing is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx

from bot.config import FeedConfig
from bot.model import ParsedDocument, Statement
from bot.sources import feed_fetcher, read_source, source_for
from bot.text import shorten

ARTICLES_SHOWN = 3  # article pages read by a preview: enough to check the selector, and polite
LEAD_SHOWN = 300


@dataclass(frozen=True)
class Preview:
    feed: FeedConfig
    final_url: str  # where the statements came from (after redirects and discovery)
    discovered: str | None
    parsed: ParsedDocument
    articles: dict[str, str]  # statement key -> the lead its own page gave ("" = nothing)


async def take_preview(
    client: httpx.AsyncClient, feed: FeedConfig, *, timezone: ZoneInfo, max_bytes: int,
    timeout: float,
) -> Preview:  # fmt: skip
    """Fetch and read `feed` once; raise FetchError / FeedFormatError as a poll would fail."""
    source = source_for(feed, timezone, timeout)
    fetch = feed_fetcher(client, feed, max_bytes=max_bytes, timeout=timeout)
    reading = await read_source(source, fetch, feed.url)
    assert reading.parsed is not None  # no validators were sent
    articles: dict[str, str] = {}
    if feed.page and feed.page.article:
        newest = reading.parsed.statements[:ARTICLES_SHOWN]
        completed = await source.complete(newest, fetch)
        articles = {
            after.key: after.lead if after.lead != before.lead else ""
            for before, after in zip(newest, completed, strict=True)
        }
    return Preview(feed, reading.result.url, reading.discovered, reading.parsed, articles)


def render_preview(preview: Preview, timezone: ZoneInfo) -> str:
    """Plain text for the terminal: each statement, then what is missing."""
    parsed = preview.parsed
    lines = [f"{preview.feed.name}: {preview.feed.url}"]
    if preview.discovered:
        lines.append(f"  the page names a feed; read from {preview.discovered}")
    elif preview.final_url != preview.feed.url and not preview.final_url.startswith("file:"):
        lines.append(f"  read from {preview.final_url}")  # after a redirect
    lines.append(f"  {len(parsed.statements)} statements (newest first)")
    problems: dict[str, list[str]] = {}
    for key, problem in parsed.problems:
        problems.setdefault(key, []).append(problem)
    for number, statement in enumerate(parsed.statements, 1):
        lines.append("")
        lines += _statement_lines(number, statement, timezone)
        if statement.key in preview.articles:
            text = preview.articles[statement.key]
            lines.append(
                f"   article: {shorten(text, LEAD_SHOWN)}"
                if text
                else "   article: nothing read (the list's lead is used)"
            )
        for problem in problems.get(statement.key, []):
            lines.append(f"   missing: {problem}")
    if preview.articles and len(parsed.statements) > len(preview.articles):
        lines.append("")
        lines.append(f"(articles read for the newest {len(preview.articles)} only)")
    for line in parsed.skipped:
        lines.append(f"skipped: {line}")
    if parsed.fallback_encoding:
        lines.append("note: the document's encoding was guessed; stored text would not be edited")
    undated = sum(1 for s in parsed.statements if s.published is None)
    if undated:
        lines.append(f"note: {undated} of {len(parsed.statements)} statements have no date")
    return "\n".join(lines)


def _statement_lines(number: int, statement: Statement, timezone: ZoneInfo) -> list[str]:
    return [
        f"{number:>2}. {_date(statement.published, timezone)}  {statement.title}",
        f"   link: {statement.link or '(none)'}",
        f"   lead: {shorten(statement.lead, LEAD_SHOWN) if statement.lead else '(none)'}",
    ]


def _date(moment: datetime | None, timezone: ZoneInfo) -> str:
    if moment is None:
        return "(no date)"
    local = moment.astimezone(timezone)
    return (
        f"{local:%d.%m.%Y}" if (local.hour, local.minute) == (0, 0) else f"{local:%d.%m.%Y %H:%M}"
    )
