"""bot.page: HTML list pages, statement pages and feed discovery, on sample pages and snippets."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.model import PageSpec, ParsedDocument
from bot.page import (
    article_text,
    date_format_problem,
    decode_html,
    discover_feeds,
    parse_list_page,
    selector_problem,
)
from bot.parse import FeedFormatError, entry_to_statement
from tests.conftest import DATA, SAMPLES

PAGES = DATA / "pages"
LONDON = ZoneInfo("Europe/London")
LIST_URL = "https://www.rusemb.org.uk/apress_arh/"
SITE = "https://www.rusemb.org.uk/"
# The [feeds.page] block for the sample list page, as an admin would write it.
EMBASSY = PageSpec(
    item="div.news-item",
    title="a.title",
    link="a.title::attr(href)",
    date="span.date",
    date_formats=("%d.%m.%Y",),
    lead="div.lead",
)
SIMPLE = PageSpec(item="li", date="span", lead="p")


def read(
    body: bytes | str,
    spec: PageSpec = SIMPLE,
    *,
    url: str = LIST_URL,
    content_type: str | None = "text/html",
    timezone: ZoneInfo = LONDON,
) -> ParsedDocument:
    data = body.encode() if isinstance(body, str) else body
    return parse_list_page(data, url=url, content_type=content_type, spec=spec, timezone=timezone)


def page(items: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head>{head}</head><body><ul>{items}</ul></body></html>"


def london_midnight_utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=LONDON).astimezone(UTC)


# ---- the sample list page -------------------------------------------------------------------


def test_sample_list_gives_its_ten_statements_in_page_order() -> None:
    parsed = read((SAMPLES / "embassy-list.html").read_bytes(), EMBASSY)
    assert [s.link for s in parsed.statements] == [
        f"{SITE}fnapr/{n}" for n in (7012, 7011, 7010, 7009, 7008, 7007, 7006, 7005, 7004, 7003)
    ]
    assert parsed.skipped == ()
    assert parsed.problems == ()
    assert parsed.fallback_encoding is False


def test_sample_list_statement_reads_as_the_site_shows_it() -> None:
    first = read((SAMPLES / "embassy-list.html").read_bytes(), EMBASSY).statements[0]
    assert first.key == first.link == "https://www.rusemb.org.uk/fnapr/7012"
    assert first.title == (
        "President Putin's telephone conversation with British Prime Minister Boris Johnson"
    )
    assert first.published == datetime(2021, 10, 24, 23, 0, tzinfo=UTC)  # midnight BST
    assert first.lead.startswith("On October 25, 2021 President of the Russian Federation")


def test_sample_list_text_is_plain_with_entities_decoded_and_paragraphs_apart() -> None:
    statements = read((SAMPLES / "embassy-list.html").read_bytes(), EMBASSY).statements
    by_id = {s.link.rsplit("/", 1)[1]: s for s in statements}
    assert by_id["7009"].title.startswith("Foreign Minister Sergey Lavrov\u2019s answers")
    assert by_id["7008"].lead.endswith("bilateral meetings & the Security Council events.")
    assert by_id["7010"].lead == (
        "The Moscow format unites Afghanistan with all its neighbours and other influential "
        "states of the region. The Minister regretted that the US delegation did not take part."
    )
    assert by_id["7009"].lead.startswith("Question: Are the measures")
    assert "? Sergey Lavrov: Yes" in by_id["7009"].lead  # <br> is a space, not glue


def test_sample_list_dates_are_london_midnights_in_utc() -> None:
    statements = read((SAMPLES / "embassy-list.html").read_bytes(), EMBASSY).statements
    assert [s.published for s in statements[4:6]] == [london_midnight_utc(2021, 9, 27)] * 2
    assert statements[-1].published == london_midnight_utc(2021, 7, 23)
    assert all(s.published and s.published.tzinfo is UTC for s in statements)


def test_sample_list_is_read_the_same_without_title_and_link_selectors() -> None:
    """Defaults: the item's first link that shows text is the title, its href the link."""
    spec = PageSpec(item="div.news-item", date="span.date", lead="div.lead")
    data = (SAMPLES / "embassy-list.html").read_bytes()
    assert read(data, spec).statements == read(data, EMBASSY).statements


def test_sample_list_copies_in_config_and_tests_are_the_same() -> None:
    config = Path(__file__).parent.parent / "config" / "samples"
    for name in ("embassy-list.html", "embassy-article-7012.html"):
        assert (config / name).read_bytes() == (SAMPLES / name).read_bytes(), name


# ---- encodings ------------------------------------------------------------------------------

CP1251_SPEC = PageSpec(item="ul.news li", date="a", lead="p")
RUS_URL = "https://rus.rusemb.org.uk/apress_arh/"


def test_windows_1251_page_declared_in_meta_http_equiv_reads_as_russian() -> None:
    parsed = read((PAGES / "embassy-list-cp1251.html").read_bytes(), CP1251_SPEC, url=RUS_URL)
    first = parsed.statements[0]
    assert first.title.startswith("Телефонный разговор Президента России")
    assert first.lead.endswith("Соединённого Королевства Борисом Джонсоном.")
    assert "«Валдай»" in parsed.statements[1].title
    assert parsed.fallback_encoding is False


def test_windows_1251_page_declared_only_in_the_http_header_reads_as_russian() -> None:
    body = page(
        "<li><span>25.10.2021</span> <a href='/fnapr/7012'>Заявление посольства</a>"
        "<p>Посольство заявляет — ещё раз.</p></li>"
    ).encode("cp1251")
    parsed = read(body, content_type="text/html; charset=windows-1251")
    assert parsed.statements[0].title == "Заявление посольства"
    assert parsed.statements[0].lead == "Посольство заявляет — ещё раз."
    assert parsed.fallback_encoding is False


def test_the_http_header_wins_over_a_meta_declaration() -> None:
    body = page("<li><a href='/x'>Заявление</a></li>", head='<meta charset="utf-8">').encode(
        "cp1251"
    )
    assert read(body, content_type="text/html; charset=cp1251").statements[0].title == "Заявление"


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ('<meta charset="windows-1251"><p>Посольство</p>'.encode("cp1251"), None, "Посольство"),
        ('<meta charset="koi8-r"><p>Посольство</p>'.encode("koi8-r"), "text/html", "Посольство"),
        (b"\xef\xbb\xbf<p>\xd0\x9f\xd0\xbe</p>", "text/html; charset=windows-1251", "По"),  # BOM
        ("<p>Посольство</p>".encode("utf-16"), None, "Посольство"),  # BOM
        ("<p>Посольство</p>".encode(), None, "Посольство"),  # undeclared: UTF-8
        # A page in ASCII markup cannot be UTF-16 whatever its meta says: read as UTF-8.
        ('<meta charset="utf-16"><p>Посольство</p>'.encode(), None, "Посольство"),
        (
            '<?xml version="1.0" encoding="windows-1251"?><p>Посольство</p>'.encode("cp1251"),
            None,
            "Посольство",
        ),
    ],
)
def test_decode_html_honours_bom_header_and_meta(
    body: bytes, content_type: str | None, expected: str
) -> None:
    assert expected in decode_html(body, content_type)
    assert "\ufeff" not in decode_html(body, content_type)


def test_undeclared_non_utf8_bytes_are_replaced_and_flagged_as_a_fallback() -> None:
    body = page("<li><a href='/x'>Заявление</a></li>").encode("cp1251")
    assert "\ufffd" in decode_html(body, "text/html")
    parsed = read(body)
    assert parsed.statements[0].link == f"{SITE}x"  # the item still counts
    assert parsed.fallback_encoding is True  # but its text must not overwrite stored text


# ---- links ----------------------------------------------------------------------------------


def test_relative_links_resolve_against_the_page_url() -> None:
    parsed = read(
        page("<li><a href='../fnapr/1'>A</a></li><li><a href='2'>B</a></li>"),
        url="https://example.org/news/list/",
    )
    assert [s.link for s in parsed.statements] == [
        "https://example.org/news/fnapr/1",
        "https://example.org/news/list/2",
    ]


def test_relative_links_resolve_against_base_href_which_itself_may_be_relative() -> None:
    items = "<li><a href='fnapr/1'>A</a></li>"
    absolute = read(page(items, head="<base href='https://cdn.example.net/en/'>"))
    relative = read(page(items, head="<base href='/en/'>"), url="https://example.org/news/")
    assert absolute.statements[0].link == "https://cdn.example.net/en/fnapr/1"
    assert relative.statements[0].link == "https://example.org/en/fnapr/1"


@pytest.mark.parametrize(
    "href",
    [
        "javascript:void(0)",
        " JavaScript:open('x') ",
        "mailto:press@example.org",
        "#",
        "",
        "data:text/html,hi",
        "ftp://example.org/x",
    ],
)
def test_links_that_are_not_http_are_dropped_and_the_key_is_a_hash(href: str) -> None:
    parsed = read(page(f'<li><span>25.10.2021</span> <a href="{href}">Statement</a></li>'))
    statement = parsed.statements[0]
    assert statement.link == ""
    assert statement.title == "Statement"
    assert statement.key.startswith("sha256:")


def test_hash_key_is_the_same_as_a_feeds_for_the_same_title_and_date() -> None:
    statement = read(
        page("<li><span>25.10.2021</span> <b>Statement</b></li>"),
        PageSpec(item="li", title="b", date="span"),
    ).statements[0]
    published = london_midnight_utc(2021, 10, 25)
    basis = f"Statement\n{published.isoformat()}"
    assert statement.key == "sha256:" + hashlib.sha256(basis.encode()).hexdigest()
    feed_entry = {"title": "Statement", "published_parsed": published.utctimetuple()}
    assert entry_to_statement(feed_entry, LIST_URL).key == statement.key


def test_whitespace_inside_an_href_is_ignored_as_browsers_do() -> None:
    statement = read(page("<li><a href='\n  /fnapr/\n7012  '>A</a></li>")).statements[0]
    assert statement.link == f"{SITE}fnapr/7012"


def test_link_defaults_to_the_title_element_then_the_items_first_link() -> None:
    items = (
        "<li><a href='/photo/1'><img src='p.jpg'></a><a href='/fnapr/1'>First</a></li>"
        "<li><h3 class='t'><a href='/fnapr/2'>Second</a></h3><a href='/other'>more</a></li>"
        "<li><a href='/fnapr/3'>more</a><h3 class='t'>Third</h3></li>"
    )
    default = read(page(items))
    assert [(s.title, s.link) for s in default.statements] == [
        ("First", f"{SITE}fnapr/1"),  # the first link that shows text
        ("Second", f"{SITE}fnapr/2"),
        ("more", f"{SITE}fnapr/3"),
    ]
    titled = read(page(items), PageSpec(item="li", title="h3.t"))
    assert [(s.title, s.link) for s in titled.statements][1:] == [
        ("Second", f"{SITE}fnapr/2"),  # the title's own link, not the item's later one
        ("Third", f"{SITE}fnapr/3"),  # a title without a link: the item's first link
    ]


def test_link_of_a_text_title_selector_is_its_elements_href() -> None:
    items = "<li><a href='/other'>x</a> <a class='t' href='/fnapr/9'>Title</a></li>"
    statement = read(page(items), PageSpec(item="li", title="a.t::text")).statements[0]
    assert (statement.title, statement.link) == ("Title", f"{SITE}fnapr/9")


def test_link_selector_may_name_an_element_or_an_attribute() -> None:
    items = "<li><a href='/a'>A</a> <a class='more' href='/fnapr/5' data-url='/alt/5'>more</a></li>"
    for selector, expected in [("a.more", "fnapr/5"), ("a.more::attr(data-url)", "alt/5")]:
        spec = PageSpec(item="li", link=selector)
        assert read(page(items), spec).statements[0].link == SITE + expected


def test_an_item_that_is_itself_the_link() -> None:
    body = "<div class='list'><a class='row' href='/fnapr/1'><b>Title</b> <i>lead</i></a></div>"
    spec = PageSpec(item="a.row", title="b", lead="i")
    statement = read(body, spec).statements[0]
    assert (statement.title, statement.link, statement.lead) == ("Title", f"{SITE}fnapr/1", "lead")


def test_a_title_opened_by_javascript_does_not_borrow_another_link() -> None:
    """Its key must not become the item's tag link, which every item shares."""
    items = "".join(
        f"<li><a href=\"javascript:open('/fnapr/{n}')\">Title {n}</a> <a href='/tags/uk'>UK</a></li>"
        for n in (1, 2)
    )
    statements = read(page(items)).statements
    assert [(s.title, s.link) for s in statements] == [("Title 1", ""), ("Title 2", "")]
    assert statements[0].key != statements[1].key


# ---- dates ----------------------------------------------------------------------------------


def test_a_date_no_format_reads_is_a_problem_not_a_failure() -> None:
    parsed = read(
        page(
            "<li><span>32.13.2021</span> <a href='/fnapr/1'>A</a></li>"
            "<li><span>25.10.2021</span> <a href='/fnapr/2'>B</a></li>"
        )
    )
    assert [s.published for s in parsed.statements] == [None, london_midnight_utc(2021, 10, 25)]
    assert parsed.problems == (
        (f"{SITE}fnapr/1", 'date "32.13.2021" matches none of the formats %d.%m.%Y'),
    )


def test_the_problem_names_every_format_tried() -> None:
    spec = PageSpec(item="li", date="span", date_formats=("%d.%m.%Y", "%Y-%m-%d"))
    parsed = read(page("<li><span>yesterday</span> <a href='/1'>A</a></li>"), spec)
    assert (
        parsed.problems[0][1] == 'date "yesterday" matches none of the formats %d.%m.%Y, %Y-%m-%d'
    )


def test_an_item_without_a_date_is_a_problem() -> None:
    parsed = read(
        (SAMPLES / "embassy-list.html")
        .read_bytes()
        .replace(b'<span class="date">25.10.2021</span>', b""),
        EMBASSY,
    )
    assert parsed.statements[0].published is None
    assert parsed.problems == ((f"{SITE}fnapr/7012", "no date matched span.date"),)


def test_no_date_selector_means_no_date_and_no_problem() -> None:
    parsed = read(page("<li><a href='/1'>A</a></li>"), PageSpec(item="li"))
    assert parsed.statements[0].published is None
    assert parsed.problems == ()


def test_formats_are_tried_in_order() -> None:
    spec = PageSpec(item="li", date="span", date_formats=("%d.%m.%Y", "%d %B %Y", "%Y-%m-%d"))
    parsed = read(
        page(
            "<li><span>25 October 2021</span><a href='/1'>A</a></li>"
            "<li><span>2021-10-24</span><a href='/2'>B</a></li>"
            "<li><span>\n 23.10.2021\u00a0</span><a href='/3'>C</a></li>"
        ),
        spec,
    )
    assert [s.published for s in parsed.statements] == [
        london_midnight_utc(2021, 10, d) for d in (25, 24, 23)
    ]


def test_dates_with_a_time_are_local_time_on_both_sides_of_a_dst_change() -> None:
    """London leaves BST at 02:00 on 31.10.2021; a date alone is that day's local midnight."""
    spec = PageSpec(item="li", date="span", date_formats=("%d.%m.%Y %H:%M", "%d.%m.%Y"))
    dates = ["30.10.2021 12:00", "01.11.2021 12:00", "31.10.2021 01:30", "31.10.2021"]
    dates += ["28.03.2021 00:30", "28.03.2021 03:00"]  # London enters BST at 01:00 on 28.03
    items = "".join(f"<li><span>{d}</span><a href='/{n}'>x</a></li>" for n, d in enumerate(dates))
    parsed = read(page(items), spec)
    assert [s.published for s in parsed.statements] == [
        datetime(2021, 10, 30, 11, 0, tzinfo=UTC),  # BST: UTC+1
        datetime(2021, 11, 1, 12, 0, tzinfo=UTC),  # GMT
        datetime(2021, 10, 31, 0, 30, tzinfo=UTC),  # 01:30 happens twice: the first (BST)
        datetime(2021, 10, 30, 23, 0, tzinfo=UTC),  # midnight BST
        datetime(2021, 3, 28, 0, 30, tzinfo=UTC),  # before the spring change: GMT
        datetime(2021, 3, 28, 2, 0, tzinfo=UTC),  # after it: BST
    ]


def test_date_and_time_in_two_elements_are_joined_by_a_space() -> None:
    """The mid.ru style: span.announce__date and span.announce__time."""
    spec = PageSpec(item="li", date="span.d, span.t", date_formats=("%d.%m.%Y %H:%M",))
    body = page(
        "<li><span class='d'>25.10.2021</span><span class='t'>21:40</span><a href='/1'>A</a></li>"
    )
    assert read(body, spec).statements[0].published == datetime(2021, 10, 25, 20, 40, tzinfo=UTC)


def test_a_zone_in_the_date_text_wins_over_the_configured_one() -> None:
    spec = PageSpec(item="li", date="time::attr(datetime)", date_formats=("%Y-%m-%dT%H:%M%z",))
    body = page("<li><time datetime='2021-10-25T21:40+03:00'>25 Oct</time><a href='/1'>A</a></li>")
    assert read(body, spec).statements[0].published == datetime(2021, 10, 25, 18, 40, tzinfo=UTC)


def test_date_and_title_in_one_text_the_date_prefix_is_cut_from_the_title() -> None:
    """The embassy prints "25.10.2021 - Title" as one link: date and title both point at it."""
    body = page(
        "<li><a href='/fnapr/7012'>25.10.2021 - President Putin's call</a></li>"
        "<li><a href='/fnapr/7011'>22.10.2021 \u2013 Valdai - the plenary session</a></li>"
    )
    parsed = read(body, PageSpec(item="li", date="a"))
    assert [(s.title, s.published) for s in parsed.statements] == [
        ("President Putin's call", london_midnight_utc(2021, 10, 25)),
        ("Valdai - the plenary session", london_midnight_utc(2021, 10, 22)),
    ]
    assert parsed.problems == ()


def test_date_prefix_from_the_items_own_text() -> None:
    body = page("<li>25.10.2021 - <a href='/fnapr/7012'>Title</a></li>")
    statement = read(body, PageSpec(item="li", date="li::text")).statements[0]
    assert (statement.title, statement.published) == ("Title", london_midnight_utc(2021, 10, 25))


def test_a_title_that_starts_with_another_date_keeps_it() -> None:
    body = page("<li><span>26.10.2021</span><a href='/1'>25.10.2021 - What happened</a></li>")
    assert read(body).statements[0].title == "25.10.2021 - What happened"


def test_the_date_and_title_rule_applies_to_the_sample_cp1251_page() -> None:
    statements = read(
        (PAGES / "embassy-list-cp1251.html").read_bytes(), CP1251_SPEC, url=RUS_URL
    ).statements
    assert [s.published for s in statements] == [
        london_midnight_utc(2021, 10, d) for d in (25, 22, 21)
    ]
    assert not any(s.title[:1].isdigit() for s in statements)


# ---- items ----------------------------------------------------------------------------------


def test_items_without_title_and_link_are_skipped_and_listed() -> None:
    parsed = read(
        page(
            "<li><span>25.10.2021</span> <a href='/fnapr/1'>A</a></li>"
            "<li><span>24.10.2021</span> <p>only a lead</p></li>"
            "<li><a href='/fnapr/3'>C</a></li>"
        ),
        PageSpec(item="li", date="span"),
    )
    assert [s.link for s in parsed.statements] == [f"{SITE}fnapr/1", f"{SITE}fnapr/3"]
    assert parsed.skipped == ("item 2 of 3: no title and no link ('24.10.2021 only a lead')",)


def test_an_item_with_a_link_but_no_title_takes_its_lead_and_names_the_problem() -> None:
    spec = PageSpec(item="li", title="h3", lead="p")
    parsed = read(page("<li><a href='/fnapr/1'><img src='x.jpg'></a><p>The lead.</p></li>"), spec)
    assert parsed.statements[0].title == "The lead."
    assert parsed.problems == ((f"{SITE}fnapr/1", "no title matched h3"),)


def test_the_same_link_twice_on_a_page_counts_once() -> None:
    parsed = read(
        page(
            "<li><a href='/fnapr/2'>Pinned</a></li><li><a href='/fnapr/3'>B</a></li>"
            f"<li><a href='{SITE}fnapr/2'>A</a></li>"
        )
    )
    assert [(s.title, s.link) for s in parsed.statements] == [
        ("Pinned", f"{SITE}fnapr/2"),
        ("B", f"{SITE}fnapr/3"),
    ]


def test_scripts_and_styles_inside_an_item_are_not_text() -> None:
    body = page("<li><a href='/1'>Title<script>x()</script></a><p><style>p{}</style>Lead</p></li>")
    statement = read(body).statements[0]
    assert (statement.title, statement.lead) == ("Title", "Lead")


def test_a_redesigned_site_is_an_error_that_names_the_selector() -> None:
    body = (PAGES / "embassy-list-redesigned.html").read_bytes()
    with pytest.raises(FeedFormatError) as caught:
        read(body, EMBASSY)
    assert str(caught.value) == (
        "the item selector 'div.news-item' matched nothing on the page (has the site changed?)"
    )


@pytest.mark.parametrize("body", [b"", b"   ", b"<html></html>", b"\x00\xff garbage"])
def test_an_empty_or_foreign_document_is_the_same_error(body: bytes) -> None:
    with pytest.raises(FeedFormatError, match="matched nothing"):
        read(body, EMBASSY)


def test_an_item_selector_that_selects_text_is_not_items() -> None:
    with pytest.raises(FeedFormatError, match="matched nothing"):
        read(page("<li><a href='/1'>A</a></li>"), PageSpec(item="li::text"))


def test_fifty_items_read_in_page_order() -> None:
    rows = "".join(
        f"<li><span>{28 - n % 28:02d}.09.2021</span> <a href='/fnapr/{7100 - n}'>Statement {n}</a>"
        f"<p>Lead {n} <b>bold</b> text.</p></li>"
        for n in range(50)
    )
    statements = read(page(rows)).statements
    assert len(statements) == 50
    assert statements[49].title == "Statement 49"
    assert statements[49].lead == "Lead 49 bold text."


# ---- statement pages ------------------------------------------------------------------------


def test_article_text_is_the_paragraphs_joined_by_a_space() -> None:
    text = article_text(
        (SAMPLES / "embassy-article-7012.html").read_bytes(),
        url=f"{SITE}fnapr/7012",
        content_type="text/html",
        selector="div.text p",
    )
    assert text.startswith("On October 25, 2021 President of the Russian Federation")
    assert "Boris Johnson. The two leaders discussed" in text
    assert "preparations for the UN Climate Change Conference in Glasgow" in text  # folded
    assert text.endswith(
        "Q: Was the meeting of the leaders in Glasgow discussed? "
        "A: The President explained that he would address the conference "
        "by video link."
    )
    assert "trackView" not in text and "Share" not in text


def test_article_text_is_empty_when_nothing_matches() -> None:
    body = (SAMPLES / "embassy-article-7012.html").read_bytes()
    assert article_text(body, url=SITE, content_type=None, selector="div.body p") == ""


def test_article_text_honours_the_pages_encoding() -> None:
    body = '<meta http-equiv="content-type" content="text/html;charset=windows-1251">'
    body += "<div class=text><p>Посольство</p><p>заявляет</p></div>"
    text = article_text(
        body.encode("cp1251"), url=SITE, content_type="text/html", selector="div.text p"
    )
    assert text == "Посольство заявляет"


# ---- feed discovery -------------------------------------------------------------------------


def test_discovery_lists_every_feed_once_in_document_order() -> None:
    body = (PAGES / "embassy-home-with-feed.html").read_bytes()
    assert discover_feeds(body, url=f"{SITE}en/", content_type="text/html") == [
        f"{SITE}rss/statements.xml",  # relative to <base href>, not to the page
        f"{SITE}atom.xml",
        "http://old.rusemb.org.uk/rss",
        f"{SITE}feed.json",
    ]


def test_discovery_without_base_resolves_against_the_page_url() -> None:
    body = b'<link rel="alternate" type="application/json" href="feed.json"><p>x</p>'
    assert discover_feeds(body, url="https://example.org/news/", content_type=None) == [
        "https://example.org/news/feed.json"
    ]


def test_a_page_that_names_no_feed_gives_an_empty_list() -> None:
    for name in ("embassy-list.html", "embassy-article-7012.html"):
        assert discover_feeds((SAMPLES / name).read_bytes(), url=SITE, content_type=None) == []


# ---- config checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "selector",
    [
        "div.news-item",
        "a.title::attr(href)",
        "span.date::text",
        "ul.announce > li.item",
        "a[href*='fnapr']",
        "li:nth-child(2n)",
        "::text",
        "span.d, span.t",
        "a:contains('x')",
    ],
)
def test_good_selectors_have_no_problem(selector: str) -> None:
    assert selector_problem(selector) is None


@pytest.mark.parametrize(
    ("selector", "reason"),
    [
        ("div[", "Expected ident or '*', got the end of the selector"),
        ("a::attr(", "Expected an argument, got the end of the selector"),
        ("a::foo", "The pseudo-element ::foo is unknown"),
        ("div:first", "The pseudo-class :first is unknown"),
        ("a::text::text", "Got pseudo-element ::text not at the end of a selector"),
        ("$x", "Expected selector, got '$' at position 0"),
        ("   ", "it is empty"),
    ],
)
def test_bad_selectors_are_named_in_one_line(selector: str, reason: str) -> None:
    assert selector_problem(selector) == reason


@pytest.mark.parametrize(
    "fmt",
    ["%d.%m.%Y", "%d.%m.%Y %H:%M", "%Y-%m-%dT%H:%M%z", "%d %B %Y", "%A, %d %b %y", "%d.%m.%Y %Z"],
)
def test_good_date_formats_have_no_problem(fmt: str) -> None:
    assert date_format_problem(fmt) is None


@pytest.mark.parametrize(
    ("fmt", "reason"),
    [
        ("dd.mm.yyyy", "has no % directive: write %d.%m.%Y for dates such as 25.10.2021"),
        ("100%%", "has no % directive: write %d.%m.%Y for dates such as 25.10.2021"),
        ("%Q", "cannot read a date back: 'Q' is a bad directive in format '%Q'"),
        ("%-d.%m.%Y", "flags such as %-d are for output only: %d already reads both 5 and 05"),
        (
            "%d.%m",
            "reads 25.10.2021 back as 25.10.1900: it needs a day, a month and a year "
            "(%d, %m or %b/%B, %Y or %y)",
        ),
        (
            "%H:%M",
            "reads 25.10.2021 back as 01.01.1900: it needs a day, a month and a year "
            "(%d, %m or %b/%B, %Y or %y)",
        ),
    ],
)
def test_bad_date_formats_get_a_helpful_line(fmt: str, reason: str) -> None:
    assert date_format_problem(fmt) == reason
