"""Corrections (issue 12): a pushed statement whose title or lead changes within the window is
edited in place in every chat its push reached, through the outbox, with the pushes' guarantees.

The poll's decision (bot.diff through record_poll), a real SQLite file, the delivery engine and
the real TelegramSender (python-telegram-bot's Bot from build_application) against the fake Bot
API on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import html
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from telegram.ext import ExtBot

from bot.commands import status_reply
from bot.config import ConfigError, FeedConfig
from bot.console import EDIT_HEADER, ConsoleSender
from bot.delivery import ChatAddress, DeliveryEngine, SendOutcome
from bot.model import Delivery, PollReport, Statement
from bot.poller import record_poll
from bot.store import AsyncStore, Store
from bot.telegram_sender import TelegramSender
from tests.conftest import FAKE_TOKEN, build_config
from tests.fakes.bot_api import FakeBotAPI

TOKEN = FAKE_TOKEN  # the shared `api` fixture accepts it
FEED = FeedConfig(name="statements", url="https://example.org/rss", announce_first=1)
WINDOW = timedelta(hours=48)
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CHATS = (101, 102, 103)


def render(delivery: Delivery) -> str:
    st = delivery.statement
    return f"<b>{html.escape(st.title)}</b>\n{html.escape(st.lead)}"


def statement(title: str, lead: str = "The lead.") -> Statement:
    return Statement("k1", title, "https://e.org/1", START - timedelta(hours=1), lead)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


async def no_admins(text: str) -> None:
    pass


@pytest.fixture
def store(db: AsyncStore) -> Store:
    """For setting up and checking between drains (nothing else writes then)."""
    return db.writer


@pytest.fixture
def clock() -> Clock:
    return Clock()


def engine_for(db: AsyncStore, sender: object, clock: Clock) -> DeliveryEngine:
    return DeliveryEngine(db, sender, render, no_admins, clock, retry_base=1)  # type: ignore[arg-type]


@pytest.fixture
def engine(db: AsyncStore, bot: ExtBot, clock: Clock) -> DeliveryEngine:
    return engine_for(db, TelegramSender(bot), clock)


def poll(
    store: Store, clock: Clock, st: Statement, window: timedelta | None = WINDOW
) -> PollReport:
    return record_poll(store, FEED, [st], clock(), corrections_window=window)


def subscribe(store: Store, clock: Clock) -> None:
    for chat in CHATS:
        store.subscribe(chat, "private", clock())


def rows(store: Store, kind: str) -> list[dict]:
    return list(
        store.db.query("SELECT * FROM deliveries WHERE kind = ? ORDER BY subscriber_id", [kind])
    )


def edits_to(api: FakeBotAPI, chat: int) -> list[dict]:
    return [p for p in api.edits if int(p["chat_id"]) == chat]


async def published(store: Store, clock: Clock, engine: DeliveryEngine) -> dict[int, int]:
    """The statement pushed to every chat; chat -> its message id."""
    subscribe(store, clock)
    poll(store, clock, statement("Old title"))
    assert (await engine.drain()).sent == len(CHATS)
    pushes = rows(store, "push")
    chats = {r["subscriber_id"]: r for r in pushes}
    return {
        int(store.db.execute("SELECT chat_id FROM subscribers WHERE id = ?", [sub]).fetchone()[0]):
        row["message_id"] for sub, row in chats.items()
    }  # fmt: skip


async def test_a_correction_edits_every_sent_copy(
    store: Store, engine: DeliveryEngine, api: FakeBotAPI, clock: Clock
) -> None:
    messages = await published(store, clock, engine)
    clock.now += timedelta(hours=47)  # within the window
    report = poll(store, clock, statement("New title", "A corrected lead."))
    assert report.corrections == (("New title", 3),)
    drained = await engine.drain()
    assert (drained.edited, drained.sent) == (3, 0)
    for chat, message_id in messages.items():
        [edit] = edits_to(api, chat)
        assert int(edit["message_id"]) == message_id
        assert edit["text"] == "<b>New title</b>\nA corrected lead."
        assert api.bot_message(chat, message_id)["text"] == "<b>New title</b>\nA corrected lead."
    assert len(api.sent_messages()) == 3  # edited in place: no new message
    assert {r["status"] for r in rows(store, "edit")} == {"sent"}
    assert store.status().corrections_sent == 3
    assert (await engine.drain()).edited == 0  # nothing twice


async def test_a_deleted_message_closes_its_row_and_a_blocked_chat_is_unsubscribed(
    store: Store, engine: DeliveryEngine, api: FakeBotAPI, clock: Clock
) -> None:
    messages = await published(store, clock, engine)
    api.admin_delete(101, messages[101])
    api.fail_chat(102, "blocked", methods=["editMessageText"])
    poll(store, clock, statement("New title"))
    assert (await engine.drain()).edited == 1
    by_chat = {r["subscriber_id"]: r for r in rows(store, "edit")}
    deleted, blocked, edited = (by_chat[store.subscriber(c).id] for c in CHATS)  # type: ignore[union-attr]
    assert deleted["status"] == "closed"
    assert "message to edit not found" in deleted["last_error"].lower()
    assert store.subscriber(101).active  # type: ignore[union-attr]  # only its message is gone
    assert blocked["status"] == "closed"
    assert not store.subscriber(102).active  # type: ignore[union-attr]
    assert edited["status"] == "sent"
    assert [e["text"] for e in edits_to(api, 103)] == ["<b>New title</b>\nThe lead."]


async def test_a_pending_push_carries_the_correction_and_gets_no_edit(
    store: Store, engine: DeliveryEngine, api: FakeBotAPI, clock: Clock
) -> None:
    subscribe(store, clock)
    poll(store, clock, statement("Old title"))
    report = poll(store, clock, statement("New title"))  # before any push went out
    assert report.corrections == ()
    assert rows(store, "edit") == []
    assert (await engine.drain()).sent == 3
    assert {m.text for m in api.sent_messages()} == {"<b>New title</b>\nThe lead."}
    assert api.calls_to("editMessageText") == []


def test_a_push_in_flight_gets_its_edit_once_it_has_a_message_id(
    store: Store, clock: Clock
) -> None:
    subscribe(store, clock)
    poll(store, clock, statement("Old title"))
    push = rows(store, "push")[0]
    store.mark_sending(push["id"], clock())  # sent with the old text, answer not yet recorded
    poll(store, clock, statement("New title"))
    [edit] = rows(store, "edit")
    assert edit["message_id"] is None
    due = store.due_deliveries(clock(), 10)
    assert all(d.kind == "push" for d in due)  # the edit waits for its message
    store.mark_sent(push["id"], 77, clock())
    [edit] = rows(store, "edit")
    assert edit["message_id"] == 77
    [due_edit] = [d for d in store.due_deliveries(clock(), 10) if d.kind == "edit"]
    assert (due_edit.message_id, due_edit.statement.title) == (77, "New title")


async def test_after_the_window_a_correction_is_stored_and_not_sent(
    store: Store, engine: DeliveryEngine, api: FakeBotAPI, clock: Clock
) -> None:
    await published(store, clock, engine)
    clock.now += WINDOW + timedelta(minutes=1)
    assert poll(store, clock, statement("New title")).corrections == ()
    assert rows(store, "edit") == []
    assert (await engine.drain()).edited == 0
    assert api.calls_to("editMessageText") == []
    assert store.latest(1)[0].title == "New title"


async def test_corrections_ignore_stores_the_change_only(
    tmp_path: Path, store: Store, engine: DeliveryEngine, api: FakeBotAPI, clock: Clock
) -> None:
    config = build_config(tmp_path, corrections="ignore")
    assert config.corrections_window is None
    assert build_config(tmp_path).corrections_window == timedelta(hours=48)
    assert build_config(tmp_path, corrections_window_hours=2).corrections_window == timedelta(
        hours=2
    )
    with pytest.raises(ConfigError, match=r"bot\.corrections: must be"):
        build_config(tmp_path, corrections="resend")
    await published(store, clock, engine)
    poll(store, clock, statement("New title"), config.corrections_window)
    assert rows(store, "edit") == []
    assert (await engine.drain()).edited == 0
    assert store.latest(1)[0].title == "New title"


async def test_a_changed_link_alone_is_no_correction(
    store: Store, engine: DeliveryEngine, clock: Clock
) -> None:
    await published(store, clock, engine)
    moved = Statement("k1", "Old title", "https://e.org/moved", START - timedelta(hours=1),
                      "The lead.")  # fmt: skip
    assert poll(store, clock, moved).corrections == ()
    assert rows(store, "edit") == []


async def test_a_second_correction_while_the_first_waits_makes_no_second_row(
    store: Store, engine: DeliveryEngine, api: FakeBotAPI, clock: Clock
) -> None:
    await published(store, clock, engine)
    poll(store, clock, statement("Second title"))
    poll(store, clock, statement("Third title"))
    assert len(rows(store, "edit")) == 3
    assert (await engine.drain()).edited == 3
    assert {e["text"] for e in api.edits} == {"<b>Third title</b>\nThe lead."}
    poll(store, clock, statement("Fourth title"))  # after the first edits went out: new rows
    assert (await engine.drain()).edited == 3
    assert len(rows(store, "edit")) == 6


class HangingAfterEdit:
    """Telegram applies each edit, then the process dies before the answer is recorded."""

    def __init__(self, real: TelegramSender) -> None:
        self.real = real
        self.edited = 0

    async def send(self, chat: ChatAddress, html: str) -> SendOutcome:
        return await self.real.send(chat, html)

    async def edit(self, chat: ChatAddress, message_id: int, html: str) -> SendOutcome:
        outcome = await self.real.edit(chat, message_id, html)
        self.edited += 1
        await asyncio.Event().wait()  # killed here
        return outcome

    async def reachable(self) -> bool:
        return True


async def test_a_crash_between_sending_and_sent_loses_no_edit(
    db: AsyncStore, store: Store, engine: DeliveryEngine, bot: ExtBot, api: FakeBotAPI,
    clock: Clock,
) -> None:  # fmt: skip
    messages = await published(store, clock, engine)
    poll(store, clock, statement("New title"))
    hanging = HangingAfterEdit(TelegramSender(bot))
    dying = engine_for(db, hanging, clock)
    drain = asyncio.create_task(dying.drain())
    while hanging.edited < 2:  # two chats edited, one claimed but not yet sent
        await asyncio.sleep(0.01)
    drain.cancel()  # nothing after this point reaches the database, as with kill -9
    with pytest.raises(asyncio.CancelledError):
        await drain
    assert {r["status"] for r in rows(store, "edit")} == {"sending"}

    assert store.release_in_flight() == 3  # the restart
    restarted = engine_for(db, TelegramSender(bot), clock)
    assert (await restarted.drain()).edited == 3  # "not modified" counts as done
    assert {r["status"] for r in rows(store, "edit")} == {"sent"}
    for chat, message_id in messages.items():
        assert api.bot_message(chat, message_id)["text"] == "<b>New title</b>\nThe lead."
        assert len(edits_to(api, chat)) == 1  # accepted once; a repeat is "not modified"
        calls = [p for p in api.calls_to("editMessageText") if int(p["chat_id"]) == chat]
        assert 1 <= len(calls) <= 2  # at most one duplicate edit per chat


async def test_the_console_prints_a_correction() -> None:
    out = io.StringIO()
    outcome = await ConsoleSender(out).edit(ChatAddress("console"), 5, "<b>New title</b>")
    assert outcome.message_id == 5
    assert out.getvalue().startswith(EDIT_HEADER)
    assert "New title" in out.getvalue()


def test_status_counts_corrections_sent_in_both_languages(tmp_path: Path, store: Store) -> None:
    config = build_config(tmp_path)
    status = store.status()
    assert status.corrections_sent == 0
    assert "Corrections sent: 0" in status_reply(status, config, START, language="en")
    assert "Отправлено исправлений: 0" in status_reply(status, config, START, language="ru")


@pytest.mark.slow
def test_the_bot_process_edits_a_corrected_push_in_every_chat(tmp_path: Path) -> None:
    """`statement-bot run` against the fake Bot API and a feed server: a statement pushed to two
    chats is corrected in the feed; both messages are edited in place, the admins told once."""
    from tests.fakes.feed_server import FeedServer
    from tests.test_telegram_bot import (
        ADMIN,
        BOT_NAME,
        RSS_TYPE,
        SAMPLES,
        BotProcess,
        _baseline_done,
        feed_with_extra_item,
        say,
        wait_until,
    )
    from tests.test_telegram_bot import TOKEN as BOT_TOKEN

    with FakeBotAPI(token=BOT_TOKEN, username=BOT_NAME) as api, FeedServer() as feeds:
        feeds.set("/feed.xml", (SAMPLES / "embassy-rss.xml").read_bytes(), content_type=RSS_TYPE)
        process = BotProcess(tmp_path, api, feeds.url("/feed.xml")).start()
        try:
            wait_until(lambda: _baseline_done(tmp_path), "the first poll")
            for chat in (1001, 1002):
                say(api, chat, "/start")
            feeds.set("/feed.xml", feed_with_extra_item(7015, "Original title"),
                      content_type=RSS_TYPE)  # fmt: skip
            pushed = {}
            for chat in (1001, 1002):
                messages = api.wait_for_messages(4, chat_id=chat)  # welcome and 3 pushes
                [push] = [m for m in messages if "Original title" in m.text]
                pushed[chat] = push.message_id
            feeds.set("/feed.xml", feed_with_extra_item(7015, "Corrected title"),
                      content_type=RSS_TYPE)  # fmt: skip
            api.wait_for_call("editMessageText", 2, timeout=20)
            for chat, message_id in pushed.items():
                assert "Corrected title" in api.bot_message(chat, message_id)["text"]
                assert len(api.sent_messages(chat)) == 4  # edited in place, nothing new
            wait_until(
                lambda: any("Corrected “Corrected title”: editing 2 sent messages." in m.text
                            for m in api.sent_messages(ADMIN)),
                "the admins' notice",
            )  # fmt: skip
            [status] = say(api, ADMIN, "/status")
            assert "Corrections sent: 2" in status.text
        finally:
            process.stop()
