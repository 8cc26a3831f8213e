"""JSON Feed 1.0 and 1.1 (bot.jsonfeed), read through parse_feed like RSS and Atom."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.model import ParsedDocument, Statement
from bot.parse import FeedFormatError, parse_feed
from tests.conftest import DATA

ODD = DATA / "odd"
FEED_URL = "https://www.rusemb.org.uk/feeds/statements.json"
SITE = "https://www.rusemb.org.uk/"
VERSION = "https://jsonfeed.org/version/1.1"


def read_file(name: str, content_type: str | None = "application/feed+json") -> ParsedDocument:
    return parse_feed((ODD / name).read_bytes(), url=FEED_URL, content_type=content_type)


def feed(*items: Any, **fields: Any) -> bytes:
    document = {"version": VERSION, "title": "T", "items": list(items), **fields}
    # Raw UTF-8 (so tests can splice bytes in); a lone surrogate stays a "\ud800" escape.
    return json.dumps(document, ensure_ascii=False).encode("utf-8", "backslashreplace")


def read(*items: Any) -> list[Statement]:
    document = parse_feed(feed(*items), url=FEED_URL, content_type="application/feed+json")
    assert document.skipped == ()
    return document.statements


def test_json_feed_1_1_reads_like_rss() -> None:
    """The sample: ids, links, dates in UTC, leads; a bad item skipped, the rest kept."""
    document = read_file("jsonfeed-1.1.json")
    by_title = {s.title: s for s in document.statements}

    first = document.statements[0]
    assert first == Statement(
        key="https://www.rusemb.org.uk/fnapr/7012",
        title="President Putin's telephone conversation with British Prime Minister Boris Johnson",
        link=SITE + "fnapr/7012",
        published=datetime(2021, 10, 25, 18, 40, tzinfo=UTC),  # date_published, not modified
        lead="The two leaders discussed the state of bilateral relations.",  # summary first
        full_html="<p>Full text: <b>the two leaders</b> discussed&hellip;</p>",  # for Telegraph
    )
    assert [s.title for s in document.statements] == [
        first.title,
        "The President spoke at the final plenary session of the Valdai Club.",  # no title
        "Table of consular fees",
        "Comment by the Press Office",
        "Linkless statement",
        "A linkblog post",
    ]
    valdai = document.statements[1]
    assert valdai.key == "7011"  # a numeric id is read as a string, as the spec says
    assert valdai.published == datetime(2021, 10, 21, 18, 0, tzinfo=UTC)  # date_modified
    fees = by_title["Table of consular fees"]
    assert fees.key == fees.link == SITE + "fnapr/7010"  # no id: the url
    assert fees.lead == "Visa £50 From 1 November."  # content_html as text, cells apart
    assert fees.published == datetime(2021, 10, 20, 9, 0, tzinfo=UTC)  # no offset: UTC
    comment = by_title["Comment by the Press Office"]
    assert comment.link == ""  # javascript: is never a link
    assert comment.key.startswith("sha256:")  # no id, no link: title and date
    assert comment.published == datetime(2021, 10, 19, 11, 0, 0, 500000, tzinfo=UTC)
    linkless = by_title["Linkless statement"]
    assert (linkless.key, linkless.link, linkless.published) == ("7008", "", None)
    assert by_title["A linkblog post"].link == "https://example.com/elsewhere"  # external_url
    assert document.skipped == ("item 5: title is a number, not a string",)
    assert document.problems == (
        ("7008", "date_published 'yesterday afternoon' could not be read"),
    )
    assert document.fallback_encoding is False


def test_relative_urls_resolve_against_the_feeds_own_address() -> None:
    """home_page_url and feed_url name an old host: the address the feed came from counts."""
    statements = read_file("jsonfeed-1.1.json").statements

    assert statements[0].link == SITE + "fnapr/7012"  # "/fnapr/7012"
    assert statements[1].link == SITE + "feeds/fnapr/7011"  # "fnapr/7011"
    assert all("old-site" not in s.link for s in statements)


def test_json_feed_1_0() -> None:
    [s] = read_file("jsonfeed-1.0.json", content_type="application/json").statements

    assert s.key == "tag:rusemb.org.uk,2021:7012"
    assert s.title == "Consular Section: visa appointments & processing times (<15 working days)"
    assert s.lead == "Standard applications: <15 working days."
    assert s.published == datetime(2021, 10, 25, 18, 40, tzinfo=UTC)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream"], ids=str)
def test_json_feed_is_recognised_by_its_first_byte(content_type: str | None) -> None:
    assert len(read_file("jsonfeed-1.1.json", content_type=content_type).statements) == 6


def test_lead_is_summary_else_content_text_else_content_html() -> None:
    both = {"summary": "Summary.", "content_text": "Text.", "content_html": "<p>HTML.</p>"}
    statements = read(
        {"id": "1", "title": "A", **both},
        {"id": "2", "title": "B", "content_text": "Text.", "content_html": "<p>HTML.</p>"},
        {"id": "3", "title": "C", "content_html": "<p>HTML&nbsp;<b>bold</b></p>"},
        {"id": "4", "title": "D", "summary": "  ", "content_text": "Text."},
        {"id": "5", "title": "E"},
    )

    assert [s.lead for s in statements] == ["Summary.", "Text.", "HTML bold", "Text.", ""]


def test_untitled_item_takes_its_title_from_the_lead() -> None:
    [with_lead, bare] = read({"id": "1", "content_text": "The Embassy comments."}, {"id": "2"})

    assert with_lead.title == "The Embassy comments."
    assert bare.title == "(untitled)"


def test_keys_follow_id_then_url_then_a_hash() -> None:
    a, b, c = read(
        {"id": " x-1 ", "url": "https://example.org/1", "title": "A"},
        {"url": "https://example.org/2", "title": "B"},
        {"title": "C", "date_published": "2021-10-25T10:00:00Z"},
    )
    [c_again] = read({"title": "C", "date_published": "2021-10-25T10:00:00Z"})

    assert (a.key, b.key) == ("x-1", "https://example.org/2")
    assert c.key.startswith("sha256:") and c.key == c_again.key


def test_shared_ids_get_keys_of_their_own_like_rss() -> None:
    newer = {"id": "g", "url": "https://example.org/2", "title": "Newer",
             "date_published": "2021-10-26T10:00:00Z"}  # fmt: skip
    older = {"id": "g", "url": "https://example.org/1", "title": "Older",
             "date_published": "2021-10-25T10:00:00Z"}  # fmt: skip

    statements = read(newer, older, older)

    assert [(s.title, s.key) for s in statements] == [
        ("Newer", "g#https://example.org/2"),
        ("Older", "g"),
    ]


@pytest.mark.parametrize(
    "link", ["javascript:alert(1)", "data:text/html,<b>x</b>", "mailto:a@b.c", "http://[bad"]
)
def test_links_that_are_not_http_are_dropped(link: str) -> None:
    [s] = read({"id": "1", "title": "A", "url": link})

    assert s.link == ""
    assert s.key == "1"


def test_html_escaped_title_reads_as_characters() -> None:
    """Publishers escape plain-text titles anyway (WordPress: &#8217;): the reader sees the quote."""
    [s, prose] = read(
        {"id": "1", "title": "The Minister&#8217;s Q&amp;A"},
        {"id": "2", "title": "AT&T and <b> in prose", "summary": "&lt;p&gt;Escaped&lt;/p&gt;"},
    )

    assert s.title == "The Minister\u2019s Q&A"
    assert prose.title == "AT&T and <b> in prose"
    assert prose.lead == "Escaped"


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ("not an object", "an item is a JSON object, not a string"),
        (None, "an item is a JSON object, not null"),
        ([1, 2], "an item is a JSON object, not a list"),
        ({"id": True, "title": "A"}, "id is true/false, not a string"),
        ({"id": "1", "title": ["A"]}, "title is a list, not a string"),
        ({"id": "1", "url": 5}, "url is a number, not a string"),
        ({"id": "1", "summary": {"text": "x"}}, "summary is an object, not a string"),
        ({"id": "1", "date_published": 1635156000}, "date_published is a number, not a string"),
        ({"id": "1", "title": "Bad \ud800 title"}, "unreadable character in title (a lone surrogate escape)"),
    ],
    ids=["string", "null", "list", "bool-id", "list-title", "number-url", "object-summary",
         "number-date", "surrogate"],
)  # fmt: skip
def test_one_bad_item_is_skipped_and_the_rest_read(
    item: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = feed({"id": "a", "title": "Good one"}, item, {"id": "c", "title": "Good two"})

    with caplog.at_level("INFO", logger="bot"):
        document = parse_feed(body, url=FEED_URL)

    assert [s.title for s in document.statements] == ["Good one", "Good two"]
    [line] = document.skipped
    assert line.startswith("item 2") and line.endswith(f": {reason}")
    assert caplog.records == []  # the poller logs each skipped line once, with the feed's name


def test_skipped_item_is_named_by_its_title_when_it_has_one() -> None:
    document = parse_feed(feed({"id": "x", "title": "Named", "url": 7}), url=FEED_URL)

    assert document.skipped == ("item 1 ('Named'): url is a number, not a string",)


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b'{"version": "https://jsonfeed.org/version/1.1", "items": [}',
        b'{"version": "https://jsonfeed.org/version/1.1", "items": []} trailing',
        b'{"error": "rate limited", "retry": 30}',
        b'{"version": "2.0", "items": []}',
        b'{"version": 1, "items": []}',
        b'{"version": "https://jsonfeed.org/version/1.1"}',
        b'{"version": "https://jsonfeed.org/version/1.1", "items": {"id": "1"}}',
        b'{"version": "https://jsonfeed.org/version/1.1", "items": null}',
        b'["https://jsonfeed.org/version/1.1"]',
        b"{" + b'"a":[' * 100_000,
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b"\xff\xfe{\x00",
    ],
    ids=["brace", "broken", "trailing", "other-json", "other-version", "number-version",
         "no-items", "items-object", "items-null", "array", "deep-unclosed", "deep",
         "utf16-junk"],
)  # fmt: skip
def test_documents_that_are_not_json_feeds_are_one_line_format_errors(body: bytes) -> None:
    with pytest.raises(FeedFormatError) as caught:
        parse_feed(body, url=FEED_URL, content_type="application/json")

    message = str(caught.value)
    assert message and "\n" not in message and len(message) < 300


def test_empty_items_is_an_empty_feed() -> None:
    document = parse_feed(feed(), url=FEED_URL)

    assert document == ParsedDocument(statements=[])


def test_an_invalid_utf8_byte_is_replaced_in_its_item_only() -> None:
    body = feed({"id": "1", "title": "Заявление"}, {"id": "2", "title": "Комментарий"})
    body = body.replace("Комментарий".encode(), "Комментарий".encode() + b"\xff")

    document = parse_feed(body, url=FEED_URL)

    assert [s.title for s in document.statements] == ["Заявление", "Комментарий\ufffd"]
    assert document.problems == (("2", "bytes that are not UTF-8 were replaced by \ufffd"),)
    assert document.fallback_encoding is False


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-32"])
def test_json_in_any_unicode_encoding_is_read(codec: str) -> None:
    body = json.dumps(
        {"version": VERSION, "items": [{"id": "1", "title": "Заявление"}]}, ensure_ascii=False
    ).encode(codec)

    [s] = parse_feed(body, url=FEED_URL, content_type="application/feed+json").statements

    assert s.title == "Заявление"


def test_dates_are_aware_utc() -> None:
    statements = read(
        {"id": "1", "date_published": "2021-10-25T21:40:00+03:00"},
        {"id": "2", "date_published": "2021-10-25T18:40:00Z"},
        {"id": "3", "date_published": "2021-10-25"},
        {"id": "4", "date_published": "not a date", "date_modified": "2021-10-25T18:40:00Z"},
    )

    assert [s.published for s in statements] == [
        datetime(2021, 10, 25, 18, 40, tzinfo=UTC),
        datetime(2021, 10, 25, 18, 40, tzinfo=UTC),
        datetime(2021, 10, 25, 0, 0, tzinfo=UTC),
        datetime(2021, 10, 25, 18, 40, tzinfo=UTC),  # the readable date_modified
    ]
    assert all(s.published is None or s.published.tzinfo is UTC for s in statements)
