"""Replies to commands: pure functions of the store's data, the config and a moment in time.

The Telegram handlers and the console only pass these on; neither adds wording of its own.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from bot.config import Config
from bot.counters import clock_readings, long_date, read_counters
from bot.model import PollOutcome, StoredStatement, StoreStatus
from bot.render import (
    MAX_MESSAGE_LENGTH,
    render_counters_reply,
    render_statement,
    render_statement_list,
)
from bot.text import telegram_length

MAX_LATEST = 20

# (command, description) in menu order; the Telegram edge registers these with setMyCommands.
PUBLIC_COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", "Subscribe this chat to new statements"),
    ("stop", "Unsubscribe this chat"),
    ("latest", "The newest statement, or /latest N for a list"),
    ("counters", "Today's date, the clocks and the day counters"),
    ("help", "What this bot does"),
)
ADMIN_COMMANDS: tuple[tuple[str, str], ...] = (
    ("status", "Feeds, subscribers and deliveries (admins)"),
    ("poll", "Poll every feed now (admins)"),
)


class StatementSource(Protocol):
    def latest(self, count: int) -> list[StoredStatement]: ...


def push_message(
    statement: StoredStatement, config: Config, now: datetime, max_length: int = MAX_MESSAGE_LENGTH
) -> str:
    """The message a subscriber gets for a statement, counters as of `now`."""
    readings = read_counters(config.counters, now, config.timezone)
    return render_statement(statement, readings, config.timezone, config.lead_length, max_length)


def counters_reply(config: Config, now: datetime) -> str:
    return render_counters_reply(
        long_date(now, config.timezone),
        clock_readings(config.clocks, now),
        read_counters(config.counters, now, config.timezone),
    )


def latest_reply(
    source: StatementSource, config: Config, now: datetime, args: Sequence[str]
) -> str:
    """/latest: the newest statement in full; /latest N: a dated list of the newest N."""
    if len(args) > 1:
        return latest_usage()
    count = 1
    if args:
        try:
            count = int(args[0])
        except ValueError:
            return latest_usage()
        if not 1 <= count <= MAX_LATEST:
            return latest_usage()
    statements = source.latest(count)
    if not statements:
        return "No statements yet: the feed has not been read. Try again in a few minutes."
    if count == 1:
        return push_message(statements[0], config, now)
    return render_statement_list(statements, config.timezone)


def latest_usage() -> str:
    return f"Usage: /latest or /latest N, where N is a whole number from 1 to {MAX_LATEST}."


def help_reply(config: Config, *, is_admin: bool = False) -> str:
    commands = PUBLIC_COMMANDS + (ADMIN_COMMANDS if is_admin else ())
    feeds = ", ".join(html.escape(f.name, quote=False) for f in config.feeds)
    lines = [
        "I post a short summary of every new official statement, with the day counters.",
        f"Feeds I watch: {feeds}.",
        "",
        *(f"/{name} - {html.escape(text, quote=False)}" for name, text in commands),
    ]
    return "\n".join(lines)


def group_admins_only_reply(action: str) -> str:
    return f"Only the group's administrators can {action} it."


def failure_reply() -> str:
    """A user never sees a traceback: one line, and the details go to the log and the admins."""
    return "Sorry, that did not work. The admins have the details."


def unknown_command_reply() -> str:
    return "I don't know that command. /help lists what I can do."


def start_reply(newly: bool, newest: StoredStatement | None, config: Config, now: datetime) -> str:
    head = (
        "Subscribed. I will send this chat a summary of every new statement, with the day "
        "counters. /stop unsubscribes."
        if newly
        else "This chat is already subscribed. /stop unsubscribes."
    )
    if newest is None:
        return head
    head = f"{head}\n\nThe newest statement:\n\n"
    room = MAX_MESSAGE_LENGTH - telegram_length(head)  # the whole reply stays within the limit
    return head + push_message(newest, config, now, room)


def stop_reply(was_active: bool) -> str:
    if was_active:
        return "Unsubscribed: no more pushes to this chat. /start subscribes again."
    return "This chat is not subscribed. /start subscribes it."


def status_reply(status: StoreStatus, config: Config, now: datetime) -> str:
    """/status for admins: every feed's health, subscribers, the outbox."""
    lines = [
        f"<b>Status</b> at {now.astimezone(config.timezone):%d.%m.%Y %H:%M}",
        f"Subscribers: {status.active_subscribers}",
        f"Statements stored: {status.statements}",
        f"Deliveries pending: {status.pending}, failed: {status.failed}",
    ]
    for feed in status.feeds:
        lines.append("")
        lines.append(f"<b>{html.escape(feed.name, quote=False)}</b>")
        lines.append(f"last poll: {_ago(feed.last_poll_at, now)}")
        lines.append(f"last success: {_ago(feed.last_success_at, now)}")
        if feed.last_error:
            lines.append(
                f"last error ({feed.consecutive_failures} in a row): "
                f"{html.escape(feed.last_error[:300], quote=False)}"
            )
        if feed.redirected_to:
            lines.append(f"moved to: {html.escape(feed.redirected_to, quote=False)}")
        if feed.discovered_url:
            lines.append(f"reads the feed the page names: {html.escape(feed.discovered_url)}")
        if feed.skipped:
            lines.append(f"items skipped in the last poll ({len(feed.skipped)}):")
            lines += [f"- {html.escape(line[:200], quote=False)}" for line in feed.skipped[:5]]
    return "\n".join(lines)


def poll_reply(outcomes: Sequence[PollOutcome]) -> str:
    """/poll for admins: one line per feed."""
    lines = []
    for o in outcomes:
        if o.error:
            what = f"failed: {html.escape(o.error[:300], quote=False)}"
        elif o.not_modified:
            what = "not modified"
        elif o.report:
            what = f"{o.report.pushed} new, {o.report.updated} edited"
        else:
            what = "skipped"
        lines.append(f"{html.escape(o.feed, quote=False)}: {what}")
    return "\n".join(lines)


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"
