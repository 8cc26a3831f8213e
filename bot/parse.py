"""Turn a feed document (bytes) into statements with feedparser. No I/O."""

from __future__ import annotations

import calendar
import hashlib
import io
import logging
import re
import xml.sax
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlparse

import feedparser

from bot.model import Statement
from bot.text import fold_whitespace, html_to_text

logger = logging.getLogger(__name__)

_HTML_TYPES = {"text/html", "application/xhtml+xml"}


class FeedFormatError(Exception):
    """The document is not a feed we can read (an HTML page, garbage, an empty body)."""


def parse_feed(body: bytes, *, url: str, content_type: str | None = None) -> list[Statement]:
    """Statements of the document in feed order (newest first, as feeds list them).

    `url` is the document's address: relative links are resolved against it.
    """
    if not body.strip():
        raise FeedFormatError("the document is empty")
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    # A stream, never a str: feedparser would treat a str that looks like a URL as one to fetch.
    parsed = feedparser.parse(io.BytesIO(body), response_headers=headers)
    problem = parsed.get("bozo_exception")
    if not parsed.entries and (
        _looks_like_html(body) or (not parsed.get("version") and content_type_is_html(content_type))
    ):
        raise FeedFormatError(
            "the server sent an HTML page, not a feed (an error or bot-protection page?)"
        )
    if not parsed.get("version") and not parsed.entries:
        raise FeedFormatError(f"not a feed: {problem or 'no RSS or Atom elements found'}")
    if isinstance(problem, xml.sax.SAXParseException):
        # feedparser salvages broken XML; a document cut off mid-way would then push half items
        # under made-up keys and overwrite good stored text, so only a complete one is used.
        if not parsed.entries:
            raise FeedFormatError(f"not well-formed XML, no entries could be read: {problem}")
        if not _ends_with_root_close(body):
            raise FeedFormatError(f"the document is cut off: {problem}")
    if parsed.get("bozo"):
        logger.info("feed %s is not well-formed (%s); using what could be read", url, problem)
    statements = []
    for entry in parsed.entries:
        try:
            statements.append(entry_to_statement(entry, url))
        except Exception:  # one odd entry must not cost the rest of the feed
            logger.exception("feed %s: skipped an entry that could not be read", url)
    return statements


def entry_to_statement(entry: Mapping[str, Any], feed_url: str) -> Statement:
    title = _text(entry.get("title", ""), entry.get("title_detail"))
    lead = _lead(entry)
    link = _absolute_http_link(entry.get("link"), feed_url)
    published = _published(entry)
    if not title:
        title = lead[:100] or "(untitled)"
    key = _key(entry, link, title, published)
    return Statement(key=key, title=title, link=link, published=published, lead=lead)


def _key(entry: Mapping[str, Any], link: str, title: str, published: datetime | None) -> str:
    """guid/id, else link, else a hash of title and date (stable while those stay the same)."""
    guid = str(entry.get("id") or "").strip()
    if guid:
        return guid
    if link:
        return link
    basis = f"{title}\n{published.isoformat() if published else ''}"
    return "sha256:" + hashlib.sha256(basis.encode("utf-8")).hexdigest()


def _text(value: Any, detail: Mapping[str, Any] | None) -> str:
    text = str(value or "")
    if detail and detail.get("type") in _HTML_TYPES:
        return html_to_text(text)
    return fold_whitespace(text)


def _lead(entry: Mapping[str, Any]) -> str:
    # feedparser answers "summary" with the content when there is none: ask for the detail.
    detail = entry.get("summary_detail")
    if detail and detail.get("value"):
        return _text(detail["value"], detail)
    for content in entry.get("content") or []:
        if content.get("value"):
            return _text(content["value"], content)
    return ""


def _absolute_http_link(link: Any, feed_url: str) -> str:
    """An absolute http(s) link, or "" (javascript: and other schemes never reach a message)."""
    if not isinstance(link, str) or not link.strip():
        return ""
    absolute = urljoin(feed_url, link.strip())
    return absolute if urlparse(absolute).scheme in ("http", "https") else ""


def _published(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            try:
                # feedparser's struct_time is in UTC already.
                return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def content_type_is_html(content_type: str | None) -> bool:
    return bool(content_type) and content_type.split(";")[0].strip().lower() == "text/html"


def _looks_like_html(body: bytes) -> bool:
    head = body[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


_ROOT_CLOSE = re.compile(rb"</\s*(?:[\w.-]+:)?(?:rss|feed|rdf)\s*>\s*(?:<!--.*?-->\s*)*\Z",
                         re.IGNORECASE | re.DOTALL)  # fmt: skip


def _ends_with_root_close(body: bytes) -> bool:
    """Does the document end with its root element's closing tag (</rss>, </feed>, </rdf:RDF>)?"""
    tail = body[-4096:].replace(b"\x00", b"")  # UTF-16 documents: drop the zero bytes
    return bool(_ROOT_CLOSE.search(tail))
