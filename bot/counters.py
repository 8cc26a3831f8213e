"""Day counters and clocks: pure functions of the configuration and a moment in time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot.config import CounterConfig


@dataclass(frozen=True)
class CounterReading:
    days: int
    text: str  # the filled-in sentence, plain text


def days_since(since: date, now: datetime, tz: ZoneInfo) -> int:
    """Calendar days from `since` to the date it is at `now` in `tz` (the model site's rule)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return (now.astimezone(tz).date() - since).days


def read_counter(counter: CounterConfig, now: datetime, tz: ZoneInfo) -> CounterReading:
    days = days_since(counter.since, now, tz)
    template = counter.text_one if days == 1 and counter.text_one else counter.text
    return CounterReading(days, template.format(days=days))


def read_counters(
    counters: tuple[CounterConfig, ...], now: datetime, tz: ZoneInfo
) -> list[CounterReading]:
    """The counters that have started by `now`: before its date a counter is left out, as the
    site would not show "-8 days have passed"."""
    readings = [read_counter(c, now, tz) for c in counters]
    return [r for r in readings if r.days >= 0]


def clock_label(tz: ZoneInfo) -> str:
    """'Europe/Moscow' -> 'Moscow', 'America/Argentina/Buenos_Aires' -> 'Buenos Aires'."""
    return str(tz.key).rsplit("/", 1)[-1].replace("_", " ")


def clock_readings(clocks: tuple[ZoneInfo, ...], now: datetime) -> list[tuple[str, str]]:
    """[(label, 'HH:MM'), ...] for each configured clock."""
    return [(clock_label(tz), now.astimezone(tz).strftime("%H:%M")) for tz in clocks]


def long_date(now: datetime, tz: ZoneInfo) -> str:
    """'26 October 2021', as the model site's banner writes it (no locale dependence)."""
    local = now.astimezone(tz)
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year}"


_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
