"""Command replies as users read them: /latest, /counters, /start, /stop, /help, /status."""

# ruff: noqa: RUF001 - Russian replies: their Cyrillic letters are meant

from __future__ import annotations

import dataclasses
import io
from datetime import datetime, timedelta

import pytest

from bot import commands
from bot.config import Config
from bot.model import ChatSettings, PollOutcome, PollReport, Statement
from bot.poller import record_poll
from bot.store import Store
from bot.text import html_to_text


def fill(store: Store, config: Config, now: datetime, count: int) -> None:
    items = [
        Statement(f"k{n}", f"Statement {n} & more", f"https://e.org/{n}",
                  now - timedelta(days=count - n), f"Lead {n}")
        for n in range(count, 0, -1)
    ]  # fmt: skip
    record_poll(store, config.feeds[0], items, now)


def test_counters_reply_matches_the_model_site(config: Config, now: datetime) -> None:
    text = html_to_text(commands.counters_reply(config, now), keep_lines=True)
    assert text.splitlines() == [
        "26 October 2021",
        "Moscow: 00:54",
        "London: 22:54",
        "",
        "1332 days have passed since the Salisbury incident - no credible information or "
        "response from the British authorities",
        "",
        "1324 days have passed since the death of Nikolay Glushkov on British soil - no credible "
        "information or response from the British authorities",
    ]


def test_latest_without_statements(store: Store, config: Config, now: datetime) -> None:
    assert "No statements yet" in commands.latest_reply(store, config, now, [])


def test_latest_gives_the_newest_in_full_with_counters(
    store: Store, config: Config, now: datetime
) -> None:
    fill(store, config, now, 5)
    reply = commands.latest_reply(store, config, now, [])
    assert reply.startswith("<b>Statement 5 &amp; more</b>")
    assert "Lead 5" in reply and "1332 days" in reply


def test_latest_n_lists_newest_first(store: Store, config: Config, now: datetime) -> None:
    fill(store, config, now, 5)
    lines = html_to_text(commands.latest_reply(store, config, now, ["3"]), keep_lines=True)
    assert lines.splitlines() == [
        "26.10.2021 - Statement 5 & more",
        "25.10.2021 - Statement 4 & more",
        "24.10.2021 - Statement 3 & more",
    ]


@pytest.mark.parametrize("args", [["0"], ["21"], ["-1"], ["many"], ["1", "2"], ["2.5"]])
def test_latest_bad_argument_gets_one_line(
    store: Store, config: Config, now: datetime, args: list[str]
) -> None:
    reply = commands.latest_reply(store, config, now, args)
    assert reply == "Usage: /latest or /latest N, where N is a whole number from 1 to 20."


def test_start_and_stop_say_what_happened(store: Store, config: Config, now: datetime) -> None:
    fill(store, config, now, 2)
    first = commands.start_reply(True, store.latest(1)[0], config, now)
    assert first.startswith("Subscribed.") and "Statement 2" in first
    assert commands.start_reply(False, None, config, now).startswith("This chat is already")
    assert commands.stop_reply(True).startswith("Unsubscribed")
    assert commands.stop_reply(False).startswith("This chat is not subscribed")


def test_help_lists_admin_commands_only_to_admins(config: Config) -> None:
    assert "/status" not in commands.help_reply(config)
    assert "/latest" in commands.help_reply(config)
    assert "/status" in commands.help_reply(config, is_admin=True)


def test_status_reply_shows_feed_health(store: Store, config: Config, now: datetime) -> None:
    store.ensure_feed(config.feeds[0])
    store.record_failure("statements", "HTTP 503 <Service Unavailable>", now, now)
    store.subscribe(1, "private", now)
    text = html_to_text(
        commands.status_reply(store.status(), config, now + timedelta(minutes=5)), keep_lines=True
    )
    assert "Subscribers: 1" in text
    assert "last poll: 5 min ago" in text
    assert "last success: never" in text
    assert "last error (1 in a row): HTTP 503 <Service Unavailable>" in text


def test_status_reply_shows_a_discovered_feed_and_skipped_items(
    store: Store, config: Config, now: datetime
) -> None:
    from bot.diff import PollDecision

    store.ensure_feed(config.feeds[0])
    store.record_discovered("statements", "https://example.org/rss?a=1&b=2")
    store.apply_poll(
        "statements", PollDecision(), now, skipped=["item 3 ('Bad <one>'): unreadable &#xD800;"]
    )
    text = html_to_text(commands.status_reply(store.status(), config, now), keep_lines=True)
    assert "reads the feed the page names: https://example.org/rss?a=1&b=2" in text
    assert (
        "items skipped in the last poll (1):\n- item 3 ('Bad <one>'): unreadable &#xD800;" in text
    )


def test_poll_reply() -> None:
    outcomes = [
        PollOutcome("a", report=PollReport("a", 2, 0, 1, 0, 4)),
        PollOutcome("b", not_modified=True),
        PollOutcome("c", error="timed out"),
    ]
    assert commands.poll_reply(outcomes).splitlines() == [
        "a: 2 new, 1 edited",
        "b: not modified",
        "c: failed: timed out",
    ]


def test_start_reply_with_a_huge_statement_fits_one_message(
    make_config, store: Store, now: datetime
) -> None:
    from bot.render import MAX_MESSAGE_LENGTH
    from bot.text import telegram_length

    config = make_config(lead_length=3500)
    huge = Statement("k", "Title " * 60, "https://e.org/x", now, "word " * 2000)
    record_poll(store, config.feeds[0], [huge], now)
    reply = commands.start_reply(True, store.latest(1)[0], config, now)
    assert telegram_length(reply) <= MAX_MESSAGE_LENGTH
    assert reply.startswith("Subscribed.") and "days have passed" in reply


# ---- Russian, /settings, the command table (issue 11) ----------------------------------------


def test_counters_reply_in_russian(config: Config, now: datetime) -> None:

    ru = (
        ("one", "{days} день прошёл"),
        ("few", "{days} дня прошло"),
        ("many", "{days} дней прошло"),
    )
    config = dataclasses.replace(
        config,
        counters=tuple(dataclasses.replace(c, languages=(("ru", ru),)) for c in config.counters),
    )
    text = html_to_text(commands.counters_reply(config, now, language="ru"), keep_lines=True)
    assert text.splitlines() == [
        "26 октября 2021",
        "Москва: 00:54",
        "Лондон: 22:54",
        "",
        "1332 дня прошло",
        "",
        "1324 дня прошло",
    ]


def test_push_in_russian_links_to_the_full_text(
    store: Store, config: Config, now: datetime
) -> None:
    fill(store, config, now, 1)
    reply = commands.latest_reply(store, config, now, [], language="ru")
    assert '">Читать полностью</a>' in reply
    assert "Read the full text" not in reply


def test_bot_language_is_the_default_of_every_reply(
    make_config, store: Store, now: datetime
) -> None:
    config = make_config(language="ru")
    assert commands.latest_reply(store, config, now, []).startswith("Заявлений пока нет")
    assert commands.latest_reply(store, config, now, ["x"]).startswith("Как использовать: /latest")
    assert commands.stop_reply(False, "ru") == "Этот чат не подписан. /start подписывает его."


def test_help_lists_the_tables_commands_in_the_language(config: Config) -> None:
    from bot.command_table import menu

    reply = commands.help_reply(config, language="ru", commands=menu("ru"))
    assert "/search - Найти заявления: /search СЛОВА" in reply
    assert "/settings - Разделы, тихие уведомления, язык" in reply
    assert "/status" not in reply


@pytest.mark.parametrize(
    ("code", "kind", "stored", "expected"),
    [("ru-RU", "private", None, "ru"), ("de", "private", None, "en"), ("ru", "group", None, "en"),
     ("ru", "private", "en", "en"), (None, "supergroup", "ru", "ru"), (None, "private", None, "en")],
)  # fmt: skip
def test_chat_language(config: Config, code, kind, stored, expected) -> None:
    assert commands.chat_language(stored, kind, code, config) == expected


def two_feeds(make_config) -> Config:
    from tests.conftest import SAMPLES

    return make_config(
        feeds=[
            {"name": "press", "url": str(SAMPLES / "embassy-rss.xml"),
             "title": {"en": "Press releases", "ru": "Пресс-релизы"}},
            {"name": "informs", "url": str(SAMPLES / "embassy-rss.xml")},
        ]
    )  # fmt: skip


def test_settings_as_text(make_config) -> None:
    config = two_feeds(make_config)
    plain = ChatSettings()
    shown, reply = commands.settings_command(plain, [], config, "en")
    assert shown is None
    assert html_to_text(reply, keep_lines=True).splitlines()[:4] == [
        "Settings of this chat",
        "Sections: Press releases, informs",
        "Silent pushes: off",
        "Language: English",
    ]
    new, reply = commands.settings_command(plain, ["sections", "INFORMS"], config, "en")
    assert new == ChatSettings(muted=frozenset({"press"}))
    assert reply.startswith("Saved.") and "Sections: informs" in reply
    new, _ = commands.settings_command(plain, ["silent", "on"], config, "en")
    assert new == ChatSettings(silent=True)
    new, reply = commands.settings_command(plain, ["language", "ru"], config, "en")
    assert new == ChatSettings(language="ru")
    assert reply.startswith("Сохранено.") and "Разделы: Пресс-релизы, informs" in reply


@pytest.mark.parametrize(
    ("args", "start"),
    [(["sections"], "Usage: /settings"), (["sections", "sport"], "There is no section “sport”"),
     (["silent", "maybe"], "Usage: /settings silent on"), (["language", "de"], "I don't speak “de”"),
     (["colour", "red"], "Usage: /settings")],
)  # fmt: skip
def test_bad_settings_get_one_line_and_change_nothing(make_config, args, start) -> None:
    new, reply = commands.settings_command(ChatSettings(), args, two_feeds(make_config), "en")
    assert new is None and reply.startswith(start) and "\n" not in reply


def test_the_last_section_stays_on(make_config) -> None:
    config = two_feeds(make_config)
    only_press = commands.choose_sections(ChatSettings(), ["press"], config)
    assert only_press == ChatSettings(muted=frozenset({"informs"}))
    assert commands.toggle_section(only_press, "press", config) is None
    assert commands.toggle_section(only_press, "informs", config) == ChatSettings()
    assert commands.choose_sections(ChatSettings(), [], config) is None


async def test_console_dispatches_from_the_table_and_keeps_settings(
    make_config, tmp_path, now: datetime
) -> None:
    import httpx

    from bot.console import CONSOLE_CHAT, ConsoleAdmin, ConsoleSender, answer
    from bot.service import Service
    from bot.store import AsyncStore

    config = two_feeds(make_config)
    db = AsyncStore.open(config.database_path)
    out = io.StringIO()
    async with httpx.AsyncClient() as client:
        service = Service(config, db, client, ConsoleSender(out), ConsoleAdmin(out))
        try:
            assert (await answer("/start", service, config, db, now)).startswith("Subscribed.")
            reply = await answer("/settings sections press", service, config, db, now)
            assert "Sections: Press releases" in reply
            await answer("/settings silent on", service, config, db, now)
            reply = await answer("/settings language ru", service, config, db, now)
            assert reply.startswith("Сохранено.")
            assert (await answer("/help", service, config, db, now)).count("/status") == 1
            assert (await answer("/nonsense", service, config, db, now)).startswith("Такой команды")
            assert "Подписчиков: 0" in await answer("/status", service, config, db, now)
            settings = await db.read(lambda s: s.chat_settings(CONSOLE_CHAT.chat_id))
            assert settings == ChatSettings(
                muted=frozenset({"informs"}), silent=True, language="ru"
            )
            assert (await answer('/search "unclosed', service, config, db, now)).startswith(
                "Ни одно заявление"
            )
        finally:
            await service.stop()
            db.close()


async def test_bot_admin_commands_answer_others_as_unknown(config: Config, now: datetime) -> None:
    from bot.command_table import ChatRef, Request, answer
    from bot.store import AsyncStore

    db = AsyncStore.open(config.database_path)
    try:
        request = Request(config, db, ChatRef(5, "private"), now, "en")
        assert await answer("/status", request) == commands.unknown_command_reply()
        assert (await answer("/Latest@embassy_bot", request)).startswith("No statements yet")
    finally:
        db.close()


async def test_status_through_the_table_shows_the_fan_out_under_way(
    config: Config, now: datetime
) -> None:
    """Telegram and the console hand /status the engine's progress; the admin reads it."""
    from bot.command_table import ChatRef, Request, answer
    from bot.model import FanOutProgress
    from bot.store import AsyncStore

    db = AsyncStore.open(config.database_path)
    try:
        under_way = FanOutProgress("Embassy comment", done=6200, total=10000, rate=950.0)
        request = Request(config, db, ChatRef(5, "private"), now, "en", is_bot_admin=True,
                          fanouts=lambda: [under_way])  # fmt: skip
        reply = html_to_text(await answer("/status", request), keep_lines=True)
        assert "sending “Embassy comment”: 6,200 of 10,000, 950/s, about 4 s left" in reply
    finally:
        db.close()


# ---- the delivery engine's renderer -----------------------------------------------------------


def test_the_push_renderer_makes_what_push_message_makes_once_per_statement_language_and_day(
    config: Config, store: Store, now: datetime
) -> None:
    from bot.commands import PushRenderer, push_message

    fill(store, config, now, 2)
    statement = store.latest(1)[0]
    render = PushRenderer(config)
    first = render(statement, now, None)
    assert first == push_message(statement, config, now)
    assert render(statement, now + timedelta(minutes=5), "en") is first  # made once
    russian = render(statement, now, "ru")
    assert russian == push_message(statement, config, now, language="ru") != first
    corrected = dataclasses.replace(statement, title="Corrected title")
    assert "Corrected title" in render(corrected, now, None)
    # London's next day: the counters move on, so the message is made again.
    london = now.astimezone(config.timezone)
    next_day = (london + timedelta(days=1)).replace(hour=0, minute=0, second=1)
    assert render(statement, next_day, None) == push_message(statement, config, next_day)
    assert render(statement, next_day, None) != first
