"""Storage faults during a fan-out, at full scale (issue 9; docs/reliability.md).

    python -m bench.db_faults                       # all three, about 2 minutes
    python -m bench.db_faults --fault lock --hold 40
    python -m bench.db_faults --fault disk --hold 20
    python -m bench.db_faults --fault wal --chats 2100

The real Service (its DeliveryEngine, its 5 s sweep, the AsyncStore with the default 3 s busy
timeout) delivers one new statement to N private chats through a fake Telegram that accepts 30
messages a second (Telegram's free limit) and counts what each chat received. After a third of
the chats:
  lock  another process takes SQLite's write lock (BEGIN IMMEDIATE) for --hold seconds;
  disk  the writer's database is full (PRAGMA max_page_count: SQLITE_FULL) for --hold seconds;
  wal   no fault: how big the WAL gets during the fan-out and after it.
Meanwhile a reader asks for the newest statement through AsyncStore.read every 100 ms (as
/latest does) and a ticker measures how long the event loop was ever blocked.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import REPO, bench_config, now_utc, print_machine, print_table, seed_subscribers
from bot.delivery import ChatAddress, SendOutcome, Sent
from bot.diff import PollDecision
from bot.fetch import make_client
from bot.model import Statement
from bot.service import Service
from bot.store import AsyncStore

HOLDER = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


class PacedTelegram:
    """Accepts `rate` messages a second overall; runs `hook` once after `fault_at` of them."""

    def __init__(self, rate: float) -> None:
        self.gap = 1 / rate
        self.next_slot = 0.0
        self.received: Counter[int | str] = Counter()
        self.fault_at = 0
        self.hook = None
        self.last_at = 0.0
        self.times: list[float] = []

    async def reachable(self) -> bool:
        return True

    async def send(self, chat: ChatAddress, html: str) -> SendOutcome:
        slot = max(time.monotonic(), self.next_slot)
        self.next_slot = slot + self.gap
        await asyncio.sleep(slot - time.monotonic() + 0.03)  # a slot, then the request itself
        self.received[chat.chat_id] += 1
        self.last_at = time.monotonic()
        self.times.append(self.last_at)
        if self.hook and sum(self.received.values()) == self.fault_at:
            hook, self.hook = self.hook, None
            await hook()
        return Sent(self.received[chat.chat_id])


async def run(fault: str, chats: int, hold: float, rate: float) -> list[tuple[str, object]]:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-db-faults-") as tmp:
        sample = REPO / "tests" / "data" / "samples" / "embassy-rss.xml"
        config = bench_config(
            Path(tmp) / "state", feeds=[{"name": "statements", "url": str(sample),
                                         "interval": 3600}]
        )  # fmt: skip
        db = AsyncStore.open(config.database_path)
        now = now_utc()
        seed_subscribers(db.writer, chats, now)
        db.writer.ensure_feed(config.feeds[0])
        lead = "The lead of the new statement. " * 12
        new = Statement("new", "A new statement", "https://example.org/new", now, lead)
        db.writer.apply_poll("statements", PollDecision(push=[new]), now)

        notices: list[tuple[float, str]] = []
        started = time.monotonic()

        async def notify_admins(text: str) -> None:
            notices.append((time.monotonic() - started, text))

        telegram = PacedTelegram(rate)
        telegram.fault_at = chats // 3
        fault_window: list[float] = []  # start, end (monotonic)
        holder: list[asyncio.subprocess.Process] = []
        wal = Path(f"{config.database_path}-wal")
        wal_sizes: list[int] = []

        async def end_fault_later() -> None:
            await asyncio.sleep(hold)
            if fault == "disk":
                await db.write(lambda s: s.db.execute("PRAGMA max_page_count = 1073741823"))
            fault_window.append(time.monotonic())

        async def start_fault() -> None:
            if fault == "lock":
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", HOLDER, str(config.database_path), str(hold),
                    stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                holder.append(proc)
                assert proc.stdout is not None
                await proc.stdout.readline()
            else:
                pages = await db.write(lambda s: s.db.execute("PRAGMA page_count").fetchone()[0])
                await db.write(lambda s: s.db.execute(f"PRAGMA max_page_count = {pages}"))
            fault_window.append(time.monotonic())
            asyncio.get_running_loop().create_task(end_fault_later())

        if fault in ("lock", "disk"):
            telegram.hook = start_fault

        reads: list[float] = []
        longest_block = 0.0

        async def probe() -> None:
            nonlocal longest_block
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.1)
                now_ = time.perf_counter()
                longest_block = max(longest_block, now_ - last - 0.1)
                await db.read(lambda s: s.latest(1))
                reads.append(time.perf_counter() - now_)
                wal_sizes.append(wal.stat().st_size if wal.exists() else 0)
                last = time.perf_counter()

        client = make_client(config.fetch_timeout)
        service = Service(config, db, client, telegram, notify_admins)
        probing = asyncio.create_task(probe())
        service.start_scheduler(poll_now=False)
        service.kick_delivery()
        deadline = started + chats / rate + hold + 120
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            left = await db.read(lambda s: s.status().pending)
            if not left and not service.engine.unrecorded and len(fault_window) != 1:
                break
        finished = time.monotonic()
        probing.cancel()
        await service.stop()
        await client.aclose()
        sending = db.writer.db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'sending'"
        ).fetchone()[0]
        pending = db.writer.status().pending
        wal_after = wal.stat().st_size if wal.exists() else 0
        db.close()
        for proc in holder:
            await proc.wait()

    got = Counter(telegram.received.values())
    rows: list[tuple[str, object]] = [
        ("chats", chats),
        ("chats that got it once / twice+ / never",
         f"{got.get(1, 0)} / {sum(n for k, n in got.items() if k > 1)} / "
         f"{chats - len(telegram.received)}"),
        ("rows left sending / pending at the end", f"{sending} / {pending}"),
        ("kick to the last message accepted", f"{telegram.last_at - started:.1f} s"),
    ]  # fmt: skip
    if len(fault_window) == 2:
        rows.append(("fault", f"{fault} for {fault_window[1] - fault_window[0]:.1f} s"))
        end = fault_window[1]
        during = sum(fault_window[0] <= t < end for t in telegram.times)
        after = [t for t in telegram.times if t >= end]
        rows += [
            ("messages accepted during the fault", during),
            ("fault's end to the next message accepted",
             f"{after[0] - end:.1f} s" if after else "none left to send"),
            ("fault's end to every outcome recorded", f"{finished - end:.1f} s"),
        ]  # fmt: skip
    rows += [
        ("admin notices", " / ".join(f"{t:.0f} s: {text[:60]}" for t, text in notices) or "none"),
        ("read through AsyncStore.read: median / max",
         f"{sorted(reads)[len(reads) // 2] * 1000:.1f} / {max(reads) * 1000:.1f} ms"),
        ("event loop blocked, longest", f"{longest_block * 1000:.0f} ms"),
        ("WAL during / after", f"max {max(wal_sizes) / 1024:.0f} KiB / {wal_after / 1024:.0f} KiB"),
        ("wall time", f"{finished - started:.1f} s"),
    ]  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", choices=["lock", "disk", "wal", "all"], default="all")
    parser.add_argument("--chats", type=int, default=300)
    parser.add_argument("--hold", type=float, default=40.0, help="seconds the fault lasts")
    parser.add_argument("--rate", type=float, default=30.0, help="messages a second Telegram takes")
    args = parser.parse_args()
    print_machine()
    faults = ["lock", "disk", "wal"] if args.fault == "all" else [args.fault]
    for fault in faults:
        hold = args.hold if fault == "lock" else min(args.hold, 20.0)
        # The WAL case is about volume, not pace: many chats, as fast as the bot goes.
        chats, rate = (max(args.chats, 2100), 1000.0) if fault == "wal" else (args.chats, args.rate)
        print(f"### {fault}\n")
        print_table(["", ""], asyncio.run(run(fault, chats, hold, rate)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
