"""One poll of one feed: fetch, parse, record; failures are kept on the feed's row.

Nothing here raises for a bad feed: every failure becomes a recorded error and a later retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import httpx

from bot.config import Config, FeedConfig
from bot.diff import decide
from bot.fetch import FetchError, fetch_feed
from bot.model import PollOutcome, PollReport, Statement
from bot.parse import FeedFormatError, parse_feed
from bot.store import Store

logger = logging.getLogger(__name__)

AdminNotifier = Callable[[str], Awaitable[None]]
Clock = Callable[[], datetime]


def backoff_delay(feed: FeedConfig, failures: int, max_backoff: float) -> float:
    """After n consecutive failures wait interval * 2^(n-1), capped (and never below 1 s)."""
    return max(1.0, min(max_backoff, feed.interval * 2 ** max(0, failures - 1)))


def record_poll(
    store: Store,
    feed: FeedConfig,
    statements: Sequence[Statement],
    now: datetime,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    edits_allowed: bool = True,
) -> PollReport:
    """Decide what a poll's statements mean against what is stored, then have the store apply it."""
    store.ensure_feed(feed)
    state = store.feed_state(feed.name)
    assert state is not None
    decision = decide(
        statements,
        store.known(feed.name, [s.key for s in statements]),
        first_poll=not state.baseline_done,
        announce_first=feed.announce_first,
        flood_limit=feed.flood_limit,
        edits_allowed=edits_allowed,
    )
    # An empty document is no baseline: the next poll would push every old item.
    return store.apply_poll(
        feed.name, decision, now, etag=etag, last_modified=last_modified, baseline=bool(statements)
    )


class Poller:
    def __init__(
        self,
        config: Config,
        store: Store,
        client: httpx.AsyncClient,
        notify_admins: AdminNotifier,
        clock: Clock,
    ) -> None:
        self.config = config
        self.store = store
        self.client = client
        self.notify_admins = notify_admins
        self.clock = clock

    async def poll(self, feed: FeedConfig, *, force: bool = False) -> PollOutcome:
        """Poll `feed` unless it is backing off (`force` polls anyway, e.g. an admin's /poll)."""
        self.store.ensure_feed(feed)
        state = self.store.feed_state(feed.name)
        assert state is not None
        now = self.clock()
        if not force and state.next_poll_at and now < state.next_poll_at:
            return PollOutcome(feed.name, skipped=True)
        try:
            started = time.perf_counter()
            result = await fetch_feed(
                self.client,
                feed.url,
                etag=state.etag,
                last_modified=state.last_modified,
                max_bytes=self.config.max_feed_bytes,
                timeout=self.config.fetch_timeout,
            )
            if result.permanent_redirect and self.store.record_redirect(
                feed.name, result.permanent_redirect
            ):
                await self._tell_admins(
                    f"Feed {feed.name} moved permanently to {result.permanent_redirect}; "
                    f"the bot follows the redirect, but please update its url in the config."
                )
            if result.not_modified:
                self.store.record_not_modified(feed.name, self.clock())
                recovered = state.consecutive_failures
                await self._tell_recovered(feed, recovered)
                return PollOutcome(feed.name, not_modified=True)
            assert result.body is not None
            # Parsing a big feed takes a while: off the event loop, so sends and commands go on.
            statements = await asyncio.to_thread(
                parse_feed, result.body, url=result.url, content_type=result.content_type
            )
            report = record_poll(
                self.store,
                feed,
                statements,
                self.clock(),
                etag=result.etag,
                last_modified=result.last_modified,
            )
        except (FetchError, FeedFormatError) as exc:
            retry_after = exc.retry_after if isinstance(exc, FetchError) else None
            return await self._failed(feed, str(exc), state.consecutive_failures + 1, retry_after)
        except Exception as exc:  # a bug or a surprise in a library: log it, keep the bot going
            logger.exception("feed %s: unexpected error while polling", feed.name)
            return await self._failed(
                feed, f"internal error: {type(exc).__name__}: {exc}", state.consecutive_failures + 1
            )
        logger.info(
            "feed %s: %d entries, %d new to push, %d recorded silently, %d edited, "
            "%d deliveries queued (%.0f ms)",
            feed.name, len(statements), report.pushed, report.silent, report.updated,
            report.deliveries, (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        if report.held_back:
            await self._tell_admins(
                f"Flood guard on feed {feed.name}: {report.pushed + report.held_back} unseen "
                f"items in one poll; pushed the newest {report.pushed}, recorded "
                f"{report.held_back} without a push."
            )
        await self._tell_recovered(feed, state.consecutive_failures)
        return PollOutcome(feed.name, report=report)

    async def _failed(
        self, feed: FeedConfig, error: str, failures: int, retry_after: float | None = None
    ) -> PollOutcome:
        now = self.clock()
        delay = backoff_delay(feed, failures, self.config.max_backoff)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.config.max_backoff))
        streak = self.store.record_failure(feed.name, error, now, now + timedelta(seconds=delay))
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
