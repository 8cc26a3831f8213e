"""The daily pinned counters post, pure part: what a chat's post should say now, and whether
the stored post needs a new message, an edit, or nothing. The Telegram calls are bot/pinned.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import Enum
from zoneinfo import ZoneInfo

from bot import commands
from bot.config import Config


@dataclass(frozen=True)
class PinnedPost:
    """A chat's post as stored: what was sent, and what became of it."""

    chat_id: int | str
    message_id: int | None = None
    text_sha256: str | None = None  # of the text the message was last given
    posted_on: date | None = None  # the day (bot.timezone) a new message was last sent
    lost: bool = False  # deleted or unpinned by the chat's admins: a new one at next midnight
    pinned: bool = False  # our pin was accepted (so getChat's pinned_message should be ours)
    told_no_pin_right: bool = False  # the admins were told the bot may not pin


class Action(Enum):
    POST = "post"  # send a new message and pin it
    EDIT = "edit"  # the message's text is stale
    NONE = "none"


def day_start(now: datetime, tz: ZoneInfo) -> datetime:
    """00:00 of `now`'s date in `tz`: the post reads as of midnight, so that its clocks and
    text stay the same all day and a restart at noon finds nothing stale."""
    return datetime.combine(now.astimezone(tz).date(), time(0), tzinfo=tz)


def today(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


def post_text(config: Config, now: datetime, language: str | None) -> str:
    """Today's date, the clocks and the counters (/counters' reply) in the chat's language."""
    return commands.counters_reply(config, day_start(now, config.timezone), language=language)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_stale(post: PinnedPost, text: str) -> bool:
    return post.text_sha256 != text_hash(text)


def next_action(post: PinnedPost | None, text: str, day: date, *, midnight: bool) -> Action:
    """What a chat's post needs. A lost post is replaced only at midnight, at most once a day;
    a chat that never had one gets it at once."""
    if post is None or post.message_id is None:
        return Action.POST
    if post.lost:
        return Action.POST if midnight and post.posted_on != day else Action.NONE
    return Action.EDIT if is_stale(post, text) else Action.NONE
