"""bot.parse on the sample feeds, hand-made edge cases and the whole feedparser corpus."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest

from bot.model import ParsedDocument, Statement
from bot.parse import FeedFormatError, looks_like_html, parse_feed
from tests.conftest import CORPUS, DATA, SAMPLES

RSS_URL = "https://www.rusemb.org.uk/rss/statements.xml"
ATOM_URL = "https://www.rusemb.org.uk/atom/statements.xml"
SITE = "https://www.rusemb.org.uk/"
ODD = DATA / "odd"


def read(body: bytes, *, url: str, content_type: str | None = None) -> list[Statement]:
    """The statements of a document that must parse without skipped items or a guessed encoding."""
    document = parse_feed(body, url=url, content_type=content_type)
    assert document.skipped == ()
    assert not document.fallback_encoding
    return document.statements


def sample(name: str, url: str = RSS_URL) -> list[Statement]:
    return read((SAMPLES / name).read_bytes(), url=url, content_type="application/xml")


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
    atom = read(
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
    [s] = read(
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
    [s] = read(
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

    [s] = read(body, url="https://example.org/rss.xml")

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
    first = read(NO_ID_NO_LINK, url="https://example.org/rss.xml")
    again = read(NO_ID_NO_LINK, url="https://example.org/other.xml")

    assert [s.key for s in first] == [s.key for s in again]
    assert len({s.key for s in first}) == 2
    assert all(s.key for s in first)
    assert all(s.link == "" for s in first)


def test_hash_key_changes_with_the_date() -> None:
    """Two statements with the same title on different days are two statements."""
    a = read(
        rss("<item><title>Comment</title><pubDate>Mon, 25 Oct 2021 10:00:00 GMT</pubDate></item>"),
        url="https://example.org/rss.xml",
    )
    b = read(
        rss("<item><title>Comment</title><pubDate>Tue, 26 Oct 2021 10:00:00 GMT</pubDate></item>"),
        url="https://example.org/rss.xml",
    )

    assert a[0].key != b[0].key


def test_feed_without_dates_still_works() -> None:
    """A feed that gives no dates is read; published is None, the order is the feed's."""
    statements = read(
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
    [s] = read(
        rss(
            "<item><link>https://example.org/1</link>"
            "<description>The Embassy comments on the latest events.</description></item>"
        ),
        url="https://example.org/rss.xml",
    )

    assert s.title == "The Embassy comments on the latest events."


def test_feed_with_no_items_is_an_empty_list_not_an_error() -> None:
    """A real feed that lists nothing right now is simply empty."""
    assert read(rss(""), url="https://example.org/rss.xml") == []


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
        read(BOT_PROTECTION_PAGE, url=RSS_URL, content_type=content_type)


def test_xhtml_page_is_an_error_that_says_html() -> None:
    """An XHTML page is well-formed XML, but still not a feed."""
    page = (
        b'<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
        b"<head><title>Access denied</title></head><body><p>Access denied</p></body></html>"
    )
    with pytest.raises(FeedFormatError, match="HTML"):
        read(page, url=RSS_URL, content_type="application/xhtml+xml")


def test_feed_served_as_text_html_is_still_read() -> None:
    """A misconfigured host that labels a real feed text/html does not lose the feed."""
    body = (SAMPLES / "embassy-rss.xml").read_bytes()

    assert len(read(body, url=RSS_URL, content_type="text/html")) == 12


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
        read(body, url=RSS_URL)


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
            read(body, url=RSS_URL)


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
        read(cut, url=RSS_URL)


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
        read(page, url=RSS_URL, content_type="text/html")


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
        document = parse_feed(
            body, url="https://example.org/feeds/corpus.xml", content_type=content_type
        )
    except FeedFormatError as exc:
        assert str(exc)  # an operator reads this on the feed's row: it must say something
        assert "\n" not in str(exc)
        return

    assert isinstance(document, ParsedDocument)
    assert isinstance(document.statements, list)
    assert len({s.key for s in document.statements}) == len(document.statements)
    for s in document.statements:
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
    [not_permalink] = read(
        (CORPUS / "wellformed__rss__item_guid_not_permalink.xml").read_bytes(),
        url="https://example.org/rss.xml",
    )
    assert not_permalink.key == "http://guid.example.com/"
    assert not_permalink.link == ""

    [conflict] = read(
        (CORPUS / "wellformed__rss__item_guid_conflict_link.xml").read_bytes(),
        url="https://example.org/rss.xml",
    )
    assert conflict.key == "http://guid.example.com/"
    assert conflict.link == "http://link.example.com/"


def test_corpus_script_is_sanitised_out_of_the_lead() -> None:
    """feedparser's sanitizer plus the plain-text lead: no script text reaches a reader."""
    [s] = read(
        (CORPUS / "wellformed__sanitize__item_description_script_cdata.xml").read_bytes(),
        url="https://example.org/rss.xml",
    )
    assert s.lead == "safe description"


# ---- what parse_feed returns ----------------------------------------------------------


def test_parse_feed_returns_a_parsed_document() -> None:
    """A clean feed: its statements, nothing skipped, no problems, its encoding declared."""
    document = parse_feed((SAMPLES / "embassy-rss.xml").read_bytes(), url=RSS_URL)

    assert isinstance(document, ParsedDocument)
    assert len(document.statements) == 12
    assert document.skipped == ()
    assert document.problems == ()
    assert document.fallback_encoding is False


def test_a_date_no_format_reads_is_a_problem_not_an_error() -> None:
    document = parse_feed(
        rss(
            "<item><title>A</title><link>https://example.org/a</link>"
            "<pubDate>sometime next week</pubDate></item>"
            "<item><title>B</title><link>https://example.org/b</link>"
            "<pubDate>Mon, 25 Oct 2021 10:00:00 GMT</pubDate>"
            "</item>"
        ),
        url=RSS_URL,
    )

    assert [s.published is None for s in document.statements] == [True, False]
    assert document.problems == (
        ("https://example.org/a", "date 'sometime next week' could not be read"),
    )


# ---- looks_like_html: when the sources try feed autodiscovery -------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (BOT_PROTECTION_PAGE, "text/html; charset=UTF-8", True),
        (BOT_PROTECTION_PAGE, "application/rss+xml", True),  # the body decides first
        (BOT_PROTECTION_PAGE, None, True),
        (b"<p>An error occurred</p>", "text/html", True),  # a fragment, labelled HTML
        (b"<?xml version='1.0'?><html xmlns='http://www.w3.org/1999/xhtml'/>", None, True),
        ((SAMPLES / "embassy-rss.xml").read_bytes(), "text/html", False),  # mislabelled feed
        ((SAMPLES / "embassy-atom.xml").read_bytes(), "text/html", False),
        ((SAMPLES / "embassy-rss.xml").read_bytes(), "application/rss+xml", False),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": []}', "text/html", False),
        (b"Service unavailable", "text/plain", False),
    ],
    ids=["html", "html-as-rss", "html-no-type", "fragment", "xhtml", "rss-as-html",
         "atom-as-html", "rss", "json-as-html", "plain-text"],
)  # fmt: skip
def test_looks_like_html(body: bytes, content_type: str | None, expected: bool) -> None:
    assert looks_like_html(body, content_type) is expected


# ---- shared guids: two different posts under one guid (issue 8.7) ---------------------


def shared(*items: tuple[str, str, str]) -> bytes:
    """An RSS document whose items (title, link, date) all carry the guid "g"."""
    return rss(
        "".join(
            f"<item><title>{title}</title><guid isPermaLink='false'>g</guid>"
            + (f"<link>{link}</link>" if link else "")
            + (f"<pubDate>{date}</pubDate>" if date else "")
            + "</item>"
            for title, link, date in items
        )
    )


NEWER = ("Newer statement", "https://example.org/2", "Tue, 26 Oct 2021 10:00:00 GMT")
OLDER = ("Older statement", "https://example.org/1", "Mon, 25 Oct 2021 10:00:00 GMT")


def test_two_posts_sharing_a_guid_are_both_kept_under_keys_of_their_own() -> None:
    """Both are read; the oldest keeps the plain guid, the other gets guid#link."""
    statements = read(shared(NEWER, OLDER), url=RSS_URL)

    assert [(s.title, s.key) for s in statements] == [
        ("Newer statement", "g#https://example.org/2"),
        ("Older statement", "g"),
    ]


def test_a_newer_post_that_reuses_a_stored_guid_comes_under_a_new_key() -> None:
    """The stored post keeps its key (not taken as edited); the new one is new, so pushed."""
    first_poll = read(shared(OLDER), url=RSS_URL)
    second_poll = read(shared(NEWER, OLDER), url=RSS_URL)

    assert [s.key for s in first_poll] == ["g"]
    assert second_poll[1] == first_poll[0]
    assert second_poll[0].key not in {s.key for s in first_poll}


def test_shared_guid_in_a_feed_listed_oldest_first_keeps_the_same_keys() -> None:
    """The dates decide which post is the oldest, not where the feed puts it."""
    assert read(shared(OLDER, NEWER), url=RSS_URL) == list(
        reversed(read(shared(NEWER, OLDER), url=RSS_URL))
    )


def test_shared_guid_without_dates_keeps_it_for_the_lowest_item() -> None:
    statements = read(shared(("B", "https://example.org/b", ""), ("A", "https://example.org/a", "")), url=RSS_URL)  # fmt: skip

    assert [s.key for s in statements] == ["g#https://example.org/b", "g"]


def test_shared_guid_and_the_same_link_gets_a_hashed_key() -> None:
    """Same guid, same (or no) link: title and date tell the posts apart, stably."""
    same_link = (NEWER[0], OLDER[1], NEWER[2])
    statements = read(shared(same_link, OLDER), url=RSS_URL)
    again = read(shared(same_link, OLDER), url=RSS_URL)
    no_links = read(shared((NEWER[0], "", NEWER[2]), (OLDER[0], "", OLDER[2])), url=RSS_URL)

    assert statements[1].key == "g"
    assert statements[0].key.startswith("g#sha256:")
    assert [s.key for s in statements] == [s.key for s in again]
    assert no_links[1].key == "g" and no_links[0].key.startswith("g#sha256:")


def test_three_posts_sharing_a_guid_get_three_keys() -> None:
    third = ("Third", "https://example.org/3", "Wed, 27 Oct 2021 10:00:00 GMT")
    statements = read(shared(third, NEWER, OLDER), url=RSS_URL)

    assert len({s.key for s in statements}) == 3
    assert statements[2].key == "g"


def test_true_duplicates_collapse_to_one() -> None:
    """The same post twice (same guid and content) is one statement."""
    statements = read(shared(NEWER, NEWER, OLDER), url=RSS_URL)

    assert [s.title for s in statements] == ["Newer statement", "Older statement"]
    assert len({s.key for s in statements}) == 2


def test_items_sharing_a_link_without_guids_are_both_kept() -> None:
    """The same rule for link keys: a feed whose items all link to its home page."""
    statements = read(
        rss(
            "<item><title>Two</title><link>https://example.org/</link></item>"
            "<item><title>One</title><link>https://example.org/</link></item>"
        ),
        url=RSS_URL,
    )

    assert statements[1].key == "https://example.org/"
    assert statements[0].key.startswith("https://example.org/#sha256:")


# ---- leads: block boundaries and HTML escaped twice (issue 8.7) -----------------------


def test_table_cells_in_a_lead_are_not_glued_together() -> None:
    [s] = read(
        rss(
            "<item><title>A</title><guid>a</guid><description><![CDATA[<table><tr>"
            "<td>Cell one</td><td>Cell two</td></tr></table><dl><dt>Term</dt><dd>Meaning</dd>"
            "</dl>]]></description></item>"
        ),
        url=RSS_URL,
    )

    assert s.lead == "Cell one Cell two Term Meaning"


def test_reddit_atom_feed_that_escapes_html_twice_has_a_plain_lead() -> None:
    """reddit's Atom content, escaped once more than type="html" asks for."""
    body = (ODD / "reddit-atom-escaped-twice.xml").read_bytes()

    [twice, prose] = read(body, url="https://www.reddit.com/r/embassy/.rss")

    assert twice.lead == (
        "The embassy's statement on the talks: read it in full. submitted by /u/press_office "
        "[link] [comments]"
    )
    assert twice.title == "Statement on the talks"
    assert "<" not in twice.lead and "&lt;" not in twice.lead
    # Escaped once, as it should be, and it talks about a tag: it reads as written.
    assert prose.lead == "Use the <b> tag for bold text, says the style guide."


# ---- encodings (issues 8.7 and 9.8) ---------------------------------------------------


UNDECLARED = {
    "euc-kr": (
        ["대사관 성명: 양국 관계에 관한 외교부 장관의 발언", "영사과 업무 시간 변경 안내",
         "대통령의 국빈 방문 일정 발표"],
        "외교부 대변인은 오늘 정례 브리핑에서 양국 간의 협력 관계가 계속 발전하고 있다고 "
        "밝혔습니다. 대사관은 모든 국민에게 안전에 유의할 것을 당부합니다.",
    ),
    "gb2312": (
        ["大使馆关于两国关系的声明", "领事部工作时间调整的通知", "外交部发言人就国际局势答记者问"],
        "外交部发言人今天在例行记者会上表示，两国之间的合作关系正在不断发展。"  # noqa: RUF001
        "大使馆提醒所有公民注意安全，遵守当地法律法规。",  # noqa: RUF001
    ),
    "tis-620": (
        ["แถลงการณ์ของสถานเอกอัครราชทูตเกี่ยวกับความสัมพันธ์ระหว่างสองประเทศ",
         "ประกาศเปลี่ยนแปลงเวลาทำการของแผนกกงสุล",
         "โฆษกกระทรวงการต่างประเทศตอบคำถามผู้สื่อข่าว"],
        "โฆษกกระทรวงการต่างประเทศกล่าวในการแถลงข่าวประจำวันนี้ว่าความร่วมมือระหว่างสองประเทศ"
        "ยังคงพัฒนาอย่างต่อเนื่อง สถานเอกอัครราชทูตขอให้ประชาชนทุกคนระมัดระวังความปลอดภัย",
    ),
}  # fmt: skip


def items_of(titles: list[str], lead: str) -> str:
    return "".join(
        f"<item><title>{t}</title><link>https://example.org/{n}</link>"
        f"<description>{lead}</description></item>"
        for n, t in enumerate(titles)
    )


@pytest.mark.parametrize("codec", list(UNDECLARED))
@pytest.mark.parametrize("content_type", [None, "application/rss+xml", "text/xml"], ids=str)
def test_undeclared_legacy_encoding_is_detected(codec: str, content_type: str | None) -> None:
    """No XML declaration, no charset: the titles still read right (not mojibake)."""
    titles, lead = UNDECLARED[codec]
    body = (
        f'<rss version="2.0"><channel><title>News</title>{items_of(titles, lead)}</channel></rss>'
    )

    document = parse_feed(body.encode(codec), url=RSS_URL, content_type=content_type)

    assert [s.title for s in document.statements] == titles
    assert document.statements[0].lead == lead
    assert document.skipped == ()
    # Detected, not declared: a guess, so stored text is never overwritten from it.
    assert document.fallback_encoding is True


@pytest.mark.parametrize(
    ("codec", "declaration", "content_type"),
    [
        ("windows-1251", '<?xml version="1.0" encoding="windows-1251"?>', None),
        ("windows-1251", '<?xml version="1.0" encoding="windows-1251"?>', "text/xml"),
        ("koi8-r", "", "application/rss+xml; charset=KOI8-R"),
        ("euc-kr", '<?xml version="1.0" encoding="euc-kr"?>', "application/xml"),
        ("utf-8", "", None),
        ("utf-8", "", "text/xml"),  # RFC 3023 says us-ascii; the document is plainly UTF-8
        ("utf-8", '<?xml version="1.0"?>', "text/html"),
        ("utf-16", '<?xml version="1.0" encoding="utf-16"?>', None),
        ("utf-8-sig", "", None),
    ],
)
def test_declared_encoding_is_read_and_is_no_guess(
    codec: str, declaration: str, content_type: str | None
) -> None:
    title = "Заявление посольства" if codec not in ("euc-kr",) else "대사관 성명"
    body = f'{declaration}<rss version="2.0"><channel><title>T</title>{items_of([title], title)}</channel></rss>'  # fmt: skip

    document = parse_feed(body.encode(codec), url=RSS_URL, content_type=content_type)

    assert [s.title for s in document.statements] == [title]
    assert document.fallback_encoding is False


CYRILLIC_TITLES = ["Заявление посольства", "Комментарий пресс-службы", "Ответ на вопрос СМИ"]


def cyrillic_feed(declaration: str, *, bad: bytes) -> bytes:
    """A UTF-8 Cyrillic RSS feed of 3 items; `bad` is spliced into the second item's title."""
    items = items_of(CYRILLIC_TITLES, "Посольство России в Великобритании.").encode()
    broken = "Комментарий".encode()
    items = items.replace(broken, broken + bad, 1)
    return (
        declaration.encode()
        + b'<rss version="2.0"><channel><title>T</title>'
        + items
        + (b"</channel></rss>")
    )


@pytest.mark.parametrize(
    ("declaration", "content_type"),
    [
        ('<?xml version="1.0" encoding="utf-8"?>', None),
        ('<?xml version="1.0" encoding="UTF-8"?>', "application/rss+xml"),
        ('<?xml version="1.0" encoding="utf-8"?>', "text/xml"),
        ("", "application/rss+xml; charset=utf-8"),
        ("\ufeff", None),  # a byte order mark
        ("", None),  # nothing declared: XML's default is UTF-8
        ('<?xml version="1.0"?>', "text/html"),
    ],
    ids=["declaration", "declaration-rss-type", "text-xml", "charset", "bom", "nothing",
         "text-html"],
)  # fmt: skip
def test_one_bad_byte_is_replaced_in_its_item_only(
    declaration: str, content_type: str | None
) -> None:
    """Issue 9.8: one \\xff byte no longer turns every Cyrillic title into mojibake."""
    document = parse_feed(cyrillic_feed(declaration, bad=b"\xff"), url=RSS_URL, content_type=content_type)  # fmt: skip

    titles = [s.title for s in document.statements]
    assert titles == [CYRILLIC_TITLES[0], "Комментарий\ufffd пресс-службы", CYRILLIC_TITLES[2]]
    assert all(s.lead == "Посольство России в Великобритании." for s in document.statements)
    assert document.fallback_encoding is False  # the rest of the text is exactly right
    assert document.skipped == ()
    assert document.problems == (
        ("https://example.org/1", "bytes that are not UTF-8 were replaced by \ufffd"),
    )


def test_a_few_bad_bytes_in_a_long_utf8_feed_are_replaced_one_by_one() -> None:
    body = cyrillic_feed("", bad=b"\xc0\xff\xfe")

    [_, second, _] = parse_feed(body, url=RSS_URL).statements

    assert second.title.startswith("Комментарий\ufffd\ufffd\ufffd")


def test_a_feed_declared_utf8_but_written_in_windows_1251_is_read_as_a_guess() -> None:
    """A wrong declaration: not UTF-8 with a bad byte but another encoding altogether."""
    lead = "Посольство России в Великобритании сообщает о работе."  # noqa: RUF001
    titles = CYRILLIC_TITLES
    body = f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>{items_of(titles, lead)}</channel></rss>'  # fmt: skip

    document = parse_feed(body.encode("windows-1251"), url=RSS_URL)

    assert [s.title for s in document.statements] == titles
    assert document.fallback_encoding is True


def test_a_declared_legacy_encoding_with_a_bad_byte_replaces_only_that_byte() -> None:
    """windows-1251 has one byte it cannot read (0x98): the rest stays Cyrillic."""
    body = (
        '<?xml version="1.0" encoding="windows-1251"?><rss version="2.0"><channel><title>T'
        f"</title>{items_of(CYRILLIC_TITLES, 'Текст.')}</channel></rss>"
    ).encode("windows-1251")
    body = body.replace("Комментарий".encode("windows-1251"), "Комментарий".encode("windows-1251") + b"\x98")  # fmt: skip

    document = parse_feed(body, url=RSS_URL)

    assert [s.title for s in document.statements] == [
        CYRILLIC_TITLES[0], "Комментарий\ufffd пресс-службы", CYRILLIC_TITLES[2],
    ]  # fmt: skip
    assert document.fallback_encoding is False


def test_feedparser_encoding_override_marks_the_document_as_a_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should feedparser still decode through a fallback encoding, stored text is kept."""
    import feedparser
    from feedparser.exceptions import CharacterEncodingOverride

    real_parse = feedparser.parse

    def overriding(*args: object, **kwargs: object) -> object:
        result = real_parse(*args, **kwargs)  # type: ignore[arg-type]
        result["bozo"] = True
        result["bozo_exception"] = CharacterEncodingOverride("declared utf-8, parsed as cp1252")
        return result

    monkeypatch.setattr(feedparser, "parse", overriding)

    document = parse_feed((SAMPLES / "embassy-rss.xml").read_bytes(), url=RSS_URL)

    assert len(document.statements) == 12
    assert document.fallback_encoding is True


# ---- character references no text can hold (issue 9.9) --------------------------------


def three_items(bad_title: str, *, atom: bool = False) -> bytes:
    titles = ["First", bad_title, "Third"]
    if atom:
        entries = "".join(
            f"<entry><id>e{n}</id><title>{t}</title><link href='https://example.org/{n}'/>"
            "<updated>2021-10-25T10:00:00Z</updated></entry>"
            for n, t in enumerate(titles, start=1)
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>T</title><id>f</id><updated>2021-10-25T10:00:00Z</updated>{entries}</feed>"
        ).encode()
    return rss(
        "".join(
            f"<item><title>{t}</title><guid>g{n}</guid><description>About {t}</description></item>"
            for n, t in enumerate(titles, start=1)
        )
    )


@pytest.mark.parametrize(
    "ref", ["&#xD800;", "&#xdfff;", "&#55296;", "&#0;", "&#x0;", "&#x110000;", "&#99999999999;"]
)
@pytest.mark.parametrize("atom", [False, True], ids=["rss", "atom"])
def test_an_item_with_an_impossible_character_reference_is_skipped(
    ref: str, atom: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9.9: the good items are read; the bad one is skipped and listed.

    The poller logs each skipped line once, with the feed's name; the parser adds no other.
    """
    with caplog.at_level("INFO", logger="bot"):
        document = parse_feed(three_items(f"Bad {ref} one", atom=atom), url=RSS_URL)

    assert [s.title for s in document.statements] == ["First", "Third"]
    assert document.skipped == (f"item 2 ('Bad \ufffd one'): unreadable character reference {ref}",)
    assert caplog.records == []


def test_an_impossible_reference_outside_any_item_becomes_a_replacement_character() -> None:
    body = rss(
        "<item><title>A</title><guid>a</guid></item>", channel="<title>News &#xD800;</title>"
    )

    document = parse_feed(body, url=RSS_URL)

    assert [s.title for s in document.statements] == ["A"]
    assert document.skipped == ()


def test_a_reference_inside_cdata_is_text_not_a_reason_to_skip() -> None:
    """In CDATA "&#xD800;" is just characters: feedparser reads it fine, the item stays."""
    [s] = read(
        rss("<item><title>A</title><guid>a</guid><description><![CDATA[x &#xD800; y]]>"
            "</description></item>"),
        url=RSS_URL,
    )  # fmt: skip

    assert s.lead == "x \ufffd y"


def test_a_control_character_reference_is_dropped_and_its_item_kept() -> None:
    """&#x1; or a vertical tab pasted from a word processor: no reason to lose the item."""
    [s] = read(rss("<item><title>Tab&#11;bed &#x1;title</title><guid>a</guid></item>"), url=RSS_URL)

    assert s.title == "Tab bed title"


def test_many_bad_items_are_each_listed() -> None:
    body = rss(
        "".join(
            f"<item><title>T{n}{'&#xD800;' if n % 2 else ''}</title><guid isPermaLink='false'>g{n}"
            "</guid></item>"
            for n in range(1, 7)
        )
    )

    document = parse_feed(body, url=RSS_URL)

    assert [s.key for s in document.statements] == ["g2", "g4", "g6"]
    assert [line.split(" (")[0] for line in document.skipped] == ["item 1", "item 3", "item 5"]


# ---- JSON Feed dispatch ---------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["application/feed+json", "application/json", None, "text/plain"], ids=str
)
def test_json_feed_is_read_by_content_type_or_its_first_byte(content_type: str | None) -> None:
    body = (
        b' \n{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1", "title": "A"}]}'
    )

    [s] = read(body, url="https://example.org/feed.json", content_type=content_type)

    assert (s.key, s.title) == ("1", "A")


def test_xml_served_as_json_is_still_read_as_xml() -> None:
    assert len(read((SAMPLES / "embassy-rss.xml").read_bytes(), url=RSS_URL, content_type="application/json")) == 12  # fmt: skip


def test_a_reference_with_thousands_of_digits_is_skipped_not_a_crash() -> None:
    document = parse_feed(three_items("Bad &#" + "9" * 5000 + "; one"), url=RSS_URL)

    assert [s.title for s in document.statements] == ["First", "Third"]
    assert len(document.skipped) == 1


def test_finding_bad_references_in_a_big_cut_off_document_stays_fast() -> None:
    """Items that never close must not make the scan quadratic (feedparser's time aside)."""
    import time

    from bot.parse import _drop_unreadable_items

    text = "<rss><channel>" + "<item><title>T &#xD800;</title>" * 50_000

    started = time.perf_counter()
    _, skipped, _ = _drop_unreadable_items(text)
    assert time.perf_counter() - started < 1
    assert skipped == []  # no item closes, so none is dropped: the cut-off check rejects it


def test_a_problem_follows_its_statement_to_its_own_key() -> None:
    """A post re-keyed for a shared guid keeps its problems, under the key it ends up with."""
    document = parse_feed(shared((NEWER[0], NEWER[1], "soon"), OLDER), url=RSS_URL)

    assert [s.key for s in document.statements] == ["g#https://example.org/2", "g"]
    # Undated, so the dated one is the oldest it can tell.
    assert document.problems == (("g#https://example.org/2", "date 'soon' could not be read"),)
