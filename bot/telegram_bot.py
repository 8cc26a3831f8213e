"""The Telegram edge: the token, the Application, thin command handlers, and the run loop.

Handlers only find out who asks and where, then pass on the replies of bot.commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from telegram import BotCommand, BotCommandScopeChat, LinkPreviewOptions, Message, Update
from telegram.constants import ChatMemberStatus, ChatType, FloodLimit, ParseMode
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
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
from bot.service import Service, utc_now
from bot.store import CONSOLE_CHAT_ID, Store
from bot.telegram_sender import TelegramSender

logger = logging.getLogger(__name__)

TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
TOKEN_FILE_ENV = "TELEGRAM_BOT_TOKEN_FILE"
LONG_POLL_SECONDS = 10  # getUpdates timeout
PER_CHAT_INTERVAL = 1.0  # Telegram allows about one message a second to one chat


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

    def __init__(self, config: Config, store: Store, service: Service) -> None:
        self.config = config
        self.store = store
        self.service = service

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/start: subscribe this chat (or topic) and show the newest statement."""
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None:
            return
        if not await self._may_manage(update, context):
            await self._reply(message, commands.group_admins_only_reply("subscribe"))
            return
        now = utc_now()
        newly = self.store.subscribe(
            chat.id,
            chat.type,
            now,
            title=chat.title or chat.username or chat.full_name or "",
            thread_id=message.message_thread_id if message.is_topic_message else None,
        )
        if newly:
            logger.info("chat %s (%s) subscribed", chat.id, chat.type)
        newest = self.store.latest(1)
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
        was_active = self.store.deactivate(chat.id, "/stop", utc_now())
        if was_active:
            logger.info("chat %s unsubscribed", chat.id)
        await self._reply(message, commands.stop_reply(was_active))

    async def latest(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/latest [N]: the newest statement, or a list of the newest N."""
        if update.effective_message:
            reply = commands.latest_reply(self.store, self.config, utc_now(), context.args or [])
            await self._reply(update.effective_message, reply)

    async def counters(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/counters: the date, the clocks and the day counters."""
        if update.effective_message:
            await self._reply(
                update.effective_message, commands.counters_reply(self.config, utc_now())
            )

    async def help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/help: what the bot does and its commands."""
        if update.effective_message:
            reply = commands.help_reply(self.config, is_admin=self._is_admin(update))
            await self._reply(update.effective_message, reply)

    async def status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/status (admins): feeds, subscribers, deliveries."""

        async def reply() -> str:
            return commands.status_reply(self.store.status(), self.config, utc_now())

        await self._for_admins(update, context, reply)

    async def poll(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/poll (admins): poll every feed now."""

        async def reply() -> str:
            return commands.poll_reply(await self.service.poll_all(force=True))

        await self._for_admins(update, context, reply)

    async def _for_admins(
        self,
        update: Update,
        context: ContextTypes.DEFAULT_TYPE,
        reply: Callable[[], Awaitable[str]],
    ) -> None:
        """Admins get the reply; anyone else the same answer as for an unknown command."""
        if update.effective_message is None:
            return
        if not self._is_admin(update):
            await self.unknown(update, context)
            return
        await self._reply(update.effective_message, await reply())

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
        if not isinstance(update, Update):
            # Polling hiccups (network errors while fetching updates) are retried by the library.
            logger.warning("error outside an update: %s: %s", type(error).__name__, error)
            return
        chat_id = update.effective_chat.id if update.effective_chat else None
        logger.error("update %s in chat %s failed", update.update_id, chat_id, exc_info=error)
        if update.effective_message:
            with contextlib.suppress(TelegramError):
                await self._reply(update.effective_message, commands.failure_reply())
        await self.service.notify_admins(
            f"Error handling update {update.update_id} in chat {chat_id}: "
            f"{type(error).__name__}: {error}"
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
        await message.get_bot().send_message(
            chat_id=message.chat_id,
            text=text,
            message_thread_id=message.message_thread_id if message.is_topic_message else None,
        )


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
    )
    if max_rate:
        # 30 messages/s overall, 20/min per group. RetryAfter is not retried here: the delivery
        # engine waits as told and keeps the row in the outbox. The overall limit is a bucket of
        # one message refilled every 1/max_rate s: with a bucket of max_rate (PTB's default) the
        # bot sent twice the limit in the first second after a pause, and a server that counts
        # per second answered 429s that cost a quarter of the throughput (docs/benchmarks.md).
        builder = builder.rate_limiter(
            AIORateLimiter(overall_max_rate=1, overall_time_period=1 / max_rate, max_retries=0)
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
    app.add_handler(CommandHandler("status", handlers.status, new))
    # A slow feed can hold /poll for a while; other users' commands must not wait behind it.
    app.add_handler(CommandHandler("poll", handlers.poll, new, block=False))
    app.add_handler(MessageHandler(new & filters.COMMAND, handlers.unknown))  # after all others
    app.add_error_handler(handlers.on_error)


async def run_telegram(config: Config, token: str) -> int:
    """Run until SIGTERM/SIGINT: long polling for commands, scheduled polls, the outbox."""
    secret_filter.add(token)
    app = build_application(config, token)
    store = Store.open(config.database_path)
    client = make_client(config.fetch_timeout)
    try:
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
            store,
            client,
            TelegramSender(app.bot),
            notify_admins,
            per_chat_interval=PER_CHAT_INTERVAL,
        )
        _sync_subscribers(config, store)
        released = store.release_in_flight()
        if released:
            logger.warning("%d messages were in flight at the last stop; sending them again",
                           released)  # fmt: skip
        add_handlers(app, Handlers(config, store, service))

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
        logger.info("running: %d feeds, %d subscribers", len(config.feeds),
                    store.active_subscriber_count())  # fmt: skip
        revoked = await _until_stopped_or_revoked(app, stop, config.telegram_check_interval)
        logger.info("stopping")
        if revoked:
            # The updater's last getUpdates on stop must fail without a token; its traceback
            # would only hide the one line that says what to do.
            logging.getLogger("telegram.ext.Updater").setLevel(logging.CRITICAL)
        await service.stop()
        await app.updater.stop()
        await app.stop()
        if revoked:
            logger.error("Telegram no longer accepts the token (revoked at @BotFather?): "
                         "exiting; set a new %s", TOKEN_ENV)  # fmt: skip
            return 2
        return 0
    finally:
        with contextlib.suppress(Exception):
            await app.shutdown()
        await client.aclose()
        store.close()


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
