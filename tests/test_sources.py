"""Sources through the poller: HTML list pages, article pages, discovered feeds, JSON Feed.

Real HTTP to feed servers on 127.0.0.1 (and 127.0.0.2, which plays a public host), a real
SQLite file, the real poller. Every guarantee of feeds must hold for pages too: a silent
baseline, oldest first, edits not re-pushed, bad input a recorded failure.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config, FeedConfig
from bot.fetch import DEFAULT_POLICY, make_client
from bot.model import PollOutcome, PollReport
from bot.poller import Poller
from bot.store import AsyncStore, Store
from tests.conftest import DATA, SAMPLES
from tests.fakes.feed_server import HTML, FeedServer, strong_etag

RSS_BODY = (SAMPLES / "embassy-rss.xml").read_bytes()
PAGES = DATA / "pages"
PUBLIC = DEFAULT_POLICY.excluding("127.0.0.2/32")  # 127.0.0.2 plays a host on the internet
SPEC = {
    "item": "div.news-item",
    "title": "a.title",
    "link": "a.title::attr(href)",
    "date": "span.date",
    "date_formats": ["%d.%m.%Y"],
    "lead": "div.lead",
}


def list_page(items: list[tuple[str, str, str, str]], *, base: str | None = None) -> bytes:
    """An embassy-like list page: (date, path, title, lead) per item, newest first."""
    rows = "\n".join(
        f'<div class="news-item"><span class="date">{date}</span> - '
        f'<a class="title" href="{path}">{title}</a><div class="lead"><p>{lead}</p></div></div>'
        for date, path, title, lead in items
    )
    head = f'<base href="{base}">' if base else ""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}<title>Press</title></head>"
        f"<body><div class='pages'>Pages: 1 2 3</div>{rows}</body></html>"
    ).encode()


def article_page(text: str) -> bytes:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
        f"<div class='date'>26.10.2021</div><h1>Title</h1><div class='text'><p>{text}</p>"
        "<p>Second paragraph.</p></div></body></html>"
    ).encode()


ITEMS = [
    ("25.10.2021", "/fnapr/7012", "President Putin's telephone conversation", "Phone call."),
    ("22.10.2021", "/fnapr/7011", "Valdai Club plenary session", "Plenary."),
    ("21.10.2021", "/fnapr/7010", "Moscow format consultations on Afghanistan", "Moscow format."),
]
NEW = ("26.10.2021", "/fnapr/7013", "Embassy comment on the UK's new sanctions", "A comment.")


class Admins:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def __call__(self, text: str) -> None:
        self.texts.append(text)


@dataclass
class Env:
    server: FeedServer
    db: AsyncStore
    admins: Admins
    make: Callable[..., tuple[Poller, FeedConfig]]

    @property
    def store(self) -> Store:
        return self.db.writer


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


@pytest.fixture
async def env(
    server: FeedServer, tmp_path: Path, now: datetime, make_config: Callable[..., Config]
) -> AsyncIterator[Env]:
    db = AsyncStore.open(tmp_path / "state" / "bot.sqlite3")
    admins = Admins()
    clients = []
    clock = [now]

    def make(
        url: str, *, page: dict[str, Any] | None = None, policy: Any = DEFAULT_POLICY, **feed: Any
    ) -> tuple[Poller, FeedConfig]:
        table: dict[str, Any] = {"name": "press", "url": url, "interval": 1, **feed}
        if page is not None:
            table["page"] = page
        config = make_config(feeds=[table], fetch_timeout=1.0, failure_alert_after=2)
        client = make_client(config.fetch_timeout)
        clients.append(client)
        poller = Poller(config, db, client, admins, lambda: clock[0], address_policy=policy)
        return poller, config.feeds[0]

    yield Env(server, db, admins, make)
    for client in clients:
        await client.aclose()
    db.close()


def report_of(outcome: PollOutcome) -> PollReport:
    assert outcome.error is None, outcome.error
    assert outcome.report is not None, outcome
    return outcome.report


def queued(store: Store) -> list[tuple[str, str]]:
    """(title, lead) of each statement queued for delivery, in the order a chat gets them."""
    return [(d.statement.title, d.statement.lead) for d in store.due_deliveries(_far(), 100)]


def _far() -> datetime:
    return datetime(2100, 1, 1, tzinfo=UTC)


# ---- HTML list pages ------------------------------------------------------------------


async def test_a_list_page_is_a_silent_baseline_then_pushes_what_is_new(
    env: Env, now: datetime
) -> None:
    env.store.subscribe(1, "private", now)
    env.server.set("/press", list_page(ITEMS), content_type=HTML)
    poller, feed = env.make(env.server.url("/press"), page=SPEC)

    report = report_of(await poller.poll(feed, force=True))
    assert (report.pushed, report.silent) == (0, 3)
    stored = {s.key: s for s in env.store.latest(10)}
    assert set(stored) == {env.server.url(path) for _, path, _, _ in ITEMS}  # absolute links
    phone = stored[env.server.url("/fnapr/7012")]
    assert phone.title == "President Putin's telephone conversation"  # no "25.10.2021 - "
    assert phone.lead == "Phone call."
    # A date without a time is that calendar day in London (BST: 23:00 UTC the day before).
    assert phone.published == datetime(2021, 10, 24, 23, 0, tzinfo=UTC)

    env.server.set("/press", list_page([NEW, *ITEMS]), content_type=HTML)
    report = report_of(await poller.poll(feed, force=True))
    assert (report.pushed, report.silent, report.updated) == (1, 0, 0)
    assert queued(env.store) == [("Embassy comment on the UK's new sanctions", "A comment.")]


async def test_a_page_in_windows_1251_declared_in_the_http_header(env: Env) -> None:
    page = list_page([("26.10.2021", "/fnapr/1", "Заявление посольства", "Текст.")])
    body = page.replace(b"charset='utf-8'", b"").decode().encode("windows-1251")
    env.server.set("/ru", body, content_type="text/html; charset=windows-1251")
    poller, feed = env.make(env.server.url("/ru"), page=SPEC)

    report_of(await poller.poll(feed, force=True))

    [statement] = env.store.latest(1)
    assert (statement.title, statement.lead) == ("Заявление посольства", "Текст.")


async def test_a_redesigned_page_is_a_failed_poll_and_nothing_is_pushed_again_after(
    env: Env, now: datetime
) -> None:
    """Selectors that match nothing are a failure, not "nothing new"; nothing stored changes."""
    env.store.subscribe(1, "private", now)
    env.server.set("/press", list_page(ITEMS), content_type=HTML)
    poller, feed = env.make(env.server.url("/press"), page=SPEC)
    report_of(await poller.poll(feed, force=True))
    before = env.store.latest(10)

    redesigned = (PAGES / "embassy-list-redesigned.html").read_bytes()
    env.server.set("/press", redesigned, content_type=HTML)
    for _ in range(2):
        outcome = await poller.poll(feed, force=True)
        assert outcome.error is not None
        assert "the item selector 'div.news-item' matched nothing on the page" in outcome.error
    assert env.store.latest(10) == before
    [notice] = env.admins.texts  # failure_alert_after = 2
    assert "press has failed 2 polls in a row" in notice and "matched nothing" in notice

    env.server.set("/press", list_page(ITEMS) + b"\n", content_type=HTML)  # the site is back
    report = report_of(await poller.poll(feed, force=True))
    assert (report.pushed, report.silent, report.deliveries) == (0, 0, 0)
    assert "works again" in env.admins.texts[-1]


# ---- article pages --------------------------------------------------------------------


async def test_articles_are_read_only_for_statements_that_are_pushed(
    env: Env, now: datetime
) -> None:
    env.store.subscribe(1, "private", now)
    for _, path, _, _ in [*ITEMS, NEW]:
        env.server.set(path, article_page(f"Full text of {path}."), content_type=HTML)
    env.server.set("/press", list_page(ITEMS), content_type=HTML)
    poller, feed = env.make(env.server.url("/press"), page={**SPEC, "article": "div.text p"})

    report_of(await poller.poll(feed, force=True))  # the baseline: no article is fetched
    assert [r.path for r in env.server.requests if r.path.startswith("/fnapr")] == []

    env.server.set("/press", list_page([NEW, *ITEMS]), content_type=HTML)
    report_of(await poller.poll(feed, force=True))

    assert [r.path for r in env.server.requests if r.path.startswith("/fnapr")] == ["/fnapr/7013"]
    assert queued(env.store) == [
        ("Embassy comment on the UK's new sanctions", "Full text of /fnapr/7013. Second paragraph.")
    ]
    # The list's shorter lead on the next poll is not a correction of the article's text.
    env.server.set("/press", list_page([NEW, *ITEMS]) + b" ", content_type=HTML)
    assert report_of(await poller.poll(feed, force=True)).updated == 0


async def test_flood_guarded_statements_get_no_article_request(env: Env, now: datetime) -> None:
    env.store.subscribe(1, "private", now)
    env.server.set("/press", list_page(ITEMS[2:]), content_type=HTML)
    page = {**SPEC, "article": "div.text p"}
    poller, feed = env.make(env.server.url("/press"), page=page, flood_limit=1)
    report_of(await poller.poll(feed, force=True))
    for _, path, _, _ in [NEW, *ITEMS]:
        env.server.set(path, article_page("Full."), content_type=HTML)

    env.server.set("/press", list_page([NEW, *ITEMS]), content_type=HTML)
    report = report_of(await poller.poll(feed, force=True))

    assert (report.pushed, report.held_back) == (1, 2)
    assert [r.path for r in env.server.requests if r.path.startswith("/fnapr")] == ["/fnapr/7013"]


@pytest.mark.parametrize("failure", ["404", "slow", "nothing-matched"])
async def test_a_failed_article_falls_back_to_the_list_lead_and_is_still_pushed(
    env: Env, now: datetime, failure: str
) -> None:
    env.store.subscribe(1, "private", now)
    env.server.set("/press", list_page(ITEMS), content_type=HTML)
    poller, feed = env.make(env.server.url("/press"), page={**SPEC, "article": "div.text p"})
    report_of(await poller.poll(feed, force=True))
    if failure == "slow":
        env.server.slow("/fnapr/7013", article_page("Too late."), delay=30)
    elif failure == "nothing-matched":
        env.server.set("/fnapr/7013", b"<html><body>Moved.</body></html>", content_type=HTML)
    # "404": the route is simply not there

    env.server.set("/press", list_page([NEW, *ITEMS]), content_type=HTML)
    started = datetime.now(UTC)
    report = report_of(await poller.poll(feed, force=True))

    assert report.pushed == 1
    assert queued(env.store) == [("Embassy comment on the UK's new sanctions", "A comment.")]
    # The wait is bounded by the fetch timeout (1 s here, twice that for the whole exchange).
    assert (datetime.now(UTC) - started).total_seconds() < 10


# ---- feed autodiscovery ---------------------------------------------------------------


def home_page(feed_href: str) -> bytes:
    return (
        "<!DOCTYPE html><html><head><title>Embassy</title>"
        f'<link rel="alternate" type="application/rss+xml" title="News" href="{feed_href}">'
        "</head><body><h1>Welcome</h1></body></html>"
    ).encode()


async def test_a_home_page_that_names_a_feed_is_read_through_that_feed(
    env: Env, now: datetime
) -> None:
    env.store.subscribe(1, "private", now)
    env.server.set("/", home_page("/rss.xml"), content_type=HTML)
    env.server.set("/rss.xml", RSS_BODY, etag=strong_etag(RSS_BODY))
    poller, feed = env.make(env.server.url("/"))

    report = report_of(await poller.poll(feed, force=True))

    assert report.silent == 12
    state = env.store.feed_state("press")
    assert state is not None and state.discovered_url == env.server.url("/rss.xml")
    # The keys are the feed's own guids, however the feed was found.
    direct_keys = {s.key for s in env.store.latest(20)}
    assert "https://www.rusemb.org.uk/fnapr/7012" in direct_keys

    # Later polls ask the feed itself, with its validators: a 304 costs no parse.
    outcome = await poller.poll(feed, force=True)
    assert outcome.not_modified
    last = env.server.requests_for("/rss.xml")[-1]
    assert last.header("If-None-Match") == strong_etag(RSS_BODY)
    assert len(env.server.requests_for("/")) == 1


async def test_a_discovered_feed_that_goes_away_is_looked_for_again(env: Env) -> None:
    env.server.set("/", home_page("/rss.xml"), content_type=HTML)
    env.server.set("/rss.xml", RSS_BODY)
    poller, feed = env.make(env.server.url("/"))
    report_of(await poller.poll(feed, force=True))

    env.server.remove("/rss.xml")
    outcome = await poller.poll(feed, force=True)
    assert outcome.error is not None and "discovered feed" in outcome.error
    env.server.set("/", home_page("/feed2.xml"), content_type=HTML)
    env.server.set("/feed2.xml", RSS_BODY)
    report = report_of(await poller.poll(feed, force=True))
    assert (report.pushed, report.silent) == (0, 0)  # the same guids: nothing is new
    state = env.store.feed_state("press")
    assert state is not None and state.discovered_url == env.server.url("/feed2.xml")


async def test_an_html_page_without_a_feed_is_a_failure_that_says_so(env: Env) -> None:
    env.server.set("/", b"<!DOCTYPE html><html><body>Hello</body></html>", content_type=HTML)
    poller, feed = env.make(env.server.url("/"))
    outcome = await poller.poll(feed, force=True)
    assert outcome.error is not None and "HTML page, not a feed" in outcome.error


# ---- JSON Feed ------------------------------------------------------------------------


async def test_a_json_feed_is_read_like_rss(env: Env, now: datetime) -> None:
    env.store.subscribe(1, "private", now)
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Embassy",
        "items": [
            {
                "id": "7012",
                "url": "/fnapr/7012",
                "title": "Phone call",
                "content_text": "Lead.",
                "date_published": "2021-10-25T10:00:00+01:00",
            }
        ],
    }
    env.server.set(
        "/feed.json", json.dumps(document).encode(), content_type="application/feed+json"
    )
    poller, feed = env.make(env.server.url("/feed.json"), announce_first=1)

    report_of(await poller.poll(feed, force=True))

    [statement] = env.store.latest(1)
    assert statement.link == env.server.url("/fnapr/7012")
    assert statement.published == datetime(2021, 10, 25, 9, 0, tzinfo=UTC)
    assert queued(env.store) == [("Phone call", "Lead.")]

    env.server.set("/feed.json", b'{"version": "https://jsonfeed.org/version/1.1", "items": [',
                   content_type="application/feed+json")  # fmt: skip
    outcome = await poller.poll(feed, force=True)
    assert outcome.error is not None and "\n" not in outcome.error


# ---- the private network --------------------------------------------------------------


async def test_a_public_page_cannot_lead_the_bot_into_the_private_network(
    env: Env, now: datetime
) -> None:
    """SSRF: a public page names a feed on a loopback address; it is refused, never read."""
    env.store.subscribe(1, "private", now)
    with FeedServer(host="127.0.0.2") as public:
        public.set("/", home_page(env.server.url("/internal.xml")), content_type=HTML)
        env.server.set("/internal.xml", RSS_BODY)
        poller, feed = env.make(public.url("/"), policy=PUBLIC, announce_first=3)

        outcome = await poller.poll(feed, force=True)

        assert outcome.error is not None and "private" in outcome.error
        assert env.server.requests_for("/internal.xml") == []
        assert env.store.latest(1) == []


async def test_an_article_link_into_the_private_network_is_not_fetched(
    env: Env, now: datetime
) -> None:
    env.store.subscribe(1, "private", now)
    with FeedServer(host="127.0.0.2") as public:
        public.set("/press", list_page(ITEMS), content_type=HTML)
        poller, feed = env.make(
            public.url("/press"), page={**SPEC, "article": "div.text p"}, policy=PUBLIC
        )
        report_of(await poller.poll(feed, force=True))
        internal = env.server.url("/fnapr/7013")
        env.server.set("/fnapr/7013", article_page("Internal secrets."), content_type=HTML)
        public.set("/press", list_page([(NEW[0], internal, NEW[2], NEW[3]), *ITEMS]),
                   content_type=HTML)  # fmt: skip

        report = report_of(await poller.poll(feed, force=True))

        assert report.pushed == 1
        assert env.server.requests_for("/fnapr/7013") == []
        assert queued(env.store) == [(NEW[2], NEW[3])]


async def test_a_configured_local_feed_is_allowed(env: Env) -> None:
    env.server.set("/feed.xml", RSS_BODY)
    poller, feed = env.make(env.server.url("/feed.xml"))  # 127.0.0.1: the admin's own choice
    assert report_of(await poller.poll(feed, force=True)).silent == 12


# ---- headers and bot protection -------------------------------------------------------


async def test_configured_headers_are_sent_and_stay_out_of_the_database(env: Env) -> None:
    env.server.set("/feed.xml", RSS_BODY)
    poller, feed = env.make(
        env.server.url("/feed.xml"),
        headers={"Accept-Language": "en", "Cookie": "session=s3cret-cookie"},
    )
    report_of(await poller.poll(feed, force=True))
    env.server.status("/feed.xml", 500)
    await poller.poll(feed, force=True)

    request = env.server.requests_for("/feed.xml")[0]
    assert request.header("Cookie") == "session=s3cret-cookie"
    assert request.header("Accept-Language") == "en"
    dump = "\n".join(env.store.db.conn.iterdump())
    assert "s3cret" not in dump


async def test_a_cloudflare_challenge_is_named(env: Env) -> None:
    env.server.status(
        "/feed.xml",
        403,
        headers={"cf-mitigated": "challenge", "Server": "cloudflare"},
    )
    poller, feed = env.make(env.server.url("/feed.xml"))
    outcome = await poller.poll(feed, force=True)
    assert outcome.error == "blocked by bot protection (Cloudflare challenge)"
