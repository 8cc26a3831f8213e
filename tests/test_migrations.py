"""Schema migrations: from an empty file, idempotent, and a newer schema refused untouched."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from bot.migrations import LATEST_VERSION, MIGRATIONS, SchemaTooNewError
from bot.store import Store


def test_migrates_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "bot.sqlite3"
    store = Store.open(path)
    store.close()
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"feeds", "statements", "subscribers", "deliveries", "schema_migrations"} <= tables
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [v for v, _ in MIGRATIONS]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    Store.open(path).close()
    Store.open(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == LATEST_VERSION
    conn.close()


def test_newer_schema_is_refused_without_being_touched(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=DELETE")  # as a newer bot might leave it
    conn.execute(
        "INSERT INTO schema_migrations VALUES (?, 'm999_future', '2030-01-01')",
        [LATEST_VERSION + 1],
    )
    conn.commit()
    conn.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(SchemaTooNewError, match="newer than this bot"):
        Store.open(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert not (tmp_path / "bot.sqlite3-wal").exists()


def test_a_failing_migration_leaves_no_half_schema(tmp_path: Path, monkeypatch) -> None:
    """Each migration and its record commit together or not at all."""

    def m002_broken(db) -> None:
        db.execute("CREATE TABLE half (x)")
        raise RuntimeError("boom")

    monkeypatch.setattr("bot.migrations.MIGRATIONS", [*MIGRATIONS, (2, m002_broken)])
    monkeypatch.setattr("bot.migrations.LATEST_VERSION", 2)
    path = tmp_path / "bot.sqlite3"
    with pytest.raises(RuntimeError):
        Store.open(path)
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "half" not in tables and "statements" in tables
    assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == 1
    conn.close()
