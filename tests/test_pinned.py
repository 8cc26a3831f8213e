"""The daily pinned counters post (issue 12): python-telegram-bot's real stack against the fake
Bot API on 127.0.0.1, a real SQLite file, and a clock the test moves (no waiting for midnight).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from telegram.ext import ExtBot

from bot import commands
from bot.command_table import ChatRef, Request, answer
from bot.config import Config
from bot.model import ChatSettings
from bot.pinned import PinnedPosts
from bot.pinned_text import Action, PinnedPost, day_start, next_action, post_text, text_hash
from bot.service import Service, midnight_trigger
from bot.store import AsyncStore
from bot.telegram_bot import (
    build_application,
    parse_settings_data,
    settings_keyboard,
)
from bot.telegram_sender import TelegramSender
from tests.conftest import SAMPLES, build_config
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.feed_server import FeedServer
from tests.test_telegram_bot import (
    BOT_NAME,
    RSS_TYPE,
    BotProcess,
    _baseline_done,
    press,
    say,
    wait_until,
)

TOKEN = "123456:AAH-pinned-test-token-0123456789"
LONDON = ZoneInfo("Europe/London")
CHANNEL = -1001234
GROUP = -5005
ADMIN = 4242


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)  # type: ignore[misc]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)


@pytest.fixture
def api() -> Iterator[FakeBotAPI]:
    with FakeBotAPI(token=TOKEN) as fake:
        yield fake
        assert fake.unknown_calls == []


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    store = AsyncStore.open(tmp_path / "bot.sqlite3")
    yield store
    store.close()


class Setup:
    """Everything a PinnedPosts needs; `restart` builds a new one on the same database, as a
    restarted bot does."""

    def __init__(self, tmp_path: Path, api: FakeBotAPI, db: AsyncStore, bot: ExtBot) -> None:
        self.tmp_path, self.api, self.db, self.bot = tmp_path, api, db, bot
        self.clock = Clock(london(2026, 3, 28, 15, 0))
        self.told: list[str] = []
        self.config = self.make_config()
        self.posts = self.restart()

    def make_config(self, **keys: Any) -> Config:
        keys = {"channels": [CHANNEL], "pinned_counters": True, "admins": [ADMIN], **keys}
        return build_config(self.tmp_path, api_base_url=self.api.base_url, **keys)

    def restart(self, config: Config | None = None) -> PinnedPosts:
        self.config = config or self.config

        async def notify(text: str) -> None:
            self.told.append(text)

        self.posts = PinnedPosts(self.bot, self.db, self.config, notify, self.clock)
        return self.posts

    def text(self, language: str = "en") -> str:
        return post_text(self.config, self.clock(), language)


@pytest.fixture
async def setup(tmp_path: Path, api: FakeBotAPI, db: AsyncStore) -> AsyncIterator[Setup]:
    config = build_config(tmp_path, api_base_url=api.base_url)
    bot = build_application(config, TOKEN, max_rate=None).bot  # HTML defaults, as the bot's
    await bot.initialize()
    yield Setup(tmp_path, api, db, bot)
    await bot.shutdown()


# ---- the pure part -----------------------------------------------------------------------


def test_the_post_reads_as_of_midnight_so_it_stays_the_same_all_day(tmp_path: Path) -> None:
    config = build_config(tmp_path)
    morning, evening = london(2026, 10, 25, 0, 0), london(2026, 10, 25, 23, 59)
    assert post_text(config, morning, "en") == post_text(config, evening, "en")
    assert post_text(config, morning, "en") == commands.counters_reply(
        config, day_start(evening, LONDON), language="en"
    )
    text = post_text(config, evening, "en")
    # Midnight of the 25-hour day is still summer time: Moscow is two hours ahead, not three.
    assert text.startswith("<b>25 October 2026</b>\nMoscow: 02:00\nLondon: 00:00")
    assert f"{(date(2026, 10, 25) - date(2018, 3, 4)).days} days have passed" in text
    assert post_text(config, evening, "ru").startswith("<b>25 октября 2026</b>")
    assert post_text(config, evening + timedelta(minutes=1), "en") != text


def test_what_a_post_needs() -> None:
    day = date(2026, 3, 29)
    assert next_action(None, "t", day, midnight=False) is Action.POST
    fresh = PinnedPost(1, 10, text_hash("t"), date(2026, 3, 28))
    assert next_action(fresh, "t", day, midnight=False) is Action.NONE
    assert next_action(fresh, "new", day, midnight=False) is Action.EDIT
    lost = PinnedPost(1, 10, text_hash("t"), date(2026, 3, 28), lost=True)
    assert next_action(lost, "new", day, midnight=False) is Action.NONE  # waits for midnight
    assert next_action(lost, "new", day, midnight=True) is Action.POST
    reposted_today = PinnedPost(1, 11, text_hash("t"), day, lost=True)
    assert next_action(reposted_today, "new", day, midnight=True) is Action.NONE


def test_midnight_is_london_wall_clock_midnight_across_both_daylight_saving_changes() -> None:
    trigger = midnight_trigger(LONDON)

    def fires(after: datetime, count: int) -> list[datetime]:
        times, previous = [], None
        now = after
        for _ in range(count):
            fire = trigger.get_next_fire_time(previous, now)
            assert fire is not None
            times.append(fire.astimezone(UTC))
            previous, now = fire, fire + timedelta(seconds=1)
        return times

    # BST starts at 01:00 GMT on Sunday 29 March 2026: midnight moves from 00:00 to 23:00 UTC.
    assert fires(datetime(2026, 3, 27, 12, tzinfo=UTC), 4) == [
        datetime(2026, 3, 28, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 23, tzinfo=UTC),
        datetime(2026, 3, 30, 23, tzinfo=UTC),
    ]
    # BST ends at 02:00 BST on Sunday 25 October 2026: back from 23:00 to 00:00 UTC.
    assert fires(datetime(2026, 10, 23, 12, tzinfo=UTC), 4) == [
        datetime(2026, 10, 23, 23, tzinfo=UTC),
        datetime(2026, 10, 24, 23, tzinfo=UTC),
        datetime(2026, 10, 26, 0, tzinfo=UTC),
        datetime(2026, 10, 27, 0, tzinfo=UTC),
    ]


def test_the_settings_keyboard_offers_the_post_only_when_asked(tmp_path: Path) -> None:
    config = build_config(tmp_path, pinned_counters=True)

    def labels(**kw: Any) -> list[tuple[str, str]]:
        keyboard = settings_keyboard(ChatSettings(), config, "en", GROUP, **kw)
        return [(b.text, str(b.callback_data)) for row in keyboard.inline_keyboard for b in row]

    assert not any("Pinned" in text for text, _ in labels())
    [(text, data)] = [(t, d) for t, d in labels(pinned=False) if "Pinned" in t]
    assert text == "📌 Pinned counters post: off"
    press = parse_settings_data(data)
    assert press is not None and (press.chat_id, press.op) == (GROUP, "p1")
    [(text, data)] = [(t, d) for t, d in labels(pinned=True) if "Pinned" in t]
    assert text == "📌 Pinned counters post: on" and data.endswith(":p0:")


async def test_the_service_schedules_the_midnight_job_in_the_bots_time_zone(
    tmp_path: Path, db: AsyncStore
) -> None:
    config = build_config(tmp_path, pinned_counters=True)
    ran: list[str] = []

    async def at_midnight() -> None:
        ran.append("midnight")

    async def notify(text: str) -> None:
        pass

    async with httpx.AsyncClient() as client:
        sender = TelegramSender(ExtBot(TOKEN))  # never called: nothing is due
        service = Service(config, db, client, sender, notify)
        scheduler = service.start_scheduler(poll_now=False, at_midnight=at_midnight)
        try:
            job = scheduler.get_job("midnight")
            assert job is not None and job.func.__wrapped__ is at_midnight
            fire = job.trigger.get_next_fire_time(None, datetime(2026, 3, 29, 12, tzinfo=UTC))
            assert fire == london(2026, 3, 30, 0, 0)
        finally:
            await service.stop()
        without = Service(config, db, client, sender, notify)
        try:
            assert without.start_scheduler(poll_now=False).get_job("midnight") is None
        finally:
            await without.stop()


# ---- against the fake Bot API ------------------------------------------------------------


async def test_one_post_pinned_silently_then_edited_in_place_at_each_midnight(
    setup: Setup, api: FakeBotAPI
) -> None:
    await setup.posts.refresh_all()
    [post] = api.sent_messages(CHANNEL)
    assert post.text == setup.text() and post.text.startswith("<b>28 March 2026</b>")
    assert post.params.get("disable_notification") is True
    [pin] = api.calls_to("pinChatMessage")
    assert pin["message_id"] == post.message_id and pin["disable_notification"] is True
    assert api.pinned(CHANNEL) == [post.message_id]

    await setup.posts.refresh_all()  # later that day: nothing is stale, nothing is sent
    assert len(api.sent_messages(CHANNEL)) == 1 and api.edits == []

    # The job runs just after midnight; the last Sunday of March is 23 hours long.
    for day, moment in ((29, london(2026, 3, 29, 0, 0, 1)), (30, london(2026, 3, 30, 0, 0, 1))):
        setup.clock.now = moment
        await setup.posts.midnight()
        now = api.bot_message(CHANNEL, post.message_id)["text"]
        assert now.startswith(f"<b>{day} March 2026</b>")
        days = (date(2026, 3, day) - date(2018, 3, 4)).days
        assert f"{days} days have passed since the Salisbury incident" in now
    assert len(api.sent_messages(CHANNEL)) == 1  # edited, never a new message
    assert [e["message_id"] for e in api.edits] == [post.message_id] * 2
    assert len(api.calls_to("getChat")) == 2  # each midnight checks it is still pinned


async def test_a_restart_or_a_counters_change_edits_a_stale_post_at_once(
    setup: Setup, api: FakeBotAPI
) -> None:
    await setup.posts.refresh_all()
    [post] = api.sent_messages(CHANNEL)
    await setup.restart().refresh_all()  # same config: nothing to do
    assert api.edits == [] and api.calls_to("getChat") == []

    changed = setup.make_config(counters=[{"since": "2018-03-04", "text": "Day {days}"}])
    await setup.restart(changed).refresh_all()
    assert len(api.edits) == 1 and api.edits[0]["message_id"] == post.message_id
    assert api.bot_message(CHANNEL, post.message_id)["text"].endswith(
        f"Day {(date(2026, 3, 28) - date(2018, 3, 4)).days}"
    )
    assert len(api.sent_messages(CHANNEL)) == 1

    # The channel's language is chosen with /settings: the post follows it.
    await setup.db.write(lambda s: s.save_settings(
        CHANNEL, ChatSettings(language="ru"), setup.clock(), kind="channel"))  # fmt: skip
    await setup.posts.refresh_all()
    assert api.bot_message(CHANNEL, post.message_id)["text"].startswith("<b>28 марта 2026</b>")


async def test_a_deleted_post_is_replaced_at_the_next_midnight_at_most_once_a_day(
    setup: Setup, api: FakeBotAPI
) -> None:
    await setup.posts.refresh_all()
    [first] = api.sent_messages(CHANNEL)
    api.admin_delete(CHANNEL, first.message_id)
    setup.clock.now = london(2026, 3, 28, 18, 0)
    changed = setup.make_config(counters=[{"since": "2018-03-04", "text": "Day {days}"}])
    await setup.restart(changed).refresh_all()  # the edit finds it gone: wait for midnight
    assert len(api.sent_messages(CHANNEL)) == 1

    setup.clock.now = london(2026, 3, 29, 0, 0, 2)
    await setup.posts.midnight()
    second = api.sent_messages(CHANNEL)[-1]
    assert second.message_id != first.message_id and second.text == setup.text()
    assert api.pinned(CHANNEL) == [second.message_id]

    api.admin_delete(CHANNEL, second.message_id)
    setup.clock.now = london(2026, 3, 29, 0, 5)
    await setup.posts.midnight()  # the job run again the same day (a misfire, a restart)
    await setup.posts.refresh_all()
    assert len(api.sent_messages(CHANNEL)) == 2  # not a third one today

    setup.clock.now = london(2026, 3, 30, 0, 0, 2)
    await setup.posts.midnight()
    assert len(api.sent_messages(CHANNEL)) == 3


async def test_an_unpinned_post_is_posted_again_at_midnight(setup: Setup, api: FakeBotAPI) -> None:
    await setup.posts.refresh_all()
    [first] = api.sent_messages(CHANNEL)
    api.admin_unpin(CHANNEL, first.message_id)
    setup.clock.now = london(2026, 10, 25, 0, 0, 1)  # the 25-hour day of October
    await setup.posts.midnight()
    second = api.sent_messages(CHANNEL)[-1]
    assert second.message_id != first.message_id and api.pinned(CHANNEL) == [second.message_id]
    assert second.text.startswith("<b>25 October 2026</b>")
    assert api.edits == []  # the old one is left as the admins left it


async def test_a_post_another_pin_covered_is_replaced_and_unpinned(
    setup: Setup, api: FakeBotAPI
) -> None:
    """getChat names only the newest pin: the post is still pinned below the admins' one."""
    await setup.posts.refresh_all()
    [first] = api.sent_messages(CHANNEL)
    announcement = await setup.bot.send_message(CHANNEL, "An announcement")
    await setup.bot.pin_chat_message(CHANNEL, announcement.message_id)  # as an admin would
    assert api.pinned(CHANNEL) == [first.message_id, announcement.message_id]
    setup.clock.now = london(2026, 3, 29, 0, 0, 1)
    await setup.posts.midnight()
    second = api.sent_messages(CHANNEL)[-1]
    assert second.message_id not in (first.message_id, announcement.message_id)
    assert api.pinned(CHANNEL) == [announcement.message_id, second.message_id]


async def test_without_the_right_to_pin_the_admins_are_told_once_and_the_post_kept_up_to_date(
    setup: Setup, api: FakeBotAPI
) -> None:
    api.set_chat(GROUP, chat_type="group")
    api.deny_pin(GROUP)
    api.deny_pin(CHANNEL)
    await setup.db.write(lambda s: s.set_pinned_wanted(GROUP, True, setup.clock(), kind="group"))
    await setup.posts.refresh_all()
    [post, notice] = api.sent_messages(GROUP)
    assert post.text == setup.text() and "right to pin messages" in notice.text
    assert api.pinned(GROUP) == []
    assert len(setup.told) == 1 and str(CHANNEL) in setup.told[0]  # the channel's: bot admins

    setup.clock.now = london(2026, 3, 29, 0, 0, 1)
    await setup.restart().midnight()  # a restart, then midnight: the pin is tried again
    assert len(api.sent_messages(GROUP)) == 2 and len(setup.told) == 1  # no second notice
    assert api.bot_message(GROUP, post.message_id)["text"].startswith("<b>29 March 2026</b>")
    assert len(api.calls_to("pinChatMessage")) == 4

    api.deny_pin(GROUP, False)  # the admins gave the right: pinned at the next midnight
    setup.clock.now = london(2026, 3, 30, 0, 0, 1)
    await setup.posts.midnight()
    assert api.pinned(GROUP) == [post.message_id]
    assert len(api.sent_messages(GROUP)) == 2


async def test_a_group_that_turns_it_off_is_no_longer_kept(setup: Setup, api: FakeBotAPI) -> None:
    api.set_chat(GROUP, chat_type="group")
    now = setup.clock()
    await setup.db.write(lambda s: s.set_pinned_wanted(GROUP, True, now, kind="group"))
    await setup.posts.refresh_all()
    assert len(api.sent_messages(GROUP)) == 1
    await setup.db.write(lambda s: s.set_pinned_wanted(GROUP, False, now, kind="group"))
    setup.clock.now = london(2026, 3, 29, 0, 0, 1)
    await setup.posts.midnight()
    assert len(api.edits) == 1  # the channel's only
    assert await setup.db.read(lambda s: s.pinned_post(GROUP)) is None


async def test_settings_pinned_as_text_in_a_group_posts_at_once(
    setup: Setup, api: FakeBotAPI
) -> None:
    asked: list[str] = []

    async def pin_now() -> None:
        asked.append("now")
        await setup.posts.refresh(GROUP, "group", "en")

    def request(chat: ChatRef, *args: str, config: Config | None = None) -> Request:
        return Request(config or setup.config, setup.db, chat, setup.clock(), "en", args,
                       pin_now=pin_now)  # fmt: skip

    group = ChatRef(GROUP, "group", "Readers")
    api.set_chat(GROUP, chat_type="group")
    assert await answer("settings", request(group, "pinned", "maybe")) == (
        "Usage: /settings pinned on, or /settings pinned off."
    )
    assert await answer("settings", request(group, "pinned", "on")) == "Saved."
    assert asked == ["now"] and len(api.sent_messages(GROUP)) == 1
    assert await setup.db.read(lambda s: s.pinned_wanted(GROUP))
    assert await answer("settings", request(group, "pinned", "off")) == "Saved."
    assert asked == ["now"] and not await setup.db.read(lambda s: s.pinned_wanted(GROUP))

    unavailable = "The pinned counters post is for groups, when the bot offers it."
    private = ChatRef(77, "private")
    assert await answer("settings", request(private, "pinned", "on")) == unavailable
    off = setup.make_config(pinned_counters=False)
    assert await answer("settings", request(group, "pinned", "on", config=off)) == unavailable
    assert asked == ["now"]


# ---- the whole bot, as a process ---------------------------------------------------------


@pytest.mark.slow
def test_a_group_admin_turns_it_on_in_settings_and_the_channel_gets_it_at_start(
    tmp_path: Path, api: FakeBotAPI
) -> None:
    api.username = BOT_NAME
    api.set_chat(GROUP, chat_type="group", title="Readers")
    api.set_admins(GROUP, [501])
    with FeedServer() as feeds:
        feeds.set("/feed.xml", (SAMPLES / "embassy-rss.xml").read_bytes(), content_type=RSS_TYPE)
        bot = BotProcess(tmp_path, api, feeds.url("/feed.xml"), pinned_counters=True,
                         channels=[CHANNEL]).start(token=TOKEN)  # fmt: skip
        try:
            wait_until(lambda: _baseline_done(tmp_path), "the first poll")
            [post] = api.wait_for_messages(1, chat_id=CHANNEL)  # at start, unasked
            api.wait_for_call("pinChatMessage")
            assert api.pinned(CHANNEL) == [post.message_id]
            assert "days have passed since the Salisbury incident" in post.text

            [shown] = say(api, GROUP, f"/settings@{BOT_NAME}", user_id=501)
            assert press(api, GROUP, shown.message_id, "Pinned", user_id=600)["text"] == (
                "Only the group's administrators can change its settings."
            )
            assert press(api, GROUP, shown.message_id, "Pinned", user_id=501)["text"] == "Saved."
            api.wait_for_call("pinChatMessage", 2)
            [group_post] = [m for m in api.sent_messages(GROUP) if "Salisbury" in m.text]
            assert api.pinned(GROUP) == [group_post.message_id]
            assert group_post.params.get("disable_notification") is True
            wait_until(lambda: "📌 Pinned counters post: on" in str(
                api.buttons(GROUP, shown.message_id)), "the keyboard's edit")  # fmt: skip
            assert bot.stop() == 0
        finally:
            if bot.proc and bot.proc.poll() is None:
                bot.kill()
        assert TOKEN not in bot.log
        # A restart finds both posts up to date: no new message, no edit.
        sent, edits = len(api.sent_messages()), len(api.edits)
        bot = BotProcess(tmp_path, api, feeds.url("/feed.xml"), pinned_counters=True,
                         channels=[CHANNEL]).start(token=TOKEN)  # fmt: skip
        try:
            time.sleep(1.5)
            assert len(api.sent_messages()) == sent and len(api.edits) == edits
            assert bot.stop() == 0
        finally:
            if bot.proc and bot.proc.poll() is None:
                bot.kill()
