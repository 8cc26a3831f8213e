"""Replies to commands: pure functions of the store's data, the config and a moment in time.

The Telegram handlers and the console only pass these on; neither adds wording of its own.
Every reply is in a language (bot.i18n); `language=None` means the config's default.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Protocol

from bot import i18n
from bot.config import Config
from bot.counters import clock_readings, long_date, read_counters
from bot.i18n import t
from bot.model import ChatSettings, FanOutProgress, PollOutcome, StoredStatement, StoreStatus
from bot.render import (
    MAX_MESSAGE_LENGTH,
    render_counters_reply,
    render_statement,
    render_statement_list,
)
from bot.text import telegram_length

MAX_LATEST = 20
MAX_SEARCH_RESULTS = 10
MAX_SEARCH_WORDS = 8  # more words only narrow the search further; the cap bounds the query


class StatementSource(Protocol):
    def latest(self, count: int) -> list[StoredStatement]: ...


class SearchSource(Protocol):
    def search(self, words: Sequence[str], limit: int) -> list[StoredStatement]: ...


def _lang(config: Config, language: str | None) -> str:
    return i18n.supported(language or config.language)


def push_message(
    statement: StoredStatement,
    config: Config,
    now: datetime,
    max_length: int = MAX_MESSAGE_LENGTH,
    *,
    language: str | None = None,
) -> str:
    """The message a subscriber gets for a statement, counters as of `now`, in its language."""
    lang = _lang(config, language)
    readings = read_counters(config.counters, now, config.timezone, lang)
    return render_statement(
        statement, readings, config.timezone, config.lead_length, max_length, lang
    )


class PushRenderer:
    """push_message for the delivery engine, made once per statement, language and day (the
    counters change at midnight in the bot's time zone): a fan-out sends the same message to
    thousands of chats, and rendering each was a fifth of the bot's CPU per message at the paid
    pace (docs/benchmarks.md). A corrected statement is another statement to the cache."""

    def __init__(self, config: Config, size: int = 256) -> None:
        self.config = config
        self.size = size
        self._made: dict[tuple[StoredStatement, str, date], str] = {}

    def __call__(self, statement: StoredStatement, now: datetime, language: str | None) -> str:
        lang = _lang(self.config, language)
        key = (statement, lang, now.astimezone(self.config.timezone).date())
        html = self._made.get(key)
        if html is None:
            if len(self._made) >= self.size:  # old days and statements: start afresh
                self._made.clear()
            html = self._made[key] = push_message(statement, self.config, now, language=lang)
        return html


def counters_reply(config: Config, now: datetime, *, language: str | None = None) -> str:
    lang = _lang(config, language)
    return render_counters_reply(
        long_date(now, config.timezone, lang),
        clock_readings(config.clocks, now, lang),
        read_counters(config.counters, now, config.timezone, lang),
    )


def latest_reply(
    source: StatementSource,
    config: Config,
    now: datetime,
    args: Sequence[str],
    *,
    language: str | None = None,
) -> str:
    """/latest: the newest statement in full; /latest N: a dated list of the newest N."""
    lang = _lang(config, language)
    if len(args) > 1:
        return latest_usage(lang)
    count = 1
    if args:
        try:
            count = int(args[0])
        except ValueError:
            return latest_usage(lang)
        if not 1 <= count <= MAX_LATEST:
            return latest_usage(lang)
    statements = source.latest(count)
    if not statements:
        return t(lang, "no_statements")
    if count == 1:
        return push_message(statements[0], config, now, language=lang)
    return render_statement_list(statements, config.timezone)


def latest_usage(language: str = i18n.DEFAULT_LANGUAGE) -> str:
    return t(language, "latest_usage", max=MAX_LATEST)


def search_words(text: str) -> list[str]:
    """The words of a search as FTS5's unicode61 tokenizer splits text: runs of letters and
    digits. Everything else (quotes, *, -, ^, :, parentheses) only separates words, so no
    input can become query syntax; AND, OR, NOT and NEAR stay words (Store.search quotes
    each)."""
    return re.findall(r"[^\W_]+", text)[:MAX_SEARCH_WORDS]


def search_reply(
    source: SearchSource, config: Config, args: Sequence[str], *, language: str | None = None
) -> str:
    """/search WORDS: up to 10 statements having every word (prefixes too), newest first."""
    lang = _lang(config, language)
    query = " ".join(args)
    words = search_words(query)
    if not words:
        return t(lang, "search_usage")
    found = source.search(words, MAX_SEARCH_RESULTS)
    if not found:
        return t(lang, "search_none", query=html.escape(query.strip()[:100], quote=False))
    return render_statement_list(found, config.timezone)


def help_reply(
    config: Config,
    *,
    is_admin: bool = False,
    language: str | None = None,
    commands: Sequence[tuple[str, str]] | None = None,
) -> str:
    """/help: what the bot does, its sections, and the commands this user may use, in the
    table's order (`commands` as (name, description); by default from the command table)."""
    lang = _lang(config, language)
    if commands is None:
        from bot.command_table import menu  # the table's replies import this module

        commands = menu(lang, admin=is_admin)
    feeds = ", ".join(html.escape(f.title(lang), quote=False) for f in config.feeds)
    lines = [
        t(lang, "help_intro"),
        t(lang, "help_feeds", feeds=feeds),
        "",
        *(f"/{name} - {html.escape(text, quote=False)}" for name, text in commands),
    ]
    return "\n".join(lines)


def group_admins_only_reply(action: str, language: str = i18n.DEFAULT_LANGUAGE) -> str:
    """`action`: "subscribe", "unsubscribe" or "settings"."""
    return t(language, f"admins_only_{action}")


def failure_reply(language: str = i18n.DEFAULT_LANGUAGE) -> str:
    """A user never sees a traceback: one line, and the details go to the log and the admins."""
    return t(language, "failure")


def unknown_command_reply(language: str = i18n.DEFAULT_LANGUAGE) -> str:
    return t(language, "unknown_command")


def sent_privately_reply(language: str = i18n.DEFAULT_LANGUAGE) -> str:
    return t(language, "sent_privately")


def open_private_chat_reply(bot_username: str | None, language: str = i18n.DEFAULT_LANGUAGE) -> str:
    return t(language, "open_private_chat", who=f"@{bot_username}" if bot_username else "/start")


def start_reply(
    newly: bool,
    newest: StoredStatement | None,
    config: Config,
    now: datetime,
    *,
    language: str | None = None,
    topic: bool = False,
) -> str:
    lang = _lang(config, language)
    head = t(lang, _scoped("start_new" if newly else "start_again", topic))
    if newest is None:
        return head
    head = f"{head}\n\n{t(lang, 'start_newest')}\n\n"
    room = MAX_MESSAGE_LENGTH - telegram_length(head)  # the whole reply stays within the limit
    return head + push_message(newest, config, now, room, language=lang)


def stop_reply(
    was_active: bool,
    language: str = i18n.DEFAULT_LANGUAGE,
    *,
    topic: bool = False,
    other_topics: bool = False,
) -> str:
    """`other_topics`: the chat is a forum some other topic of which is subscribed (a /stop in
    the wrong topic, or in General after an upgrade, when the forum had subscribed from one)."""
    if not was_active and other_topics:
        return t(language, "stop_other_topics")
    return t(language, _scoped("stop_done" if was_active else "stop_not_subscribed", topic))


def not_subscribed_line(language: str, *, topic: bool = False) -> str:
    """What /settings adds for a chat (or topic) that is not subscribed."""
    return t(language, _scoped("settings_not_subscribed", topic))


def _scoped(key: str, topic: bool) -> str:
    """The message's wording for a forum topic, which subscribes and chooses on its own."""
    return f"{key}_topic" if topic else key


# ---- /settings -----------------------------------------------------------------------------


def chat_language(
    stored: str | None, chat_kind: str, user_language_code: str | None, config: Config
) -> str:
    """The language a chat is answered and pushed in: its choice; else, in a private chat, the
    user's Telegram language (ru -> Russian, else English); else bot.language."""
    if stored in i18n.CATALOGS:
        return stored
    if chat_kind == "private" and user_language_code:
        return i18n.language_of_user(user_language_code)
    return config.language


def sections_on(settings: ChatSettings, config: Config) -> list[str]:
    """The names of the feeds this chat gets, in config order."""
    on = [f.name for f in config.feeds if f.name not in settings.muted]
    return on or [f.name for f in config.feeds]  # every one muted (the config changed): all


def toggle_section(settings: ChatSettings, feed: str, config: Config) -> ChatSettings | None:
    """The settings with `feed` switched; None when that would turn off the last section."""
    if feed not in {f.name for f in config.feeds}:
        return None
    on = set(sections_on(settings, config)) ^ {feed}
    return choose_sections(settings, on, config)


def choose_sections(
    settings: ChatSettings, names: Sequence[str] | set[str], config: Config
) -> ChatSettings | None:
    """The settings with exactly the sections `names` on; None when none would be."""
    on = {n for n in names if n in {f.name for f in config.feeds}}
    if not on:
        return None
    muted = frozenset(f.name for f in config.feeds if f.name not in on)
    return dataclasses.replace(settings, muted=muted)


def settings_reply(
    settings: ChatSettings,
    config: Config,
    language: str,
    *,
    subscribed: bool = True,
    topic: bool = False,
) -> str:
    """What /settings shows: the sections on, silent pushes, the language (and, for the text
    form, how to change them)."""
    lang = i18n.supported(language)
    on = set(sections_on(settings, config))
    sections = ", ".join(
        html.escape(f.title(lang), quote=False) for f in config.feeds if f.name in on
    )
    lines = [
        t(lang, _scoped("settings_title", topic)),
        t(lang, "settings_sections", sections=sections),
        t(lang, "settings_silent_on" if settings.silent else "settings_silent_off"),
        t(lang, "settings_language", language=i18n.language_name(lang)),
    ]
    if not subscribed:
        lines += ["", not_subscribed_line(lang, topic=topic)]
    return "\n".join(lines)


def settings_usage(config: Config, language: str) -> str:
    return t(
        language,
        "settings_usage",
        names=" ".join(html.escape(f.name, quote=False) for f in config.feeds),
        languages="|".join(i18n.LANGUAGES),
    )


_ON = {"on", "yes", "true", "1", "вкл", "да"}
_OFF = {"off", "no", "false", "0", "выкл", "нет"}


def settings_command(
    settings: ChatSettings,
    args: Sequence[str],
    config: Config,
    language: str,
    *,
    topic: bool = False,
) -> tuple[ChatSettings | None, str]:
    """/settings as text (the console; a Telegram client without the buttons):

    `/settings` shows them; `/settings sections press informs`, `/settings silent on`,
    `/settings language ru` change one. Returns the new settings to store (None: nothing to
    store) and the reply, in the language in force after the change.
    """
    lang = i18n.supported(language)
    if not args:
        shown = settings_reply(settings, config, lang, topic=topic)
        return None, shown + "\n\n" + settings_usage(config, lang)
    what, values = args[0].lower(), [a.lower() for a in args[1:]]
    names = " ".join(html.escape(f.name, quote=False) for f in config.feeds)
    new: ChatSettings | None
    if what == "sections" and values:
        known = {f.name.lower(): f.name for f in config.feeds}
        unknown = [v for v in values if v not in known]
        if unknown:
            name = html.escape(unknown[0], quote=False)
            return None, t(lang, "settings_unknown_section", name=name, names=names)
        new = choose_sections(settings, {known[v] for v in values}, config)
        if new is None:
            return None, t(lang, "settings_last_section")
    elif what == "silent" and len(values) == 1 and values[0] in _ON | _OFF:
        new = dataclasses.replace(settings, silent=values[0] in _ON)
    elif what == "language" and len(values) == 1:
        if values[0] not in i18n.CATALOGS:
            name = html.escape(values[0], quote=False)
            languages = ", ".join(i18n.LANGUAGES)
            return None, t(lang, "settings_bad_language", name=name, languages=languages)
        new = dataclasses.replace(settings, language=values[0])
        lang = values[0]
    elif what == "silent":
        return None, t(lang, "settings_bad_silent")
    else:
        return None, t(lang, "settings_usage_short", languages="|".join(i18n.LANGUAGES))
    return new, t(lang, "settings_saved") + "\n\n" + settings_reply(new, config, lang, topic=topic)


# ---- admins --------------------------------------------------------------------------------


def status_reply(
    status: StoreStatus,
    config: Config,
    now: datetime,
    *,
    language: str | None = None,
    sending: Sequence[FanOutProgress] = (),
) -> str:
    """/status for admins: every feed's health, subscribers, the outbox, fan-outs under way."""
    lang = _lang(config, language)
    lines = [
        t(lang, "status_title", time=f"{now.astimezone(config.timezone):%d.%m.%Y %H:%M}"),
        t(lang, "status_subscribers", count=status.active_subscribers),
        t(lang, "status_statements", count=status.statements),
        t(lang, "status_deliveries", pending=status.pending, failed=status.failed),
        t(lang, "status_corrections", count=status.corrections_sent),
    ]
    lines += [fanout_line(p, lang) for p in sending]
    for feed in status.feeds:
        lines.append("")
        lines.append(f"<b>{html.escape(feed.name, quote=False)}</b>")
        lines.append(t(lang, "status_last_poll", ago=_ago(feed.last_poll_at, now, lang)))
        lines.append(t(lang, "status_last_success", ago=_ago(feed.last_success_at, now, lang)))
        if feed.last_error:
            error = html.escape(feed.last_error[:300], quote=False)
            lines.append(t(lang, "status_last_error", count=feed.consecutive_failures, error=error))
        if feed.redirected_to:
            url = html.escape(feed.redirected_to, quote=False)
            lines.append(t(lang, "status_moved", url=url))
        if feed.discovered_url:
            lines.append(t(lang, "status_discovered", url=html.escape(feed.discovered_url)))
        if feed.skipped:
            lines.append(t(lang, "status_skipped", count=len(feed.skipped)))
            lines += [f"- {html.escape(line[:200], quote=False)}" for line in feed.skipped[:5]]
    return "\n".join(lines)


def fanout_line(progress: FanOutProgress, language: str = i18n.DEFAULT_LANGUAGE) -> str:
    """A fan-out's /status line: sending “Title”: 6,200 of 10,000, 950/s, about 4 s left."""
    left = progress.seconds_left
    if left is None:
        duration = "?"
    elif left < 90:
        duration = t(language, "duration_seconds", n=max(1, round(left)))
    else:
        duration = t(language, "duration_minutes", n=round(left / 60))
    return t(language, "status_sending", title=html.escape(progress.title[:80], quote=False),
             done=_count(progress.done, language), total=_count(progress.total, language),
             rate=_count(round(progress.rate), language), left=duration)  # fmt: skip


def _count(n: int, language: str) -> str:
    grouped = f"{n:,}"  # 6,200
    return grouped if language == "en" else grouped.replace(",", "\u00a0")  # 6 200


def poll_reply(outcomes: Sequence[PollOutcome], language: str = i18n.DEFAULT_LANGUAGE) -> str:
    """/poll for admins: one line per feed."""
    lines = []
    for o in outcomes:
        if o.error:
            what = t(language, "poll_failed", error=html.escape(o.error[:300], quote=False))
        elif o.not_modified:
            what = t(language, "poll_not_modified")
        elif o.report:
            what = t(language, "poll_report", new=o.report.pushed, edited=o.report.updated)
        else:
            what = t(language, "poll_skipped")
        lines.append(f"{html.escape(o.feed, quote=False)}: {what}")
    return "\n".join(lines)


def _ago(moment: datetime | None, now: datetime, language: str) -> str:
    if moment is None:
        return t(language, "ago_never")
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return t(language, "ago_seconds", n=seconds)
    if seconds < 7200:
        return t(language, "ago_minutes", n=seconds // 60)
    return t(language, "ago_hours", n=seconds // 3600)
