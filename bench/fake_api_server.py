"""The fake Telegram Bot API (tests/fakes/bot_api.py) as a process of its own, for benchmarks.

    python -m bench.fake_api_server [--token T] [--enforce-limits | --lean]

Prints one JSON line {"base_url", "pid"}, then answers JSON commands on stdin, one per line:

- {"cmd": "wait", "count": N, "timeout": S}: once N messages were accepted (or S seconds
  passed), one line of statistics: every accepted message's CLOCK_MONOTONIC time, the number of
  distinct chats, 429 answers, and this process's CPU seconds;
- {"cmd": "clear"}: forget the messages so far; {"cmd": "quit"}: stop.

It stops by itself when stdin closes (the benchmark that started it has gone). `--lean` serves
bench.lean_api's minimal fake instead (sendMessage at a few µs each), for throughput runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.common import TOKEN, cpu_seconds
from bench.lean_api import LeanBotAPI
from tests.fakes.bot_api import FakeBotAPI


def stats(api: FakeBotAPI) -> dict[str, Any]:
    with api.lock:
        messages = list(api.messages)
        rejections = len(api.flood_rejections)
    return {
        "count": len(messages),
        "chats": len({m.chat_id for m in messages}),
        "stamps": [round(m.monotonic, 6) for m in messages],
        "paid_broadcast": sum(1 for m in messages if m.params.get("allow_paid_broadcast")),
        "flood_rejections": rejections,
        "cpu_seconds": cpu_seconds(),
    }


def lean_stats(api: LeanBotAPI) -> dict[str, Any]:
    count = len(api.stamps)
    return {
        "count": count,
        "chats": len(set(api.chats[:count])),
        "stamps": [round(t, 6) for t in api.stamps[:count]],
        "paid_broadcast": api.paid,
        "flood_rejections": 0,
        "calls": dict(api.calls),
        "cpu_seconds": cpu_seconds(),
    }


def serve(
    base_url: str,
    accepted: Callable[[], int],
    clear: Callable[[], None],
    statistics: Callable[[], dict[str, Any]],
) -> None:
    """The stdin protocol above, for either fake: `accepted` counts the messages so far."""
    print(json.dumps({"base_url": base_url, "pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "quit":
            break
        if command["cmd"] == "clear":
            clear()
            print("{}", flush=True)
        elif command["cmd"] == "wait":
            # Polling, not the fake's condition: a wake-up per message would cost the
            # server thread GIL time in the middle of the measurement.
            deadline = time.monotonic() + float(command["timeout"])
            while accepted() < int(command["count"]) and time.monotonic() < deadline:
                time.sleep(0.02)
            print(json.dumps(statistics()), flush=True)


def serve_lean(token: str) -> int:
    api = LeanBotAPI(token).start()

    def clear() -> None:
        api.stamps.clear()
        api.chats.clear()
        api.paid = 0

    serve(api.base_url, lambda: len(api.stamps), clear, lambda: lean_stats(api))
    api.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--token", default=TOKEN)
    parser.add_argument(
        "--enforce-limits",
        action="store_true",
        help="answer 429 beyond Telegram's free limits (30/s, 1/s per chat)",
    )
    parser.add_argument("--lean", action="store_true", help="bench.lean_api's minimal fake")
    args = parser.parse_args(argv)
    if args.lean:
        return serve_lean(args.token)
    with FakeBotAPI(token=args.token, enforce_limits=args.enforce_limits) as api:
        serve(api.base_url, lambda: len(api.messages), api.clear, lambda: stats(api))
    return 0


if __name__ == "__main__":
    sys.exit(main())
