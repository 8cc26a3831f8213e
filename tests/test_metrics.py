"""The Prometheus endpoint, scraped over real HTTP while a real Service polls a local feed server
and drains its outbox to a scripted sender: every metric, with the values a known run gives."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.cli import main
from bot.config import ConfigError, FeedConfig
from bot.delivery import (
    ChatAddress,
    ChatGone,
    ChatMoved,
    PermanentFailure,
    SendOutcome,
    Sent,
    Throttled,
    TransientFailure,
)
from bot.fetch import make_client
from bot.metrics import EXIT_METRICS, NO_METRICS, PrometheusMetrics, metrics_for
from bot.service import Service
from bot.store import AsyncStore
from tests.conftest import SAMPLES, build_config
from tests.fakes.feed_server import FeedServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> Samples:
    """GET /metrics over HTTP and parse it as Prometheus does: (sample, labels) -> value.

    Called from the test's event loop without awaiting: the scrape is answered while the loop
    is blocked, so it cannot depend on the loop or on the loop's database connections."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return parse(text)


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def recorded(samples: Samples, push: str) -> float:
    return value(samples, "statement_bot_statements_recorded_total", feed="statements", push=push)


def rss(*numbers: int) -> bytes:
    """A feed of statements 1..n, newest first, one a day from 20 October 2021."""
    items = "".join(
        f"<item><guid>https://e.org/{n}</guid><title>Statement {n}</title>"
        f"<link>https://e.org/{n}</link>"
        f"<pubDate>{20 + n} Oct 2021 10:00:00 GMT</pubDate></item>"
        for n in sorted(numbers, reverse=True)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>S</title>{items}</channel></rss>'
    ).encode()


class ScriptedSender:
    """Sends succeed unless a chat has outcomes queued."""

    def __init__(self) -> None:
        self.script: dict[int | str, list[SendOutcome]] = defaultdict(list)
        self.sent: list[int | str] = []

    async def reachable(self) -> bool:
        return True  # a failing send is the chat's trouble, not an outage

    async def send(self, chat: ChatAddress, html: str) -> SendOutcome:
        if self.script[chat.chat_id]:
            return self.script[chat.chat_id].pop(0)
        self.sent.append(chat.chat_id)
        return Sent(len(self.sent))


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


async def no_admins(text: str) -> None:
    pass


@dataclass
class Bot:
    service: Service
    metrics: PrometheusMetrics
    db: AsyncStore
    feed: FeedConfig
    sender: ScriptedSender
    clock: Clock
    server: FeedServer
    port: int


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


@pytest.fixture
async def bot(server: FeedServer, tmp_path: Path, now: datetime) -> AsyncIterator[Bot]:
    port = free_port()
    config = build_config(
        tmp_path,
        feeds=[{"name": "statements", "url": server.url("/feed.xml"), "interval": 60}],
        metrics=f"127.0.0.1:{port}",
        fetch_timeout=2,
    )
    metrics = metrics_for(config)
    assert isinstance(metrics, PrometheusMetrics)
    db = AsyncStore.open(config.database_path)
    client = make_client(config.fetch_timeout)
    clock = Clock(now)
    sender = ScriptedSender()
    service = Service(config, db, client, sender, no_admins, clock=clock, metrics=metrics)
    metrics.start()
    try:
        yield Bot(service, metrics, db, config.feeds[0], sender, clock, server, port)
    finally:
        await service.stop()
        metrics.stop()
        await client.aclose()
        db.close()


async def test_a_known_run_gives_every_metric_its_value(bot: Bot, now: datetime) -> None:
    poll = bot.service.poller.poll  # no background drain: the test drains when it chooses
    store = bot.db.writer  # set-up between drains, as start-up code does
    for chat, kind in ((1, "private"), (2, "private"), (-300, "group")):
        store.subscribe(chat, kind, now)

    before = scrape(bot.port)  # every series is there from the start, at 0
    for outcome in ("ok", "not_modified", "failed", "skipped"):
        assert value(before, "statement_bot_polls_total", feed="statements", outcome=outcome) == 0
    for outcome in ("sent", "retried", "failed", "chat_gone", "moved", "throttled"):
        assert value(before, "statement_bot_deliveries_total", outcome=outcome) == 0

    # The first poll is the baseline: recorded silently. The same document again: a 304.
    bot.server.set("/feed.xml", rss(1, 2), etag='"v1"')
    await poll(bot.feed)
    await poll(bot.feed)
    # A new statement to three chats: one chat is gone, one is throttled for 3 s. (One at a
    # time: the engine reads its next batch while one sends, so a second row of a chat could
    # go out before the flood wait is seen, or not.)
    bot.server.set("/feed.xml", rss(1, 2, 3), etag='"v2"')
    assert (await poll(bot.feed)).new_deliveries == 3
    bot.sender.script[2] = [ChatGone("Forbidden: bot was blocked by the user")]
    bot.sender.script[-300] = [Throttled(3.0)]
    await bot.service.drain()
    # Another, to the two chats left; not sent yet.
    bot.server.set("/feed.xml", rss(1, 2, 3, 4), etag='"v3"')
    assert (await poll(bot.feed)).new_deliveries == 2

    mid = scrape(bot.port)
    assert value(mid, "statement_bot_polls_total", feed="statements", outcome="ok") == 3
    assert value(mid, "statement_bot_polls_total", feed="statements", outcome="not_modified") == 1
    assert recorded(mid, "silent") == 2
    assert recorded(mid, "pushed") == 2
    assert value(mid, "statement_bot_deliveries_total", outcome="sent") == 1
    assert value(mid, "statement_bot_deliveries_total", outcome="chat_gone") == 1
    assert value(mid, "statement_bot_deliveries_total", outcome="throttled") == 1
    assert value(mid, "statement_bot_flood_waits_total") == 1
    assert value(mid, "statement_bot_flood_wait_seconds_total") == 3.0
    # Open: chat -300's statement 3 (after the wait), and statement 4 to chats 1 and -300.
    assert value(mid, "statement_bot_pending_deliveries") == 3
    assert value(mid, "statement_bot_failed_deliveries") == 0
    assert value(mid, "statement_bot_subscribers", kind="private") == 1
    assert value(mid, "statement_bot_subscribers", kind="group") == 1
    assert value(mid, "statement_bot_fanout_statements") == 2
    assert value(mid, "statement_bot_fanout_deliveries", state="finished") == 2  # sent, gone
    assert value(mid, "statement_bot_fanout_deliveries", state="open") == 3
    assert value(mid, "statement_bot_fanout_progress_ratio") == pytest.approx(2 / 5)
    assert value(mid, "statement_bot_fanout_duration_seconds_count") == 0
    assert value(mid, "statement_bot_send_duration_seconds_count") == 3
    assert value(mid, "statement_bot_database_readable") == 1

    # After the flood wait both statements reach their last chats, 5 s after being recorded.
    bot.clock.now += timedelta(seconds=5)
    await bot.service.drain()
    done = scrape(bot.port)
    assert value(done, "statement_bot_deliveries_total", outcome="sent") == 4
    assert value(done, "statement_bot_pending_deliveries") == 0
    assert value(done, "statement_bot_fanout_statements") == 0
    assert value(done, "statement_bot_fanout_progress_ratio") == 1
    assert value(done, "statement_bot_fanout_duration_seconds_count") == 2
    assert value(done, "statement_bot_fanout_duration_seconds_sum") == 10.0
    assert value(done, "statement_bot_fanout_duration_seconds_bucket", le="5.0") == 2
    assert value(done, "statement_bot_fanout_duration_seconds_bucket", le="1.0") == 0

    # One more statement: a network error (retried), a refusal (failed), a group that became a
    # supergroup (moved, then sent to its new id).
    store.subscribe(-400, "group", bot.clock.now)
    bot.sender.script[1] = [TransientFailure("timed out")]
    bot.sender.script[-300] = [PermanentFailure("Bad Request: can't parse entities")]
    bot.sender.script[-400] = [ChatMoved(-1000400)]
    bot.server.set("/feed.xml", rss(1, 2, 3, 4, 5), etag='"v4"')
    await poll(bot.feed)
    await bot.service.drain()
    # A failing feed backs off; the next scheduled poll within the backoff is skipped.
    bot.server.status("/feed.xml", 500)
    await poll(bot.feed)
    await poll(bot.feed)

    end = scrape(bot.port)
    for outcome, count in (("ok", 4), ("not_modified", 1), ("failed", 1), ("skipped", 1)):
        assert value(end, "statement_bot_polls_total", feed="statements", outcome=outcome) == count
    assert recorded(end, "pushed") == 3
    deliveries = {
        o: value(end, "statement_bot_deliveries_total", outcome=o)
        for o in ("sent", "retried", "failed", "chat_gone", "moved", "throttled")
    }
    assert deliveries == {
        "sent": 5, "retried": 1, "failed": 1, "chat_gone": 1, "moved": 1, "throttled": 1
    }  # fmt: skip
    assert value(end, "statement_bot_pending_deliveries") == 1  # chat 1 waits for its retry
    assert value(end, "statement_bot_failed_deliveries") == 1
    assert value(end, "statement_bot_subscribers", kind="private") == 1
    assert value(end, "statement_bot_subscribers", kind="group") == 1
    assert value(end, "statement_bot_subscribers", kind="supergroup") == 1
    assert value(end, "statement_bot_fanout_statements") == 1
    assert value(end, "statement_bot_fanout_deliveries", state="finished") == 2
    assert value(end, "statement_bot_fanout_deliveries", state="open") == 1
    assert value(end, "statement_bot_fanout_progress_ratio") == pytest.approx(2 / 3)
    assert value(end, "statement_bot_fanout_duration_seconds_count") == 2  # statement 5: not yet
    assert value(end, "statement_bot_send_duration_seconds_count") == 10
    assert value(end, "statement_bot_send_duration_seconds_bucket", le="+Inf") == 10
    assert value(end, "process_cpu_seconds_total") > 0  # the process's own, in the same registry
    # Names by Prometheus's rules; labels of low cardinality only (never a chat or a title).
    for name, labels in end:
        assert name.startswith(("statement_bot_", "process_", "python_")), name
        if name.startswith("statement_bot_"):
            assert {k for k, _ in labels} <= {"feed", "outcome", "push", "kind", "state", "le"}


async def test_overlapping_flood_waits_count_the_time_paused_once(bot: Bot, now: datetime) -> None:
    for chat in (1, 2):
        bot.db.writer.subscribe(chat, "private", now)
    bot.server.set("/feed.xml", rss(1))
    await bot.service.poller.poll(bot.feed)
    bot.server.set("/feed.xml", rss(1, 2))
    await bot.service.poller.poll(bot.feed)
    bot.sender.script[1] = [Throttled(3.0)]  # both answers come while sends are paused
    bot.sender.script[2] = [Throttled(5.0)]
    await bot.service.drain()
    samples = scrape(bot.port)
    assert value(samples, "statement_bot_flood_waits_total") == 2
    assert value(samples, "statement_bot_flood_wait_seconds_total") == 5.0  # not 8


async def test_the_scrape_reads_while_the_bot_holds_the_write_lock(bot: Bot, now: datetime) -> None:
    bot.db.writer.subscribe(1, "private", now)
    bot.db.writer.db.execute("BEGIN IMMEDIATE")  # the writer thread mid-transaction
    try:
        samples = scrape(bot.port)
    finally:
        bot.db.writer.db.execute("ROLLBACK")
    assert value(samples, "statement_bot_database_readable") == 1
    assert value(samples, "statement_bot_subscribers", kind="private") == 1


def test_an_unreadable_database_is_a_gauge_not_a_failed_scrape(tmp_path: Path) -> None:
    metrics = PrometheusMetrics(tmp_path / "missing" / "bot.sqlite3", ["statements"])
    samples = parse(generate_latest(metrics.registry).decode())
    assert value(samples, "statement_bot_database_readable") == 0
    assert ("statement_bot_pending_deliveries", frozenset()) not in samples
    assert value(samples, "statement_bot_polls_total", feed="statements", outcome="ok") == 0


def test_each_bot_counts_into_its_own_registry(tmp_path: Path) -> None:
    one = PrometheusMetrics(tmp_path / "a.sqlite3", ["statements"])
    two = PrometheusMetrics(tmp_path / "b.sqlite3", ["statements"])
    one.delivered("sent")
    assert one.deliveries.labels("sent")._value.get() == 1
    assert two.deliveries.labels("sent")._value.get() == 0


def test_metrics_are_off_unless_configured(tmp_path: Path) -> None:
    assert metrics_for(build_config(tmp_path)) is NO_METRICS


@pytest.mark.parametrize(
    "address", ["9464", "127.0.0.1", ":9464", "::1:9464", "host name:9464", "host:0", "host:65536"]
)
def test_a_bad_metrics_address_is_one_config_line_naming_the_key(
    tmp_path: Path, address: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(tmp_path, metrics=address)
    assert caught.value.problems == [
        f'{tmp_path / "bot.toml"}: bot.metrics: must be "host:port" such as "127.0.0.1:9464", '
        f"got {address!r}"
    ]


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9464", ("::1", 9464)),
     ("0.0.0.0:9464", ("0.0.0.0", 9464)), ("localhost:9464", ("localhost", 9464))],
)  # fmt: skip
def test_metrics_addresses(tmp_path: Path, address: str, expected: tuple[str, int]) -> None:
    assert build_config(tmp_path, metrics=address).metrics == expected


def test_stopping_the_endpoint_frees_its_port(tmp_path: Path) -> None:
    port = free_port()
    metrics = PrometheusMetrics(tmp_path / "bot.sqlite3", [], ("127.0.0.1", port))
    metrics.start()
    thread = metrics._thread
    assert scrape(port)
    metrics.stop()
    assert thread is not None and not thread.is_alive()
    with pytest.raises(OSError, match="Connection refused"):
        scrape(port)
    metrics.stop()  # twice is harmless
    again = PrometheusMetrics(tmp_path / "bot.sqlite3", [], ("127.0.0.1", port))
    again.start()  # a restarted bot gets its port back at once
    again.stop()


def write_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "bot.toml"
    path.write_text(
        f'[bot]\nstate = "state"\nmetrics = "127.0.0.1:{port}"\n'
        f'[[feeds]]\nname = "statements"\nurl = "{SAMPLES / "embassy-rss.xml"}"\n'
        "announce_first = 3\n"
        '[[counters]]\nsince = 2018-03-04\ntext = "{days} days"\n',
        encoding="utf-8",
    )
    return path


def test_a_metrics_port_in_use_stops_the_run_with_one_line_and_exit_6(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["--config", str(write_config(tmp_path, port)), "run", "--console", "--once"])
    err = capsys.readouterr().err  # the console's log goes to stderr too
    assert code == EXIT_METRICS == 6
    assert [line for line in err.splitlines() if line.startswith("statement-bot:")] == [
        f"statement-bot: bot.metrics: cannot serve metrics on 127.0.0.1:{port}: "
        "Address already in use"
    ]
    assert "Traceback" not in err


@pytest.mark.slow
def test_the_console_bot_serves_metrics_until_it_stops(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEMENT_BOT")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), "run", "--console"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        samples: Samples = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                samples = scrape(port)
            except OSError:
                time.sleep(0.1)
                continue
            if value(samples, "statement_bot_fanout_duration_seconds_count") == 3:
                break  # the three announced statements reached the console chat
            time.sleep(0.1)
        assert samples, f"no metrics from the bot; exit {proc.poll()}"
        assert value(samples, "statement_bot_polls_total", feed="statements", outcome="ok") == 1
        assert recorded(samples, "pushed") == 3
        assert value(samples, "statement_bot_deliveries_total", outcome="sent") == 3
        assert value(samples, "statement_bot_fanout_duration_seconds_count") == 3
        assert value(samples, "statement_bot_pending_deliveries") == 0
        assert value(samples, "statement_bot_subscribers", kind="console") == 1
    finally:
        _, err = proc.communicate("", timeout=30)  # the end of input stops the console
    assert proc.returncode == 0, err
    with pytest.raises(OSError):
        scrape(port)  # the endpoint stopped with the bot
