"""bot.parse on the sample feeds, hand-made edge cases and the whole feedparser corpus."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest

from bot.model import Statement
from bot.parse import FeedFormatError, parse_feed
from tests.conftest import CORPUS, SAMPLES

RSS_URL = "https://www.rusemb.org.uk/rss/statements.xml"
ATOM_URL = "https://www.rusemb.org.uk/atom/statements.xml"
SITE = "https://www.rusemb.org.uk/"


def sample(name: str, url: str = RSS_URL) -> list[Statement]:
    return parse_feed((SAMPLES / name).read_bytes(), url=url, content_type="application/xml")


def by_link(statements: list[Statement]) -> dict[str, Statement]:
    return {s.link: s for s in statements}


def rss(items: str, *, channel: str = "<title>Statements</title>") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"{channel}{items}</channel></rss>"
    ).encode()


# ---- the sample feeds -----------------------------------------------------------------


def test_rss_sample_gives_twelve_statements_newest_first() -> None:
    """The RSS sample reads as the 12 statements of the embassy's list, in feed order."""
    statements = sample("embassy-rss.xml")

    assert len(statements) == 12
    assert statements[0].link == SITE + "fnapr/7012"
    assert statements[0].title == (
        "President Putin's telephone conversation with British Prime Minister Boris Johnson"
    )
    assert statements[0].published == datetime(2021, 10, 25, 18, 40, tzinfo=UTC)  # 21:40 +0300
    assert statements[0].lead.startswith("The two leaders discussed the state of bilateral")
    assert statements[-1].link == SITE + "fnapr/7002"


def test_rss_and_atom_give_the_same_statements_but_other_keys() -> None:
    """The same 12 items in RSS and Atom: same titles, links, UTC times and leads."""
    rss_items = sample("embassy-rss.xml")
    atom_items = sample("embassy-atom.xml", url=ATOM_URL)

    assert len(rss_items) == len(atom_items) == 12
    for r, a in zip(rss_items, atom_items, strict=True):
        assert (r.title, r.link, r.published, r.lead) == (a.title, a.link, a.published, a.lead)
        assert r.key == r.link  # RSS guids are the permalinks
        assert a.key.startswith("tag:rusemb.org.uk,2021:")  # Atom ids are tag: URIs


@pytest.mark.parametrize("name", ["embassy-rss.xml", "embassy-atom.xml", "embassy-rss-next.xml"])
def test_sample_times_are_aware_utc(name: str) -> None:
    """Every published time is timezone-aware UTC, whatever offset the feed wrote."""
    for s in sample(name):
        assert s.published is not None
        assert s.published.utcoffset() == timedelta(0)
        assert s.published.tzinfo is UTC


def test_item_without_guid_is_keyed_by_its_link() -> None:
    """fnapr/7005 has no <guid>: its key is its link, the same in both polls."""
    first = by_link(sample("embassy-rss.xml"))[SITE + "fnapr/7005"]
    later = by_link(sample("embassy-rss-next.xml"))[SITE + "fnapr/7005"]

    assert first.key == later.key == SITE + "fnapr/7005"
    assert first.title == "Russia's position at the 76th Session of the UN General Assembly"


def test_escaped_title_and_lead_come_out_as_plain_text_with_raw_characters() -> None:
    """&amp;, &lt; and entity-escaped markup become the characters a reader should see."""
    items = by_link(sample("embassy-rss.xml"))

    consular = items[SITE + "fnapr/7002"]
    assert consular.title == (
        "Consular Section: visa appointments & processing times (<15 working days) / "
        "Консульский отдел: запись на приём"
    )
    assert consular.lead.startswith(
        "Standard applications: <15 working days; urgent ones: >3 working days."
    )
    assert "&lt;" not in consular.lead and "&gt;" not in consular.lead
    # A bare & inside CDATA HTML, and a double-escaped Q&amp;amp;A, both read as "&".
    assert "his bilateral meetings & the outcome" in items[SITE + "fnapr/7008"].lead
    assert items[SITE + "fnapr/7004"].lead.startswith("In a Q&A with the newspaper")
    # Entity-escaped <p> is markup, not text: the reader never sees the tag.
    valdai = items[SITE + "fnapr/7011"].lead
    assert valdai.startswith("The President spoke at the final plenary session of the Club\u2019s")
    assert "<p>" not in valdai and "</p>" not in valdai


def test_cyrillic_survives() -> None:
    """Russian text in titles and leads comes through intact (UTF-8 end to end)."""
    items = by_link(sample("embassy-rss-next.xml"))

    closed = items[SITE + "fnapr/7014"]
    assert (
        closed.title
        == "Consular Section will be closed on 4 November \u2013 День народного единства"
    )
    assert closed.lead.endswith("Консульский отдел 4 ноября не работает.")


def test_atom_relative_links_are_made_absolute_with_xml_base() -> None:
    """Atom entry links relative to xml:base become absolute links to the site."""
    # The document address is elsewhere on purpose: xml:base is what the links are relative to.
    atom = parse_feed(
        (SAMPLES / "embassy-atom.xml").read_bytes(), url="http://127.0.0.1:8080/mirror/atom.xml"
    )

    assert [s.link for s in atom[:3]] == [
        SITE + "fnapr/7012",
        SITE + "fnapr/7011",
        SITE + "fnapr/7010",
    ]
    assert all(s.link.startswith(SITE) for s in atom)


def test_rss_relative_link_is_resolved_against_the_document_address() -> None:
    """An RSS link without scheme and host is resolved against where the feed came from."""
    [s] = parse_feed(
        rss("<item><title>A</title><link>/fnapr/1</link></item>"), url="https://example.org/rss.xml"
    )

    assert s.link == "https://example.org/fnapr/1"


def test_atom_xhtml_content_and_html_title_are_plain_text() -> None:
    """xhtml content and an html-typed title with <i> read as text, without tags."""
    items = by_link(sample("embassy-atom.xml", url=ATOM_URL))

    assert items[SITE + "fnapr/7007"].lead == (
        "Full text of the Minister\u2019s statement at the General Debate."
    )
    title = items[SITE + "fnapr/7004"].title
    assert "Komsomolskaya Pravda" in title
    assert "<i>" not in title and "&lt;" not in title


def test_script_in_a_lead_is_not_text() -> None:
    """A <script> (or <style>) in the description never reaches the lead as text."""
    [s] = parse_feed(
        rss(
            "<item><title>A</title><link>https://example.org/1</link><description><![CDATA["
            "<p>Hello <script>alert('x')</script>world</p><style>p {color: red}</style>"
            "]]></description></item>"
        ),
        url="https://example.org/rss.xml",
    )

    assert s.lead == "Hello world"


@pytest.mark.parametrize(
    "link",
    ["javascript:alert(1)", "data:text/html,<b>hi</b>", "mailto:press@example.org", "ftp://x/y"],
)
def test_links_that_are_not_http_are_dropped(link: str) -> None:
    """Only http(s) links reach a message: javascript: and other schemes become no link."""
    body = rss(
        f'<item><title>A</title><guid isPermaLink="false">a-1</guid><link>{link}</link></item>'
    )

    [s] = parse_feed(body, url="https://example.org/rss.xml")

    assert s.link == ""
    assert s.key == "a-1"
    assert s.title == "A"


# ---- keys and dates -------------------------------------------------------------------


NO_ID_NO_LINK = rss(
    "<item><title>First</title><pubDate>Mon, 25 Oct 2021 21:40:00 +0300</pubDate></item>"
    "<item><title>Second</title><pubDate>Tue, 26 Oct 2021 09:00:00 +0300</pubDate></item>"
)


def test_entries_without_id_and_link_get_a_stable_hash_key() -> None:
    """No guid, no link: the key comes from title and date, the same on every poll."""
    first = parse_feed(NO_ID_NO_LINK, url="https://example.org/rss.xml")
    again = parse_feed(NO_ID_NO_LINK, url="https://example.org/other.xml")

    assert [s.key for s in first] == [s.key for s in again]
    assert len({s.key for s in first}) == 2
    assert all(s.key for s in first)
    assert all(s.link == "" for s in first)


def test_hash_key_changes_with_the_date() -> None:
    """Two statements with the same title on different days are two statements."""
    a = parse_feed(
        rss("<item><title>Comment</title><pubDate>Mon, 25 Oct 2021 10:00:00 GMT</pubDate></item>"),
        url="https://example.org/rss.xml",
    )
    b = parse_feed(
        rss("<item><title>Comment</title><pubDate>Tue, 26 Oct 2021 10:00:00 GMT</pubDate></item>"),
        url="https://example.org/rss.xml",
    )

    assert a[0].key != b[0].key


def test_feed_without_dates_still_works() -> None:
    """A feed that gives no dates is read; published is None, the order is the feed's."""
    statements = parse_feed(
        rss(
            "<item><title>Newer</title><link>https://example.org/2</link>"
            "<description>Second statement.</description></item>"
            "<item><title>Older</title><link>https://example.org/1</link></item>"
        ),
        url="https://example.org/rss.xml",
    )

    assert [s.title for s in statements] == ["Newer", "Older"]
    assert [s.published for s in statements] == [None, None]
    assert statements[0].lead == "Second statement."


def test_untitled_entry_takes_its_title_from_the_lead() -> None:
    """An item with no title still gets one a reader can use: the start of its lead."""
    [s] = parse_feed(
        rss(
            "<item><link>https://example.org/1</link>"
            "<description>The Embassy comments on the latest events.</description></item>"
        ),
        url="https://example.org/rss.xml",
    )

    assert s.title == "The Embassy comments on the latest events."


def test_feed_with_no_items_is_an_empty_list_not_an_error() -> None:
    """A real feed that lists nothing right now is simply empty."""
    assert parse_feed(rss(""), url="https://example.org/rss.xml") == []


# ---- documents that are not feeds -----------------------------------------------------

BOT_PROTECTION_PAGE = b"""<!DOCTYPE html>
<html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<link rel="alternate" type="application/rss+xml" href="/rss/statements.xml">
</head><body><noscript>Enable JavaScript and cookies to continue</noscript>
<script>window._chl_opt = {cType: 'managed'};</script></body></html>"""


@pytest.mark.parametrize(
    "content_type", ["text/html; charset=UTF-8", "application/xml", None], ids=str
)
def test_html_page_is_an_error_that_says_html(content_type: str | None) -> None:
    """A bot-protection or error page is not 'a feed with no items': the error says HTML."""
    with pytest.raises(FeedFormatError, match="HTML"):
        parse_feed(BOT_PROTECTION_PAGE, url=RSS_URL, content_type=content_type)


def test_xhtml_page_is_an_error_that_says_html() -> None:
    """An XHTML page is well-formed XML, but still not a feed."""
    page = (
        b'<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
        b"<head><title>Access denied</title></head><body><p>Access denied</p></body></html>"
    )
    with pytest.raises(FeedFormatError, match="HTML"):
        parse_feed(page, url=RSS_URL, content_type="application/xhtml+xml")


def test_feed_served_as_text_html_is_still_read() -> None:
    """A misconfigured host that labels a real feed text/html does not lose the feed."""
    body = (SAMPLES / "embassy-rss.xml").read_bytes()

    assert len(parse_feed(body, url=RSS_URL, content_type="text/html")) == 12


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n\t  ",
        b"\x00\x01\x02\xff\xfe binary junk",
        b'{"error": "rate limited", "retry": 30}',
        b"Service temporarily unavailable",
        b'<?xml version="1.0"?>\n<response><status>ok</status></response>',
    ],
    ids=["empty", "whitespace", "binary", "json", "plain-text", "other-xml"],
)
def test_garbage_is_a_feed_format_error(body: bytes) -> None:
    """Empty bodies, binary junk, JSON, plain text or other XML are not feeds."""
    with pytest.raises(FeedFormatError):
        parse_feed(body, url=RSS_URL)


def test_malformed_xml_with_nothing_readable_is_an_error() -> None:
    """A broken document from which no item can be read is an error, not an empty feed.

    BUG (bot/parse.py:40): feedparser sees "<rss" and reports a version even though the
    document is not well-formed and holds no items; parse_feed then returns [] and the poll is
    recorded as a success (no last_error, no backoff, admins never told). Proposed fix: after
    parsing, `if parsed.bozo and isinstance(parsed.bozo_exception, xml.sax.SAXParseException)
    and not parsed.entries: raise FeedFormatError(f"not well-formed XML: {exc}")`.
    """
    for body in (
        b'<?xml version="1.0"?>\n<rss version="2.0"\n<channel>',
        b"<?xml version='1.0'?>\n<<rss>>",
    ):
        with pytest.raises(FeedFormatError):
            parse_feed(body, url=RSS_URL)


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.75])
def test_feed_cut_off_mid_document_is_an_error(fraction: float) -> None:
    """A download cut short is not the feed: it must not become half-titled statements.

    BUG (bot/parse.py:47-56): a truncated document is bozo ("no element found" / "unclosed
    token"), but feedparser's loose parser salvages it and parse_feed returns what it got: a
    half item keyed by a hash (pushed as "new", then pushed again once the full feed is back),
    "(untitled)" junk, and known items with cut titles/leads that overwrite the stored ones.
    Proposed fix: when the document is not well-formed (SAXParseException) and its root element
    is never closed (no </rss>, </feed> or </rdf:RDF> at its end), raise FeedFormatError("the
    document is cut off ...") so the poll is a recorded, retried failure.
    """
    body = (SAMPLES / "embassy-rss-next.xml").read_bytes()
    cut = body[: int(len(body) * fraction)]

    with pytest.raises(FeedFormatError):
        parse_feed(cut, url=RSS_URL)


def test_html_page_with_a_script_that_mentions_rss_is_an_error() -> None:
    """An HTML page is an error even when feedparser spots an "<rss" inside its script.

    BUG (bot/parse.py:40-46): the HTML check only runs when feedparser found no version; a
    page whose inline script holds the string "<rss" gets version "rss", zero entries, and
    passes as an empty feed. Proposed fix: `if not parsed.entries and
    _looks_like_html(body, None): raise FeedFormatError(...)` before the version check (sniff
    the body only, so a real empty feed served as text/html stays valid).
    """
    page = (
        b"<!DOCTYPE html><html><head><title>Just a moment...</title><script>"
        b"var feed = '<rss>';</script></head><body>Checking your browser</body></html>"
    )
    with pytest.raises(FeedFormatError, match="HTML"):
        parse_feed(page, url=RSS_URL, content_type="text/html")


# ---- the feedparser corpus ------------------------------------------------------------

CORPUS_FILES = sorted(CORPUS.glob("*.xml"))
TAG = re.compile(r"<\s*/?\s*(p|div|br|span|a|script|style|iframe|img|object|embed)\b", re.I)
HEADER_CONTENT_TYPE = re.compile(rb"^Header:\s*Content-type:\s*(.+?)\s*$", re.I | re.M)


def test_corpus_is_complete_with_its_licence() -> None:
    """The copied corpus keeps feedparser's licence next to it, and has all 80 documents."""
    licence = CORPUS / "LICENSE"
    assert licence.is_file()
    assert "Kurt McKee" in licence.read_text(encoding="utf-8")
    assert len(CORPUS_FILES) == 80


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_document_parses_to_sound_statements_or_a_format_error(path: Path) -> None:
    """Every corpus document gives well-formed statements or a FeedFormatError, nothing else."""
    body = path.read_bytes()
    header = HEADER_CONTENT_TYPE.search(body)  # what feedparser's own test server sent with it
    content_type = header.group(1).decode("ascii") if header else None

    try:
        statements = parse_feed(
            body, url="https://example.org/feeds/corpus.xml", content_type=content_type
        )
    except FeedFormatError as exc:
        assert str(exc)  # an operator reads this on the feed's row: it must say something
        return

    assert isinstance(statements, list)
    for s in statements:
        assert isinstance(s, Statement)
        assert isinstance(s.key, str) and s.key.strip()
        assert isinstance(s.title, str) and s.title.strip()
        assert s.link == "" or urlparse(s.link).scheme in ("http", "https")
        if s.link:
            assert urlparse(s.link).netloc
        assert s.published is None or (
            isinstance(s.published, datetime) and s.published.utcoffset() == timedelta(0)
        )
        assert isinstance(s.lead, str)
        assert not TAG.search(s.lead), s.lead
        assert "  " not in s.lead and "\n" not in s.lead  # whitespace folded to one line


def test_corpus_keys_follow_guid_then_link() -> None:
    """Spot checks on the corpus: a non-permalink guid is the key and is not taken as link."""
    [not_permalink] = parse_feed(
        (CORPUS / "wellformed__rss__item_guid_not_permalink.xml").read_bytes(),
        url="https://example.org/rss.xml",
    )
    assert not_permalink.key == "http://guid.example.com/"
    assert not_permalink.link == ""

    [conflict] = parse_feed(
        (CORPUS / "wellformed__rss__item_guid_conflict_link.xml").read_bytes(),
        url="https://example.org/rss.xml",
    )
    assert conflict.key == "http://guid.example.com/"
    assert conflict.link == "http://link.example.com/"


def test_corpus_script_is_sanitised_out_of_the_lead() -> None:
    """feedparser's sanitizer plus the plain-text lead: no script text reaches a reader."""
    [s] = parse_feed(
        (CORPUS / "wellformed__sanitize__item_description_script_cdata.xml").read_bytes(),
        url="https://example.org/rss.xml",
    )
    assert s.lead == "safe description"
