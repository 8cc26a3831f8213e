"""The Sender for Telegram: send one message, translate Telegram's answer into a SendOutcome."""

from __future__ import annotations

import logging
import warnings
from datetime import timedelta

from telegram import Bot
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBDeprecationWarning

from bot.delivery import (
    ChatAddress,
    ChatGone,
    ChatMoved,
    PermanentFailure,
    SendOutcome,
    Sent,
    Throttled,
    TransientFailure,
)

logger = logging.getLogger(__name__)

# BadRequest texts (python-telegram-bot strips "Bad Request: " and capitalises) that mean the
# chat or its topic will never take a message again.
_GONE_BAD_REQUESTS = ("chat not found", "message thread not found", "topic_deleted",
                      "group chat was deactivated", "peer_id_invalid")  # fmt: skip


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
        # Telegram's paid broadcasts: up to 1000 messages/s, billed in Stars per message above
        # 30/s. python-telegram-bot's AIORateLimiter then applies its 1000/s limit instead.
        self._extra: dict[str, bool] = {"allow_paid_broadcast": True} if paid_broadcast else {}

    async def send(self, chat: ChatAddress, html: str) -> SendOutcome:
        try:
            message = await self.bot.send_message(
                chat_id=chat.chat_id, text=html, message_thread_id=chat.thread_id, **self._extra
            )
        except TelegramError as exc:
            return outcome_of(exc)
        return Sent(message.message_id)

    async def reachable(self) -> bool:
        """getMe answers: the Bot API is up, so a message that keeps failing fails on its own."""
        try:
            await self.bot.get_me()
        except TelegramError:
            return False
        return True
