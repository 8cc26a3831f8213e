"""Drain the outbox: render each due row at send time and hand it to a Sender.

The Sender (console, Telegram) only sends and reports what happened as a SendOutcome; what that
means for the subscriber and the row (close, move, wait, retry, give up) is decided here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.metrics import NO_METRICS, Metrics, open_statements
from bot.model import Delivery, FanOutProgress
from bot.store import AUDIENCE_KINDS, AsyncStore, Store, StoreUnavailable, retry_delay

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatAddress:
    chat_id: int | str
    thread_id: int | None = None  # forum topic
    silent: bool = False  # the chat chose pushes without a sound (/settings)


# What a Sender reports. Each is one situation the engine knows how to act on.
@dataclass(frozen=True)
class Sent:
    message_id: int | None


@dataclass(frozen=True)
class ChatGone:
    """The chat cannot receive anything any more (blocked, kicked, deleted, not found), or,
    with `topic_only`, the forum topic the message went to is gone (deleted): the chat's other
    topics still get theirs."""

    reason: str
    topic_only: bool = False


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


@dataclass(frozen=True)
class MessageGone:
    """An edit's message no longer exists (the user deleted it): nothing left to correct."""

    reason: str


SendOutcome = (
    Sent | ChatGone | ChatMoved | Throttled | TransientFailure | PermanentFailure | MessageGone
)


class Sender(Protocol):
    async def send(self, chat: ChatAddress, html: str) -> SendOutcome: ...

    async def edit(self, chat: ChatAddress, message_id: int, html: str) -> SendOutcome:
        """Replace the text of a message sent earlier; an edit that changes nothing is Sent."""
        ...

    async def reachable(self) -> bool:
        """Does the service answer at all? Tells a failing chat from an outage."""
        ...


Renderer = Callable[[Delivery], str]  # the push, in the subscriber's language
AdminNotifier = Callable[[str], Awaitable[None]]


@dataclass
class DrainReport:
    sent: int = 0
    edited: int = 0  # corrections: messages edited in place
    retried: int = 0
    failed: int = 0
    closed_chats: int = 0
    moved_chats: int = 0
    # statement id -> (title, [(chat, reason), ...]): one notice per statement, not per chat
    failures: dict[int, tuple[str, list[tuple[int | str, str]]]] = field(default_factory=dict)
    db_error: str | None = None  # the database could not be written: the drain paused


Record = Callable[[Store], object]  # writes one send's outcome; safe to run twice


PROGRESS_LOG_EVERY = 10.0  # s between the log's progress lines of a long fan-out


@dataclass
class _FanOut:
    title: str
    total: int  # the statement's outbox rows
    done: int  # of them finished (sent, closed, failed)
    started: float  # time.monotonic() when this engine took it up
    done_before: int = 0  # finished before that (a restart mid fan-out)

    def __post_init__(self) -> None:
        self.done_before = self.done

    def progress(self, now: float) -> FanOutProgress:
        took = now - self.started
        rate = (self.done - self.done_before) / took if took > 0 else 0.0
        return FanOutProgress(self.title, self.done, self.total, rate)


def _row_counts(store: Store, statement_ids: list[int]) -> dict[int, tuple[int, int]]:
    """statement id -> (its outbox rows, of them finished), through the unique index that
    starts with statement_id."""
    marks = ",".join("?" * len(statement_ids))
    rows = store.db.execute(
        f"SELECT statement_id, COUNT(*), SUM(status NOT IN ('pending', 'sending')) "
        f"FROM deliveries WHERE statement_id IN ({marks}) GROUP BY statement_id",
        statement_ids,
    ).fetchall()
    return {r[0]: (r[1], r[2] or 0) for r in rows}


def _claim(ids: list[int], now: datetime, claimed: set[int]) -> Record:
    """Mark a batch 'sending' in one transaction, before any of it is sent: after a crash these
    rows are sent again, and since a batch holds at most one row per chat, a chat (a forum's
    topic) gets at most one message twice (one commit per batch, not per message).
    `claimed` gets the rows that were still pending: one that /stop closed after the batch was
    read stays closed and is not sent."""

    def write(store: Store) -> None:
        claimed.update(store.claim(ids, now))

    return write


@dataclass(frozen=True)
class _MarkSent:
    """The record of an accepted send: written with every other one of its group commit in one
    statement (Store.mark_sent_many), not one lambda each."""

    delivery_id: int
    message_id: int | None
    at: datetime

    def __call__(self, store: Store) -> None:
        store.mark_sent(self.delivery_id, self.message_id, self.at)


def _record_all(records: list[Record]) -> Record:
    def write(store: Store) -> None:
        with store.db.atomic():
            sent = [(r.delivery_id, r.message_id, r.at) for r in records if type(r) is _MarkSent]
            store.mark_sent_many(sent)
            for record in records:
                if type(record) is not _MarkSent:
                    record(store)

    return write


def _probe(store: Store) -> None:
    """Take the write lock and let it go: the cheapest proof that writes get through."""
    store.db.execute("BEGIN IMMEDIATE")
    store.db.execute("ROLLBACK")


class DeliveryEngine:
    def __init__(
        self,
        db: AsyncStore,
        sender: Sender,
        render: Renderer,
        notify_admins: AdminNotifier,
        clock: Callable[[], datetime],
        *,
        kinds: Sequence[str] = AUDIENCE_KINDS,  # the kinds of chat this engine sends to
        concurrency: int = 64,
        batch: int = 500,
        max_attempts: int = 5,
        retry_base: float = 5.0,
        retry_cap: float = 600.0,
        per_chat_interval: float = 0.0,  # Telegram: about one message a second to one chat
        outage_pause: float = 30.0,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.db = db
        self.sender = sender
        self.render = render
        self.notify_admins = notify_admins
        self.clock = clock
        self.kinds = tuple(kinds)
        self.concurrency = concurrency
        self.batch = batch
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.per_chat_interval = per_chat_interval
        self.outage_pause = timedelta(seconds=outage_pause)
        self.metrics = metrics
        # Statements seen in a batch whose rows are not all finished: id -> when recorded.
        self._fanning_out: dict[int, datetime] = {}
        # Statements whose fan-out was observed finished. Batches overlap (the next is claimed
        # while the last sends), so a batch can still name a statement whose last row another
        # batch already finished: it must not be counted twice. The newest 10,000 are enough.
        self._fanned_out: dict[int, None] = {}
        self._lock = asyncio.Lock()
        self._paused_until: datetime | None = None
        self._stopping = False
        self._last_send: dict[int | str, float] = {}  # chat -> time.monotonic() of its last send
        self._chat_turns = _ChatTurns()
        self._reachability: tuple[datetime, bool] | None = None  # (checked at, answer)
        # The database: one write at a time from here, so that after a failure the writes
        # queued behind it do not each wait out the busy timeout.
        self._gate = asyncio.Lock()
        self._db_blocked = False  # no writes (and so no sends) until the next drain's probe
        self._db_error: str | None = None  # why it failed; admins were told once
        # Outcomes Telegram gave that the database has not taken yet, by delivery id. Their
        # rows stay 'sending', which due_deliveries never returns, so they are not sent again.
        self._unrecorded: dict[int, Record] = {}
        # Outcomes Telegram gave, waiting for the next group commit (written while the sends
        # go on: one transaction for all answers that came in during the previous write).
        self._answered: dict[int, Record] = {}
        self._recorder: asyncio.Task[None] | None = None
        self._fanouts: dict[int, _FanOut] = {}  # statement id -> its progress (/status, log)
        self._wrote = False  # this drain wrote something: the WAL is worth a checkpoint

    def stop(self) -> None:
        """Send nothing new; the messages already in flight finish."""
        self._stopping = True

    async def close(self) -> int:
        """At shutdown, after the last drain: a last try to write the outcomes held in memory.
        Returns how many are still unwritten (their rows are sent again at start-up)."""
        async with self._lock:
            self._db_blocked = False
            await self.flush()
            return len(self._unrecorded)

    @property
    def unrecorded(self) -> int:
        """Sends whose outcome is only in memory, waiting for the database."""
        return len(self._unrecorded)

    def progress(self) -> list[FanOutProgress]:
        """The statements on their way to their chats, for /status."""
        now = time.monotonic()
        return [f.progress(now) for f in self._fanouts.values() if f.done < f.total]

    async def _track(self, due: list[Delivery]) -> None:
        """Count the rows of statements this drain takes up for the first time."""
        titles = {d.statement.id: d.statement.title for d in due}
        new = sorted(titles.keys() - self._fanouts.keys())
        if not new:
            return
        try:
            counts = await self.db.read(lambda s: _row_counts(s, new))
        except StoreUnavailable:
            return  # progress is a nicety: the next batch asks again
        started = time.monotonic()
        for statement_id, (total, done) in counts.items():
            self._fanouts[statement_id] = _FanOut(titles[statement_id], total, done, started)

    async def _log_progress(self) -> None:
        """One line every PROGRESS_LOG_EVERY s while a fan-out goes on."""
        while True:
            await asyncio.sleep(PROGRESS_LOG_EVERY)
            now = time.monotonic()
            for fanout in list(self._fanouts.values()):
                if fanout.done < fanout.total:
                    logger.info("fan-out: %s", fanout.progress(now).line())

    def _forget_finished_fanouts(self) -> None:
        now = time.monotonic()
        for statement_id, fanout in list(self._fanouts.items()):
            if fanout.done >= fanout.total:
                took = now - fanout.started
                if took >= PROGRESS_LOG_EVERY:
                    logger.info("fan-out: “%s” reached %d chats in %.1f s (%.0f/s)",
                                fanout.title[:80], fanout.total, took,
                                (fanout.done - fanout.done_before) / took)  # fmt: skip
                del self._fanouts[statement_id]

    async def drain(self) -> DrainReport:
        """Send every due row, one message per chat at a time, oldest statement first."""
        report = DrainReport()
        async with self._lock:  # one drain at a time: a chat never has two messages in flight
            self._db_blocked = False  # probe: the first write tells whether it is back
            self._wrote = False
            if await self.flush():
                await self._drain_batches(report)
            if self._db_error is not None and not self._db_blocked:
                await self._recovered()
            report.db_error = self._db_error
            await self._report_failures(report)
            if self._wrote and not self._db_blocked:
                await self._checkpoint()
        return report

    async def _drain_batches(self, report: DrainReport) -> None:
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(delivery: Delivery) -> None:
            chat = delivery.subscriber.chat_id
            # A forum's topics are one chat to Telegram: their rows go one at a time, paced.
            await self._chat_turns.acquire(chat)
            try:
                await self._pace(chat)
                async with semaphore:
                    if not self._stopping and not self._db_blocked:
                        await self._deliver(delivery, report)
                    else:  # claimed but not sent: back to the queue, no attempt spent
                        self._release(delivery)
            finally:
                self._chat_turns.release(chat)

        async def finish(due: list[Delivery], sends: asyncio.Future[list[Any]]) -> None:
            try:
                results = await sends
            finally:
                await self._recorded()
            for delivery, result in zip(due, results, strict=True):
                if isinstance(result, BaseException):
                    logger.error("delivery %s crashed", delivery.id, exc_info=result)
                    if not isinstance(result, Exception):
                        raise result  # cancelled (shutdown): stop here
            await self._observe_fanouts(due)

        # The next batch is read and claimed while the last one is still sending (its rows
        # are 'sending', so no chat comes up twice), so a fan-out does not stall between
        # batches; the semaphore still bounds the messages in flight. Every send of a batch is
        # awaited, whatever another one raised: a send left running unawaited would race the
        # next drain for the same rows.
        running: tuple[list[Delivery], asyncio.Future[list[Any]]] | None = None
        ticker = asyncio.create_task(self._log_progress(), name="fan-out-progress")
        try:
            while not self._stopping and not self._db_blocked:
                if self._paused_until and self.clock() < self._paused_until:
                    break
                try:
                    due = await self.db.read(
                        lambda s: s.due_deliveries(self.clock(), self.batch, kinds=self.kinds)
                    )
                except StoreUnavailable as exc:
                    await self._db_failed(str(exc))
                    break
                if not due:
                    if running is None:
                        break
                    # The running batch's outcomes may make more rows due (a chat's next one).
                    last, running = running, None
                    await finish(*last)
                    continue
                # No 'sending' mark, no send: the rows stay pending and go out after the fault.
                claimed: set[int] = set()
                if not await self._write(_claim([d.id for d in due], self.clock(), claimed)):
                    break
                due = [d for d in due if d.id in claimed]
                self._forget_old_sends()
                await self._track(due)
                sends = asyncio.gather(*(one(d) for d in due), return_exceptions=True)
                last, running = running, (due, sends)
                if last is not None:
                    await finish(*last)
        finally:
            ticker.cancel()
            if running is not None:
                await finish(*running)
            self._forget_finished_fanouts()

    async def flush(self) -> bool:
        """Write the outcomes still held in memory; True when none is left."""
        if not self._unrecorded:
            return True
        pending = dict(self._unrecorded)

        def record_all(store: Store) -> None:
            with store.db.atomic():
                for record in pending.values():
                    record(store)

        if not await self._write(record_all):
            return False
        for delivery_id in pending:
            self._unrecorded.pop(delivery_id, None)
        logger.info("recorded %d send outcomes kept while the database was failing", len(pending))
        return True

    def _record(self, delivery_id: int, record: Record) -> None:
        """Telegram has answered: keep the answer until it is written, never ask again."""
        self._answered[delivery_id] = record
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._write_answers(), name="record-outcomes")

    def _release(self, delivery: Delivery) -> None:
        now = self.clock()
        self._record(delivery.id, lambda s: s.mark_retry(
            delivery.id, "not sent: the drain stopped", now, count_attempt=False))  # fmt: skip

    async def _write_answers(self) -> None:
        """Group commit: every answer that came in while the last write ran, in one write."""
        while self._answered:
            answers, self._answered = self._answered, {}
            try:
                written = await self._write(_record_all(list(answers.values())))
            except Exception:  # a bug in one record: write the others one by one
                logger.exception("recording %d send outcomes failed; one at a time", len(answers))
                written = True
                for delivery_id, record in answers.items():
                    try:
                        if not await self._write(record):
                            self._unrecorded[delivery_id] = record
                    except Exception:
                        logger.exception("recording the outcome of delivery %s failed",
                                         delivery_id)  # fmt: skip
            if not written:  # the database failed: kept in memory, flushed by a later drain
                self._unrecorded.update(answers)

    async def _recorded(self) -> None:
        """Wait until every answer so far is written (or held in memory after a failure)."""
        while self._recorder is not None and not self._recorder.done():
            await asyncio.shield(self._recorder)

    async def _write(self, fn: Record) -> bool:
        """fn through the writer, unless the database failed during this drain; False when
        it was not written (the reason is in self._db_error)."""
        async with self._gate:
            if self._db_blocked:
                return False
            try:
                await self.db.write(fn)
            except StoreUnavailable as exc:
                failed = str(exc)
            else:
                failed = None
        if failed is not None:
            await self._db_failed(failed)
            return False
        self._wrote = True
        return True

    async def _recovered(self) -> None:
        """A whole drain without a failed write ends the episode (a nearly full disk takes
        some writes and refuses others: one notice for all of it, not one per flap)."""
        if not self._wrote:  # nothing needed writing: ask for the write lock, to be sure
            await self._write(_probe)
            if self._db_blocked:
                return
        logger.warning("the database can be written again; deliveries resume")
        self._db_error = None
        await self._tell_admins("The database can be written again; deliveries resumed.")

    async def _db_failed(self, reason: str) -> None:
        """Pause: nothing more is sent until a later drain finds the database writable."""
        self._db_blocked = True
        if self._db_error is not None:
            return  # told already
        self._db_error = reason
        logger.error("the database cannot be written (%s): deliveries paused", reason)
        await self._tell_admins(
            f"The database cannot be written ({reason}). Deliveries are paused and resume by "
            "themselves once it can; nothing is lost or sent twice."
        )

    async def _checkpoint(self) -> None:
        """Fold the WAL back into the database after a fan-out, so it does not grow."""
        async with self._gate:
            try:
                await self.db.write(Store.checkpoint)
            except StoreUnavailable as exc:
                logger.warning("WAL checkpoint failed: %s", exc)

    async def _pace(self, chat_id: int | str) -> None:
        """Keep a chat's messages about per_chat_interval apart (Telegram's per-chat limit)."""
        last = self._last_send.get(chat_id)
        if last is not None:
            wait = last + self.per_chat_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)

    def _forget_old_sends(self) -> None:
        horizon = time.monotonic() - self.per_chat_interval
        self._last_send = {c: t for c, t in self._last_send.items() if t > horizon}

    async def _deliver(self, delivery: Delivery, report: DrainReport) -> None:
        sub = delivery.subscriber
        edit = delivery.kind == "edit"
        where = f"statement {delivery.statement.id} to chat {sub.chat_id}"
        if edit:
            where = "correction of " + where
        if self.per_chat_interval:
            self._last_send[sub.chat_id] = time.monotonic()
        try:
            html = self.render(delivery)
            address = ChatAddress(sub.chat_id, sub.thread_id, sub.silent)
            started = time.perf_counter()
            if edit:
                assert delivery.message_id is not None  # due_deliveries holds back those without
                outcome = await self.sender.edit(address, delivery.message_id, html)
            else:
                outcome = await self.sender.send(address, html)
            self.metrics.send_took(time.perf_counter() - started)
        except Exception as exc:  # a bug, not Telegram: keep the row, retry later, tell admins
            logger.exception("delivery of %s crashed", where)
            outcome = TransientFailure(f"internal error: {type(exc).__name__}: {exc}")
        now = self.clock()
        record: Record
        finished = True  # this chat is done with the statement (for the fan-out's progress)
        match outcome:
            case Sent(message_id) if edit:
                record = _MarkSent(delivery.id, message_id, now)
                report.edited += 1
                self.metrics.delivered("edited")
            case Sent(message_id):
                record = _MarkSent(delivery.id, message_id, now)
                report.sent += 1
                self.metrics.delivered("sent")
            case MessageGone(reason):
                logger.info("%s: the message is gone (%s); nothing to correct", where, reason)
                record = lambda s: s.mark_closed(delivery.id, reason)  # noqa: E731
                self.metrics.delivered("message_gone")
            case ChatMoved(_) if edit:
                # The group's old messages stay behind: the supergroup has no message to edit.
                logger.info("chat %s migrated: its correction has no message there", sub.chat_id)
                record = lambda s: s.mark_closed(delivery.id, "chat migrated")  # noqa: E731
                self.metrics.delivered("moved")
            case ChatGone(reason, topic_only=True) if sub.thread_id is not None:
                logger.info("topic %s of chat %s is gone (%s): unsubscribed", sub.thread_id,
                            sub.chat_id, reason)  # fmt: skip
                record = lambda s: s.deactivate(  # noqa: E731
                    sub.chat_id, reason, now, thread_id=sub.thread_id
                )
                report.closed_chats += 1
                self.metrics.delivered("chat_gone")
            case ChatGone(reason):
                logger.info("chat %s is gone (%s): unsubscribed", sub.chat_id, reason)
                record = lambda s: s.deactivate_chat(sub.chat_id, reason, now)  # noqa: E731
                report.closed_chats += 1
                self.metrics.delivered("chat_gone")
                if sub.kind == "channel":
                    await self._tell_admins(
                        f"Channel {sub.chat_id} can no longer be posted to: {reason}. "
                        "It is skipped until the bot restarts."
                    )
            case ChatMoved(new_chat_id):
                logger.info("chat %s migrated to %s: resending there", sub.chat_id, new_chat_id)

                def record(s: Store) -> None:
                    s.migrate_chat(sub.chat_id, new_chat_id, now)  # a no-op the second time
                    s.mark_retry(delivery.id, "chat migrated", now, count_attempt=False)

                report.moved_chats += 1
                self.metrics.delivered("moved")
                finished = False
            case Throttled(seconds):
                logger.warning("flood control: pausing sends for %.1f s (%s)", seconds, where)
                until = now + timedelta(seconds=seconds)
                paused_from = max(now, self._paused_until or now)  # overlapping waits count once
                self._pause(until)
                self.metrics.delivered("throttled")
                self.metrics.flood_wait((until - paused_from).total_seconds())
                record = lambda s: s.mark_retry(  # noqa: E731
                    delivery.id, "flood control", until, count_attempt=False
                )
                report.retried += 1
                finished = False
            case TransientFailure(reason) if await self._in_outage(now):
                # Telegram itself does not answer: not this chat's problem, and an outage must
                # lose nothing. Everything waits, no attempt spent, and is tried again soon.
                logger.error("Telegram unreachable (%s): sends paused for %s", reason,
                             self.outage_pause)  # fmt: skip
                self._pause(now + self.outage_pause)
                record = lambda s: s.mark_retry(  # noqa: E731
                    delivery.id, reason, now + self.outage_pause, count_attempt=False
                )
                report.retried += 1
                self.metrics.delivered("retried")
                finished = False
            case TransientFailure(reason) if delivery.attempts + 1 < self.max_attempts:
                delay = retry_delay(delivery.attempts + 1, self.retry_base, self.retry_cap)
                logger.warning("delivery of %s failed (%s); retry in %s", where, reason, delay)
                record = lambda s: s.mark_retry(delivery.id, reason, now + delay)  # noqa: E731
                report.retried += 1
                self.metrics.delivered("retried")
                finished = False
            case TransientFailure(reason) | PermanentFailure(reason):
                logger.error("delivery of %s failed for good: %s", where, reason)
                record = lambda s: s.mark_failed(delivery.id, reason)  # noqa: E731
                report.failed += 1
                self.metrics.delivered("failed")
                _, chats = report.failures.setdefault(
                    delivery.statement.id, (delivery.statement.title, [])
                )
                chats.append((sub.chat_id, reason))
        self._record(delivery.id, record)
        fanout = self._fanouts.get(delivery.statement.id)
        if finished and fanout is not None:
            fanout.done += 1

    async def _observe_fanouts(self, due: list[Delivery]) -> None:
        """Metrics: a statement none of whose rows is still open has reached every chat; how
        long that took since it was recorded. One read per batch, and only with metrics on."""
        if not self.metrics.enabled:
            return
        for delivery in due:
            if delivery.statement.id not in self._fanned_out:
                self._fanning_out.setdefault(delivery.statement.id, delivery.statement.first_seen)
        ids = list(self._fanning_out)
        try:
            still_open = await self.db.read(lambda s: open_statements(s, ids, self.kinds))
        except StoreUnavailable:
            return  # the next batch looks again
        now = self.clock()
        for statement_id in ids:
            if statement_id not in still_open:
                recorded = self._fanning_out.pop(statement_id)
                self._fanned_out[statement_id] = None
                if len(self._fanned_out) > 10_000:
                    del self._fanned_out[next(iter(self._fanned_out))]
                self.metrics.fanout_finished((now - recorded).total_seconds())

    def _pause(self, until: datetime) -> None:
        self._paused_until = max(self._paused_until or until, until)

    async def _in_outage(self, now: datetime) -> bool:
        """Does the service fail to answer at all? Asked at most every few seconds."""
        if self._reachability and now - self._reachability[0] < timedelta(seconds=5):
            return not self._reachability[1]
        reachable = await self._reachable()
        self._reachability = (now, reachable)
        return not reachable

    async def _report_failures(self, report: DrainReport) -> None:
        """One notice per statement that failed for good, however many chats it failed in."""
        for title, chats in report.failures.values():
            chat, reason = chats[0]
            where = f"chat {chat}" if len(chats) == 1 else f"{len(chats)} chats (e.g. chat {chat})"
            await self._tell_admins(f"Could not deliver “{title[:80]}” to {where}: {reason}")

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


class _ChatTurns:
    """One send at a time per chat. A batch holds one row per chat, but the next batch is
    claimed while the last one sends, and may hold another topic of the same forum: Telegram
    limits the chat, not the topic. Plain futures rather than a lock per chat: this runs for
    every message at 1,000/s, and a chat nobody else waits for costs two dict operations."""

    def __init__(self) -> None:
        self._waiting: dict[int | str, deque[asyncio.Future[None]]] = {}

    async def acquire(self, chat: int | str) -> None:
        waiting = self._waiting.get(chat)
        if waiting is None:
            self._waiting[chat] = deque()
            return
        turn = asyncio.get_running_loop().create_future()
        waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release(chat)  # handed the turn as it was cancelled: pass it on
            elif turn in waiting:  # the holder's release may have dropped it already
                waiting.remove(turn)
            raise

    def release(self, chat: int | str) -> None:
        waiting = self._waiting[chat]
        while waiting:
            turn = waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        del self._waiting[chat]
