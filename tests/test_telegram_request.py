"""AiohttpRequest under python-telegram-bot, against the fake Bot API over real HTTP.

Every Telegram answer the delivery engine acts on must come out as the same exception, and so
the same SendOutcome, as through PTB's own HTTPXRequest.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram import Bot, InputFile
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot.delivery import (
    ChatAddress,
    ChatGone,
    ChatMoved,
    PermanentFailure,
    Sent,
    Throttled,
    TransientFailure,
)
from bot.telegram_bot import build_application
from bot.telegram_request import AiohttpRequest
from bot.telegram_sender import TelegramSender
from tests.conftest import FAKE_TOKEN, build_config
from tests.fakes.bot_api import FakeBotAPI

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning"
)

TOKEN = FAKE_TOKEN  # the shared `api` fixture accepts it
USER = 4242
GROUP = -1001234567890


def _bot(base_url: str, kind: str, token: str = TOKEN, read_timeout: float = 5.0) -> Bot:
    if kind == "aiohttp":
        return Bot(token, base_url=base_url, request=AiohttpRequest(read_timeout=read_timeout),
                   get_updates_request=AiohttpRequest(1))  # fmt: skip
    return Bot(token, base_url=base_url, request=HTTPXRequest(read_timeout=read_timeout))


@pytest.fixture
async def bot(api: FakeBotAPI) -> AsyncIterator[Bot]:
    async with _bot(api.base_url, "aiohttp") as tg_bot:
        yield tg_bot


async def test_get_me_and_send_message_reach_the_api_as_through_httpx(api: FakeBotAPI) -> None:
    sent = {}
    for kind in ("httpx", "aiohttp"):
        async with _bot(api.base_url, kind) as tg_bot:
            assert (await tg_bot.get_me()).username == "statement_test_bot"
            message = await tg_bot.send_message(
                GROUP, "<b>Statement</b> &amp; “more” 123", parse_mode="HTML",
                message_thread_id=7, allow_paid_broadcast=True,
            )  # fmt: skip
            assert message.chat.id == GROUP and message.message_id > 0
        [sent[kind]] = api.sent_messages()
        api.clear()
    fields = ("chat_id", "text", "parse_mode", "message_thread_id", "link_preview_options")
    for name in fields:
        assert getattr(sent["aiohttp"], name) == getattr(sent["httpx"], name), name
    assert sent["aiohttp"].params == sent["httpx"].params
    assert sent["aiohttp"].params["allow_paid_broadcast"] is True


@pytest.mark.parametrize(
    ("kind", "kwargs", "exc_type", "outcome_type"),
    [
        ("blocked", {}, Forbidden, ChatGone),
        ("kicked", {}, Forbidden, ChatGone),
        ("not_found", {}, BadRequest, ChatGone),
        ("migrated", {"migrate_to_chat_id": -1009999999999}, ChatMigrated, ChatMoved),
        ("flood", {"retry_after": 7}, RetryAfter, Throttled),
        ("server_error", {}, NetworkError, TransientFailure),
        ("server_error", {"status": 502}, NetworkError, TransientFailure),  # nginx's HTML page
        ("slow", {"delay": 1.0}, TimedOut, TransientFailure),
    ],
)
async def test_every_failure_maps_to_the_same_exception_and_outcome_as_httpx(
    api: FakeBotAPI,
    kind: str,
    kwargs: dict[str, int],
    exc_type: type[Exception],
    outcome_type: type,
) -> None:
    outcomes = {}
    for request in ("httpx", "aiohttp"):
        api.fail_chat(GROUP, kind, times=2, **kwargs)  # type: ignore[arg-type]
        async with _bot(api.base_url, request, read_timeout=0.5) as tg_bot:
            with pytest.raises(exc_type) as info:
                await tg_bot.send_message(GROUP, "hello")
            if exc_type is NetworkError:  # not one of its subclasses
                assert not isinstance(info.value, BadRequest | TimedOut)
            outcomes[request] = await TelegramSender(tg_bot).send(ChatAddress(GROUP), "hi")
        api.clear_failures()
    assert isinstance(outcomes["aiohttp"], outcome_type)
    if kind != "slow":  # the texts differ there: "Timed out" has no detail to compare
        assert outcomes["aiohttp"] == outcomes["httpx"]
    else:
        assert (
            outcomes["aiohttp"]
            == outcomes["httpx"]
            == TransientFailure("timed out (the message may have arrived)")
        )
    if kind == "flood":
        assert outcomes["aiohttp"] == Throttled(7.0)
    if kind == "migrated":
        assert outcomes["aiohttp"] == ChatMoved(-1009999999999)


async def test_the_applications_bot_refuses_markup_for_good_and_sends_the_rest(
    tmp_path: Path, api: FakeBotAPI
) -> None:
    app = build_application(build_config(tmp_path, api_base_url=api.base_url), TOKEN)
    assert isinstance(app.bot.request, AiohttpRequest)
    async with app.bot as tg_bot:  # HTML by default, the rate limiter, aiohttp
        outcome = await TelegramSender(tg_bot).send(ChatAddress(USER), "<b>unclosed")
        assert isinstance(outcome, PermanentFailure)
        assert "can't parse entities" in outcome.reason.lower()
        assert await TelegramSender(tg_bot).send(ChatAddress(USER), "<b>closed</b>") == Sent(1)


async def test_a_wrong_token_is_invalid_token(api: FakeBotAPI) -> None:
    with pytest.raises(InvalidToken):
        async with _bot(api.base_url, "aiohttp", token="999:WRONG"):
            pass  # initialize() calls getMe


async def test_nothing_listening_is_a_network_error_not_a_timeout() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # closed again: nothing listens there
    request = AiohttpRequest()
    await request.initialize()
    try:
        tg_bot = Bot(TOKEN, base_url=f"http://127.0.0.1:{port}/bot", request=request)
        with pytest.raises(NetworkError) as info:
            await tg_bot.send_message(USER, "hello")
        assert not isinstance(info.value, TimedOut)
        outcome = await TelegramSender(tg_bot).send(ChatAddress(USER), "hello")
        assert isinstance(outcome, TransientFailure)
        assert outcome.reason.startswith("network error: aiohttp.")
        assert await TelegramSender(tg_bot).reachable() is False
    finally:
        await request.shutdown()


async def test_long_polling_waits_for_the_update_and_a_second_poller_conflicts(
    api: FakeBotAPI, bot: Bot
) -> None:
    threading.Timer(0.3, api.push_message, args=(USER, "/start now")).start()
    started = time.monotonic()
    [update] = await bot.get_updates(timeout=5)  # past the 5 s default read timeout: no TimedOut
    assert time.monotonic() - started < 3
    assert update.message is not None and update.message.text == "/start now"
    async with _bot(api.base_url, "aiohttp") as other:
        task = asyncio.ensure_future(other.get_updates(offset=update.update_id + 1, timeout=3))
        await asyncio.sleep(0.3)
        await bot.get_updates(offset=update.update_id + 1, timeout=0)
        with pytest.raises(Conflict):
            await task


async def test_files_go_as_multipart(api: FakeBotAPI, bot: Bot) -> None:
    document = InputFile(b"%PDF-1.4 statement", filename="s.pdf")
    with pytest.raises(BadRequest, match="ethod not found"):  # the fake sends no documents
        await bot.send_document(USER, document)
    [(_, params)] = [call for call in api.calls if call[0].lower() == "senddocument"]
    assert params["chat_id"] == USER
    assert params["document"]["filename"] == "s.pdf"
    assert params["document"]["data"] == b"%PDF-1.4 statement"


async def test_an_uninitialized_request_says_so() -> None:
    with pytest.raises(RuntimeError, match="not initialized"):
        await AiohttpRequest().do_request("http://127.0.0.1:9/bot/getMe", "POST")


async def test_the_proxy_variables_are_honoured_as_with_httpx(
    api: FakeBotAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake also serves a request in a proxy's absolute form, so it can stand in for one.
    for name in ("http_proxy", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)  # lower case would win over ours
    monkeypatch.setenv("HTTP_PROXY", api.base_url.rsplit("/", 1)[0])
    base_url = "http://bot-api.invalid/bot"  # reachable only through the proxy
    async with Bot(TOKEN, base_url=base_url, request=AiohttpRequest()) as tg_bot:
        assert tg_bot.username == "statement_test_bot"  # getMe went through the proxy
    monkeypatch.setenv("NO_PROXY", "bot-api.invalid")
    with pytest.raises(NetworkError):
        async with Bot(TOKEN, base_url=base_url, request=AiohttpRequest()):
            pass


@pytest.mark.parametrize(
    "payload",
    [b'{"ok":true,"result":{"message_id":7,"text":"\xd0\xb4"}}', b'{"ok":true,"result":"\xff"}',
     b"[1, 2]", b"<html>502 Bad Gateway</html>"],
)  # fmt: skip
def test_answers_parse_as_python_telegram_bot_parses_them(payload: bytes) -> None:
    # orjson where it can; invalid UTF-8 and non-JSON still go PTB's way (replacement
    # characters; TelegramError "Invalid server response").
    try:
        expected: object = BaseRequest.parse_json_payload(payload)
    except TelegramError as exc:
        with pytest.raises(TelegramError, match=exc.message):
            AiohttpRequest.parse_json_payload(payload)
    else:
        assert AiohttpRequest.parse_json_payload(payload) == expected
