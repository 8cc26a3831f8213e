"""The daily pinned counters post, Telegram edge: send, pin, edit at midnight, replace a lost
one. What a post should say and whether it is stale is bot/pinned_text.py's to decide.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from telegram import Bot
from telegram.error import BadRequest, Forbidden, TelegramError

from bot import commands, i18n
from bot.config import Config
from bot.pinned_text import Action, PinnedPost, next_action, post_text, text_hash, today
from bot.store import AsyncStore, Store, StoreUnavailable

logger = logging.getLogger(__name__)

# Telegram's words for a bot that may not pin: "not enough rights to manage pinned messages in
# the chat" (groups), "not enough rights to pin a message", "CHAT_ADMIN_REQUIRED".
_NO_PIN_RIGHT = ("not enough rights", "chat_admin_required", "administrator rights")
# An edit that cannot land: the admins deleted the message.
_GONE = ("message to edit not found", "message can't be edited")


class PinnedPosts:
    """One post per configured channel and per group that asked for it in /settings."""

    def __init__(
        self,
        bot: Bot,
        db: AsyncStore,
        config: Config,
        notify_admins: Callable[[str], Awaitable[None]],
        clock: Callable[[], datetime],
    ) -> None:
        self.bot = bot
        self.db = db
        self.config = config
        self.notify_admins = notify_admins
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}  # a press and midnight must not both post

    async def targets(self) -> list[tuple[int | str, str, str]]:
        """(chat, kind, language) of every chat that gets the post."""

        def read(s: Store) -> list[tuple[int | str, str, str | None]]:
            channels = [(c, "channel", s.chat_settings(c).language) for c in self.config.channels]
            return [*channels, *s.pinned_groups()]

        rows = await self.db.read(read)
        return [(c, kind, commands.chat_language(lang, kind, None, self.config))
                for c, kind, lang in rows]  # fmt: skip

    async def refresh_all(self, *, midnight: bool = False) -> None:
        """Bring every chat's post up to date; one chat's trouble does not stop the others."""
        if not self.config.pinned_counters:
            return
        try:
            targets = await self.targets()
        except StoreUnavailable as exc:
            logger.warning("pinned counters posts: database unavailable (%s)", exc)
            return
        for chat_id, kind, language in targets:
            try:
                await self.refresh(chat_id, kind, language, midnight=midnight)
            except (TelegramError, StoreUnavailable) as exc:
                logger.warning("pinned counters post in chat %s: %s: %s", chat_id,
                               type(exc).__name__, exc)  # fmt: skip

    async def midnight(self) -> None:
        """The cron job at 00:00 in bot.timezone."""
        await self.refresh_all(midnight=True)

    async def refresh(
        self, chat_id: int | str, kind: str, language: str, *, midnight: bool = False
    ) -> Action:
        """Post, edit or leave the chat's post; returns what was done."""
        lock = self._locks.setdefault(str(chat_id), asyncio.Lock())
        async with lock:
            try:
                return await self._refresh(chat_id, kind, language, midnight)
            except Forbidden as exc:  # kicked, or no right to post
                logger.warning("pinned counters post in chat %s: %s", chat_id, exc)
                if kind != "channel":  # a group that removed the bot no longer asks for it
                    await self.db.write(
                        lambda s: s.set_pinned_wanted(chat_id, False, self.clock(), kind=kind)
                    )
                return Action.NONE

    async def _refresh(
        self, chat_id: int | str, kind: str, language: str, midnight: bool
    ) -> Action:
        now = self.clock()
        text = post_text(self.config, now, language)
        day = today(now, self.config.timezone)
        post = await self.db.read(lambda s: s.pinned_post(chat_id))
        checkable = midnight and post and post.message_id and post.pinned and not post.lost
        if checkable and post and not await self._still_ours(chat_id, post.message_id or 0):
            logger.info("chat %s: the pinned counters post was unpinned; a new one now", chat_id)
            post = await self._save(dataclasses.replace(post, lost=True, pinned=False))
        action = next_action(post, text, day, midnight=midnight)
        if action is Action.EDIT:
            assert post is not None and post.message_id is not None
            try:
                await self.bot.edit_message_text(text, chat_id, post.message_id)
            except BadRequest as exc:
                reason = exc.message.lower()
                if any(g in reason for g in _GONE):
                    logger.info("chat %s: the pinned counters post is gone (%s)", chat_id, exc)
                    post = await self._save(dataclasses.replace(post, lost=True, pinned=False))
                    action = next_action(post, text, day, midnight=midnight)
                elif "not modified" not in reason:
                    raise
            if action is Action.EDIT:
                post = await self._save(dataclasses.replace(post, text_sha256=text_hash(text)))
                if midnight and not post.pinned:  # the right may have been given since
                    await self._save(await self._pin(post, kind, language))
        if action is Action.POST:
            message = await self.bot.send_message(chat_id, text, disable_notification=True)
            told = post.told_no_pin_right if post else False
            # Stored before pinning: a crash now must not post a second one.
            new = await self._save(PinnedPost(chat_id, message.message_id, text_hash(text), day,
                                              told_no_pin_right=told))  # fmt: skip
            await self._save(await self._pin(new, kind, language))
            if post and post.message_id:  # the one it replaces, if another pin only covered it
                await self._unpin(chat_id, post.message_id)
        return action

    async def _unpin(self, chat_id: int | str, message_id: int) -> None:
        """Without it a chat whose admins pin something over the post collects a pinned
        counters post a day. A deleted or already unpinned one answers an error: no matter."""
        try:
            await self.bot.unpin_chat_message(chat_id, message_id)
        except TelegramError as exc:
            logger.info("chat %s: the replaced counters post %s not unpinned: %s", chat_id,
                        message_id, exc)  # fmt: skip

    async def _pin(self, post: PinnedPost, kind: str, language: str) -> PinnedPost:
        assert post.message_id is not None
        try:
            await self.bot.pin_chat_message(post.chat_id, post.message_id,
                                            disable_notification=True)  # fmt: skip
        except BadRequest as exc:
            if not any(r in exc.message.lower() for r in _NO_PIN_RIGHT):
                raise
            if not post.told_no_pin_right:
                await self._tell_no_pin_right(post.chat_id, kind, language)
            return dataclasses.replace(post, pinned=False, told_no_pin_right=True)
        return dataclasses.replace(post, pinned=True, told_no_pin_right=False)

    async def _tell_no_pin_right(self, chat_id: int | str, kind: str, language: str) -> None:
        """A group's admins read it in the group; a channel's are the bot's admins."""
        logger.warning("chat %s: no right to pin the counters post", chat_id)
        if kind == "channel":
            await self.notify_admins(
                f"Cannot pin the counters post in channel {chat_id}: give the bot the right to "
                "pin messages. The post is still kept up to date."
            )
            return
        await self.bot.send_message(chat_id, i18n.t(language, "pinned_no_right"))

    async def _still_ours(self, chat_id: int | str, message_id: int) -> bool:
        try:
            chat = await self.bot.get_chat(chat_id)
        except TelegramError as exc:  # an outage is no reason to post again
            logger.warning("chat %s: cannot check the pinned message: %s", chat_id, exc)
            return True
        pinned = chat.pinned_message
        return pinned is not None and pinned.message_id == message_id

    async def _save(self, post: PinnedPost) -> PinnedPost:
        now = self.clock()
        await self.db.write(lambda s: s.save_pinned_post(post, now))
        return post
