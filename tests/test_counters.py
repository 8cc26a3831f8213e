"""Day counters and clocks, read as the model site reads them: calendar days in London."""

# ruff: noqa: RUF001 - Russian sentences: their Cyrillic letters are meant

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.config import CounterConfig
from bot.counters import (
    clock_label,
    clock_readings,
    days_since,
    long_date,
    read_counter,
    read_counters,
)

LONDON = ZoneInfo("Europe/London")
MOSCOW = ZoneInfo("Europe/Moscow")
SALISBURY = date(2018, 3, 4)
GLUSHKOV = date(2018, 3, 12)


def test_model_site_snapshot() -> None:
    """At 22:54 London on 26 Oct 2021 (00:54 on the 27th in Moscow) the site showed 1332/1324."""
    moment = datetime(2021, 10, 26, 22, 54, tzinfo=LONDON)
    assert days_since(SALISBURY, moment, LONDON) == 1332
    assert days_since(GLUSHKOV, moment, LONDON) == 1324
    # Counted in Moscow it would already be the next day: the zone matters.
    assert days_since(SALISBURY, moment, MOSCOW) == 1333


def test_day_turns_at_local_midnight_not_utc() -> None:
    """In British Summer Time London's midnight is 23:00 UTC."""
    before = datetime(2021, 10, 26, 22, 59, 59, tzinfo=UTC)  # 23:59:59 in London
    after = before + timedelta(seconds=1)  # 00:00 on the 27th in London
    assert days_since(SALISBURY, after, LONDON) - days_since(SALISBURY, before, LONDON) == 1


def test_dst_change_does_not_skip_or_repeat_a_day() -> None:
    """Across the clocks going back (31 Oct 2021), each local day adds exactly one."""
    start = datetime(2021, 10, 30, 12, tzinfo=LONDON)
    counts = [days_since(SALISBURY, start + timedelta(days=i), LONDON) for i in range(4)]
    assert counts == [1336, 1337, 1338, 1339]


def test_date_line_zones() -> None:
    """Kiribati (UTC+14) and Niue (UTC-11) are a whole day apart at the same instant."""
    moment = datetime(2021, 10, 26, 12, tzinfo=UTC)
    ahead = days_since(SALISBURY, moment, ZoneInfo("Pacific/Kiritimati"))
    behind = days_since(SALISBURY, moment, ZoneInfo("Pacific/Niue"))
    assert ahead - behind == 1


def test_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError):
        days_since(SALISBURY, datetime(2021, 10, 26, 12), LONDON)


def test_any_aware_offset_is_converted() -> None:
    moment = datetime(2021, 10, 27, 0, 54, tzinfo=timezone(timedelta(hours=3)))
    assert days_since(SALISBURY, moment, LONDON) == 1332


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2018, 3, 5, 12, tzinfo=LONDON), "1 day has passed"),
        (datetime(2018, 3, 6, 12, tzinfo=LONDON), "2 days have passed"),
        (datetime(2018, 3, 4, 12, tzinfo=LONDON), "0 days have passed"),
    ],
)
def test_singular_and_plural(moment: datetime, expected: str) -> None:
    counter = CounterConfig(SALISBURY, "{days} days have passed", "{days} day has passed")
    assert read_counter(counter, moment, LONDON).text == expected


def test_without_text_one_the_template_is_used_for_one_too() -> None:
    counter = CounterConfig(SALISBURY, "days since: {days}")
    assert (
        read_counter(counter, datetime(2018, 3, 5, tzinfo=LONDON), LONDON).text == "days since: 1"
    )


def test_clocks_and_date_as_on_the_banner() -> None:
    moment = datetime(2021, 10, 26, 22, 54, tzinfo=LONDON)
    assert clock_readings((MOSCOW, LONDON), moment) == [("Moscow", "00:54"), ("London", "22:54")]
    assert long_date(moment, LONDON) == "26 October 2021"
    assert clock_label(ZoneInfo("America/Argentina/Buenos_Aires")) == "Buenos Aires"


def test_a_counter_before_its_start_date_is_left_out() -> None:
    counters = (
        CounterConfig(date(2018, 3, 4), "{days} days since A"),
        CounterConfig(date(2018, 3, 12), "{days} days since B"),
    )
    london = ZoneInfo("Europe/London")
    at = datetime(2018, 3, 4, 12, tzinfo=UTC)
    assert [r.text for r in read_counters(counters, at, london)] == ["0 days since A"]
    at = datetime(2018, 3, 12, 12, tzinfo=UTC)
    assert [r.text for r in read_counters(counters, at, london)] == [
        "8 days since A",
        "0 days since B",
    ]


RUSSIAN = (
    ("one", "{days} день прошёл со дня инцидента"),
    ("few", "{days} дня прошло со дня инцидента"),
    ("many", "{days} дней прошло со дня инцидента"),
)


@pytest.mark.parametrize(
    ("days", "expected"),
    [(1, "1 день прошёл"), (21, "21 день прошёл"), (101, "101 день прошёл"),
     (2, "2 дня прошло"), (24, "24 дня прошло"), (1332, "1332 дня прошло"),
     (1324, "1324 дня прошло"), (5, "5 дней прошло"), (11, "11 дней прошло"),
     (111, "111 дней прошло"), (1325, "1325 дней прошло"), (0, "0 дней прошло")],
)  # fmt: skip
def test_russian_counter_agrees_with_its_number(days: int, expected: str) -> None:
    counter = CounterConfig(SALISBURY, "{days} days have passed", None, (("ru", RUSSIAN),))
    moment = datetime.combine(SALISBURY + timedelta(days=days), datetime.min.time(), LONDON)
    reading = read_counter(counter, moment.replace(hour=12), LONDON, "ru")
    assert reading.days == days
    assert reading.text.startswith(expected + " со дня инцидента")


def test_a_language_without_its_own_sentence_gets_the_default() -> None:
    counter = CounterConfig(
        SALISBURY, "{days} days have passed", "{days} day has passed", (("ru", RUSSIAN),)
    )
    at = datetime(2018, 3, 5, 12, tzinfo=LONDON)
    assert read_counter(counter, at, LONDON, "en").text == "1 day has passed"
    assert read_counter(counter, at, LONDON).text == "1 day has passed"
    assert read_counter(counter, at, LONDON, "ru").text == "1 день прошёл со дня инцидента"


def test_one_sentence_for_every_count_is_filed_under_other() -> None:
    counter = CounterConfig(SALISBURY, "{days} days", None, (("ru", (("other", "дней: {days}"),)),))
    at = datetime(2021, 10, 26, 22, 54, tzinfo=LONDON)
    assert read_counter(counter, at, LONDON, "ru").text == "дней: 1332"


def test_russian_banner_reads_the_model_site_in_russian() -> None:
    moment = datetime(2021, 10, 26, 22, 54, tzinfo=LONDON)
    assert clock_readings((MOSCOW, LONDON), moment, "ru") == [
        ("Москва", "00:54"),
        ("Лондон", "22:54"),
    ]
    assert long_date(moment, LONDON, "ru") == "26 октября 2021"
