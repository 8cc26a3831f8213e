"""Plain-text helpers: HTML to text, whitespace folding, shortening at a word boundary."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Elements that end a line: text on either side must not run together ("Cell oneCell two").
_BLOCK_TAGS = {
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "tr", "table", "section", "article", "header", "footer",
    "dl", "dt", "dd", "hr", "figure", "figcaption", "caption", "address", "main", "nav",
    "aside", "details", "summary", "thead", "tbody", "tfoot", "fieldset", "legend", "center",
    "hgroup", "menu", "dialog", "search", "option",
}  # fmt: skip
# Table cells sit side by side: a space keeps a row on one line, even with keep_lines.
_CELL_TAGS = {"td", "th"}
_SKIP_TAGS = {"script", "style", "head", "title", "template", "noscript"}
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_LINE_EDGES = re.compile(r" *\n *")
_BLANK_RUNS = re.compile(r"\n{3,}")
# html.unescape raises on a numeric reference of 4300+ digits; past 8 it is no character anyway.
_HUGE_CHAR_REF = re.compile(r"&#(?:[xX]0*[1-9a-fA-F][0-9a-fA-F]{8,}|0*[1-9][0-9]{8,});?")


class _TextExtractor(HTMLParser):
    def __init__(self, show_links: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.show_links = show_links
        self._skip = 0
        self._hrefs: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")
        elif tag == "a":
            self._hrefs.append(dict(attrs).get("href"))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")
        elif tag == "a" and self._hrefs:
            href = self._hrefs.pop()
            if self.show_links and href:
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str, *, show_links: bool = False, keep_lines: bool = False) -> str:
    """Visible text of an HTML fragment; entities decoded, whitespace folded.

    keep_lines keeps paragraph breaks as single newlines (for the console); otherwise the
    result is one line, as a lead paragraph should be.
    """
    parser = _TextExtractor(show_links)
    parser.feed(_HUGE_CHAR_REF.sub("\ufffd", markup))
    parser.close()
    text = "".join(parser.parts)
    return fold_whitespace(text, keep_lines=keep_lines)


# Elements a feed's HTML is made of; prose that mentions "<b>" rarely starts with one.
_HTML_NAMES = (
    "a|abbr|article|aside|b|blockquote|br|center|cite|code|dd|del|div|dl|dt|em|figcaption|"
    "figure|font|footer|h[1-6]|header|hr|i|iframe|img|ins|li|main|mark|nav|ol|p|pre|q|s|"
    "section|small|span|strong|sub|sup|table|tbody|td|th|thead|time|tr|u|ul"
)
_MARKUP_TAG = re.compile(rf"<!--.*?-->|</?(?:{_HTML_NAMES})(?:\s[^<>]*)?/?>", re.I | re.S)
_MARKUP_START = re.compile(rf"<!--|<(?:{_HTML_NAMES})[\s/>]", re.I)


def looks_like_markup(text: str) -> bool:
    """Is this text HTML that was escaped once more than it should have been?

    Conservative, so a lead that mentions "<b>" in prose stays as written: the text must start
    with an HTML tag or comment, end with ">", and hold at least two HTML tags.
    """
    text = text.strip()
    if not (text.endswith(">") and _MARKUP_START.match(text)):
        return False
    return len(_MARKUP_TAG.findall(text, 0, 4096)) >= 2


def feed_text(value: str, *, is_html: bool) -> str:
    """A feed field as plain text: HTML read as text, and HTML escaped twice read as text too.

    Some feeds (reddit's) escape their HTML twice, so one unescape still leaves
    `<!-- SC_OFF --><div class="md"><p>`; that is markup, not what the statement says.
    """
    text = html_to_text(value) if is_html else fold_whitespace(value)
    return html_to_text(text) if looks_like_markup(text) else text


def fold_whitespace(text: str, *, keep_lines: bool = False) -> str:
    text = _SPACES.sub(" ", text)
    if keep_lines:  # paragraphs stay apart by one blank line, never more
        return _BLANK_RUNS.sub("\n\n", _LINE_EDGES.sub("\n", text)).strip()
    return " ".join(text.split())


def shorten(text: str, limit: int, ellipsis: str = "…") -> str:
    """Cut `text` to at most `limit` characters at a word boundary, marking the cut."""
    if len(text) <= limit:
        return text
    if limit <= len(ellipsis):
        return text[:limit]
    cut = text[: limit - len(ellipsis) + 1]
    space = cut.rfind(" ")
    # A single huge "word" (a URL, CJK text without spaces) is cut where it must be.
    head = cut[:space] if space > limit // 2 else cut[: limit - len(ellipsis)]
    return head.rstrip(" ,;:-\u2013\u2014") + ellipsis  # no dangling dash before the cut


def telegram_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2
