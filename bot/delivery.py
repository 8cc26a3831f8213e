"""Drain the outbox: render each due row at send time and hand it to a Sender.

The Sender (console, Telegram) only sends and reports what happened as a SendOutcome; what that
means for the subscriber and the row (close, move, wait, retry, give up) is decided here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bot.model import StoredStatement
from bot.store import Delivery, Store, retry_delay

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatAddress:
    chat_id: int | str
    thread_id: int | None = None  # forum topic


# What a Sender reports. Each is one situation the engine knows how to act on.
@dataclass(frozen=True)
class Sent:
    message_id: int | None


@dataclass(frozen=True)
class ChatGone:
    """The chat cannot receive anything any more (blocked, kicked, deleted, not found)."""

    reason: str


@dataclass(frozen=True)
class ChatMoved:
    """A group became a supergroup with a new id; the same message is to be sent there."""

    new_chat_id: int


@dataclass(frozen=True)
class Throttled:
    """Flood control: wait this long, then send again. Not the message's fault."""

    seconds: float


@dataclass(frozen=True)
class TransientFailure:
    """Network error or timeout: retry with backoff. The message may have arrived anyway."""

    reason: str


@dataclass(frozen=True)
class PermanentFailure:
    """Telegram refused this message for good (e.g. markup it cannot parse)."""

    reason: str


SendOutcome = Sent | ChatGone | ChatMoved | Throttled | TransientFailure | PermanentFailure


class Sender(Protocol):
    async def send(self, chat: ChatAddress, html: str) -> SendOutcome: ...

    async def reachable(self) -> bool:
        """Does the service answer at all? Tells a failing chat from an outage."""
        ...


Renderer = Callable[[StoredStatement], str]
AdminNotifier = Callable[[str], Awaitable[None]]


@dataclass
class DrainReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    closed_chats: int = 0
    moved_chats: int = 0


class DeliveryEngine:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        render: Renderer,
        notify_admins: AdminNotifier,
        clock: Callable[[], datetime],
        *,
        kind: str | None = None,  # "console" drains only the console chat; None all but it
        concurrency: int = 64,
        batch: int = 500,
        max_attempts: int = 5,
        retry_base: float = 5.0,
        retry_cap: float = 600.0,
    ) -> None:
        self.store = store
        self.sender = sender
        self.render = render
        self.notify_admins = notify_admins
        self.clock = clock
        self.kind = kind
        self.concurrency = concurrency
        self.batch = batch
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self._lock = asyncio.Lock()
        self._paused_until: datetime | None = None
        self._stopping = False

    def stop(self) -> None:
        """Send nothing new; the messages already in flight finish."""
        self._stopping = True

    async def drain(self) -> DrainReport:
        """Send every due row, one message per chat at a time, oldest statement first."""
        report = DrainReport()
        async with self._lock:  # one drain at a time: a chat never has two messages in flight
            semaphore = asyncio.Semaphore(self.concurrency)
            while not self._stopping:
                if self._paused_until and self.clock() < self._paused_until:
                    break
                due = self.store.due_deliveries(self.clock(), self.batch, kind=self.kind)
                if not due:
                    break

                async def one(delivery: Delivery) -> None:
                    async with semaphore:
                        if not self._stopping:
                            await self._deliver(delivery, report)

                await asyncio.gather(*(one(d) for d in due))
        return report

    async def _deliver(self, delivery: Delivery, report: DrainReport) -> None:
        sub = delivery.subscriber
        where = f"statement {delivery.statement.id} to chat {sub.chat_id}"
        self.store.mark_sending(delivery.id, self.clock())
        try:
            html = self.render(delivery.statement)
            outcome = await self.sender.send(ChatAddress(sub.chat_id, sub.thread_id), html)
        except Exception as exc:  # a bug, not Telegram: keep the row, retry later, tell admins
            logger.exception("delivery of %s crashed", where)
            outcome = TransientFailure(f"internal error: {type(exc).__name__}: {exc}")
        now = self.clock()
        match outcome:
            case Sent(message_id):
                self.store.mark_sent(delivery.id, message_id, now)
                report.sent += 1
            case ChatGone(reason):
                logger.info("chat %s is gone (%s): unsubscribed", sub.chat_id, reason)
                self.store.deactivate(sub.chat_id, reason, now)
                report.closed_chats += 1
                if sub.kind == "channel":
                    await self._tell_admins(
                        f"Channel {sub.chat_id} can no longer be posted to: {reason}. "
                        "It is skipped until the bot restarts."
                    )
            case ChatMoved(new_chat_id):
                logger.info("chat %s migrated to %s: resending there", sub.chat_id, new_chat_id)
                self.store.migrate_chat(sub.chat_id, new_chat_id, now)
                self.store.mark_retry(delivery.id, "chat migrated", now, count_attempt=False)
                report.moved_chats += 1
            case Throttled(seconds):
                logger.warning("flood control: pausing sends for %.1f s (%s)", seconds, where)
                until = now + timedelta(seconds=seconds)
                self._paused_until = max(self._paused_until or until, until)
                self.store.mark_retry(delivery.id, "flood control", until, count_attempt=False)
                report.retried += 1
            case TransientFailure(reason) if delivery.attempts + 1 < self.max_attempts:
                delay = retry_delay(delivery.attempts + 1, self.retry_base, self.retry_cap)
                logger.warning("delivery of %s failed (%s); retry in %s", where, reason, delay)
                self.store.mark_retry(delivery.id, reason, now + delay)
                report.retried += 1
            case TransientFailure(reason) if not await self._reachable():
                # An outage, not this chat's problem: an outage must lose nothing, so the row
                # waits (its last attempt not spent) until Telegram answers again.
                delay = timedelta(seconds=self.retry_cap)
                logger.error("Telegram unreachable (%s): %s waits %s", reason, where, delay)
                self.store.mark_retry(delivery.id, reason, now + delay, count_attempt=False)
                report.retried += 1
            case TransientFailure(reason) | PermanentFailure(reason):
                logger.error("delivery of %s failed for good: %s", where, reason)
                self.store.mark_failed(delivery.id, reason)
                report.failed += 1
                await self._tell_admins(
                    f"Could not deliver “{delivery.statement.title[:80]}” to chat "
                    f"{sub.chat_id}: {reason}"
                )

    async def _reachable(self) -> bool:
        try:
            return await self.sender.reachable()
        except Exception:
            logger.exception("checking whether the service is reachable failed")
            return False

    async def _tell_admins(self, text: str) -> None:
        try:
            await self.notify_admins(text)
        except Exception:
            logger.exception("could not notify the admins")
