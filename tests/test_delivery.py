"""The delivery engine: what each kind of send outcome does to the subscriber and the outbox."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Config, FeedConfig
from bot.delivery import (
    ChatAddress,
    ChatGone,
    ChatMoved,
    DeliveryEngine,
    PermanentFailure,
    SendOutcome,
    Sent,
    Throttled,
    TransientFailure,
)
from bot.diff import PollDecision
from bot.model import FanOutProgress, Statement
from bot.store import AsyncStore, Store

FEED = FeedConfig(name="statements", url="https://example.org/rss")


class ScriptedSender:
    """Sends succeed unless a chat has outcomes queued; records what each chat received."""

    def __init__(self) -> None:
        self.script: dict[int | str, list[SendOutcome]] = defaultdict(list)
        self.received: dict[int | str, list[str]] = defaultdict(list)
        self.attempts: list[int | str] = []
        self.up = True  # False: the whole service is down (getMe fails too)

    async def reachable(self) -> bool:
        return self.up

    async def send(self, chat: ChatAddress, html: str) -> SendOutcome:
        self.attempts.append(chat.chat_id)
        if self.script[chat.chat_id]:
            return self.script[chat.chat_id].pop(0)
        self.received[chat.chat_id].append(html)
        return Sent(len(self.received[chat.chat_id]))


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class Admins:
    def __init__(self) -> None:
        self.notices: list[str] = []

    async def __call__(self, text: str) -> None:
        self.notices.append(text)


def statements(*numbers: int, base: datetime) -> list[Statement]:
    return [
        Statement(f"k{n}", f"Statement {n}", f"https://e.org/{n}", base + timedelta(hours=n), "")
        for n in sorted(numbers, reverse=True)
    ]


@pytest.fixture
def store(db: AsyncStore) -> Store:
    """The same database, for setting up and checking between drains (nothing writes then)."""
    return db.writer


@pytest.fixture
def clock(now: datetime) -> Clock:
    return Clock(now)


@pytest.fixture
def admins() -> Admins:
    return Admins()


@pytest.fixture
def sender() -> ScriptedSender:
    return ScriptedSender()


@pytest.fixture
def engine(db: AsyncStore, sender: ScriptedSender, admins: Admins, clock: Clock) -> DeliveryEngine:
    return DeliveryEngine(
        db, sender, lambda d: d.statement.title, admins, clock, retry_base=10, max_attempts=3
    )


def publish(store: Store, now: datetime, *numbers: int) -> None:
    """The given statements as one poll's new ones: an outbox row each for every subscriber."""
    store.ensure_feed(FEED)
    push = list(reversed(statements(*numbers, base=now - timedelta(days=1))))  # oldest first
    store.apply_poll(FEED.name, PollDecision(push=push), now)


async def test_everyone_gets_every_statement_once_in_order(
    store: Store, engine: DeliveryEngine, sender: ScriptedSender, now: datetime
) -> None:
    for chat in (1, 2, 3):
        store.subscribe(chat, "private", now)
    publish(store, now, 1, 2, 3)
    report = await engine.drain()
    assert report.sent == 9
    for chat in (1, 2, 3):
        assert sender.received[chat] == ["Statement 1", "Statement 2", "Statement 3"]
    assert (await engine.drain()).sent == 0  # nothing twice


async def test_blocked_chat_is_unsubscribed_and_its_rows_closed(
    store: Store, engine: DeliveryEngine, sender: ScriptedSender, now: datetime
) -> None:
    store.subscribe(1, "private", now)
    store.subscribe(2, "private", now)
    sender.script[1] = [ChatGone("Forbidden: bot was blocked by the user")]
    publish(store, now, 1, 2)
    report = await engine.drain()
    assert report.closed_chats == 1
    assert sender.attempts.count(1) == 1  # the second statement was not even tried
    assert sender.received[2] == ["Statement 1", "Statement 2"]
    sub = store.subscriber(1)
    assert sub and not sub.active and sub.reason == "Forbidden: bot was blocked by the user"
    assert store.status().pending == 0


async def test_migrated_group_gets_the_message_at_its_new_id(
    store: Store, engine: DeliveryEngine, sender: ScriptedSender, now: datetime
) -> None:
    store.subscribe(-5, "group", now)
    sender.script[-5] = [ChatMoved(-1005)]
    publish(store, now, 1, 2)
    await engine.drain()
    assert sender.received[-1005] == ["Statement 1", "Statement 2"]
    assert store.subscriber(-1005) is not None and store.subscriber(-5) is None


async def test_flood_control_waits_as_told(
    store: Store, engine: DeliveryEngine, sender: ScriptedSender, clock: Clock, now: datetime
) -> None:
    store.subscribe(1, "private", now)
    sender.script[1] = [Throttled(30)]
    publish(store, now, 1)
    report = await engine.drain()
    assert report.sent == 0 and report.retried == 1
    clock.now = now + timedelta(seconds=29)
    assert (await engine.drain()).sent == 0
    clock.now = now + timedelta(seconds=31)
    assert (await engine.drain()).sent == 1
    assert sender.received[1] == ["Statement 1"]


async def test_network_errors_are_retried_with_growing_backoff_then_failed(
    store: Store,
    engine: DeliveryEngine,
    sender: ScriptedSender,
    clock: Clock,
    admins: Admins,
    now: datetime,
) -> None:
    store.subscribe(1, "private", now)
    sender.script[1] = [TransientFailure("Timed out")] * 3
    publish(store, now, 1, 2)
    await engine.drain()  # attempt 1 fails: retry in 10 s
    clock.now += timedelta(seconds=9)
    await engine.drain()
    assert sender.attempts == [1]
    clock.now += timedelta(seconds=2)
    await engine.drain()  # attempt 2 fails: retry in 20 s
    assert sender.attempts == [1, 1]
    clock.now += timedelta(seconds=19)
    await engine.drain()
    assert sender.attempts == [1, 1]
    clock.now += timedelta(seconds=2)
    report = await engine.drain()  # attempt 3 fails: given up, admins told; the next one goes
    assert report.failed == 1
    assert sender.received[1] == ["Statement 2"]
    assert len(admins.notices) == 1 and "Statement 1" in admins.notices[0]
    assert store.status().failed == 1


async def test_a_refused_message_fails_at_once_and_admins_hear(
    store: Store, engine: DeliveryEngine, sender: ScriptedSender, admins: Admins, now: datetime
) -> None:
    store.subscribe(1, "private", now)
    sender.script[1] = [PermanentFailure("Can't parse entities")]
    publish(store, now, 1)
    report = await engine.drain()
    assert report.failed == 1
    assert "Can't parse entities" in admins.notices[0]


async def test_a_crashing_sender_loses_nothing(
    db: AsyncStore,
    store: Store,
    sender: ScriptedSender,
    admins: Admins,
    clock: Clock,
    now: datetime,
) -> None:
    class Broken(ScriptedSender):
        async def send(self, chat: ChatAddress, html: str) -> SendOutcome:
            raise RuntimeError("bug")

    store.subscribe(1, "private", now)
    publish(store, now, 1)
    engine = DeliveryEngine(db, Broken(), lambda d: d.statement.title, admins, clock, retry_base=1)
    report = await engine.drain()
    assert report.retried == 1
    fixed = DeliveryEngine(db, sender, lambda d: d.statement.title, admins, clock)
    clock.now += timedelta(seconds=5)
    assert (await fixed.drain()).sent == 1


async def test_stop_sends_nothing_new(
    store: Store, engine: DeliveryEngine, sender: ScriptedSender, now: datetime
) -> None:
    store.subscribe(1, "private", now)
    publish(store, now, 1)
    engine.stop()
    assert (await engine.drain()).sent == 0
    assert store.status().pending == 1


async def test_an_outage_loses_nothing(
    store: Store,
    engine: DeliveryEngine,
    sender: ScriptedSender,
    clock: Clock,
    admins: Admins,
    now: datetime,
) -> None:
    """Past the last attempt, a row is failed only if Telegram answers otherwise."""
    store.subscribe(1, "private", now)
    sender.script[1] = [TransientFailure("network error: connection refused")] * 6
    sender.up = False
    publish(store, now, 1)
    for _ in range(6):
        clock.now += timedelta(minutes=11)  # beyond every backoff, the cap included
        report = await engine.drain()
        assert report.failed == 0
    assert store.status().pending == 1 and store.status().failed == 0
    assert admins.notices == []
    sender.up = True
    clock.now += timedelta(minutes=11)
    assert (await engine.drain()).sent == 1
    assert sender.received[1] == ["Statement 1"]


async def test_one_notice_per_statement_however_many_chats_fail(
    store: Store, engine: DeliveryEngine, sender: ScriptedSender, admins: Admins, now: datetime
) -> None:
    for chat in (1, 2, 3):
        store.subscribe(chat, "private", now)
        sender.script[chat] = [PermanentFailure("Can't parse entities")]
    publish(store, now, 1)
    assert (await engine.drain()).failed == 3
    assert len(admins.notices) == 1
    assert admins.notices[0].startswith("Could not deliver “Statement 1” to 3 chats (e.g. chat ")


async def test_messages_to_one_chat_are_paced(
    db: AsyncStore,
    store: Store,
    sender: ScriptedSender,
    admins: Admins,
    clock: Clock,
    now: datetime,
) -> None:
    import time

    class Timed(ScriptedSender):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        async def send(self, chat: ChatAddress, html: str) -> SendOutcome:
            self.times.append(time.monotonic())
            return await super().send(chat, html)

    timed = Timed()
    store.subscribe(1, "private", now)
    publish(store, now, 1, 2, 3)
    engine = DeliveryEngine(
        db, timed, lambda d: d.statement.title, admins, clock, per_chat_interval=0.2
    )
    assert (await engine.drain()).sent == 3
    gaps = [b - a for a, b in zip(timed.times, timed.times[1:], strict=False)]
    assert all(gap >= 0.19 for gap in gaps), gaps


async def test_during_an_outage_everything_waits_without_spending_attempts(
    store: Store, engine: DeliveryEngine, sender: ScriptedSender, clock: Clock, now: datetime
) -> None:
    store.subscribe(1, "private", now)
    sender.script[1] = [TransientFailure("network error")]
    sender.up = False
    publish(store, now, 1, 2)
    assert (await engine.drain()).retried == 1
    assert store.db.execute("SELECT MAX(attempts) FROM deliveries").fetchone()[0] == 0
    clock.now += timedelta(seconds=29)
    assert (await engine.drain()).sent == 0  # paused: nothing goes out meanwhile
    sender.up = True
    clock.now += timedelta(seconds=2)
    assert (await engine.drain()).sent == 2
    assert sender.received[1] == ["Statement 1", "Statement 2"]


async def test_a_batch_stopped_midway_puts_its_unsent_rows_back_without_spending_attempts(
    db: AsyncStore, store: Store, admins: Admins, clock: Clock, now: datetime
) -> None:
    # The whole batch is marked 'sending' in one write before its first send; what the stop
    # keeps from being sent must not wait for a restart, nor count as a try.
    for chat in range(1, 11):
        store.subscribe(chat, "private", now)
    publish(store, now, 1)

    class StopsAfterThree(ScriptedSender):
        async def send(self, chat: ChatAddress, html: str) -> SendOutcome:
            outcome = await super().send(chat, html)
            if len(self.attempts) == 3:
                engine.stop()
            return outcome

    sender = StopsAfterThree()
    engine = DeliveryEngine(db, sender, lambda d: d.statement.title, admins, clock, concurrency=1)
    assert (await engine.drain()).sent == 3
    rows = store.db.execute("SELECT status, attempts FROM deliveries ORDER BY id").fetchall()
    assert sorted(rows) == [("pending", 0)] * 7 + [("sent", 1)] * 3


async def test_a_long_fan_out_shows_its_progress_and_logs_it(
    db: AsyncStore, store: Store, admins: Admins, clock: Clock, now: datetime,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setattr("bot.delivery.PROGRESS_LOG_EVERY", 0.05)
    for chat in range(1, 41):
        store.subscribe(chat, "private", now)
    publish(store, now, 1)
    seen: list[list[FanOutProgress]] = []

    class Slow(ScriptedSender):
        async def send(self, chat: ChatAddress, html: str) -> SendOutcome:
            await asyncio.sleep(0.005)
            seen.append(engine.progress())
            return await super().send(chat, html)

    engine = DeliveryEngine(db, Slow(), lambda d: d.statement.title, admins, clock,
                            concurrency=2, batch=10)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="bot.delivery"):
        assert (await engine.drain()).sent == 40
    [first] = seen[0]
    assert (first.title, first.total) == ("Statement 1", 40)
    [later] = seen[-1]
    assert 30 <= later.done < 40 and later.rate > 0 and later.seconds_left is not None
    assert engine.progress() == []  # done: nothing under way
    lines = [r.getMessage() for r in caplog.records if "fan-out: sending" in r.getMessage()]
    assert lines and "of 40," in lines[0] and "/s" in lines[0]


def test_status_shows_a_fan_out_under_way(make_config: Callable[..., Config]) -> None:
    from bot.commands import status_reply
    from bot.model import StoreStatus

    config = make_config()
    status = StoreStatus(statements=3, active_subscribers=10_000, pending=3_800, failed=0,
                         feeds=[])  # fmt: skip
    under_way = FanOutProgress("New statement", 6_200, 10_000, 950.0)
    reply = status_reply(status, config, datetime(2026, 11, 28, tzinfo=UTC), sending=[under_way])
    assert "sending “New statement”: 6,200 of 10,000, 950/s, about 4 s left" in reply
    russian = status_reply(status, config, datetime(2026, 11, 28, tzinfo=UTC), language="ru",
                           sending=[under_way])  # fmt: skip
    expected = "рассылка «New statement»: 6\u00a0200 из 10\u00a0000, 950/с, осталось около 4 с"  # noqa: RUF001
    assert expected in russian


# ---- forum topics (issue 11) ----------------------------------------------------------------


async def test_a_forums_topics_get_their_pushes_one_at_a_time_paced_as_one_chat(
    db: AsyncStore, store: Store, admins: Admins, clock: Clock, now: datetime
) -> None:
    """Each topic is a subscription with its own queue, but Telegram limits the chat: never
    two of its messages in flight, each about per_chat_interval after the last."""
    import time

    class Slow(ScriptedSender):
        def __init__(self) -> None:
            super().__init__()
            self.forum_starts: list[float] = []
            self.in_flight: dict[int | str, int] = defaultdict(int)
            self.most: dict[int | str, int] = defaultdict(int)
            self.topics: dict[int | None, list[str]] = defaultdict(list)

        async def send(self, chat: ChatAddress, html: str) -> SendOutcome:
            if chat.chat_id == -1007:
                self.forum_starts.append(time.monotonic())
                self.topics[chat.thread_id].append(html)
            self.in_flight[chat.chat_id] += 1
            self.most[chat.chat_id] = max(self.most[chat.chat_id], self.in_flight[chat.chat_id])
            await asyncio.sleep(0.05)
            self.in_flight[chat.chat_id] -= 1
            return await super().send(chat, html)

    slow = Slow()
    for topic in (None, 77, 78):
        store.subscribe(-1007, "supergroup", now, thread_id=topic)
    store.subscribe(5, "private", now)
    publish(store, now, 1, 2)
    engine = DeliveryEngine(db, slow, lambda d: d.statement.title, admins, clock,
                            per_chat_interval=0.2, concurrency=8)  # fmt: skip
    assert (await engine.drain()).sent == 8
    assert slow.topics == {t: ["Statement 1", "Statement 2"] for t in (None, 77, 78)}
    assert slow.most == {-1007: 1, 5: 1}
    gaps = [b - a for a, b in zip(slow.forum_starts, slow.forum_starts[1:], strict=False)]
    assert len(gaps) == 5 and all(gap >= 0.19 for gap in gaps), gaps


async def test_a_deleted_topic_stops_only_that_topic(
    store: Store, engine: DeliveryEngine, sender: ScriptedSender, now: datetime
) -> None:
    for topic in (77, 78):
        store.subscribe(-1007, "supergroup", now, thread_id=topic)
    publish(store, now, 1)

    sender.script[-1007] = [ChatGone("Bad Request: message thread not found", topic_only=True)]
    report = await engine.drain()
    assert (report.sent, report.closed_chats) == (1, 1)
    assert [s.thread_id for s in (store.subscriber(-1007, 77), store.subscriber(-1007, 78))
            if s and s.active] in ([77], [78])  # fmt: skip
    sender.script[-1007] = [ChatGone("Forbidden: bot was kicked from the supergroup chat")]
    publish(store, now, 2)
    assert (await engine.drain()).closed_chats == 1
    assert store.active_subscriber_count() == 0  # the chat itself is gone: every topic


async def test_a_stop_between_reading_a_batch_and_claiming_it_sends_nothing_there(
    db: AsyncStore, store: Store, sender: ScriptedSender, admins: Admins, clock: Clock,
    now: datetime,
) -> None:  # fmt: skip
    """The batch is read on the read connection and claimed by the writer: a /stop that lands
    in between closes the chat's row, and the claim must not bring it back."""
    from bot.model import Delivery

    class StopAfterRead:
        """The real store; after the first batch is read, chat 2 sends /stop."""

        def __init__(self) -> None:
            self.stopped = False

        async def read(self, fn):  # type: ignore[no-untyped-def]
            result = await db.read(fn)
            if not self.stopped and result and isinstance(result[0], Delivery):
                self.stopped = True
                await db.write(lambda s: s.deactivate(2, "/stop", now))
            return result

        def __getattr__(self, name: str) -> object:
            return getattr(db, name)

    for chat in (1, 2, 3):
        store.subscribe(chat, "private", now)
    publish(store, now, 1)
    engine = DeliveryEngine(StopAfterRead(), sender, lambda d: d.statement.title, admins, clock)  # type: ignore[arg-type]
    assert (await engine.drain()).sent == 2
    assert sorted(sender.received) == [1, 3]
    [(status, attempts)] = store.db.execute(
        "SELECT d.status, d.attempts FROM deliveries d JOIN subscribers c "
        "ON c.id = d.subscriber_id WHERE c.chat_id = '2'"
    ).fetchall()
    assert (status, attempts) == ("closed", 0)


async def test_a_chats_turn_passes_on_when_a_waiting_send_is_cancelled() -> None:
    """A send cancelled while it waits for its chat (the bot stopping) must not keep the turn:
    the chat's next send still goes, and the chat is forgotten once nobody waits."""
    from bot.delivery import _ChatTurns

    turns, order = _ChatTurns(), []

    async def send(name: str) -> None:
        await turns.acquire(-1007)
        try:
            order.append(name)
            await asyncio.sleep(0.01)
        finally:
            turns.release(-1007)

    first = asyncio.create_task(send("first"))
    await asyncio.sleep(0)
    second, third = asyncio.create_task(send("second")), asyncio.create_task(send("third"))
    await asyncio.sleep(0)
    second.cancel()  # cancelled while waiting
    await asyncio.gather(first, third, return_exceptions=True)
    assert order == ["first", "third"] and second.cancelled()

    # Handed the turn and cancelled before it ran: it passes the turn on.
    await turns.acquire(-1007)  # held
    waiter_b = asyncio.create_task(turns.acquire(-1007))
    waiter_c = asyncio.create_task(turns.acquire(-1007))
    await asyncio.sleep(0)  # both wait
    turns.release(-1007)  # b is handed the turn...
    waiter_b.cancel()  # ...and cancelled before it runs
    await asyncio.wait_for(waiter_c, 1)  # c got it
    assert waiter_b.cancelled()
    turns.release(-1007)
    assert turns._waiting == {}
