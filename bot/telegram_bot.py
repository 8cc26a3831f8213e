"""The Telegram edge: the token, the Application, thin command handlers, and the run loop.

Handlers only find out who asks and where, then pass on the replies of bot.commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import inspect
import logging
import os
import signal
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any

from telegram import Bot, BotCommand, BotCommandScopeChat, LinkPreviewOptions, Message, Update
from telegram.constants import ChatMemberStatus, ChatType, FloodLimit, ParseMode
from telegram.error import Forbidden, InvalidToken, TelegramError
from telegram.ext import (
    Application,
    BaseUpdateProcessor,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    filters,
)

from bot import commands
from bot.config import Config
from bot.fetch import make_client
from bot.logs import secret_filter
from bot.metrics import metrics_for
from bot.model import StoredStatement
from bot.service import Service, utc_now
from bot.store import CONSOLE_CHAT_ID, AsyncStore, Store, StoreUnavailable
from bot.telegram_request import AiohttpRequest
from bot.telegram_sender import (
    FairRateLimiter,
    NotSent,
    Priority,
    TelegramSender,
    asked_at,
    priority_args,
)

logger = logging.getLogger(__name__)

TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
TOKEN_FILE_ENV = "TELEGRAM_BOT_TOKEN_FILE"
LONG_POLL_SECONDS = 10  # getUpdates timeout
PER_CHAT_INTERVAL = 1.0  # Telegram allows about one message a second to one chat
# Updates handled at once. Handlers mostly wait for their turn to send; a bound below a burst's
# size would queue a later /latest behind the whole burst again (issue 9: 100 s).
MAX_CONCURRENT_UPDATES = 10_000
ERROR_NOTICE_EVERY = 600.0  # s: at most one admin notice per kind of error (a burst repeats it)


class TokenError(Exception):
    """No usable token: the message says what to set."""


def read_token(env: Mapping[str, str] | None = None) -> str:
    """The bot token from $TELEGRAM_BOT_TOKEN, else from the file $TELEGRAM_BOT_TOKEN_FILE names."""
    env = os.environ if env is None else env
    token = env.get(TOKEN_ENV, "").strip()
    if not token and env.get(TOKEN_FILE_ENV):
        path = Path(env[TOKEN_FILE_ENV])
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TokenError(f"cannot read {TOKEN_FILE_ENV}={path}: {exc.strerror}") from None
    if not token:
        raise TokenError(
            f"no bot token: set {TOKEN_ENV} (or {TOKEN_FILE_ENV} to a file holding it); "
            "@BotFather gives you one. Without Telegram, try: statement-bot run --console"
        )
    if any(c.isspace() for c in token):
        raise TokenError(f"the token in {TOKEN_ENV} contains spaces; check the value")
    return token


class Handlers:
    """Every update the bot reacts to; one method per command."""

    def __init__(self, config: Config, db: AsyncStore, service: Service) -> None:
        self.config = config
        self.db = db
        self.service = service
        self._last_notice: dict[str, float] = {}  # error type -> time.monotonic() of its notice

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/start: subscribe this chat (or topic) and show the newest statement."""
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None:
            return
        if not await self._may_manage(update, context):
            await self._reply(message, commands.group_admins_only_reply("subscribe"))
            return
        now = utc_now()
        title = chat.title or chat.username or chat.full_name or ""
        thread_id = message.message_thread_id if message.is_topic_message else None

        def subscribe(s: Store) -> tuple[bool, list[StoredStatement]]:
            newly = s.subscribe(chat.id, chat.type, now, title=title, thread_id=thread_id)
            return newly, s.latest(1)

        newly, newest = await self.db.write(subscribe)
        if newly:
            logger.info("chat %s (%s) subscribed", chat.id, chat.type)
        reply = commands.start_reply(newly, newest[0] if newest else None, self.config, now)
        await self._reply(message, reply)

    async def stop(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/stop: unsubscribe this chat."""
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None:
            return
        if not await self._may_manage(update, context):
            await self._reply(message, commands.group_admins_only_reply("unsubscribe"))
            return
        now = utc_now()
        was_active = await self.db.write(lambda s: s.deactivate(chat.id, "/stop", now))
        if was_active:
            logger.info("chat %s unsubscribed", chat.id)
        await self._reply(message, commands.stop_reply(was_active))

    async def latest(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/latest [N]: the newest statement, or a list of the newest N."""
        if update.effective_message:
            now, args = utc_now(), context.args or []
            reply = await self.db.read(lambda s: commands.latest_reply(s, self.config, now, args))
            await self._reply(update.effective_message, reply)

    async def counters(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/counters: the date, the clocks and the day counters."""
        if update.effective_message:
            await self._reply(
                update.effective_message, commands.counters_reply(self.config, utc_now())
            )

    async def help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/help: what the bot does and its commands."""
        message, chat = update.effective_message, update.effective_chat
        if message and chat:
            # In a group, listing the admin commands would tell everyone who the admins are.
            is_admin = self._is_admin(update) and chat.type == ChatType.PRIVATE
            await self._reply(message, commands.help_reply(self.config, is_admin=is_admin))

    # /status and /poll reach these only from admins (a filter on their ids, add_handlers);
    # anyone else's fall through to `unknown`.

    async def status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/status (admins): feeds, subscribers, deliveries."""
        status = await self.db.read(lambda s: s.status())
        reply = commands.status_reply(status, self.config, utc_now())
        await self._to_admin(update, context, reply, "the status")

    async def poll(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/poll (admins): poll every feed now."""
        reply = commands.poll_reply(await self.service.poll_all(force=True))
        await self._to_admin(update, context, reply, "the poll results")

    async def _to_admin(
        self, update: Update, context: ContextTypes.DEFAULT_TYPE, text: str, what: str
    ) -> None:
        """The answer to an admin command goes to the admin's private chat, never to a group,
        where every member would read the subscriber counts and feed errors."""
        message, chat, user = update.effective_message, update.effective_chat, update.effective_user
        if message is None or chat is None or user is None:
            return
        if chat.type == ChatType.PRIVATE:
            await self._reply(message, text)
            return
        try:
            await _send(context.bot, user.id, text)
        except Forbidden:  # the admin never opened a private chat with the bot (or blocked it)
            await self._reply(message, open_private_chat_reply(context.bot.username))
            return
        await self._reply(message, sent_privately_reply(what))

    async def unknown(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Any other command addressed to this bot gets a short hint."""
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None or not message.text:
            return
        command = message.text.split()[0]
        addressed_to = command.partition("@")[2].lower()
        if addressed_to and addressed_to != (context.bot.username or "").lower():
            return  # meant for another bot in the group
        if chat.type != ChatType.PRIVATE and not addressed_to:
            return  # an unaddressed /command in a group may be for another bot
        await self._reply(message, commands.unknown_command_reply())

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log with context; the user gets one line, the admins the error's name and text."""
        error = context.error
        if isinstance(error, NotSent):
            return  # stopping: an answer still waiting for its turn was dropped on purpose
        if not isinstance(update, Update):
            # Polling hiccups (network errors while fetching updates) are retried by the library.
            logger.warning("error outside an update: %s: %s", type(error).__name__, error)
            return
        chat_id = update.effective_chat.id if update.effective_chat else None
        if isinstance(error, StoreUnavailable):  # not a bug: one line, no traceback
            logger.error("update %s in chat %s: database unavailable: %s", update.update_id,
                         chat_id, error)  # fmt: skip
        else:
            logger.error("update %s in chat %s failed", update.update_id, chat_id, exc_info=error)
        if update.effective_message:
            with contextlib.suppress(TelegramError):
                await self._reply(update.effective_message, commands.failure_reply())
        kind = type(error).__name__
        last = self._last_notice.get(kind)
        if last is not None and time.monotonic() - last < ERROR_NOTICE_EVERY:
            return  # a burst of updates failing alike is one notice, not one per update
        self._last_notice[kind] = time.monotonic()
        await self.service.notify_admins(
            f"Error handling update {update.update_id} in chat {chat_id}: {kind}: {error}"
        )

    def _is_admin(self, update: Update) -> bool:
        user = update.effective_user
        return user is not None and user.id in self.config.admins

    async def _may_manage(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
        """Anyone in a private chat; in groups only the group's administrators."""
        chat, user, message = update.effective_chat, update.effective_user, update.effective_message
        if chat is None or chat.type == ChatType.PRIVATE:
            return True
        if message and message.sender_chat and message.sender_chat.id == chat.id:
            return True  # an anonymous administrator speaks as the group itself
        if chat.type == ChatType.CHANNEL:
            return True  # only administrators can post in a channel
        if user is None:
            return False
        member = await context.bot.get_chat_member(chat.id, user.id)
        return member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)

    async def _reply(self, message: Message, text: str) -> None:
        thread_id = message.message_thread_id if message.is_topic_message else None
        await _send(message.get_bot(), message.chat_id, text, thread_id)


async def _send(bot: Bot, chat_id: int, text: str, thread_id: int | None = None) -> None:
    """An answer to someone who is waiting for it: ahead of pushes in the rate limiter."""
    await bot.send_message(
        chat_id=chat_id,
        text=text,
        message_thread_id=thread_id,
        **priority_args(bot, Priority.REPLY),
    )


# Telegram-only wording (the console has no groups); TODO(lead): move next to the others in
# commands.py.
def sent_privately_reply(what: str) -> str:
    return f"Sent you {what} in a private chat."


def open_private_chat_reply(bot_username: str | None) -> str:
    who = f"@{bot_username}" if bot_username else "me"
    return f"Admin answers go to a private chat: open one with {who}, send /start, then ask again."


class PerChatOrder(BaseUpdateProcessor):
    """Updates from different chats are handled concurrently; one chat's one at a time, in the
    order they came (/start then /stop must leave the chat unsubscribed, and answer in order)."""

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}  # chat -> (lock, updates using it)
        self.closed = False
        self.skipped = 0  # updates not handled because the bot was stopping

    def close(self) -> None:
        """Stopping: updates still waiting for their chat's turn are skipped, not waited out."""
        self.closed = True

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        asked_at.set(time.monotonic())  # this task's context: the limiter orders replies by it
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        lock, users = self._locks.get(chat.id) or (asyncio.Lock(), 0)
        self._locks[chat.id] = (lock, users + 1)
        try:
            async with lock:  # asyncio.Lock wakes its waiters first come, first served
                if self.closed:
                    self.skipped += 1
                    if inspect.iscoroutine(coroutine):
                        coroutine.close()  # never started: no "never awaited" warning
                    return
                await coroutine
        finally:
            lock, users = self._locks[chat.id]
            if users == 1:
                del self._locks[chat.id]
            else:
                self._locks[chat.id] = (lock, users - 1)

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


def build_application(
    config: Config, token: str, *, max_rate: float | None = FloodLimit.MESSAGES_PER_SECOND
) -> Application:
    """The python-telegram-bot Application: HTML replies, Telegram's rate limits, our server.

    `max_rate` is the overall messages/s; None turns the rate limiter off (benchmarks only).
    """
    builder = (
        Application.builder()
        .token(token)
        .defaults(
            Defaults(
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=not config.link_previews),
            )
        )
        .concurrent_updates(PerChatOrder(MAX_CONCURRENT_UPDATES))
        # aiohttp under PTB: httpx's pool cost ~5 ms of CPU a message (docs/benchmarks.md).
        .request(AiohttpRequest())
        .get_updates_request(AiohttpRequest(1))
    )
    if max_rate:
        # 30 messages/s overall (a bucket of one message refilled every 1/max_rate s), 20/min
        # per group, replies ahead of pushes; RetryAfter is not retried: the delivery engine
        # waits as told and keeps the row in the outbox. See FairRateLimiter.
        builder = builder.rate_limiter(
            FairRateLimiter(max_rate, per_chat_interval=PER_CHAT_INTERVAL)
        )
    if config.api_base_url:
        builder = builder.base_url(config.api_base_url)
    return builder.build()


def add_handlers(app: Application, handlers: Handlers) -> None:
    """Everything the bot reacts to, in order."""
    new = filters.UpdateType.MESSAGE  # not edits: editing an old /poll must not run it again
    app.add_handler(CommandHandler("start", handlers.start, new))
    app.add_handler(CommandHandler("stop", handlers.stop, new))
    app.add_handler(CommandHandler("latest", handlers.latest, new))
    app.add_handler(CommandHandler("counters", handlers.counters, new))
    app.add_handler(CommandHandler("help", handlers.help, new))
    # Only the admins' ids reach these; anyone else's /status falls through to `unknown`.
    admins = filters.User(user_id=handlers.config.admins)  # no admins: matches nobody
    app.add_handler(CommandHandler("status", handlers.status, new & admins))
    # A slow feed can hold /poll for a while; the admin's other commands must not wait on it.
    app.add_handler(CommandHandler("poll", handlers.poll, new & admins, block=False))
    app.add_handler(MessageHandler(new & filters.COMMAND, handlers.unknown))  # after all others
    app.add_error_handler(handlers.on_error)


async def run_telegram(config: Config, token: str) -> int:
    """Run until SIGTERM/SIGINT: long polling for commands, scheduled polls, the outbox."""
    secret_filter.add(token)
    app = build_application(config, token)
    metrics = metrics_for(config)
    db = AsyncStore.open(config.database_path)
    client = make_client(config.fetch_timeout)
    try:
        metrics.start()  # before logging in: a port in use is MetricsError, exit 6 in main()
        try:
            await app.initialize()  # getMe: checks the token
        except InvalidToken:
            logger.error("Telegram rejected the token: check %s", TOKEN_ENV)
            return 2
        except TelegramError as exc:
            logger.error("cannot reach the Bot API: %s: %s", type(exc).__name__, exc)
            return 1
        logger.info("logged in as @%s", app.bot.username)

        async def notify_admins(text: str) -> None:
            for admin in config.admins:
                try:
                    await app.bot.send_message(admin, html.escape(text, quote=False))
                except TelegramError as exc:
                    logger.warning("could not tell admin %s: %s", admin, exc)

        service = Service(
            config,
            db,
            client,
            TelegramSender(app.bot, paid_broadcast=config.paid_broadcast),
            notify_admins,
            per_chat_interval=PER_CHAT_INTERVAL,
            metrics=metrics,
        )
        await db.write(lambda s: _sync_subscribers(config, s))
        released = await db.write(lambda s: s.release_in_flight())
        if released:
            logger.warning("%d messages were in flight at the last stop; sending them again",
                           released)  # fmt: skip
        add_handlers(app, Handlers(config, db, service))

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)

        assert app.updater is not None
        try:
            await _register_commands(app, config)
            await app.updater.start_polling(timeout=LONG_POLL_SECONDS, bootstrap_retries=3)
        except InvalidToken:
            logger.error("Telegram rejected the token: check %s", TOKEN_ENV)
            return 2
        except TelegramError as exc:
            logger.error("cannot reach the Bot API: %s: %s", type(exc).__name__, exc)
            return 1
        await app.start()
        service.start_scheduler()
        service.kick_delivery()  # whatever was pending before a restart
        subscribers = await db.read(lambda s: s.active_subscriber_count())
        logger.info("running: %d feeds, %d subscribers", len(config.feeds), subscribers)
        revoked = await _until_stopped_or_revoked(app, stop, config.telegram_check_interval)
        logger.info("stopping")
        if revoked:
            # The updater's last getUpdates on stop must fail without a token; its traceback
            # would only hide the one line that says what to do.
            logging.getLogger("telegram.ext.Updater").setLevel(logging.CRITICAL)
        await service.stop()
        await app.updater.stop()
        _stop_answering(app)
        await app.stop()
        processor = app.update_processor
        skipped = processor.skipped if isinstance(processor, PerChatOrder) else 0
        if skipped:
            logger.warning("stopped with %d commands unanswered (a burst was still queued)",
                           skipped)  # fmt: skip
        if revoked:
            logger.error("Telegram no longer accepts the token (revoked at @BotFather?): "
                         "exiting; set a new %s", TOKEN_ENV)  # fmt: skip
            return 2
        return 0
    finally:
        with contextlib.suppress(Exception):
            await app.shutdown()
        metrics.stop()
        await client.aclose()
        db.close()


def _stop_answering(app: Application) -> None:
    """Drop what still waits, so a stop takes seconds even during a burst of commands (at one
    answer a second, a chat that sent 3,000 would otherwise hold it for almost an hour): queued
    updates are skipped, answers waiting for a slot fail as NotSent."""
    if isinstance(app.bot.rate_limiter, FairRateLimiter):
        app.bot.rate_limiter.close()
    if isinstance(app.update_processor, PerChatOrder):
        app.update_processor.close()


async def _until_stopped_or_revoked(app: Application, stop: asyncio.Event, every: float) -> bool:
    """Wait for SIGTERM/SIGINT; True if Telegram stops accepting the token meanwhile.

    python-telegram-bot's polling gives up quietly on a revoked token, so ask getMe now and
    then: a bot that cannot work must exit, not look alive.
    """
    while True:
        try:
            await asyncio.wait_for(stop.wait(), every)
            return False
        except TimeoutError:
            pass
        try:
            await app.bot.get_me()
        except InvalidToken:
            return True
        except TelegramError:
            pass  # an outage: polling and the delivery engine ride it out


async def _register_commands(app: Application, config: Config) -> None:
    """Everyone's menu shows the public commands; each admin's private chat shows theirs too."""
    await app.bot.set_my_commands([BotCommand(n, t) for n, t in commands.PUBLIC_COMMANDS])
    admin_menu = [BotCommand(n, t) for n, t in commands.PUBLIC_COMMANDS + commands.ADMIN_COMMANDS]
    for admin in config.admins:
        try:
            await app.bot.set_my_commands(admin_menu, scope=BotCommandScopeChat(admin))
        except TelegramError as exc:  # e.g. the admin never opened a chat with the bot
            logger.warning("could not set the admin menu for %s: %s", admin, exc)


def _sync_subscribers(config: Config, store: Store) -> None:
    """Configured channels get every push; channels dropped from the config stop getting them."""
    now = utc_now()
    store.deactivate(CONSOLE_CHAT_ID, "console closed", now)
    for channel in config.channels:
        store.subscribe(channel, "channel", now, title=str(channel))
    configured = {str(c) for c in config.channels}
    for chat_id in store.active_chat_ids("channel"):
        if str(chat_id) not in configured:
            store.deactivate(chat_id, "removed from the config", now)
