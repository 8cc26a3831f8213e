"""The Sender for Telegram: send one message, translate Telegram's answer into a SendOutcome.

Also the bot's rate limiter: one budget of 30 messages/s in which replies to commands go ahead
of the delivery engine's pushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
import warnings
from collections import deque
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from enum import IntEnum
from typing import Any

from aiolimiter import AsyncLimiter
from telegram import Bot
from telegram.constants import FloodLimit
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import BaseRateLimiter, ExtBot
from telegram.warnings import PTBDeprecationWarning

from bot.delivery import (
    ChatAddress,
    ChatGone,
    ChatMoved,
    MessageGone,
    PermanentFailure,
    SendOutcome,
    Sent,
    Throttled,
    TransientFailure,
)
from bot.telegram_request import PlainRequestData

logger = logging.getLogger(__name__)

# BadRequest texts (python-telegram-bot strips "Bad Request: " and capitalises) that mean the
# chat or its topic will never take a message again.
_GONE_BAD_REQUESTS = ("chat not found", "group chat was deactivated", "peer_id_invalid")
# ... and those that mean only the forum topic is gone: the chat's other topics still get theirs.
_TOPIC_GONE_BAD_REQUESTS = ("message thread not found", "topic_deleted")
# An edit's message deleted in the chat (or too old for Telegram to edit): close that row.
_MESSAGE_GONE_BAD_REQUESTS = ("message to edit not found", "message can't be edited")


def outcome_of(exc: TelegramError) -> SendOutcome:
    """What a Telegram error means for the delivery. Order matters: BadRequest is a NetworkError."""
    match exc:
        case Forbidden():
            return ChatGone(exc.message)  # "Forbidden: bot was blocked by the user"
        case ChatMigrated():
            return ChatMoved(int(exc.new_chat_id))
        case RetryAfter():
            return Throttled(_seconds(exc))
        case BadRequest() if any(text in exc.message.lower() for text in _GONE_BAD_REQUESTS):
            return ChatGone(exc.message)
        case BadRequest() if any(text in exc.message.lower() for text in _TOPIC_GONE_BAD_REQUESTS):
            return ChatGone(exc.message, topic_only=True)
        case BadRequest() if any(
            text in exc.message.lower() for text in _MESSAGE_GONE_BAD_REQUESTS
        ):
            return MessageGone(exc.message)
        case BadRequest():
            return PermanentFailure(exc.message)
        case TimedOut():
            return TransientFailure("timed out (the message may have arrived)")
        case NetworkError():
            return TransientFailure(f"network error: {exc.message}")
        case _:
            return TransientFailure(f"{type(exc).__name__}: {exc.message}")


def _seconds(exc: RetryAfter) -> float:
    # 22.x gives an int with a deprecation warning, or a timedelta (PTB_TIMEDELTA=true).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


class TelegramSender:
    def __init__(self, bot: Bot, *, paid_broadcast: bool = False) -> None:
        self.bot = bot
        # Requests go straight to the bot's request layer (see _post): the Application's
        # defaults are added here, as python-telegram-bot would add them.
        defaults = getattr(bot, "defaults", None)
        self._params: dict[str, Any] = {}
        if defaults is not None and defaults.parse_mode:
            self._params["parse_mode"] = defaults.parse_mode
        if defaults is not None and defaults.link_preview_options:
            # As a dict once, not a TelegramObject converted for every message.
            self._params["link_preview_options"] = defaults.link_preview_options.to_dict()
        # Telegram's paid broadcasts: up to 1000 messages/s for 0.1 Stars per message above the
        # free limit. The rate limiter then applies its 1000/s limit instead of the free 30/s.
        if paid_broadcast:
            self._params["allow_paid_broadcast"] = True
        self._limiter: BaseRateLimiter[Any] | None = getattr(bot, "rate_limiter", None)

    async def send(self, chat: ChatAddress, html: str) -> SendOutcome:
        params: dict[str, Any] = {"chat_id": chat.chat_id, "text": html, **self._params}
        if chat.thread_id is not None:
            params["message_thread_id"] = chat.thread_id
        if chat.silent:  # the chat chose silent pushes in /settings
            params["disable_notification"] = True
        try:
            result = await self._post("sendMessage", params)
        except TelegramError as exc:
            return outcome_of(exc)
        return Sent(int(result["message_id"]))

    async def edit(self, chat: ChatAddress, message_id: int, html: str) -> SendOutcome:
        """editMessageText, as send() sends: same defaults, rate limiter and error mapping."""
        params: dict[str, Any] = {"chat_id": chat.chat_id, "message_id": message_id,
                                  "text": html}  # fmt: skip
        for key in ("parse_mode", "link_preview_options"):  # not paid: edits are not broadcasts
            if key in self._params:
                params[key] = self._params[key]
        try:
            await self._post("editMessageText", params)
        except BadRequest as exc:
            # Already the corrected text (an edit repeated after a crash): that is success.
            if "message is not modified" in exc.message.lower():
                return Sent(message_id)
            return outcome_of(exc)
        except TelegramError as exc:
            return outcome_of(exc)
        return Sent(message_id)

    async def _post(self, endpoint: str, params: dict[str, Any]) -> Any:
        """The bot's request layer and rate limiter, without python-telegram-bot's methods.

        Bot.do_api_request would add defaults, build a RequestParameter per field and (with
        send_message) a Message from the answer: ~20% of the bot's CPU per message at
        1,000/s, for fields that are plain JSON already and the one answer field kept
        (docs/benchmarks.md). BaseRequest.post still maps every answer to PTB's errors
        (RetryAfter, Forbidden, ...) and returns the answer's `result`.
        """
        post = self.bot.request.post
        url = f"{self.bot.base_url}/{endpoint}"
        data = PlainRequestData(params)
        if self._limiter is None:
            return await post(url, request_data=data)
        # Pushes wait behind replies: nobody is watching the clock for them.
        return await self._limiter.process_request(
            callback=post, args=(url,), kwargs={"request_data": data}, endpoint=endpoint,
            data=params, rate_limit_args=Priority.PUSH,
        )  # fmt: skip

    async def reachable(self) -> bool:
        """getMe answers: the Bot API is up, so a message that keeps failing fails on its own."""
        try:
            await self.bot.get_me()
        except TelegramError:
            return False
        return True


# ---- rate limiting ---------------------------------------------------------------------------


class Priority(IntEnum):
    """`rate_limit_args` of a request: who waits for it. Never 0: PTB drops falsy values."""

    REPLY = 1  # someone sent a command and waits for the answer (also: no rate_limit_args)
    PUSH = 2  # the delivery engine's fan-out


def priority_args(bot: Bot, priority: Priority) -> dict[str, Any]:
    """`rate_limit_args=priority`, when the bot has a rate limiter (PTB refuses it otherwise)."""
    if isinstance(bot, ExtBot) and bot.rate_limiter is not None:
        return {"rate_limit_args": priority}
    return {}


ChatKey = int | str
PAID_TICK = 0.01  # s: paid sends leave in groups on these ticks
WINDOW = 1.0  # s: Telegram's limits are per second


class NotSent(NetworkError):
    """The bot is stopping: a request still waiting for its turn is dropped, not sent."""


# When the update being handled came in (time.monotonic()); set by the update processor.
# Replies are ordered by it: a handler that waited for the database must not lose its place
# to answers of questions asked after it.
asked_at: ContextVar[float | None] = ContextVar("asked_at", default=None)


@dataclass(eq=False, slots=True)
class _Ticket:
    arrived: float  # time.monotonic()
    turn: asyncio.Future[None] = field(default_factory=lambda: _loop().create_future())


class _SecondCount:
    """At most `limit` requests counted at once; a request counts from its start until its
    answer or `reach` seconds after its start, whichever comes first, and one second more.

    A request reaches Telegram between its start and its answer, and over a working network
    within `reach` of its start, so no second at Telegram's end sees more than `limit`, however
    a busy machine bunches them on the way (counting starts alone, up to 1,058 paid and 31 free
    ones arrived within one second). `reach` keeps Telegram's own time to answer (100 ms or
    more) from slowing the pace: counted until the answer, a request 200 ms long would hold
    1,000/s down to 833/s.
    """

    __slots__ = ("counted", "in_flight", "limit", "reach")

    def __init__(self, limit: int, reach: float) -> None:
        self.limit = limit
        self.reach = reach
        self.in_flight = 0
        self.counted: list[float] = []  # a heap: when each finished request stops counting, -1 s

    def room(self, now: float) -> int:
        while self.counted and self.counted[0] <= now - WINDOW:
            heapq.heappop(self.counted)
        return self.limit - self.in_flight - len(self.counted)

    def retry_in(self, now: float, default: float) -> float:
        """When room() may be positive again (or `default`, while all are in flight)."""
        return max(0.001, self.counted[0] + WINDOW - now) if self.counted else default

    def answer(self, started: float) -> None:
        """A request started at `started` is over (answered, failed or cancelled)."""
        self.in_flight -= 1
        heapq.heappush(self.counted, min(time.monotonic(), started + self.reach))

    async def wait(self, turn: asyncio.Future[None]) -> None:
        """Await a turn that a dispatcher counted (in_flight) when it gave it."""
        try:
            await turn  # a cancelled caller cancels the future; the dispatcher skips it
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self.in_flight -= 1  # its turn came, but it sends nothing
            raise


class FairRateLimiter(BaseRateLimiter[Priority]):
    """Telegram's limits as one budget, spent on replies first.

    - Overall: one message every 1/max_rate s (a bucket of one: after a pause python-telegram-
      bot's AIORateLimiter let twice the limit go in one second, docs/benchmarks.md), and never
      more than max_rate counted within a second (_SecondCount: from the start until the answer
      or `reach` later).
    - Groups and channels: group_max_rate per group_time_period (aiolimiter, as AIORateLimiter).
    - Per chat: about one message a second, with a burst of `per_chat_burst` (GCRA), so that a
      chat flooding commands gets its answers at Telegram's per-chat pace and no 429s.
    - Order: replies (Priority.REPLY, or no rate_limit_args) before pushes (Priority.PUSH), but
      pushes get one slot in every `push_every` while both wait, so a command flood slows a
      fan-out and never stops it. Replies are queued per chat, in order within a chat; the next
      chat served is the one that asked first (`asked_at`), until its wait passes
      `congested_after`: then the one that asked last goes first. In a burst of thousands of
      commands the backlog takes as long either way, but a user who asks during it is answered
      at once instead of after everyone else (adaptive LIFO).
    - RetryAfter is not retried (AIORateLimiter's max_retries=0): the caller decides; the
      delivery engine waits as told.
    - Only messages count: requests without a chat_id and get* methods (getChatMember) pass
      straight through. Paid broadcasts skip the free budget (and so never delay a reply):
      they have their own 1000/s, and the per-group limit still applies.
    """

    def __init__(
        self,
        max_rate: float = FloodLimit.MESSAGES_PER_SECOND,
        *,
        group_max_rate: float = FloodLimit.MESSAGES_PER_MINUTE_PER_GROUP,
        group_time_period: float = 60,
        per_chat_interval: float = 1.0,
        per_chat_burst: int = 3,
        push_every: int = 6,
        congested_after: float = 1.0,
        paid_rate: float = 0.98 * FloodLimit.PAID_MESSAGES_PER_SECOND,
        paid_per_second: int = FloodLimit.PAID_MESSAGES_PER_SECOND,
        reach: float = 0.02,
        paid_reach: float = 0.05,
    ) -> None:
        self.interval = 1 / max_rate
        self.group_max_rate = group_max_rate
        self.group_time_period = group_time_period
        self.per_chat_interval = per_chat_interval
        self.per_chat_burst = per_chat_burst
        self.push_every = push_every
        self.congested_after = congested_after
        self._groups: dict[ChatKey, AsyncLimiter] = {}
        # Paid broadcasts: their own budget, apart from the free one, so a paid fan-out never
        # delays a reply. Two limits, kept by one dispatcher (_dispatch_paid):
        # - the pace: a bucket of paid_rate/s (2% under Telegram's 1000/s) holding two ticks'
        #   worth, emptied every PAID_TICK. (A slot per request, as before, let a stalled event
        #   loop release every slot it had missed at once.)
        # - the count: a send starts only while fewer than paid_per_second are counted within
        #   the last second (_SecondCount: from the start until the answer or paid_reach later).
        self._paid_rate = paid_rate
        # (At least one message more than a tick brings: a slow rate must not lose its fractions.)
        self._paid_burst = max(2 * paid_rate * PAID_TICK, 1 + paid_rate * PAID_TICK)
        self._paid_tokens = self._paid_burst
        self._paid_refilled = 0.0  # time.monotonic() of the last refill
        self._paid_count = _SecondCount(paid_per_second, paid_reach)
        self._paid_waiting: deque[asyncio.Future[None]] = deque()
        self._paid_dispatcher: asyncio.Task[None] | None = None
        self._queues: dict[Priority, dict[ChatKey, deque[_Ticket]]] = {p: {} for p in Priority}
        self._chat_tat: dict[ChatKey, float] = {}  # GCRA: each chat's theoretical arrival time
        self._next_slot = 0.0
        self._free_count = _SecondCount(max(1, int(max_rate)), reach)  # as _paid_count
        self._replies_in_a_row = 0
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._closed = False

    async def initialize(self) -> None:
        """The dispatcher starts with the first request, on whatever loop that runs."""

    def close(self) -> None:
        """Stopping: whatever waits for its turn fails at once with NotSent, and so does every
        later request, so that a backlog of thousands of replies does not hold up the stop."""
        self._closed = True
        for queues in self._queues.values():
            for queue in queues.values():
                for ticket in queue:
                    if not ticket.turn.done():
                        ticket.turn.set_exception(NotSent("the bot is stopping"))
            queues.clear()
        for turn in self._paid_waiting:
            if not turn.done():
                turn.set_exception(NotSent("the bot is stopping"))
        self._paid_waiting.clear()

    async def shutdown(self) -> None:
        self.close()
        for task in (self._dispatcher, self._paid_dispatcher):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._dispatcher = self._paid_dispatcher = None

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: Priority | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        chat_id = data.get("chat_id")
        if chat_id is None or endpoint.lower().startswith("get"):
            return await callback(*args, **kwargs)
        chat = _chat_key(chat_id)
        group = self._group_limiter(chat)
        async with group if group else contextlib.nullcontext():
            if data.get("allow_paid_broadcast"):  # still 20/min per group: that is not paid off
                await self._paid_turn()
                count = self._paid_count
            else:
                await self._my_turn(chat, Priority(rate_limit_args or Priority.REPLY))
                count = self._free_count
            started = time.monotonic()
            try:
                return await callback(*args, **kwargs)
            finally:
                count.answer(started)

    async def _paid_turn(self) -> None:
        if self._closed:
            raise NotSent("the bot is stopping")
        turn: asyncio.Future[None] = _loop().create_future()
        self._paid_waiting.append(turn)
        if self._paid_dispatcher is None or self._paid_dispatcher.done():
            self._paid_dispatcher = asyncio.create_task(self._dispatch_paid(), name="paid-limiter")
        await self._paid_count.wait(turn)

    async def _dispatch_paid(self) -> None:
        """Each PAID_TICK, the waiting paid sends the bucket and the count allow, in order.

        One wake-up per tick, not per message (a wake-up per message cost ~0.3 ms of CPU at
        1000/s). After a stall, what the bucket holds goes (two ticks' worth), not the backlog.
        """
        waiting, count = self._paid_waiting, self._paid_count
        while waiting:
            try:
                now = time.monotonic()
                self._paid_tokens = min(
                    self._paid_burst,
                    self._paid_tokens + (now - self._paid_refilled) * self._paid_rate,
                )
                self._paid_refilled = now
                room = count.room(now)
                while waiting and self._paid_tokens >= 1 and room > 0:
                    turn = waiting.popleft()
                    if turn.done():  # its caller gave up (cancelled)
                        continue
                    turn.set_result(None)
                    count.in_flight += 1
                    self._paid_tokens -= 1
                    room -= 1
                if waiting:
                    await asyncio.sleep(PAID_TICK - now % PAID_TICK)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop every paid message
                logger.exception("rate limiter: dispatching paid sends failed")
                await asyncio.sleep(PAID_TICK)

    @property
    def waiting(self) -> dict[Priority, int]:
        """Requests waiting for their turn, per priority (for logs and benchmarks)."""
        return {p: sum(len(q) for q in queues.values()) for p, queues in self._queues.items()}

    def _group_limiter(self, chat: ChatKey) -> AsyncLimiter | None:
        # Negative ids and @names are groups or channels (the same guess as AIORateLimiter).
        if not self.group_max_rate or (isinstance(chat, int) and chat > 0):
            return None
        if len(self._groups) > 512:  # forget groups that have their whole budget back
            for key, limiter in list(self._groups.items()):
                if limiter.has_capacity(limiter.max_rate):
                    del self._groups[key]
        limiter = self._groups.get(chat)
        if limiter is None:
            limiter = self._groups[chat] = AsyncLimiter(self.group_max_rate, self.group_time_period)
        return limiter

    async def _my_turn(self, chat: ChatKey, priority: Priority) -> None:
        if self._closed:
            raise NotSent("the bot is stopping")
        now = time.monotonic()
        ticket = _Ticket(asked_at.get() or now if priority == Priority.REPLY else now)
        self._queues[priority].setdefault(chat, deque()).append(ticket)
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch(), name="rate-limiter")
        self._wake.set()
        await self._free_count.wait(ticket.turn)

    async def _dispatch(self) -> None:
        while True:
            try:
                now = time.monotonic()
                if now < self._next_slot:
                    await asyncio.sleep(self._next_slot - now)
                    continue
                if self._free_count.room(now) <= 0:
                    await asyncio.sleep(self._free_count.retry_in(now, self.interval))
                    continue
                self._wake.clear()  # before looking, so that a request arriving now wakes us
                ticket, wake_at = self._pick(now)
                if ticket is None:
                    timeout = None if wake_at is None else max(0.0, wake_at - now)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout)
                    continue
                ticket.turn.set_result(None)
                self._free_count.in_flight += 1
                self._next_slot = now + self.interval
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop every message the bot sends
                logger.exception("rate limiter: dispatching failed")
                await asyncio.sleep(self.interval)

    def _pick(self, now: float) -> tuple[_Ticket | None, float | None]:
        """The request whose turn it is now, else when a waiting chat may send again."""
        wake_at: float | None = None
        ready: dict[Priority, list[tuple[ChatKey, deque[_Ticket]]]] = {}
        for priority, queues in self._queues.items():
            ready[priority] = []
            for chat, queue in list(queues.items()):
                while queue and queue[0].turn.done():  # its caller gave up (cancelled)
                    queue.popleft()
                if not queue:
                    del queues[chat]
                    continue
                at = self._chat_ready_at(chat)
                if at <= now:
                    ready[priority].append((chat, queue))
                else:
                    wake_at = at if wake_at is None else min(wake_at, at)
        replies, pushes = ready[Priority.REPLY], ready[Priority.PUSH]
        if pushes and (not replies or self._replies_in_a_row >= self.push_every - 1):
            priority = Priority.PUSH
            chat, queue = min(pushes, key=_head_arrival)
            self._replies_in_a_row = 0
        elif replies:
            priority = Priority.REPLY
            chat, queue = min(replies, key=_head_arrival)
            if now - queue[0].arrived > self.congested_after:
                chat, queue = max(replies, key=_head_arrival)
            self._replies_in_a_row += 1
        else:
            return None, wake_at
        ticket = queue.popleft()
        if not queue:
            del self._queues[priority][chat]
        self._spend_chat(chat, now)
        return ticket, None

    def _chat_ready_at(self, chat: ChatKey) -> float:
        tat = self._chat_tat.get(chat)
        if tat is None:
            return 0.0
        return tat - (self.per_chat_burst - 1) * self.per_chat_interval

    def _spend_chat(self, chat: ChatKey, now: float) -> None:
        if not self.per_chat_interval:
            return
        self._chat_tat[chat] = max(self._chat_tat.get(chat, now), now) + self.per_chat_interval
        if len(self._chat_tat) > 1024:  # forget chats whose whole burst is back
            self._chat_tat = {c: t for c, t in self._chat_tat.items() if t > now}


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def _head_arrival(item: tuple[ChatKey, deque[_Ticket]]) -> float:
    return item[1][0].arrived


def _chat_key(chat_id: object) -> ChatKey:
    if isinstance(chat_id, int):
        return chat_id
    with contextlib.suppress(ValueError, TypeError):
        return int(str(chat_id))
    return str(chat_id)
