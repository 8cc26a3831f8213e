"""Day counters and clocks: pure functions of the configuration and a moment in time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot import i18n
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


def read_counter(
    counter: CounterConfig, now: datetime, tz: ZoneInfo, language: str = i18n.DEFAULT_LANGUAGE
) -> CounterReading:
    """The counter's sentence in `language`, its days word agreeing with the count."""
    days = days_since(counter.since, now, tz)
    return CounterReading(days, counter.sentence(days, language).format(days=days))


def read_counters(
    counters: tuple[CounterConfig, ...],
    now: datetime,
    tz: ZoneInfo,
    language: str = i18n.DEFAULT_LANGUAGE,
) -> list[CounterReading]:
    """The counters that have started by `now`: before its date a counter is left out, as the
    site would not show "-8 days have passed"."""
    readings = [read_counter(c, now, tz, language) for c in counters]
    return [r for r in readings if r.days >= 0]


def clock_label(tz: ZoneInfo, language: str = i18n.DEFAULT_LANGUAGE) -> str:
    """'Europe/Moscow' -> 'Moscow' ('Москва' in Russian); without a name for the city in that
    language, 'America/Argentina/Buenos_Aires' -> 'Buenos Aires'."""
    return i18n.zone_label(tz, language)


def clock_readings(
    clocks: tuple[ZoneInfo, ...], now: datetime, language: str = i18n.DEFAULT_LANGUAGE
) -> list[tuple[str, str]]:
    """[(label, 'HH:MM'), ...] for each configured clock."""
    return [(clock_label(tz, language), now.astimezone(tz).strftime("%H:%M")) for tz in clocks]


def long_date(now: datetime, tz: ZoneInfo, language: str = i18n.DEFAULT_LANGUAGE) -> str:
    """'26 October 2021' / '26 октября 2021', as the model site's banner writes it."""
    return i18n.long_date(now.astimezone(tz).date(), language)
