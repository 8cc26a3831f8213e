"""Is the bot healthy? A pure verdict from the store's status, the config and the time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import Config
from bot.model import StoreStatus

HEALTHY_INTERVALS = 3  # a feed is healthy if it was read within this many of its intervals
MIN_WINDOW = timedelta(minutes=2)  # short intervals still get time for a slow server
# PRAGMA quick_check budget: well inside the Dockerfile's HEALTHCHECK --timeout=15s.
CHECK_SECONDS = 5.0


@dataclass(frozen=True)
class Health:
    ok: bool
    lines: list[str]


def assess(
    status: StoreStatus, config: Config, now: datetime, *, database: str | None = None
) -> Health:
    """Healthy when every configured feed was read successfully within a few of its intervals.

    `database` is what the file check found, when the caller ran one ("quick_check ok", or that
    it timed out): shown, and no verdict of its own; a damaged file never gets this far.
    """
    states = {f.name: f for f in status.feeds}
    lines: list[str] = []
    ok = True
    for feed in config.feeds:
        window = max(MIN_WINDOW, timedelta(seconds=feed.interval * HEALTHY_INTERVALS))
        state = states.get(feed.name)
        success = state.last_success_at if state else None
        if success is None:
            ok = False
            why = f"; last error: {state.last_error}" if state and state.last_error else ""
            lines.append(f"feed {feed.name}: never read successfully{why}")
        elif now - success > window:
            ok = False
            lines.append(
                f"feed {feed.name}: last read {_age(now - success)} ago, more than "
                f"{_age(window)}; last error: {state.last_error if state else None}"
            )
        else:
            lines.append(f"feed {feed.name}: read {_age(now - success)} ago")
    lines.append(
        f"subscribers: {status.active_subscribers}, deliveries pending: {status.pending}, "
        f"failed: {status.failed}"
    )
    if database:
        lines.append(f"database: {database}")
    return Health(ok, lines)


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
