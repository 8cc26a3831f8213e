"""Memory: resident memory of the real bot process, idle and during a fan-out.

    python -m bench.memory --chats 10000 --window 60

Runs `statement-bot run` as a subprocess, exactly as in production (Telegram's 30/s limiter),
pointed at the fake Bot API and a feed server on 127.0.0.1, with N subscribers already in its
database. Reads VmRSS from /proc/<pid>/status while it idles after start-up, then publishes one
new statement and samples it during the fan-out for `--window` seconds (0: until every chat has
it; 10,000 chats at 30/s take about 5.5 minutes). VmHWM is the peak over the process's life.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, NamedTuple

from bench.common import (
    GLUSHKOV,
    SALISBURY,
    TOKEN,
    cpu_seconds,
    mib,
    now_utc,
    print_machine,
    print_table,
    proc_status,
    rss_feed,
    seed_subscribers,
)
from bot.store import Store
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.feed_server import FeedServer, strong_etag


def toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(root: Path, feed_url: str) -> Path:
    config = root / "bot.toml"
    lines = [
        "[bot]",
        f"state = {toml_string(str(root / 'state'))}",
        'timezone = "Europe/London"',
        'clocks = ["Europe/Moscow", "Europe/London"]',
        "[[feeds]]",
        'name = "statements"',
        f"url = {toml_string(feed_url)}",
        "interval = 2",
        "jitter = 0",
    ]
    for since, text in (("2018-03-04", SALISBURY), ("2018-03-12", GLUSHKOV)):
        lines += ["[[counters]]", f"since = {since}", f"text = {toml_string(text)}"]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def sample(pid: int, seconds: float, until: Callable[[], bool] | None = None) -> list[int]:
    """VmRSS every 0.5 s for `seconds` (or until `until()` is true)."""
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (until and until()):
        samples.append(proc_status(pid)["VmRSS"])
        time.sleep(0.5)
    samples.append(proc_status(pid)["VmRSS"])
    return samples


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def prepare_state(root: Path, feeds: FeedServer, chats: int, base: datetime) -> Path:
    """A config pointed at `feeds` (a 20-item feed) and a database with `chats` subscribers."""
    body = rss_feed(range(20), base)
    feeds.set("/feed.xml", body, etag=strong_etag(body))
    config = write_config(root, feeds.url("/feed.xml"))
    store = Store.open(root / "state" / "bot.sqlite3")
    seed_subscribers(store, chats, now_utc())
    store.close()
    return config


class BotState(NamedTuple):
    root: Path
    api: FakeBotAPI
    feeds: FeedServer
    config: Path
    base: datetime  # the sample feed's items are dated from here


@contextlib.contextmanager
def bot_state(chats: int, prefix: str) -> Iterator[BotState]:
    """What a benchmark of the real process starts from: a temporary folder with a config and
    `chats` subscribers (prepare_state), the fake Bot API and the feed server."""
    base = now_utc() - timedelta(days=30)
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as tmp,
        FakeBotAPI(token=TOKEN) as api,
        FeedServer() as feeds,
    ):
        root = Path(tmp)
        yield BotState(root, api, feeds, prepare_state(root, feeds, chats, base), base)


def start_bot(config: Path, root: Path, api_base_url: str, log: IO[bytes]) -> subprocess.Popen:
    """`statement-bot run` as in production, pointed at a fake Bot API; its output to `log`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM", "STATEMENT"))}
    env.update(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE_URL=api_base_url)
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), "run"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=10_000, help="subscribers")
    parser.add_argument("--idle", type=float, default=15, help="seconds sampled while idle")
    parser.add_argument(
        "--window", type=float, default=60, help="seconds sampled in the fan-out; 0: until done"
    )
    args = parser.parse_args(argv)
    print(f"Memory of `statement-bot run` with {args.chats} subscribers\n")
    print_machine()

    with bot_state(args.chats, "bench-memory-") as (root, api, feeds, config, base):
        log = (root / "bot.log").open("wb")
        started = time.monotonic()
        proc = start_bot(config, root, api.base_url, log)
        try:
            api.wait_for_call("getUpdates", 1, timeout=30)
            wait_until(lambda: len(feeds.requests_for("/feed.xml")) >= 1, 30, "the first poll")
            ready = time.monotonic() - started
            after_start = proc_status(proc.pid)["VmRSS"]
            idle = sample(proc.pid, args.idle)
            idle_cpu = cpu_seconds(proc.pid)

            fresh = rss_feed(range(21), base)  # one new item on top
            feeds.set("/feed.xml", fresh, etag=strong_etag(fresh))
            published = time.monotonic()
            wait_until(lambda: len(api.messages) >= 1, 30, "the first push")
            first = time.monotonic()
            window = args.window or float("inf")
            busy = sample(proc.pid, window, until=lambda: len(api.messages) >= args.chats)
            sent = api.sent_messages()
            peak = proc_status(proc.pid)["VmHWM"]
            fan_cpu = cpu_seconds(proc.pid) - idle_cpu
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
            log.close()

    span = sent[-1].monotonic - sent[0].monotonic if len(sent) > 1 else 0.0
    rate = (len(sent) - 1) / span if span else 0.0
    print_table(
        ["bot process", "result"],
        [
            ("start-up to the first feed request", f"{ready:.1f} s"),
            ("RSS right after start-up", mib(after_start)),
            (f"RSS idle ({args.idle:g} s, median / max)",
             f"{mib(statistics.median(idle))} / {mib(max(idle))}"),
            ("new item published to first push", f"{first - published:.1f} s"),
            ("messages sent while sampled", f"{len(sent)} of {args.chats} ({rate:.1f} msg/s)"),
            ("RSS during the fan-out (median / max)",
             f"{mib(statistics.median(busy))} / {mib(max(busy))}"),
            ("peak RSS over the whole run (VmHWM)", mib(peak)),
            ("bot CPU during the fan-out", f"{fan_cpu:.1f} s over {span:.0f} s"),
            ("exit code after SIGTERM", code),
        ],
    )  # fmt: skip
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
