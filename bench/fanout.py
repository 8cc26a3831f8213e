"""Fan-out: one new statement to N subscribers through the real sending path.

    python -m bench.fanout --chats 2100 --rate 30            # Telegram's free limit, ~70 s
    python -m bench.fanout --chats 10000 --paid-broadcast    # paid broadcasts, 1000/s
    python -m bench.fanout --chats 10000 --rate 0            # no limiter: the bot's ceiling
    python -m bench.fanout --chats 10000 --rate 0 --profile  # ... and where the time goes
    python -m bench.fanout --chats 10000 --rate 0 --lean --baseline  # vs a bare aiohttp client

The real Store (an SQLite file in a temporary folder) holds N private chats; record_poll writes
the new statement and its N outbox rows; the Service's DeliveryEngine drains them through the
TelegramSender on a python-telegram-bot Application made by build_application, whose HTTP stack
talks to the fake Bot API running in a process of its own. Rates are read from the times the
fake accepted each message.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

from bench.common import (
    TOKEN,
    FakeApiProcess,
    RssSampler,
    bench_config,
    cpu_seconds,
    mib,
    now_utc,
    print_machine,
    print_table,
    proc_status,
    seed_subscribers,
)
from bot import runtime
from bot.fetch import make_client
from bot.logs import configure_logging
from bot.model import Statement
from bot.poller import record_poll
from bot.service import Service
from bot.store import Store
from bot.telegram_bot import PER_CHAT_INTERVAL, build_application
from bot.telegram_sender import TelegramSender

# Where a profiled function's time is counted: the first fragment found in its file name
# (or, for C functions, in its name).
AREAS: tuple[tuple[str, str], ...] = (
    ("/telegram/", "python-telegram-bot"),
    ("/httpx/", "httpx"),
    ("/aiohttp/", "aiohttp"),
    ("/yarl/", "aiohttp"),
    ("/multidict/", "aiohttp"),
    ("/httpcore/", "httpcore"),
    ("/h11/", "h11 (HTTP/1.1 parsing)"),
    ("/anyio/", "anyio"),
    ("/aiolimiter/", "aiolimiter"),
    ("importlib", "imports at run time"),
    ("/bot/store.py", "bot: store (SQLite)"),
    ("sqlite3", "bot: store (SQLite)"),
    ("/bot/render.py", "bot: rendering"),
    ("/bot/text.py", "bot: rendering"),
    ("/bot/counters.py", "bot: rendering"),
    ("/bot/commands.py", "bot: rendering"),
    ("/zoneinfo/", "bot: rendering"),
    ("/bot/", "bot: delivery engine"),
    ("/asyncio/", "asyncio event loop"),
    ("select", "socket I/O (kernel)"),
    ("socket", "socket I/O (kernel)"),
    ("/json/", "json"),
    ("json", "json"),
)


def area_of(filename: str, name: str) -> str:
    where = filename if filename != "~" else name
    for fragment, area in AREAS:
        if fragment in where:
            return area
    return "other (stdlib, builtins)"


def print_profile(profile: cProfile.Profile, top: int) -> None:
    stats = pstats.Stats(profile)
    raw = stats.stats  # type: ignore[attr-defined]  # {(file, line, name): (cc, nc, tt, ct, callers)}
    total = sum(entry[2] for entry in raw.values())
    by_area: dict[str, float] = defaultdict(float)
    for (filename, _line, name), entry in raw.items():
        by_area[area_of(filename, name)] += entry[2]
    print(f"Where the time goes (cProfile, own time per area; {total:.2f} s profiled):\n")
    print_table(
        ["area", "seconds", "share"],
        [
            (area, f"{seconds:.2f}", f"{seconds / total:.0%}")
            for area, seconds in sorted(by_area.items(), key=lambda kv: -kv[1])
        ],
    )
    print(f"Top {top} functions by own time:\n")
    rows = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    print_table(
        ["function", "calls", "own s", "cumulative s"],
        [
            (
                f"{Path(filename).name}:{line} {name}" if filename != "~" else name,
                entry[1],
                f"{entry[2]:.2f}",
                f"{entry[3]:.2f}",
            )
            for (filename, line, name), entry in rows
        ],
    )


async def bare_client(base_url: str, count: int, concurrency: int) -> tuple[float, float]:
    """A bare aiohttp.ClientSession sending `count` sendMessage requests, `concurrency` at a
    time, to the same fake: what the machine can do without the bot. (msg/s, CPU s/msg)."""
    import aiohttp

    url = f"{base_url}{TOKEN}/sendMessage"
    text = "The lead of the new statement. " * 12
    next_chat = iter(range(count))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            for n in next_chat:
                payload = {"chat_id": 900_000_000 + n, "text": text, "parse_mode": "HTML"}
                async with session.post(url, json=payload) as response:
                    await response.read()

        cpu = cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        return count / wall, (cpu_seconds() - cpu) / count


def busiest_second(stamps: list[float]) -> int:
    """Most messages accepted within any 1 s (what a per-second flood limit counts)."""
    best = start = 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def per_window(stamps: list[float], width: float) -> list[tuple[str, int, float]]:
    """Messages accepted in each `width`-second window from the first one."""
    first = stamps[0]
    counts: dict[int, int] = defaultdict(int)
    for stamp in stamps:
        counts[int((stamp - first) // width)] += 1
    last = max(counts)
    rows = []
    for n in range(last + 1):
        end = min((n + 1) * width, stamps[-1] - first)
        span = end - n * width
        rate = counts[n] / span if span > 0 else float("nan")
        rows.append((f"{n * width:.0f}-{end:.0f} s", counts[n], rate))
    return rows


async def fan_out(args: argparse.Namespace) -> int:
    if not args.quiet_log:
        configure_logging("INFO", "text", sys.stderr)  # as in production (httpx quiet)
    limiter = (
        "paid broadcast (PTB's 1000/s limiter)"
        if args.paid_broadcast
        else (f"AIORateLimiter {args.rate:g}/s" if args.rate else "no rate limiter")
    )
    print(f"Fan-out of one statement to {args.chats} chats, {limiter}\n")
    print_machine()
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        state = Path(tmp) / "state"
        async with FakeApiProcess(enforce_limits=args.enforce_limits, lean=args.lean) as fake:
            baseline = None
            if args.baseline:
                baseline = await bare_client(fake.base_url, args.chats, args.concurrency or 64)
                await fake.clear()
            config = bench_config(state, api_base_url=fake.base_url)
            feed = config.feeds[0]
            store = Store.open(config.database_path)
            now = now_utc()
            old = Statement("old", "An old statement", "https://example.org/old",
                            now - timedelta(days=1), "Already known.")  # fmt: skip
            record_poll(store, feed, [old], now)  # the first poll: baseline, nothing pushed
            seed_subscribers(store, args.chats, now)

            app = build_application(config, TOKEN, max_rate=None if args.rate == 0 else args.rate)
            client = make_client(config.fetch_timeout)

            async def notify_admins(text: str) -> None:
                print(f"admin notice: {text}", file=sys.stderr)

            sender = TelegramSender(app.bot, paid_broadcast=args.paid_broadcast)
            # As run_telegram wires it (plus --concurrency, when given, for experiments).
            tuning = {"concurrency": args.concurrency} if args.concurrency else {}
            service = Service(
                config,
                store,
                client,
                sender,
                notify_admins,
                per_chat_interval=PER_CHAT_INTERVAL,
                **tuning,
            )
            await app.initialize()  # getMe, as at start-up
            idle = proc_status()

            lead = "The lead of the new statement. " * 12
            new = Statement("new", "A new statement", "https://example.org/new", now, lead)
            started = time.perf_counter()
            report = record_poll(store, feed, [new, old], now_utc())
            record_seconds = time.perf_counter() - started
            assert report.deliveries == args.chats, report

            sampler = RssSampler()
            sampler.start()
            fake_cpu_before = (await fake.stats())["cpu_seconds"]
            cpu_before = cpu_seconds()
            # CPU time, not wall time: waiting in epoll is not a cost.
            profile = cProfile.Profile(time.process_time) if args.profile else None
            kicked = time.monotonic()
            if profile:
                profile.enable()
            service.start_scheduler(poll_now=False)  # its sweep restarts a paused drain
            service.kick_delivery()
            stats = await fake.wait_for(args.chats, timeout=args.timeout)
            while store.status().pending and time.monotonic() - kicked < args.timeout:
                await asyncio.sleep(0.05)  # the last answers are still being recorded
            done = time.monotonic()
            if profile:
                profile.disable()
            cpu = cpu_seconds() - cpu_before
            fake_cpu = stats["cpu_seconds"] - fake_cpu_before
            await sampler.stop()
            await service.stop()
            status = store.status()
            await app.shutdown()
            await client.aclose()
            store.close()

    stamps: list[float] = stats["stamps"]
    if len(stamps) < 2:
        print(f"only {len(stamps)} messages accepted within {args.timeout} s")
        return 1
    span = stamps[-1] - stamps[0]
    sustained = (len(stamps) - 1) / span if span > 0 else float("inf")
    wall = done - kicked
    rows: list[tuple[str, object]] = [
        ("messages accepted by the fake", f"{stats['count']} to {stats['chats']} chats"),
        ("still pending / failed in the outbox", f"{status.pending} / {status.failed}"),
        ("record_poll (statement + outbox rows)", f"{record_seconds * 1000:.0f} ms"),
        ("first message after the kick", f"{(stamps[0] - kicked) * 1000:.0f} ms"),
        ("first to last accepted message", f"{span:.2f} s"),
        ("sustained rate (first to last)", f"{sustained:.1f} msg/s"),
        ("kick to outbox empty", f"{wall:.2f} s ({stats['count'] / wall:.1f} msg/s)"),
        ("busiest second (any 1 s window)", f"{busiest_second(stamps)} messages"),
    ]
    target = 1000.0 if args.paid_broadcast else args.rate
    if target:
        rows.append(("achieved / target", f"{sustained / target:.1%} of {target:g}/s"))
    rows += [
        ("429 answers from the fake", stats["flood_rejections"]),
        ("sent with allow_paid_broadcast", stats["paid_broadcast"]),
        ("bot CPU (this process)", f"{cpu:.2f} s = {cpu / wall:.0%} of one core"),
        ("bot CPU per message", f"{cpu / max(1, stats['count']) * 1e6:.0f} µs"),
        ("fake Bot API CPU (its process)", f"{fake_cpu:.2f} s = {fake_cpu / wall:.0%} of one core"),
        ("RSS idle, after start-up", mib(idle["VmRSS"])),
        ("RSS during the fan-out (max sampled)", mib(max(sampler.samples))),
        ("peak RSS (VmHWM)", mib(proc_status()["VmHWM"])),
    ]
    if baseline:
        bare_rate, bare_cpu = baseline
        rows += [
            ("bare aiohttp client, same fake, same run", f"{bare_rate:.1f} msg/s, "
             f"{bare_cpu * 1e6:.0f} µs CPU per message"),
            ("the bot / the bare client", f"{sustained / bare_rate:.0%}"),
        ]  # fmt: skip
    print_table(["fan-out", "result"], rows)
    if span >= 20:
        print("Per 10 s window (from the first accepted message):\n")
        print_table(
            ["window", "messages", "msg/s"],
            [(w, n, f"{r:.1f}") for w, n, r in per_window(stamps, 10.0)],
        )
    if profile:
        print_profile(profile, args.top)
    ok = stats["count"] >= args.chats and status.pending == 0
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=10_000, help="subscribers (default 10000)")
    parser.add_argument(
        "--rate", type=float, default=30, help="AIORateLimiter messages/s; 0 = none (default 30)"
    )
    parser.add_argument(
        "--paid-broadcast",
        action="store_true",
        help="send with allow_paid_broadcast (PTB then limits to 1000/s)",
    )
    parser.add_argument(
        "--enforce-limits",
        action="store_true",
        help="the fake answers 429 beyond 30/s overall (Telegram's free limit)",
    )
    parser.add_argument(
        "--concurrency", type=int, help="messages in flight (default: the bot's own setting)"
    )
    parser.add_argument("--lean", action="store_true", help="the lean fake (bench.lean_api)")
    parser.add_argument(
        "--baseline", action="store_true", help="first time a bare aiohttp client on the fake"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the fan-out")
    parser.add_argument("--top", type=int, default=25, help="functions listed by --profile")
    parser.add_argument("--timeout", type=float, default=900, help="give up after (s)")
    parser.add_argument("--quiet-log", action="store_true", help="no bot log on stderr")
    args = parser.parse_args(argv)
    logging.captureWarnings(True)
    # The bot's own loop and collector settings (bot.runtime), for the bot and the bare client.
    return runtime.run(fan_out(args))


if __name__ == "__main__":
    sys.exit(main())
