"""Poll cost: what one poll of a big feed costs when nothing changed, and when a few items are new.

    python -m bench.poll_cost --items 500 --new 5
    python -m bench.poll_cost --page --items 50 --new 1

A feed of N RSS items (each the size of the embassy's: title, link, guid, date, an HTML lead)
is served over HTTP by the test suite's FeedServer on 127.0.0.1, and the real Poller polls it
(httpx conditional GET, feedparser in a worker thread, apply_poll into an SQLite file). Three
cases: the server answers 304 (its ETag matched), 200 with the same body (a server without
validators), and 200 with `--new` items on top. Each poll is split into fetch, parse (of which
feedparser itself) and record by timing wrappers around the functions the Poller calls.
With `--page` the document is an embassy-like HTML list page read with CSS selectors
([feeds.page]) instead: the parse is parsel's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser

import bot.page
import bot.poller
import bot.sources
from bench.common import (
    LEAD,
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
    bot.page.parse_list_page = timing(bot.page.parse_list_page, "parse", spans)  # type: ignore[assignment]
    document = list_page if args.page else rss_feed
    content_type = "text/html; charset=utf-8" if args.page else "application/rss+xml"

    base = now_utc() - timedelta(days=60)
    numbers = list(range(args.items))
    body = document(numbers, base)
    rows: list[tuple[object, ...]] = []
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp, FeedServer() as server:
        table: dict[str, Any] = {"name": "statements", "url": server.url("/feed.xml")}
        if args.page:
            table["page"] = PAGE_SPEC
        config = bench_config(Path(tmp) / "state", feeds=[table])
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
        server.set("/feed.xml", body, etag=strong_etag(body), content_type=content_type)
        started = time.perf_counter()
        first = await poller.poll(feed, force=True)
        baseline = time.perf_counter() - started
        assert first.report is not None and first.report.silent == args.items, first

        await run("304 Not Modified", args.runs, lambda n: None)

        # No validators: every poll is a full 200, but the body's hash matches the last one's.
        server.set("/feed.xml", body, content_type=content_type)
        await run("200, same body", max(3, args.runs // 3), lambda n: None)

        def publish(n: int) -> None:
            # `--new` items on top, the oldest as many drop off the end, as a real feed moves.
            first_number = args.items + n * args.new
            fresh = document(range(first_number + args.new - args.items, first_number + args.new),
                             base)  # fmt: skip
            server.set("/feed.xml", fresh, etag=strong_etag(fresh), content_type=content_type)

        await run(f"200, {args.new} new items", max(3, args.runs // 3), publish)
        pending = store.status().pending
        await client.aclose()
        db.close()

    kind = "List page" if args.page else "Feed"
    print(f"{kind} of {args.items} items ({len(body) / 1024:.0f} KiB), {args.subscribers} "
          f"subscribers; first poll (baseline) {baseline * 1000:.0f} ms\n")  # fmt: skip
    print(f"{pending} outbox rows written by the new-items polls.\n")
    return rows


PAGE_SPEC = {
    "item": "div.news-item",
    "title": "a.title",
    "link": "a.title::attr(href)",
    "date": "span.date",
    "lead": "div.lead",
}


def list_page(numbers: Sequence[int], base: datetime) -> bytes:
    """An embassy-like list page: one item per number, newest (highest) first."""
    items = "\n".join(
        f'<div class="news-item"><span class="date">{base + timedelta(days=n):%d.%m.%Y}</span>'
        f' - <a class="title" href="/fnapr/{7000 + n}">Statement number {n} on bilateral '
        f'relations</a><div class="lead"><p>{LEAD}</p><p>Number {n}.</p></div></div>'
        for n in sorted(numbers, reverse=True)
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Press releases and news"
        "</title></head><body><div class='banner'>26 October 2021 Moscow: 00:54 London: 22:54"
        f"</div><div class='pages'>Pages: 1 2 3</div><div class='news-list'>{items}</div>"
        "</body></html>"
    ).encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=500, help="items in the feed")
    parser.add_argument("--new", type=int, default=5, help="new items per poll in the last case")
    parser.add_argument("--subscribers", type=int, default=1000, help="active chats")
    parser.add_argument("--runs", type=int, default=30, help="polls timed for 304")
    parser.add_argument("--page", action="store_true", help="an HTML list page, not RSS")
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
