"""Numbered schema migrations, applied in order at start-up, each in its own transaction.

Add a function `m00N_what(db)` and append it to MIGRATIONS; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

import sqlite_utils


class SchemaTooNewError(Exception):
    """The database was written by a newer version of the bot; it is left untouched."""


def m001_initial(db: sqlite_utils.Database) -> None:
    # One execute per statement: executescript() would COMMIT the surrounding transaction.
    for sql in _M001.split(";"):
        if sql.strip():
            db.execute(sql)


_M001 = """
CREATE TABLE feeds (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    baseline_done INTEGER NOT NULL DEFAULT 0,
    last_poll_at TEXT,
    last_success_at TEXT,
    last_error TEXT,
    last_error_at TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    next_poll_at TEXT,
    redirected_to TEXT
);
CREATE TABLE statements (
    id INTEGER PRIMARY KEY,
    feed TEXT NOT NULL REFERENCES feeds(name),
    key TEXT NOT NULL,
    title TEXT NOT NULL,
    link TEXT NOT NULL DEFAULT '',
    published TEXT,
    lead TEXT NOT NULL DEFAULT '',
    first_seen TEXT NOT NULL,
    updated_at TEXT,
    sort_at TEXT NOT NULL,
    UNIQUE (feed, key)
);
CREATE INDEX statements_sort ON statements (sort_at, id);
CREATE TABLE subscribers (
    id INTEGER PRIMARY KEY,
    chat_id TEXT NOT NULL UNIQUE,
    thread_id INTEGER,
    kind TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    active INTEGER NOT NULL DEFAULT 1,
    subscribed_at TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX subscribers_active ON subscribers (active);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    statement_id INTEGER NOT NULL REFERENCES statements(id),
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
    status TEXT NOT NULL DEFAULT 'pending',
    sort_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    message_id INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    UNIQUE (statement_id, subscriber_id)
);
CREATE INDEX deliveries_queue ON deliveries (status, subscriber_id, sort_at, statement_id)
"""


def m002_deliveries_due_index(db: sqlite_utils.Database) -> None:
    # The outbox query reads pending rows oldest first and stops after a batch: with this
    # index it no longer visits every pending row (docs/benchmarks.md).
    db.execute(
        "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, sort_at, statement_id)"
    )


def m003_feed_sources(db: sqlite_utils.Database) -> None:
    # Issue 8: the feed an HTML page named (and whether that page was on a private address),
    # a hash of the last body read (servers that ignore conditional GET cost no parse), and the
    # items of the last poll that could not be read, for /status.
    for sql in (
        "ALTER TABLE feeds ADD COLUMN discovered_url TEXT",
        "ALTER TABLE feeds ADD COLUMN discovered_private INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE feeds ADD COLUMN body_sha256 TEXT",
        "ALTER TABLE feeds ADD COLUMN skipped TEXT NOT NULL DEFAULT ''",
    ):
        db.execute(sql)


def m004_chat_settings_and_search(db: sqlite_utils.Database) -> None:
    # Issue 11: each chat's settings (silent pushes, language: NULL is the default for its
    # kind; the sections it turned off, so that a feed added later reaches everyone), and
    # /search: an FTS5 index of every statement's title and lead, kept in step by triggers.
    # Written by hand, with the names sqlite-utils' enable_fts gives: enable_fts runs
    # executescript(), which would COMMIT this migration's transaction halfway.
    def values(row: str) -> str:
        return f"{_fold_yo(row + '.title')}, {_fold_yo(row + '.lead')}"

    for sql in (
        "ALTER TABLE subscribers ADD COLUMN silent INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE subscribers ADD COLUMN language TEXT",
        "CREATE TABLE muted_sections ("
        " subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),"
        " feed TEXT NOT NULL,"
        " PRIMARY KEY (subscriber_id, feed)) WITHOUT ROWID",
        # unicode61 folds case (Cyrillic too) and, with remove_diacritics 2, accents; it keeps
        # the Cyrillic yo apart from ye, which Russian often writes for it: the index holds ye.
        "CREATE VIRTUAL TABLE statements_fts USING FTS5 (title, lead, content=statements, "
        "content_rowid=id, tokenize='unicode61 remove_diacritics 2')",
        f"INSERT INTO statements_fts (rowid, title, lead) SELECT id, {values('statements')} "
        "FROM statements",
        "CREATE TRIGGER statements_ai AFTER INSERT ON statements BEGIN "
        f" INSERT INTO statements_fts (rowid, title, lead) VALUES (new.id, {values('new')});"
        " END",
        "CREATE TRIGGER statements_ad AFTER DELETE ON statements BEGIN "
        " INSERT INTO statements_fts (statements_fts, rowid, title, lead)"
        f" VALUES ('delete', old.id, {values('old')});"
        " END",
        "CREATE TRIGGER statements_au AFTER UPDATE OF title, lead ON statements BEGIN "
        " INSERT INTO statements_fts (statements_fts, rowid, title, lead)"
        f" VALUES ('delete', old.id, {values('old')});"
        f" INSERT INTO statements_fts (rowid, title, lead) VALUES (new.id, {values('new')});"
        " END",
    ):
        db.execute(sql)


def m005_corrections(db: sqlite_utils.Database) -> None:
    # Issue 12, corrections: an outbox row is a push or an edit of a pushed message (its
    # message_id). A chat gets a statement pushed once but may get several edits, so the
    # table-level UNIQUE (statement_id, subscriber_id) becomes a unique index on pushes only;
    # SQLite cannot drop a constraint, hence the copy. The plain statement index keeps the
    # lookups by statement (fan-out counts, edits of a statement's sent pushes) as fast as the
    # old unique one did; the small one on edits counts corrections for /status.
    columns = ("id, statement_id, subscriber_id, status, sort_at, attempts, next_attempt_at, "
               "message_id, last_error, created_at, sent_at")  # fmt: skip
    for sql in (
        "CREATE TABLE deliveries_new ("
        " id INTEGER PRIMARY KEY,"
        " statement_id INTEGER NOT NULL REFERENCES statements(id),"
        " subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),"
        " status TEXT NOT NULL DEFAULT 'pending',"
        " sort_at TEXT NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0,"
        " next_attempt_at TEXT NOT NULL,"
        " message_id INTEGER,"
        " last_error TEXT,"
        " created_at TEXT NOT NULL,"
        " sent_at TEXT,"
        " kind TEXT NOT NULL DEFAULT 'push' CHECK (kind IN ('push', 'edit')))",
        f"INSERT INTO deliveries_new ({columns}) SELECT {columns} FROM deliveries",
        "DROP TABLE deliveries",
        "ALTER TABLE deliveries_new RENAME TO deliveries",
        "CREATE UNIQUE INDEX deliveries_push ON deliveries (statement_id, subscriber_id) "
        "WHERE kind = 'push'",
        "CREATE INDEX deliveries_statement ON deliveries (statement_id, subscriber_id)",
        "CREATE INDEX deliveries_queue ON deliveries "
        "(status, subscriber_id, sort_at, statement_id)",
        "CREATE INDEX deliveries_due ON deliveries (status, sort_at, statement_id)",
        "CREATE INDEX deliveries_edits ON deliveries (status) WHERE kind = 'edit'",
    ):
        db.execute(sql)


def m006_pinned_counters(db: sqlite_utils.Database) -> None:
    # Issue 12: a group's choice of the daily pinned counters post (with its other settings),
    # and each chat's post: its message id, a hash of the text it was last given, the day a new
    # one was last posted (at most one a day), whether it is lost (deleted or unpinned: a new
    # one comes at the next midnight), pinned, and whether the admins were told it could not be.
    for sql in (
        "ALTER TABLE subscribers ADD COLUMN pinned_counters INTEGER NOT NULL DEFAULT 0",
        "CREATE TABLE pinned_posts ("
        " chat_id TEXT PRIMARY KEY,"
        " message_id INTEGER,"
        " text_sha256 TEXT,"
        " posted_on TEXT,"
        " lost INTEGER NOT NULL DEFAULT 0,"
        " pinned INTEGER NOT NULL DEFAULT 0,"
        " told_no_pin_right INTEGER NOT NULL DEFAULT 0,"
        " updated_at TEXT NOT NULL)",
    ):
        db.execute(sql)


def m007_telegraph(db: sqlite_utils.Database) -> None:
    # Issue 12, full text on Telegraph: each statement's page (url for the push, path for
    # editPage), its full text as HTML in a table of its own (the outbox query reads statements
    # with every pushed row: kilobytes of HTML per row would ride along), and the bot's
    # Telegraph account, made once (its access token is a secret: never logged).
    for sql in (
        "ALTER TABLE statements ADD COLUMN telegraph_url TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE statements ADD COLUMN telegraph_path TEXT NOT NULL DEFAULT ''",
        "CREATE TABLE statement_texts ("
        " statement_id INTEGER PRIMARY KEY REFERENCES statements(id),"
        " full_html TEXT NOT NULL)",
        "CREATE TABLE telegraph_account ("
        " id INTEGER PRIMARY KEY CHECK (id = 1),"
        " access_token TEXT NOT NULL,"
        " created_at TEXT NOT NULL)",
    ):
        db.execute(sql)


def m008_topic_subscriptions(db: sqlite_utils.Database) -> None:
    # Issue 11, settings per topic: a forum's topics subscribe and choose apart, so a chat may
    # have a subscription per topic (thread_id NULL: the chat itself, or a forum's General
    # topic). The column-level UNIQUE (chat_id) becomes a unique index on the pair; SQLite
    # cannot drop a constraint, hence the copy (run with foreign keys off: deliveries and
    # muted_sections point at these rows, whose ids the copy keeps). A chat's existing row
    # becomes the subscription of the topic it was last started in, with its settings.
    columns = ("id, chat_id, thread_id, kind, title, active, subscribed_at, changed_at, reason, "
               "silent, language, pinned_counters")  # fmt: skip
    for sql in (
        "CREATE TABLE subscribers_new ("
        " id INTEGER PRIMARY KEY,"
        " chat_id TEXT NOT NULL,"
        " thread_id INTEGER,"
        " kind TEXT NOT NULL,"
        " title TEXT NOT NULL DEFAULT '',"
        " active INTEGER NOT NULL DEFAULT 1,"
        " subscribed_at TEXT NOT NULL,"
        " changed_at TEXT NOT NULL,"
        " reason TEXT,"
        " silent INTEGER NOT NULL DEFAULT 0,"
        " language TEXT,"
        " pinned_counters INTEGER NOT NULL DEFAULT 0)",
        f"INSERT INTO subscribers_new ({columns}) SELECT {columns} FROM subscribers",
        "DROP TABLE subscribers",
        "ALTER TABLE subscribers_new RENAME TO subscribers",
        # IFNULL: NULLs are distinct in a unique index, and a chat has one General topic.
        "CREATE UNIQUE INDEX subscribers_topic ON subscribers (chat_id, IFNULL(thread_id, 0))",
        "CREATE INDEX subscribers_active ON subscribers (active)",
    ):
        db.execute(sql)


def _fold_yo(column: str) -> str:
    """SQL for `column` with the Cyrillic yo (both cases) written as ye."""
    return f"replace(replace({column}, '\u0451', '\u0435'), '\u0401', '\u0415')"


MIGRATIONS: list[tuple[int, Callable[[sqlite_utils.Database], None]]] = [
    (1, m001_initial),
    (2, m002_deliveries_due_index),
    (3, m003_feed_sources),
    (4, m004_chat_settings_and_search),
    (5, m005_corrections),
    (6, m006_pinned_counters),
    (7, m007_telegraph),
    (8, m008_topic_subscriptions),
]
LATEST_VERSION = max(v for v, _ in MIGRATIONS)  # the list is kept in order; max() anyway


def schema_version(db: sqlite_utils.Database) -> int:
    if "schema_migrations" not in db.table_names():
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(db: sqlite_utils.Database) -> list[int]:
    """Bring the schema up to date; return the versions applied. Refuse a newer schema."""
    current = schema_version(db)
    if current > LATEST_VERSION:
        raise SchemaTooNewError(
            f"the database has schema version {current}, newer than this bot knows "
            f"({LATEST_VERSION}); run a newer version of the bot or restore a backup"
        )
    applied = []
    with db.atomic():
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
    # By what was applied, not by the highest number: migrations numbered by parallel work can
    # land out of order (7 before 5), and a database at 7 must still get 5 when it lands.
    done = {r[0] for r in db.execute("SELECT version FROM schema_migrations")}
    # Foreign keys off while a migration runs (SQLite's way to rebuild a table others point
    # at; it cannot be changed inside a transaction), checked before its commit.
    enforced = bool(db.execute("PRAGMA foreign_keys").fetchone()[0])
    db.execute("PRAGMA foreign_keys=OFF")
    try:
        for version, migration in MIGRATIONS:
            if version in done:
                continue
            with db.atomic():
                migration(db)
                broken = db.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise sqlite3.IntegrityError(
                        f"migration {version} broke {len(broken)} references, e.g. {broken[0]}"
                    )
                db.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    [version, migration.__name__, datetime.now(UTC).isoformat()],
                )
            applied.append(version)
    finally:
        if enforced:
            db.execute("PRAGMA foreign_keys=ON")
    return applied
