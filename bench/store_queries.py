"""Store: command answer times and the outbox's hot queries on a big database.

    python -m bench.store_queries --statements 100000 --subscribers 100000

Seeds the real schema (an SQLite file in a temporary folder) with N statements and M active
private chats by bulk SQL, then times what users and the fan-out wait for: /latest, /latest 20,
/counters, /status, /search, record_poll of one new statement (one outbox row per subscriber),
due_deliveries (the delivery engine's query for its next batch) and the per-message updates.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from bench.common import (
    Timing,
    bench_config,
    now_utc,
    print_machine,
    print_table,
    seed_statements,
    seed_subscribers,
    timed,
)
from bot import commands
from bot.model import Statement
from bot.poller import record_poll
from bot.store import Store


def db_size(store: Store) -> int:
    """Bytes on disk after a checkpoint (the WAL folded into the main file)."""
    assert store.path is not None
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in store.path.parent.glob(store.path.name + "*"))


def row(what: str, timing: Timing) -> tuple[str, str, str, str, int]:
    return (what, timing.ms(timing.median), timing.ms(timing.p95), timing.ms(timing.best),
            timing.runs)  # fmt: skip


def once(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--statements", type=int, default=100_000)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200, help="timed runs of each command")
    args = parser.parse_args(argv)
    queue_runs = max(3, args.runs // 20)  # the outbox queries are slow enough to need fewer

    print(f"Store with {args.statements} statements and {args.subscribers} subscribers\n")
    print_machine()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        config = bench_config(Path(tmp) / "state")
        feed = config.feeds[0]
        store = Store.open(config.database_path)
        now = now_utc()
        started = time.perf_counter()
        seed_statements(store, feed.name, args.statements, now - timedelta(hours=1))
        store.db.execute("UPDATE feeds SET baseline_done = 1 WHERE name = ?", [feed.name])
        seed_subscribers(store, args.subscribers, now)
        seeding = time.perf_counter() - started
        size_seeded = db_size(store)

        results = [
            row("/latest", timed(lambda: commands.latest_reply(store, config, now, []), args.runs)),
            row(
                "/latest 20",
                timed(lambda: commands.latest_reply(store, config, now, ["20"]), args.runs),
            ),
            row("/counters", timed(lambda: commands.counters_reply(config, now), args.runs)),
            row(
                "/status (empty outbox)",
                timed(lambda: commands.status_reply(store.status(), config, now), args.runs),
            ),
        ]
        # /search: a word in every statement (the worst case: the newest 10 of all), two words
        # that one statement has, and a prefix that nothing has.
        for words in (["statement"], ["number", str(args.statements // 2)], ["Salisb"]):
            results.append(
                row(f"/search {' '.join(words)}",
                    timed(lambda w=words: commands.search_reply(store, config, w), args.runs))
            )  # fmt: skip

        # One new statement, as a poll of the feed's newest 20 entries finds it.
        stored = store.latest(19)
        entries = [Statement("bench-new", "A new statement", "https://example.org/new", now,
                             "The lead.")]  # fmt: skip
        entries += [Statement(s.key, s.title, s.link, s.published, s.lead) for s in stored]
        record = once(lambda: record_poll(store, feed, entries, now))
        pending = store.status().pending
        size_outbox = db_size(store)

        results += [
            row(f"/status ({pending} pending)",
                timed(lambda: commands.status_reply(store.status(), config, now), queue_runs)),
            row(f"due_deliveries(500), {pending} pending",
                timed(lambda: store.due_deliveries(now, 500), queue_runs)),
        ]  # fmt: skip

        # Half the fan-out done: the engine's query for the second half.
        store.db.execute(
            "UPDATE deliveries SET status = 'sent' WHERE id IN "
            "(SELECT id FROM deliveries WHERE status = 'pending' ORDER BY id LIMIT ?)",
            [pending // 2],
        )
        half = store.status().pending
        results.append(
            row(f"due_deliveries(500), {half} pending",
                timed(lambda: store.due_deliveries(now, 500), queue_runs))
        )  # fmt: skip

        # What each message costs the store: the row marked sending, then sent.
        batch = store.due_deliveries(now, 500)

        def mark_batch() -> None:
            for delivery in batch:
                store.mark_sending(delivery.id, now)
                store.mark_sent(delivery.id, 1, now)

        per_message = once(mark_batch) / max(1, len(batch))
        store.close()

    print_table(["query", "median", "p95", "best", "runs"], results)
    print_table(
        ["one-off", "result"],
        [
            ("seeding (bulk SQL)", f"{seeding:.1f} s"),
            ("database size, seeded", f"{size_seeded / 1e6:.1f} MB"),
            (f"record_poll: 1 new statement, {pending} outbox rows", f"{record * 1000:.0f} ms"),
            (f"database size with {pending} outbox rows", f"{size_outbox / 1e6:.1f} MB"),
            ("mark_sending + mark_sent, per message", f"{per_message * 1e6:.0f} µs"),
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
