"""Poll cost: what one poll of a big feed costs when nothing changed, and when a few items are new.

    python -m bench.poll_cost --items 500 --new 5

A feed of N RSS items (each the size of the embassy's: title, link, guid, date, an HTML lead)
is served over HTTP by the test suite's FeedServer on 127.0.0.1, and the real Poller polls it
(httpx conditional GET, feedparser in a worker thread, apply_poll into an SQLite file). Three
cases: the server answers 304 (its ETag matched), 200 with the same body (a server without
validators), and 200 with `--new` items on top. Each poll is split into fetch, parse (of which
feedparser itself) and record by timing wrappers around the functions the Poller calls.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import feedparser

import bot.poller
import bot.sources
from bench.common import (
    bench_config,
    now_utc,
    print_machine,
    print_table,
    rss_feed,
    seed_subscribers,
)
from bot.fetch import make_client
from bot.poller import Poller
from bot.store import AsyncStore
from tests.fakes.feed_server import FeedServer, strong_etag

Spans = dict[str, list[float]]


def timing(fn: Callable[..., Any], name: str, spans: Spans) -> Callable[..., Any]:
    """`fn`, recording how long each call takes under `name` (sync or async)."""
    if asyncio.iscoroutinefunction(fn):

        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                spans[name].append(time.perf_counter() - started)

        return timed_async

    def timed_sync(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spans[name].append(time.perf_counter() - started)

    return timed_sync


async def measure(args: argparse.Namespace) -> list[tuple[object, ...]]:
    spans: Spans = defaultdict(list)
    # Wrap what Poller.poll calls, where it looks the names up: the feed source, since the
    # poller reads every document through bot.sources.
    bot.sources.fetch_feed = timing(bot.sources.fetch_feed, "fetch", spans)  # type: ignore[assignment]
    bot.sources.parse_feed = timing(bot.sources.parse_feed, "parse", spans)  # type: ignore[assignment]
    feedparser.parse = timing(feedparser.parse, "feedparser", spans)

    base = now_utc() - timedelta(days=60)
    numbers = list(range(args.items))
    body = rss_feed(numbers, base)
    rows: list[tuple[object, ...]] = []
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp, FeedServer() as server:
        config = bench_config(
            Path(tmp) / "state", feeds=[{"name": "statements", "url": server.url("/feed.xml")}]
        )
        feed = config.feeds[0]
        db = AsyncStore.open(config.database_path)
        store = db.writer  # the poller applies each poll on the writer connection
        seed_subscribers(store, args.subscribers, now_utc())
        store.apply_poll = timing(store.apply_poll, "record", spans)  # type: ignore[method-assign]
        client = make_client(config.fetch_timeout)

        async def notify_admins(text: str) -> None:
            print(f"admin notice: {text}", file=sys.stderr)

        poller = Poller(config, db, client, notify_admins, now_utc)

        async def run(case: str, runs: int, before: Callable[[int], None]) -> None:
            spans.clear()
            totals = []
            outcome = None
            for n in range(runs):
                before(n)
                started = time.perf_counter()
                outcome = await poller.poll(feed, force=True)
                totals.append(time.perf_counter() - started)
            assert outcome is not None and outcome.error is None, outcome
            total = statistics.median(totals)
            parts = {k: statistics.median(v) if v else 0.0 for k, v in spans.items()}
            parse = parts.get("parse", 0.0)
            rows.append(
                (
                    case,
                    f"{total * 1000:.1f} ms",
                    f"{parts.get('fetch', 0.0) * 1000:.1f} ms",
                    f"{parse * 1000:.1f} ms",
                    f"{parts.get('feedparser', 0.0) * 1000:.1f} ms",
                    f"{parts.get('record', 0.0) * 1000:.1f} ms",
                    f"{parse / total:.0%}",
                    runs,
                )
            )

        # The first poll records the baseline (nothing pushed); not one of the cases.
        server.set("/feed.xml", body, etag=strong_etag(body))
        started = time.perf_counter()
        first = await poller.poll(feed, force=True)
        baseline = time.perf_counter() - started
        assert first.report is not None and first.report.silent == args.items, first

        await run("304 Not Modified", args.runs, lambda n: None)

        server.set("/feed.xml", body)  # no validators: every poll is a full 200
        await run("200, same body", max(3, args.runs // 3), lambda n: None)

        def publish(n: int) -> None:
            # `--new` items on top, the oldest as many drop off the end, as a real feed moves.
            first_number = args.items + n * args.new
            fresh = rss_feed(range(first_number + args.new - args.items, first_number + args.new),
                             base)  # fmt: skip
            server.set("/feed.xml", fresh, etag=strong_etag(fresh))

        await run(f"200, {args.new} new items", max(3, args.runs // 3), publish)
        pending = store.status().pending
        await client.aclose()
        db.close()

    print(f"Feed of {args.items} items ({len(body) / 1024:.0f} KiB), {args.subscribers} "
          f"subscribers; first poll (baseline) {baseline * 1000:.0f} ms\n")  # fmt: skip
    print(f"{pending} outbox rows written by the new-items polls.\n")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=500, help="items in the feed")
    parser.add_argument("--new", type=int, default=5, help="new items per poll in the last case")
    parser.add_argument("--subscribers", type=int, default=1000, help="active chats")
    parser.add_argument("--runs", type=int, default=30, help="polls timed for 304")
    args = parser.parse_args(argv)
    print_machine()
    rows = asyncio.run(measure(args))
    print_table(
        ["poll", "total", "fetch", "parse", "of it feedparser", "apply_poll", "parse share",
         "polls"],
        rows,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
