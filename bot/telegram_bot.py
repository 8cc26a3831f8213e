"""The Telegram edge: the token, the Application, thin command handlers, and the run loop.

Handlers only find out who asks and where, then pass on the replies of bot.command_table; the
handlers themselves are made from that table (add_handlers).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import html
import inspect
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType, FloodLimit, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, TelegramError
from telegram.ext import (
    Application,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    filters,
)

from bot import command_table, commands, i18n
from bot.command_table import COMMANDS, Access, ChatRef, Request
from bot.config import Config
from bot.fetch import make_client
from bot.logs import secret_filter
from bot.metrics import metrics_for
from bot.model import ChatSettings, PollOutcome
from bot.pinned import PinnedPosts
from bot.service import Service, utc_now
from bot.store import AsyncStore, Store, StoreUnavailable
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
FREE_CONCURRENCY = 64  # messages in flight at once (each to a different chat)
PAID_CONCURRENCY = 256
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
    """Every update the bot reacts to: the command table's commands and the settings buttons."""

    def __init__(
        self, config: Config, db: AsyncStore, service: Service, pinned: PinnedPosts | None = None
    ) -> None:
        self.config = config
        self.db = db
        self.service = service
        self.pinned = pinned  # the daily pinned counters posts (bot.pinned_counters)
        self._last_notice: dict[str, float] = {}  # error type -> time.monotonic() of its notice

    async def command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Any command of bot.command_table: check who may, then send its reply in the chat's
        language. Bot-admin commands reach this only from the admins (a filter on their ids)."""
        message, chat, user = update.effective_message, update.effective_chat, update.effective_user
        if message is None or chat is None or not message.text:
            return
        command = command_table.find(message.text.split()[0])
        if command is None:
            return
        where = _chat_ref(chat, message)
        code = user.language_code if user else None
        language = await command_table.language_of(self.db, where, code, self.config)
        if command.access is Access.CHAT_ADMINS and not await self._may_manage(update, context):
            action = _REFUSED.get(command.name, "settings")
            await self._reply(message, commands.group_admins_only_reply(action, language))
            return
        if command.access is Access.CHAT_ADMINS:
            logger.info("chat %s (%s): /%s", chat.id, chat.type, command.name)
        if command.name == "settings" and not context.args:
            text, keyboard = await self._settings_view(where, language)
            await self._reply(message, text, keyboard)
            return
        if command.access is Access.BOT_ADMINS and chat.type != ChatType.PRIVATE and user:
            # The answer goes to the admin's private chat: in that chat's language.
            mine = ChatRef(user.id, ChatType.PRIVATE)
            private = await command_table.language_of(self.db, mine, code, self.config)
            request = self._request(update, context, where, private)
            await self._to_admin(update, context, await command_table.answer(command.name, request),
                                 language)  # fmt: skip
            return
        reply = await command_table.answer(
            command.name, self._request(update, context, where, language)
        )
        await self._reply(message, reply)

    def _request(
        self,
        update: Update,
        context: ContextTypes.DEFAULT_TYPE,
        where: ChatRef,
        language: str,
    ) -> Request:
        user = update.effective_user

        async def poll() -> Sequence[PollOutcome]:
            return await self.service.poll_all(force=True)

        return Request(
            self.config, self.db, where, utc_now(), language, tuple(context.args or ()),
            user_language_code=user.language_code if user else None,
            is_bot_admin=self._is_admin(update), poll=poll, fanouts=self.service.engine.progress,
            pin_now=self._pin_now(where, language),
        )  # fmt: skip

    def _pin_now(self, where: ChatRef, language: str) -> Callable[[], Awaitable[object]] | None:
        """/settings pinned on posts at once, as the button does."""
        pinned = self.pinned
        if pinned is None:
            return None

        async def pin_now() -> None:
            try:
                await pinned.refresh(where.chat_id, where.kind, language)
            except TelegramError as exc:  # saved all the same: midnight tries again
                logger.warning("chat %s: could not post the pinned counters: %s", where.chat_id,
                               exc)  # fmt: skip

        return pin_now

    async def _to_admin(
        self, update: Update, context: ContextTypes.DEFAULT_TYPE, text: str, language: str
    ) -> None:
        """The answer to an admin command asked in a group goes to the admin's private chat,
        never to the group, where every member would read the subscriber counts and feed
        errors; the group gets one line in its language."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        try:
            await _send(context.bot, user.id, text)
        except Forbidden:  # the admin never opened a private chat with the bot (or blocked it)
            await self._reply(
                message, commands.open_private_chat_reply(context.bot.username, language)
            )
            return
        await self._reply(message, commands.sent_privately_reply(language))

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
        await self._reply(message, commands.unknown_command_reply(await self._language(update)))

    # ---- /settings: one message, its buttons edit it in place ---------------------------------

    async def _settings_view(
        self, where: ChatRef, language: str
    ) -> tuple[str, InlineKeyboardMarkup]:
        """The settings message of a chat and its keyboard, in `language`."""

        def current(s: Store) -> tuple[ChatSettings, bool, bool]:
            return *command_table.current_settings(s, where), s.pinned_wanted(where.chat_id)

        settings, subscribed, pinned = await self.db.read(current)
        text = commands.settings_reply(settings, self.config, language, subscribed=subscribed,
                                       topic=where.topic)  # fmt: skip
        offer = self.pinned is not None and where.kind in _PINNED_KINDS
        return text, settings_keyboard(settings, self.config, language, where.chat_id,
                                       pinned=pinned if offer else None)  # fmt: skip

    async def settings_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A press on the settings keyboard: change one setting, edit the message in place.

        The callback data is the client's to forge: it is parsed, checked against the chat the
        message is in and the configured feeds, and the presser must be allowed; anything else
        gets a short answer and changes nothing."""
        query = update.callback_query
        if query is None:
            return
        message = query.message
        press = parse_settings_data(query.data or "")
        if not isinstance(message, Message) or press is None or press.chat_id != message.chat.id:
            await query.answer(i18n.t(i18n.language_of_user(query.from_user.language_code),
                                      "settings_stale"))  # fmt: skip
            return
        where = _chat_ref(message.chat, message)
        language = await command_table.language_of(
            self.db, where, query.from_user.language_code, self.config
        )
        if where.kind != ChatType.PRIVATE and not await _is_chat_admin(
            context.bot, message.chat.id, query.from_user.id
        ):
            await query.answer(commands.group_admins_only_reply("settings", language))
            return
        now = utc_now()
        if press.op in ("p1", "p0"):
            await self._pinned_press(query, where, press.op == "p1", language)
            return

        def change(s: Store) -> tuple[ChatSettings | None, str | None]:
            # Read and write in one turn of the writer: two admins pressing at once both count.
            settings = s.chat_settings(where.chat_id, where.thread_id)
            new, notice = apply_press(settings, press, self.config)
            if new is not None and new != settings:
                s.save_settings(where.chat_id, new, now, kind=where.kind, title=where.title,
                                thread_id=where.thread_id)  # fmt: skip
            return new, notice

        new, notice = await self.db.write(change)
        if new is None:
            await query.answer(i18n.t(language, notice or "settings_stale"))
            return
        language = commands.chat_language(
            new.language, where.kind, query.from_user.language_code, self.config
        )
        await query.answer(i18n.t(language, "settings_saved"))
        text, keyboard = await self._settings_view(where, language)
        try:
            await query.edit_message_text(text, reply_markup=keyboard)
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                raise  # a press that changed nothing visible (the language it already had)

    async def _pinned_press(
        self, query: CallbackQuery, where: ChatRef, on: bool, language: str
    ) -> None:
        """The pinned counters post turned on (posted at once) or off (no longer kept)."""
        if self.pinned is None or where.kind not in _PINNED_KINDS:
            await query.answer(i18n.t(language, "settings_stale"))  # the config turned it off
            return
        now = utc_now()
        await self.db.write(lambda s: s.set_pinned_wanted(where.chat_id, on, now, kind=where.kind,
                                                          title=where.title))  # fmt: skip
        await query.answer(i18n.t(language, "settings_saved"))
        text, keyboard = await self._settings_view(where, language)
        with contextlib.suppress(BadRequest):  # not modified: a second press of an old keyboard
            await query.edit_message_text(text, reply_markup=keyboard)
        pin_now = self._pin_now(where, language)
        if on and pin_now:
            await pin_now()

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
        with contextlib.suppress(TelegramError):
            failure = commands.failure_reply(await self._language(update))
            if update.callback_query:  # a button press: its answer stops the spinner, and the
                await update.callback_query.answer(failure)  # chat gets no message per press
            elif update.effective_message:
                await self._reply(update.effective_message, failure)
        kind = type(error).__name__
        last = self._last_notice.get(kind)
        if last is not None and time.monotonic() - last < ERROR_NOTICE_EVERY:
            return  # a burst of updates failing alike is one notice, not one per update
        self._last_notice[kind] = time.monotonic()
        await self.service.notify_admins(
            f"Error handling update {update.update_id} in chat {chat_id}: {kind}: {error}"
        )

    async def _language(self, update: Update) -> str:
        """The chat's language; bot.language when even that cannot be read."""
        chat, user = update.effective_chat, update.effective_user
        if chat is None:
            return self.config.language
        code = user.language_code if user else None
        try:
            where = _chat_ref(chat, update.effective_message)
            return await command_table.language_of(self.db, where, code, self.config)
        except Exception:  # the database is what failed: answer anyway
            return self.config.language

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
        return await _is_chat_admin(context.bot, chat.id, user.id)

    async def _reply(
        self, message: Message, text: str, keyboard: InlineKeyboardMarkup | None = None
    ) -> None:
        thread_id = message.message_thread_id if message.is_topic_message else None
        await _send(message.get_bot(), message.chat_id, text, thread_id, keyboard)


# The chats whose admins may ask for the pinned counters post (channels get it from the config).
_PINNED_KINDS = ("group", "supergroup")
# What a non-admin's /start, /stop or /settings in a group is refused as.
_REFUSED = {"start": "subscribe", "stop": "unsubscribe"}


def _chat_ref(chat: Chat, message: Message | None) -> ChatRef:
    thread_id = message.message_thread_id if message and message.is_topic_message else None
    title = chat.title or chat.username or chat.full_name or ""
    return ChatRef(chat.id, chat.type, title, thread_id)


async def _is_chat_admin(bot: Bot, chat_id: int, user_id: int) -> bool:
    member = await bot.get_chat_member(chat_id, user_id)
    return member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)


async def _send(
    bot: Bot,
    chat_id: int,
    text: str,
    thread_id: int | None = None,
    keyboard: InlineKeyboardMarkup | None = None,
) -> None:
    """An answer to someone who is waiting for it: ahead of pushes in the rate limiter."""
    await bot.send_message(
        chat_id=chat_id,
        text=text,
        message_thread_id=thread_id,
        reply_markup=keyboard,
        **priority_args(bot, Priority.REPLY),
    )


# ---- the settings keyboard's callback data --------------------------------------------------
# "s:<chat id>:<op>:<arg>", at most 64 bytes (Telegram's limit): f1/f0 turn a section on/off
# (arg: the feed's token), q1/q0 silent pushes on/off, l a language, p1/p0 the pinned counters
# post on/off. Each press names the state it asks for, so a press on an old keyboard does what
# its label said, never the opposite.
SETTINGS_PREFIX = "s:"
MAX_CALLBACK_DATA = 64
_FEED_TOKEN_LENGTH = 40  # room for "s:-1001234567890123:f1:" within 64 bytes


@dataclass(frozen=True)
class SettingsPress:
    chat_id: int
    op: str
    arg: str


def feed_token(name: str) -> str:
    """The feed's name, or a hash of a long one: callback data holds at most 64 bytes."""
    if len(name.encode()) <= _FEED_TOKEN_LENGTH and not name.startswith("#"):
        return name
    return "#" + hashlib.sha256(name.encode()).hexdigest()[:16]


def settings_data(chat_id: int | str, op: str, arg: str = "") -> str:
    data = f"{SETTINGS_PREFIX}{chat_id}:{op}:{arg}"
    assert len(data.encode()) <= MAX_CALLBACK_DATA, data
    return data


def parse_settings_data(data: str) -> SettingsPress | None:
    """The press a callback's data names, or None for anything the keyboard never sent."""
    parts = data.split(":", 3)
    if len(parts) != 4 or parts[0] + ":" != SETTINGS_PREFIX or parts[2] not in _OPS:
        return None
    try:
        chat_id = int(parts[1])
    except ValueError:
        return None
    return SettingsPress(chat_id, parts[2], parts[3])


_OPS = ("f1", "f0", "q1", "q0", "l", "p1", "p0")


def apply_press(
    settings: ChatSettings, press: SettingsPress, config: Config
) -> tuple[ChatSettings | None, str | None]:
    """The settings after a press, or None and the catalog key of the notice to answer."""
    if press.op in ("f1", "f0"):
        feed = next((f.name for f in config.feeds if feed_token(f.name) == press.arg), None)
        if feed is None:
            return None, "settings_stale"  # a feed since removed, or forged
        on = set(commands.sections_on(settings, config))
        on = on | {feed} if press.op == "f1" else on - {feed}
        new = commands.choose_sections(settings, on, config)
        return (new, None) if new is not None else (None, "settings_last_section")
    if press.op in ("q1", "q0"):
        return dataclasses.replace(settings, silent=press.op == "q1"), None
    if press.arg in i18n.CATALOGS:
        return dataclasses.replace(settings, language=press.arg), None
    return None, "settings_stale"


def settings_keyboard(
    settings: ChatSettings,
    config: Config,
    language: str,
    chat_id: int | str,
    *,
    pinned: bool | None = None,
) -> InlineKeyboardMarkup:
    """One button per section (✅ on), the sound, the pinned counters post (when `pinned` is
    not None: in groups, with bot.pinned_counters), the languages (✓ the chat's)."""
    on = set(commands.sections_on(settings, config))
    rows = [
        [InlineKeyboardButton(
            f"{'✅' if f.name in on else '⬜'} {f.title(language)}",
            callback_data=settings_data(chat_id, "f0" if f.name in on else "f1",
                                        feed_token(f.name)),
        )]
        for f in config.feeds
    ]  # fmt: skip
    sound = "settings_sound_off" if settings.silent else "settings_sound_on"
    rows.append([InlineKeyboardButton(
        i18n.t(language, sound),
        callback_data=settings_data(chat_id, "q0" if settings.silent else "q1"),
    )])  # fmt: skip
    if pinned is not None:
        rows.append([InlineKeyboardButton(
            i18n.t(language, "settings_pinned_on" if pinned else "settings_pinned_off"),
            callback_data=settings_data(chat_id, "p0" if pinned else "p1"),
        )])  # fmt: skip
    rows.append([
        InlineKeyboardButton(
            ("✓ " if code == language else "") + i18n.language_name(code),
            callback_data=settings_data(chat_id, "l", code),
        )
        for code in i18n.LANGUAGES
    ])  # fmt: skip
    return InlineKeyboardMarkup(rows)


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
    # Only the admins' ids reach bot-admin commands; anyone else's /status falls through to
    # `unknown`, as if there were no such command.
    admins = filters.User(user_id=handlers.config.admins)  # no admins: matches nobody
    for command in COMMANDS:
        allowed = new & admins if command.access is Access.BOT_ADMINS else new
        # A slow command (a poll of a slow feed) must not hold up the chat's next command.
        app.add_handler(
            CommandHandler(command.name, handlers.command, allowed, block=not command.slow)
        )
    app.add_handler(CallbackQueryHandler(handlers.settings_button, pattern=f"^{SETTINGS_PREFIX}"))
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
            # At 1,000/s with Telegram's 50-100 ms round trips, 64 in flight would cap the rate.
            concurrency=PAID_CONCURRENCY if config.paid_broadcast else FREE_CONCURRENCY,
            metrics=metrics,
        )
        pinned = (PinnedPosts(app.bot, db, config, notify_admins, utc_now)
                  if config.pinned_counters else None)  # fmt: skip
        await db.write(lambda s: _sync_subscribers(config, s))
        released = await db.write(lambda s: s.release_in_flight())
        if released:
            logger.warning("%d messages were in flight at the last stop; sending them again",
                           released)  # fmt: skip
        add_handlers(app, Handlers(config, db, service, pinned))

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
        service.start_scheduler(at_midnight=pinned.midnight if pinned else None)
        service.kick_delivery()  # whatever was pending before a restart
        # A restart or a config change of the counters: stale posts are edited now.
        refresh = asyncio.create_task(pinned.refresh_all()) if pinned else None
        subscribers = await db.read(lambda s: s.active_subscriber_count())
        logger.info("running: %d feeds, %d subscribers", len(config.feeds), subscribers)
        revoked = await _until_stopped_or_revoked(app, stop, config.telegram_check_interval)
        logger.info("stopping")
        if revoked:
            # The updater's last getUpdates on stop must fail without a token; its traceback
            # would only hide the one line that says what to do.
            logging.getLogger("telegram.ext.Updater").setLevel(logging.CRITICAL)
        if refresh and not refresh.done():
            refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresh
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
    """Everyone's menu shows the public commands; each admin's private chat shows theirs too.
    One menu per language (Telegram picks it by the user's app language); without a
    language_code, English, for every other language."""
    languages: list[str | None] = [None, *i18n.LANGUAGES]
    for code in languages:
        menu = command_table.menu(code or i18n.DEFAULT_LANGUAGE)
        await app.bot.set_my_commands([BotCommand(n, t) for n, t in menu], language_code=code)
    for admin in config.admins:
        for code in languages:
            menu = command_table.menu(code or i18n.DEFAULT_LANGUAGE, admin=True)
            buttons = [BotCommand(n, t) for n, t in menu]
            try:
                await app.bot.set_my_commands(
                    buttons, scope=BotCommandScopeChat(admin), language_code=code
                )
            except TelegramError as exc:  # e.g. the admin never opened a chat with the bot
                logger.warning("could not set the admin menu for %s: %s", admin, exc)
                break


def _sync_subscribers(config: Config, store: Store) -> None:
    """Configured channels get every push; channels dropped from the config stop getting them."""
    now = utc_now()
    for channel in config.channels:
        store.subscribe(channel, "channel", now, title=str(channel))
    configured = {str(c) for c in config.channels}
    for chat_id in store.active_chat_ids("channel"):
        if str(chat_id) not in configured:
            store.deactivate_chat(chat_id, "removed from the config", now)
