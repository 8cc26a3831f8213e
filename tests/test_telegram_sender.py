"""Paid broadcasts: the config key, and how paid pushes share the rate limiter with replies.

python-telegram-bot's real Bot (from build_application: the rate limiter, aiohttp) against the
fake Bot API on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from telegram.ext import ExtBot

from bot.config import ConfigError
from bot.delivery import ChatAddress, SendOutcome, Sent, TransientFailure
from bot.telegram_request import AiohttpRequest
from bot.telegram_sender import FairRateLimiter, Priority, TelegramSender, priority_args
from tests.conftest import FAKE_TOKEN, build_config
from tests.fakes.bot_api import FakeBotAPI

TOKEN = FAKE_TOKEN  # the shared `api` fixture accepts it


def test_paid_broadcast_is_off_unless_configured(tmp_path: Path) -> None:
    assert build_config(tmp_path).paid_broadcast is False
    assert build_config(tmp_path, paid_broadcast=True).paid_broadcast is True
    with pytest.raises(ConfigError, match=r"bot\.paid_broadcast: must be true or false"):
        build_config(tmp_path, paid_broadcast="yes")


async def test_paid_pushes_go_past_the_free_limit_and_replies_keep_theirs(
    bot: ExtBot, api: FakeBotAPI
) -> None:
    paid = TelegramSender(bot, paid_broadcast=True)
    pushes = [asyncio.create_task(paid.send(ChatAddress(20_000 + i), f"push {i}"))
              for i in range(300)]  # fmt: skip
    await api.wait_for_messages_async(10)
    asked = time.monotonic()
    await bot.send_message(999, "reply", **priority_args(bot, Priority.REPLY))
    answered = time.monotonic() - asked
    assert all(isinstance(outcome, Sent) for outcome in await asyncio.gather(*pushes))

    sent = api.sent_messages()
    pushed = [m for m in sent if m.chat_id != 999]
    assert all(m.params.get("allow_paid_broadcast") for m in pushed)
    assert "allow_paid_broadcast" not in next(m for m in sent if m.chat_id == 999).params
    # 300 paid messages in well under the 10 s the free 30/s would take, never over 1000/s...
    assert pushed[-1].monotonic - pushed[0].monotonic < 2.0
    assert api.peak_rate() <= 1000 + 20
    # ... and the reply did not queue behind them.
    assert answered < 0.5


async def test_replies_stay_within_the_free_limit_during_a_paid_fan_out(api: FakeBotAPI) -> None:
    # Each request counted until its answer (reach 1 s): then no delay on a loaded machine can
    # bunch arrivals, and what is checked is only that paid pushes neither use nor break the
    # free budget. The default reach (20 ms) trades that for the real network's slow answers
    # (test_slow_answers_do_not_slow_the_paid_pace).
    limiter = FairRateLimiter(reach=1.0)
    async with ExtBot(TOKEN, base_url=api.base_url, rate_limiter=limiter,
                      request=AiohttpRequest()) as bot:  # fmt: skip
        paid = TelegramSender(bot, paid_broadcast=True)
        pushes = [asyncio.create_task(paid.send(ChatAddress(20_000 + i), "push"))
                  for i in range(200)]  # fmt: skip
        replies = [bot.send_message(30_000 + i, "reply", **priority_args(bot, Priority.REPLY))
                   for i in range(45)]  # fmt: skip
        await asyncio.gather(*replies, *pushes)
    stamps = [m.monotonic for m in api.sent_messages() if m.chat_id >= 30_000]
    in_any_second = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
    assert in_any_second <= 30  # the free budget: 30/s, as the fake counts them (arrival)


async def test_a_push_carries_what_send_message_would_send(bot: ExtBot, api: FakeBotAPI) -> None:
    # TelegramSender posts to the request layer itself (no Message built from the answer), so
    # it adds the Application's defaults itself: the request must be the same.
    await bot.send_message(-1001, "<b>push</b>", message_thread_id=7,
                           **priority_args(bot, Priority.PUSH))  # fmt: skip
    outcome = await TelegramSender(bot).send(ChatAddress(-1001, thread_id=7), "<b>push</b>")
    assert outcome == Sent(2)
    by_library, by_sender = api.sent_messages()
    sent = {k: v for k, v in by_sender.params.items() if k != "disable_notification"}
    assert sent == by_library.params  # (disable_notification: a chat's /settings)
    assert by_sender.params["parse_mode"] == "HTML"
    assert by_sender.params["link_preview_options"] == {"is_disabled": True}


@contextlib.asynccontextmanager
async def _paid_pushes(
    api: FakeBotAPI, count: int, **limits: Any
) -> AsyncIterator[tuple[FairRateLimiter, list[asyncio.Task[SendOutcome]]]]:
    """`count` paid pushes under a FairRateLimiter(**limits), sending while the block runs."""
    limiter = FairRateLimiter(**limits)
    bot = ExtBot(TOKEN, base_url=api.base_url, rate_limiter=limiter, request=AiohttpRequest())
    async with bot:
        paid = TelegramSender(bot, paid_broadcast=True)
        yield limiter, [asyncio.create_task(paid.send(ChatAddress(20_000 + i), "push"))
                        for i in range(count)]  # fmt: skip


async def test_paid_sends_never_exceed_the_limit_in_any_second_after_a_stall(
    api: FakeBotAPI,
) -> None:
    # At 40/s for a short test. A blocked event loop (a garbage collection, a slow callback)
    # used to release every slot it had missed at once, on top of the next second's.
    async with _paid_pushes(api, 100, paid_rate=40, paid_per_second=40) as (_, pushes):
        await api.wait_for_messages_async(30)
        time.sleep(0.5)  # the loop stalls: ~20 slots pass with nothing sent
        assert all(isinstance(outcome, Sent) for outcome in await asyncio.gather(*pushes))
    stamps = [m.monotonic for m in api.sent_messages()]
    assert len(stamps) == 100
    assert api.peak_rate() <= 40  # counted as the fake counts them: by arrival
    assert stamps[-1] - stamps[0] < 100 / 40 + 0.5 + 0.3  # the pace itself is kept


async def test_paid_sends_still_waiting_are_not_sent_once_the_bot_stops(api: FakeBotAPI) -> None:
    async with _paid_pushes(api, 30, paid_rate=10) as (limiter, pushes):
        await api.wait_for_messages_async(2)
        await limiter.shutdown()
        outcomes = await asyncio.gather(*pushes)
    sent = [o for o in outcomes if isinstance(o, Sent)]
    assert len(sent) == len(api.sent_messages()) < 10
    # The rest go back to the delivery engine as a failure to retry, not lost and not sent.
    assert all(o == TransientFailure("network error: the bot is stopping")
               for o in outcomes if not isinstance(o, Sent))  # fmt: skip


async def test_paid_sends_counted_within_a_second_never_exceed_the_limit(
    api: FakeBotAPI,
) -> None:
    # The pace alone would send these 50 in 50 ms; the count holds them to 20 in any second,
    # as Telegram would count them on arrival, whatever the way there does to their spacing.
    async with _paid_pushes(api, 50, paid_rate=1000, paid_per_second=20) as (_, pushes):
        assert all(isinstance(outcome, Sent) for outcome in await asyncio.gather(*pushes))
    stamps = [m.monotonic for m in api.sent_messages()]
    assert api.peak_rate() == 20
    assert 2.0 <= stamps[-1] - stamps[0] < 2.5


async def test_slow_answers_do_not_slow_the_paid_pace(api: FakeBotAPI) -> None:
    # Telegram takes its time to answer; the message arrived long before. Counted only until
    # paid_reach after its start, a slow answer does not hold the next second's sends back.
    for i in range(40):
        api.fail_chat(20_000 + i, "slow", delay=0.3)
    async with _paid_pushes(api, 40, paid_rate=1000, paid_per_second=20) as (_, pushes):
        assert all(isinstance(outcome, Sent) for outcome in await asyncio.gather(*pushes))
    stamps = [m.monotonic for m in api.sent_messages()]
    assert api.peak_rate() == 20
    assert stamps[-1] - stamps[0] < 1.2  # not 1.3 s and more (20 a second after each answer)
