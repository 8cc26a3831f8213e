"""Command replies as users read them: /latest, /counters, /start, /stop, /help, /status."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bot import commands
from bot.config import Config
from bot.model import PollOutcome, PollReport, Statement
from bot.poller import record_poll
from bot.store import Store
from bot.text import html_to_text


def fill(store: Store, config: Config, now: datetime, count: int) -> None:
    items = [
        Statement(f"k{n}", f"Statement {n} & more", f"https://e.org/{n}",
                  now - timedelta(days=count - n), f"Lead {n}")
        for n in range(count, 0, -1)
    ]  # fmt: skip
    record_poll(store, config.feeds[0], items, now)


def test_counters_reply_matches_the_model_site(config: Config, now: datetime) -> None:
    text = html_to_text(commands.counters_reply(config, now), keep_lines=True)
    assert text.splitlines() == [
        "26 October 2021",
        "Moscow: 00:54",
        "London: 22:54",
        "",
        "1332 days have passed since the Salisbury incident - no credible information or "
        "response from the British authorities",
        "",
        "1324 days have passed since the death of Nikolay Glushkov on British soil - no credible "
        "information or response from the British authorities",
    ]


def test_latest_without_statements(store: Store, config: Config, now: datetime) -> None:
    assert "No statements yet" in commands.latest_reply(store, config, now, [])


def test_latest_gives_the_newest_in_full_with_counters(
    store: Store, config: Config, now: datetime
) -> None:
    fill(store, config, now, 5)
    reply = commands.latest_reply(store, config, now, [])
    assert reply.startswith("<b>Statement 5 &amp; more</b>")
    assert "Lead 5" in reply and "1332 days" in reply


def test_latest_n_lists_newest_first(store: Store, config: Config, now: datetime) -> None:
    fill(store, config, now, 5)
    lines = html_to_text(commands.latest_reply(store, config, now, ["3"]), keep_lines=True)
    assert lines.splitlines() == [
        "26.10.2021 - Statement 5 & more",
        "25.10.2021 - Statement 4 & more",
        "24.10.2021 - Statement 3 & more",
    ]


@pytest.mark.parametrize("args", [["0"], ["21"], ["-1"], ["many"], ["1", "2"], ["2.5"]])
def test_latest_bad_argument_gets_one_line(
    store: Store, config: Config, now: datetime, args: list[str]
) -> None:
    reply = commands.latest_reply(store, config, now, args)
    assert reply == "Usage: /latest or /latest N, where N is a whole number from 1 to 20."


def test_start_and_stop_say_what_happened(store: Store, config: Config, now: datetime) -> None:
    fill(store, config, now, 2)
    first = commands.start_reply(True, store.latest(1)[0], config, now)
    assert first.startswith("Subscribed.") and "Statement 2" in first
    assert commands.start_reply(False, None, config, now).startswith("This chat is already")
    assert commands.stop_reply(True).startswith("Unsubscribed")
    assert commands.stop_reply(False).startswith("This chat is not subscribed")


def test_help_lists_admin_commands_only_to_admins(config: Config) -> None:
    assert "/status" not in commands.help_reply(config)
    assert "/latest" in commands.help_reply(config)
    assert "/status" in commands.help_reply(config, is_admin=True)


def test_status_reply_shows_feed_health(store: Store, config: Config, now: datetime) -> None:
    store.ensure_feed(config.feeds[0])
    store.record_failure("statements", "HTTP 503 <Service Unavailable>", now, now)
    store.subscribe(1, "private", now)
    text = html_to_text(
        commands.status_reply(store.status(), config, now + timedelta(minutes=5)), keep_lines=True
    )
    assert "Subscribers: 1" in text
    assert "last poll: 5 min ago" in text
    assert "last success: never" in text
    assert "last error (1 in a row): HTTP 503 <Service Unavailable>" in text


def test_status_reply_shows_a_discovered_feed_and_skipped_items(
    store: Store, config: Config, now: datetime
) -> None:
    from bot.diff import PollDecision

    store.ensure_feed(config.feeds[0])
    store.record_discovered("statements", "https://example.org/rss?a=1&b=2")
    store.apply_poll(
        "statements", PollDecision(), now, skipped=["item 3 ('Bad <one>'): unreadable &#xD800;"]
    )
    text = html_to_text(commands.status_reply(store.status(), config, now), keep_lines=True)
    assert "reads the feed the page names: https://example.org/rss?a=1&b=2" in text
    assert "items skipped in the last poll (1):\n- item 3 ('Bad <one>'): unreadable &#xD800;" in text


def test_poll_reply() -> None:
    outcomes = [
        PollOutcome("a", report=PollReport("a", 2, 0, 1, 0, 4)),
        PollOutcome("b", not_modified=True),
        PollOutcome("c", error="timed out"),
    ]
    assert commands.poll_reply(outcomes).splitlines() == [
        "a: 2 new, 1 edited",
        "b: not modified",
        "c: failed: timed out",
    ]


def test_start_reply_with_a_huge_statement_fits_one_message(
    make_config, store: Store, now: datetime
) -> None:
    from bot.render import MAX_MESSAGE_LENGTH
    from bot.text import telegram_length

    config = make_config(lead_length=3500)
    huge = Statement("k", "Title " * 60, "https://e.org/x", now, "word " * 2000)
    record_poll(store, config.feeds[0], [huge], now)
    reply = commands.start_reply(True, store.latest(1)[0], config, now)
    assert telegram_length(reply) <= MAX_MESSAGE_LENGTH
    assert reply.startswith("Subscribed.") and "days have passed" in reply
