"""The one table of commands: name, who may use it, its reply, its help in each language.

Adding a command is one entry here (and its wording in bot/i18n). The table drives /help, the
menus (Telegram registers `menu(language)` per language) and the console; a Telegram handler
checks the entry's access, builds a Request and sends what `reply` returns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from bot import commands, i18n
from bot.config import Config
from bot.model import ChatSettings, FanOutProgress, PollOutcome, StoredStatement
from bot.store import AsyncStore, Store


class Access(Enum):
    EVERYONE = "everyone"
    # Anyone in a private chat; in a group only its administrators (the Telegram side asks
    # getChatMember and answers commands.group_admins_only_reply otherwise).
    CHAT_ADMINS = "chat admins"
    BOT_ADMINS = "bot admins"  # config.admins; to anyone else it is an unknown command


@dataclass(frozen=True)
class ChatRef:
    """Where a command was sent: a Telegram chat (kind = its type) or the console."""

    chat_id: int | str
    kind: str  # "private", "group", "supergroup", "channel", "console"
    title: str = ""
    thread_id: int | None = None  # the forum topic it was sent in

    @property
    def private(self) -> bool:
        return self.kind in ("private", "console")

    @property
    def topic(self) -> bool:
        """Sent in a forum topic, which subscribes and chooses on its own."""
        return self.thread_id is not None


def current_settings(store: Store, chat: ChatRef) -> tuple[ChatSettings, bool]:
    """What /settings shows of a chat (or topic): its settings and whether it is subscribed."""
    subscriber = store.subscriber(chat.chat_id, chat.thread_id)
    return store.chat_settings(chat.chat_id, chat.thread_id), bool(subscriber and subscriber.active)


@dataclass(frozen=True)
class Request:
    config: Config
    db: AsyncStore
    chat: ChatRef
    now: datetime
    language: str  # the reply's: chat_language() of the chat, see language_of()
    args: Sequence[str] = ()
    user_language_code: str | None = None  # Telegram's User.language_code of who asked
    is_bot_admin: bool = False
    poll: Callable[[], Awaitable[Sequence[PollOutcome]]] | None = None  # /poll: poll them all
    fanouts: Callable[[], Sequence[FanOutProgress]] | None = None  # /status: pushes under way
    pin_now: Callable[[], Awaitable[object]] | None = None  # post the pinned counters at once


Reply = Callable[[Request], Awaitable[str]]


@dataclass(frozen=True)
class Command:
    name: str
    access: Access
    reply: Reply
    help: Mapping[str, str]  # language -> the one line /help and the menu show
    slow: bool = False  # may take seconds (a poll): do not hold up the chat's next command


async def language_of(
    db: AsyncStore, chat: ChatRef, user_language_code: str | None, config: Config
) -> str:
    """The language to answer `chat` in: its /settings choice, else (in a private chat) the
    user's Telegram language, else bot.language."""
    settings = await db.read(lambda s: s.chat_settings(chat.chat_id, chat.thread_id))
    return commands.chat_language(settings.language, chat.kind, user_language_code, config)


async def _start(r: Request) -> str:
    # A private chat starts in its user's language; a group in bot.language (None).
    first = i18n.language_of_user(r.user_language_code) if r.chat.kind == "private" else None

    def subscribe(s: Store) -> tuple[bool, list[StoredStatement]]:
        newly = s.subscribe(r.chat.chat_id, r.chat.kind, r.now, title=r.chat.title,
                            thread_id=r.chat.thread_id, language=first)  # fmt: skip
        return newly, s.latest(1)

    newly, newest = await r.db.write(subscribe)
    return commands.start_reply(
        newly, newest[0] if newest else None, r.config, r.now, language=r.language,
        topic=r.chat.topic,
    )  # fmt: skip


async def _stop(r: Request) -> str:
    def stop(s: Store) -> tuple[bool, int]:
        was_active = s.deactivate(r.chat.chat_id, "/stop", r.now, thread_id=r.chat.thread_id)
        return was_active, s.active_topics(r.chat.chat_id)

    was_active, others = await r.db.write(stop)
    return commands.stop_reply(was_active, r.language, topic=r.chat.topic, other_topics=others > 0)


async def _latest(r: Request) -> str:
    return await r.db.read(
        lambda s: commands.latest_reply(s, r.config, r.now, r.args, language=r.language)
    )


async def _counters(r: Request) -> str:
    return commands.counters_reply(r.config, r.now, language=r.language)


async def _search(r: Request) -> str:
    return await r.db.read(
        lambda s: commands.search_reply(s, r.config, r.args, language=r.language)
    )


_PINNED_KINDS = ("group", "supergroup")  # channels get the post from the config
_ON, _OFF = {"on", "yes", "true", "1", "вкл", "да"}, {"off", "no", "false", "0", "выкл", "нет"}


async def _settings_pinned(r: Request) -> str:
    """/settings pinned on|off: a group's daily pinned counters post (bot.pinned_counters)."""
    if not r.config.pinned_counters or r.chat.kind not in _PINNED_KINDS:
        return i18n.t(r.language, "settings_pinned_unavailable")
    values = [a.lower() for a in r.args[1:]]
    if len(values) != 1 or values[0] not in _ON | _OFF:
        return i18n.t(r.language, "settings_bad_pinned")
    on = values[0] in _ON
    await r.db.write(lambda s: s.set_pinned_wanted(r.chat.chat_id, on, r.now, kind=r.chat.kind,
                                                   title=r.chat.title))  # fmt: skip
    if on and r.pin_now is not None:
        await r.pin_now()
    return i18n.t(r.language, "settings_saved")


async def _settings(r: Request) -> str:
    if r.args and r.args[0].lower() == "pinned":
        return await _settings_pinned(r)

    settings, subscribed = await r.db.read(lambda s: current_settings(s, r.chat))
    new, reply = commands.settings_command(
        settings, r.args, r.config, r.language, topic=r.chat.topic
    )
    if new is not None:
        await r.db.write(
            lambda s: s.save_settings(r.chat.chat_id, new, r.now, kind=r.chat.kind,
                                      title=r.chat.title, thread_id=r.chat.thread_id)
        )  # fmt: skip
        if not subscribed:
            reply += "\n\n" + commands.not_subscribed_line(
                new.language or r.language, topic=r.chat.topic
            )
    return reply


async def _help(r: Request) -> str:
    # In a group, listing the admin commands would tell everyone who the admins are.
    admin = r.is_bot_admin and r.chat.private
    return commands.help_reply(
        r.config, is_admin=admin, language=r.language, commands=menu(r.language, admin=admin)
    )


async def _status(r: Request) -> str:
    status = await r.db.read(lambda s: s.status())
    sending = r.fanouts() if r.fanouts else ()
    return commands.status_reply(status, r.config, r.now, language=r.language, sending=sending)


async def _poll(r: Request) -> str:
    assert r.poll is not None, "the caller hands /poll a way to poll"
    return commands.poll_reply(await r.poll(), r.language)


COMMANDS: tuple[Command, ...] = (  # in menu order
    Command("start", Access.CHAT_ADMINS, _start, {
        "en": "Subscribe this chat to new statements",
        "ru": "Подписать этот чат на новые заявления",
    }),
    Command("stop", Access.CHAT_ADMINS, _stop, {
        "en": "Unsubscribe this chat",
        "ru": "Отписать этот чат",
    }),
    Command("latest", Access.EVERYONE, _latest, {
        "en": "The newest statement, or /latest N for a list",
        "ru": "Последнее заявление, или /latest N — список",
    }),
    Command("search", Access.EVERYONE, _search, {
        "en": "Find statements: /search WORDS",
        "ru": "Найти заявления: /search СЛОВА",
    }),
    Command("counters", Access.EVERYONE, _counters, {
        "en": "Today's date, the clocks and the day counters",
        "ru": "Дата, часы и счётчики дней",
    }),
    Command("settings", Access.CHAT_ADMINS, _settings, {
        "en": "Sections, silent pushes, language",
        "ru": "Разделы, тихие уведомления, язык",
    }),
    Command("help", Access.EVERYONE, _help, {
        "en": "What this bot does",
        "ru": "Что умеет этот бот",
    }),
    Command("status", Access.BOT_ADMINS, _status, {
        "en": "Feeds, subscribers and deliveries (admins)",
        "ru": "Ленты, подписчики и доставки (администраторы)",
    }),
    Command("poll", Access.BOT_ADMINS, _poll, {
        "en": "Poll every feed now (admins)",
        "ru": "Опросить все ленты сейчас (администраторы)",
    }, slow=True),
)  # fmt: skip
BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}


def find(name: str) -> Command | None:
    """The command for "/Latest@bot" style names: lower case, without the bot's username."""
    return BY_NAME.get(name.lstrip("/").split("@")[0].lower())


def menu(language: str, *, admin: bool = False) -> list[tuple[str, str]]:
    """(name, description) for setMyCommands in `language`: everyone's menu, or with `admin`
    the bot admins' (their private chats)."""
    lang = i18n.supported(language)
    return [(c.name, c.help[lang]) for c in COMMANDS if admin or c.access is not Access.BOT_ADMINS]


async def answer(name: str, request: Request) -> str:
    """The reply to /name: unknown commands, and bot-admin commands from anyone else, get the
    one-line hint. CHAT_ADMINS access is the caller's to check (it needs Telegram)."""
    command = find(name)
    if command is None or (command.access is Access.BOT_ADMINS and not request.is_bot_admin):
        return commands.unknown_command_reply(request.language)
    return await command.reply(request)
