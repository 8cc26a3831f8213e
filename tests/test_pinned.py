"""The daily pinned counters post (issue 12): what a chat's post says and needs, and the
midnight job's schedule across daylight-saving changes (a clock the test sets, no waiting).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from telegram.ext import ExtBot

from bot import commands
from bot.pinned_text import Action, PinnedPost, day_start, next_action, post_text, text_hash
from bot.service import Service, midnight_trigger
from bot.store import AsyncStore
from bot.telegram_sender import TelegramSender
from tests.conftest import build_config

TOKEN = "123456:AAH-pinned-test-token-0123456789"
LONDON = ZoneInfo("Europe/London")


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)  # type: ignore[misc]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    store = AsyncStore.open(tmp_path / "bot.sqlite3")
    yield store
    store.close()


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


async def test_the_service_schedules_the_midnight_job_in_the_bots_time_zone(
    tmp_path: Path, db: AsyncStore
) -> None:
    config = build_config(tmp_path)
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
            assert job is not None and job.func is at_midnight
            fire = job.trigger.get_next_fire_time(None, datetime(2026, 3, 29, 12, tzinfo=UTC))
            assert fire == london(2026, 3, 30, 0, 0)
        finally:
            await service.stop()
        without = Service(config, db, client, sender, notify)
        try:
            assert without.start_scheduler(poll_now=False).get_job("midnight") is None
        finally:
            await without.stop()
