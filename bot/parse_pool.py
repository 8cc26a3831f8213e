"""Big documents are parsed in a worker process, so that a parse never holds the bot's GIL.

A 500-item feed costs feedparser ~0.4 s of CPU. In a thread it shares the interpreter lock with
the event loop, and a paid fan-out sent a third fewer messages while it ran (docs/benchmarks.md,
"Polls during a fan-out"). In a process of its own it costs the loop nothing. Small documents
(a list page: 16 ms) stay in a thread: a process hop would cost more than it saves.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")


class ParserDied(Exception):
    """The worker process ended while it parsed the document."""


PROCESS_PARSE_BYTES = 64 * 1024  # from this size on a document is parsed in the worker

_pool: ProcessPoolExecutor | None = None


async def parse(fn: Callable[..., T], body: bytes, **kwargs: Any) -> T:
    """fn(body, **kwargs) off the event loop: in the worker process for a big body (fn and
    its arguments must pickle), else in a thread."""
    global _pool
    if len(body) < PROCESS_PARSE_BYTES:
        return await asyncio.to_thread(fn, body, **kwargs)
    if _pool is None:
        # spawn, not fork: the bot has threads (database, HTTP) whose locks a fork would copy.
        # One worker: polls are minutes apart, and it must not take the sending core.
        _pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    try:
        return await asyncio.get_running_loop().run_in_executor(
            _pool, functools.partial(fn, body, **kwargs)
        )
    except BrokenProcessPool:
        # The worker died (killed, out of memory). Never retried here: a document that can kill
        # the worker would kill the bot. A new worker starts for the next document.
        _pool = None
        raise ParserDied(
            f"the parsing process died while reading a {len(body)}-byte document"
        ) from None


def shutdown() -> None:
    """Stop the worker (also done at interpreter exit)."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None
