"""Full text on Telegraph: HTML to nodes, and pages made through a real HTTP fake of the API.

The poller reads feeds from the feed server and publishes to tests/fakes/telegraph_server.py
(both on 127.0.0.1), recording into a real SQLite file; the push is rendered as subscribers get it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.commands import push_message
from bot.config import Config
from bot.fetch import make_client
from bot.jsonfeed import parse_json_feed
from bot.logs import configure_logging
from bot.model import StoredStatement
from bot.parse import parse_feed
from bot.poller import Poller
from bot.store import AsyncStore, Store
from bot.telegraph import MAX_CONTENT_BYTES, content_json, load_token, to_nodes
from tests.conftest import build_config
from tests.fakes.feed_server import HTML, RSS, FeedServer
from tests.fakes.telegraph_server import TelegraphServer

CHAT = 1001


HOURS = {
    "old": 10,
    "a": 11,
    "new": 12,
    "b": 13,
    "newer": 14,
    "g1": 15,
    "n0": 16,
    "n1": 17,
    "n2": 18,
    "n3": 19,
}  # each item keeps its date


def rss(*items: tuple[str, str, str]) -> bytes:
    """An RSS 2.0 feed of (guid, title, content:encoded HTML) items, newest first."""
    entries = "".join(
        f'<item><guid isPermaLink="false">{guid}</guid><title>{title}</title>'
        f"<link>https://example.org/{guid}</link><description>Lead of {title}.</description>"
        f"<content:encoded><![CDATA[{content}]]></content:encoded>"
        f"<pubDate>Tue, 26 Oct 2021 {HOURS[guid]}:00:00 GMT</pubDate></item>"
        for guid, title, content in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Embassy'
        f"</title><link>https://example.org/</link>{entries}</channel></rss>"
    ).encode()


FULL = '<p>The <b>full</b> text, with <a href="/more">a link</a>.</p><script>alert(1)</script>'


def size(nodes: list[Any]) -> int:
    return len(content_json(nodes).encode("utf-8"))


# ---- HTML to nodes ---------------------------------------------------------------------------


def test_allowed_tags_are_kept_and_links_made_absolute() -> None:
    nodes = to_nodes(
        "<p>One <strong>two</strong> <em>three</em> <i>i</i> <b>b</b><br>four</p>"
        "<ul><li>a</li><li>b</li></ul><ol><li>c</li></ol><blockquote>quoted</blockquote>"
        '<p><a href="/x">rel</a> <img src="https://example.org/i.png"></p>',
        "https://example.org/news/1",
    )
    assert nodes == [
        {"tag": "p", "children": ["One ", {"tag": "strong", "children": ["two"]}, " ",
         {"tag": "em", "children": ["three"]}, " ", {"tag": "i", "children": ["i"]}, " ",
         {"tag": "b", "children": ["b"]}, {"tag": "br"}, "four"]},
        {"tag": "ul", "children": [{"tag": "li", "children": ["a"]},
                                   {"tag": "li", "children": ["b"]}]},
        {"tag": "ol", "children": [{"tag": "li", "children": ["c"]}]},
        {"tag": "blockquote", "children": ["quoted"]},
        {"tag": "p", "children": [
            {"tag": "a", "attrs": {"href": "https://example.org/x"}, "children": ["rel"]}, " ",
            {"tag": "img", "attrs": {"src": "https://example.org/i.png"}}]},
    ]  # fmt: skip


def test_hostile_links_scripts_and_styles() -> None:
    nodes = to_nodes(
        '<p><a href="javascript:alert(1)">click</a> <a href=" JaVaScRiPt:x">two</a> '
        '<a href="data:text/html,x">three</a><img src="javascript:x"><img src="data:image/png,x">'
        "<script>steal()</script><style>p{}</style><iframe src='https://evil'>in</iframe> "
        '<a href="mailto:a@b">mail</a> <span onclick="x()">span</span></p>',
        "https://example.org/",
    )
    assert nodes == [{"tag": "p", "children": ["click two three mail span"]}]
    text = json.dumps(nodes)
    assert "javascript" not in text.lower() and "steal" not in text and "onclick" not in text


def test_nested_tables_are_unwrapped_to_text() -> None:
    nodes = to_nodes(
        "<table><tr><td>A<table><tr><td>inner <b>bold</b></td><td>B</td></tr></table></td>"
        "<td>C</td></tr></table><div>after</div>"
    )
    text = json.dumps(nodes, ensure_ascii=False)
    for word in ("A", "inner", "bold", "B", "C", "after"):
        assert word in text
    assert "table" not in text and "td" not in text
    assert all(isinstance(n, dict) and n["tag"] == "p" for n in nodes)


def test_huge_text_is_cut_at_a_node_boundary_with_a_note() -> None:
    paragraphs = [f"<p>Paragraph {n}: " + "word " * 400 + "</p>" for n in range(200)]
    nodes = to_nodes("".join(paragraphs))
    assert size(nodes) <= 64 * 1024
    assert nodes[-1] == {"tag": "p", "children": ["…"]}
    whole = to_nodes(paragraphs[0])[0]
    assert nodes[0] == whole and nodes[-2] == {**whole, "children": [
        nodes[-2]["children"][0]]}  # fmt: skip
    # Every paragraph but the cut one is whole; the cut one ends at a word.
    assert all(n == to_nodes(paragraphs[i])[0] for i, n in enumerate(nodes[:-2]))
    assert nodes[-2]["children"][0].startswith(f"Paragraph {len(nodes) - 2}: word")
    assert not nodes[-2]["children"][0].endswith(" ")


def test_one_giant_paragraph_and_deep_nesting_stay_within_the_limit() -> None:
    giant = to_nodes("<p>" + "слово " * 40_000 + "</p>")  # 2 bytes a letter in UTF-8
    assert MAX_CONTENT_BYTES - 1000 < size(giant) <= 64 * 1024
    assert giant[-1] == {"tag": "p", "children": ["…"]}
    deep = to_nodes("<b>" * 20_000 + "x" + "</b>" * 20_000 + "<div>" * 5000 + "end")
    assert size(deep) <= 64 * 1024
    assert "x" in content_json(deep) and "end" in content_json(deep)


def test_feeds_carry_the_full_text() -> None:
    feed = parse_feed(rss(("g1", "Title", FULL)), url="https://example.org/rss")
    # feedparser has already dropped the script and resolved the link against the feed.
    assert feed.statements[0].full_html == (
        '<p>The <b>full</b> text, with <a href="https://example.org/more">a link</a>.</p>'
    )
    assert feed.statements[0].lead == "Lead of Title."
    plain = parse_feed(rss(("g1", "Title", "")), url="https://example.org/rss")
    assert plain.statements[0].full_html == ""
    item = {"id": "1", "title": "T", "url": "https://example.org/1", "content_html": FULL}
    body = json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "title": "x", "items": [item]}
    ).encode()
    assert parse_json_feed(body, url="https://example.org/feed.json").statements[0].full_html == (
        FULL
    )


# ---- pages through the fake Telegraph ------------------------------------------------------


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


@pytest.fixture
def telegraph() -> Iterator[TelegraphServer]:
    with TelegraphServer() as t:
        yield t


@dataclasses.dataclass
class Env:
    feeds: FeedServer
    telegraph: TelegraphServer
    store: Store
    config: Config
    poller: Poller
    now: datetime

    async def poll(self) -> None:
        self.now += timedelta(seconds=10)
        outcome = await self.poller.poll(self.config.feeds[0], force=True)
        assert outcome.error is None, outcome.error

    def statements(self) -> dict[str, StoredStatement]:
        return {s.key: s for s in self.store.latest(100)}

    def pushes(self, language: str = "en") -> list[str]:
        """Every queued push, rendered as the chat gets it."""
        return [
            push_message(d.statement, self.config, self.now, language=language)
            for d in self.store.due_deliveries(self.now + timedelta(days=1), 100)
        ]


async def make_env(
    tmp_path: Path, feeds: FeedServer, telegraph: TelegraphServer, now: datetime, **bot: Any
) -> AsyncIterator[Env]:
    feed = {"name": "statements", "url": feeds.url("/feed.xml"), "interval": 60}
    config = build_config(tmp_path, feeds=[feed], fetch_timeout=0.5, telegraph=True, **bot)
    config = dataclasses.replace(config, telegraph_api_base_url=telegraph.url)
    db = AsyncStore.open(config.database_path)
    client = make_client(config.fetch_timeout)
    env = Env(feeds, telegraph, db.writer, config, None, now)  # type: ignore[arg-type]
    env.poller = Poller(config, db, client, _no_admins, lambda: env.now)
    db.writer.subscribe(CHAT, "private", now)
    feeds.set("/feed.xml", rss(("old", "Old one", FULL)), content_type=RSS)
    await env.poll()  # the baseline: nothing pushed, no page
    yield env
    await client.aclose()
    db.close()


async def _no_admins(text: str) -> None:
    pass


@pytest.fixture
async def env(
    tmp_path: Path, feeds: FeedServer, telegraph: TelegraphServer, now: datetime
) -> AsyncIterator[Env]:
    async for e in make_env(tmp_path, feeds, telegraph, now):
        yield e


async def test_a_pushed_statement_gets_a_page_and_the_push_links_it(env: Env) -> None:
    assert env.telegraph.calls == []  # the baseline is not published
    env.feeds.set("/feed.xml", rss(("new", "New one", FULL), ("old", "Old one", FULL)),
                  content_type=RSS)  # fmt: skip
    await env.poll()
    assert env.telegraph.methods() == ["createAccount", "createPage"]
    (page,) = env.telegraph.pages.values()
    assert page.title == "New one"
    assert page.author_url == "https://example.org/new"
    assert page.content == [
        {"tag": "p", "children": ["The ", {"tag": "b", "children": ["full"]}, " text, with ",
         {"tag": "a", "attrs": {"href": env.feeds.url("/more")}, "children": ["a link"]},
         "."]},
    ]  # fmt: skip
    stored = env.statements()["new"]
    assert (stored.telegraph_url, stored.telegraph_path) == (page.url, page.path)
    assert env.statements()["old"].telegraph_url == ""
    (push,) = env.pushes()
    assert f'<a href="{page.url}">Read in full</a> · ' in push
    assert '<a href="https://example.org/new">Read the full text</a>' in push
    assert f'<a href="{page.url}">Читать целиком</a>' in env.pushes("ru")[0]

    # The account is made once, and its token kept in the database.
    env.feeds.set("/feed.xml", rss(("newer", "Newer", FULL), ("new", "New one", FULL)),
                  content_type=RSS)  # fmt: skip
    await env.poll()
    assert env.telegraph.methods() == ["createAccount", "createPage", "createPage"]
    assert load_token(env.store) == env.telegraph.tokens[0]
    assert len(env.telegraph.pages) == 2


async def test_the_token_survives_a_restart(
    tmp_path: Path, feeds: FeedServer, telegraph: TelegraphServer, now: datetime
) -> None:
    async for env in make_env(tmp_path, feeds, telegraph, now):
        feeds.set("/feed.xml", rss(("a", "A", FULL)), content_type=RSS)
        await env.poll()
    async for env in make_env(tmp_path, feeds, telegraph, now):  # a new poller, the same file
        feeds.set("/feed.xml", rss(("b", "B", FULL), ("a", "A", FULL)), content_type=RSS)
        await env.poll()
    assert telegraph.methods() == ["createAccount", "createPage", "createPage"]


async def test_a_statement_without_full_text_gets_no_page(env: Env) -> None:
    env.feeds.set("/feed.xml", rss(("new", "New one", ""), ("old", "Old one", FULL)),
                  content_type=RSS)  # fmt: skip
    await env.poll()
    assert env.telegraph.calls == []
    (push,) = env.pushes()
    assert "Read in full" not in push and "Read the full text" in push


@pytest.mark.parametrize("failure", ["error", "hang"])
async def test_a_failing_telegraph_never_holds_the_push_back(env: Env, failure: str) -> None:
    if failure == "error":
        env.telegraph.fail_with("INTERNAL_ERROR")
    else:
        env.telegraph.hang()
    env.feeds.set("/feed.xml", rss(("new", "New one", FULL), ("old", "Old one", FULL)),
                  content_type=RSS)  # fmt: skip
    started = time.monotonic()
    await env.poll()
    assert time.monotonic() - started < 0.5 + 2  # the bounded wait: the fetch timeout
    assert env.telegraph.calls  # it was asked
    (push,) = env.pushes()
    assert "Read in full" not in push
    assert '<a href="https://example.org/new">Read the full text</a>' in push
    assert env.statements()["new"].telegraph_url == ""


async def test_an_oversized_text_still_makes_a_page(env: Env) -> None:
    huge = "".join(f"<p>{n} " + "text " * 300 + "</p>" for n in range(300))
    env.feeds.set("/feed.xml", rss(("new", "New one", huge), ("old", "Old one", FULL)),
                  content_type=RSS)  # fmt: skip
    await env.poll()
    (page,) = env.telegraph.pages.values()  # the fake refuses content over 64 KB
    assert page.content[-1] == {"tag": "p", "children": ["…"]}


async def test_a_corrected_statement_gets_its_page_edited(env: Env) -> None:
    env.feeds.set("/feed.xml", rss(("new", "New one", FULL), ("old", "Old one", FULL)),
                  content_type=RSS)  # fmt: skip
    await env.poll()
    env.feeds.set("/feed.xml", rss(("new", "New one (corrected)", "<p>Fixed.</p>"),
                                   ("old", "Old one (also edited)", FULL)), content_type=RSS)  # fmt: skip
    await env.poll()
    (page,) = env.telegraph.pages.values()
    assert page.edits == 1  # the old one never had a page: nothing to edit
    assert page.title == "New one (corrected)"
    assert page.content == [{"tag": "p", "children": ["Fixed."]}]
    assert env.telegraph.methods()[-1] == "editPage"


async def test_a_correction_edits_its_page_even_while_telegraph_rests(env: Env) -> None:
    """A correction comes once and nothing retries it: the rest does not skip it."""
    env.feeds.set("/feed.xml", rss(("new", "New one", FULL), ("old", "Old one", FULL)),
                  content_type=RSS)  # fmt: skip
    await env.poll()
    env.telegraph.fail_with("INTERNAL_ERROR")
    env.feeds.set("/feed.xml", rss(("b", "B", FULL), ("new", "New one", FULL),
                                   ("old", "Old one", FULL)), content_type=RSS)  # fmt: skip
    await env.poll()  # no page for "b": Telegraph rests from now on
    env.telegraph.recover()
    env.feeds.set("/feed.xml", rss(("b", "B", FULL), ("new", "New one (corrected)", FULL),
                                   ("old", "Old one", FULL)), content_type=RSS)  # fmt: skip
    await env.poll()
    (page,) = env.telegraph.pages.values()
    assert (page.title, page.edits) == ("New one (corrected)", 1)


async def test_the_token_never_reaches_the_log(env: Env) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    configure_logging("DEBUG", stream=out)  # httpx logs every request at DEBUG
    try:
        env.feeds.set("/feed.xml", rss(("new", "New one", FULL), ("old", "Old one", FULL)),
                      content_type=RSS)  # fmt: skip
        await env.poll()
        token = env.telegraph.tokens[0]
        env.telegraph.fail_with(f"PAGE_SAVE_FAILED: {token}")  # an error that names it
        env.feeds.set("/feed.xml", rss(("newer", "Newer", FULL), ("new", "New one", FULL)),
                      content_type=RSS)  # fmt: skip
        await env.poll()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    log = out.getvalue()
    assert "PAGE_SAVE_FAILED" in log and "/createPage" in log  # it did log the calls
    assert token not in log


async def test_an_article_page_gives_its_html(
    tmp_path: Path, feeds: FeedServer, telegraph: TelegraphServer, now: datetime
) -> None:
    article = b"<html><body><nav>menu</nav><article><p>Body <em>here</em></p></article></body>"
    listing = b'<ul><li><a href="/s/1">First</a></li></ul>'
    feeds.set("/list", listing, content_type=HTML)
    feeds.set("/s/1", article, content_type=HTML)
    feeds.set("/s/2", article.replace(b"Body", b"Second"), content_type=HTML)
    feed = {"name": "statements", "url": feeds.url("/list"), "interval": 60,
            "page": {"item": "li", "article": "article"}}  # fmt: skip
    config = build_config(tmp_path, feeds=[feed], fetch_timeout=0.5, telegraph=True)
    config = dataclasses.replace(config, telegraph_api_base_url=telegraph.url)
    db = AsyncStore.open(config.database_path)
    client = make_client(config.fetch_timeout)
    poller = Poller(config, db, client, _no_admins, lambda: now)
    try:
        await poller.poll(config.feeds[0], force=True)
        feeds.set("/list", b'<ul><li><a href="/s/2">Second</a></li>' + listing[4:],
                  content_type=HTML)  # fmt: skip
        await poller.poll(config.feeds[0], force=True)
    finally:
        await client.aclose()
        db.close()
    (page,) = telegraph.pages.values()
    assert page.content == [
        {"tag": "p", "children": ["Second ", {"tag": "em", "children": ["here"]}]}
    ]


@pytest.mark.parametrize("failure", ["INTERNAL_ERROR", "hang"])
async def test_after_telegraph_fails_pushes_skip_it_for_a_while_instead_of_each_waiting(
    env: Env, failure: str
) -> None:
    publisher = env.poller.publisher
    assert publisher is not None
    moment = [1000.0]
    publisher.clock = lambda: moment[0]
    if failure == "hang":
        env.telegraph.hang()
    else:
        env.telegraph.fail_with(failure)
    items = [("old", "Old one", FULL)]
    for n in range(3):
        items.insert(0, (f"n{n}", f"New {n}", FULL))
        env.feeds.set("/feed.xml", rss(*items), content_type=RSS)
        started = time.monotonic()
        await env.poll()
        if n == 0:
            asked = len(env.telegraph.calls)
            assert asked  # the first poll asks, and fails
        else:
            assert time.monotonic() - started < 0.4  # resting: no wait for Telegraph
            assert len(env.telegraph.calls) == asked
    env.telegraph.recover()
    moment[0] += publisher.rest  # the rest is over: pages again
    items.insert(0, ("n3", "New 3", FULL))
    env.feeds.set("/feed.xml", rss(*items), content_type=RSS)
    await env.poll()
    assert env.statements()["n3"].telegraph_url
    assert all(not env.statements()[f"n{n}"].telegraph_url for n in range(3))


async def test_a_page_telegraph_refuses_does_not_stop_the_next_ones(env: Env) -> None:
    env.telegraph.fail_with("TITLE_TOO_LONG")  # about that page, not the service
    env.feeds.set("/feed.xml", rss(("a", "A", FULL), ("old", "Old one", FULL)), content_type=RSS)
    await env.poll()
    env.telegraph.recover()
    env.feeds.set("/feed.xml", rss(("b", "B", FULL), ("a", "A", FULL)), content_type=RSS)
    await env.poll()
    assert env.statements()["b"].telegraph_url and not env.statements()["a"].telegraph_url
