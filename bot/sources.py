"""Sources: how a fetched document becomes statements, behind one small seam.

Two kinds: a feed (RSS, Atom or JSON Feed, or the feed that an HTML page names) and an HTML list
page read with CSS selectors, whose new statements may have their own page (the article) read for
a fuller lead. The poller and `preview` only call `read_source` and `Source.complete`; neither
branches on the kind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol
from zoneinfo import ZoneInfo

import httpx

from bot import parse_pool
from bot.config import FeedConfig
from bot.fetch import DEFAULT_POLICY, AddressPolicy, FetchError, FetchResult, fetch_feed
from bot.model import PageSpec, ParsedDocument, Statement
from bot.parse import FeedFormatError, looks_like_html, parse_feed

logger = logging.getLogger(__name__)


class Fetcher(Protocol):
    """Fetch one URL (the poller's fetch_feed with the feed's headers, caps and timeout)."""

    def __call__(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        private_allowed: bool | None = None,
    ) -> Awaitable[FetchResult]: ...


def feed_fetcher(
    client: httpx.AsyncClient,
    feed: FeedConfig,
    *,
    max_bytes: int,
    timeout: float,
    policy: AddressPolicy = DEFAULT_POLICY,
) -> Fetcher:
    """fetch_feed with the feed's own headers and the bot's size cap and timeout."""

    async def fetch(
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        private_allowed: bool | None = None,
    ) -> FetchResult:
        return await fetch_feed(
            client,
            url,
            etag=etag,
            last_modified=last_modified,
            max_bytes=max_bytes,
            timeout=timeout,
            headers=dict(feed.headers),
            private_allowed=private_allowed,
            policy=policy,
        )

    return fetch


@dataclass(frozen=True)
class Discovered:
    """An HTML page that names a feed: read that feed instead."""

    url: str


class Source(Protocol):
    def read(
        self, body: bytes, *, url: str, content_type: str | None
    ) -> ParsedDocument | Discovered:
        """Statements of one document (pure; run off the event loop)."""
        ...

    async def complete(self, statements: list[Statement], fetch: Fetcher) -> list[Statement]:
        """Statements about to be pushed, with whatever the source adds (an article's text)."""
        ...

    @property
    def compares_leads(self) -> bool:
        """False when stored leads come from elsewhere (articles): the list's lead is no edit."""
        ...


class FeedSource:
    """RSS, Atom or JSON Feed; an HTML page that names a feed is read through that feed."""

    def __init__(self, *, discover: bool = True) -> None:
        self.discover = discover

    def read(
        self, body: bytes, *, url: str, content_type: str | None
    ) -> ParsedDocument | Discovered:
        if self.discover and looks_like_html(body, content_type):
            from bot.page import discover_feeds  # parsel loads only when a page needs it

            links = discover_feeds(body, url=url, content_type=content_type)
            if links:
                return Discovered(links[0])
        return parse_feed(body, url=url, content_type=content_type)

    async def complete(self, statements: list[Statement], fetch: Fetcher) -> list[Statement]:
        return statements

    @property
    def compares_leads(self) -> bool:
        return True


class PageSource:
    """An HTML list page ([feeds.page]); with `article`, each pushed statement's own page."""

    def __init__(self, spec: PageSpec, timezone: ZoneInfo, *, article_budget: float) -> None:
        self.spec = spec
        self.timezone = timezone
        self.article_budget = article_budget  # seconds for all of one poll's articles

    def read(self, body: bytes, *, url: str, content_type: str | None) -> ParsedDocument:
        from bot.page import parse_list_page

        return parse_list_page(
            body, url=url, content_type=content_type, spec=self.spec, timezone=self.timezone
        )

    async def complete(self, statements: list[Statement], fetch: Fetcher) -> list[Statement]:
        """Read each statement's own page, one at a time; a failure keeps the list's lead.

        All of a poll's articles share one time budget, so a slow site delays the push by a
        bounded wait and the statement still goes out.
        """
        if not self.spec.article:
            return statements
        from bot.page import article_content

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.article_budget
        completed = []
        for statement in statements:
            left = deadline - loop.time()
            if not statement.link or left <= 0:
                if statement.link:
                    logger.warning("article %s: no time left; using the list's lead",
                                   statement.link)  # fmt: skip
                completed.append(statement)
                continue
            try:
                async with asyncio.timeout(left):
                    result = await fetch(statement.link)
                if result.body is None:
                    raise FetchError("no body")
                text, markup = await asyncio.to_thread(
                    article_content,
                    result.body,
                    url=result.url,
                    content_type=result.content_type,
                    selector=self.spec.article,
                )
            except (FetchError, TimeoutError) as exc:
                reason = str(exc) or "timed out"
                logger.warning("article %s: %s; using the list's lead", statement.link, reason)
                completed.append(statement)
                continue
            if not text:
                logger.warning("article %s: %r matched nothing; using the list's lead",
                               statement.link, self.spec.article)  # fmt: skip
            # The article's HTML, not only its text: the full text of its Telegraph page.
            completed.append(replace(statement, lead=text, full_html=markup) if text else statement)
        return completed

    @property
    def compares_leads(self) -> bool:
        # Pushed statements keep their article's text as the lead; the list's shorter lead on
        # the next poll is not a correction.
        return not self.spec.article


def source_for(feed: FeedConfig, timezone: ZoneInfo, fetch_timeout: float) -> Source:
    if feed.page is not None:
        return PageSource(feed.page, timezone, article_budget=fetch_timeout * 3)
    return FeedSource()


@dataclass(frozen=True)
class Reading:
    """One read of a source: the document fetched last and what it held."""

    result: FetchResult  # the feed's own document (after discovery, the discovered feed's)
    parsed: ParsedDocument | None  # None: not modified since the validators sent
    discovered: str | None = None  # the feed URL an HTML page named, when one was followed
    fingerprint: str | None = None  # of the document read (`fingerprint` of read_source)


async def read_source(
    source: Source,
    fetch: Fetcher,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    private_allowed: bool | None = None,
    fingerprint: Callable[[bytes], str] | None = None,
    last_fingerprint: str | None = None,
) -> Reading:
    """Fetch `url` and read it; follow the feed an HTML page names (one hop, no further).

    A body whose `fingerprint` is `last_fingerprint` is the one already read (a server that
    ignores conditional GET): it then costs what a 304 costs, no parse.
    """
    result = await fetch(
        url, etag=etag, last_modified=last_modified, private_allowed=private_allowed
    )
    if result.body is None:
        return Reading(result, None)
    seen = fingerprint(result.body) if fingerprint else None
    if seen is not None and seen == last_fingerprint:
        return Reading(result, None)
    parsed = await _read(source, result)
    if not isinstance(parsed, Discovered):
        return Reading(result, parsed, fingerprint=seen)
    # The named feed must not lead from a public page into the private network: it is allowed
    # there only when the page itself was.
    feed_result = await fetch(parsed.url, private_allowed=result.private)
    if feed_result.body is None:
        raise FetchError(f"the feed the page names ({parsed.url}) sent no document")
    feed = await _read(FeedSource(discover=False), feed_result)
    assert not isinstance(feed, Discovered)
    feed_print = fingerprint(feed_result.body) if fingerprint else None
    return Reading(feed_result, feed, discovered=parsed.url, fingerprint=feed_print)


async def _read(source: Source, result: FetchResult) -> ParsedDocument | Discovered:
    assert result.body is not None
    # Parsing a big document takes a while: off the event loop, and a big one in a process of
    # its own (bot.parse_pool), so that it does not hold up sends and commands.
    try:
        return await parse_pool.parse(
            source.read, result.body, url=result.url, content_type=result.content_type
        )
    except RecursionError as exc:  # a hostile document nested ten thousand deep
        raise FeedFormatError(f"the document is nested too deeply to read ({exc})") from None
    except parse_pool.ParserDied as exc:  # a failed poll like any unreadable document
        raise FeedFormatError(str(exc)) from None
