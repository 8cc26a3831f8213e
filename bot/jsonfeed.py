"""JSON Feed 1.0 and 1.1 (https://www.jsonfeed.org/version/1.1/), read like RSS and Atom. No I/O.

Same rules as bot.parse: key = id, else the link, else a hash of title and date; links are
absolute http(s) (relative ones resolve against the feed's own address, not home_page_url or
feed_url, which may be stale copies); the lead is plain text.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.model import ParsedDocument, Statement
from bot.parse import (
    MAX_FULL_HTML,
    REPLACED_BYTES,
    FeedFormatError,
    absolute_http_link,
    document_of,
    make_key,
)
from bot.text import feed_text, fold_whitespace, shorten


class _BadItem(Exception):
    """One item that cannot be read: it is skipped, the others still count."""


def parse_json_feed(body: bytes, *, url: str) -> ParsedDocument:
    """Statements of a JSON Feed in document order; FeedFormatError if it is not one."""
    text, replaced = _decode(body)
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise FeedFormatError(f"not valid JSON: {_one_line(exc)}") from exc
    if not isinstance(document, dict):
        raise FeedFormatError("not a JSON Feed: the document is not a JSON object")
    version = document.get("version")
    if not isinstance(version, str) or "jsonfeed.org/version/" not in version:
        raise FeedFormatError("not a JSON Feed: no jsonfeed.org version")
    items = document.get("items")
    if not isinstance(items, list):
        raise FeedFormatError("not a JSON Feed: items is missing or not a list")
    read: list[tuple[Statement, list[str]]] = []
    skipped: list[str] = []
    for number, item in enumerate(items, start=1):
        try:
            statement, item_problems = _item_to_statement(item, url)
        except _BadItem as exc:
            skipped.append(f"item {number}{_label(item)}: {exc}")  # the caller logs it
            continue
        if replaced and "\ufffd" in statement.title + statement.lead:
            item_problems.append(REPLACED_BYTES)
        read.append((statement, item_problems))
    return document_of(read, skipped)


def _decode(body: bytes) -> tuple[str, bool]:
    """JSON text is UTF-8 (or UTF-16/32, RFC 8259); bad bytes alone become U+FFFD."""
    encoding = json.detect_encoding(body)
    try:
        return body.decode(encoding), False
    except UnicodeDecodeError:
        return body.decode(encoding, "replace"), True


def _item_to_statement(item: Any, feed_url: str) -> tuple[Statement, list[str]]:
    if not isinstance(item, dict):
        raise _BadItem(f"an item is a JSON object, not {_json_type(item)}")
    raw_id = item.get("id")
    # The spec: an id given as a number must be read as a string.
    if isinstance(raw_id, int | float) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    guid = _string(item, "id", raw_id)
    title = _plain(_string(item, "title"))
    lead = _lead(item)
    # url is the item's own page; external_url (what a linkblog post points to) only without it.
    link = absolute_http_link(_string(item, "url"), feed_url) or absolute_http_link(
        _string(item, "external_url"), feed_url
    )
    published, problems = _published(item)
    if not title:
        title = lead[:100] or "(untitled)"
    key = make_key(guid, link, title, published)
    # The full text for the Telegraph page: content_html, as it is (made safe there).
    full_html = _string(item, "content_html")[:MAX_FULL_HTML]
    statement = Statement(
        key=key, title=title, link=link, published=published, lead=lead,
        full_html=full_html if full_html.strip() else "",
    )  # fmt: skip
    return statement, problems


def _lead(item: Mapping[str, Any]) -> str:
    # What a reader expects under the title: the summary, else the text, else the HTML as text.
    for field in ("summary", "content_text"):
        text = _plain(_string(item, field))
        if text:
            return text
    return feed_text(_string(item, "content_html"), is_html=True)


_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def _plain(value: str) -> str:
    """A plain-text field. Publishers often HTML-escape titles anyway ("Q&amp;A", "&#8217;"):
    a text with entity references reads as a reader expects, with the characters they name."""
    return feed_text(html.unescape(value) if _ENTITY.search(value) else value, is_html=False)


def _published(item: Mapping[str, Any]) -> tuple[datetime | None, list[str]]:
    problems = []
    for field in ("date_published", "date_modified"):
        raw = _string(item, field).strip()
        if not raw:
            continue
        try:
            # RFC 3339; fromisoformat reads it (with "Z") since Python 3.11.
            moment = datetime.fromisoformat(raw)
        except ValueError:
            problems.append(f"{field} {shorten(raw, 60)!r} could not be read")
            continue
        # RFC 3339 requires an offset; a date without one is taken as UTC, as feedparser does.
        aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
        return aware.astimezone(UTC), []
    return None, problems


def _string(item: Mapping[str, Any], field: str, value: Any = None) -> str:
    """The field's text, "" when absent; a wrong type or an unreadable character is a bad item."""
    value = item.get(field) if value is None else value
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _BadItem(f"{field} is {_json_type(value)}, not a string")
    if _has_surrogate(value):
        # A lone "\ud800" escape: no text can hold it (SQLite and Telegram refuse it).
        raise _BadItem(f"unreadable character in {field} (a lone surrogate escape)")
    return value


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _label(item: Any) -> str:
    """(' title…') for a skipped item's line, when it has a readable title."""
    title = item.get("title") if isinstance(item, dict) else None
    if not isinstance(title, str) or _has_surrogate(title) or not title.strip():
        return ""
    return f" ({shorten(fold_whitespace(title), 40)!r})"


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", bool: "true/false", int: "a number",
             float: "a number", str: "a string", type(None): "null"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
