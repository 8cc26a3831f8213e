"""The health verdict: every feed read within a few of its intervals."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.commands import status_reply
from bot.config import Config
from bot.console import CONSOLE_CHAT_ID
from bot.health import assess
from bot.poller import record_poll
from bot.store import Store


def test_never_polled_is_unhealthy(store: Store, config: Config, now: datetime) -> None:
    verdict = assess(store.status(), config, now)
    assert not verdict.ok
    assert verdict.lines[0] == "feed statements: never read successfully"


def test_recent_success_is_healthy(store: Store, config: Config, now: datetime) -> None:
    record_poll(store, config.feeds[0], [], now)
    verdict = assess(store.status(), config, now + timedelta(minutes=10))
    assert verdict.ok
    assert verdict.lines[0] == "feed statements: read 10 min ago"


def test_stale_feed_is_unhealthy_and_says_why(store: Store, config: Config, now: datetime) -> None:
    record_poll(store, config.feeds[0], [], now)
    later = now + timedelta(minutes=16)  # interval 300 s: three intervals are 15 min
    store.record_failure("statements", "HTTP 503 Service Unavailable", later, later)
    verdict = assess(store.status(), config, later)
    assert not verdict.ok
    assert verdict.lines[0] == (
        "feed statements: last read 16 min ago, more than 15 min; "
        "last error: HTTP 503 Service Unavailable"
    )


def test_every_feed_counts(make_config, store: Store, now: datetime) -> None:
    config = make_config(
        feeds=[
            {"name": "a", "url": "https://example.org/a", "interval": 60},
            {"name": "b", "url": "https://example.org/b", "interval": 60},
        ]
    )
    record_poll(store, config.feeds[0], [], now)
    verdict = assess(store.status(), config, now)
    assert not verdict.ok
    assert verdict.lines[:2] == ["feed a: read 0 s ago", "feed b: never read successfully"]


def test_health_and_status_count_subscribers_alike(
    store: Store, config: Config, now: datetime
) -> None:
    """The console chat is no subscriber: it exists only while a console runs, so counting it
    made the console's /status say 1 where `health` said 0 for the same Telegram audience."""
    store.subscribe(CONSOLE_CHAT_ID, "console", now, title="console")
    store.subscribe(5, "private", now)
    store.subscribe(-100, "group", now)
    store.deactivate(-100, "/stop", now)
    status = store.status()
    assert assess(status, config, now).lines[-1].startswith("subscribers: 1,")
    assert "\nSubscribers: 1\n" in status_reply(status, config, now)
