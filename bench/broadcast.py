"""A new statement to N chats by the real `statement-bot run` process, paid or free.

    python -m bench.broadcast --chats 10000 --channels 100          # paid broadcasts, 1000/s
    python -m bench.broadcast --chats 2100 --free                   # the free limit, 30/s

The bot runs as in production (its own rate limiter, `[bot] paid_broadcast = true` unless
--free) against the lean fake Bot API (bench.lean_api, a process of its own) and a feed server
with a 500-item feed. N subscribers: private chats plus `--channels` channels from the config.
Before the bot starts, a bare aiohttp client sends N messages to the same fake: what the
machine can do without the bot, printed beside it.

Two fan-outs, one statement each:
1. quiet: the feed answers 304 Not Modified, so the bot only sends;
2. polled (paid only): the feed's body changes before every poll (same items), so each poll
   (every --interval s) is a full feedparser parse of 500 items during the fan-out; the send
   rate in the half second after each poll shows what a parse costs the sends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    GLUSHKOV,
    SALISBURY,
    TOKEN,
    FakeApiProcess,
    cpu_seconds,
    now_utc,
    print_machine,
    print_table,
    rss_feed,
    seed_subscribers,
)
from bench.fanout import bare_client, busiest_second, per_window
from bench.memory import toml_string
from bot.store import Store
from tests.fakes.feed_server import FeedServer, strong_etag

FIRST_CHANNEL = -1_001_000_000_000


def write_config(root: Path, feed_url: str, args: argparse.Namespace) -> Path:
    channels = [FIRST_CHANNEL - i for i in range(args.channels)]
    lines = [
        "[bot]",
        f"state = {toml_string(str(root / 'state'))}",
        'timezone = "Europe/London"',
        'clocks = ["Europe/Moscow", "Europe/London"]',
        f"channels = [{', '.join(str(c) for c in channels)}]",
        f"paid_broadcast = {'false' if args.free else 'true'}",
        "[[feeds]]",
        'name = "statements"',
        f"url = {toml_string(feed_url)}",
        f"interval = {args.interval:g}",
        "jitter = 0",
    ]
    for since, text in (("2018-03-04", SALISBURY), ("2018-03-12", GLUSHKOV)):
        lines += ["[[counters]]", f"since = {since}", f"text = {toml_string(text)}"]
    config = root / "bot.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


class PollWatcher:
    """Notes when the bot asks for the feed; with `vary`, gives every poll a new body."""

    def __init__(self, feeds: FeedServer, body: bytes) -> None:
        self.feeds = feeds
        self.body = body
        self.vary = False
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        seen = len(self.feeds.requests_for("/feed.xml"))
        build = 0
        while not self._stop.wait(0.005):
            now = len(self.feeds.requests_for("/feed.xml"))
            if now > seen:
                self.times.extend([time.monotonic()] * (now - seen))
                seen = now
                if self.vary:  # the same items in a new document: a full parse next time
                    build += 1
                    self.set(self.body.replace(b"Benchmark feed", b"Benchmark feed %d" % build))

    def set(self, body: bytes) -> None:
        self.feeds.set("/feed.xml", body, etag=strong_etag(body))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


async def fan_out(
    fake: FakeApiProcess, proc: subprocess.Popen[bytes], watcher: PollWatcher, body: bytes,
    chats: int, timeout: float,
) -> dict[str, Any]:  # fmt: skip
    """Publish `body` (one new statement) and wait until every chat has it."""
    await fake.clear()
    cpu_before = cpu_seconds(proc.pid)
    watcher.body = body
    watcher.set(body)
    published = time.monotonic()
    first = await fake.wait_for(1, timeout)  # the poll that found it is done: sending starts
    cpu_first = cpu_seconds(proc.pid)
    stats = await fake.wait_for(chats, timeout)
    cpu = cpu_seconds(proc.pid) - cpu_before
    sending_cpu = cpu_seconds(proc.pid) - cpu_first
    sent_before = first["count"]
    stamps: list[float] = stats["stamps"]
    polls = [t for t in watcher.times if published <= t <= (stamps[-1] if stamps else t)]
    return {"stats": stats, "cpu": cpu, "published": published, "polls": polls,
            "sending_cpu": sending_cpu, "sent_before": sent_before}  # fmt: skip


def rate_after(stamps: list[float], start: float, width: float) -> float:
    return sum(1 for t in stamps if start <= t < start + width) / width


async def run(args: argparse.Namespace) -> int:
    mode = "free limit (30/s)" if args.free else "paid broadcasts (1000/s)"
    print(f"`statement-bot run`: a new statement to {args.chats} chats "
          f"({args.channels} of them channels), {mode}\n")  # fmt: skip
    print_machine()
    base = now_utc() - timedelta(days=30)
    private = args.chats - args.channels
    rows: list[tuple[str, object]] = []
    async with FakeApiProcess(lean=True) as fake:
        bare_rate, bare_cpu = await bare_client(fake.base_url, args.chats, 64)
        with tempfile.TemporaryDirectory(prefix="bench-broadcast-") as tmp, FeedServer() as feeds:
            root = Path(tmp)
            first = rss_feed(range(args.items), base)
            watcher = PollWatcher(feeds, first)
            watcher.set(first)
            config = write_config(root, feeds.url("/feed.xml"), args)
            store = Store.open(root / "state" / "bot.sqlite3")
            seed_subscribers(store, private, now_utc())
            store.close()
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("TELEGRAM", "STATEMENT"))}  # fmt: skip
            env.update(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE_URL=fake.base_url)
            log = (root / "bot.log").open("wb")
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "--config", str(config), "run"],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
            )  # fmt: skip
            watcher.start()
            try:
                deadline = time.monotonic() + 60
                while not watcher.times or "getUpdates" not in (await fake.stats())["calls"]:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("the bot did not start; see its log")
                    await asyncio.sleep(0.1)
                await asyncio.sleep(args.interval + 1)  # the baseline poll is recorded
                quiet = await fan_out(fake, proc, watcher, rss_feed(range(args.items + 1), base),
                                      args.chats, args.timeout)  # fmt: skip
                polled = None
                if not args.free and not args.quiet_only:
                    watcher.vary = True
                    polled = await fan_out(
                        fake, proc, watcher, rss_feed(range(args.items + 2), base), args.chats,
                        args.timeout,
                    )  # fmt: skip
            finally:
                watcher.stop()
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(30)
                log.close()
                if args.keep_log:
                    print((root / "bot.log").read_text(errors="replace")[-args.keep_log :])

    for name, result in (("quiet", quiet), ("polled", polled)):
        if result is None:
            continue
        stats, stamps = result["stats"], result["stats"]["stamps"]
        if len(stamps) < 2:
            print(f"{name}: only {len(stamps)} messages accepted")
            return 1
        per_message = result["sending_cpu"] / max(1, stats["count"] - result["sent_before"]) * 1e6
        span = stamps[-1] - stamps[0]
        sustained = (len(stamps) - 1) / span
        windows = [r for _, n, r in per_window(stamps, 1.0)][:-1] or [sustained]
        rows += [
            (f"{name}: messages accepted", f"{stats['count']} to {stats['chats']} chats"
             f" ({stats['paid_broadcast']} with allow_paid_broadcast)"),
            (f"{name}: published to first message",
             f"{(stamps[0] - result['published']) * 1000:.0f} ms"),
            (f"{name}: first to last accepted", f"{span:.2f} s"),
            (f"{name}: sustained rate", f"**{sustained:.1f} msg/s**"),
            (f"{name}: busiest second / slowest whole second",
             f"{busiest_second(stamps)} / {min(windows):.0f} messages"),
            (f"{name}: bot CPU, first to last message (sending only)",
             f"{result['sending_cpu']:.2f} s, **{per_message:.0f} µs per message**"),
            (f"{name}: bot CPU, publish to last message (+ the poll that found it)",
             f"{result['cpu']:.2f} s, {result['cpu'] / stats['count'] * 1e6:.0f} µs per "
             f"message"),
        ]  # fmt: skip
        if not args.free:
            rows.append((f"{name}: of 1000/s", f"{sustained / 10:.1f}%"))
        else:
            rows.append((f"{name}: of 30/s", f"{sustained / 30:.1%}"))
        if name == "polled":
            after = [rate_after(stamps, t, 0.5) for t in result["polls"]
                     if stamps[0] <= t <= stamps[-1] - 0.5]  # fmt: skip
            if after:
                dip = 1 - statistics.median(after) / sustained
                rows += [
                    ("polled: full parses of the 500-item feed during the fan-out", len(after)),
                    ("polled: send rate in the 0.5 s after each poll (median / lowest)",
                     f"{statistics.median(after):.0f} / {min(after):.0f} msg/s"),
                    ("polled: dip after a poll (median, against the sustained rate)",
                     f"**{dip:.0%}**"),
                ]  # fmt: skip
    rows += [
        ("bare aiohttp client, same fake, same run",
         f"{bare_rate:.0f} msg/s, {bare_cpu * 1e6:.0f} µs CPU per message"),
        ("exit code after SIGTERM", code),
    ]  # fmt: skip
    print_table(["fan-out", "result"], rows)
    return 0 if code == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=10_000, help="subscribers in all")
    parser.add_argument("--channels", type=int, default=100, help="of them channels")
    parser.add_argument("--free", action="store_true", help="paid_broadcast = false (30/s)")
    parser.add_argument("--items", type=int, default=500, help="items in the feed")
    parser.add_argument("--interval", type=float, default=2, help="seconds between polls")
    parser.add_argument("--quiet-only", action="store_true", help="skip the polled fan-out")
    parser.add_argument("--timeout", type=float, default=900, help="give up after (s)")
    parser.add_argument("--keep-log", type=int, default=0, help="print the log's last N chars")
    args = parser.parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
