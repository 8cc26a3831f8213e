"""Shared fixtures: configs built from dicts, real SQLite stores in tmp folders, sample feeds."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from telegram.ext import ExtBot

from bot.config import Config, parse_config
from bot.store import AsyncStore, Store
from bot.telegram_bot import build_application
from tests.fakes.bot_api import FakeBotAPI

DATA = Path(__file__).parent / "data"
SAMPLES = DATA / "samples"
CORPUS = DATA / "feedparser-corpus"

FAKE_TOKEN = "123:ABC"  # what the fake Bot API accepts in the tests that share `api`

SALISBURY = (
    "{days} days have passed since the Salisbury incident - "
    "no credible information or response from the British authorities"
)
GLUSHKOV = (
    "{days} days have passed since the death of Nikolay Glushkov on British soil - "
    "no credible information or response from the British authorities"
)


def build_config(
    tmp_path: Path,
    feeds: list[dict[str, Any]] | None = None,
    counters: list[dict[str, Any]] | None = None,
    **bot: Any,
) -> Config:
    """A valid Config for tests: the embassy's counters, state in tmp_path, overrides as given."""
    raw: dict[str, Any] = {
        "bot": {
            "timezone": "Europe/London",
            "clocks": ["Europe/Moscow", "Europe/London"],
            "state": str(tmp_path / "state"),
            **bot,
        },
        "feeds": feeds
        if feeds is not None
        else [{"name": "statements", "url": str(SAMPLES / "embassy-rss.xml")}],
        "counters": counters
        if counters is not None
        else [
            {"since": "2018-03-04", "text": SALISBURY},
            {"since": "2018-03-12", "text": GLUSHKOV},
        ],
    }
    return parse_config(raw, env={}, source=tmp_path / "bot.toml")


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    def make(**kwargs: Any) -> Config:
        return build_config(tmp_path, **kwargs)

    return make


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return build_config(tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A real SQLite file, migrated from empty."""
    s = Store.open(tmp_path / "state" / "bot.sqlite3")
    yield s
    s.close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[AsyncStore]:
    """The event loop's door to a real SQLite file (the same file as `store` would open)."""
    door = AsyncStore.open(tmp_path / "state" / "bot.sqlite3")
    yield door
    door.close()


@pytest.fixture
def api() -> Iterator[FakeBotAPI]:
    """The fake Telegram Bot API on 127.0.0.1, for FAKE_TOKEN."""
    with FakeBotAPI(token=FAKE_TOKEN) as fake:
        yield fake


@pytest.fixture
async def bot(tmp_path: Path, api: FakeBotAPI) -> AsyncIterator[ExtBot]:
    """The bot's own Application's Bot (its request class, rate limiter, defaults), on `api`."""
    app = build_application(build_config(tmp_path, api_base_url=api.base_url), FAKE_TOKEN)
    async with app.bot as tg_bot:
        yield tg_bot


@pytest.fixture
def now() -> datetime:
    """22:54 London on 26 Oct 2021: the moment of the model site's snapshot."""
    return datetime(2021, 10, 26, 21, 54, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() configures the root logger for its process; in-process tests must not leave its
    handler (writing to a capture that pytest has closed) to the next test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
