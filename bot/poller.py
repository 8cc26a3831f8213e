"""One poll of one feed: fetch, read through its source, decide, record; failures are kept.

The decision is pure (bot.diff); the store only applies it. Nothing here raises for a bad feed:
every failure becomes a recorded error and a later retry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from urllib.parse import urlparse

import httpx

from bot.config import Config, FeedConfig
from bot.diff import PollDecision, adopt_stored_keys, decide, shared_guid_bases
from bot.fetch import DEFAULT_POLICY, AddressPolicy, FetchError, FetchResult
from bot.metrics import NO_METRICS, Metrics
from bot.model import FeedState, PollOutcome, PollReport, Statement
from bot.parse import FeedFormatError
from bot.sources import (
    FeedSource,
    Fetcher,
    Reading,
    Source,
    feed_fetcher,
    read_source,
    source_for,
)
from bot.store import AsyncStore, Store, StoreUnavailable
from bot.telegraph import Publisher, TelegraphClient

logger = logging.getLogger(__name__)

AdminNotifier = Callable[[str], Awaitable[None]]
Clock = Callable[[], datetime]


def backoff_delay(feed: FeedConfig, failures: int, max_backoff: float) -> float:
    """After n consecutive failures wait interval * 2^(n-1), capped (and never below 1 s)."""
    return max(1.0, min(max_backoff, feed.interval * 2 ** max(0, failures - 1)))


def body_hash(body: bytes, feed: FeedConfig) -> str:
    """Of the body and of how it is read: new selectors must read an unchanged page again."""
    return hashlib.sha256(repr(feed.page).encode() + b"\0" + body).hexdigest()


def decide_poll(
    feed: FeedConfig,
    state: FeedState,
    statements: Sequence[Statement],
    known: dict[str, Statement],
    *,
    edits_allowed: bool = True,
    compare_leads: bool = True,
) -> PollDecision:
    return decide(
        statements,
        known,
        first_poll=not state.baseline_done,
        announce_first=feed.announce_first,
        flood_limit=feed.flood_limit,
        edits_allowed=edits_allowed,
        compare_leads=compare_leads,
    )


def stored_view(
    store: Store, feed: str, statements: Sequence[Statement]
) -> tuple[list[Statement], dict[str, Statement]]:
    """The poll's statements, posts that share a guid under the keys they are stored under,
    and the stored ones among them: what the diff compares."""
    bases = shared_guid_bases(statements)
    if bases:
        statements = adopt_stored_keys(statements, store.key_families(feed, bases))
    return list(statements), store.known(feed, [s.key for s in statements])


def record_poll(
    store: Store,
    feed: FeedConfig,
    statements: Sequence[Statement],
    now: datetime,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    corrections_window: timedelta | None = None,
) -> PollReport:
    """Decide and apply in one go, on a synchronous Store (tests, benchmarks, tools)."""
    store.ensure_feed(feed)
    state = store.feed_state(feed.name)
    assert state is not None
    statements, known = stored_view(store, feed.name, statements)
    decision = decide_poll(feed, state, statements, known)
    # An empty document is no baseline: the next poll would push every old item.
    return store.apply_poll(
        feed.name, decision, now, etag=etag, last_modified=last_modified,
        baseline=bool(statements), corrections_window=corrections_window,
    )  # fmt: skip


class Poller:
    def __init__(
        self,
        config: Config,
        db: AsyncStore,
        client: httpx.AsyncClient,
        notify_admins: AdminNotifier,
        clock: Clock,
        *,
        address_policy: AddressPolicy = DEFAULT_POLICY,  # which addresses count as private
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.address_policy = address_policy
        self.db = db
        self.client = client
        self.notify_admins = notify_admins
        self.clock = clock
        self._feed_locks: dict[str, asyncio.Lock] = {}  # one poll of a feed at a time
        self._site_locks: dict[str, asyncio.Lock] = {}  # one article request at a time per site
        # Full text on Telegraph: pages are made here, before the statements are recorded, so
        # every chat's push links the same page and no chat waits for one (within one bounded
        # wait per poll: the fetch timeout).
        self.publisher: Publisher | None = None
        if config.telegraph:
            api = TelegraphClient(
                client, db, base_url=config.telegraph_api_base_url, timeout=config.fetch_timeout
            )
            self.publisher = Publisher(api, budget=config.fetch_timeout)

    def fetcher(self, feed: FeedConfig) -> Fetcher:
        return feed_fetcher(
            self.client,
            feed,
            max_bytes=self.config.max_feed_bytes,
            timeout=self.config.fetch_timeout,
            policy=self.address_policy,
        )

    def _article_fetcher(self, feed: FeedConfig, private_allowed: bool) -> Fetcher:
        fetch = self.fetcher(feed)

        async def fetch_article(url: str, **_: object) -> FetchResult:
            site = urlparse(url).netloc.lower()
            async with self._site_locks.setdefault(site, asyncio.Lock()):
                return await fetch(url, private_allowed=private_allowed)

        return fetch_article

    async def poll(self, feed: FeedConfig, *, force: bool = False) -> PollOutcome:
        """Poll `feed` unless it is backing off (`force` polls anyway, e.g. an admin's /poll)."""
        outcome = await self._poll_unless_backing_off(feed, force)
        self.metrics.polled(outcome)
        return outcome

    async def _poll_unless_backing_off(self, feed: FeedConfig, force: bool) -> PollOutcome:
        async with self._feed_locks.setdefault(feed.name, asyncio.Lock()):
            try:
                state = await self.db.write(lambda s: _ensured_state(s, feed))
            except StoreUnavailable as exc:
                logger.error("feed %s: not polled, the database is unavailable: %s", feed.name, exc)
                return PollOutcome(feed.name, error=f"database unavailable: {exc}")
            if not force and state.next_poll_at and self.clock() < state.next_poll_at:
                return PollOutcome(feed.name, skipped=True)
            return await self._poll(feed, state)

    async def _poll(self, feed: FeedConfig, state: FeedState) -> PollOutcome:
        source = source_for(feed, self.config.timezone, self.config.fetch_timeout)
        started = time.perf_counter()
        try:
            reading = await self._read(feed, state, source)
            result = reading.result
            if result.permanent_redirect and await self.db.write(
                lambda s: s.record_redirect(feed.name, result.permanent_redirect)
            ):
                await self._tell_admins(
                    f"Feed {feed.name} moved permanently to {result.permanent_redirect}; "
                    f"the bot follows the redirect, but please update its url in the config."
                )
            if reading.parsed is None:
                now = self.clock()
                await self.db.write(lambda s: s.record_not_modified(feed.name, now))
                await self._tell_recovered(feed, state.consecutive_failures)
                return PollOutcome(feed.name, not_modified=True)
            parsed = reading.parsed
            for line in parsed.skipped:
                logger.warning("feed %s: skipped an item: %s", feed.name, line)
            statements, known = await self.db.read(
                lambda s: stored_view(s, feed.name, parsed.statements)
            )
            decision = decide_poll(
                feed,
                state,
                statements,
                known,
                edits_allowed=not parsed.fallback_encoding,
                compare_leads=source.compares_leads,
            )
            if decision.push:  # only what will be pushed: never the baseline or held-back ones
                pushed = await source.complete(
                    decision.push, self._article_fetcher(feed, result.private)
                )
                if self.publisher is not None:
                    pushed = await self.publisher.publish(pushed, self._author(feed))
                decision = dataclasses.replace(decision, push=pushed)
            now = self.clock()
            digest = reading.fingerprint  # hashed once, when the body came in
            report = await self.db.write(
                lambda s: s.apply_poll(
                    feed.name,
                    decision,
                    now,
                    etag=result.etag,
                    last_modified=result.last_modified,
                    baseline=bool(parsed.statements),
                    body_sha256=digest,
                    skipped=parsed.skipped,
                    corrections_window=self.config.corrections_window,
                )
            )
        except (FetchError, FeedFormatError) as exc:
            retry_after = exc.retry_after if isinstance(exc, FetchError) else None
            return await self._failed(feed, str(exc), state.consecutive_failures + 1, retry_after)
        except StoreUnavailable as exc:
            # Nothing was recorded, so the next poll sees the same entries as new again.
            logger.error("feed %s: could not record the poll: %s", feed.name, exc)
            return PollOutcome(feed.name, error=f"database unavailable: {exc}")
        except Exception as exc:  # a bug or a surprise in a library: log it, keep the bot going
            logger.exception("feed %s: unexpected error while polling", feed.name)
            return await self._failed(
                feed, f"internal error: {type(exc).__name__}: {exc}", state.consecutive_failures + 1
            )
        if self.publisher is not None and decision.updated:
            # A pushed statement corrected in the feed: its page shows the correction too.
            await self.publisher.edit_updated(
                feed.name, [s.key for s in decision.updated], self._author(feed)
            )
        logger.info(
            "feed %s: %d entries, %d new to push, %d recorded silently, %d edited, "
            "%d deliveries queued (%.0f ms)",
            feed.name, len(parsed.statements), report.pushed, report.silent, report.updated,
            report.deliveries, (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        for title, edits in report.corrections:
            messages = "message" if edits == 1 else "messages"
            await self._tell_admins(f"Corrected “{title[:80]}”: editing {edits} sent {messages}.")
        if report.held_back:
            await self._tell_admins(
                f"Flood guard on feed {feed.name}: {report.pushed + report.held_back} unseen "
                f"items in one poll; pushed the newest {report.pushed}, recorded "
                f"{report.held_back} without a push."
            )
        await self._tell_recovered(feed, state.consecutive_failures)
        return PollOutcome(feed.name, report=report)

    def _author(self, feed: FeedConfig) -> str:
        """The page's author line: the section's title in the bot's language."""
        return feed.title(self.config.language)

    async def _read(self, feed: FeedConfig, state: FeedState, source: Source) -> Reading:
        """Read the feed, through the feed an HTML page named on an earlier poll if it did."""
        fetch = self.fetcher(feed)

        def fingerprint(body: bytes) -> str:
            return body_hash(body, feed)

        if state.discovered_url and feed.page is None:
            try:
                return await read_source(
                    FeedSource(discover=False),
                    fetch,
                    state.discovered_url,
                    etag=state.etag,
                    last_modified=state.last_modified,
                    private_allowed=state.discovered_private,
                    fingerprint=fingerprint,
                    last_fingerprint=state.body_sha256,
                )
            except (FetchError, FeedFormatError) as exc:
                # The site may have moved its feed: look at the page again on the next poll.
                await self.db.write(lambda s: s.record_discovered(feed.name, None))
                raise FetchError(
                    f"the discovered feed {state.discovered_url} failed: {exc}"
                ) from None
        reading = await read_source(
            source,
            fetch,
            feed.url,
            etag=state.etag,
            last_modified=state.last_modified,
            fingerprint=fingerprint,
            last_fingerprint=state.body_sha256,
        )
        if reading.discovered:
            logger.info("feed %s: the page names a feed; reading %s", feed.name, reading.discovered)
            found = reading.discovered
            await self.db.write(
                lambda s: s.record_discovered(feed.name, found, private=reading.result.private)
            )
        return reading

    async def _failed(
        self, feed: FeedConfig, error: str, failures: int, retry_after: float | None = None
    ) -> PollOutcome:
        now = self.clock()
        delay = backoff_delay(feed, failures, self.config.max_backoff)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.config.max_backoff))
        retry_at = now + timedelta(seconds=delay)
        try:
            streak = await self.db.write(
                lambda s: s.record_failure(feed.name, error, now, retry_at)
            )
        except StoreUnavailable as exc:
            logger.error("feed %s: poll failed (%s); could not record it: %s", feed.name, error,
                         exc)  # fmt: skip
            return PollOutcome(feed.name, error=error)
        logger.warning(
            "feed %s: poll failed (%d in a row), next try in %.0f s: %s",
            feed.name, streak, delay, error,
        )  # fmt: skip
        if streak == self.config.failure_alert_after:
            await self._tell_admins(
                f"Feed {feed.name} has failed {streak} polls in a row: {error}. "
                f"Retrying with backoff; nothing stored is lost."
            )
        return PollOutcome(feed.name, error=error)

    async def _tell_recovered(self, feed: FeedConfig, previous_failures: int) -> None:
        if previous_failures >= self.config.failure_alert_after:
            await self._tell_admins(
                f"Feed {feed.name} works again after {previous_failures} failed polls."
            )

    async def _tell_admins(self, text: str) -> None:
        logger.warning("admin notice: %s", text)
        try:
            await self.notify_admins(text)
        except Exception:  # telling admins must never break a poll
            logger.exception("could not notify the admins")


def _ensured_state(store: Store, feed: FeedConfig) -> FeedState:
    store.ensure_feed(feed)
    state = store.feed_state(feed.name)
    assert state is not None
    return state
