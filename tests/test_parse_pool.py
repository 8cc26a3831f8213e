"""Big documents are parsed in a worker process, small ones in a thread; results are the same."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bench.common import rss_feed
from bot import parse_pool
from bot.parse import FeedFormatError
from bot.sources import FeedSource


def where(body: bytes) -> int:
    return os.getpid()


@pytest.fixture(autouse=True)
def fresh_pool() -> Iterator[None]:
    yield
    parse_pool.shutdown()


async def test_a_big_feed_is_parsed_in_another_process_with_the_same_result() -> None:
    body = rss_feed(range(200), datetime(2021, 10, 1, tzinfo=UTC))
    assert len(body) >= parse_pool.PROCESS_PARSE_BYTES
    assert await parse_pool.parse(where, body) != os.getpid()
    source = FeedSource()
    in_process = await parse_pool.parse(source.read, body, url="https://e.org/", content_type=None)
    in_thread = source.read(body, url="https://e.org/", content_type=None)
    assert in_process == in_thread
    assert len(in_process.statements) == 200


async def test_a_small_document_stays_in_this_process() -> None:
    assert await parse_pool.parse(where, b"<rss/>") == os.getpid()


async def test_errors_come_back_as_they_were_raised() -> None:
    body = b"<html><body>" + b"<p>not a feed</p>" * 8000 + b"</body></html>"
    with pytest.raises(FeedFormatError):
        await parse_pool.parse(
            FeedSource(discover=False).read, body, url="https://e.org/", content_type="text/html"
        )


def die(body: bytes) -> None:
    os._exit(9)  # as the kernel's OOM killer would end it


async def test_a_worker_that_dies_fails_that_document_and_the_next_gets_a_new_one() -> None:
    """Never retried in the bot's own process: what killed the worker would kill the bot."""
    big = b"x" * parse_pool.PROCESS_PARSE_BYTES
    with pytest.raises(parse_pool.ParserDied, match="the parsing process died"):
        await parse_pool.parse(die, big)
    assert await parse_pool.parse(where, big) != os.getpid()
