"""The running pipeline: scheduled polls feed the outbox, the delivery engine drains it.

Telegram-free: the console and the Telegram edge each hand it a Sender and an admin notifier.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.commands import PushRenderer
from bot.config import Config, FeedConfig
from bot.delivery import AdminNotifier, DeliveryEngine, DrainReport, Sender
from bot.metrics import NO_METRICS, Metrics
from bot.model import PollOutcome
from bot.poller import Poller
from bot.store import AUDIENCE_KINDS, AsyncStore, Store, StoreUnavailable

logger = logging.getLogger(__name__)

RETRY_SWEEP_SECONDS = 5.0  # how often rows waiting for a retry are looked at
MIDNIGHT_GRACE_SECONDS = 3600  # a midnight job delayed (a suspended host) still runs within this


def midnight_trigger(tz: ZoneInfo) -> CronTrigger:
    """00:00 every day in `tz`: wall-clock midnight, so a daylight-saving change moves it."""
    return CronTrigger(hour=0, minute=0, timezone=tz)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Service:
    def __init__(
        self,
        config: Config,
        store: AsyncStore | Store,
        client: httpx.AsyncClient,
        sender: Sender,
        notify_admins: AdminNotifier,
        *,
        clock: Callable[[], datetime] = utc_now,
        delivery_kinds: Sequence[str] = AUDIENCE_KINDS,  # the kinds of chat the engine sends to
        concurrency: int = 64,
        per_chat_interval: float = 0.0,
        metrics: Metrics = NO_METRICS,  # bot.metrics: what polls and sends are counted into
    ) -> None:
        self._owned: AsyncStore | None = None
        if isinstance(store, Store):
            # Transition: callers not yet converted hand over their Store; the service opens
            # its own door to the same file (and closes it in stop). Remove once all pass one.
            assert store.path is not None, "the service needs a database file"
            store = self._owned = AsyncStore.open(store.path)
        self.config = config
        self.store = store
        self.clock = clock
        self.notify_admins = notify_admins
        self.poller = Poller(config, store, client, notify_admins, clock, metrics=metrics)
        render = PushRenderer(config)
        self.engine = DeliveryEngine(
            store,
            sender,
            lambda d: render(d.statement, clock(), d.subscriber.language),
            notify_admins,
            clock,
            kinds=delivery_kinds,
            concurrency=concurrency,
            max_attempts=config.send_max_attempts,
            retry_base=config.send_retry_base,
            per_chat_interval=per_chat_interval,
            metrics=metrics,
        )
        self.scheduler: AsyncIOScheduler | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._drain_again = False
        self._jobs: set[asyncio.Task[object]] = set()  # scheduled jobs running now

    async def poll_feed(self, feed: FeedConfig, *, force: bool = False) -> PollOutcome:
        outcome = await self.poller.poll(feed, force=force)
        if outcome.new_deliveries:
            self.kick_delivery()
        return outcome

    async def poll_all(self, *, force: bool = False) -> list[PollOutcome]:
        return list(
            await asyncio.gather(*(self.poll_feed(f, force=force) for f in self.config.feeds))
        )

    async def drain(self) -> DrainReport:
        return await self.engine.drain()

    def kick_delivery(self) -> None:
        """Drain in the background; a kick during a drain makes it look again when done."""
        if self._drain_task and not self._drain_task.done():
            self._drain_again = True
            return
        self._drain_task = asyncio.create_task(self._drain_loop(), name="drain-outbox")

    async def _prune(self) -> None:
        keep = timedelta(days=self.config.keep_deliveries_days)
        before = self.clock() - keep
        try:
            removed = await self.store.write(lambda s: s.prune_deliveries(before))
        except StoreUnavailable as exc:
            logger.warning("could not delete old deliveries (%s); tomorrow's run will", exc)
            return
        if removed:
            logger.info("deleted %d finished deliveries older than %s", removed, keep)

    async def _sweep(self) -> None:
        # A coroutine on purpose: APScheduler runs plain functions in a thread, without a loop.
        self.kick_delivery()

    async def _drain_loop(self) -> None:
        while True:
            self._drain_again = False
            try:
                await self.engine.drain()
            except Exception:
                logger.exception("draining the outbox failed; the next sweep tries again")
            if not self._drain_again:
                return

    def start_scheduler(
        self,
        *,
        poll_now: bool = True,
        at_midnight: Callable[[], Awaitable[object]] | None = None,
    ) -> AsyncIOScheduler:
        """Each feed polls on its own interval (the first poll now, unless just polled);
        a sweep picks up deliveries waiting for a retry; `at_midnight` runs at 00:00 in
        bot.timezone (the pinned counters posts)."""
        scheduler = AsyncIOScheduler(timezone=UTC)
        job = self._stoppable
        for feed in self.config.feeds:
            first = self.clock() if poll_now else self.clock() + timedelta(seconds=feed.interval)
            scheduler.add_job(
                job(self.poll_feed),
                "interval",
                args=[feed],
                seconds=feed.interval,
                jitter=feed.jitter or None,
                next_run_time=first,
                id=f"poll:{feed.name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(feed.interval)),
            )
        scheduler.add_job(
            job(self._prune),
            "interval",
            hours=24,
            next_run_time=self.clock(),
            id="prune-outbox",
            max_instances=1,
            coalesce=True,
        )
        scheduler.add_job(
            job(self._sweep),
            "interval",
            seconds=RETRY_SWEEP_SECONDS,
            id="delivery-sweep",
            max_instances=1,
            coalesce=True,
        )
        if at_midnight is not None:
            scheduler.add_job(
                job(at_midnight),
                midnight_trigger(self.config.timezone),
                id="midnight",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=MIDNIGHT_GRACE_SECONDS,
            )
        scheduler.start()
        self.scheduler = scheduler
        return scheduler

    def _stoppable(self, fn: Callable[..., Awaitable[object]]) -> Callable[..., Awaitable[None]]:
        """A scheduled job that stop() may cancel. APScheduler logs a cancelled job as a crash,
        with a traceback, so the job ends quietly instead (stopping is no error)."""

        @functools.wraps(fn)
        async def run(*args: object) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._jobs.add(task)
            try:
                await fn(*args)
            except asyncio.CancelledError:
                logger.info("%s stopped by the shutdown", getattr(fn, "__name__", "a job"))
            finally:
                self._jobs.discard(task)

        return run

    async def stop(self, grace: float = 5.0) -> None:
        """Stop polling, let the messages in flight finish (within `grace`), send nothing new."""
        if self.scheduler and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for task in list(self._jobs):  # a poll or a prune under way: what it wrote is kept
            task.cancel()
        if self._jobs:
            await asyncio.wait(list(self._jobs), timeout=grace)
        self.engine.stop()
        if self._drain_task and not self._drain_task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._drain_task), grace)
            except TimeoutError:
                logger.warning(
                    "messages still in flight after %.0f s; they are resent on start", grace
                )
                self._drain_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._drain_task
        # Outcomes Telegram gave while the database could not take them: a last try, else
        # those rows stay 'sending' and are sent again at start-up (at most one per chat).
        left = await self.engine.close()
        if left:
            logger.error("%d sent messages could not be recorded; they are resent on start", left)
        if self._owned is not None:
            self._owned.close()
            self._owned = None
