"""Chats: how long another user's /latest waits while the bot is busy.

    python -m bench.chats --burst 3000                 # 3,000 /start from 3,000 chats at once
    python -m bench.chats --burst 3000 --one-chat --window 30   # ... all from one chat
    python -m bench.chats --fanout 10000 --window 60   # during a 10,000-chat fan-out at 30/s

Runs `statement-bot run` as a subprocess, as in production (its own rate limiter, 30/s), pointed
at the fake Bot API (a thread of this process) and a feed server on 127.0.0.1. While the bot is
busy with the burst or the fan-out, a new user sends /latest every `--every` seconds; each
probe's latency is from the moment its update was queued at the fake to the moment the fake
accepted the answer. The run ends when the burst is answered, or after `--window` seconds.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.common import TOKEN, now_utc, print_machine, print_table, rss_feed
from bench.memory import prepare_state, start_bot, wait_until
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.feed_server import FeedServer, strong_etag

BURST_CHAT = 200_000_000  # the burst's chats (private: only the overall limit applies)
PROBE_CHAT = 300_000_000  # each probe is a new user


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--burst", type=int, default=0, help="/start sent at once")
    parser.add_argument("--one-chat", action="store_true", help="the burst comes from one chat")
    parser.add_argument("--fanout", type=int, default=0, help="subscribers of a new statement")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between probes")
    parser.add_argument("--window", type=float, default=0, help="stop after (s); 0: when done")
    parser.add_argument("--enforce-limits", action="store_true", help="the fake answers 429s")
    args = parser.parse_args(argv)
    if bool(args.burst) == bool(args.fanout):
        parser.error("give one of --burst N or --fanout N")
    if args.fanout and not args.window:
        args.window = 60.0
    if args.burst:
        who = "one chat" if args.one_chat else f"{args.burst} chats"
        print(f"/latest during a burst of {args.burst} /start from {who}\n")
    else:
        print(f"/latest during a fan-out of one statement to {args.fanout} chats\n")
    print_machine()

    base = now_utc() - timedelta(days=30)
    with (
        tempfile.TemporaryDirectory(prefix="bench-chats-") as tmp,
        FakeBotAPI(token=TOKEN, enforce_limits=args.enforce_limits) as api,
        FeedServer() as feeds,
    ):
        root = Path(tmp)
        config = prepare_state(root, feeds, args.fanout, base)
        log_path = root / "bot.log"
        with log_path.open("wb") as log:
            proc = start_bot(config, root, api.base_url, log)
            try:
                api.wait_for_call("getUpdates", 1, timeout=30)
                wait_until(lambda: len(feeds.requests_for("/feed.xml")) >= 1, 30, "the first poll")
                time.sleep(1)  # the first poll recorded
                result = run(args, api, feeds, base)
            finally:
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(30)
        errors = [line for line in log_path.read_text(errors="replace").splitlines()
                  if " ERROR " in line]  # fmt: skip

    latencies, busy_sent, busy_span, done_after = result
    latencies.sort()
    late = sum(1 for t in latencies if t > 2.0)
    rows: list[tuple[str, object]] = [
        ("probes (a new user's /latest)", len(latencies)),
        ("answered in, median", f"{statistics.median(latencies):.2f} s"),
        ("answered in, 95th percentile", f"{latencies[round(0.95 * (len(latencies) - 1))]:.2f} s"),
        ("answered in, slowest", f"{latencies[-1]:.2f} s"),
        ("probes answered after more than 2 s", late),
    ]
    what = "burst replies" if args.burst else "pushes"
    rate = busy_sent / busy_span if busy_span else 0.0
    rows.append((f"{what} sent meanwhile", f"{busy_sent} in {busy_span:.1f} s ({rate:.1f}/s)"))
    if args.burst:
        done = f"{done_after:.1f} s" if done_after else f"not within {args.window:g} s"
        rows.append(("whole burst answered after", done))
    rows += [
        ("429 answers from the fake", len(api.flood_rejections)),
        ("ERROR lines in the bot's log", len(errors)),
        ("exit code after SIGTERM", code),
    ]
    print_table(["chats", "result"], rows)
    for line in errors[:5]:
        print(line)
    return 0 if code == 0 and latencies else 1


def run(
    args: argparse.Namespace, api: FakeBotAPI, feeds: FeedServer, base: object
) -> tuple[list[float], int, float, float | None]:
    """Start the load, probe until it is done or the window ends; latencies and load figures."""
    burst_chats = [BURST_CHAT] if args.one_chat else [BURST_CHAT + i for i in range(args.burst)]
    started = time.monotonic()
    if args.burst:
        for i in range(args.burst):
            api.push_message(burst_chats[i % len(burst_chats)], "/start")
    else:
        fresh = rss_feed(range(21), base)  # type: ignore[arg-type]  # one new item on top
        feeds.set("/feed.xml", fresh, etag=strong_etag(fresh))
        wait_until(lambda: len(api.messages) >= 1, 30, "the first push")
        started = time.monotonic()

    def load_sent() -> int:
        with api.lock:
            return sum(1 for m in api.messages if not PROBE_CHAT <= int(m.chat_id) < PROBE_CHAT * 2)

    probes: list[tuple[int, float]] = []
    done_after = None
    next_probe = started + args.every / 2
    while True:
        now = time.monotonic()
        if args.window and now - started >= args.window:
            break
        if args.burst and load_sent() >= args.burst:
            done_after = now - started
            break
        if args.fanout and load_sent() >= args.fanout:
            break
        if now >= next_probe:
            chat = PROBE_CHAT + len(probes)
            probes.append((chat, time.monotonic()))
            api.push_message(chat, "/latest")
            next_probe += args.every
        time.sleep(0.01)
    busy_span = time.monotonic() - started
    busy_sent = load_sent()
    latencies = []
    for chat, pushed in probes:
        [reply] = api.wait_for_messages(1, chat_id=chat, timeout=max(30.0, args.burst / 20))
        latencies.append(reply.monotonic - pushed)
    return latencies, busy_sent, busy_span, done_after


if __name__ == "__main__":
    sys.exit(main())
