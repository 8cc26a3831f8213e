"""The command line as a newcomer uses it: the demo, check-config, counters, latest, signals."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.console import HEADER, SHOWN_HEADER
from tests.conftest import SAMPLES

REPO = Path(__file__).parent.parent


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of the shipped config folder, so runs write their state into tmp_path."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    return tmp_path


def bot(
    workdir: Path, *args: str, stdin: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEMENT_BOT")}
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(workdir / "config" / "bot.toml"), *args],
        input=stdin, capture_output=True, text=True, timeout=timeout, env=env, cwd=workdir,
    )  # fmt: skip


def pushes(stdout: str) -> list[str]:
    """The titles of the pushes printed by the console chat, in order."""
    blocks = stdout.split(HEADER + "\n\n")[1:]
    return [b.splitlines()[0] for b in blocks]


@pytest.mark.slow
def test_demo_shows_summaries_with_counters_then_only_what_is_new(workdir: Path) -> None:
    first = bot(workdir, "run", "--console", "--once")
    assert first.returncode == 0, first.stderr
    # The newest three of the sample feed and the newest of the sample list page, oldest first.
    assert pushes(first.stdout) == [
        "Foreign Minister Sergey Lavrov's remarks at the third meeting of the Moscow format "
        "consultations on Afghanistan, Moscow, October 20, 2021",
        "Vladimir Putin took part in a plenary session of the 18th annual meeting of the Valdai "
        "International Discussion Club, Sochi, October 21, 2021",
        "President Putin's telephone conversation with British Prime Minister Boris Johnson",
        "Consular Section: new opening hours from 1 November 2021",
    ]
    assert first.stdout.count("days have passed since the Salisbury incident") == 4
    assert "Read the full text (https://www.rusemb.org.uk/fnapr/7012)" in first.stdout
    assert "Read the full text (https://www.rusemb.org.uk/fnapr/6998)" in first.stdout
    assert "Traceback" not in first.stderr
    assert (workdir / "state" / "bot.sqlite3").is_file()

    again = bot(workdir, "run", "--console", "--once")
    assert again.returncode == 0
    assert pushes(again.stdout) == []
    assert "No new statements since the last run. The newest 3:" in again.stdout
    shown = again.stdout.split(SHOWN_HEADER + "\n\n")[1:]
    assert [b.splitlines()[0] for b in shown] == [
        "Vladimir Putin took part in a plenary session of the 18th annual meeting of the Valdai "
        "International Discussion Club, Sochi, October 21, 2021",
        "President Putin's telephone conversation with British Prime Minister Boris Johnson",
        "Consular Section: new opening hours from 1 November 2021",
    ]

    # One poll later the feed has two new items, an edit and a dropped one.
    shutil.copy(
        SAMPLES / "embassy-rss-next.xml", workdir / "config" / "samples" / "embassy-rss.xml"
    )
    later = bot(workdir, "run", "--console", "--once")
    assert pushes(later.stdout) == [
        "Embassy comment on the UN Climate Change Conference (COP26) in Glasgow",
        "Consular Section will be closed on 4 November \u2013 День народного единства",
    ]


@pytest.mark.slow
def test_check_config(workdir: Path) -> None:
    ok = bot(workdir, "check-config")
    assert ok.returncode == 0 and "OK (2 feeds, 2 counters)" in ok.stdout
    (workdir / "config" / "bot.toml").write_text(
        '[bot]\ntimezone = "Nowhere/City"\n[[feeds]]\nname = "x"\nurl = "gopher://x"\n',
        encoding="utf-8",
    )
    bad = bot(workdir, "check-config")
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("config: ") for line in lines)
    assert "bot.timezone: unknown time zone 'Nowhere/City'" in bad.stderr
    assert "feeds[0].url: scheme 'gopher' is not supported" in bad.stderr
    assert "Traceback" not in bad.stderr
    # Any command refuses to start on a bad config, with the same lines.
    assert bot(workdir, "run", "--console", "--once").returncode == 2


@pytest.mark.slow
def test_counters_at_any_moment(workdir: Path) -> None:
    out = bot(workdir, "counters", "--at", "2021-10-26T22:54").stdout
    assert out.splitlines()[:3] == ["26 October 2021", "Moscow: 00:54", "London: 22:54"]
    assert "1332 days have passed since the Salisbury incident" in out
    assert "1324 days have passed since the death of Nikolay Glushkov" in out
    utc = bot(workdir, "counters", "--at", "2021-10-26T23:30:00Z").stdout
    assert utc.startswith("27 October 2021") and "1333 days" in utc
    bad = bot(workdir, "counters", "--at", "yesterday")
    assert bad.returncode == 2 and "is not an ISO-8601 time" in bad.stderr


@pytest.mark.slow
def test_latest_from_the_command_line(workdir: Path) -> None:
    bot(workdir, "run", "--console", "--once")
    listing = bot(workdir, "latest", "3")
    assert listing.returncode == 0
    assert [line[:13] for line in listing.stdout.splitlines()] == [
        "26.10.2021 - ", "25.10.2021 - ", "22.10.2021 - "
    ]  # fmt: skip
    full = bot(workdir, "latest").stdout
    assert full.startswith("Consular Section: new opening hours") and "1332" not in full
    bad = bot(workdir, "latest", "0")
    assert bad.returncode == 2 and bad.stdout.startswith("Usage: /latest")

    # Beside the running bot, which may hold the write lock: read-only, so no wait for it.
    conn = sqlite3.connect(workdir / "state" / "bot.sqlite3", isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        assert bot(workdir, "latest").stdout.startswith("Consular Section: new opening hours")
        assert time.monotonic() - started < 4  # the write lock's wait alone was 5 s
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@pytest.mark.slow
def test_console_answers_typed_commands_and_stops_on_sigterm(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEMENT_BOT")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(workdir / "config" / "bot.toml"),
         "run", "--console"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=workdir,
    )  # fmt: skip
    assert proc.stdin and proc.stdout
    proc.stdin.write("/counters\n/latest 2\n/latest zero\n/nonsense\n")
    proc.stdin.flush()
    seen = ""
    deadline = time.monotonic() + 30
    while "I don't know that command" not in seen and time.monotonic() < deadline:
        seen += proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert time.monotonic() - started < 5
    seen += out
    assert "Moscow: " in seen and "days have passed since the Salisbury incident" in seen
    assert "Usage: /latest or /latest N" in seen
    assert "I don't know that command. /help lists what I can do." in seen
    assert pushes(seen)  # the first poll announced the newest statements
    assert "Traceback" not in err


@pytest.mark.slow
def test_database_from_a_newer_version_is_refused(workdir: Path) -> None:
    bot(workdir, "run", "--console", "--once")
    db = sqlite3.connect(workdir / "state" / "bot.sqlite3")
    db.execute("INSERT INTO schema_migrations VALUES (99, 'm099_future', '2030-01-01')")
    db.commit()
    db.close()
    result = bot(workdir, "run", "--console", "--once")
    assert result.returncode == 2
    assert "newer than this bot knows" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_health_and_backup(workdir: Path, tmp_path: Path) -> None:
    missing = bot(workdir, "health")
    assert missing.returncode == 1 and missing.stdout.startswith("unhealthy: database")
    bot(workdir, "run", "--console", "--once")
    healthy = bot(workdir, "health")
    assert healthy.returncode == 0, healthy.stdout
    assert healthy.stdout.splitlines()[0] == "healthy"
    assert re.fullmatch(r"  feed statements: read \d+ s ago", healthy.stdout.splitlines()[1])

    target = tmp_path / "backups" / "bot-backup.sqlite3"
    target.parent.mkdir()
    made = bot(workdir, "backup", str(target))
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"backup written to {target} (statements: 17, subscribers: 0)"
    again = bot(workdir, "backup", str(target))
    assert again.returncode == 2 and "exists" in again.stderr

    # Restore: stop the bot, put the copy in place of the database, start again.
    for leftover in (workdir / "state").glob("bot.sqlite3*"):
        leftover.unlink()
    shutil.copy(target, workdir / "state" / "bot.sqlite3")
    restored = bot(workdir, "latest", "2")
    assert restored.returncode == 0 and restored.stdout.startswith("26.10.2021 - ")


@pytest.mark.slow
def test_json_logs(workdir: Path) -> None:
    import json

    result = bot(workdir, "--log-format", "json", "health")
    assert result.returncode == 1
    run = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(workdir / "config" / "bot.toml"),
         "--log-format", "json", "run", "--console", "--once"],
        capture_output=True, text=True, timeout=60, cwd=workdir,
    )  # fmt: skip
    records = [json.loads(line) for line in run.stderr.splitlines()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["logger"] == "bot.poller" and "3 new to push" in r["message"] for r in records)


# ---- in process ----------------------------------------------------------------------


def _config_with(workdir: Path, feeds: str) -> Path:
    """The shipped config with its [[feeds]] replaced."""
    text = (workdir / "config" / "bot.toml").read_text(encoding="utf-8")
    head = text.split("[[feeds]]", 1)[0]
    counters = "[[counters]]" + text.split("[[counters]]", 1)[1]
    path = workdir / "config" / "custom.toml"
    path.write_text(f"{head}\n{feeds}\n{counters}", encoding="utf-8")
    return path


def test_once_names_the_feed_that_failed_and_exits_1(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main
    from tests.fakes.feed_server import closed_port_url

    url = closed_port_url()
    path = _config_with(
        workdir,
        f'[[feeds]]\nname = "good"\nurl = "samples/embassy-rss.xml"\nannounce_first = 1\n'
        f'[[feeds]]\nname = "typo"\nurl = "{url}"\n',
    )
    assert main(["--config", str(path), "run", "--console", "--once"]) == 1
    out = capsys.readouterr().out
    assert pushes(out) == [
        "President Putin's telephone conversation with British Prime Minister Boris Johnson"
    ]
    assert "Feed typo failed: cannot fetch" in out

    # Run again at once: the feed is backing off, but whoever runs this wants a poll now.
    assert main(["--config", str(path), "run", "--console", "--once"]) == 1
    out = capsys.readouterr().out
    assert "Feed typo failed: cannot fetch" in out
    assert "No new statements since the last run" in out


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "HTML page, not a feed"),
        (b"x" * 6 * 1024 * 1024, "larger than the limit"),
    ],
)
def test_once_reports_a_bad_local_document(
    workdir: Path, capsys: pytest.CaptureFixture[str], body: bytes, reason: str
) -> None:
    from bot.cli import main

    (workdir / "config" / "samples" / "bad.xml").write_bytes(body)
    path = _config_with(workdir, '[[feeds]]\nname = "bad"\nurl = "samples/bad.xml"\n')
    assert main(["--config", str(path), "run", "--console", "--once"]) == 1
    out = capsys.readouterr().out
    assert "Feed bad failed: " in out and reason in out
    assert "No statements yet." in out


@pytest.mark.slow
def test_console_stops_when_piped_input_ends(workdir: Path) -> None:
    started = time.monotonic()
    result = bot(workdir, "run", "--console", stdin="/latest 2\n", timeout=30)
    assert result.returncode == 0, result.stderr
    assert "26.10.2021 - Consular Section" in result.stdout
    assert time.monotonic() - started < 20
    # Input that ends at once (`< /dev/null`): jobs under way at the stop (the daily prune
    # starts with the console) end quietly, not with APScheduler's traceback.
    empty = bot(workdir, "run", "--console", stdin="", timeout=30)
    assert empty.returncode == 0
    assert "Traceback" not in empty.stderr and "ERROR" not in empty.stderr, empty.stderr
