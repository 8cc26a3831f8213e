"""Fetch a feed document: conditional GET over httpx, or a local file. No parsing here."""

from __future__ import annotations

import asyncio
import email.utils
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from bot import __version__

logger = logging.getLogger(__name__)

USER_AGENT = f"statement-bot/{__version__} (Telegram bot that relays official statements)"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)


class FetchError(Exception):
    """The document could not be had this time. `retry_after` is the server's own wish."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class FetchResult:
    body: bytes | None  # None: not modified since the validators we sent
    url: str  # where the document finally came from (after redirects)
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    permanent_redirect: str | None = None  # the new address, if the server moved the feed for good

    @property
    def not_modified(self) -> bool:
        return self.body is None


def make_client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=True,
        max_redirects=5,
        headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
    )


async def fetch_feed(
    client: httpx.AsyncClient,
    url: str,
    *,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
    timeout: float,
) -> FetchResult:
    """Fetch `url` (http(s), file: URL or path). Raise FetchError for anything unusable."""
    scheme = urlparse(url).scheme.lower()
    if scheme in ("http", "https"):
        try:
            # The whole exchange is bounded, not only each read: a server that trickles a byte
            # every few seconds must not hold the poll for ever.
            async with asyncio.timeout(timeout * 2):
                return await _fetch_http(client, url, etag, last_modified, max_bytes)
        except TimeoutError:
            raise FetchError(f"timed out after {timeout * 2:g} s") from None
    return await asyncio.to_thread(_read_file, url, last_modified, max_bytes)


async def _fetch_http(
    client: httpx.AsyncClient,
    url: str,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
) -> FetchResult:
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        async with client.stream("GET", url, headers=headers) as response:
            moved = _permanent_redirect(response)
            if response.status_code == 304:
                return FetchResult(
                    None,
                    str(response.url),
                    etag=response.headers.get("ETag", etag),
                    last_modified=response.headers.get("Last-Modified", last_modified),
                    permanent_redirect=moved,
                )
            if response.status_code >= 400:
                raise FetchError(
                    f"HTTP {response.status_code} {response.reason_phrase}".strip(),
                    retry_after=_retry_after(response)
                    if response.status_code in (429, 503)
                    else None,
                )
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise FetchError(f"the document is larger than the limit of {max_bytes} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"the document is larger than the limit of {max_bytes} bytes")
                chunks.append(chunk)
            return FetchResult(
                b"".join(chunks),
                str(response.url),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
                content_type=response.headers.get("Content-Type"),
                permanent_redirect=moved,
            )
    except httpx.TimeoutException as exc:
        raise FetchError(f"timed out ({type(exc).__name__})") from None
    except httpx.TooManyRedirects:
        raise FetchError("too many redirects") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"cannot fetch: {type(exc).__name__}: {exc}") from None


def _permanent_redirect(response: httpx.Response) -> str | None:
    if any(r.status_code in (301, 308) for r in response.history):
        return str(response.url)
    return None


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After as seconds (it may be a number or an HTTP date)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _read_file(url: str, last_modified: str | None, max_bytes: int) -> FetchResult:
    parsed = urlparse(url)
    path = Path(unquote(parsed.path)) if parsed.scheme.lower() == "file" else Path(url)
    try:
        stat = path.stat()
        # The file's mtime plays the part of Last-Modified: unchanged file, no parse.
        stamp = str(stat.st_mtime_ns)
        if last_modified == stamp:
            return FetchResult(None, url, last_modified=stamp)
        if stat.st_size > max_bytes:
            raise FetchError(f"the document is larger than the limit of {max_bytes} bytes")
        return FetchResult(
            path.read_bytes(),
            path.resolve().as_uri(),
            last_modified=stamp,
            content_type="application/xml",  # what a web server would say for a feed file
        )
    except FileNotFoundError:
        raise FetchError(f"no such file: {path}") from None
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from None
