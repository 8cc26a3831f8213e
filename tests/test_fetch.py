"""bot.fetch against a real HTTP feed server on 127.0.0.1 (and real local files)."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import struct
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.fetch import (
    DEFAULT_POLICY,
    USER_AGENT,
    FetchError,
    FetchResult,
    fetch_feed,
    make_client,
)
from tests.conftest import SAMPLES
from tests.fakes.feed_server import FeedServer, closed_port_url, http_date, strong_etag
from tests.fakes.proxy_server import ForwardProxy

RSS_BODY = (SAMPLES / "embassy-rss.xml").read_bytes()
NEXT_BODY = (SAMPLES / "embassy-rss-next.xml").read_bytes()
LAST_MODIFIED = http_date(datetime(2021, 10, 26, 21, 40, tzinfo=UTC))
TIMEOUT = 0.5
CAP = 64 * 1024


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(TIMEOUT) as c:
        yield c


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int = CAP,
    timeout: float = TIMEOUT,
    headers: dict[str, str] | None = None,
) -> FetchResult:
    return await fetch_feed(
        client,
        url,
        etag=etag,
        last_modified=last_modified,
        max_bytes=max_bytes,
        timeout=timeout,
        headers=headers,
    )


# ---- success and conditional GET ------------------------------------------------------


async def test_200_returns_the_body_and_the_validators(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """A first fetch gets the whole document and remembers ETag and Last-Modified."""
    etag = strong_etag(RSS_BODY)
    server.set("/feed.xml", RSS_BODY, etag=etag, last_modified=LAST_MODIFIED)

    result = await fetch(client, server.url("/feed.xml"))

    assert result.body == RSS_BODY
    assert not result.not_modified
    assert result.url == server.url("/feed.xml")
    assert result.etag == etag
    assert result.last_modified == LAST_MODIFIED
    assert result.content_type is not None and result.content_type.startswith("application/rss")
    assert result.permanent_redirect is None
    first = server.requests_for("/feed.xml")[0]
    assert first.header("If-None-Match") is None
    assert first.header("If-Modified-Since") is None


async def test_second_fetch_with_validators_is_304_without_a_body(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """An unchanged feed costs a 304: no body to parse, the validators are kept."""
    etag = strong_etag(RSS_BODY)
    server.set("/feed.xml", RSS_BODY, etag=etag, last_modified=LAST_MODIFIED)
    first = await fetch(client, server.url("/feed.xml"))

    second = await fetch(
        client, server.url("/feed.xml"), etag=first.etag, last_modified=first.last_modified
    )

    assert second.not_modified
    assert second.body is None
    assert second.etag == etag
    assert second.last_modified == LAST_MODIFIED
    sent = server.requests_for("/feed.xml")[-1]
    assert sent.header("If-None-Match") == etag
    assert sent.header("If-Modified-Since") == LAST_MODIFIED


async def test_last_modified_alone_gives_304(server: FeedServer, client: httpx.AsyncClient) -> None:
    """A host that only sends Last-Modified still answers If-Modified-Since with a 304."""
    server.set("/feed.xml", RSS_BODY, last_modified=LAST_MODIFIED)
    first = await fetch(client, server.url("/feed.xml"))
    assert first.etag is None

    second = await fetch(client, server.url("/feed.xml"), last_modified=first.last_modified)

    assert second.not_modified
    assert second.last_modified == LAST_MODIFIED


async def test_changed_feed_is_fetched_again_with_new_validators(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """When the feed changes, the old ETag no longer matches: the new body comes back."""
    server.set("/feed.xml", RSS_BODY, etag=strong_etag(RSS_BODY))
    first = await fetch(client, server.url("/feed.xml"))
    server.set("/feed.xml", NEXT_BODY, etag=strong_etag(NEXT_BODY))

    second = await fetch(client, server.url("/feed.xml"), etag=first.etag)

    assert second.body == NEXT_BODY
    assert second.etag == strong_etag(NEXT_BODY) != first.etag


async def test_user_agent_names_the_bot(server: FeedServer, client: httpx.AsyncClient) -> None:
    """Feed hosts see who is polling them: the User-Agent names the bot, not python-httpx."""
    server.set("/feed.xml", RSS_BODY)

    await fetch(client, server.url("/feed.xml"))

    request = server.requests_for("/feed.xml")[0]
    assert request.header("User-Agent") == USER_AGENT
    assert "statement-bot" in USER_AGENT
    assert "httpx" not in USER_AGENT
    accept = request.header("Accept") or ""
    assert "application/rss+xml" in accept and "application/atom+xml" in accept


# ---- redirects ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 308])
async def test_permanent_redirect_is_followed_and_reported(
    server: FeedServer, client: httpx.AsyncClient, status: int
) -> None:
    """A feed that moved for good is read from its new place, and the new address is told."""
    server.redirect("/old.xml", "/feed.xml", status=status)
    server.set("/feed.xml", RSS_BODY)

    result = await fetch(client, server.url("/old.xml"))

    assert result.body == RSS_BODY
    assert result.url == server.url("/feed.xml")
    assert result.permanent_redirect == server.url("/feed.xml")


@pytest.mark.parametrize("status", [302, 307])
async def test_temporary_redirect_is_followed_but_not_reported(
    server: FeedServer, client: httpx.AsyncClient, status: int
) -> None:
    """A temporary redirect is followed; the configured address stays the right one."""
    server.redirect("/feed.xml", "/mirror.xml", status=status)
    server.set("/mirror.xml", RSS_BODY)

    result = await fetch(client, server.url("/feed.xml"))

    assert result.body == RSS_BODY
    assert result.permanent_redirect is None


async def test_redirect_loop_is_an_error(server: FeedServer, client: httpx.AsyncClient) -> None:
    """Two paths redirecting to each other end in an error, not an endless loop."""
    server.redirect("/a.xml", "/b.xml", status=302)
    server.redirect("/b.xml", "/a.xml", status=302)

    with pytest.raises(FetchError, match="redirect"):
        await fetch(client, server.url("/a.xml"))


async def test_conditional_get_survives_a_permanent_redirect(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """The validators go along the redirect: an unchanged moved feed is still a 304."""
    server.redirect("/old.xml", "/feed.xml", status=301)
    server.set("/feed.xml", RSS_BODY, etag=strong_etag(RSS_BODY))
    first = await fetch(client, server.url("/old.xml"))

    second = await fetch(client, server.url("/old.xml"), etag=first.etag)

    assert second.not_modified
    assert second.permanent_redirect == server.url("/feed.xml")


# ---- size cap -------------------------------------------------------------------------


@pytest.mark.parametrize("content_length", [True, False], ids=["with-length", "chunked"])
async def test_document_larger_than_the_cap_is_refused(
    server: FeedServer, client: httpx.AsyncClient, content_length: bool
) -> None:
    """A huge document is cut off at the cap, whether or not the server announces its size."""
    server.huge("/huge.xml", 20 * CAP, content_length=content_length)

    with pytest.raises(FetchError, match=f"larger than the limit of {CAP} bytes"):
        await fetch(client, server.url("/huge.xml"), max_bytes=CAP)


async def test_document_at_the_cap_is_accepted(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """The cap is a limit, not a ban: a document of exactly that size is read in full."""
    body = RSS_BODY + b" " * (CAP - len(RSS_BODY))
    server.set("/feed.xml", body, content_length=False)

    result = await fetch(client, server.url("/feed.xml"), max_bytes=CAP)

    assert result.body is not None and len(result.body) == CAP


# ---- slow, unreachable, error statuses ------------------------------------------------


async def test_server_that_does_not_answer_times_out(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """A server that keeps the poll waiting gives a 'timed out' error after about the timeout."""
    server.slow("/feed.xml", RSS_BODY, delay=30)

    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        await fetch(client, server.url("/feed.xml"))
    assert time.monotonic() - started < 5 * TIMEOUT


async def test_server_that_trickles_bytes_times_out(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """A byte every 0.1 s never trips a read timeout, but the whole fetch is still bounded."""
    server.slow("/feed.xml", RSS_BODY, trickle=0.1, chunk_size=1)

    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        await fetch(client, server.url("/feed.xml"))
    assert time.monotonic() - started < 5 * TIMEOUT


async def test_connection_refused_is_an_error(client: httpx.AsyncClient) -> None:
    """Nothing listening on the port: a FetchError that says the feed could not be fetched."""
    with pytest.raises(FetchError, match="cannot fetch"):
        await fetch(client, closed_port_url())


async def test_connection_dropped_without_an_answer_is_an_error(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """A host that hangs up mid-request gives a FetchError, not an exception from httpx."""
    server.close_connection("/feed.xml")

    with pytest.raises(FetchError):
        await fetch(client, server.url("/feed.xml"))


@pytest.mark.parametrize("status", [404, 410, 500, 502])
async def test_error_status_is_an_error_with_the_status(
    server: FeedServer, client: httpx.AsyncClient, status: int
) -> None:
    """An error page is never taken for the feed; the reason names the HTTP status."""
    server.status("/feed.xml", status, body=b"<html><body>Error</body></html>")

    with pytest.raises(FetchError, match=f"HTTP {status}") as caught:
        await fetch(client, server.url("/feed.xml"))
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_in_seconds_is_reported(
    server: FeedServer, client: httpx.AsyncClient, status: int
) -> None:
    """429/503 with Retry-After: 120 tell the poller to wait 120 s."""
    server.status("/feed.xml", status, headers={"Retry-After": "120"})

    with pytest.raises(FetchError, match=f"HTTP {status}") as caught:
        await fetch(client, server.url("/feed.xml"))
    assert caught.value.retry_after == 120.0


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_as_http_date_is_reported_in_seconds(
    server: FeedServer, client: httpx.AsyncClient, status: int
) -> None:
    """Retry-After may be a date: it becomes the seconds from now until then."""
    when = datetime.now(UTC) + timedelta(seconds=300)
    server.status("/feed.xml", status, headers={"Retry-After": http_date(when)})

    with pytest.raises(FetchError) as caught:
        await fetch(client, server.url("/feed.xml"))
    assert caught.value.retry_after is not None
    # The header has whole seconds; allow for that and for the time the test takes.
    assert 290 <= caught.value.retry_after <= 300


async def test_429_without_retry_after_has_no_wish(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """Without Retry-After (or with an unreadable one) the poller's own backoff applies."""
    server.status("/feed.xml", 429, headers={"Retry-After": "soon, maybe"})

    with pytest.raises(FetchError, match="HTTP 429") as caught:
        await fetch(client, server.url("/feed.xml"))
    assert caught.value.retry_after is None


# ---- local files ----------------------------------------------------------------------


@pytest.mark.parametrize("form", ["path", "file-url"])
async def test_local_file_is_read_and_unchanged_file_is_not_modified(
    tmp_path: Path, client: httpx.AsyncClient, form: str
) -> None:
    """A feed file on disk works like a feed URL: an untouched file costs no parse."""
    feed = tmp_path / "feed.xml"
    feed.write_bytes(RSS_BODY)
    url = str(feed) if form == "path" else feed.as_uri()

    first = await fetch(client, url)
    assert first.body == RSS_BODY
    assert first.last_modified

    second = await fetch(client, url, last_modified=first.last_modified)
    assert second.not_modified

    feed.write_bytes(NEXT_BODY)
    stat = feed.stat()
    os.utime(feed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a later mtime
    third = await fetch(client, url, last_modified=second.last_modified)
    assert third.body == NEXT_BODY


async def test_missing_local_file_is_an_error(tmp_path: Path, client: httpx.AsyncClient) -> None:
    """A path that does not exist gives an error naming the file."""
    with pytest.raises(FetchError, match="no such file"):
        await fetch(client, str(tmp_path / "missing.xml"))


async def test_local_file_larger_than_the_cap_is_refused(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    """The size cap holds for files too."""
    feed = tmp_path / "big.xml"
    feed.write_bytes(b" " * (CAP + 1))

    with pytest.raises(FetchError, match="larger than the limit"):
        await fetch(client, feed.as_uri(), max_bytes=CAP)


# ---- the fake server itself -----------------------------------------------------------


async def test_feed_server_stops_at_once_with_a_slow_answer_in_progress() -> None:
    """Stopping the test server does not wait for a slow handler; the client sees a failure."""
    server = FeedServer().start()
    server.slow("/feed.xml", RSS_BODY, delay=30)
    async with make_client(10) as patient:
        task = asyncio.create_task(fetch(patient, server.url("/feed.xml"), timeout=10))
        for _ in range(100):
            if server.requests_for("/feed.xml"):
                break
            await asyncio.sleep(0.01)

        started = time.monotonic()
        server.stop()
        stopped_in = time.monotonic() - started

        with pytest.raises(FetchError):
            await asyncio.wait_for(task, 5)
    assert stopped_in < 1


# ---- Content-Encoding: decoded size, layer by layer, without blocking the loop -------


def gzip_bomb(decoded_mib: int) -> bytes:
    """A gzip member that decodes to `decoded_mib` MiB of zeros, built in milliseconds.

    Each MiB is compressed with a full flush, so every MiB after the first compresses to the
    same bytes and is simply repeated. The trailer's CRC is wrong: a decoder that respects the
    cap never gets there.
    """
    zeros = b"\0" * (1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    deflated = first + again * (decoded_mib - 1) + compressor.flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + deflated + struct.pack("<II", 0, (decoded_mib << 20) & 0xFFFFFFFF)


def deflate_raw(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


async def max_loop_gap(task: asyncio.Task[object]) -> float:
    """The longest the event loop went without running a 10 ms ticker while `task` ran."""
    gap = 0.0
    last = time.monotonic()
    while not task.done():
        await asyncio.sleep(0.01)
        now = time.monotonic()
        gap = max(gap, now - last)
        last = now
    return gap


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", deflate_raw),  # what some servers send for 'deflate'
        ("gzip, gzip", lambda b: gzip.compress(gzip.compress(b))),
        ("deflate, gzip", lambda b: gzip.compress(zlib.compress(b))),
        ("identity, gzip", gzip.compress),
        ("gzip, identity", gzip.compress),
        ("GZIP", gzip.compress),
    ],
    ids=[
        "gzip",
        "x-gzip",
        "deflate",
        "raw-deflate",
        "gzip-gzip",
        "deflate-gzip",
        "identity-gzip",
        "gzip-identity",
        "upper",
    ],
)
async def test_encoded_bodies_are_decoded(
    server: FeedServer, client: httpx.AsyncClient, encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    """Every layer a server names is undone in the right order; the body is the feed itself."""
    server.set("/feed.xml", encode(RSS_BODY), headers={"Content-Encoding": encoding})

    result = await fetch(client, server.url("/feed.xml"))

    assert result.body == RSS_BODY


async def test_only_decodable_encodings_are_asked_for(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """The bot asks for gzip and deflate only, which it can decode in bounded steps."""
    server.set("/feed.xml", RSS_BODY)

    await fetch(client, server.url("/feed.xml"))

    assert server.requests_for("/feed.xml")[0].header("Accept-Encoding") == "gzip, deflate"


async def test_gzip_members_are_all_decoded_and_trailing_junk_ignored(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """A gzip body may be several members in a row; junk after the last one is ignored."""
    half = len(RSS_BODY) // 2
    body = gzip.compress(RSS_BODY[:half]) + gzip.compress(RSS_BODY[half:]) + b"\n\0junk"
    server.set("/feed.xml", body, headers={"Content-Encoding": "gzip"}, content_length=False)

    result = await fetch(client, server.url("/feed.xml"))

    assert result.body == RSS_BODY


@pytest.mark.parametrize("junk", [b"\n", b"\x1f", b"\0\0\0\0", b"\x1f\x8b"], ids=repr)
async def test_short_junk_after_a_gzip_body_is_ignored(
    server: FeedServer, client: httpx.AsyncClient, junk: bytes
) -> None:
    """A stray newline (or a lone byte that looks like the start of a member) is not an error.

    A whole gzip magic number with nothing after it is the start of a member cut short.
    """
    server.set("/feed.xml", gzip.compress(RSS_BODY) + junk, headers={"Content-Encoding": "gzip"})

    if junk == b"\x1f\x8b":
        with pytest.raises(FetchError, match="truncated"):
            await fetch(client, server.url("/feed.xml"))
    else:
        assert (await fetch(client, server.url("/feed.xml"))).body == RSS_BODY


async def test_304_without_validators_keeps_the_ones_sent(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """A 304 need not repeat ETag and Last-Modified: the ones the bot sent stay valid."""
    server.status("/feed.xml", 304, content_type=None)

    result = await fetch(client, server.url("/feed.xml"), etag='"v1"', last_modified=LAST_MODIFIED)

    assert result.not_modified
    assert result.etag == '"v1"'
    assert result.last_modified == LAST_MODIFIED


async def test_decoded_size_at_the_cap_is_accepted(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """The cap counts decoded bytes, and exactly the cap is still fine."""
    body = RSS_BODY + b" " * (CAP - len(RSS_BODY))
    server.set(
        "/feed.xml", gzip.compress(gzip.compress(body)), headers={"Content-Encoding": "gzip, gzip"}
    )

    result = await fetch(client, server.url("/feed.xml"), max_bytes=CAP)

    assert result.body == body


@pytest.mark.parametrize(
    ("encoding", "make"),
    [
        ("gzip", lambda: gzip_bomb(16)),  # 16 KB that decode to 16 MiB
        ("gzip, gzip", lambda: gzip.compress(gzip_bomb(1024))),  # 2.5 KB that decode to 1 GiB
        ("gzip, gzip", lambda: gzip.compress(gzip.compress(b"\0" * (CAP + 1)))),  # just over
        ("deflate, gzip", lambda: gzip.compress(zlib.compress(b"\0" * (16 << 20)))),
    ],
    ids=["gzip-bomb", "stacked-gzip-bomb", "double-gzip-just-over", "deflate-in-gzip-bomb"],
)
async def test_compression_bomb_is_refused_promptly_without_blocking_the_loop(
    server: FeedServer, encoding: str, make: Callable[[], bytes]
) -> None:
    """Issue 9.6: the cap holds for decoded bytes, through every layer, while decoding.

    The bot's event loop keeps running meanwhile (a 10 ms ticker is never held up long), and
    the memory the fetch takes stays near the cap, not near what the bomb would expand to.
    """
    body = make()
    assert len(body) < CAP  # the raw answer passes the Content-Length check: decoding must stop it
    server.set("/bomb.xml", body, headers={"Content-Encoding": encoding})
    async with make_client(5) as patient:
        tracemalloc.start()
        try:
            started = time.monotonic()
            task = asyncio.create_task(
                fetch(patient, server.url("/bomb.xml"), max_bytes=CAP, timeout=5)
            )
            gap = await max_loop_gap(task)
            with pytest.raises(FetchError) as caught:
                await task
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    reason = str(caught.value)
    assert (
        reason == f"the document is larger than the limit of {CAP} bytes once decoded ({encoding})"
    )
    assert elapsed < 2
    assert gap < 0.25
    assert peak < 16 * 1024 * 1024


async def test_stacked_bomb_under_a_large_cap_still_returns_promptly(server: FeedServer) -> None:
    """With the default 5 MiB cap the 1 GiB bomb is cut at 5 MiB, in bounded steps."""
    server.set(
        "/bomb.xml", gzip.compress(gzip_bomb(1024)), headers={"Content-Encoding": "gzip, gzip"}
    )
    cap = 5 * 1024 * 1024
    async with make_client(5) as patient:
        started = time.monotonic()
        task = asyncio.create_task(
            fetch(patient, server.url("/bomb.xml"), max_bytes=cap, timeout=5)
        )
        gap = await max_loop_gap(task)
        with pytest.raises(FetchError, match=f"larger than the limit of {cap} bytes once decoded"):
            await task
    assert time.monotonic() - started < 3
    assert gap < 0.25


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
async def test_encoding_we_cannot_decode_is_refused_in_one_line(
    server: FeedServer, client: httpx.AsyncClient, encoding: str
) -> None:
    """An encoding the bot did not ask for and cannot decode is named, not guessed at."""
    server.set("/feed.xml", b"\x8b\x00binary", headers={"Content-Encoding": encoding})

    with pytest.raises(FetchError) as caught:
        await fetch(client, server.url("/feed.xml"))

    last = encoding.split(", ")[-1]
    assert str(caught.value) == f"unsupported Content-Encoding: {last}"


async def test_too_many_encoding_layers_are_refused(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    body = RSS_BODY
    for _ in range(4):
        body = gzip.compress(body)
    server.set("/feed.xml", body, headers={"Content-Encoding": "gzip, gzip, gzip, gzip"})

    with pytest.raises(FetchError, match=r"^too many Content-Encoding layers \(4\)$"):
        await fetch(client, server.url("/feed.xml"))


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_truncated_compressed_body_is_an_error(
    server: FeedServer, client: httpx.AsyncClient, encoding: str
) -> None:
    """A stream cut short is not a shorter feed: it is an error, tried again next time."""
    encoded = gzip.compress(RSS_BODY) if encoding == "gzip" else zlib.compress(RSS_BODY)
    server.set("/feed.xml", encoded[: len(encoded) // 2], headers={"Content-Encoding": encoding})

    with pytest.raises(FetchError, match=f"^cannot decode the {encoding} body: it is truncated$"):
        await fetch(client, server.url("/feed.xml"))


async def test_corrupt_gzip_is_an_error_in_one_line(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.set("/feed.xml", b"this is not gzip at all", headers={"Content-Encoding": "gzip"})

    with pytest.raises(FetchError, match=r"^cannot decode the gzip body: ") as caught:
        await fetch(client, server.url("/feed.xml"))
    assert "\n" not in str(caught.value)


async def test_encoded_error_page_still_reports_its_status(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """A 500 with a broken gzip body is still 'HTTP 500', not a decoding error."""
    server.status("/feed.xml", 500, body=b"broken", headers={"Content-Encoding": "gzip"})

    with pytest.raises(FetchError, match=r"^HTTP 500"):
        await fetch(client, server.url("/feed.xml"))


# ---- private addresses (SSRF) -------------------------------------------------------
# Linux answers on all of 127/8: the "public" server listens on 127.0.0.2 and a policy that
# counts 127.0.0.2 as public stands in for the internet; the "internal" one is on 127.0.0.1.

POLICY = DEFAULT_POLICY.excluding("127.0.0.2/32")
SECRET_BODY = b"<rss><channel><item><title>internal only</title></item></channel></rss>"


@pytest.fixture
def public() -> Iterator[FeedServer]:
    with FeedServer("127.0.0.2") as s:
        yield s


@pytest.fixture
def internal() -> Iterator[FeedServer]:
    with FeedServer("127.0.0.1") as s:
        s.set("/secret.xml", SECRET_BODY)
        yield s


async def fetch_as(
    client: httpx.AsyncClient, url: str, *, private_allowed: bool | None = None, **kwargs: Any
) -> FetchResult:
    return await fetch_feed(
        client,
        url,
        etag=None,
        last_modified=None,
        max_bytes=CAP,
        timeout=TIMEOUT,
        private_allowed=private_allowed,
        policy=POLICY,
        **kwargs,
    )


async def test_public_feed_is_fetched_and_marked_public(
    public: FeedServer, client: httpx.AsyncClient
) -> None:
    public.redirect("/old.xml", "/feed.xml", status=301)
    public.set("/feed.xml", RSS_BODY)

    result = await fetch_as(client, public.url("/old.xml"))

    assert result.body == RSS_BODY
    assert result.private is False
    assert result.permanent_redirect == public.url("/feed.xml")


async def test_redirect_from_public_to_private_address_is_refused(
    public: FeedServer, internal: FeedServer, client: httpx.AsyncClient
) -> None:
    """Issue 9.7: the internal server's item never comes back; nothing is even sent to it."""
    public.redirect("/feed.xml", internal.url("/secret.xml"), status=301)

    with pytest.raises(FetchError) as caught:
        await fetch_as(client, public.url("/feed.xml"))

    assert (
        str(caught.value) == "refused: redirect to a private address 127.0.0.1 (from a public one)"
    )
    assert internal.requests_for("/secret.xml") == []


@pytest.mark.parametrize("host", ["localhost", "127.1", "2130706433"])
async def test_redirect_by_name_is_judged_by_the_address_connected_to(
    public: FeedServer, internal: FeedServer, client: httpx.AsyncClient, host: str
) -> None:
    """A name (or an odd spelling of an address) is judged by where the connection went."""
    public.redirect("/feed.xml", f"http://{host}:{internal.port}/secret.xml", status=302)

    with pytest.raises(FetchError) as caught:
        await fetch_as(client, public.url("/feed.xml"))

    assert (
        str(caught.value) == "refused: redirect to a private address 127.0.0.1 (from a public one)"
    )


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardProxy]:
    """HTTP_PROXY pointing at a proxy on 127.0.0.1: the address the bot connects to is then the
    proxy's, a private one, whatever the feed's host is."""
    with ForwardProxy(names={"intranet.invalid": "127.0.0.1"}) as server:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", server.url)
        yield server


async def test_behind_a_proxy_each_hop_is_judged_by_its_host_before_the_proxy_goes_there(
    public: FeedServer, internal: FeedServer, proxy: ForwardProxy
) -> None:
    public.set("/feed.xml", RSS_BODY)
    public.redirect("/moved.xml", internal.url("/secret.xml"), status=302)
    public.redirect("/intranet.xml", "http://intranet.invalid/secret.xml", status=302)
    async with make_client(TIMEOUT) as client:  # made after HTTP_PROXY is set, as at start-up
        result = await fetch_as(client, public.url("/feed.xml"))
        assert (result.body, result.private) == (RSS_BODY, False)  # public, not the proxy's
        assert proxy.requested == [public.url("/feed.xml")]  # it did go through the proxy

        with pytest.raises(FetchError) as caught:
            await fetch_as(client, public.url("/moved.xml"))
        assert str(caught.value) == (
            "refused: redirect to a private address 127.0.0.1 (from a public one)"
        )
        # A name only the proxy's network may know counts as internal.
        with pytest.raises(FetchError) as caught:
            await fetch_as(client, public.url("/intranet.xml"))
        assert str(caught.value) == (
            "refused: redirect to a private address intranet.invalid (not resolvable here, "
            "behind a proxy) (from a public one)"
        )
        with pytest.raises(FetchError, match="refused: a private address localhost"):
            await fetch_as(client, f"http://localhost:{internal.port}/secret.xml",
                           private_allowed=False)  # fmt: skip
        # A configured internal URL is still the admin's choice.
        inside = await fetch_as(client, internal.url("/secret.xml"))
        assert (inside.body, inside.private) == (SECRET_BODY, True)
        # One only the proxy can resolve is fetched, but as public: it cannot widen where its
        # redirects may go (they would be judged by names that do not resolve here either).
        intranet = f"http://intranet.invalid:{internal.port}"
        internal.redirect("/hop.xml", f"{intranet}/secret.xml", status=302)
        far = await fetch_as(client, f"{intranet}/secret.xml")
        assert (far.body, far.private) == (SECRET_BODY, False)
        with pytest.raises(FetchError, match="refused: redirect to a private address intranet"):
            await fetch_as(client, f"{intranet}/hop.xml")
    # The refused hops were never asked of the proxy: only the configured fetch went inside.
    assert "http://intranet.invalid/secret.xml" not in proxy.requested
    assert proxy.requested.count(internal.url("/secret.xml")) == 1
    assert len(internal.requests_for("/secret.xml")) == 2  # the configured ones only


async def test_the_check_follows_the_route_httpx_takes_whatever_no_proxy_says(
    public: FeedServer, internal: FeedServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NO_PROXY=".localhost": urllib would connect to localhost directly, httpx goes through
    the proxy (the dot means subdomains only). Judged by the route taken: by name, before the
    proxy is asked."""
    monkeypatch.setenv("NO_PROXY", ".localhost")
    public.redirect("/feed.xml", f"http://localhost:{internal.port}/secret.xml", status=302)
    async with make_client(TIMEOUT) as client:
        with pytest.raises(FetchError) as caught:
            await fetch_as(client, public.url("/feed.xml"))
    assert str(caught.value).startswith("refused: redirect to a private address localhost (")
    assert proxy.requested == [public.url("/feed.xml")]  # never asked to go to localhost
    assert internal.requests_for("/secret.xml") == []


async def test_configured_private_url_works(
    internal: FeedServer, client: httpx.AsyncClient
) -> None:
    """A feed the admin configured on a local address is legitimate, and marked private."""
    result = await fetch_as(client, internal.url("/secret.xml"))

    assert result.body == SECRET_BODY
    assert result.private is True


async def test_redirect_from_private_to_private_works(
    internal: FeedServer, client: httpx.AsyncClient
) -> None:
    """When the configured address is itself private, its redirects may stay private."""
    internal.redirect("/old.xml", f"http://localhost:{internal.port}/moved.xml", status=301)
    internal.redirect("/moved.xml", "/secret.xml", status=302)

    result = await fetch_as(client, internal.url("/old.xml"))

    assert result.body == SECRET_BODY
    assert result.permanent_redirect == internal.url("/secret.xml")


async def test_redirect_from_private_to_public_works(
    public: FeedServer, internal: FeedServer, client: httpx.AsyncClient
) -> None:
    internal.redirect("/feed.xml", public.url("/feed.xml"), status=302)
    public.set("/feed.xml", RSS_BODY)

    result = await fetch_as(client, internal.url("/feed.xml"))

    assert result.body == RSS_BODY
    assert result.private is True  # the first hop decides what links in the document may reach


async def test_link_from_a_public_page_to_a_private_address_is_refused(
    internal: FeedServer, client: httpx.AsyncClient
) -> None:
    """A discovered feed or an article of a public page: private_allowed=False."""
    with pytest.raises(FetchError) as caught:
        await fetch_as(client, internal.url("/secret.xml"), private_allowed=False)

    assert str(caught.value) == "refused: a private address 127.0.0.1 (from a public page)"
    assert internal.requests_for("/secret.xml") == []


async def test_link_by_name_from_a_public_page_is_judged_after_connecting(
    internal: FeedServer, client: httpx.AsyncClient
) -> None:
    with pytest.raises(
        FetchError, match=r"^refused: a private address 127\.0\.0\.1 \(from a public page\)$"
    ):
        await fetch_as(
            client, f"http://localhost:{internal.port}/secret.xml", private_allowed=False
        )


async def test_link_from_a_private_page_may_be_private(
    public: FeedServer, internal: FeedServer, client: httpx.AsyncClient
) -> None:
    """private_allowed=True: the page was private, so its links and their redirects may be."""
    public.redirect("/article", internal.url("/secret.xml"), status=302)

    result = await fetch_as(client, public.url("/article"), private_allowed=True)

    assert result.body == SECRET_BODY


async def test_link_from_a_public_page_to_a_public_address_works(
    public: FeedServer, client: httpx.AsyncClient
) -> None:
    public.set("/article", b"<html><body>text</body></html>", content_type="text/html")

    result = await fetch_as(client, public.url("/article"), private_allowed=False)

    assert result.body == b"<html><body>text</body></html>"
    assert result.private is False


@pytest.mark.parametrize(
    "url", ["/etc/passwd", "file:///proc/self/environ", "gopher://127.0.0.2/x", "state/bot.sqlite3"]
)
@pytest.mark.parametrize("private_allowed", [False, True])
async def test_a_link_to_a_file_or_other_scheme_is_refused(
    client: httpx.AsyncClient, url: str, private_allowed: bool
) -> None:
    """Only a configured feed may be a local file: a link could read the bot's secrets."""
    where = "from a public page" if private_allowed is False else "only a configured feed"
    with pytest.raises(FetchError, match=rf"^refused: a (local file|gopher: address) \({where}\)$"):
        await fetch_as(client, url, private_allowed=private_allowed)


async def test_default_policy_counts_all_of_loopback_as_private(
    public: FeedServer, client: httpx.AsyncClient
) -> None:
    """Without the test policy, 127.0.0.2 is as private as 127.0.0.1."""
    public.set("/feed.xml", RSS_BODY)

    with pytest.raises(FetchError, match=r"^refused: a private address 127\.0\.0\.2"):
        await fetch_feed(
            client, public.url("/feed.xml"), max_bytes=CAP, timeout=TIMEOUT, private_allowed=False
        )


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("http://[::1]:{port}/secret.xml", "::1"),
        ("http://[::ffff:127.0.0.1]:{port}/secret.xml", "::ffff:127.0.0.1"),
        ("http://0.0.0.0:{port}/secret.xml", "0.0.0.0"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://10.1.2.3/", "10.1.2.3"),
        ("http://[fd00::1]/", "fd00::1"),
        ("http://[fe80::1]/", "fe80::1"),
        ("http://100.64.0.1/", "100.64.0.1"),
    ],
)
async def test_redirect_to_a_private_address_literal_is_refused_before_connecting(
    public: FeedServer, internal: FeedServer, client: httpx.AsyncClient, location: str, shown: str
) -> None:
    public.redirect("/feed.xml", location.format(port=internal.port), status=302)

    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        await fetch_as(client, public.url("/feed.xml"))

    assert (
        str(caught.value) == f"refused: redirect to a private address {shown} (from a public one)"
    )
    assert time.monotonic() - started < 1  # refused at once, not after a connect timeout
    assert internal.requests == []


@pytest.mark.parametrize(
    ("location", "scheme"),
    [
        ("file:///etc/passwd", "file"),
        ("gopher://127.0.0.2:70/_x", "gopher"),
        ("ftp://example.org/feed.xml", "ftp"),
    ],
)
async def test_redirect_to_a_non_http_scheme_is_refused(
    public: FeedServer, client: httpx.AsyncClient, location: str, scheme: str
) -> None:
    public.redirect("/feed.xml", location, status=301)

    with pytest.raises(FetchError) as caught:
        await fetch_as(client, public.url("/feed.xml"))

    assert str(caught.value) == f"refused: redirect to a {scheme}: address"


@pytest.mark.parametrize("location", ["javascript:alert(1)", "data:text/xml,<rss/>", "http://[::1"])
async def test_redirect_to_an_unreadable_address_is_refused(
    public: FeedServer, client: httpx.AsyncClient, location: str
) -> None:
    public.redirect("/feed.xml", location, status=302)

    with pytest.raises(FetchError) as caught:
        await fetch_as(client, public.url("/feed.xml"))

    assert str(caught.value).startswith("refused: redirect to a")


async def test_five_redirects_are_followed_and_a_sixth_is_refused(
    public: FeedServer, client: httpx.AsyncClient
) -> None:
    for hop in range(5):
        public.redirect(f"/{hop}", f"/{hop + 1}", status=302)
    public.set("/5", RSS_BODY)
    assert (await fetch_as(client, public.url("/0"))).body == RSS_BODY

    public.redirect("/5", "/6", status=302)
    public.set("/6", RSS_BODY)
    with pytest.raises(FetchError, match=r"^too many redirects \(more than 5\)$"):
        await fetch_as(client, public.url("/0"))


async def test_redirect_without_location_is_an_error(
    public: FeedServer, client: httpx.AsyncClient
) -> None:
    public.status("/feed.xml", 302)

    with pytest.raises(FetchError, match=r"^HTTP 302 redirect without a Location$"):
        await fetch_as(client, public.url("/feed.xml"))


def test_address_policy_knows_the_private_networks() -> None:
    private = [
        "127.0.0.1",
        "127.255.0.9",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "::",
        "fd12::1",
        "fc00::1",
        "fe80::1%eth0",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:7f00:1::1",
        "not an address",
    ]
    public = ["8.8.8.8", "172.32.0.1", "192.169.0.1", "100.128.0.1", "2001:4860:4860::8888"]
    assert [a for a in private if not DEFAULT_POLICY.is_private(a)] == []
    assert [a for a in public if DEFAULT_POLICY.is_private(a)] == []
    assert not POLICY.is_private("127.0.0.2")
    assert POLICY.is_private("127.0.0.1") and POLICY.is_private("127.0.0.3")


# ---- per-feed request headers -------------------------------------------------------

SECRET = "session=s3cr3t-cookie-value"


async def test_per_feed_headers_are_sent_and_override_the_defaults(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """Issue 8.6: a site that wants a browser's User-Agent, a language or a cookie gets them."""
    server.set("/feed.xml", RSS_BODY)
    headers = {
        "user-agent": "Mozilla/5.0 (X11)",
        "Accept-Language": "ru, en;q=0.5",
        "Cookie": SECRET,
    }

    await fetch(client, server.url("/feed.xml"), headers=headers)

    request = server.requests_for("/feed.xml")[0]
    assert request.header("User-Agent") == "Mozilla/5.0 (X11)"
    assert [v for k, v in request.headers if k.lower() == "user-agent"] == ["Mozilla/5.0 (X11)"]
    assert request.header("Accept-Language") == "ru, en;q=0.5"
    assert request.header("Cookie") == SECRET
    assert request.header("Accept") is not None and "application/rss+xml" in request.header(
        "Accept"
    )  # type: ignore[operator]


async def test_per_feed_headers_go_along_a_redirect_on_the_same_origin_only(
    public: FeedServer, client: httpx.AsyncClient
) -> None:
    """A cookie or key stays with the configured site; a redirect elsewhere gets the harmless ones."""
    with FeedServer("127.0.0.2") as elsewhere:
        public.redirect("/feed.xml", "/moved.xml", status=302)
        public.redirect("/moved.xml", elsewhere.url("/feed.xml"), status=302)
        elsewhere.set("/feed.xml", RSS_BODY)
        headers = {"User-Agent": "Mozilla/5.0", "Cookie": SECRET, "X-Api-Key": "k3y-k3y-k3y"}

        result = await fetch_as(client, public.url("/feed.xml"), headers=headers)

        assert result.body == RSS_BODY
        moved = public.requests_for("/moved.xml")[0]
        assert moved.header("Cookie") == SECRET and moved.header("X-Api-Key") == "k3y-k3y-k3y"
        there = elsewhere.requests_for("/feed.xml")[0]
        assert there.header("Cookie") is None and there.header("X-Api-Key") is None
        assert there.header("User-Agent") == "Mozilla/5.0"


@pytest.mark.parametrize(
    "value",
    [f"{SECRET}\r\nX-Injected: 1", f"{SECRET}\nX: 1", f"{SECRET}\r", f"{SECRET}\0", f"{SECRET}é"],
    ids=["crlf", "lf", "cr", "nul", "non-ascii"],
)
async def test_header_value_with_a_line_break_is_refused_without_showing_it(
    server: FeedServer, client: httpx.AsyncClient, value: str
) -> None:
    server.set("/feed.xml", RSS_BODY)

    with pytest.raises(FetchError) as caught:
        await fetch(client, server.url("/feed.xml"), headers={"Cookie": value})

    assert (
        str(caught.value)
        == "request header Cookie has a line break or a character that is not allowed"
    )
    assert server.requests == []  # nothing was sent


@pytest.mark.parametrize("name", ["Host", "accept-encoding", "Content-Length", "Transfer-Encoding"])
async def test_headers_the_fetch_owns_cannot_be_set(
    server: FeedServer, client: httpx.AsyncClient, name: str
) -> None:
    with pytest.raises(FetchError, match=f"^request header {name} cannot be set per feed$"):
        await fetch(client, server.url("/feed.xml"), headers={name: "x"})


async def test_header_name_that_is_not_a_token_is_refused_in_one_line(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    with pytest.raises(FetchError, match=r"is not valid$") as caught:
        await fetch(client, server.url("/feed.xml"), headers={"X-A\r\nEvil": "v"})
    assert "\n" not in str(caught.value) and "\r" not in str(caught.value)


async def test_header_values_never_appear_in_errors_or_logs(
    server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever fails (status, redirect, refusal, timeout, dead port), the secret is not told."""
    server.status("/500.xml", 500, body=SECRET.encode())
    server.redirect("/loop.xml", "/loop.xml", status=302)
    server.redirect("/file.xml", "file:///etc/passwd", status=302)
    server.slow("/slow.xml", RSS_BODY, delay=30)
    server.set("/bad.xml", b"nope", headers={"Content-Encoding": "gzip"})
    headers = {"Cookie": SECRET, "Authorization": "Bearer t0k3n-t0k3n", "User-Agent": "UA-s3cret"}
    urls = [server.url(p) for p in ("/500.xml", "/loop.xml", "/file.xml", "/slow.xml", "/bad.xml")]
    caplog.set_level(logging.DEBUG)
    async with make_client(TIMEOUT) as c:
        for url in [*urls, closed_port_url()]:
            with pytest.raises(FetchError) as caught:
                await fetch(c, url, headers=headers)
            for value in headers.values():
                assert value not in str(caught.value)
    for value in headers.values():
        assert value not in caplog.text


# ---- local files: regular files only, capped, in time ------------------------------


async def test_fifo_is_refused_at_once(tmp_path: Path, client: httpx.AsyncClient) -> None:
    """Issue 8.7: a FIFO as the feed used to hang the bot; now it is refused without opening."""
    fifo = tmp_path / "feed.xml"
    os.mkfifo(fifo)

    for url in (str(fifo), fifo.as_uri()):
        started = time.monotonic()
        with pytest.raises(FetchError) as caught:
            await fetch(client, url)
        assert str(caught.value) == f"not a regular file: {fifo}"
        assert time.monotonic() - started < 1


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
async def test_device_is_refused(client: httpx.AsyncClient, device: str) -> None:
    """/dev/zero used to be read without limit."""
    with pytest.raises(FetchError, match=f"^not a regular file: {device}$"):
        await fetch(client, device)


async def test_symlink_to_a_device_is_refused(tmp_path: Path, client: httpx.AsyncClient) -> None:
    link = tmp_path / "feed.xml"
    link.symlink_to("/dev/zero")

    with pytest.raises(FetchError, match=r"^not a regular file: "):
        await fetch(client, link.as_uri())


async def test_directory_is_refused(tmp_path: Path, client: httpx.AsyncClient) -> None:
    with pytest.raises(FetchError, match=f"^not a regular file: {tmp_path}$"):
        await fetch(client, str(tmp_path))


async def test_local_file_at_the_cap_is_read_and_one_byte_more_is_refused(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_bytes(b" " * CAP)
    result = await fetch(client, str(feed), max_bytes=CAP)
    assert result.body is not None and len(result.body) == CAP
    assert result.private is True  # the admin's own disk

    feed.write_bytes(b" " * (CAP + 1))
    with pytest.raises(FetchError, match=f"^the document is larger than the limit of {CAP} bytes$"):
        await fetch(client, str(feed), max_bytes=CAP)
