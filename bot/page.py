"""Read statements from HTML pages with CSS selectors (sites that publish no feed). No I/O.

Selectors are parsel's CSS: plain CSS plus `::text` and `::attr(name)` at the end. The text of
a matched element is its visible text (bot.text.html_to_text); of a `::text` or `::attr()`
match, the string itself; several matches are joined by a space.
"""

from __future__ import annotations

import codecs
import hashlib
import html
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import urljoin, urlparse
from zoneinfo import ZoneInfo

from cssselect import SelectorError
from parsel import Selector, SelectorList
from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding, read_bom

from bot.model import PageSpec, ParsedDocument, Statement
from bot.parse import MAX_FULL_HTML, FeedFormatError
from bot.text import fold_whitespace, html_to_text

_FEED_TYPES = {
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/json",
}
# "25.10.2021 - Title": the date, then a dash between spaces (or at the end of the text).
_DATE_PREFIX = re.compile(r"(.+?)\s+[-\u2013\u2014](?:\s+|$)")
_DASH_LEAD = re.compile(r"\s*[-\u2013\u2014]\s*")
_PSEUDO_END = re.compile(r"::(?:text|attr\([^)]*\))\s*$")
_DIRECTIVE = re.compile(r"%[^%]")
# A day above 12, so day and month cannot swap; in UTC, so %z and %Z have something to write.
_SAMPLE_DATE = datetime(2021, 10, 25, 14, 30, 45, tzinfo=UTC)
_EMPTY_DOC = Selector(text="<html><body></body></html>")


def decode_html(body: bytes, content_type: str | None) -> str:
    """The page as text, in the encoding it declares; undeclared: UTF-8, bad bytes replaced.

    Order as browsers do it: byte order mark, the HTTP header's charset, then `<meta charset>`
    or `<meta http-equiv="Content-Type" content="...; charset=...">` (or an XML declaration).
    """
    return _decode(body, content_type)[0]


def _decode(body: bytes, content_type: str | None) -> tuple[str, bool]:
    """(text, lossy): lossy when some bytes were not valid in the encoding used (mojibake risk)."""
    bom_encoding, bom = read_bom(body)
    if bom_encoding and bom:
        encoding, data = bom_encoding, body[len(bom) :]
    else:
        data = body
        encoding = http_content_type_encoding(content_type)
        if encoding is None:
            encoding = html_body_declared_encoding(body)
            # A page that could say "utf-16" in ASCII markup is not UTF-16 (the HTML standard
            # reads such a declaration as UTF-8).
            if encoding and codecs.lookup(encoding).name.startswith(("utf-16", "utf-32")):
                encoding = "utf-8"
        encoding = encoding or "utf-8"
        if encoding in ("utf-16", "utf-32"):  # no BOM: the byte order is big-endian
            encoding += "-be"
    try:
        return data.decode(encoding), False
    except UnicodeDecodeError:
        return data.decode(encoding, "replace"), True


def _document(body: bytes, url: str, content_type: str | None) -> tuple[Selector, str, bool]:
    """(document, base URL for its links, lossy decode)."""
    text, lossy = _decode(body, content_type)
    doc = Selector(text=text, type="html", base_url=url)
    base = url
    base_href = doc.css("base[href]::attr(href)").get()
    if base_href and base_href.strip():
        joined = urljoin(url, _clean_href(base_href))
        if urlparse(joined).scheme in ("http", "https"):
            base = joined
    return doc, base, lossy


def parse_list_page(
    body: bytes, *, url: str, content_type: str | None, spec: PageSpec, timezone: ZoneInfo
) -> ParsedDocument:
    """One statement per `spec.item` match, in page order (newest first, as sites list them).

    Raises FeedFormatError when the item selector matches nothing: a redesigned site (or a
    bot-protection page) is a failure to report, not "nothing new".
    """
    doc, base, lossy = _document(body, url, content_type)
    items = [item for item in doc.css(spec.item) if not isinstance(item.root, str)]
    if not items:
        raise FeedFormatError(
            f"the item selector {spec.item!r} matched nothing on the page (has the site changed?)"
        )
    statements: list[Statement] = []
    skipped: list[str] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, item in enumerate(items, start=1):
        statement, item_problems = _statement(item, base, spec, timezone)
        if statement is None:
            snippet = _texts([item])[:80]
            skipped.append(f"item {number} of {len(items)}: no title and no link ({snippet!r})")
            continue
        if statement.key in seen:  # listed twice (a pinned copy on top): the first one counts
            continue
        seen.add(statement.key)
        statements.append(statement)
        problems.extend((statement.key, problem) for problem in item_problems)
    return ParsedDocument(
        statements, skipped=tuple(skipped), problems=tuple(problems), fallback_encoding=lossy
    )


def _statement(
    item: Selector, base: str, spec: PageSpec, timezone: ZoneInfo
) -> tuple[Statement | None, list[str]]:
    """The item's statement (None: no title and no link) and what could not be read in it."""
    problems: list[str] = []
    title_matches = item.css(spec.title) if spec.title else _first_link_with_text(item)
    title = _texts(title_matches)
    link = _link(item, spec, title_matches, base)
    lead = _texts(item.css(spec.lead)) if spec.lead else ""

    published: datetime | None = None
    if spec.date:
        date_text = _texts(item.css(spec.date))
        if not date_text:
            problems.append(f"no date matched {spec.date}")
        else:
            published, date_part = _parse_date(date_text, spec.date_formats, timezone)
            if published is None:
                formats = ", ".join(spec.date_formats)
                problems.append(f'date "{date_text}" matches none of the formats {formats}')
            else:
                title = _strip_date_prefix(title, date_part)

    if not title and not link:
        return None, problems
    if not title:
        if spec.title:
            problems.append(f"no title matched {spec.title}")
        title = lead[:100] or "(untitled)"
    key = link or _hash_key(title, published)
    return Statement(key=key, title=title, link=link, published=published, lead=lead), problems


def _first_link_with_text(item: Selector) -> SelectorList[Selector]:
    """The item's first link that shows text (an image link before it is not the title)."""
    for link in item.css("a[href]"):
        if _texts([link]):
            return SelectorList([link])
    return SelectorList([])


def _link(item: Selector, spec: PageSpec, title_matches: SelectorList[Selector], base: str) -> str:
    """The first href found; one that is not http(s) gives "" rather than a later, other link
    (a title opened by javascript: must not take the item's tag or photo link as its key)."""
    if spec.link:
        hrefs = [_href_of(match) for match in item.css(spec.link)]
    else:
        # The title's own link, else the item's first link.
        elements = title_matches
        if spec.title and _PSEUDO_END.search(spec.title):  # "a.title::text": its element
            element_selector = _PSEUDO_END.sub("", spec.title).strip()
            elements = item.css(element_selector) if element_selector else SelectorList([item])
        hrefs = [_href_of(match) for match in elements if not isinstance(match.root, str)]
        hrefs.append(item.css("a[href]::attr(href)").get())
    href = next((href for href in hrefs if href and href.strip()), None)
    return _absolute_http_link(href, base)


def _href_of(match: Selector) -> str | None:
    """A matched string is the URL; a matched element gives its href or its first link's."""
    if isinstance(match.root, str):
        return match.root
    return match.css("a[href]::attr(href)").get()  # css() includes the element itself


def _clean_href(href: str) -> str:
    # Browsers ignore tabs and newlines anywhere in a URL, and spaces around it.
    return re.sub(r"[\t\n\r]", "", href).strip()


def _absolute_http_link(href: str | None, base: str) -> str:
    """An absolute http(s) URL, or "": javascript:, mailto: and "#" placeholders are no link."""
    if not href:
        return ""
    href = _clean_href(href)
    if href in ("", "#"):
        return ""
    absolute = urljoin(base, href)
    return absolute if urlparse(absolute).scheme in ("http", "https") else ""


def _texts(matches: Iterable[Selector]) -> str:
    """Visible text of each match (elements through html_to_text), joined by a space."""
    parts = []
    for match in matches:
        if isinstance(match.root, str):
            parts.append(fold_whitespace(match.root))
        else:
            parts.append(html_to_text(match.get()))
    return " ".join(part for part in parts if part)


def _parse_date(
    text: str, formats: Iterable[str], timezone: ZoneInfo
) -> tuple[datetime | None, str]:
    """(published in UTC, the part of `text` that was read as the date).

    The whole text is tried first, then the part before a " - " (an item that reads
    "25.10.2021 - Title"). A date without a time is midnight of that day in `timezone`; a
    time without a zone is local time there (an hour that a DST change repeats reads as the
    first of the two, an hour that it skips as the hour before the change).
    """
    candidates = [text]
    prefix = _DATE_PREFIX.match(text)
    if prefix:
        candidates.append(prefix.group(1))
    for candidate in candidates:
        for fmt in formats:
            try:
                parsed = datetime.strptime(candidate, fmt)
            except ValueError:
                continue
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone)
            return parsed.astimezone(UTC), candidate
    return None, ""


def _strip_date_prefix(title: str, date_part: str) -> str:
    """ "25.10.2021 - Title" -> "Title": a title that repeats its date before a dash loses it.

    This lets `date` and `title` point at the same element on sites that print both as one
    text; a title that merely starts with some other date is left alone.
    """
    if not date_part or not title.startswith(date_part):
        return title
    rest = title[len(date_part) :]
    dash = _DASH_LEAD.match(rest)
    return rest[dash.end() :] if dash and dash.group().strip() else title


def _hash_key(title: str, published: datetime | None) -> str:
    # The same fallback key as bot.parse._key, so a statement keeps its key across sources.
    basis = f"{title}\n{published.isoformat() if published else ''}"
    return "sha256:" + hashlib.sha256(basis.encode("utf-8")).hexdigest()


def article_text(body: bytes, *, url: str, content_type: str | None, selector: str) -> str:
    """The visible text of every `selector` match on a statement's own page ("" if none)."""
    return article_content(body, url=url, content_type=content_type, selector=selector)[0]


def article_content(
    body: bytes, *, url: str, content_type: str | None, selector: str
) -> tuple[str, str]:
    """(visible text, HTML) of every `selector` match: the text is the lead, the HTML the full
    text for a Telegraph page (still unsafe: bot.telegraph keeps only what it allows)."""
    doc, _base, _lossy = _document(body, url, content_type)
    matches = doc.css(selector)
    markup = "".join(
        f"<p>{html.escape(m.root)}</p>" if isinstance(m.root, str) else m.get() for m in matches
    )
    return _texts(matches), markup[:MAX_FULL_HTML] if markup.strip() else ""


def discover_feeds(body: bytes, *, url: str, content_type: str | None) -> list[str]:
    """Feeds a page names with <link rel="alternate" type="application/rss+xml" href=...>.

    Document order, absolute, http(s) only, each once. Atom, JSON Feed and plain JSON types
    count too; other alternates (a translation, a print version) do not.
    """
    doc, base, _lossy = _document(body, url, content_type)
    feeds: list[str] = []
    for link in doc.css("link[rel][href]"):
        rel = (link.attrib.get("rel") or "").lower().split()
        kind = (link.attrib.get("type") or "").split(";")[0].strip().lower()
        if "alternate" not in rel or kind not in _FEED_TYPES:
            continue
        absolute = _absolute_http_link(link.attrib.get("href"), base)
        if absolute and absolute not in feeds:
            feeds.append(absolute)
    return feeds


def selector_problem(selector: str) -> str | None:
    """None when `selector` is CSS that parsel reads (with ::text / ::attr(name)), else why."""
    if not selector.strip():
        return "it is empty"
    try:
        _EMPTY_DOC.css(selector)
    except (SelectorError, ValueError) as exc:  # cssselect's syntax errors; parsel's XPath ones
        message = re.sub(r"<EOF at \d+>", "the end of the selector", str(exc))
        message = re.sub(r"<\w+ '(.*?)' at (\d+)>", r"'\1' at position \2", message)
        return " ".join(message.split())
    return None


def date_format_problem(fmt: str) -> str | None:
    """None when `fmt` is a strptime format that reads back a full date, else a hint."""
    if not _DIRECTIVE.search(fmt.replace("%%", "")):
        return "has no % directive: write %d.%m.%Y for dates such as 25.10.2021"
    if "%-" in fmt or "%#" in fmt:
        return "flags such as %-d are for output only: %d already reads both 5 and 05"
    try:
        parsed = datetime.strptime(_SAMPLE_DATE.strftime(fmt), fmt)
    except ValueError as exc:
        return f"cannot read a date back: {exc}"
    if parsed.date() != _SAMPLE_DATE.date():
        return (
            f"reads {_SAMPLE_DATE:%d.%m.%Y} back as {parsed:%d.%m.%Y}: "
            "it needs a day, a month and a year (%d, %m or %b/%B, %Y or %y)"
        )
    return None
