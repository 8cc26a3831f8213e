"""The real bot, as a process, against a fake Bot API server and a feed server on 127.0.0.1.

python-telegram-bot's own HTTP stack talks to the fake; every bot process's log is checked for
the token when it ends.
"""

# ruff: noqa: RUF001 - Russian replies are checked word for word

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from telegram.ext import ExtBot

from bot import commands
from bot.command_table import menu
from bot.config import Config
from bot.delivery import ChatAddress
from bot.store import Store
from bot.telegram_bot import build_application
from bot.telegram_sender import Priority, TelegramSender, priority_args
from tests.conftest import GLUSHKOV, SALISBURY, SAMPLES, build_config
from tests.fakes.bot_api import FakeBotAPI, JSONDict, SentMessage
from tests.fakes.feed_server import FeedServer

TOKEN = "123456:AAH-statement-bot-test-token-0123456789"
BOT_NAME = "statement_test_bot"
ADMIN = 4242
RSS_TYPE = "application/rss+xml; charset=utf-8"
NEW_TITLES = [
    "Embassy comment on the UN Climate Change Conference (COP26) in Glasgow",
    "Consular Section will be closed on 4 November \u2013 День народного единства",
]


def feed_with_extra_item(number: int, title: str) -> bytes:
    """The next-poll sample with one more item on top (published after all the others)."""
    text = (SAMPLES / "embassy-rss-next.xml").read_text(encoding="utf-8")
    item = (
        f"<item><title>{title}</title><link>https://www.rusemb.org.uk/fnapr/{number}</link>"
        f"<guid>https://www.rusemb.org.uk/fnapr/{number}</guid>"
        f"<pubDate>Thu, 28 Oct 2021 12:00:00 +0300</pubDate>"
        f"<description>Lead of {title}.</description></item>"
    )
    return text.replace("<item>", item + "\n<item>", 1).encode("utf-8")


class BotProcess:
    """`statement-bot run` in a subprocess, its log kept in a file."""

    def __init__(
        self,
        root: Path,
        api: FakeBotAPI,
        feed_url: str,
        *,
        feed_toml: str = "",
        counters_toml: str | None = None,
        **bot_keys: object,
    ) -> None:
        """`feed_toml` follows the first feed's keys (more of its keys, more [[feeds]]);
        `counters_toml` replaces the two English counters."""
        self.root = root
        self.api = api
        self.config = root / "config" / "bot.toml"
        self.log_path = root / f"bot-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        keys: dict[str, object] = {
            "state": str(root / "state"),
            "timezone": "Europe/London",
            "clocks": ["Europe/Moscow", "Europe/London"],
            "admins": [ADMIN],
            "send_retry_base": 0.3,
            "send_max_attempts": 3,
            "failure_alert_after": 2,
            "max_backoff": 2,
            **bot_keys,
        }
        lines = ["[bot]", *(f"{k} = {_toml(v)}" for k, v in keys.items())]
        lines += ["[[feeds]]", 'name = "statements"', f'url = "{feed_url}"', "interval = 1",
                  "jitter = 0", feed_toml]  # fmt: skip
        if counters_toml is not None:
            lines.append(counters_toml)
        else:
            for since, text in (("2018-03-04", SALISBURY), ("2018-03-12", GLUSHKOV)):
                lines += ["[[counters]]", f"since = {since}", f"text = {_toml(text)}"]
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self, *args: str, token: str = TOKEN, wait: bool = True) -> BotProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM", "STATEMENT"))}
        env.update(TELEGRAM_BOT_TOKEN=token, TELEGRAM_API_BASE_URL=self.api.base_url)
        self.log_file = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(self.config), *args, "run"],
            stdout=self.log_file, stderr=subprocess.STDOUT, env=env, cwd=self.root,
        )  # fmt: skip
        if wait:
            calls = len(self.api.calls_to("getUpdates"))
            self.api.wait_for_call("getUpdates", calls + 1, timeout=20)
        return self

    def stop(self, timeout: float = 10) -> int:
        assert self.proc
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc
        self.proc.kill()
        self.proc.wait(10)

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _toml(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.fixture
def api() -> Iterator[FakeBotAPI]:
    with FakeBotAPI(token=TOKEN, username=BOT_NAME) as fake:
        yield fake
        assert fake.unknown_calls == []


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with FeedServer() as server:
        server.set("/feed.xml", (SAMPLES / "embassy-rss.xml").read_bytes(), content_type=RSS_TYPE,
                   etag='"v1"')  # fmt: skip
        yield server


@pytest.fixture
def start_bot(
    tmp_path: Path, api: FakeBotAPI, feeds: FeedServer
) -> Iterator[Callable[..., BotProcess]]:
    """Start bots; at the end each is stopped and its whole log is checked for the token."""
    bots: list[BotProcess] = []

    def start(*args: str, wait_baseline: bool = True, **bot_keys: object) -> BotProcess:
        bot = BotProcess(tmp_path, api, feeds.url("/feed.xml"), **bot_keys).start(*args)
        bots.append(bot)
        if wait_baseline:
            wait_until(lambda: _baseline_done(tmp_path), "the first poll")
        return bot

    yield start
    for bot in bots:
        if bot.proc and bot.proc.poll() is None:
            bot.kill()
        assert TOKEN not in bot.log
        assert TOKEN.split(":")[1] not in bot.log
    database = tmp_path / "state" / "bot.sqlite3"
    if database.exists():
        assert TOKEN.encode() not in database.read_bytes()


def _baseline_done(root: Path) -> bool:
    path = root / "state" / "bot.sqlite3"
    if not path.exists():
        return False
    conn = sqlite3.connect(path, timeout=5)
    try:
        row = conn.execute("SELECT baseline_done FROM feeds").fetchone()
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()
    return bool(row and row[0])


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(0.05)


def say(api: FakeBotAPI, chat_id: int, text: str, **kw: object) -> list[SentMessage]:
    """Send `text` as a user and return the bot's answer(s) to that chat."""
    before = len(api.sent_messages(chat_id))
    api.push_message(chat_id, text, **kw)  # type: ignore[arg-type]
    return api.wait_for_messages(before + 1, chat_id=chat_id)[before:]


def titles(messages: list[SentMessage]) -> list[str]:
    """First line of each push, without the bold markup."""
    return [re.sub(r"</?b>", "", m.text.split("\n", 1)[0]) for m in messages]


# ---- users ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_private_chat_subscribes_gets_new_statements_once_in_order_and_unsubscribes(
    start_bot: Callable[..., BotProcess], api: FakeBotAPI, feeds: FeedServer, tmp_path: Path
) -> None:
    start_bot()
    commands = [c["command"] for c in api.commands()]
    assert commands == ["start", "stop", "latest", "search", "counters", "settings", "help"]
    admin_menu = api.commands(scope={"type": "chat", "chat_id": ADMIN})
    assert [c["command"] for c in admin_menu] == [*commands, "status", "poll"]

    [welcome] = say(api, 1001, "/start")
    assert welcome.text.startswith("Subscribed.")
    assert "President Putin's telephone conversation" in welcome.text  # the newest statement
    assert welcome.parse_mode == "HTML"
    assert welcome.link_preview_options == {"is_disabled": True}
    [again] = say(api, 1001, "/start")
    assert again.text.startswith("This chat is already subscribed")

    feeds.set("/feed.xml", (SAMPLES / "embassy-rss-next.xml").read_bytes(), content_type=RSS_TYPE,
              etag='"v2"')  # fmt: skip
    pushes = api.wait_for_messages(4, chat_id=1001)[2:]
    assert titles(pushes) == NEW_TITLES
    assert "days have passed since the Salisbury incident" in pushes[0].text
    time.sleep(2.5)  # more polls: the edit, the dropped item and the rest push nothing
    assert len(api.sent_messages(1001)) == 4

    [bye] = say(api, 1001, "/stop")
    assert bye.text.startswith("Unsubscribed")
    [not_sub] = say(api, 1001, "/stop")
    assert not_sub.text.startswith("This chat is not subscribed")
    feeds.set("/feed.xml", feed_with_extra_item(7015, "After stop"), content_type=RSS_TYPE)
    wait_until(lambda: "After stop" in stored_titles(tmp_path), "the poll after /stop")
    time.sleep(0.5)
    assert len(api.sent_messages(1001)) == 6  # the two /stop replies, no push


def stored_titles(root: Path) -> list[str]:
    conn = sqlite3.connect(root / "state" / "bot.sqlite3", timeout=5)
    try:
        return [r[0] for r in conn.execute("SELECT title FROM statements")]
    finally:
        conn.close()


@pytest.mark.slow
def test_commands_answer_everyone(start_bot: Callable[..., BotProcess], api: FakeBotAPI) -> None:
    start_bot()
    [latest] = say(api, 1002, "/latest")
    assert latest.text.startswith("<b>President Putin's telephone conversation")
    assert "days have passed since the death of Nikolay Glushkov" in latest.text
    [listing] = say(api, 1002, "/latest 3")
    dates = [line[:10] for line in listing.text.splitlines()]
    assert dates == ["25.10.2021", "22.10.2021", "21.10.2021"]
    [bad] = say(api, 1002, "/latest lots")
    assert bad.text == "Usage: /latest or /latest N, where N is a whole number from 1 to 20."
    [counters] = say(api, 1002, "/counters")
    assert re.search(r"Moscow: \d\d:\d\d\nLondon: \d\d:\d\d", counters.text)
    assert "days have passed since the Salisbury incident" in counters.text
    [helped] = say(api, 1002, "/help")
    assert "/latest" in helped.text and "/status" not in helped.text
    [unknown] = say(api, 1002, "/frobnicate")
    assert unknown.text == "I don't know that command. /help lists what I can do."


@pytest.mark.slow
def test_groups_only_admins_subscribe_and_topics_get_their_pushes(
    start_bot: Callable[..., BotProcess], api: FakeBotAPI, feeds: FeedServer
) -> None:
    group, forum = -2001, -1002002
    api.set_chat(group, chat_type="group", title="Readers")
    api.set_admins(group, [501])
    api.set_chat(forum, chat_type="supergroup", title="Forum", is_forum=True)
    api.set_admins(forum, [], creator_id=502)
    start_bot()

    [refused] = say(api, group, f"/start@{BOT_NAME}", user_id=600)
    assert refused.text == "Only the group's administrators can subscribe it."
    [ok] = say(api, group, f"/start@{BOT_NAME}", user_id=501)
    assert ok.text.startswith("Subscribed.")
    [latest] = say(api, group, f"/latest@{BOT_NAME} 2", user_id=600)  # everyone may ask
    assert latest.text.startswith("25.10.2021 - ")
    before = len(api.sent_messages(group))
    api.push_message(group, "/latest@some_other_bot", user_id=600)
    api.push_message(group, "/unknown", user_id=600)  # unaddressed: maybe for another bot
    [hint] = say(api, group, f"/unknown@{BOT_NAME}", user_id=600)
    assert hint.text.startswith("I don't know that command")
    assert len(api.sent_messages(group)) == before + 1

    [topic_ok] = say(api, forum, "/start", user_id=502, message_thread_id=77, is_topic_message=True)
    assert topic_ok.message_thread_id == 77

    feeds.set("/feed.xml", (SAMPLES / "embassy-rss-next.xml").read_bytes(), content_type=RSS_TYPE)
    group_pushes = api.wait_for_messages(before + 3, chat_id=group)[before + 1 :]
    assert titles(group_pushes) == NEW_TITLES
    forum_pushes = api.wait_for_messages(3, chat_id=forum)[1:]
    assert titles(forum_pushes) == NEW_TITLES
    assert {m.message_thread_id for m in forum_pushes} == {77}

    [stop_refused] = say(api, group, "/stop", user_id=600)
    assert stop_refused.text == "Only the group's administrators can unsubscribe it."


@pytest.mark.slow
def test_channels_from_the_config_get_every_push(
    start_bot: Callable[..., BotProcess], api: FakeBotAPI, feeds: FeedServer
) -> None:
    api.set_chat(-1003003, chat_type="channel", title="News")
    start_bot(channels=[-1003003])
    feeds.set("/feed.xml", (SAMPLES / "embassy-rss-next.xml").read_bytes(), content_type=RSS_TYPE)
    assert titles(api.wait_for_messages(2, chat_id=-1003003)) == NEW_TITLES


@pytest.mark.slow
def test_every_telegram_error_reply_is_handled(
    start_bot: Callable[..., BotProcess], api: FakeBotAPI, feeds: FeedServer, tmp_path: Path
) -> None:
    blocked, missing, old_group, new_group, flooded, flaky, broken = (
        3001, 3002, -3003, -1003004, 3005, 3006, 3007
    )  # fmt: skip
    api.set_chat(old_group, chat_type="group")
    api.set_admins(old_group, [7777])
    start_bot()
    for chat in (blocked, missing, old_group, flooded, flaky, broken):
        say(api, chat, "/start")
    api.fail_chat(blocked, "blocked")
    api.fail_chat(missing, "not_found")
    api.fail_chat(old_group, "migrated", migrate_to_chat_id=new_group)
    api.fail_chat(flooded, "flood", times=1, retry_after=2)
    api.fail_chat(flaky, "server_error", times=2, status=502)
    api.fail_chat(broken, "server_error", status=500)  # never recovers
    published = time.time()
    feeds.set("/feed.xml", (SAMPLES / "embassy-rss-next.xml").read_bytes(), content_type=RSS_TYPE)

    assert titles(api.wait_for_messages(2, chat_id=new_group)) == NEW_TITLES
    flooded_pushes = api.wait_for_messages(3, chat_id=flooded)[1:]
    assert titles(flooded_pushes) == NEW_TITLES
    assert flooded_pushes[0].time - published >= 2  # waited as told
    assert titles(api.wait_for_messages(3, chat_id=flaky)[1:]) == NEW_TITLES
    notices = api.wait_for_messages(2, chat_id=ADMIN, timeout=20)
    assert all(f"to chat {broken}" in m.text for m in notices)
    assert "Could not deliver" in notices[0].text

    conn = sqlite3.connect(tmp_path / "state" / "bot.sqlite3", timeout=5)
    subs = dict(
        conn.execute("SELECT chat_id, active || ' ' || COALESCE(reason, '') FROM subscribers")
    )
    assert subs[str(blocked)].startswith("0 Forbidden: bot was blocked by the user")
    assert subs[str(missing)] == "0 Chat not found"
    assert str(old_group) not in subs and subs[str(new_group)].startswith("1 ")
    statuses = dict(conn.execute(
        "SELECT c.chat_id || '/' || s.key, d.status FROM deliveries d "
        "JOIN subscribers c ON c.id = d.subscriber_id JOIN statements s ON s.id = d.statement_id"
    ))  # fmt: skip
    conn.close()
    assert statuses[f"{blocked}/https://www.rusemb.org.uk/fnapr/7014"] == "closed"
    assert statuses[f"{broken}/https://www.rusemb.org.uk/fnapr/7013"] == "failed"
    assert len(api.sent_messages(blocked)) == 1  # only the /start reply


@pytest.mark.slow
def test_admin_commands_and_notices(
    start_bot: Callable[..., BotProcess], api: FakeBotAPI, feeds: FeedServer
) -> None:
    start_bot()
    [status] = say(api, ADMIN, "/status")
    assert "Subscribers: 0" in status.text and "last success: " in status.text
    [polled] = say(api, ADMIN, "/poll")
    assert polled.text.startswith("statements: ")
    [helped] = say(api, ADMIN, "/help")
    assert "/status" in helped.text
    for command in ("/status", "/poll"):
        [refused] = say(api, 5555, command)
        assert refused.text == "I don't know that command. /help lists what I can do."

    feeds.status("/feed.xml", 500)
    [notice] = api.wait_for_messages(4, chat_id=ADMIN, timeout=20)[3:]
    assert "Feed statements has failed 2 polls in a row: HTTP 500" in notice.text
    [status] = say(api, ADMIN, "/status")
    assert re.search(r"last error \(\d+ in a row\): HTTP 500", status.text)
    feeds.set("/feed.xml", (SAMPLES / "embassy-rss.xml").read_bytes(), content_type=RSS_TYPE)
    [recovered] = api.wait_for_messages(6, chat_id=ADMIN, timeout=20)[5:]
    assert "Feed statements works again" in recovered.text


@pytest.mark.slow
def test_restart_after_kill_9_during_fan_out_loses_nothing(
    start_bot: Callable[..., BotProcess], api: FakeBotAPI, feeds: FeedServer, tmp_path: Path
) -> None:
    chats = list(range(10_001, 10_061))
    bot = start_bot()
    bot.stop()
    store = Store.open(tmp_path / "state" / "bot.sqlite3")
    for chat in chats:
        store.subscribe(chat, "private", datetime.now(UTC))
    store.close()
    feeds.set("/feed.xml", (SAMPLES / "embassy-rss-next.xml").read_bytes(), content_type=RSS_TYPE)

    first = start_bot(wait_baseline=False)
    api.delay = 0.05
    wait_until(lambda: len(api.sent_messages()) >= 30, "part of the fan-out", timeout=30)
    first.kill()  # SIGKILL in the middle of 120 messages
    sent_before_crash = len(api.sent_messages())
    assert sent_before_crash < 2 * len(chats)

    start_bot(wait_baseline=False)
    wait_until(lambda: all(len(api.sent_messages(c)) >= 2 for c in chats), "every chat served", 60)
    time.sleep(1)
    duplicates = 0
    for chat in chats:
        received = titles(api.sent_messages(chat))
        deduped = [t for i, t in enumerate(received) if i == 0 or received[i - 1] != t]
        assert deduped == NEW_TITLES, chat
        duplicates += len(received) - len(deduped)
        assert len(received) - len(deduped) <= 1  # only the message in flight to that chat
    assert duplicates <= 64  # at most one in flight per chat, 64 chats at a time


@pytest.mark.slow
def test_sigterm_stops_within_seconds(start_bot: Callable[..., BotProcess]) -> None:
    bot = start_bot()
    started = time.monotonic()
    assert bot.stop() == 0
    assert time.monotonic() - started < 5
    assert "stopping" in bot.log


@pytest.mark.slow
def test_missing_or_rejected_token(tmp_path: Path, api: FakeBotAPI, feeds: FeedServer) -> None:
    bot = BotProcess(tmp_path, api, feeds.url("/feed.xml"))
    bot.start(token="", wait=False)
    assert bot.proc and bot.proc.wait(20) == 2
    assert "no bot token: set TELEGRAM_BOT_TOKEN" in bot.log
    assert "Traceback" not in bot.log

    wrong = "999:wrong-token-value"
    bot.start(token=wrong, wait=False)
    assert bot.proc.wait(20) == 2
    assert "Telegram rejected the token" in bot.log
    assert "Traceback" not in bot.log and wrong not in bot.log


@pytest.mark.slow
def test_token_from_a_file_and_never_in_debug_logs(
    tmp_path: Path, api: FakeBotAPI, feeds: FeedServer
) -> None:
    """Container secrets: TELEGRAM_BOT_TOKEN_FILE; even DEBUG logs never show the token."""
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n", encoding="utf-8")
    bot = BotProcess(tmp_path, api, feeds.url("/feed.xml"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM", "STATEMENT"))}
    env.update(TELEGRAM_BOT_TOKEN_FILE=str(secret), TELEGRAM_API_BASE_URL=api.base_url)
    with bot.log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(bot.config), "--log-level", "DEBUG",
             "run"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip
        try:
            api.wait_for_call("getUpdates", timeout=20)
            say(api, 1009, "/start")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    log_text = bot.log
    assert "logged in as @statement_test_bot" in log_text
    assert "sendMessage" in log_text  # DEBUG shows the requests, yet
    assert TOKEN not in log_text and TOKEN.split(":")[1] not in log_text


@pytest.mark.slow
def test_a_slow_poll_does_not_hold_up_other_commands(
    start_bot: Callable[..., BotProcess], api: FakeBotAPI, feeds: FeedServer
) -> None:
    start_bot(fetch_timeout=5)
    feeds.slow("/feed.xml", (SAMPLES / "embassy-rss.xml").read_bytes(), delay=3)
    api.push_message(ADMIN, "/poll")
    time.sleep(0.3)
    [latest] = say(api, 1010, "/latest")
    assert latest.text.startswith("<b>President Putin")
    assert api.sent_messages(ADMIN) == []  # /poll is still waiting for the slow feed
    [polled] = api.wait_for_messages(1, chat_id=ADMIN, timeout=15)
    assert polled.text.startswith("statements: ")
    assert latest.time < polled.time


@pytest.mark.slow
def test_an_edited_command_is_not_run_again(
    start_bot: Callable[..., BotProcess], api: FakeBotAPI
) -> None:
    start_bot()
    say(api, 1011, "/latest")
    api.push_update(
        {
            "edited_message": {
                "message_id": 1,
                "date": int(time.time()),
                "edit_date": int(time.time()),
                "chat": {"id": 1011, "type": "private", "first_name": "Test"},
                "from": {"id": 1011, "is_bot": False, "first_name": "Test"},
                "text": "/latest 3",
                "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
            }
        }
    )
    [after] = say(api, 1011, "/counters")  # handled after the edit, so the edit was seen
    assert "Moscow:" in after.text
    assert len(api.sent_messages(1011)) == 2


@pytest.mark.slow
def test_a_revoked_token_stops_the_bot_with_a_clear_line(
    start_bot: Callable[..., BotProcess], api: FakeBotAPI
) -> None:
    bot = start_bot(telegram_check_interval=0.5)
    api.token = "999999:another-token-after-revoke"  # what @BotFather's /revoke does
    assert bot.proc and bot.proc.wait(20) == 2
    last = bot.log.strip().splitlines()[-1]
    assert "ERROR" in last and "Telegram no longer accepts the token" in last


@pytest.mark.slow
def test_old_finished_deliveries_are_pruned_at_start(
    start_bot: Callable[..., BotProcess], tmp_path: Path
) -> None:
    start_bot().stop()
    path = tmp_path / "state" / "bot.sqlite3"
    store = Store.open(path)
    now = datetime.now(UTC)
    store.subscribe(1020, "private", now)
    [statement] = store.latest(1)
    store.db.execute(
        "INSERT INTO deliveries (statement_id, subscriber_id, status, sort_at, next_attempt_at, "
        "created_at) SELECT ?, id, 'sent', ?, ?, '2000-01-01T00:00:00.000000+00:00' "
        "FROM subscribers WHERE chat_id = '1020'",
        [statement.id, now.isoformat(), now.isoformat()],
    )
    store.close()

    def deliveries() -> int:
        conn = sqlite3.connect(path, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
        finally:
            conn.close()

    assert deliveries() == 1
    start_bot()
    wait_until(lambda: deliveries() == 0, "the prune job")


# ---- chats: replies first, one chat at a time, admin answers in private (issue 9) -----------


@pytest.fixture
async def limited_bot(tmp_path: Path, api: FakeBotAPI) -> AsyncIterator[ExtBot]:
    """The bot of build_application (its rate limiter included), without handlers or polling."""
    config: Config = build_config(tmp_path, api_base_url=api.base_url)
    bot = build_application(config, TOKEN).bot
    await bot.initialize()
    yield bot
    await bot.shutdown()


async def test_a_reply_overtakes_queued_pushes(limited_bot: ExtBot, api: FakeBotAPI) -> None:
    sender = TelegramSender(limited_bot)
    pushes = [asyncio.create_task(sender.send(ChatAddress(20_000 + i), f"push {i}"))
              for i in range(30)]  # fmt: skip
    await api.wait_for_messages_async(3)
    await limited_bot.send_message(999, "reply", **priority_args(limited_bot, Priority.REPLY))
    await asyncio.gather(*pushes)
    order = [m.chat_id for m in api.sent_messages()]
    assert order.index(999) <= 5  # behind the pushes already granted, ahead of the other 25
    # 30/s overall; a 31st within one second can only come from a request's travel time varying.
    assert api.peak_rate() <= 31


async def test_a_chat_flooding_commands_does_not_starve_another(
    limited_bot: ExtBot, api: FakeBotAPI
) -> None:
    flood = [asyncio.create_task(limited_bot.send_message(1, f"answer {i}")) for i in range(20)]
    await api.wait_for_messages_async(1, chat_id=1)
    await limited_bot.send_message(2, "the other chat")
    # Chat 1 had a short burst, then gets Telegram's one a second: chat 2 did not wait for it.
    flooded = [m.text for m in api.sent_messages(1)]
    assert len(flooded) <= 4
    assert flooded == [f"answer {i}" for i in range(len(flooded))]  # in order within the chat
    for task in flood:
        task.cancel()  # callers that give up leave no hole in the queue
    await asyncio.gather(*flood, return_exceptions=True)
    await limited_bot.send_message(3, "after the flood")


async def test_in_a_backlog_of_replies_the_newest_question_goes_first(
    limited_bot: ExtBot, api: FakeBotAPI
) -> None:
    backlog = [asyncio.create_task(limited_bot.send_message(30_000 + i, "answer"))
               for i in range(90)]  # fmt: skip
    await asyncio.sleep(1.2)  # the oldest has waited over a second: the backlog is congested
    await limited_bot.send_message(999, "fresh")
    assert len(api.sent_messages()) <= 45  # 90 take 3 s; the fresh one did not wait for them
    await asyncio.gather(*backlog)
    assert len({m.chat_id for m in api.sent_messages()}) == 91  # the backlog all went too


@pytest.mark.slow
def test_a_burst_of_start_does_not_hold_up_another_users_latest(
    start_bot: Callable[..., BotProcess], api: FakeBotAPI, tmp_path: Path
) -> None:
    start_bot()
    burst = list(range(50_000, 50_200))
    for chat in burst:
        api.push_message(chat, "/start")
    api.push_message(1012, "/start")  # one chat's commands keep their order
    api.push_message(1012, "/stop")
    [latest] = say(api, 1013, "/latest")
    assert latest.text.startswith("<b>President Putin")
    answered_before = [m.chat_id for m in api.sent_messages()].index(1013)
    assert answered_before < 60  # was: after all 202 (each update handled in turn, 30/s)
    api.wait_for_messages(len(burst) + 3, timeout=30)
    assert all(len(api.sent_messages(chat)) == 1 for chat in burst)
    replies = [m.text.split(".")[0] for m in api.sent_messages(1012)]
    assert replies == ["Subscribed", "Unsubscribed: no more pushes to this chat"]
    conn = sqlite3.connect(tmp_path / "state" / "bot.sqlite3", timeout=5)
    active = conn.execute("SELECT active FROM subscribers WHERE chat_id = '1012'").fetchone()
    conn.close()
    assert active == (0,)


@pytest.mark.slow
def test_sigterm_during_a_command_flood_stops_within_seconds(
    start_bot: Callable[..., BotProcess], api: FakeBotAPI
) -> None:
    bot = start_bot()
    for _ in range(200):
        api.push_message(1015, "/latest")  # one answer a second: 200 s to answer them all
    api.wait_for_messages(1, chat_id=1015)
    started = time.monotonic()
    assert bot.stop() == 0
    assert time.monotonic() - started < 5
    assert "stopped with" in bot.log and "commands unanswered" in bot.log
    assert "Traceback" not in bot.log


@pytest.mark.slow
def test_admin_commands_in_a_group_are_answered_in_private(
    start_bot: Callable[..., BotProcess], api: FakeBotAPI
) -> None:
    group = -2002
    api.set_chat(group, chat_type="group", title="Readers")
    start_bot()
    [note] = say(api, group, f"/status@{BOT_NAME}", user_id=ADMIN)
    assert note.text == commands.sent_privately_reply()
    [status] = api.wait_for_messages(1, chat_id=ADMIN)
    assert "Subscribers: 0" in status.text
    for command in ("/status", "/poll"):
        [hint] = say(api, group, f"{command}@{BOT_NAME}", user_id=600)  # not an admin
        assert hint.text == commands.unknown_command_reply()
    [helped] = say(api, group, f"/help@{BOT_NAME}", user_id=ADMIN)
    assert "/status" not in helped.text  # would tell the group who the admins are

    api.fail_chat(
        ADMIN, "blocked", description="Forbidden: bot can't initiate conversation with a user"
    )
    [refused] = say(api, group, f"/poll@{BOT_NAME}", user_id=ADMIN)
    assert refused.text == (
        f"Admin answers go to a private chat: open one with @{BOT_NAME}, send /start, then ask again."
    )
    assert len(api.sent_messages(ADMIN)) == 1
    group_texts = "\n".join(m.text for m in api.sent_messages(group))
    assert "Subscribers" not in group_texts
    assert not re.search(r"^statements: ", group_texts, re.M)  # /poll's line for the feed


@pytest.mark.slow
def test_a_locked_database_costs_one_line_and_reads_still_answer(
    start_bot: Callable[..., BotProcess], api: FakeBotAPI, tmp_path: Path
) -> None:
    bot = start_bot()
    conn = sqlite3.connect(tmp_path / "state" / "bot.sqlite3", timeout=5, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        [latest] = say(api, 1014, "/latest")  # a WAL reader never waits for a writer
        assert latest.text.startswith("<b>President Putin")
        [failed] = say(api, 1014, "/start")  # the write gives up after its busy timeout
        assert failed.text == commands.failure_reply()
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    [ok] = say(api, 1014, "/start")
    assert ok.text.startswith("Subscribed.")
    assert "database unavailable: database is locked" in bot.log


# ---- /settings, languages, /search (issue 11) -----------------------------------------------

INFORMS_TOML = """title = { en = "Statements", ru = "Заявления" }
[[feeds]]
name = "informs"
url = "{url}"
interval = 1
jitter = 0
title = { en = "Embassy informs", ru = "Посольство информирует" }
"""


def small_rss(*numbers: int) -> bytes:
    """An RSS feed of "Notice N" items, the highest number the newest."""
    items = "".join(
        f"<item><title>Notice {n}</title><link>https://example.org/informs/{n}</link>"
        f"<guid>https://example.org/informs/{n}</guid>"
        f"<pubDate>Thu, 28 Oct 2021 {n % 24:02d}:00:00 +0000</pubDate></item>"
        for n in sorted(numbers, reverse=True)
    )
    head = '<?xml version="1.0"?><rss version="2.0"><channel><title>Informs</title>'
    return f"{head}{items}</channel></rss>".encode()


def baselines_done(root: Path, feeds: int) -> bool:
    conn = sqlite3.connect(root / "state" / "bot.sqlite3", timeout=5)
    try:
        return conn.execute("SELECT COUNT(*) FROM feeds WHERE baseline_done").fetchone()[0] == feeds
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def press(api: FakeBotAPI, chat_id: int, message_id: int, label: str, **kw: object) -> JSONDict:
    """Press the button whose text contains `label`; return the callback query's answer."""
    [data] = [d for row in api.buttons(chat_id, message_id) for t, d in row if label in t]
    query = api.push_callback_query(chat_id, message_id, data, **kw)  # type: ignore[arg-type]
    return api.wait_for_callback_answer(query)


@pytest.fixture
def two_feeds(
    start_bot: Callable[..., BotProcess], feeds: FeedServer, tmp_path: Path
) -> Callable[..., BotProcess]:
    """A bot with two sections: "statements" (the embassy sample) and "informs"."""
    feeds.set("/informs.xml", small_rss(1), content_type=RSS_TYPE)

    def start(**keys: object) -> BotProcess:
        toml = INFORMS_TOML.replace("{url}", feeds.url("/informs.xml"))
        bot = start_bot(feed_toml=toml, **keys)
        wait_until(lambda: baselines_done(tmp_path, 2), "the first poll of both feeds")
        return bot

    return start


@pytest.mark.slow
def test_settings_buttons_edit_one_message_and_apply_to_what_is_recorded_next(
    two_feeds: Callable[..., BotProcess], api: FakeBotAPI, feeds: FeedServer, tmp_path: Path
) -> None:
    two_feeds()
    chat = 1101
    say(api, chat, "/start")
    [shown] = say(api, chat, "/settings")
    assert shown.text.startswith("<b>Settings of this chat</b>\nSections: Statements, Embassy")
    keyboard = api.buttons(chat, shown.message_id)
    assert [t for row in keyboard for t, _ in row] == [
        "✅ Statements", "✅ Embassy informs", "🔔 Sound: on", "✓ English", "Русский",
    ]  # fmt: skip
    assert all(len(d.encode()) <= 64 for row in keyboard for _, d in row)
    sent = len(api.sent_messages(chat))

    # An informs statement queued for the chat (held up by a flood wait) before the change...
    api.fail_chat(chat, "flood", times=1, retry_after=3)
    feeds.set("/informs.xml", small_rss(1, 2), content_type=RSS_TYPE)
    wait_until(lambda: "Notice 2" in stored_titles(tmp_path), "Notice 2 recorded")
    assert press(api, chat, shown.message_id, "Embassy informs")["text"] == "Saved."
    wait_until(lambda: len(api.edits) == 1, "the edit")
    assert "\nSections: Statements\n" in api.bot_message(chat, shown.message_id)["text"]
    # ...the last section stays on: the press is answered and nothing changes.
    assert press(api, chat, shown.message_id, "Statements")["text"] == (
        "At least one section stays on."
    )
    press(api, chat, shown.message_id, "Sound")
    wait_until(lambda: len(api.edits) == 2, "the second edit")
    assert "🔕" in str(api.buttons(chat, shown.message_id))

    # After it: only the sections on, silently; the queued one still comes.
    feeds.set("/informs.xml", small_rss(1, 2, 3), content_type=RSS_TYPE)
    feeds.set("/feed.xml", feed_with_extra_item(7020, "After settings"), content_type=RSS_TYPE)
    wait_until(lambda: {"Notice 3", "After settings"} <= set(stored_titles(tmp_path)), "polls")
    api.wait_for_messages(sent + 4, chat_id=chat, timeout=20)
    time.sleep(1.5)  # and nothing more
    pushes = api.sent_messages(chat)[sent:]
    assert sorted(titles(pushes)) == sorted(["Notice 2", *NEW_TITLES, "After settings"])
    assert all(m.params.get("disable_notification") is True for m in pushes)
    assert len(api.edits) == 2 and api.calls_to("answerCallbackQuery")  # no message per press


@pytest.mark.slow
def test_in_groups_only_admins_change_settings_and_forged_presses_change_nothing(
    two_feeds: Callable[..., BotProcess], api: FakeBotAPI
) -> None:
    group, other = -2101, -2102
    for chat in (group, other):
        api.set_chat(chat, chat_type="group", title="Readers")
        api.set_admins(chat, [501])
    two_feeds()
    [refused] = say(api, group, f"/settings@{BOT_NAME}", user_id=600)
    assert refused.text == "Only the group's administrators can change its settings."
    [shown] = say(api, group, f"/settings@{BOT_NAME}", user_id=501)
    mid = shown.message_id
    assert "This chat is not subscribed" in shown.text  # settings before /start are kept

    answer = press(api, group, mid, "Embassy informs", user_id=600)
    assert answer["text"] == "Only the group's administrators can change its settings."
    stale = "This button is out of date: send /settings again."
    for data in (f"s:{other}:f0:informs", f"s:{group}:f0:nope", f"s:{group}:l:xx", "s:9:zz:",
                 "s:", f"s:{group}:q1"):  # fmt: skip
        query = api.push_callback_query(group, mid, data, user_id=501)
        assert api.wait_for_callback_answer(query)["text"] == stale, data
    # A press on another chat's message (forged: that message has no such button).
    query = api.push_callback_query(other, 0, f"s:{group}:q1:", user_id=501,
                                    message=api.bot_message(group, mid) | {"chat": {
                                        "id": other, "type": "group", "title": "x"}})  # fmt: skip
    assert api.wait_for_callback_answer(query)["text"] == stale
    assert api.edits == []

    # Telegram fails the admin check: the press is answered with one line, no message is sent.
    api.fail_chat(group, "server_error", times=1, methods=("getChatMember",))
    sent = len(api.sent_messages(group))
    assert press(api, group, mid, "Русский", user_id=501)["text"] == commands.failure_reply()
    assert len(api.sent_messages(group)) == sent and api.edits == []

    assert press(api, group, mid, "Русский", user_id=501)["text"] == "Сохранено."
    wait_until(lambda: len(api.edits) == 1, "the edit")
    edited = api.bot_message(group, mid)
    assert edited["text"].startswith("<b>Настройки этого чата</b>\nРазделы: Заявления, Посольство")
    assert [t for row in api.buttons(group, mid) for t, _ in row][-2:] == ["English", "✓ Русский"]
    press(api, group, mid, "Русский", user_id=501)  # changes nothing: no edit, no error
    [counters] = say(api, group, f"/counters@{BOT_NAME}", user_id=600)
    assert "Москва: " in counters.text
    assert len(api.edits) == 1
    assert [m.message_id for m in api.sent_messages(group)].count(mid) == 1


@pytest.mark.slow
def test_a_forums_topics_subscribe_stop_and_choose_apart(
    two_feeds: Callable[..., BotProcess], api: FakeBotAPI, feeds: FeedServer, tmp_path: Path
) -> None:
    forum = -1002101
    api.set_chat(forum, chat_type="supergroup", title="Forum", is_forum=True)
    api.set_admins(forum, [], creator_id=502)
    two_feeds()

    def in_topic(topic: int, text: str, **kw: object) -> SentMessage:
        [answer] = say(api, forum, text, user_id=502, message_thread_id=topic,
                       is_topic_message=True, **kw)  # fmt: skip
        assert answer.message_thread_id == topic
        return answer

    assert in_topic(77, "/start").text.startswith("Subscribed. I will send this topic")
    assert in_topic(78, "/start").text.startswith("Subscribed. I will send this topic")
    shown = in_topic(78, "/settings")
    assert shown.text.startswith("<b>Settings of this topic</b>\nSections: Statements, Embassy")
    # Topic 78 turns "Embassy informs" off and speaks Russian; topic 77 keeps everything.
    assert press(api, forum, shown.message_id, "Embassy informs", user_id=502)["text"] == "Saved."
    wait_until(lambda: len(api.edits) == 1, "the edit")
    assert press(api, forum, shown.message_id, "Русский", user_id=502)["text"] == "Сохранено."
    wait_until(lambda: len(api.edits) == 2, "the second edit")
    edited = api.bot_message(forum, shown.message_id)
    assert edited["text"].startswith("<b>Настройки этой темы</b>\nРазделы: Заявления\n")
    assert in_topic(77, "/settings").text.startswith(
        "<b>Settings of this topic</b>\nSections: Statements, Embassy informs\n"
    )

    before = len(api.sent_messages(forum))
    feeds.set("/informs.xml", small_rss(1, 2), content_type=RSS_TYPE)
    feeds.set("/feed.xml", feed_with_extra_item(7020, "After settings"), content_type=RSS_TYPE)
    wait_until(lambda: {"Notice 2", "After settings"} <= set(stored_titles(tmp_path)), "polls")
    want = 2 * len(NEW_TITLES) + 2 + 1  # 77: all of them and Notice 2; 78: the statements
    api.wait_for_messages(before + want, chat_id=forum, timeout=20)
    time.sleep(1.5)  # and nothing more
    pushes = api.sent_messages(forum)[before:]
    by_topic = {t: [m for m in pushes if m.message_thread_id == t] for t in (77, 78)}
    assert sorted(titles(by_topic[77])) == sorted([*NEW_TITLES, "After settings", "Notice 2"])
    assert sorted(titles(by_topic[78])) == sorted([*NEW_TITLES, "After settings"])
    assert all("Читать полностью" in m.text for m in by_topic[78])
    assert not any("Читать полностью" in m.text for m in by_topic[77])
    # Telegram's per-chat limit is the forum's, not each topic's: about 1 s apart.
    sent_at = sorted(m.monotonic for m in pushes)
    assert all(b - a >= 0.9 for a, b in itertools.pairwise(sent_at)), sent_at

    assert in_topic(77, "/stop").text.startswith("Unsubscribed: no more pushes to this topic.")
    assert in_topic(77, "/stop").text == (
        "This topic is not subscribed, but other topics of this forum are: send /stop in each "
        "of them to stop theirs."
    )
    before = len(api.sent_messages(forum))
    feeds.set("/feed.xml", feed_with_extra_item(7021, "After stop"), content_type=RSS_TYPE)
    [last] = api.wait_for_messages(before + 1, chat_id=forum, timeout=20)[before:]
    time.sleep(1.5)
    assert len(api.sent_messages(forum)) == before + 1
    assert (last.message_thread_id, titles([last])) == (78, ["After stop"])


@pytest.mark.slow
def test_a_russian_user_is_answered_in_russian_with_plural_days_and_russian_menus(
    start_bot: Callable[..., BotProcess], api: FakeBotAPI
) -> None:
    since = datetime.now(ZoneInfo("Europe/London")).date() - timedelta(days=1332)
    start_bot(
        counters_toml=f"""[[counters]]
since = {since.isoformat()}
text = "{{days}} days have passed since the Salisbury incident"
[counters.ru]
one = "{{days}} день прошёл со дня инцидента в Солсбери"
few = "{{days}} дня прошло со дня инцидента в Солсбери"
many = "{{days}} дней прошло со дня инцидента в Солсбери"
"""
    )
    [counters] = say(api, 1201, "/counters", language_code="ru")
    assert "1332 дня прошло со дня инцидента в Солсбери" in counters.text
    assert "Москва: " in counters.text
    [started] = say(api, 1201, "/start", language_code="ru")
    assert started.text.startswith("Подписка оформлена.")
    [helped] = say(api, 1201, "/help", language_code="ru")
    assert "/settings - Разделы, тихие уведомления, язык" in helped.text
    [unknown] = say(api, 1201, "/frobnicate", language_code="ru")
    assert unknown.text == "Такой команды я не знаю. /help перечисляет, что я умею."
    [english] = say(api, 1202, "/counters", language_code="en-GB")
    assert "1332 days have passed since the Salisbury incident" in english.text

    assert api.commands() == api.commands(language_code="en")
    assert [c["description"] for c in api.commands(language_code="ru")] == [
        text for _, text in menu("ru")
    ]
    admin_ru = api.commands(scope={"type": "chat", "chat_id": ADMIN}, language_code="ru")
    assert [(c["command"], c["description"]) for c in admin_ru] == menu("ru", admin=True)
    [status] = say(api, ADMIN, "/status", language_code="ru")
    assert status.text.startswith("<b>Состояние</b>")


@pytest.mark.slow
def test_search_answers_hostile_queries_with_a_list_or_one_line(
    start_bot: Callable[..., BotProcess], api: FakeBotAPI
) -> None:
    start_bot()
    [found] = say(api, 1301, "/search Johnson")
    assert found.text.startswith("25.10.2021 - ") and "Boris Johnson" in found.text
    for query in ('"', "AND", "*", "-", "NEAR(", 'Johnson" OR "x', "NOT Johnson", "a*b -c ^d:"):
        [reply] = say(api, 1301, f"/search {query}")
        assert reply.text != commands.failure_reply(), query
        assert "\n" not in reply.text or reply.text.startswith(tuple("0123456789")), reply.text
    [usage] = say(api, 1301, "/search")
    assert usage.text == "Usage: /search WORDS, for example /search Salisbury."
    [russian] = say(api, 1302, "/search NEAR(", language_code="ru")
    assert russian.text.startswith(("Ни одно заявление", "Как использовать"))
