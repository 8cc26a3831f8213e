"""bot.fetch against a real HTTP feed server on 127.0.0.1 (and real local files)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.fetch import USER_AGENT, FetchError, FetchResult, fetch_feed, make_client
from tests.conftest import SAMPLES
from tests.fakes.feed_server import FeedServer, closed_port_url, http_date, strong_etag

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
) -> FetchResult:
    return await fetch_feed(
        client, url, etag=etag, last_modified=last_modified, max_bytes=max_bytes, timeout=timeout
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
