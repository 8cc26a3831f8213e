"""The console chat: stands in for Telegram in the demo and in dry runs.

Pushes are printed as a reader would see them; lines typed on stdin are answered as commands.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from bot import command_table, i18n
from bot.command_table import ChatRef, Request
from bot.config import Config
from bot.delivery import ChatAddress, Sent
from bot.model import PollOutcome
from bot.service import Service
from bot.store import AsyncStore, Store
from bot.text import html_to_text

logger = logging.getLogger(__name__)

HEADER = "── 📣 new statement " + "─" * 41
EDIT_HEADER = "── ✏️ corrected " + "─" * 45  # the push above, edited in place on Telegram
# The console chat: a subscriber of its own kind, which no Telegram chat has, so the store's
# audience (and the Telegram delivery engine) leaves it out; its own engine sends only to it.
CONSOLE_CHAT_ID = "console"
CONSOLE_KIND = "console"
CONSOLE_KINDS = (CONSOLE_KIND,)  # what the console's delivery engine drains
CONSOLE_CHAT = ChatRef(CONSOLE_CHAT_ID, CONSOLE_KIND, "console")
SHOWN_HEADER = "── 🗂 statement " + "─" * 45  # shown again on request, not new


def as_console_text(html: str) -> str:
    """Telegram HTML as plain text, links written out after their text."""
    return html_to_text(html, show_links=True, keep_lines=True)


def join(store: Store, now: datetime) -> None:
    """The console chat exists while a console runs. A backlog left by a run that crashed is
    closed first: a console shows what is new from now on."""
    store.deactivate(CONSOLE_CHAT_ID, "console closed", now)
    store.subscribe(CONSOLE_CHAT_ID, CONSOLE_KIND, now, title="console")


def leave(store: Store, now: datetime) -> None:
    """No backlog piles up for the console chat while no console runs."""
    store.deactivate(CONSOLE_CHAT_ID, "console closed", now)


class ConsoleSender:
    """A Sender that prints each push; it cannot fail, like a chat that is always there."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.count = 0

    async def send(self, chat: ChatAddress, html: str) -> Sent:
        self.count += 1
        self.out.write(f"{HEADER}\n\n{as_console_text(html)}\n\n")
        self.out.flush()
        return Sent(message_id=self.count)

    async def edit(self, chat: ChatAddress, message_id: int, html: str) -> Sent:
        self.out.write(f"{EDIT_HEADER}\n\n{as_console_text(html)}\n\n")
        self.out.flush()
        return Sent(message_id=message_id)

    async def reachable(self) -> bool:
        return True


class ConsoleAdmin:
    """Admin notices in the console go to the same screen, marked as such."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    async def __call__(self, text: str) -> None:
        self.out.write(f"[admin] {text}\n")
        self.out.flush()


async def answer(line: str, service: Service, config: Config, db: AsyncStore, now: datetime) -> str:
    """The reply to one typed line, in plain text, from the command table; the console user is
    also the admin, so every command is there (/settings as text: /settings silent on)."""
    try:
        words = shlex.split(line)
    except ValueError:  # an unbalanced quote: /search "Salisbury
        words = line.split()
    if not words:
        return ""

    async def poll() -> list[PollOutcome]:
        outcomes = await service.poll_all(force=True)
        await service.drain()
        return outcomes

    language = await command_table.language_of(db, CONSOLE_CHAT, None, config)
    request = Request(config, db, CONSOLE_CHAT, now, language, words[1:], is_bot_admin=True,
                      poll=poll, fanouts=service.engine.progress)  # fmt: skip
    return as_console_text(await command_table.answer(words[0], request))


async def read_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    """Feed stdin lines into `queue` from a daemon thread (it never blocks shutdown)."""

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="stdin", daemon=True).start()


async def console_loop(
    service: Service,
    config: Config,
    db: AsyncStore,
    out: TextIO,
    clock: Callable[[], datetime],
    stop: asyncio.Event,
) -> None:
    """Answer typed commands until stdin closes or `stop` is set.

    When stdin closes (piped input, `< /dev/null`), what is being delivered is finished and the
    console stops: nobody is left to read it. A bot that runs unattended runs on Telegram.
    """
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    await read_lines(asyncio.get_running_loop(), queue)
    while not stop.is_set():
        getter = asyncio.ensure_future(queue.get())
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (getter, stopper):
            if task not in done:
                task.cancel()
        if getter not in done:
            return
        line = getter.result()
        if line is None:
            logger.info("stdin closed: stopping once the pushes in progress are printed")
            await service.drain()
            return
        try:
            reply = await answer(line.strip(), service, config, db, clock())
        except Exception:
            logger.exception("command %r failed", line.strip())
            reply = i18n.t(config.language, "console_failure")
        if reply:
            out.write(reply + "\n")
            out.flush()
