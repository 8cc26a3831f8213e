"""`statement-bot preview`: how an admin checks a source and writes a page's selectors.

In process (`main([...])`), against the bundled samples and a feed server on 127.0.0.1.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from tests.conftest import SAMPLES
from tests.fakes.feed_server import HTML, FeedServer, closed_port_url

REPO = Path(__file__).parent.parent


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config", tmp_path / "config")
    return tmp_path / "config" / "bot.toml"


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def preview(config_path: Path, *args: str) -> int:
    return main(["--config", str(config_path), "preview", *args])


def test_preview_of_the_bundled_list_page(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert preview(config_path, "informs") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"informs: {config_path.parent / 'samples' / 'embassy-informs.html'}"
    assert out[1] == "  5 statements (newest first)"
    assert out[3] == " 1. 26.10.2021  Consular Section: new opening hours from 1 November 2021"
    assert out[4] == "   link: https://www.rusemb.org.uk/fnapr/6998"
    assert out[5].startswith("   lead: From 1 November 2021 the Consular Section receives")
    assert not (config_path.parent.parent / "state").exists()  # nothing stored


def test_preview_of_a_url_with_selectors_shows_what_is_missing(
    config_path: Path, server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    page = (
        "<html><body>"
        "<li><b>26.10.2021</b> <a href='/a'>Dated</a></li>"
        "<li><b>32.13.2021</b> <a href='/b'>Bad date</a></li>"
        "<li><a href='/c'>No date</a></li>"
        "</body></html>"
    )
    server.set("/list", page.encode(), content_type=HTML)
    url = server.url("/list")

    code = preview(config_path, url, "--item", "li", "--date", "b", "--date-format", "%d.%m.%Y")

    out = capsys.readouterr().out
    assert code == 0
    assert f" 1. 26.10.2021  Dated\n   link: {server.url('/a')}" in out
    assert " 2. (no date)  Bad date" in out
    assert 'missing: date "32.13.2021" matches none of the formats %d.%m.%Y' in out
    assert "missing: no date matched b" in out
    assert "note: 2 of 3 statements have no date" in out


def test_preview_of_a_feed_url(
    config_path: Path, server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.set("/feed.xml", (SAMPLES / "embassy-rss.xml").read_bytes())
    assert preview(config_path, server.url("/feed.xml")) == 0
    out = capsys.readouterr().out
    assert "12 statements (newest first)" in out
    assert "President Putin's telephone conversation with British Prime Minister" in out


def test_preview_shows_the_feed_a_page_names(
    config_path: Path, server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    home = (
        '<html><head><link rel="alternate" type="application/rss+xml" href="/rss.xml">'
        "</head><body>Home</body></html>"
    )
    server.set("/", home.encode(), content_type=HTML)
    server.set("/rss.xml", (SAMPLES / "embassy-rss.xml").read_bytes())
    assert preview(config_path, server.url("/")) == 0
    out = capsys.readouterr().out
    assert f"the page names a feed; read from {server.url('/rss.xml')}" in out


def test_preview_reads_article_pages_for_the_newest_only(
    config_path: Path, server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    items = "".join(
        f"<li><a href='/fnapr/{n}'>Statement {n}</a><p>List lead {n}.</p></li>" for n in range(5)
    )
    server.set("/list", f"<html><body><ul>{items}</ul></body></html>".encode(), content_type=HTML)
    for n in range(5):
        body = f"<html><body><div class='text'><p>Article text {n}.</p></div></body></html>"
        server.set(f"/fnapr/{n}", body.encode(), content_type=HTML)

    code = preview(config_path, server.url("/list"), "--item", "li", "--lead", "p",
                   "--article", "div.text p")  # fmt: skip

    out = capsys.readouterr().out
    assert code == 0
    assert "   article: Article text 0." in out and "   article: Article text 2." in out
    assert "Article text 3." not in out
    assert "(articles read for the newest 3 only)" in out
    assert [r.path for r in server.requests if r.path.startswith("/fnapr")] == [
        "/fnapr/0",
        "/fnapr/1",
        "/fnapr/2",
    ]


def test_preview_fails_in_one_line_with_exit_1(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = closed_port_url()
    assert preview(config_path, url) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"preview: {url}"
    assert out[1].startswith("  failed: cannot fetch") and len(out) == 2


def test_preview_of_a_page_whose_selectors_match_nothing_fails(
    config_path: Path, server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.set("/list", b"<html><body><p>Redesigned</p></body></html>", content_type=HTML)
    assert preview(config_path, server.url("/list"), "--item", "div.news-item") == 1
    assert "the item selector 'div.news-item' matched nothing" in capsys.readouterr().out


def test_preview_of_an_empty_feed_exits_1(
    config_path: Path, server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>'
    server.set("/feed.xml", empty)
    assert preview(config_path, server.url("/feed.xml")) == 1
    assert "0 statements" in capsys.readouterr().out


def test_preview_refuses_a_bad_selector_or_an_unknown_name(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert preview(config_path, "https://example.org/", "--item", "div[") == 2
    err = capsys.readouterr().err
    assert err.startswith("preview: feeds[0].page.item: bad CSS selector 'div['")
    assert preview(config_path, "nosuchfeed") == 2
    err = capsys.readouterr().err
    assert "'nosuchfeed' is neither a feed of the config (statements, informs) nor a URL" in err
