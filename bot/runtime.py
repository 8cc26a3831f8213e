"""How `statement-bot run` runs its event loop: uvloop when installed, the start-up heap frozen.

- uvloop (libuv under asyncio's API): the event loop was 16-17% of the bot's CPU per message
  at 1,000 messages/s (docs/benchmarks.md). STATEMENT_BOT_EVENT_LOOP=asyncio, or uvloop not
  installed (it has no wheels for Windows), runs asyncio's own loop instead; nothing else
  depends on which one runs.
- gc.freeze(): at 1,000 messages/s the collector's full passes over the start-up heap (every
  module, python-telegram-bot's classes, feedparser) took 30-45 ms every ~1.7 s, and the sends
  held up behind them reached Telegram together (up to 1,058 in one second). Frozen objects
  are never scanned again.
- A young-generation threshold of GC_THRESHOLD objects instead of 700: each batch of
  deliveries (a task, a coroutine and a few records per chat, alive for about a second) set
  off collections that found nothing to free (reference counting frees them) but promoted the
  batch to the old generation, and so more full passes: 16% of the bot's CPU at 1,000/s went
  to the collector. Cycles are still collected, just in fewer, larger passes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
logger = logging.getLogger(__name__)

ENV_EVENT_LOOP = "STATEMENT_BOT_EVENT_LOOP"
GC_THRESHOLD = 20_000


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's new_event_loop, or None for asyncio's default loop."""
    wanted = os.environ.get(ENV_EVENT_LOOP, "uvloop").strip().lower()
    if wanted == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        logger.info("uvloop is not installed: running on asyncio's own event loop")
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(main) on loop_factory()'s loop, with everything imported so far frozen."""
    gc.collect()  # what is garbage already goes now, not frozen forever
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
