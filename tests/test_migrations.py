"""Schema migrations: from an empty file, idempotent, and a newer schema refused untouched."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.migrations import LATEST_VERSION, MIGRATIONS, SchemaTooNewError
from bot.store import Store


def use_migrations(monkeypatch: pytest.MonkeyPatch, migrations: list) -> int:
    """The bot as if it shipped `migrations` (an older release, or one more to come): its
    latest version, as both modules see it."""
    latest = max(v for v, _ in migrations)
    monkeypatch.setattr("bot.migrations.MIGRATIONS", migrations)
    monkeypatch.setattr("bot.migrations.LATEST_VERSION", latest)
    monkeypatch.setattr("bot.store.LATEST_VERSION", latest)
    return latest


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
    assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_a_migration_that_lands_after_a_higher_one_is_still_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parallel work numbers migrations ahead (7 may ship before 5): 5 still runs later."""
    path = tmp_path / "bot.sqlite3"

    def m_late(db) -> None:
        db.execute("CREATE TABLE late (id INTEGER PRIMARY KEY)")

    late = max(v for v, _ in MIGRATIONS) + 5
    monkeypatch.setattr("bot.migrations.MIGRATIONS", [*MIGRATIONS, (late + 1, m_late)])
    monkeypatch.setattr("bot.migrations.LATEST_VERSION", late + 1)
    monkeypatch.setattr("bot.store.LATEST_VERSION", late + 1)
    Store.open(path).close()
    monkeypatch.setattr(
        "bot.migrations.MIGRATIONS", [*MIGRATIONS, (late, m_late_lower), (late + 1, m_late)]
    )
    store = Store.open(path)
    versions = [r[0] for r in store.db.execute("SELECT version FROM schema_migrations")]
    assert versions == [*(v for v, _ in MIGRATIONS), late, late + 1]
    assert "lower" in store.db.table_names()
    store.close()


def m_late_lower(db) -> None:
    db.execute("CREATE TABLE lower (id INTEGER PRIMARY KEY)")


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

    def m_broken(db) -> None:
        db.execute("CREATE TABLE half (x)")
        raise RuntimeError("boom")

    future = LATEST_VERSION + 1
    monkeypatch.setattr("bot.migrations.MIGRATIONS", [*MIGRATIONS, (future, m_broken)])
    monkeypatch.setattr("bot.migrations.LATEST_VERSION", future)
    path = tmp_path / "bot.sqlite3"
    with pytest.raises(RuntimeError):
        Store.open(path)
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "half" not in tables and "statements" in tables
    assert (
        conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == LATEST_VERSION
    )
    conn.close()


def test_upgrade_keeps_statements_subscribers_and_pending_deliveries(
    tmp_path: Path, monkeypatch
) -> None:
    """An old volume: a database at schema 1 with data, opened by today's code.

    Every real migration since 1 runs, then a made-up next one (a new column), so the test
    keeps covering an upgrade when the newest migration is today's.
    """
    from datetime import UTC, datetime

    path = tmp_path / "bot.sqlite3"
    use_migrations(monkeypatch, MIGRATIONS[:1])  # the first release
    old = Store.open(path)
    now = datetime(2021, 10, 26, tzinfo=UTC)
    # Written as the first release wrote it: today's code would use columns it did not have.
    stamp = now.isoformat()
    for sql, params in (
        ("INSERT INTO feeds (name, url, baseline_done) VALUES (?, ?, 1)", ["statements", "u"]),
        ("INSERT INTO subscribers (chat_id, kind, active, subscribed_at, changed_at) "
         "VALUES ('1', 'private', 1, ?, ?)", [stamp, stamp]),
        ("INSERT INTO statements (id, feed, key, title, first_seen, sort_at) "
         "VALUES (1, 'statements', 'k1', 'One', ?, ?)", [stamp, stamp]),
        ("INSERT INTO statements (id, feed, key, title, first_seen, sort_at) "
         "VALUES (2, 'statements', 'k2', 'Two', ?, ?)", [stamp, stamp]),
        ("INSERT INTO deliveries (statement_id, subscriber_id, sort_at, next_attempt_at, "
         "created_at) VALUES (2, 1, ?, ?, ?)", [stamp, stamp, stamp]),
    ):  # fmt: skip
        old.db.execute(sql, params)
    old.close()

    def m_subscriber_note(db) -> None:
        db.execute("ALTER TABLE subscribers ADD COLUMN note TEXT NOT NULL DEFAULT 'none'")

    future = use_migrations(monkeypatch, [*MIGRATIONS, (LATEST_VERSION + 1, m_subscriber_note)])
    new = Store.open(path)
    versions = [r[0] for r in new.db.execute("SELECT version FROM schema_migrations")]
    assert versions == [*(v for v, _ in MIGRATIONS), future]
    assert new.statement_count() == 2
    assert new.active_subscriber_count() == 1
    [due] = new.due_deliveries(now, 10)
    assert due.statement.title == "Two" and due.subscriber.chat_id == 1
    assert new.db.execute("SELECT note FROM subscribers").fetchone()[0] == "none"
    new.close()


def test_m004_from_schema_3_indexes_old_statements_and_gives_settings_defaults(
    tmp_path: Path, monkeypatch
) -> None:
    """Issue 11 on an existing volume: statements stored before it are found by /search, and
    every chat keeps getting every section, with sound, in the bot's default language."""
    from datetime import UTC, datetime

    from bot.model import ChatSettings

    path = tmp_path / "bot.sqlite3"
    use_migrations(monkeypatch, MIGRATIONS[:3])
    old = Store.open(path)
    stamp = datetime(2021, 10, 26, tzinfo=UTC).isoformat()
    for sql, params in (
        ("INSERT INTO feeds (name, url, baseline_done) VALUES ('press', 'u', 1)", []),
        ("INSERT INTO subscribers (chat_id, kind, active, subscribed_at, changed_at) "
         "VALUES ('7', 'private', 1, ?, ?)", [stamp, stamp]),
        ("INSERT INTO statements (feed, key, title, lead, first_seen, sort_at) "
         "VALUES ('press', 'k1', 'Salisbury: no answer', 'Lead', ?, ?)", [stamp, stamp]),
    ):  # fmt: skip
        old.db.execute(sql, params)
    old.close()
    monkeypatch.undo()

    new = Store.open(path)
    assert [s.title for s in new.search(["salisb"], 10)] == ["Salisbury: no answer"]
    assert new.chat_settings(7) == ChatSettings()
    # The triggers keep the index in step from now on: an edit is found by its new words.
    new.db.execute("UPDATE statements SET title = 'Glushkov: no answer' WHERE key = 'k1'")
    assert new.search(["salisbury"], 10) == []
    assert [s.key for s in new.search(["glushkov"], 10)] == ["k1"]
    new.close()


def test_corrections_schema_from_an_empty_file(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "bot.sqlite3")
    columns = {c.name: c for c in store.db["deliveries"].columns}
    assert columns["kind"].default_value == "'push'"
    indexes = {i.name: i for i in store.db["deliveries"].indexes}
    assert {"deliveries_push", "deliveries_statement", "deliveries_queue", "deliveries_due",
            "deliveries_edits"} <= indexes.keys()  # fmt: skip
    assert indexes["deliveries_push"].unique
    store.close()


T_OLD = "2026-03-01T09:00:00.000000+00:00"


def store_at_schema(path: Path, version: int, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A database as a bot of schema `version` left it, with feed 'f' and its statement 1; the
    caller adds its rows, closes it and undoes `monkeypatch` before opening it as this bot."""
    use_migrations(monkeypatch, [(v, m) for v, m in MIGRATIONS if v <= version])
    old = Store.open(path)
    old.db.execute("INSERT INTO feeds (name, url) VALUES ('f', 'https://e.org/rss')")
    old.db.execute(
        "INSERT INTO statements (id, feed, key, title, first_seen, sort_at) "
        "VALUES (1, 'f', 'k', 'Title', ?, ?)",
        [T_OLD, T_OLD],
    )
    return old


def test_corrections_migration_keeps_schema_4_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at schema 4 with pushes in every state: each row stays, as a push; a push is
    still unique per chat and statement, and edits of it may come as often as it is corrected."""
    path = tmp_path / "bot.sqlite3"
    old = store_at_schema(path, 4, monkeypatch)
    t = T_OLD
    for sub, status, message_id in ((1, "sent", 11), (2, "pending", None), (3, "failed", None)):
        old.db.execute(
            "INSERT INTO subscribers (id, chat_id, kind, subscribed_at, changed_at) "
            "VALUES (?, ?, 'private', ?, ?)",
            [sub, str(100 + sub), t, t],
        )
        old.db.execute(
            "INSERT INTO deliveries (statement_id, subscriber_id, status, sort_at, "
            "next_attempt_at, message_id, created_at) VALUES (1, ?, ?, ?, ?, ?, ?)",
            [sub, status, t, t, message_id, t],
        )
    before = list(old.db.query("SELECT * FROM deliveries ORDER BY id"))
    old.close()
    monkeypatch.undo()

    store = Store.open(path)
    after = list(store.db.query("SELECT * FROM deliveries ORDER BY id"))
    assert [{k: v for k, v in r.items() if k != "kind"} for r in after] == before
    assert {r["kind"] for r in after} == {"push"}
    insert = (
        "INSERT INTO deliveries (statement_id, subscriber_id, kind, status, sort_at, "
        "next_attempt_at, message_id, created_at) VALUES (1, 1, ?, 'sent', ?, ?, 11, ?)"
    )
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute(insert, ["push", t, t, t])
    store.db.execute(insert, ["edit", t, t, t])
    store.db.execute(insert, ["edit", t, t, t])  # a second correction, after the first
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute(insert, ["resend", t, t, t])
    assert [d.subscriber.id for d in store.due_deliveries(datetime.now(UTC), 10)] == [2]
    store.close()


def test_the_outbox_query_still_walks_the_due_index(tmp_path: Path) -> None:
    """docs/benchmarks.md: due_deliveries reads pending rows oldest first through
    deliveries_due and asks each chat's earlier rows through deliveries_queue."""
    store = Store.open(tmp_path / "bot.sqlite3")
    queries: list[str] = []
    store.db.conn.set_trace_callback(queries.append)
    store.due_deliveries(datetime.now(UTC), 10)
    store.db.conn.set_trace_callback(None)
    [sql] = [q for q in queries if "FROM deliveries d" in q]
    plan = " ".join(r[3] for r in store.db.execute("EXPLAIN QUERY PLAN " + sql))
    assert "USING INDEX deliveries_due" in plan
    assert "USING COVERING INDEX deliveries_queue" in plan
    assert "TEMP B-TREE" not in plan
    store.close()


def test_topic_subscriptions_migration_keeps_schema_7_rows_and_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema 7 had one row per chat (chat_id UNIQUE): each row stays, with its id, settings
    and outbox rows, as the subscription of the topic it was started in; foreign keys hold."""
    path = tmp_path / "bot.sqlite3"
    old = store_at_schema(path, 7, monkeypatch)
    t = T_OLD
    old.db.execute(
        "INSERT INTO subscribers (id, chat_id, thread_id, kind, subscribed_at, changed_at, "
        "silent, language, pinned_counters) VALUES (5, '-1007', 77, 'supergroup', ?, ?, 1, "
        "'ru', 1)",
        [t, t],
    )
    old.db.execute("INSERT INTO muted_sections (subscriber_id, feed) VALUES (5, 'f')")
    old.db.execute(
        "INSERT INTO deliveries (statement_id, subscriber_id, status, sort_at, "
        "next_attempt_at, created_at) VALUES (1, 5, 'pending', ?, ?, ?)",
        [t, t, t],
    )
    before = list(old.db.query("SELECT * FROM subscribers"))
    old.close()
    monkeypatch.undo()

    store = Store.open(path)
    assert list(store.db.query("SELECT * FROM subscribers")) == before
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1  # back on after it
    assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    [due] = store.due_deliveries(datetime.now(UTC), 10)
    assert (due.subscriber.id, due.subscriber.thread_id, due.subscriber.language) == (5, 77, "ru")
    assert store.chat_settings(-1007, 77).muted == {"f"}
    now = datetime.now(UTC)
    assert store.subscribe(-1007, "supergroup", now, thread_id=78)  # a second topic
    # The pinned post stays the chat's; a new topic (and General) starts from the forum's
    # settings, which it chose in topic 77 when that was the forum's only row.
    assert store.pinned_wanted(-1007) and store.chat_settings(-1007, 78).muted == {"f"}
    assert store.chat_settings(-1007).language == "ru"
    with pytest.raises(sqlite3.IntegrityError):  # the references are enforced again
        store.db.execute("INSERT INTO muted_sections (subscriber_id, feed) VALUES (99, 'f')")
    store.close()


def test_a_migration_that_breaks_a_reference_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Foreign keys are off while migrations run (to rebuild a table others point at), so each
    one's references are checked before it commits."""
    path = tmp_path / "bot.sqlite3"
    Store.open(path).close()

    def m_dangling(db) -> None:
        db.execute("INSERT INTO muted_sections (subscriber_id, feed) VALUES (404, 'f')")

    late = use_migrations(monkeypatch, [*MIGRATIONS, (LATEST_VERSION + 1, m_dangling)])
    with pytest.raises(sqlite3.IntegrityError, match=f"migration {late} broke 1 reference"):
        Store.open(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM muted_sections").fetchone()[0] == 0
    assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == late - 1
    conn.close()
