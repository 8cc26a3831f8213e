"""The store: polls applied atomically with their outbox rows; the outbox keeps chat order."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import FeedConfig
from bot.model import ChatSettings, Statement
from bot.poller import record_poll
from bot.store import (
    CLOSED,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    AsyncStore,
    Store,
    StoreUnavailable,
)

FEED = FeedConfig(name="statements", url="https://example.org/rss", flood_limit=10)
T0 = datetime(2021, 10, 1, tzinfo=UTC)


def st(n: int, title: str | None = None) -> Statement:
    return Statement(f"k{n}", title or f"S{n}", f"https://e.org/{n}", T0 + timedelta(days=n), "")


def feed(*numbers: int) -> list[Statement]:
    return [st(n) for n in sorted(numbers, reverse=True)]


def statuses(store: Store) -> list[tuple[str, int, str]]:
    return [
        (r["chat_id"], r["key"], r["status"])
        for r in store.db.query(
            "SELECT c.chat_id, s.key, d.status FROM deliveries d "
            "JOIN subscribers c ON c.id = d.subscriber_id JOIN statements s ON s.id = d.statement_id "
            "ORDER BY c.chat_id, s.sort_at"
        )
    ]


@pytest.fixture
def baseline(store: Store, now: datetime) -> Store:
    store.subscribe(1, "private", now)
    store.subscribe(-100, "supergroup", now)
    record_poll(store, FEED, feed(1, 2), now)
    return store


def test_first_poll_records_without_deliveries(store: Store, now: datetime) -> None:
    store.subscribe(1, "private", now)
    report = record_poll(store, FEED, feed(1, 2, 3), now, etag='"v1"')
    assert (report.pushed, report.silent, report.deliveries) == (0, 3, 0)
    assert store.statement_count() == 3
    state = store.feed_state("statements")
    assert state and state.baseline_done and state.etag == '"v1"'


def test_new_statements_get_one_row_per_active_subscriber(baseline: Store, now: datetime) -> None:
    baseline.subscribe(2, "private", now)
    baseline.deactivate(2, "/stop", now)
    report = record_poll(baseline, FEED, feed(1, 2, 3, 4), now)
    assert (report.pushed, report.deliveries) == (2, 4)
    assert statuses(baseline) == [
        ("-100", "k3", PENDING), ("-100", "k4", PENDING), ("1", "k3", PENDING), ("1", "k4", PENDING)
    ]  # fmt: skip


def test_poll_and_outbox_are_one_transaction(baseline: Store, now: datetime) -> None:
    """If writing the outbox fails, the new statements are not recorded either."""
    baseline.db.execute(
        "CREATE TRIGGER fail_outbox BEFORE INSERT ON deliveries "
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    with pytest.raises(sqlite3.DatabaseError):
        record_poll(baseline, FEED, feed(1, 2, 3), now)
    baseline.db.execute("DROP TRIGGER fail_outbox")
    assert baseline.statement_count() == 2
    report = record_poll(baseline, FEED, feed(1, 2, 3), now)  # so the next poll still sees it new
    assert report.pushed == 1


def test_edit_updates_without_a_new_delivery(baseline: Store, now: datetime) -> None:
    report = record_poll(baseline, FEED, [st(2, "Corrected"), st(1)], now)
    assert (report.updated, report.deliveries) == (1, 0)
    assert baseline.latest(1)[0].title == "Corrected"


def test_due_deliveries_one_per_chat_oldest_first(baseline: Store, now: datetime) -> None:
    record_poll(baseline, FEED, feed(1, 2, 3, 4), now)
    due = baseline.due_deliveries(now, 100)
    assert sorted((d.subscriber.chat_id, d.statement.key) for d in due) == [(-100, "k3"), (1, "k3")]
    for d in due:
        baseline.mark_sending(d.id, now)
        baseline.mark_sent(d.id, 10, now)
    assert {d.statement.key for d in baseline.due_deliveries(now, 100)} == {"k4"}


def test_a_chat_waiting_for_a_retry_gets_nothing_newer(baseline: Store, now: datetime) -> None:
    record_poll(baseline, FEED, feed(1, 2, 3, 4), now)
    head = next(d for d in baseline.due_deliveries(now, 100) if d.subscriber.chat_id == 1)
    baseline.mark_sending(head.id, now)
    baseline.mark_retry(head.id, "timed out", now + timedelta(minutes=1))
    assert [d.subscriber.chat_id for d in baseline.due_deliveries(now, 100)] == [-100]
    later = baseline.due_deliveries(now + timedelta(minutes=2), 100)
    assert {(d.subscriber.chat_id, d.statement.key) for d in later} == {(1, "k3"), (-100, "k3")}


def test_deactivate_closes_pending_rows(baseline: Store, now: datetime) -> None:
    record_poll(baseline, FEED, feed(1, 2, 3), now)
    assert baseline.deactivate(1, "Forbidden: bot was blocked by the user", now)
    assert not baseline.deactivate(1, "again", now)
    assert ("1", "k3", CLOSED) in statuses(baseline)
    sub = baseline.subscriber(1)
    assert sub and not sub.active and sub.reason and "blocked" in sub.reason
    assert [d.subscriber.chat_id for d in baseline.due_deliveries(now, 100)] == [-100]


def test_resubscribe_is_idempotent(store: Store, now: datetime) -> None:
    assert store.subscribe(5, "private", now)
    assert not store.subscribe(5, "private", now)
    store.deactivate(5, "/stop", now)
    assert store.subscribe(5, "private", now)
    assert store.active_subscriber_count() == 1


def test_migrated_chat_keeps_its_pending_rows(baseline: Store, now: datetime) -> None:
    record_poll(baseline, FEED, feed(1, 2, 3), now)
    baseline.migrate_chat(-100, -1009, now)
    due = baseline.due_deliveries(now, 100)
    assert sorted(d.subscriber.chat_id for d in due) == [-1009, 1]
    assert baseline.subscriber(-100) is None


def test_in_flight_rows_are_released_after_a_crash(baseline: Store, now: datetime) -> None:
    record_poll(baseline, FEED, feed(1, 2, 3), now)
    due = baseline.due_deliveries(now, 100)
    baseline.mark_sending(due[0].id, now)
    assert (due[0].subscriber.chat_id == 1 and ("1", "k3", SENDING) in statuses(baseline)) or (
        ("-100", "k3", SENDING) in statuses(baseline)
    )
    assert baseline.release_in_flight() == 1
    assert len(baseline.due_deliveries(now, 100)) == 2


def test_a_console_start_leaves_the_telegram_chats_rows_in_flight(
    baseline: Store, now: datetime
) -> None:
    """A dry run beside the running bot must not re-queue what the bot is sending right now."""
    record_poll(baseline, FEED, feed(1, 2, 3), now)
    for delivery in baseline.due_deliveries(now, 100):
        baseline.mark_sending(delivery.id, now)
    assert baseline.release_in_flight(["console"]) == 0
    assert baseline.due_deliveries(now, 100) == []
    assert baseline.release_in_flight() == 2


def test_failed_rows_do_not_block_the_chat(baseline: Store, now: datetime) -> None:
    record_poll(baseline, FEED, feed(1, 2, 3, 4), now)
    for d in baseline.due_deliveries(now, 100):
        baseline.mark_sending(d.id, now)
        baseline.mark_failed(d.id, "Bad Request: can't parse entities")
    assert {d.statement.key for d in baseline.due_deliveries(now, 100)} == {"k4"}
    assert baseline.status().failed == 2
    assert ("1", "k3", FAILED) in statuses(baseline)


def test_console_chat_is_drained_apart(baseline: Store, now: datetime) -> None:
    baseline.subscribe("console", "console", now)
    record_poll(baseline, FEED, feed(1, 2, 3), now)
    assert {d.subscriber.chat_id for d in baseline.due_deliveries(now, 100)} == {1, -100}
    assert [d.subscriber.chat_id for d in baseline.due_deliveries(now, 100, kinds=["console"])] == [
        "console"
    ]


def test_status_counts(baseline: Store, now: datetime) -> None:
    record_poll(baseline, FEED, feed(1, 2, 3), now)
    status = baseline.status()
    assert (status.statements, status.active_subscribers, status.pending) == (3, 2, 2)
    assert [f.name for f in status.feeds] == ["statements"]


def test_backup_is_a_consistent_copy(baseline: Store, tmp_path: Path, now: datetime) -> None:
    record_poll(baseline, FEED, feed(1, 2, 3), now)
    target = tmp_path / "backup" / "copy.sqlite3"
    target.parent.mkdir()  # backup refuses a folder that does not exist (a mistyped path)
    baseline.backup(target)
    copy = Store.open(target)
    assert copy.statement_count() == 3
    assert copy.active_subscriber_count() == 2
    copy.close()


def test_restart_keeps_everything(tmp_path: Path, now: datetime) -> None:
    path = tmp_path / "bot.sqlite3"
    first = Store.open(path)
    first.subscribe(1, "private", now)
    record_poll(first, FEED, feed(1, 2), now)
    record_poll(first, FEED, feed(1, 2, 3), now)
    first.close()
    again = Store.open(path)
    report = record_poll(again, FEED, feed(1, 2, 3), now)
    assert (report.pushed, report.deliveries) == (0, 0)
    assert [d.statement.key for d in again.due_deliveries(now, 10)] == ["k3"]
    again.close()


def test_sent_row_records_the_message_id(baseline: Store, now: datetime) -> None:
    record_poll(baseline, FEED, feed(1, 2, 3), now)
    d = baseline.due_deliveries(now, 1)[0]
    baseline.mark_sending(d.id, now)
    baseline.mark_sent(d.id, 4242, now)
    row = baseline.db.execute("SELECT status, message_id, attempts FROM deliveries WHERE id = ?",
                              [d.id]).fetchone()  # fmt: skip
    assert tuple(row) == (SENT, 4242, 1)


def test_a_row_closed_by_stop_during_its_send_stays_closed(baseline: Store, now: datetime) -> None:
    """/stop while a message is in flight: a retry or failure must not revive the row."""
    record_poll(baseline, FEED, feed(1, 2, 3), now)
    d = next(d for d in baseline.due_deliveries(now, 100) if d.subscriber.chat_id == 1)
    baseline.mark_sending(d.id, now)
    baseline.deactivate(1, "/stop", now)
    baseline.mark_retry(d.id, "timed out", now)
    baseline.mark_failed(d.id, "timed out")
    assert ("1", "k3", CLOSED) in statuses(baseline)
    baseline.subscribe(1, "private", now + timedelta(days=30))
    assert [d.subscriber.chat_id for d in baseline.due_deliveries(now, 100)] == [-100]


def test_an_empty_first_document_is_no_baseline(store: Store, now: datetime) -> None:
    """A CMS glitch serving an empty feed first must not turn the real first poll into news."""
    store.subscribe(1, "private", now)
    record_poll(store, FEED, [], now)
    state = store.feed_state("statements")
    assert state and not state.baseline_done
    report = record_poll(store, FEED, feed(1, 2, 3), now)
    assert (report.pushed, report.silent) == (0, 3)


def test_prune_deletes_only_old_finished_rows(baseline: Store, now: datetime) -> None:
    record_poll(baseline, FEED, feed(1, 2, 3, 4), now)
    due = baseline.due_deliveries(now, 100)
    sent = next(d for d in due if d.subscriber.chat_id == 1)
    baseline.mark_sending(sent.id, now)
    baseline.mark_sent(sent.id, 1, now)
    assert baseline.prune_deliveries(now) == 0  # not older than the cut-off yet
    assert baseline.prune_deliveries(now + timedelta(days=31)) == 1
    remaining = statuses(baseline)
    assert ("1", "k3", SENT) not in remaining
    assert len(remaining) == 3 and {s for _, _, s in remaining} == {PENDING}
    assert baseline.statement_count() == 4


# ---- AsyncStore: the event loop's door ----------------------------------------------------


@pytest.fixture
def door(tmp_path: Path) -> Iterator[AsyncStore]:
    """A short busy timeout, so that waiting out a held lock takes a fraction of a second."""
    db = AsyncStore.open(tmp_path / "state" / "bot.sqlite3", write_timeout=0.3)
    yield db
    db.close()


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another connection (as another process would) holding the write lock, a write pending."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO feeds (name, url) VALUES ('other', 'https://other.example')")
    return other


async def test_a_read_answers_while_another_process_holds_the_write_lock(
    door: AsyncStore, now: datetime
) -> None:
    door.writer.subscribe(1, "private", now)
    assert door.path is not None
    other = hold_write_lock(door.path)
    try:
        started = time.perf_counter()
        status = await door.read(lambda s: s.status())
        assert time.perf_counter() - started < 0.2
        assert status.active_subscribers == 1 and status.feeds == []  # committed data only
    finally:
        other.close()


async def test_a_write_waiting_for_a_lock_does_not_block_the_loop(door: AsyncStore) -> None:
    assert door.path is not None
    other = hold_write_lock(door.path)
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            gaps.append(time.perf_counter() - last)
            last = time.perf_counter()

    ticking = asyncio.create_task(ticker())
    try:
        with pytest.raises(StoreUnavailable, match=r"^database is locked$"):
            await door.write(lambda s: s.ensure_feed(FEED))
    finally:
        ticking.cancel()
        other.close()
    assert len(gaps) >= 10 and max(gaps) < 0.1, max(gaps)  # the loop went on meanwhile
    await door.write(lambda s: s.ensure_feed(FEED))  # and the lock's end is the fault's end
    assert await door.read(lambda s: s.feed_state(FEED.name)) is not None


async def test_a_write_failing_mid_transaction_does_not_wedge_the_writer(door: AsyncStore) -> None:
    """SQLite leaves a transaction open when a statement in it hits a lock; the door closes it,
    or every later write would fail with 'cannot start a transaction within a transaction'."""
    assert door.path is not None
    other = hold_write_lock(door.path)

    def half_done(s: Store) -> None:
        s.db.execute("BEGIN")
        s.db.execute("UPDATE feeds SET url = 'x'")

    with pytest.raises(StoreUnavailable):
        await door.write(half_done)
    other.close()
    await door.write(lambda s: s.ensure_feed(FEED))
    assert not door.writer.db.conn.in_transaction


async def test_a_full_disk_is_one_line_and_writes_work_once_space_returns(
    door: AsyncStore, now: datetime
) -> None:
    pages = await door.write(lambda s: s.db.execute("PRAGMA page_count").fetchone()[0])
    await door.write(lambda s: s.db.execute(f"PRAGMA max_page_count = {pages}"))  # "disk full"

    def subscribe_many(s: Store) -> None:
        with s.db.atomic():
            for chat in range(2000):
                s.subscribe(chat, "private", now)

    with pytest.raises(StoreUnavailable, match=r"^disk is full$"):
        await door.write(subscribe_many)
    assert await door.read(lambda s: s.active_subscriber_count()) == 0  # all or nothing
    await door.write(lambda s: s.db.execute("PRAGMA max_page_count = 1073741823"))  # freed
    await door.write(subscribe_many)
    assert await door.read(lambda s: s.active_subscriber_count()) == 2000


async def test_writes_run_one_at_a_time_on_one_thread_off_the_loop(door: AsyncStore) -> None:
    threads: set[int] = set()
    inside = 0
    most = 0

    def write(s: Store) -> None:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        threads.add(threading.get_ident())
        time.sleep(0.005)
        inside -= 1

    await asyncio.gather(*(door.write(write) for _ in range(10)))
    assert most == 1 and len(threads) == 1 and threading.get_ident() not in threads


def test_bugs_are_not_taken_for_an_unavailable_database(door: AsyncStore) -> None:
    async def duplicate() -> None:
        await door.write(lambda s: s.db.execute("INSERT INTO feeds (name, url) VALUES ('a', 'u')"))
        await door.write(lambda s: s.db.execute("INSERT INTO feeds (name, url) VALUES ('a', 'u')"))

    with pytest.raises(sqlite3.IntegrityError):
        asyncio.run(duplicate())


# ---- chat settings (issue 11) -----------------------------------------------------------------

OTHER = FeedConfig(name="informs", url="https://example.org/informs")


def test_settings_default_for_a_chat_the_bot_does_not_know(store: Store) -> None:
    assert store.chat_settings(42) == ChatSettings()


def test_a_new_statement_reaches_only_chats_that_get_its_section(
    baseline: Store, now: datetime
) -> None:
    record_poll(baseline, OTHER, [st(50)], now)  # the second feed's baseline
    baseline.save_settings(1, ChatSettings(muted=frozenset({"informs"})), now, kind="private")
    record_poll(baseline, OTHER, [st(51), st(50)], now)
    record_poll(baseline, FEED, feed(1, 2, 3), now)
    assert statuses(baseline) == [
        ("-100", "k3", PENDING),
        ("-100", "k51", PENDING),
        ("1", "k3", PENDING),
    ]


def test_a_statement_queued_before_a_change_is_still_delivered(
    baseline: Store, now: datetime
) -> None:
    record_poll(baseline, FEED, feed(1, 2, 3), now)
    muted = ChatSettings(muted=frozenset({"statements"}))
    baseline.save_settings(1, muted, now, kind="private")
    record_poll(baseline, FEED, feed(1, 2, 3, 4), now)
    assert [(c, k) for c, k, _ in statuses(baseline) if c == "1"] == [("1", "k3")]


def test_settings_survive_a_restart_and_a_move_to_a_supergroup(
    tmp_path: Path, now: datetime
) -> None:
    path = tmp_path / "bot.sqlite3"
    store = Store.open(path)
    store.subscribe(-5, "group", now)
    chosen = ChatSettings(muted=frozenset({"informs"}), silent=True, language="ru")
    store.save_settings(-5, chosen, now, kind="group")
    store.close()
    store = Store.open(path)
    assert store.chat_settings(-5) == chosen
    store.migrate_chat(-5, -1005, now)
    assert store.chat_settings(-1005) == chosen
    record_poll(store, FEED, feed(1), now)
    record_poll(store, FEED, feed(1, 2), now)
    [due] = store.due_deliveries(now, 10)
    assert (due.subscriber.chat_id, due.subscriber.silent, due.subscriber.language) == (
        -1005,
        True,
        "ru",
    )
    store.close()


def test_settings_of_a_chat_not_subscribed_wait_for_its_start(store: Store, now: datetime) -> None:
    store.save_settings(7, ChatSettings(language="ru"), now, kind="private")
    assert store.active_subscriber_count() == 0
    record_poll(store, FEED, feed(1), now)
    record_poll(store, FEED, feed(1, 2), now)
    assert statuses(store) == []  # not subscribed: nothing queued
    assert store.subscribe(7, "private", now, language="en")  # /start: newly subscribed
    assert store.chat_settings(7).language == "ru"  # the choice stays, not the user's default


def test_subscribe_sets_the_first_language_only(store: Store, now: datetime) -> None:
    store.subscribe(8, "private", now, language="ru")
    store.subscribe(8, "private", now, language="en")
    assert store.chat_settings(8).language == "ru"
    store.subscribe(9, "group", now)
    assert store.chat_settings(9).language is None  # the bot's default, bot.language


# ---- forum topics: each subscribes and chooses apart (issue 11) ------------------------------

FORUM = -1007


def pending_topics(store: Store) -> list[tuple[str, int | None]]:
    """(chat, topic) of every pending outbox row."""
    return sorted(
        (r[0], r[1])
        for r in store.db.execute(
            "SELECT c.chat_id, c.thread_id FROM deliveries d JOIN subscribers c "
            "ON c.id = d.subscriber_id WHERE d.status = 'pending'"
        ).fetchall()
    )


def test_each_topic_of_a_forum_is_its_own_subscription(store: Store, now: datetime) -> None:
    assert store.subscribe(FORUM, "supergroup", now, thread_id=77)
    assert store.subscribe(FORUM, "supergroup", now, thread_id=78)  # a second, not a move
    assert not store.subscribe(FORUM, "supergroup", now, thread_id=77)
    assert store.active_subscriber_count() == 2
    store.subscribe(5, "private", now)
    record_poll(store, FEED, feed(1), now)
    record_poll(store, FEED, feed(1, 2), now)
    assert pending_topics(store) == [(str(FORUM), 77), (str(FORUM), 78), ("5", None)]
    # A batch takes one row per chat: the forum's other topic comes in the next one.
    due = store.due_deliveries(now, 10)
    assert sorted((d.subscriber.chat_id, d.subscriber.thread_id) for d in due) == [
        (FORUM, 77),
        (5, None),
    ]
    for delivery in due:
        store.mark_sending(delivery.id, now)
    [next_one] = store.due_deliveries(now, 10)
    assert (next_one.subscriber.chat_id, next_one.subscriber.thread_id) == (FORUM, 78)

    assert store.deactivate(FORUM, "/stop", now, thread_id=77)  # /stop in topic 77
    assert not store.deactivate(FORUM, "/stop", now, thread_id=79)  # never subscribed
    assert pending_topics(store) == [(str(FORUM), 78)]  # 77's row in flight was closed
    assert store.subscriber(FORUM, 78).active and not store.subscriber(FORUM, 77).active


def test_topics_keep_their_own_settings_and_a_new_topic_starts_from_the_chats(
    store: Store, now: datetime
) -> None:
    chosen = ChatSettings(muted=frozenset({"informs"}), silent=True, language="ru")
    store.save_settings(FORUM, chosen, now, kind="supergroup")  # the General topic
    assert store.chat_settings(FORUM, 77) == chosen  # topic 77 has none yet: the chat's
    store.subscribe(FORUM, "supergroup", now, thread_id=77)
    assert store.chat_settings(FORUM, 77) == chosen  # its row starts with them
    mine = ChatSettings(language="en")
    store.save_settings(FORUM, mine, now, kind="supergroup", thread_id=78)
    assert store.chat_settings(FORUM, 78) == ChatSettings(language="en")
    assert store.chat_settings(FORUM) == chosen  # the others are untouched
    assert store.chat_settings(FORUM, 77) == chosen
    store.save_settings(FORUM, ChatSettings(), now, kind="supergroup", thread_id=77)
    assert store.chat_settings(FORUM, 77) == ChatSettings()
    assert store.chat_settings(FORUM) == chosen

    store.subscribe(FORUM, "supergroup", now, thread_id=78)
    record_poll(store, FEED, feed(1), now)
    record_poll(store, FEED, feed(1, 2), now)
    # The General topic chose settings but never subscribed: nothing queued there.
    assert pending_topics(store) == [(str(FORUM), 77), (str(FORUM), 78)]
    topics = {t: store.subscriber(FORUM, t) for t in (77, 78)}
    assert (topics[77].silent, topics[77].language) == (False, None)
    assert (topics[78].silent, topics[78].language) == (False, "en")


def test_a_chat_that_is_gone_stops_every_topic_a_topic_that_is_gone_only_itself(
    store: Store, now: datetime
) -> None:
    for topic in (None, 77, 78):
        store.subscribe(FORUM, "supergroup", now, thread_id=topic)
    record_poll(store, FEED, feed(1), now)
    record_poll(store, FEED, feed(1, 2), now)
    assert store.deactivate(FORUM, "topic deleted", now, thread_id=78)
    assert [c for c, _, s in statuses(store) if s == PENDING] == [str(FORUM)] * 2
    assert store.deactivate_chat(FORUM, "bot was kicked", now) == 2
    assert store.active_subscriber_count() == 0
    assert {s for _, _, s in statuses(store)} == {"closed"}
    assert store.subscriber(FORUM, 78).reason == "topic deleted"  # the first reason stays


def test_a_forum_moving_to_a_new_id_takes_every_topic_and_its_settings(
    store: Store, now: datetime
) -> None:
    store.subscribe(-5, "group", now, thread_id=3)
    store.save_settings(-5, ChatSettings(silent=True), now, kind="group", thread_id=3)
    store.subscribe(-5, "group", now)
    store.subscribe(-1005, "supergroup", now)  # the supergroup already subscribed itself
    store.migrate_chat(-5, -1005, now)
    assert store.chat_settings(-1005, 3) == ChatSettings(silent=True)
    assert store.subscriber(-1005, 3).active and store.subscriber(-5, 3) is None
    assert store.subscriber(-5).reason == "migrated to -1005"  # the old General row retires
    assert store.active_chat_ids("supergroup") == [-1005]  # once, whatever its topics


def test_two_rows_for_one_topic_are_refused(store: Store, now: datetime) -> None:
    store.subscribe(FORUM, "supergroup", now)
    for topic in (None, 0):
        with pytest.raises(sqlite3.IntegrityError):
            store.db.execute(
                "INSERT INTO subscribers (chat_id, thread_id, kind, subscribed_at, changed_at) "
                "VALUES (?, ?, 'supergroup', 'x', 'x')",
                [str(FORUM), topic],
            )


def test_the_pinned_post_is_the_chats_whichever_topic_asked(store: Store, now: datetime) -> None:
    store.subscribe(FORUM, "supergroup", now, thread_id=77, language="ru")
    store.subscribe(FORUM, "supergroup", now, thread_id=78)
    store.set_pinned_wanted(FORUM, True, now, kind="supergroup")
    assert store.pinned_wanted(FORUM)
    assert store.pinned_groups() == [(FORUM, "supergroup", "ru")]  # once, its first topic's
    store.subscribe(FORUM, "supergroup", now)  # General: its row starts from topic 77's
    assert store.pinned_groups() == [(FORUM, "supergroup", "ru")]  # the chat's own row now
    store.save_settings(FORUM, ChatSettings(language="en"), now, kind="supergroup")
    assert store.pinned_groups() == [(FORUM, "supergroup", "en")]
    store.set_pinned_wanted(FORUM, False, now, kind="supergroup")
    assert not store.pinned_wanted(FORUM) and store.pinned_groups() == []
