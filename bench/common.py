"""Shared pieces of the benchmarks: configs, seeding, process memory, the fake Bot API process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from bot.config import Config, parse_config
from bot.store import Store, iso

TOKEN = "123456:BENCH-statement-bot-token"
REPO = Path(__file__).resolve().parent.parent
FIRST_CHAT_ID = 100_000_000  # private chats: positive ids, so only the overall limit applies

SALISBURY = (
    "{days} days have passed since the Salisbury incident - "
    "no credible information or response from the British authorities"
)
GLUSHKOV = (
    "{days} days have passed since the death of Nikolay Glushkov on British soil - "
    "no credible information or response from the British authorities"
)
LEAD = (
    "The two leaders discussed the state of bilateral relations, preparations for the UN "
    "Climate Change Conference in Glasgow and several international issues, including "
    "Afghanistan, the situation in Ukraine and the fight against the pandemic. "
)


def bench_config(state: Path, feeds: list[dict[str, Any]] | None = None, **bot: Any) -> Config:
    """The embassy bot's settings (two counters, two clocks), state in `state`."""
    raw: dict[str, Any] = {
        "bot": {
            "timezone": "Europe/London",
            "clocks": ["Europe/Moscow", "Europe/London"],
            "state": str(state),
            **bot,
        },
        "feeds": feeds or [{"name": "statements", "url": "https://example.org/rss"}],
        "counters": [
            {"since": "2018-03-04", "text": SALISBURY},
            {"since": "2018-03-12", "text": GLUSHKOV},
        ],
    }
    return parse_config(raw, env={}, source=state / "bot.toml")


def seed_subscribers(store: Store, count: int, now: datetime) -> None:
    """`count` active private chats, in one transaction (as many /start would leave them)."""
    stamp = iso(now)
    with store.db.atomic():
        store.db.conn.executemany(
            "INSERT INTO subscribers (chat_id, thread_id, kind, title, active, subscribed_at, "
            "changed_at) VALUES (?, NULL, 'private', ?, 1, ?, ?)",
            ((str(FIRST_CHAT_ID + i), f"user {i}", stamp, stamp) for i in range(count)),
        )


def seed_statements(store: Store, feed: str, count: int, newest: datetime) -> None:
    """`count` statements of `feed`, one an hour back from `newest`, in one transaction."""
    store.db.execute("INSERT OR IGNORE INTO feeds (name, url) VALUES (?, ?)", [feed, "seeded"])
    rows = []
    for i in range(count):
        at = iso(newest - timedelta(hours=count - i))
        rows.append((feed, f"https://example.org/statements/{i}", f"Seeded statement number {i}",
                     f"https://example.org/statements/{i}", at, LEAD * 2, at, at))  # fmt: skip
    with store.db.atomic():
        store.db.conn.executemany(
            "INSERT INTO statements (feed, key, title, link, published, lead, first_seen, "
            "sort_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def rss_item(number: int, published: datetime) -> str:
    """One RSS item the size of the embassy's: title, link, guid, date, an HTML lead."""
    date = published.strftime("%a, %d %b %Y %H:%M:%S +0000")
    return (
        f"<item><title>Statement number {number} on bilateral relations and "
        f"international issues</title>"
        f"<link>https://example.org/statements/{number}</link>"
        f'<guid isPermaLink="true">https://example.org/statements/{number}</guid>'
        f"<pubDate>{date}</pubDate><category>Press releases and news</category>"
        f"<description><![CDATA[<p>{LEAD}</p><p>{LEAD}</p>]]></description></item>\n"
    )


def rss_feed(numbers: Sequence[int], base: datetime) -> bytes:
    """A feed of the given item numbers, newest (highest) first; item n is published at base+n h."""
    items = "".join(rss_item(n, base + timedelta(hours=n)) for n in sorted(numbers, reverse=True))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        "<title>Statements</title><link>https://example.org/</link>"
        f"<description>Benchmark feed</description>\n{items}</channel></rss>\n"
    ).encode()


# ---- process facts ---------------------------------------------------------------------------


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB, from /proc/<pid>/status."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


class RssSampler:
    """Samples a process's VmRSS every `interval` seconds in the background of an event loop."""

    def __init__(self, pid: int | str = "self", interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[int] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.samples.append(proc_status(self.pid)["VmRSS"])
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.samples.append(proc_status(self.pid)["VmRSS"])


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="ascii") as info:
        total_kib = int(info.readline().split()[1])
    packages = ("python-telegram-bot", "httpx", "httpcore", "feedparser", "sqlite-utils",
                "aiolimiter", "aiohttp", "uvloop", "orjson")  # fmt: skip
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} -")
    try:
        sniffio = f"sniffio {metadata.version('sniffio')}"
    except metadata.PackageNotFoundError:
        sniffio = "sniffio not installed"
    return {
        "cpus": f"{os.cpu_count()} x {cpu}",
        "memory": f"{total_kib / 1024 / 1024:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "libraries": ", ".join([*versions, sniffio]),
    }


def print_machine() -> None:
    for key, value in machine().items():
        print(f"{key:>9}: {value}")
    print()


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table, so results paste straight into docs/benchmarks.md."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print()


@dataclass(frozen=True)
class Timing:
    median: float
    p95: float
    best: float
    runs: int

    def ms(self, value: float) -> str:
        return f"{value * 1000:.2f} ms" if value < 1 else f"{value:.2f} s"


def timed(fn: Callable[[], object], runs: int, *, warmup: int = 1) -> Timing:
    """Run `fn` warmup + runs times; median, 95th percentile and best of the timed runs."""
    for _ in range(warmup):
        fn()
    spans = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        spans.append(time.perf_counter() - started)
    spans.sort()
    return Timing(
        median=statistics.median(spans),
        p95=spans[min(len(spans) - 1, round(0.95 * (len(spans) - 1)))],
        best=spans[0],
        runs=runs,
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


# ---- the fake Bot API in its own process -----------------------------------------------------


class FakeApiProcess:
    """`python -m bench.fake_api_server` as a child process, driven over its stdin/stdout.

    The fake runs in its own process so that the bot under test has a core to itself (2-core
    machine); CLOCK_MONOTONIC is system-wide, so its timestamps compare with ours.
    """

    def __init__(self, *, enforce_limits: bool = False, lean: bool = False) -> None:
        self.enforce_limits = enforce_limits
        self.lean = lean  # bench.lean_api: a fake that costs a few µs per message
        self.proc: asyncio.subprocess.Process | None = None
        self.base_url = ""
        self.pid = 0

    async def __aenter__(self) -> FakeApiProcess:
        args = [sys.executable, "-m", "bench.fake_api_server", "--token", TOKEN]
        if self.enforce_limits:
            args.append("--enforce-limits")
        if self.lean:
            args.append("--lean")
        self.proc = await asyncio.create_subprocess_exec(
            *args,
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,  # a stats line holds every message's timestamp
        )
        hello = await self._read()
        self.base_url = hello["base_url"]
        self.pid = int(hello["pid"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            with contextlib.suppress(ConnectionError, RuntimeError):  # it may have gone already
                await self.request({"cmd": "quit"})
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    async def _read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the fake Bot API process exited")
        return json.loads(line)

    async def request(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()
        if command["cmd"] == "quit":
            return {}
        return await self._read()

    async def wait_for(self, count: int, timeout: float) -> dict[str, Any]:
        """Block (without blocking our loop) until the fake accepted `count` messages."""
        return await self.request({"cmd": "wait", "count": count, "timeout": timeout})

    async def stats(self) -> dict[str, Any]:
        return await self.request({"cmd": "wait", "count": 0, "timeout": 0})

    async def clear(self) -> None:
        await self.request({"cmd": "clear"})
