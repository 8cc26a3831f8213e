"""Storage faults at start (issue 9): one line, a documented exit code, the file untouched.

Every command that opens the database goes through bot.cli.main in-process. Each case checks
the database's bytes before and after: a damaged file is never "repaired" or migrated.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import store as store_module
from bot.cli import main
from bot.config import FeedConfig
from bot.model import Statement
from bot.poller import record_poll
from bot.store import EXIT_BUSY, EXIT_DAMAGED, EXIT_UNWRITABLE, Store, StoreOpenError
from tests.conftest import SAMPLES

REPO = Path(__file__).parent.parent
OPENING = [["run", "--console", "--once"], ["latest"], ["latest", "3"]]
STATEMENTS = 400  # a few hundred statements: the file has dozens of pages


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """main() points the root logger at the stream of the moment (capsys's): put it back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("STATEMENT_BOT_STATE", raising=False)
    monkeypatch.delenv("STATEMENT_BOT_CONFIG", raising=False)
    path = tmp_path / "bot.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [bot]
            state = "state"

            [[feeds]]
            name = "statements"
            url = "{SAMPLES / "embassy-rss.xml"}"

            [[counters]]
            since = 2018-03-04
            text = "{{days}} days"
            """
        )
    )
    return path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "bot.sqlite3"


def make_database(path: Path, statements: int = STATEMENTS) -> None:
    """A real database as the bot leaves it: statements, a subscriber and its outbox rows,
    the feed read just now (so `health` has nothing else to complain about)."""
    store = Store.open(path)
    feed = FeedConfig(name="statements", url=str(SAMPLES / "embassy-rss.xml"), flood_limit=50)
    now = datetime.now(UTC)
    store.subscribe(1, "private", now)
    lead = "The two leaders discussed bilateral relations. " * 10
    entries = [
        Statement(f"k{i}", f"Statement {i}", f"https://example.org/{i}",
                  now - timedelta(hours=statements - i), lead)
        for i in range(statements)
    ]  # fmt: skip
    record_poll(store, feed, entries[:1], now)  # the first poll is the baseline
    record_poll(store, feed, entries, now)  # the newest 50 are pushed: outbox rows
    store.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_cli(
    capsys: pytest.CaptureFixture[str], config_file: Path, *args: str
) -> tuple[int, str, str]:
    code = main(["--config", str(config_file), *args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# ---- damaged files -----------------------------------------------------------------------


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garbage_header(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(random.Random(1).randbytes(100) + data[100:])


def garbage_middle(path: Path) -> None:
    """16 KB of garbage in the middle, on page boundaries, as the issue found it."""
    data = path.read_bytes()
    start = (len(data) // 2) // 4096 * 4096
    path.write_bytes(data[:start] + random.Random(2).randbytes(16384) + data[start + 16384 :])


DAMAGE = {"truncated": truncate, "garbage header": garbage_header, "garbage middle": garbage_middle}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("command", OPENING, ids=" ".join)
def test_a_damaged_database_is_one_line_and_left_untouched(
    capsys, config_file: Path, db_path: Path, damage: str, command: list[str]
) -> None:
    make_database(db_path)
    assert len(db_path.read_bytes()) > 40 * 4096
    DAMAGE[damage](db_path)
    before = digest(db_path)
    code, out, err = run_cli(capsys, config_file, *command)
    assert code == EXIT_DAMAGED == 3
    line = one_line(err)
    assert line.startswith(f"statement-bot: database {db_path} is damaged (")
    assert "restore a backup" in line
    assert digest(db_path) == before
    if command[0] == "run":
        assert "Lavrov" not in out  # nothing was polled or pushed from it


def test_a_damaged_database_is_not_migrated(db_path: Path, monkeypatch) -> None:
    """A newer bot with a pending migration must not run it on a file that fails the check."""
    make_database(db_path)
    garbage_middle(db_path)
    before = digest(db_path)
    ran = []
    from bot import migrations

    future = migrations.LATEST_VERSION + 1
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, (future, ran.append)])
    monkeypatch.setattr(migrations, "LATEST_VERSION", future)
    monkeypatch.setattr(store_module, "LATEST_VERSION", future)
    with pytest.raises(StoreOpenError) as caught:
        Store.open(db_path)
    assert caught.value.exit_code == EXIT_DAMAGED
    assert f"database {db_path} is damaged (" in str(caught.value)
    assert ran == [] and digest(db_path) == before


def test_health_says_unhealthy_on_garbage_in_the_middle(
    capsys, config_file: Path, db_path: Path
) -> None:
    """Issue 9, item 5: `health` said healthy on this file while the bot pushed from it."""
    make_database(db_path)
    garbage_middle(db_path)
    before = digest(db_path)
    code, out, _err = run_cli(capsys, config_file, "health")
    assert code == 1
    line = one_line(out)
    assert line.startswith(f"unhealthy: database {db_path} is damaged (")
    assert line.endswith("stop the bot, set the file aside and restore a backup")
    assert digest(db_path) == before


def test_health_check_is_bounded_in_time(
    capsys, config_file: Path, db_path: Path, monkeypatch
) -> None:
    make_database(db_path)
    monkeypatch.setattr("bot.cli.CHECK_SECONDS", -1.0)  # out of time before it starts
    code, out, _ = run_cli(capsys, config_file, "health")
    lines = out.splitlines()
    assert lines[0] == "healthy" and code == 0  # an unfinished check proves nothing either way
    assert "  database: check timed out after -1 s (not verified)" in lines
    monkeypatch.setattr("bot.cli.CHECK_SECONDS", 5.0)
    code, out, _ = run_cli(capsys, config_file, "health")
    assert "  database: quick_check ok" in out.splitlines()


def test_backup_of_a_damaged_database_is_refused(
    capsys, config_file: Path, db_path: Path, tmp_path: Path
) -> None:
    make_database(db_path)
    garbage_middle(db_path)
    before = digest(db_path)
    target = tmp_path / "copy.sqlite3"
    code, _out, err = run_cli(capsys, config_file, "backup", str(target))
    assert code == EXIT_DAMAGED
    assert one_line(err).startswith(f"statement-bot: database {db_path} is damaged (")
    assert list(tmp_path.glob("copy.sqlite3*")) == []  # no copy that looks like a good one
    assert digest(db_path) == before


# ---- locked ------------------------------------------------------------------------------


@contextmanager
def held_lock(path: Path, exclusive: bool) -> Iterator[None]:
    """Another connection keeps the write lock (exclusive: also keeps readers out)."""
    holder = sqlite3.connect(path, isolation_level=None)
    if exclusive:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE" if exclusive else "BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.parametrize("exclusive", [False, True], ids=["writer", "exclusive"])
@pytest.mark.parametrize("command", OPENING, ids=" ".join)
def test_a_locked_database_is_one_line_after_a_short_wait(
    capsys, config_file: Path, db_path: Path, monkeypatch, command: list[str], exclusive: bool
) -> None:
    make_database(db_path, statements=10)
    monkeypatch.setattr(store_module, "OPEN_BUSY_TIMEOUT", 0.3)  # the default 5 s: slow test
    before = digest(db_path)
    with held_lock(db_path, exclusive):
        started = time.monotonic()
        code, out, err = run_cli(capsys, config_file, *command)
        waited = time.monotonic() - started
    if command[0] == "latest" and not exclusive:
        # It only reads, read-only: beside a writer (the running bot) it answers at once.
        assert (code, err) == (0, "") and out.strip() and waited < 3
        assert digest(db_path) == before
        return
    assert code == EXIT_BUSY == 4
    line = one_line(err)
    assert line.startswith(f"statement-bot: database {db_path} is locked by another process")
    assert "waited 0.3 s" in line and "another bot" in line
    assert waited < 3
    assert digest(db_path) == before


@pytest.mark.slow
def test_locked_at_start_answers_within_seconds_not_31(config_file: Path, db_path: Path) -> None:
    """Another process holds the lock; a real start with the default wait (the figure)."""
    make_database(db_path, statements=10)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None); "
         "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(60)", str(db_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STATEMENT_BOT")}
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "bot", "--config", str(config_file), "run", "--console",
             "--once"],
            capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
        )  # fmt: skip
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == EXIT_BUSY, result.stderr
    assert "is locked by another process (waited 5 s)" in one_line(result.stderr)
    assert waited < 10, waited


# ---- disk full ---------------------------------------------------------------------------


def limited_to_current_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate a full disk: PRAGMA max_page_count caps the file at its current size, and
    SQLite then fails a write that needs a new page with SQLITE_FULL, as on a full disk."""
    real = store_module._open_connection

    def capped(target: str, busy_timeout: float, *, uri: bool = False) -> sqlite3.Connection:
        conn = real(target, busy_timeout, uri=uri)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={max(pages, 1)}")
        return conn

    monkeypatch.setattr(store_module, "_open_connection", capped)


def test_disk_full_during_a_migration_is_one_line_and_changes_nothing(
    capsys, config_file: Path, db_path: Path, monkeypatch
) -> None:
    from bot import migrations

    make_database(db_path)
    before = digest(db_path)

    def m_grow(db) -> None:  # a migration that needs new pages, as a new index does
        db.execute("CREATE INDEX statements_title ON statements (title, lead)")

    future = migrations.LATEST_VERSION + 1
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, (future, m_grow)])
    monkeypatch.setattr(migrations, "LATEST_VERSION", future)
    monkeypatch.setattr(store_module, "LATEST_VERSION", future)
    limited_to_current_size(monkeypatch)
    code, _, err = run_cli(capsys, config_file, "run", "--console", "--once")
    assert code == EXIT_UNWRITABLE == 5
    assert one_line(err) == (
        f"statement-bot: cannot write database {db_path}: the disk is full; "
        "free some space and start again"
    )
    assert digest(db_path) == before
    versions = sqlite3.connect(db_path).execute("SELECT MAX(version) FROM schema_migrations")
    assert versions.fetchone()[0] == future - 1


def test_disk_full_on_the_first_start(
    capsys, config_file: Path, db_path: Path, monkeypatch
) -> None:
    limited_to_current_size(monkeypatch)  # an empty file may not grow at all
    code, _, err = run_cli(capsys, config_file, "run", "--console", "--once")
    assert code == EXIT_UNWRITABLE
    assert "the disk is full" in one_line(err)
    monkeypatch.undo()  # space again: the next start creates the database as usual
    code, out, _ = run_cli(capsys, config_file, "run", "--console", "--once")
    assert code == 0 and "Boris Johnson" in out


@pytest.mark.slow
def test_a_really_full_disk_at_start(tmp_path: Path, config_file: Path) -> None:
    """A real full filesystem: a 256 KB tmpfs in an unprivileged user and mount namespace.
    Skipped where those are not allowed (many CI containers)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no user namespaces here: {probe.stderr.decode().strip()}")
    state = tmp_path / "state"
    state.mkdir()
    script = (
        f"mount -t tmpfs -o size=256k tmpfs {state} && "
        f"(dd if=/dev/zero of={state}/filler bs=4k 2>/dev/null; true) && "
        f"exec {sys.executable} -m bot --config {config_file} run --console --once"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEMENT_BOT")}
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                            text=True, timeout=60, env=env, cwd=REPO)  # fmt: skip
    assert result.returncode == EXIT_UNWRITABLE, result.stderr
    line = one_line(result.stderr)
    assert line.startswith("statement-bot: cannot ") and str(state) in line, line


# ---- read-only state folder --------------------------------------------------------------


@contextmanager
def read_only_folder(folder: Path) -> Iterator[None]:
    """Make `folder` refuse new files. chmod is enough for an ordinary user; root ignores
    permissions, so as root the folder is made immutable (chattr +i), which root obeys. Where
    neither works the test is skipped rather than pretending."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: cannot make a folder read-only")
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"chattr +i not possible here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize("existing", [False, True], ids=["first start", "existing database"])
@pytest.mark.parametrize("command", OPENING, ids=" ".join)
def test_a_read_only_state_folder_is_one_line(
    capsys, config_file: Path, db_path: Path, command: list[str], existing: bool
) -> None:
    db_path.parent.mkdir()
    if existing:
        make_database(db_path, statements=10)
        before = digest(db_path)
    with read_only_folder(db_path.parent):
        code, _, err = run_cli(capsys, config_file, *command)
    assert code == EXIT_UNWRITABLE == 5
    line = one_line(err)
    assert line.startswith(f"statement-bot: cannot open database {db_path} (")
    assert f"must be able to write it and its folder {db_path.parent}" in line
    if existing:
        assert digest(db_path) == before
    else:
        assert not db_path.exists()


def test_a_state_folder_that_cannot_be_created_is_one_line(
    capsys, config_file: Path, tmp_path: Path
) -> None:
    """Works for root too: the state folder's parent is a regular file."""
    (tmp_path / "state").write_text("not a folder")
    code, _, err = run_cli(capsys, config_file, "latest")
    assert code == EXIT_UNWRITABLE
    assert one_line(err).startswith(f"statement-bot: cannot create the state folder {tmp_path}")


# ---- backup ------------------------------------------------------------------------------


def test_backup_is_one_self_contained_file(
    capsys, config_file: Path, db_path: Path, tmp_path: Path
) -> None:
    make_database(db_path)
    running = Store.open(db_path)  # the bot is running: the source has its -wal and -shm
    try:
        target = tmp_path / "copy.sqlite3"
        code, out, err = run_cli(capsys, config_file, "backup", str(target))
    finally:
        running.close()
    assert code == 0, err
    assert out.strip() == f"backup written to {target} (statements: {STATEMENTS}, subscribers: 1)"
    assert sorted(p.name for p in tmp_path.glob("copy.sqlite3*")) == ["copy.sqlite3"]
    conn = sqlite3.connect(f"{target.as_uri()}?mode=ro", uri=True)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert conn.execute("SELECT COUNT(*) FROM statements").fetchone()[0] == STATEMENTS
    conn.close()
    assert sorted(p.name for p in tmp_path.glob("copy.sqlite3*")) == ["copy.sqlite3"]


def test_backup_refuses_a_folder_that_does_not_exist(
    capsys, config_file: Path, db_path: Path, tmp_path: Path
) -> None:
    make_database(db_path, statements=10)
    target = tmp_path / "no-such-folder" / "copy.sqlite3"
    code, _, err = run_cli(capsys, config_file, "backup", str(target))
    assert code == 2
    assert one_line(err) == (
        f"statement-bot: folder {target.parent} does not exist; create it first, "
        "or choose another path"
    )
    assert not target.parent.exists()


def test_backup_without_a_database_is_one_line(capsys, config_file: Path, db_path: Path) -> None:
    code, _, err = run_cli(capsys, config_file, "backup", str(db_path.parent.parent / "c.db"))
    assert code == EXIT_DAMAGED
    assert one_line(err) == (
        f"statement-bot: database {db_path} does not exist: check bot.state, or start the bot once"
    )


def test_the_store_keeps_its_normal_busy_timeout_once_open(db_path: Path) -> None:
    """Only opening is impatient: once running, statements wait as long as before."""
    store = Store.open(db_path)
    try:
        timeout = store.db.execute("PRAGMA busy_timeout").fetchone()[0]
    finally:
        store.close()
    assert timeout == store_module.BUSY_TIMEOUT * 1000


def test_latest_leaves_an_older_schema_to_the_bot_that_migrates_it(
    capsys, config_file: Path, db_path: Path
) -> None:
    """`latest` from a new image beside the old bot must not migrate the file under it (the
    old bot would then refuse to restart): one line, the file untouched."""
    make_database(db_path)
    conn = sqlite3.connect(db_path)
    conn.execute("DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) "
                 "FROM schema_migrations)")  # fmt: skip
    conn.commit()
    conn.close()
    before = digest(db_path)
    code, _, err = run_cli(capsys, config_file, "latest")
    assert code == 2
    line = one_line(err)
    assert line.startswith(f"statement-bot: database {db_path}: the database has schema version")
    assert "`statement-bot run` migrates an older one at start-up" in line
    assert digest(db_path) == before
