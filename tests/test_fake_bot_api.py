"""The fake Bot API, driven by python-telegram-bot's real Bot and Application over HTTP."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import AsyncIterator

import pytest
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Update,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import Application, CommandHandler, ContextTypes

from tests.conftest import FAKE_TOKEN
from tests.fakes.bot_api import ALL_METHODS, FakeBotAPI

# PTB 22.x warns whenever it builds a RetryAfter (its retry_after turns into a timedelta
# in v23); the warning says nothing about the fake.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning"
)

TOKEN = FAKE_TOKEN  # the shared `api` fixture accepts it
USER = 4242
GROUP = -1001234567890


@pytest.fixture
async def bot(api: FakeBotAPI) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=api.base_url) as tg_bot:
        yield tg_bot


def _retry_after_seconds(exc: RetryAfter) -> float:
    """RetryAfter.retry_after is an int with a deprecation warning in 22.x, later a timedelta."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


async def test_get_me(api: FakeBotAPI, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.is_bot
    assert me.id == 123
    assert me.username == "statement_test_bot"
    assert me.can_join_groups
    assert api.calls_to("getMe")
    assert api.unknown_calls == []


async def test_send_message_returns_a_message_and_is_recorded(api: FakeBotAPI, bot: Bot) -> None:
    before = time.time()
    first = await bot.send_message(
        GROUP,
        "<b>Statement</b> &amp; more",
        parse_mode="HTML",
        message_thread_id=7,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )
    second = await bot.send_message(GROUP, "123")

    assert first.chat.id == GROUP
    assert first.chat.type == "supergroup"
    assert first.text == "<b>Statement</b> &amp; more"
    assert first.message_thread_id == 7
    assert first.from_user is not None
    assert first.from_user.username == "statement_test_bot"
    assert second.message_id == first.message_id + 1
    assert abs(first.date.timestamp() - before) < 5

    sent = api.sent_messages(GROUP)
    assert [m.text for m in sent] == ["<b>Statement</b> &amp; more", "123"]
    # PTB sends form fields with non-strings JSON-encoded; the fake decodes them by name.
    assert sent[0].chat_id == GROUP
    assert sent[0].parse_mode == "HTML"
    assert sent[0].message_thread_id == 7
    assert sent[0].link_preview_options == {"is_disabled": True}
    assert sent[0].time >= before
    assert isinstance(sent[1].text, str)
    assert api.sent_messages(USER) == []


@pytest.mark.parametrize(
    ("kind", "kwargs", "exc_type", "message"),
    [
        ("blocked", {}, Forbidden, "Forbidden: bot was blocked by the user"),
        ("kicked", {}, Forbidden, "Forbidden: bot was kicked from the supergroup chat"),
        ("not_found", {}, BadRequest, "Chat not found"),
        ("server_error", {}, NetworkError, "Internal Server Error"),
        ("server_error", {"status": 502}, NetworkError, "Bad Gateway"),
    ],
)
async def test_injected_errors_raise_the_ptb_exception(
    api: FakeBotAPI,
    bot: Bot,
    kind: str,
    kwargs: dict[str, int],
    exc_type: type[Exception],
    message: str,
) -> None:
    api.fail_chat(GROUP, kind, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(exc_type) as info:
        await bot.send_message(GROUP, "hello")
    assert message in str(info.value)
    # 4xx/5xx must not be mistaken for each other: a 500 is no BadRequest.
    if kind == "server_error":
        assert not isinstance(info.value, BadRequest | TimedOut)
    assert api.sent_messages() == []


async def test_migrated_chat_raises_chat_migrated(api: FakeBotAPI, bot: Bot) -> None:
    api.fail_chat(-555, "migrated", migrate_to_chat_id=-1009999999999)
    with pytest.raises(ChatMigrated) as info:
        await bot.send_message(-555, "hello")
    assert info.value.new_chat_id == -1009999999999
    await bot.send_message(-1009999999999, "hello again")
    assert [m.chat_id for m in api.sent_messages()] == [-1009999999999]


async def test_flood_raises_retry_after_then_recovers(api: FakeBotAPI, bot: Bot) -> None:
    api.fail_chat(USER, "flood", times=2, retry_after=5)
    for _ in range(2):
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(USER, "hello")
        assert _retry_after_seconds(info.value) == 5
    await bot.send_message(USER, "hello")
    assert len(api.sent_messages(USER)) == 1


async def test_slow_answer_times_out_but_the_message_was_delivered(
    api: FakeBotAPI, bot: Bot
) -> None:
    api.fail_chat(USER, "slow", times=1, delay=2.0)
    with pytest.raises(TimedOut):
        await bot.send_message(USER, "late", read_timeout=0.3)
    assert [m.text for m in api.sent_messages(USER)] == ["late"]
    # times=1: the next one is fast again.
    await bot.send_message(USER, "on time", read_timeout=0.3)


async def test_global_delay_applies_to_every_send(api: FakeBotAPI, bot: Bot) -> None:
    api.delay = 0.3
    started = time.monotonic()
    await bot.send_message(USER, "one")
    assert time.monotonic() - started >= 0.3


async def test_failures_can_cover_other_chat_methods(api: FakeBotAPI, bot: Bot) -> None:
    api.fail_chat(GROUP, "kicked", methods=[ALL_METHODS])
    with pytest.raises(Forbidden):
        await bot.get_chat_member(GROUP, USER)
    api.clear_failures(GROUP)
    member = await bot.get_chat_member(GROUP, USER)
    assert member.status == "member"


async def test_long_polling_returns_a_pushed_update(api: FakeBotAPI, bot: Bot) -> None:
    threading.Timer(0.3, api.push_message, args=(USER, "/start now")).start()
    started = time.monotonic()
    updates = await bot.get_updates(timeout=5)
    assert time.monotonic() - started < 3  # answered on arrival, not after the timeout
    [update] = updates
    assert update.message is not None
    assert update.message.text == "/start now"
    assert update.message.from_user is not None
    assert update.message.from_user.id == USER
    [entity] = update.message.entities
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 6)

    # Confirming with offset drops it; an empty queue answers [] after the timeout.
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == ()
    assert api.pending_updates == []
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert time.monotonic() - started >= 0.9


async def test_a_second_poller_ends_the_first_with_conflict(api: FakeBotAPI) -> None:
    async with (
        Bot(TOKEN, base_url=api.base_url) as first,
        Bot(TOKEN, base_url=api.base_url) as second,
    ):
        polling = asyncio.create_task(first.get_updates(timeout=5))
        await asyncio.sleep(0.3)
        assert await second.get_updates(timeout=0) == ()
        with pytest.raises(Conflict):
            await polling
    assert api.conflicts == 1


async def test_wrong_token_raises_invalid_token(api: FakeBotAPI) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("999:WRONG", base_url=api.base_url) as wrong:
            await wrong.get_me()


async def test_unknown_methods_are_recorded(api: FakeBotAPI, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Method not found"):
        await bot.do_api_request("sendPigeon", api_kwargs={"chat_id": 1})
    assert api.unknown_calls == ["sendPigeon"]


async def test_commands_are_recorded_and_validated(api: FakeBotAPI, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand("latest", "Latest statements"), ("start", "Start")])
    assert [c["command"] for c in api.commands()] == ["latest", "start"]
    assert [c.command for c in await bot.get_my_commands()] == ["latest", "start"]
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([("Latest", "uppercase is invalid")])


async def test_admin_checks(api: FakeBotAPI, bot: Bot) -> None:
    api.set_admins(GROUP, [USER], creator_id=1)
    assert (await bot.get_chat_member(GROUP, USER)).status == "administrator"
    assert (await bot.get_chat_member(GROUP, 1)).status == "creator"
    assert (await bot.get_chat_member(GROUP, 2)).status == "member"
    admins = await bot.get_chat_administrators(GROUP)
    assert sorted(a.user.id for a in admins) == [1, USER]
    chat = await bot.get_chat(GROUP)
    assert chat.type == "supergroup"
    with pytest.raises(BadRequest):
        await bot.get_chat_administrators(USER)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<b>unclosed", "Can't find end tag corresponding to start tag"),
        ("<b>bad <i>nesting</b></i>", "Unmatched end tag"),
        ("1 < 2", "Unsupported start tag"),
        ("<br>", 'Unsupported start tag "br"'),
        ("<b></b>", "Message text is empty"),
        ("x" * 4097, "Message is too long"),
    ],
)
async def test_text_telegram_would_reject(bot: Bot, text: str, error: str) -> None:
    # PTB strips "Bad Request: " and then str.capitalize()s the rest, lowercasing it.
    with pytest.raises(BadRequest, match=f"(?i){re.escape(error)}"):
        await bot.send_message(USER, text, parse_mode="HTML")


async def test_valid_html_is_accepted(bot: Bot) -> None:
    text = '<a href="https://example.org/?a=1&amp;b=2">x</a> 1 &lt; 2 ' + "y" * 4070
    await bot.send_message(USER, text, parse_mode="HTML")


async def test_enforced_limits_answer_429(bot: Bot) -> None:
    api = FakeBotAPI(token=TOKEN, enforce_limits=True)
    with api:
        async with Bot(TOKEN, base_url=api.base_url) as limited:
            await limited.send_message(USER, "one")
            with pytest.raises(RetryAfter):
                await limited.send_message(USER, "two")
            await limited.send_message(USER + 1, "other chat")
    assert api.flood_rejections == [(USER, 1)]
    assert api.peak_rate() == 2


def test_json_and_form_bodies_from_a_sync_test(api: FakeBotAPI) -> None:
    request = urllib.request.Request(
        f"{api.url}/sendMessage",
        data=json.dumps({"chat_id": str(USER), "text": "via json"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        body = json.load(response)
    assert body["ok"] is True
    assert body["result"]["chat"] == {"id": USER, "type": "private", "first_name": f"User {USER}"}
    form = urllib.request.Request(
        f"{api.url}/sendmessage",  # method names are case-insensitive
        data=b"chat_id=4242&text=via+form",
    )
    with urllib.request.urlopen(form, timeout=5) as response:
        assert json.load(response)["ok"] is True
    assert [m.text for m in api.wait_for_messages(2, chat_id=USER, timeout=1)] == [
        "via json",
        "via form",
    ]
    with pytest.raises(TimeoutError):
        api.wait_for_messages(3, chat_id=USER, timeout=0.1)


async def test_application_answers_a_pushed_command(api: FakeBotAPI) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Reply in the same chat and topic."""
        assert update.effective_message is not None
        await update.effective_message.reply_text("Welcome")

    app = Application.builder().token(TOKEN).base_url(api.base_url).build()
    app.add_handler(CommandHandler("start", start))
    async with app:
        await app.updater.start_polling(poll_interval=0, timeout=1)
        await app.start()
        try:
            api.push_message(USER, "/start")
            api.push_message(
                GROUP,
                "/start@statement_test_bot",
                user_id=USER,
                message_thread_id=9,
                is_topic_message=True,
            )
            private = await api.wait_for_messages_async(1, chat_id=USER, timeout=5)
            topic = await api.wait_for_messages_async(1, chat_id=GROUP, timeout=5)
        finally:
            await app.updater.stop()
            await app.stop()
    assert [m.text for m in private] == ["Welcome"]
    assert topic[0].message_thread_id == 9
    assert [name for name, _ in api.calls[:2]] == ["getMe", "deleteWebhook"]
    assert api.unknown_calls == []
    assert api.pending_updates == []
    # Stopping abandons a long poll and sends one more getUpdates: that is no conflict.
    assert api.conflicts == 0


def test_a_bot_in_another_process_can_use_it(api: FakeBotAPI) -> None:
    script = (
        "import asyncio, sys\n"
        "from telegram import Bot\n"
        "async def main():\n"
        "    async with Bot(sys.argv[1], base_url=sys.argv[2]) as bot:\n"
        "        await bot.send_message(int(sys.argv[3]), 'from a subprocess')\n"
        "asyncio.run(main())\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, TOKEN, api.base_url, str(USER)], check=True, timeout=30
    )
    assert [m.text for m in api.sent_messages(USER)] == ["from a subprocess"]


async def test_a_button_press_is_answered_once_and_edits_are_checked(
    api: FakeBotAPI, bot: Bot
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("On", callback_data="x:1")]])
    sent = await bot.send_message(USER, "<b>Settings</b>", parse_mode="HTML", reply_markup=keyboard)
    assert api.buttons(USER, sent.message_id) == [[("On", "x:1")]]
    query = api.push_callback_query(USER, sent.message_id, "x:1", language_code="ru")
    [update] = await bot.get_updates()
    assert update.callback_query is not None and update.callback_query.data == "x:1"
    assert update.callback_query.from_user.language_code == "ru"
    assert update.callback_query.message.message_id == sent.message_id  # type: ignore[union-attr]
    assert await update.callback_query.answer("Saved.")
    assert api.wait_for_callback_answer(query)["text"] == "Saved."
    with pytest.raises(BadRequest, match="Query is too old"):
        await update.callback_query.answer("again")

    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("<b>Settings</b>", USER, sent.message_id, parse_mode="HTML",
                                    reply_markup=keyboard)  # fmt: skip
    await bot.edit_message_text("Settings", USER, sent.message_id)  # the keyboard goes
    assert api.bot_message(USER, sent.message_id)["text"] == "Settings"
    assert api.buttons(USER, sent.message_id) == []
    assert len(api.edits) == 1 and len(api.sent_messages(USER)) == 1
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", USER, sent.message_id + 5)
