"""kill -9 in the middle of fan-outs: is anything lost, is anything sent twice?

    python -m bench.kill9 --chats 1000 --points 13
    python -m bench.kill9 --chats 5000 --points 9 --paid-broadcast   # at 1000/s

For each kill point, a fresh state folder with N subscribers and a baseline poll, then the real
`statement-bot run` process (Telegram's limits, the fake Bot API and a feed server on
127.0.0.1) gets one new statement; once the fake has accepted the point's share of the fan-out
the process is killed with SIGKILL, started again, and left to finish. Then every chat's
messages are counted: lost (0), delivered once, delivered twice or more.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections import Counter
from datetime import datetime

from bench.common import print_machine, print_table, rss_feed
from bench.memory import bot_state, start_bot, wait_until
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.feed_server import FeedServer, strong_etag

CORRECTED = b"Corrected statement number 20 on"


def publish_one(api: FakeBotAPI, feeds: FeedServer, base: datetime) -> bytes:
    """Once the bot runs and has read its baseline, the feed gets one new statement."""
    api.wait_for_call("getUpdates", 1, timeout=30)
    wait_until(lambda: len(feeds.requests_for("/feed.xml")) >= 1, 30, "the baseline")
    time.sleep(0.5)
    fresh = rss_feed(range(21), base)
    feeds.set("/feed.xml", fresh, etag=strong_etag(fresh))
    return fresh


def edit_point(chats: int, share: float) -> dict[str, float]:
    """The same for a correction: the push has reached every chat, the feed corrects its title,
    and the bot is killed while it edits the sent messages."""
    with bot_state(chats, "bench-kill9-") as (root, api, feeds, config, base):
        proc = start_bot(config, root, api.base_url, (root / "bot-1.log").open("wb"))
        try:
            fresh = publish_one(api, feeds, base)
            wait_until(lambda: len(api.messages) >= chats, chats / 20 + 60, "every push")
            time.sleep(2)  # the last outcomes are recorded: their message ids are what is edited
            corrected = fresh.replace(b"Statement number 20 on", CORRECTED)
            feeds.set("/feed.xml", corrected, etag=strong_etag(corrected))
            kill_at = int(chats * share)
            edits = lambda: len(api.calls_to("editMessageText"))  # noqa: E731
            wait_until(lambda: edits() >= kill_at, chats / 20 + 60, f"{kill_at} edits")
            killed_after = edits()
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        pushes = {m.chat_id: m.message_id for m in api.sent_messages()}
        restarted = time.monotonic()
        proc = start_bot(config, root, api.base_url, (root / "bot-2.log").open("wb"))

        def edited() -> set[int | str]:
            return {
                chat
                for chat, message_id in pushes.items()
                if CORRECTED.decode() in api.bot_message(chat, message_id)["text"]
            }

        try:
            wait_until(lambda: len(edited()) >= chats, chats / 20 + 60, "every chat edited")
            recovered = time.monotonic() - restarted
            time.sleep(3)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
        per_chat = Counter(call["chat_id"] for call in api.calls_to("editMessageText"))
        new_messages = len(api.sent_messages()) - len(pushes)
        not_edited = chats - len(edited())
    counts = Counter(per_chat.get(chat, 0) for chat in range(100_000_000, 100_000_000 + chats))
    return {
        "share": share,
        "killed_after": killed_after,
        "lost": not_edited,
        "once": counts.get(1, 0),
        "twice": sum(n for times, n in counts.items() if times >= 2),
        "most": max(counts),
        "recovered": recovered,
        "exit": code,
        "new_messages": new_messages,
    }


def one_point(chats: int, share: float, paid: bool = False) -> dict[str, float]:
    with bot_state(chats, "bench-kill9-") as (root, api, feeds, config, base):
        if paid:  # [bot] paid_broadcast = true: the fan-out runs at up to 1000/s
            text = config.read_text(encoding="utf-8")
            config.write_text(text.replace("[bot]\n", "[bot]\npaid_broadcast = true\n", 1))
        proc = start_bot(config, root, api.base_url, (root / "bot-1.log").open("wb"))
        try:
            publish_one(api, feeds, base)
            kill_at = int(chats * share)
            wait_until(lambda: len(api.messages) >= kill_at, 120, f"{kill_at} messages")
            killed_after = len(api.messages)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        restarted = time.monotonic()
        proc = start_bot(config, root, api.base_url, (root / "bot-2.log").open("wb"))
        try:
            wait_until(
                lambda: len({m.chat_id for m in api.sent_messages()}) >= chats,
                chats / 20 + 60,
                "every chat",
            )
            recovered = time.monotonic() - restarted
            time.sleep(3)  # anything still to come (a duplicate) arrives now
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
        per_chat = Counter(m.chat_id for m in api.sent_messages())
    counts = Counter(per_chat.get(chat, 0) for chat in range(100_000_000, 100_000_000 + chats))
    return {
        "share": share,
        "killed_after": killed_after,
        "lost": counts.get(0, 0),
        "once": counts.get(1, 0),
        "twice": sum(n for times, n in counts.items() if times >= 2),
        "most": max(counts),
        "recovered": recovered,
        "exit": code,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--points", type=int, default=13, help="kill points across the fan-out")
    parser.add_argument(
        "--paid-broadcast", action="store_true", help="paid_broadcast = true (1000/s)"
    )
    parser.add_argument(
        "--edits", action="store_true", help="kill during a correction's edits, not the pushes"
    )
    args = parser.parse_args(argv)
    pace = "paid broadcasts (1000/s)" if args.paid_broadcast else "the free limit (30/s)"
    what = "a correction's edits" if args.edits else "a fan-out"
    print(f"kill -9 during {what} to {args.chats} chats at {pace}, at {args.points} points\n")
    print_machine()
    shares = [i / (args.points + 1) for i in range(1, args.points + 1)]
    rows = []
    bad = False
    new_total = 0
    for share in shares:
        if args.edits:
            result = edit_point(args.chats, share)
            new_total += int(result["new_messages"])
            bad |= result["new_messages"] > 0  # a correction edits, it never sends anew
        else:
            result = one_point(args.chats, share, args.paid_broadcast)
        bad |= result["lost"] > 0 or result["most"] > 2
        rows.append((
            f"{share:.0%}", int(result["killed_after"]), int(result["lost"]),
            int(result["once"]), int(result["twice"]), int(result["most"]),
            f"{result['recovered']:.1f} s", int(result["exit"]),
        ))  # fmt: skip
    sent = "edits" if args.edits else "messages"
    print_table(
        ["killed at", f"{sent} before the kill", "chats lost", "chats once", "chats twice",
         "most to one chat", "restart to the last chat", "exit after SIGTERM"],
        rows,
    )  # fmt: skip
    if args.edits:
        print("\nA chat counts as lost when its message does not read the corrected title; once /")
        print("twice count editMessageText calls (a second is answered 'not modified': success).")
        print("New messages sent by a correction (must be 0):", new_total)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
