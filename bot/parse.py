"""Turn a feed document (bytes) into statements: RSS and Atom with feedparser, JSON Feed with
bot.jsonfeed. No I/O."""

from __future__ import annotations

import bisect
import calendar
import codecs
import hashlib
import html
import io
import logging
import re
import xml.sax
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlparse

import charset_normalizer
import feedparser
from feedparser.exceptions import CharacterEncodingOverride, CharacterEncodingUnknown

from bot.model import ParsedDocument, Statement
from bot.text import feed_text, fold_whitespace, shorten

logger = logging.getLogger(__name__)

_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_JSON_TYPES = {"application/feed+json", "application/json"}


class FeedFormatError(Exception):
    """The document is not a feed we can read (an HTML page, garbage, an empty body)."""


def parse_feed(body: bytes, *, url: str, content_type: str | None = None) -> ParsedDocument:
    """Statements of the document in feed order (newest first, as feeds list them).

    `url` is the document's address: relative links are resolved against it. Raises
    FeedFormatError for a document that is not a feed (the error is one line for /status).
    """
    if not body.strip():
        raise FeedFormatError("the document is empty")
    if _is_json(body, content_type):
        # Imported here: bot.jsonfeed uses this module's key and link rules.
        from bot.jsonfeed import parse_json_feed

        return parse_json_feed(body, url=url)
    decoded = decode_document(body, content_type)
    # Whitespace before the XML declaration would make feedparser's new one fail to parse.
    text = decoded.text.lstrip() if decoded.text.lstrip().startswith("<?xml") else decoded.text
    # Skipped items are not logged here: the caller logs each line once, with the feed's name.
    text, skipped, kept_items = _drop_unreadable_items(text)
    # The text is handed over as UTF-8 and said to be so: feedparser then never falls back to
    # windows-1252 for the whole document because of one bad byte (we decoded it already).
    headers = {"content-location": url, "content-type": "application/xml; charset=utf-8"}
    try:
        # A stream, never a str: feedparser would treat a str that looks like a URL as one to fetch.
        parsed = feedparser.parse(io.BytesIO(text.encode("utf-8")), response_headers=headers)
    except Exception as exc:  # a document that trips feedparser is a bad feed, not a bot crash
        logger.warning("feed %s: feedparser failed", url, exc_info=True)
        raise FeedFormatError(f"unreadable document ({_one_line(exc)})") from exc
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
    # Our text was valid UTF-8, so this only fires if feedparser changes; it still means mojibake.
    fallback = decoded.guessed or isinstance(
        problem, CharacterEncodingOverride | CharacterEncodingUnknown
    )
    if fallback:
        logger.info("feed %s: encoding %s is a guess; stored text is kept", url, decoded.encoding)
    # Item numbers in messages count every item of the document, the dropped ones too.
    numbers = kept_items if len(kept_items) == len(parsed.entries) else None
    read: list[tuple[Statement, list[str]]] = []
    for index, entry in enumerate(parsed.entries):
        number = numbers[index] if numbers else index + 1
        try:
            statement = entry_to_statement(entry, url)
        except Exception as exc:  # one odd entry must not cost the rest of the feed
            logger.exception("feed %s: skipped an entry that could not be read", url)
            title = shorten(fold_whitespace(str(entry.get("title") or "")), 40)
            skipped.append(f"item {number} ({title!r}): {_one_line(exc)}")
            continue
        problems = _entry_problems(entry, statement)
        if decoded.replaced and "\ufffd" in statement.title + statement.lead:
            problems.append(REPLACED_BYTES)
        read.append((statement, problems))
    return document_of(read, skipped, fallback_encoding=fallback)


REPLACED_BYTES = "bytes that are not UTF-8 were replaced by \ufffd"


def document_of(
    read: list[tuple[Statement, list[str]]],
    skipped: list[str],
    *,
    fallback_encoding: bool = False,
) -> ParsedDocument:
    """The document of the statements read (each with its problems), under keys of their own."""
    kept = _unique_keys([statement for statement, _ in read])
    return ParsedDocument(
        statements=[statement for _, statement in kept],
        skipped=tuple(skipped),
        problems=tuple((s.key, problem) for index, s in kept for problem in read[index][1]),
        fallback_encoding=fallback_encoding,
    )


def looks_like_html(body: bytes, content_type: str | None) -> bool:
    """Is the document an HTML page rather than a feed (worth looking for a feed link in)?

    The body decides first; a feed that a misconfigured host labels text/html is still a feed.
    """
    if _looks_like_html(body):
        return True
    mime = _mime(content_type)
    if mime not in _HTML_TYPES:
        return False
    head = _without_bom(body[:2048]).lstrip()
    return not (head.startswith(b"{") or _FEED_ROOT.search(head))


def entry_to_statement(entry: Mapping[str, Any], feed_url: str) -> Statement:
    title = _text(entry.get("title", ""), entry.get("title_detail"))
    lead = _lead(entry)
    link = absolute_http_link(entry.get("link"), feed_url)
    published = _published(entry)
    if not title:
        title = lead[:100] or "(untitled)"
    key = make_key(str(entry.get("id") or ""), link, title, published)
    return Statement(
        key=key, title=title, link=link, published=published, lead=lead,
        full_html=_full_html(entry),
    )  # fmt: skip


def _full_html(entry: Mapping[str, Any]) -> str:
    """content:encoded / Atom content as HTML (plain text escaped), for the Telegraph page."""
    for content in entry.get("content") or []:
        value = str(content.get("value") or "")
        if value.strip():
            if content.get("type") not in _HTML_TYPES:
                value = "".join(
                    f"<p>{html.escape(part)}</p>" for part in value.split("\n\n") if part.strip()
                )
            return value[:MAX_FULL_HTML]
    return ""


MAX_FULL_HTML = 512 * 1024  # characters kept: far past a Telegraph page's 64 KB


def make_key(guid: str, link: str, title: str, published: datetime | None) -> str:
    """guid/id, else link, else a hash of title and date (stable while those stay the same)."""
    guid = guid.strip()
    if guid:
        return guid
    if link:
        return link
    return "sha256:" + _digest(title, published)


def _digest(title: str, published: datetime | None, *more: str) -> str:
    basis = "\n".join((title, published.isoformat() if published else "", *more))
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()


def _unique_keys(statements: list[Statement]) -> list[tuple[int, Statement]]:
    """(index, statement): every one under a key of its own; true duplicates (same key and
    content) once.

    Two different posts that share a guid are both kept. The oldest (earliest date, else the
    lowest in the document, since feeds list newest first) keeps the plain key; each other one
    gets key#link (key#sha256:... when the link is missing or the same). So a newer post that
    reuses the guid of a stored one arrives under a new key and is pushed, while the stored one
    keeps its key and is not taken as edited.
    """
    by_key: dict[str, list[int]] = {}
    for index, s in enumerate(statements):
        by_key.setdefault(s.key, []).append(index)
    if len(by_key) == len(statements):
        return list(enumerate(statements))
    used = set(by_key)
    result: dict[int, Statement] = dict(enumerate(statements))
    for key, indexes in by_key.items():
        distinct: list[int] = []
        for index in indexes:
            if any(_same_content(statements[index], statements[d]) for d in distinct):
                del result[index]  # the same post twice: one is enough
            else:
                distinct.append(index)
        if len(distinct) < 2:
            continue
        keeper = min(distinct, key=lambda i: _age_rank(statements[i], i))
        for index in distinct:
            if index != keeper:
                s = statements[index]
                own = _own_key(key, s, statements[keeper].link, used)
                used.add(own)
                result[index] = replace(s, key=own)
    return sorted(result.items())


def _same_content(a: Statement, b: Statement) -> bool:
    return (a.title, a.link, a.published, a.lead) == (b.title, b.link, b.published, b.lead)


def _age_rank(s: Statement, index: int) -> tuple[float, int]:
    """Sorts the oldest first: by date; undated ones, and ties, by lowest in the document."""
    return (s.published.timestamp() if s.published else float("inf"), -index)


def _own_key(key: str, s: Statement, keeper_link: str, used: set[str]) -> str:
    candidates = [f"{key}#{s.link}"] if s.link and s.link != keeper_link else []
    candidates.append(f"{key}#sha256:{_digest(s.title, s.published)[:16]}")
    candidates.append(f"{key}#sha256:{_digest(s.title, s.published, s.link, s.lead)[:16]}")
    for candidate in candidates:
        if candidate not in used:
            return candidate
    n = 2
    while f"{candidates[-1]}-{n}" in used:
        n += 1
    return f"{candidates[-1]}-{n}"


def _text(value: Any, detail: Mapping[str, Any] | None) -> str:
    is_html = bool(detail and detail.get("type") in _HTML_TYPES)
    return feed_text(str(value or ""), is_html=is_html)


def _lead(entry: Mapping[str, Any]) -> str:
    # feedparser answers "summary" with the content when there is none: ask for the detail.
    detail = entry.get("summary_detail")
    if detail and detail.get("value"):
        return _text(detail["value"], detail)
    for content in entry.get("content") or []:
        if content.get("value"):
            return _text(content["value"], content)
    return ""


def absolute_http_link(link: Any, feed_url: str) -> str:
    """An absolute http(s) link, or "" (javascript: and other schemes never reach a message)."""
    if not isinstance(link, str) or not link.strip():
        return ""
    try:
        absolute = urljoin(feed_url, link.strip())
        parts = urlparse(absolute)
    except ValueError:  # e.g. "http://[bad" : an invalid IPv6 host
        return ""
    return absolute if parts.scheme in ("http", "https") and parts.netloc else ""


def _published(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = _own(entry, key)
        if parsed:
            try:
                # feedparser's struct_time is in UTC already.
                return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def _entry_problems(entry: Mapping[str, Any], statement: Statement) -> list[str]:
    if statement.published is None:
        raw = _own(entry, "published") or _own(entry, "updated") or _own(entry, "created")
        if isinstance(raw, str) and raw.strip():
            return [f"date {shorten(raw.strip(), 60)!r} could not be read"]
    return []


def _own(entry: Mapping[str, Any], key: str) -> Any:
    """The entry's own value: feedparser answers a missing "updated" with "published" (and a
    DeprecationWarning); `in` asks without that mapping."""
    return entry.get(key) if key in entry else None


def content_type_is_html(content_type: str | None) -> bool:
    return _mime(content_type) == "text/html"


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _looks_like_html(body: bytes) -> bool:
    head = body[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


def _is_json(body: bytes, content_type: str | None) -> bool:
    start = _without_bom(body).lstrip()[:1]
    mime = _mime(content_type)
    return start == b"{" or ((mime in _JSON_TYPES or mime.endswith("+json")) and start != b"<")


def _without_bom(body: bytes) -> bytes:
    return body[len(codecs.BOM_UTF8) :] if body.startswith(codecs.BOM_UTF8) else body


_FEED_ROOT = re.compile(rb"<(?:[\w.-]+:)?(?:rss|feed|rdf)\b", re.IGNORECASE)
_ROOT_CLOSE = re.compile(rb"</\s*(?:[\w.-]+:)?(?:rss|feed|rdf)\s*>\s*(?:<!--.*?-->\s*)*\Z",
                         re.IGNORECASE | re.DOTALL)  # fmt: skip


def _ends_with_root_close(body: bytes) -> bool:
    """Does the document end with its root element's closing tag (</rss>, </feed>, </rdf:RDF>)?"""
    tail = body[-4096:].replace(b"\x00", b"")  # UTF-16 documents: drop the zero bytes
    return bool(_ROOT_CLOSE.search(tail))


# ---- character encodings --------------------------------------------------------------


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str  # Python's codec name
    guessed: bool  # detected from the bytes, not declared: it may be wrong (mojibake)
    replaced: int  # invalid UTF-8 sequences shown as U+FFFD


# Byte order marks, and how "<?" starts when there is none (XML 1.0, appendix F).
_SIGNATURES = (
    (codecs.BOM_UTF32_BE, "utf-32-be", 4),
    (codecs.BOM_UTF32_LE, "utf-32-le", 4),
    (codecs.BOM_UTF8, "utf-8", 3),
    (codecs.BOM_UTF16_BE, "utf-16-be", 2),
    (codecs.BOM_UTF16_LE, "utf-16-le", 2),
    (b"\x00\x00\x00<", "utf-32-be", 0),
    (b"<\x00\x00\x00", "utf-32-le", 0),
    (b"\x00<\x00?", "utf-16-be", 0),
    (b"<\x00?\x00", "utf-16-le", 0),
    (b"\x4c\x6f\xa7\x94", "cp037", 0),  # EBCDIC
)
# Labels that name a subset of what such documents really hold (as browsers read them).
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "euc_kr": "cp949", "tis-620": "cp874"}
_XML_ENCODING = re.compile(rb"""\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")


def decode_document(body: bytes, content_type: str | None) -> Decoded:
    """The document's text: by its BOM, else its declared charset, else as UTF-8 (XML's default).

    A document that is UTF-8 but for a few bad bytes keeps all its text; only those bytes become
    U+FFFD (feedparser would decode the whole of it as windows-1252). An undeclared document
    that is not UTF-8 (EUC-KR, GB2312, TIS-620...) is decoded by what charset_normalizer finds.
    """
    declared: list[str] = []
    data = body
    for signature, name, size in _SIGNATURES:
        if body.startswith(signature):
            declared, data = [name], body[size:]
            break
    else:
        declared = _declared_encodings(body, content_type)
    failed: list[str] = []
    for name in declared:
        if name == "utf-8":
            break  # below, with its bad bytes replaced
        try:
            return Decoded(data.decode(name), name, guessed=False, replaced=0)
        except UnicodeDecodeError:
            failed.append(name)
    try:
        return Decoded(data.decode("utf-8"), "utf-8", guessed=False, replaced=0)
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", "replace")
    bad = text.count("\ufffd") - data.count("\ufffd".encode())
    good = len(text) - len(text.encode("ascii", "ignore")) - bad  # non-ASCII decoded right
    if bad <= 1 or bad * 10 <= good:  # UTF-8 with a few bad bytes, not another encoding
        return Decoded(text, "utf-8", guessed=False, replaced=bad)
    if failed:  # the declared encoding, with just its own bad bytes replaced
        return Decoded(data.decode(failed[0], "replace"), failed[0], guessed=False, replaced=0)
    guess = _detect(data)
    if guess and guess != "utf-8":
        return Decoded(data.decode(guess, "replace"), guess, guessed=True, replaced=0)
    return Decoded(text, "utf-8", guessed=True, replaced=bad)


def _declared_encodings(body: bytes, content_type: str | None) -> list[str]:
    """The content type's charset, then the XML declaration's: codecs Python knows, in order."""
    labels = []
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset":
            labels.append(value.strip().strip("\"'"))
    match = _XML_ENCODING.match(body[:1024])
    if match:
        labels.append(match.group(1).decode("ascii"))
    names: list[str] = []
    for label in labels:
        name = _codec(label)
        # Without a BOM or zero bytes the document is not UTF-16/32, whatever it says.
        if name and name not in names and not name.startswith(("utf-16", "utf-32")):
            names.append(name)
    return names


def _codec(label: str) -> str | None:
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return _SUPERSETS.get(name, name)


def _detect(data: bytes) -> str | None:
    match = charset_normalizer.from_bytes(data).best()
    return _codec(match.encoding) if match else None


# ---- character references that no text can hold --------------------------------------

_CHAR_REF = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")
_SHELTERED = re.compile(r"<!\[CDATA\[.*?\]\]>|<!--.*?-->", re.DOTALL)  # references stay text
_ITEM_TAG = re.compile(r"<(/?)(?:[\w.-]+:)?(?:item|entry)(?=[\s/>])")
_ITEM_TITLE = re.compile(r"<(?:[\w.-]+:)?title\b[^>]*>(.*?)</", re.DOTALL)


def _drop_unreadable_items(text: str) -> tuple[str, list[str], list[int]]:
    """The text without items that refer to characters that cannot exist (&#xD800;, &#0;).

    feedparser's fallback parser fails on those (UnicodeEncodeError, ValueError), so one such
    reference used to fail every poll. Returns the text, one line per dropped item, and the
    numbers (1-based, in document order) of the items left. A reference outside any item
    becomes U+FFFD; a control character (&#x1;) becomes a space and its item stays.
    """
    if "&#" not in text:
        return text, [], []
    refs = [m for m in _CHAR_REF.finditer(text) if not _is_xml_char(_code_point(m))]
    if not refs:
        return text, [], []
    sheltered = [m.span() for m in _SHELTERED.finditer(text)]
    refs = [m for m in refs if _inside(m.start(), sheltered) is None]
    items = _item_spans(text)
    dropped: dict[int, str] = {}  # item index -> the first bad reference in it
    edits: list[tuple[int, int, str]] = []
    for ref in refs:
        point = _code_point(ref)
        index = _inside(ref.start(), items)
        if _is_control(point):
            edits.append((*ref.span(), " "))
        elif index is None:
            edits.append((*ref.span(), "\ufffd"))
        else:
            dropped.setdefault(index, ref.group(0))
    edits.extend((*items[i], "") for i in dropped)
    edits.sort()
    parts, at = [], 0
    for start, end, new in edits:
        if start >= at:  # a reference inside a dropped item goes with it
            parts += [text[at:start], new]
            at = end
    parts.append(text[at:])
    skipped = [
        f"item {i + 1} ({_item_title(text[slice(*items[i])])!r}): "
        f"unreadable character reference {ref}"
        for i, ref in sorted(dropped.items())
    ]
    kept = [i + 1 for i in range(len(items)) if i not in dropped]
    return "".join(parts), skipped, kept


def _one_line(exc: BaseException) -> str:
    """An exception as one short line for the feed's row (/status) and skipped lists."""
    return shorten(" ".join(f"{type(exc).__name__}: {exc}".split()), 160)


def _item_spans(text: str) -> list[tuple[int, int]]:
    """Where each item (or entry) starts and ends; one pass, so a cut-off document stays cheap."""
    spans, start = [], None
    for tag in _ITEM_TAG.finditer(text):
        if not tag.group(1):
            start = tag.start()
        elif start is not None:
            end = text.find(">", tag.end())
            spans.append((start, len(text) if end < 0 else end + 1))
            start = None
    return spans


def _code_point(ref: re.Match[str]) -> int:
    hex_digits, digits = ref.groups()
    number = (hex_digits or digits).lstrip("0") or "0"
    if len(number) > 8:  # beyond Unicode either way; int() refuses 4300+ digits anyway
        return 0x110000
    return int(number, 16) if hex_digits else int(number)


def _is_xml_char(point: int) -> bool:
    return (
        point in (0x9, 0xA, 0xD)
        or 0x20 <= point <= 0xD7FF
        or 0xE000 <= point <= 0xFFFD
        or 0x10000 <= point <= 0x10FFFF
    )


def _is_control(point: int) -> bool:
    """A character that exists but XML forbids: it says nothing in a title, so it can go."""
    return 0 < point < 0x20 or point in (0xFFFE, 0xFFFF)


def _inside(position: int, spans: list[tuple[int, int]]) -> int | None:
    """Index of the span (sorted, not overlapping) that holds the position, if any."""
    index = bisect.bisect_right(spans, position, key=lambda span: span[0]) - 1
    return index if index >= 0 and spans[index][0] <= position < spans[index][1] else None


def _item_title(item: str) -> str:
    match = _ITEM_TITLE.search(item)
    if not match:
        return ""
    raw = match.group(1).replace("<![CDATA[", "").replace("]]>", "")
    # Numeric references first: html.unescape fails on one with thousands of digits.
    raw = _CHAR_REF.sub(lambda m: _char(_code_point(m)), raw)
    return shorten(fold_whitespace(html.unescape(raw)), 40)


def _char(point: int) -> str:
    return chr(point) if _is_xml_char(point) else "\ufffd"
