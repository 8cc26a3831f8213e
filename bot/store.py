"""The bot's memory: one SQLite file through sqlite-utils.

Feeds (poll state), statements, subscribers and the delivery outbox. A poll's new statements and
their outbox rows are written in one transaction, so a crash can lose neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import sqlite_utils

from bot.config import FeedConfig
from bot.diff import PollDecision
from bot.migrations import LATEST_VERSION, migrate, schema_version
from bot.model import (
    ChatSettings,
    Delivery,
    FeedState,
    PollReport,
    Statement,
    StoredStatement,
    StoreStatus,
    Subscriber,
)
from bot.pinned_text import PinnedPost

logger = logging.getLogger(__name__)

# The kinds of chat that are the bot's audience (Telegram's chat types): what the delivery
# engine drains and what counts as a subscriber, unless the caller names other kinds.
AUDIENCE_KINDS: tuple[str, ...] = ("private", "group", "supergroup", "channel")

PENDING, SENDING, SENT, FAILED, CLOSED = "pending", "sending", "sent", "failed", "closed"


def iso(moment: datetime) -> str:
    """UTC, fixed width: text order is time order, so SQLite can compare and sort it."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def chat_id_value(text: str) -> int | str:
    """Chat ids are stored as text (channels may be '@name'); numeric ones come back as int."""
    try:
        return int(text)
    except ValueError:
        return text


class SchemaMismatchError(Exception):
    """The database is not at the schema version this code reads."""


# Exit codes of the commands that open the database (docs/reliability.md, "Start-up faults").
EXIT_DAMAGED = 3  # missing, not a database, or damaged: restore a backup
EXIT_BUSY = 4  # another process holds the lock
EXIT_UNWRITABLE = 5  # the folder or the disk refuses: permissions, read-only, full, I/O error

OPEN_BUSY_TIMEOUT = 5.0  # s opening waits for another process's lock, then says so
BUSY_TIMEOUT = 30.0  # s a statement waits for a lock once the store is open (as before)
OPEN_CHECK_SECONDS = 30.0  # quick_check budget at start; a slower file starts unchecked


class StoreOpenError(Exception):
    """The database cannot be opened or used: one line naming the file and what to do, and the
    exit code for that kind of trouble. The file has been left as it was."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class CheckTimedOut(Exception):
    """PRAGMA quick_check did not finish within its time budget: nothing is known."""


def _open_connection(target: str, busy_timeout: float, *, uri: bool = False) -> sqlite3.Connection:
    # Autocommit at the driver level: transactions are explicit (db.atomic()).
    return sqlite3.connect(target, uri=uri, isolation_level=None, timeout=busy_timeout)


def _open_error(path: Path, exc: sqlite3.Error, busy_timeout: float) -> StoreOpenError:
    """The one line an admin needs for SQLite's error, by its result code."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return _damaged(path, str(exc))
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreOpenError(
            f"database {path} is locked by another process (waited {busy_timeout:g} s): "
            "is another bot running on this state folder? Stop it, or try again later",
            EXIT_BUSY,
        )
    if name.startswith("SQLITE_FULL"):
        return StoreOpenError(
            f"cannot write database {path}: the disk is full; free some space and start again",
            EXIT_UNWRITABLE,
        )
    if name.startswith("SQLITE_IOERR"):
        return StoreOpenError(
            f"cannot read or write database {path} ({exc}): is the disk full or failing?",
            EXIT_UNWRITABLE,
        )
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")):
        return StoreOpenError(
            f"cannot open database {path} ({exc}): the bot's user must be able to write it and "
            f"its folder {path.parent}, where SQLite keeps {path.name}-wal and -shm",
            EXIT_UNWRITABLE,
        )
    return StoreOpenError(f"cannot use database {path} ({exc}); restore a backup", EXIT_DAMAGED)


def _damaged(path: Path, detail: str) -> StoreOpenError:
    return StoreOpenError(
        f"database {path} is damaged ({detail}): stop the bot, set the file aside and restore "
        "a backup",
        EXIT_DAMAGED,
    )


def _quick_check(conn: sqlite3.Connection, seconds: float) -> str | None:
    """PRAGMA quick_check: None if it passed, else the first problem, in one line.

    A progress handler aborts it after `seconds` (CheckTimedOut), so a huge file or a slow disk
    cannot hold up start-up or a health probe for long.
    """
    deadline = time.monotonic() + seconds
    conn.set_progress_handler(lambda: time.monotonic() > deadline, 1000)
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(20)")]
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorname == "SQLITE_INTERRUPT":
            raise CheckTimedOut(f"quick_check did not finish in {seconds:g} s") from exc
        raise
    except sqlite3.DatabaseError as exc:
        # Damage that stops the check itself (a truncated file, a garbage header).
        if (exc.sqlite_errorname or "").startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return str(exc)
        raise
    finally:
        conn.set_progress_handler(None, 0)
    if rows == ["ok"]:
        return None
    problems = [p for r in rows for p in r.splitlines() if p and not p.startswith("***")]
    more = f" and {len(problems) - 1} more problems" if len(problems) > 1 else ""
    return f"quick_check: {problems[0] if problems else rows}{more}"


class StoreUnavailable(Exception):
    """The database cannot be read or written right now; the message is one line of why
    ("database is locked", "disk is full"). AsyncStore raises it instead of sqlite3 errors,
    and the caller decides whether and when to try again."""


class Store:
    def __init__(self, db: sqlite_utils.Database, path: Path | None = None) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open (creating if needed), check and migrate; StoreOpenError when that cannot be done.

        Nothing is written to a file that fails quick_check (no "repair", no migration) or that
        has a newer schema (SchemaTooNewError). Another process's lock is waited for
        OPEN_BUSY_TIMEOUT, then reported; once open, statements wait BUSY_TIMEOUT.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreOpenError(
                f"cannot create the state folder {path.parent} ({exc.strerror or exc}): create "
                "it so that the bot's user can write to it, or set bot.state",
                EXIT_UNWRITABLE,
            ) from exc
        existing = path.is_file() and path.stat().st_size > 0
        try:
            conn = _open_connection(str(path), OPEN_BUSY_TIMEOUT)
        except sqlite3.Error as exc:
            raise _open_error(path, exc, OPEN_BUSY_TIMEOUT) from exc
        db = sqlite_utils.Database(conn)
        try:
            if existing:
                try:
                    problem = _quick_check(conn, OPEN_CHECK_SECONDS)
                except CheckTimedOut as exc:
                    logger.warning("database %s: %s; starting without the check", path, exc)
                    problem = None
                if problem:
                    raise _damaged(path, problem)
            if schema_version(db) > LATEST_VERSION:
                migrate(db)  # raises SchemaTooNewError without writing
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints
            db.execute("PRAGMA foreign_keys=ON")
            # Start-up needs the write lock: find out now, within OPEN_BUSY_TIMEOUT.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("COMMIT")
            applied = migrate(db)
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        except (sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.InterfaceError):
            conn.close()
            raise  # a bug, not the file's state
        except sqlite3.Error as exc:
            conn.close()
            raise _open_error(path, exc, OPEN_BUSY_TIMEOUT) from exc
        except BaseException:
            conn.close()
            raise
        if applied:
            logger.info("database %s migrated to schema version %s", path, applied[-1])
        return cls(db, path)

    @classmethod
    def open_readonly(cls, path: Path) -> Store:
        """Open an existing database without writing to it (health checks, backups).

        It must have exactly the schema this code knows: anything else is the running bot's
        business (it migrates at start-up) or a newer bot's.
        """
        if not path.is_file():
            raise StoreOpenError(
                f"database {path} does not exist: check bot.state, or start the bot once",
                EXIT_DAMAGED,
            )
        try:
            conn = _open_connection(f"{path.resolve().as_uri()}?mode=ro", OPEN_BUSY_TIMEOUT,
                                    uri=True)  # fmt: skip
        except sqlite3.Error as exc:
            raise _open_error(path, exc, OPEN_BUSY_TIMEOUT) from exc
        db = sqlite_utils.Database(conn)
        try:
            version = schema_version(db)
        except sqlite3.Error as exc:
            conn.close()
            raise _open_error(path, exc, OPEN_BUSY_TIMEOUT) from exc
        except BaseException:
            conn.close()
            raise
        if version != LATEST_VERSION:
            conn.close()
            raise SchemaMismatchError(
                f"the database has schema version {version}; this bot uses {LATEST_VERSION}"
            )
        return cls(db, path)

    def quick_check(self, seconds: float) -> None:
        """PRAGMA quick_check within `seconds`: StoreOpenError (one line) when the file is
        damaged or cannot be read, CheckTimedOut when time ran out."""
        assert self.path is not None
        try:
            problem = _quick_check(self.db.conn, seconds)
        except sqlite3.Error as exc:
            raise _open_error(self.path, exc, OPEN_BUSY_TIMEOUT) from exc
        if problem:
            raise _damaged(self.path, problem)

    def close(self) -> None:
        self.db.close()

    # ---- feeds -------------------------------------------------------------------------

    def ensure_feed(self, feed: FeedConfig) -> None:
        self.db.execute(
            # A new URL must not be asked with the old URL's validators (it would get a 304).
            "INSERT INTO feeds (name, url) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET url = excluded.url, "
            "etag = CASE WHEN url = excluded.url THEN etag END, "
            "last_modified = CASE WHEN url = excluded.url THEN last_modified END, "
            "redirected_to = CASE WHEN url = excluded.url THEN redirected_to END, "
            "discovered_url = CASE WHEN url = excluded.url THEN discovered_url END, "
            "body_sha256 = CASE WHEN url = excluded.url THEN body_sha256 END",
            [feed.name, feed.url],
        )

    def feed_state(self, name: str) -> FeedState | None:
        rows = list(self.db.query("SELECT * FROM feeds WHERE name = ?", [name]))
        return _feed_state(rows[0]) if rows else None

    def feed_states(self) -> list[FeedState]:
        return [_feed_state(r) for r in self.db.query("SELECT * FROM feeds ORDER BY name")]

    def record_not_modified(self, name: str, now: datetime) -> None:
        self.db.execute(
            "UPDATE feeds SET last_poll_at = ?, last_success_at = ?, last_error = NULL, "
            "consecutive_failures = 0, next_poll_at = NULL WHERE name = ?",
            [iso(now), iso(now), name],
        )

    def record_failure(self, name: str, error: str, now: datetime, retry_at: datetime) -> int:
        """Keep the error on the feed's row; nothing stored is touched. Returns the streak."""
        self.db.execute(
            "UPDATE feeds SET last_poll_at = ?, last_error = ?, last_error_at = ?, "
            "consecutive_failures = consecutive_failures + 1, next_poll_at = ? WHERE name = ?",
            [iso(now), error, iso(now), iso(retry_at), name],
        )
        row = self.db.execute(
            "SELECT consecutive_failures FROM feeds WHERE name = ?", [name]
        ).fetchone()
        return int(row[0]) if row else 0

    def record_redirect(self, name: str, new_url: str | None) -> bool:
        """Remember where a permanent redirect points; True when that is news."""
        state = self.feed_state(name)
        if state is None or state.redirected_to == new_url:
            return False
        self.db.execute("UPDATE feeds SET redirected_to = ? WHERE name = ?", [new_url, name])
        return True

    def record_discovered(self, name: str, url: str | None, private: bool = False) -> bool:
        """Remember the feed the page names (None: forget it); True when that is news."""
        state = self.feed_state(name)
        if state is None or (state.discovered_url, state.discovered_private) == (url, private):
            return False
        self.db.execute(
            "UPDATE feeds SET discovered_url = ?, discovered_private = ?, etag = NULL, "
            "last_modified = NULL, body_sha256 = NULL WHERE name = ?",
            [url, private, name],
        )
        return True

    def apply_poll(
        self,
        feed: str,
        decision: PollDecision,
        now: datetime,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        baseline: bool = True,
        body_sha256: str | None = None,
        skipped: Sequence[str] = (),
        corrections_window: timedelta | None = None,
    ) -> PollReport:
        """Apply a poll's decision in one transaction: new statements, their outbox rows, edits.

        `baseline` is False for an empty document: it is no baseline, so the next poll that shows
        entries is still the feed's first. With a `corrections_window` ([bot] corrections =
        "edit"), a statement recorded within it whose title or lead changed gets an edit row for
        every chat its push already reached.
        """
        with self.db.atomic():
            deliveries, corrections = self._apply(feed, decision, now, corrections_window)
            self.db.execute(
                "UPDATE feeds SET etag = ?, last_modified = ?, body_sha256 = ?, skipped = ?, "
                "baseline_done = CASE WHEN ? THEN 1 ELSE baseline_done END, "
                "last_poll_at = ?, last_success_at = ?, last_error = NULL, "
                "consecutive_failures = 0, next_poll_at = NULL WHERE name = ?",
                [
                    etag,
                    last_modified,
                    body_sha256,
                    "\n".join(skipped),
                    baseline,
                    iso(now),
                    iso(now),
                    feed,
                ],
            )
        return PollReport(
            feed=feed,
            pushed=len(decision.push),
            silent=len(decision.silent),
            updated=len(decision.updated),
            held_back=decision.held_back,
            deliveries=deliveries,
            corrections=tuple(corrections),
        )

    def known(self, feed: str, keys: Sequence[str]) -> dict[str, Statement]:
        """The stored statements of `feed` among `keys`, as the diff compares them."""
        return self._known(feed, keys)

    def _known(self, feed: str, keys: Sequence[str]) -> dict[str, Statement]:
        known: dict[str, Statement] = {}
        # Chunks keep under SQLite's bound-variable limit for huge feeds.
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for row in self.db.query(
                f"SELECT key, title, link, published, lead FROM statements "
                f"WHERE feed = ? AND key IN ({marks})",
                [feed, *chunk],
            ):
                known[row["key"]] = _compared(row)
        return known

    def key_families(self, feed: str, bases: Collection[str]) -> dict[str, Statement]:
        """The stored posts of `feed` under each of `bases` or a key derived from it
        (base#...): the posts of a guid several share (diff.adopt_stored_keys)."""
        family: dict[str, Statement] = {}
        for base in bases:
            for row in self.db.query(
                "SELECT key, title, link, published, lead FROM statements WHERE feed = ? "
                "AND (key = ? OR substr(key, 1, ?) = ?)",
                [feed, base, len(base) + 1, base + "#"],
            ):
                family[row["key"]] = _compared(row)
        return family

    def _apply(
        self, feed: str, decision: PollDecision, now: datetime, window: timedelta | None
    ) -> tuple[int, list[tuple[str, int]]]:
        pushed_keys = {s.key for s in decision.push}
        deliveries = 0
        corrections: list[tuple[str, int]] = []
        for st in decision.new:  # oldest first, so ids follow publication order
            sort_at = iso(st.published or now)
            cursor = self.db.execute(
                "INSERT INTO statements (feed, key, title, link, published, lead, first_seen, "
                "sort_at, telegraph_url, telegraph_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [feed, st.key, st.title, st.link, _iso_or_none(st.published), st.lead,
                 iso(now), sort_at, st.telegraph_url, st.telegraph_path],
            )  # fmt: skip
            if st.full_html:  # a table of its own: the outbox query need not carry it
                self.db.execute(
                    "INSERT INTO statement_texts (statement_id, full_html) VALUES (?, ?)",
                    [cursor.lastrowid, st.full_html],
                )
            if st.key in pushed_keys:
                deliveries += self.db.execute(
                    "INSERT INTO deliveries (statement_id, subscriber_id, sort_at, "
                    "next_attempt_at, created_at) "
                    "SELECT ?, id, ?, ?, ? FROM subscribers WHERE active = 1 "
                    # Only chats that get this feed's section (settings in force when recorded).
                    "AND id NOT IN (SELECT subscriber_id FROM muted_sections WHERE feed = ?)",
                    [cursor.lastrowid, sort_at, iso(now), iso(now), feed],
                ).rowcount
        for st in decision.updated:
            if window is not None:
                edits = self._queue_edits(feed, st, now, window)
                if edits:
                    corrections.append((st.title, edits))
            self.db.execute(
                "UPDATE statements SET title = ?, link = ?, lead = ?, published = ?, "
                "updated_at = ? WHERE feed = ? AND key = ?",
                [st.title, st.link, st.lead, _iso_or_none(st.published), iso(now), feed, st.key],
            )
            if st.full_html:  # an update without one (a list page's) keeps the stored text
                self.db.execute(
                    "INSERT OR REPLACE INTO statement_texts (statement_id, full_html) "
                    "SELECT id, ? FROM statements WHERE feed = ? AND key = ?",
                    [st.full_html, feed, st.key],
                )
        return deliveries, corrections

    def _queue_edits(self, feed: str, st: Statement, now: datetime, window: timedelta) -> int:
        """Edit rows for a correction of `st` (before its row is updated); how many.

        Only chats whose push was sent (or is in flight) get one: a pending push is rendered
        at send time and so carries the correction already. An edit row of an in-flight push
        waits for its message id (mark_sent fills it in). A chat with an edit still open gets
        no second one: that edit is rendered at send time too.
        """
        row = self.db.execute(
            "SELECT id, title, lead, first_seen FROM statements WHERE feed = ? AND key = ?",
            [feed, st.key],
        ).fetchone()
        if row is None or (row[1], row[2]) == (st.title, st.lead) or row[3] < iso(now - window):
            return 0  # a changed link or date is no correction worth a notification
        return self.db.execute(
            "INSERT INTO deliveries (statement_id, subscriber_id, kind, sort_at, "
            "next_attempt_at, message_id, created_at) "
            "SELECT p.statement_id, p.subscriber_id, 'edit', p.sort_at, ?, p.message_id, ? "
            "FROM deliveries p JOIN subscribers c ON c.id = p.subscriber_id "
            "WHERE p.statement_id = ? AND p.kind = 'push' AND c.active = 1 "
            "AND (p.status = ? AND p.message_id IS NOT NULL OR p.status = ?) "
            "AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.statement_id = p.statement_id "
            "AND e.subscriber_id = p.subscriber_id AND e.kind = 'edit' AND e.status IN (?, ?))",
            [iso(now), iso(now), row[0], SENT, SENDING, PENDING, SENDING],
        ).rowcount

    # ---- statements --------------------------------------------------------------------

    def latest(self, count: int) -> list[StoredStatement]:
        """The newest statements across all feeds, newest first."""
        rows = self.db.query(
            "SELECT * FROM statements ORDER BY sort_at DESC, id DESC LIMIT ?", [count]
        )
        return [_statement(r) for r in rows]

    def statement_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM statements").fetchone()[0])

    def search(self, words: Sequence[str], limit: int) -> list[StoredStatement]:
        """Statements whose title or lead has every word (as a prefix), newest first.

        `words` are searched as words whatever they hold: each is quoted for FTS5, so a user's
        "NOT", "*" or '"' is never query syntax (commands.search_words makes them).
        """
        if not words:
            return []
        # Each word a quoted prefix; yo as ye, as the index holds it (migration 4).
        folded = (w.replace("\u0451", "\u0435").replace("\u0401", "\u0415") for w in words)
        query = " ".join('"' + w.replace('"', '""') + '"*' for w in folded)
        # Reading every match of a common word costs ~100 ms at 100,000 statements; FTS5 stops
        # early in rowid order. So: the matches with the highest ids (seen last), then any
        # older-id match dated after the window's `limit`-th newest (a feed added with its
        # history gets high ids for old dates), checked one by one against the index.
        window = limit * 5
        ids = self._ids(
            "SELECT rowid FROM statements_fts WHERE statements_fts MATCH ? "
            "ORDER BY rowid DESC LIMIT ?",
            [query, window],
        )
        found = self._statements_by_id(ids)
        found.sort(key=lambda st: (iso(st.sort_at), st.id), reverse=True)
        if len(ids) < window or len(found) < limit:
            return found[:limit]  # every match is in the window
        oldest = found[limit - 1]
        later = [iso(oldest.sort_at), oldest.id, min(ids)]
        newer = "(s.sort_at, s.id) > (?, ?) AND s.id < ?"
        count = self.db.execute(f"SELECT COUNT(*) FROM statements s WHERE {newer}", later)
        if count.fetchone()[0] > 20 * window:  # rare: cheaper to read every match
            return self._statements_by_id(
                self._ids(
                    "SELECT s.id FROM statements s WHERE s.id IN "
                    "(SELECT rowid FROM statements_fts WHERE statements_fts MATCH ?) "
                    "ORDER BY s.sort_at DESC, s.id DESC LIMIT ?",
                    [query, limit],
                )
            )
        more = self._ids(
            f"SELECT s.id FROM statements s WHERE {newer} AND EXISTS (SELECT 1 FROM "
            "statements_fts WHERE statements_fts MATCH ? AND statements_fts.rowid = s.id)",
            [*later, query],
        )
        found += self._statements_by_id(more)
        found.sort(key=lambda st: (iso(st.sort_at), st.id), reverse=True)
        return found[:limit]

    def _ids(self, sql: str, params: Sequence[object]) -> list[int]:
        return [r[0] for r in self.db.execute(sql, list(params))]

    def _statements_by_id(self, ids: Sequence[int]) -> list[StoredStatement]:
        """In the order of `ids` (a few hundred at most)."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        query = f"SELECT * FROM statements WHERE id IN ({marks})"
        rows = {r["id"]: r for r in self.db.query(query, list(ids))}
        return [_statement(rows[i]) for i in ids if i in rows]

    # ---- subscribers -------------------------------------------------------------------
    # A subscription is a chat, or one topic of a forum (thread_id; None is the chat itself or
    # a forum's General topic): each topic of a forum subscribes, stops and chooses apart.

    def subscribe(
        self,
        chat_id: int | str,
        kind: str,
        now: datetime,
        *,
        title: str = "",
        thread_id: int | None = None,
        language: str | None = None,
    ) -> bool:
        """Subscribe the chat's topic; True if it was not active.

        `language` is the chat's first language (a private chat's user's), kept only while it
        has none: a choice made with /settings stays.
        """
        with self.db.atomic():
            row = self._subscriber_row(chat_id, thread_id)
            if row is None:
                self._new_row(chat_id, thread_id, kind, title, now, active=True, language=language)
                return True
            self.db.execute(
                "UPDATE subscribers SET active = 1, kind = ?, title = ?, "
                "changed_at = ?, reason = NULL, language = COALESCE(language, ?), "
                "subscribed_at = CASE WHEN active = 1 THEN subscribed_at ELSE ? END "
                "WHERE id = ?",
                [kind, title, iso(now), language, iso(now), row["id"]],
            )
            return not row["active"]

    def _new_row(
        self,
        chat_id: int | str,
        thread_id: int | None,
        kind: str,
        title: str,
        now: datetime,
        *,
        active: bool,
        language: str | None = None,
    ) -> int:
        """A topic's first row starts with the settings of its chat's row, if it has one: a
        forum's new topic reads the language and sections the forum already chose."""
        base = self._chat_row(chat_id)
        # The pinned post is the chat's: every row of it carries the choice (set_pinned_wanted).
        row_id = self.db.execute(
            "INSERT INTO subscribers (chat_id, thread_id, kind, title, active, subscribed_at, "
            "changed_at, reason, silent, language, pinned_counters) VALUES (?, ?, ?, ?, ?, ?, "
            "?, ?, ?, ?, (SELECT IFNULL(MAX(pinned_counters), 0) FROM subscribers "
            "WHERE chat_id = ?))",
            [str(chat_id), thread_id, kind, title, active, iso(now), iso(now),
             None if active else "not subscribed", bool(base and base["silent"]),
             base["language"] if base and base["language"] else language, str(chat_id)],
        ).lastrowid  # fmt: skip
        assert row_id is not None
        if base is not None:
            self.db.execute(
                "INSERT INTO muted_sections (subscriber_id, feed) "
                "SELECT ?, feed FROM muted_sections WHERE subscriber_id = ?",
                [row_id, base["id"]],
            )
        return row_id

    def chat_settings(self, chat_id: int | str, thread_id: int | None = None) -> ChatSettings:
        """The topic's settings; a topic that has none reads its chat's (what its first row
        will start with), and a chat the bot does not know the defaults."""
        row = self._subscriber_row(chat_id, thread_id) or self._chat_row(chat_id)
        if row is None:
            return ChatSettings()
        muted = self.db.execute(
            "SELECT feed FROM muted_sections WHERE subscriber_id = ?", [row["id"]]
        ).fetchall()
        return ChatSettings(
            muted=frozenset(r[0] for r in muted),
            silent=bool(row["silent"]),
            language=row["language"],
        )

    def save_settings(
        self,
        chat_id: int | str,
        settings: ChatSettings,
        now: datetime,
        *,
        kind: str,
        title: str = "",
        thread_id: int | None = None,
    ) -> None:
        """Store the topic's settings. One not subscribed keeps them for when it is (its row
        is made inactive): the language also answers its commands meanwhile. They apply to
        statements recorded from now on; what is already queued for it still comes."""
        with self.db.atomic():
            row = self._subscriber_row(chat_id, thread_id)
            row_id = (
                row["id"]
                if row is not None
                else self._new_row(chat_id, thread_id, kind, title, now, active=False)
            )
            self.db.execute(
                "UPDATE subscribers SET silent = ?, language = ?, changed_at = ? WHERE id = ?",
                [settings.silent, settings.language, iso(now), row_id],
            )
            self.db.execute("DELETE FROM muted_sections WHERE subscriber_id = ?", [row_id])
            self.db.conn.executemany(
                "INSERT INTO muted_sections (subscriber_id, feed) VALUES (?, ?)",
                [(row_id, feed) for feed in sorted(settings.muted)],
            )

    def deactivate(
        self, chat_id: int | str, reason: str, now: datetime, *, thread_id: int | None = None
    ) -> bool:
        """Stop pushes to the topic and close what was pending for it; True if it was active."""
        with self.db.atomic():
            row = self._subscriber_row(chat_id, thread_id)
            return row is not None and self._deactivate_row(row, reason, now)

    def deactivate_chat(self, chat_id: int | str, reason: str, now: datetime) -> int:
        """The chat itself is gone (the bot was blocked or removed): every topic of it stops.
        Returns how many were active."""
        with self.db.atomic():
            rows = self.db.query("SELECT * FROM subscribers WHERE chat_id = ?", [str(chat_id)])
            return sum(self._deactivate_row(row, reason, now) for row in list(rows))

    def _deactivate_row(self, row: dict, reason: str, now: datetime) -> bool:
        if row["active"]:  # the first reason is the one worth keeping
            self.db.execute(
                "UPDATE subscribers SET active = 0, reason = ?, changed_at = ? WHERE id = ?",
                [reason, iso(now), row["id"]],
            )
        self.db.execute(
            "UPDATE deliveries SET status = ?, last_error = ? "
            "WHERE subscriber_id = ? AND status IN (?, ?)",
            [CLOSED, reason, row["id"], PENDING, SENDING],
        )
        return bool(row["active"])

    def migrate_chat(self, old_chat_id: int | str, new_chat_id: int | str, now: datetime) -> None:
        """A group became a supergroup: its subscriptions, settings and pending deliveries
        follow it to the new id."""
        with self.db.atomic():
            rows = self.db.query("SELECT * FROM subscribers WHERE chat_id = ?", [str(old_chat_id)])
            for row in list(rows):
                if self._subscriber_row(new_chat_id, row["thread_id"]) is not None:
                    # The supergroup subscribed on its own already: keep that one, retire the old
                    # (and its wish for the pinned post: the old id takes no messages).
                    self._deactivate_row(row, f"migrated to {new_chat_id}", now)
                    self.db.execute(
                        "UPDATE subscribers SET pinned_counters = 0 WHERE id = ?", [row["id"]]
                    )
                    continue
                self.db.execute(
                    "UPDATE subscribers SET chat_id = ?, kind = 'supergroup', changed_at = ?, "
                    "reason = CASE WHEN active = 1 THEN ? ELSE reason END WHERE id = ?",
                    [str(new_chat_id), iso(now), f"migrated from {old_chat_id}", row["id"]],
                )
            self.db.execute(
                "UPDATE pinned_posts SET chat_id = ? WHERE chat_id = ? AND NOT EXISTS "
                "(SELECT 1 FROM pinned_posts WHERE chat_id = ?)",
                [str(new_chat_id), str(old_chat_id), str(new_chat_id)],
            )

    def subscriber(self, chat_id: int | str, thread_id: int | None = None) -> Subscriber | None:
        row = self._subscriber_row(chat_id, thread_id)
        return _subscriber(row) if row else None

    def active_chat_ids(self, kind: str) -> list[int | str]:
        rows = self.db.execute(
            "SELECT DISTINCT chat_id FROM subscribers WHERE kind = ? AND active = 1", [kind]
        ).fetchall()
        return [chat_id_value(r[0]) for r in rows]

    def active_subscriber_count(self, kinds: Collection[str] = AUDIENCE_KINDS) -> int:
        """Active subscriptions (a forum's topics count apart) of `kinds`: by default the
        audience, so that a chat of another kind (one that stands in for Telegram while a
        console runs) makes /status and `health` agree."""
        marks = ",".join("?" * len(kinds))
        return int(
            self.db.execute(
                f"SELECT COUNT(*) FROM subscribers WHERE active = 1 AND kind IN ({marks})",
                list(kinds),
            ).fetchone()[0]
        )

    def _chat_row(self, chat_id: int | str) -> dict | None:
        """The row that speaks for the chat where a topic has none: its own (a forum's General
        topic), else its oldest (a forum subscribed from one topic before topics had rows of
        their own keeps its settings there)."""
        rows = list(
            self.db.query(
                "SELECT * FROM subscribers WHERE chat_id = ? "
                "ORDER BY thread_id IS NOT NULL, id LIMIT 1",
                [str(chat_id)],
            )
        )
        return rows[0] if rows else None

    def active_topics(self, chat_id: int | str) -> int:
        """How many subscriptions of the chat are active (a forum's topics)."""
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM subscribers WHERE chat_id = ? AND active = 1",
                [str(chat_id)],
            ).fetchone()[0]
        )

    def _subscriber_row(self, chat_id: int | str, thread_id: int | None) -> dict | None:
        rows = list(
            self.db.query(
                "SELECT * FROM subscribers WHERE chat_id = ? AND IFNULL(thread_id, 0) = ?",
                [str(chat_id), thread_id or 0],
            )
        )
        return rows[0] if rows else None

    # ---- the daily pinned counters post (bot/pinned.py) ---------------------------------

    def pinned_wanted(self, chat_id: int | str) -> bool:
        """Whether the group's admins turned the pinned counters post on in /settings (one
        post per chat: a choice made in any topic of a forum is the forum's)."""
        row = self.db.execute(
            "SELECT MAX(pinned_counters) FROM subscribers WHERE chat_id = ?", [str(chat_id)]
        ).fetchone()
        return bool(row[0])

    def set_pinned_wanted(
        self, chat_id: int | str, on: bool, now: datetime, *, kind: str, title: str = ""
    ) -> None:
        """Store the group's choice with its settings (an unsubscribed group keeps an inactive
        row, as save_settings does); turning it off forgets the post."""
        with self.db.atomic():
            known = self.db.execute(
                "SELECT 1 FROM subscribers WHERE chat_id = ? LIMIT 1", [str(chat_id)]
            ).fetchone()
            if not known:
                self._new_row(chat_id, None, kind, title, now, active=False)
            self.db.execute(  # every topic's row: the post is the chat's
                "UPDATE subscribers SET pinned_counters = ?, changed_at = ? WHERE chat_id = ?",
                [on, iso(now), str(chat_id)],
            )
            if not on:
                self.forget_pinned_post(chat_id)

    def pinned_groups(self) -> list[tuple[int | str, str, str | None]]:
        """(chat id, kind, language) of every group that asked for the post: once per chat, in
        the language of the chat's own row (a forum's General topic) or else its first topic's."""
        asked = self.db.execute(
            "SELECT DISTINCT chat_id FROM subscribers WHERE pinned_counters = 1"
        ).fetchall()
        rows = sorted(
            (row for row in (self._chat_row(r[0]) for r in asked)
             if row and row["pinned_counters"] and row["kind"] in ("group", "supergroup")),
            key=lambda row: row["id"],
        )  # fmt: skip
        return [(chat_id_value(r["chat_id"]), r["kind"], r["language"]) for r in rows]

    def pinned_post(self, chat_id: int | str) -> PinnedPost | None:
        rows = list(self.db.query("SELECT * FROM pinned_posts WHERE chat_id = ?", [str(chat_id)]))
        if not rows:
            return None
        r = rows[0]
        return PinnedPost(
            chat_id=chat_id_value(r["chat_id"]),
            message_id=r["message_id"],
            text_sha256=r["text_sha256"],
            posted_on=date.fromisoformat(r["posted_on"]) if r["posted_on"] else None,
            lost=bool(r["lost"]),
            pinned=bool(r["pinned"]),
            told_no_pin_right=bool(r["told_no_pin_right"]),
        )

    def save_pinned_post(self, post: PinnedPost, now: datetime) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO pinned_posts (chat_id, message_id, text_sha256, posted_on, "
            "lost, pinned, told_no_pin_right, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [str(post.chat_id), post.message_id, post.text_sha256,
             post.posted_on.isoformat() if post.posted_on else None, post.lost, post.pinned,
             post.told_no_pin_right, iso(now)],
        )  # fmt: skip

    def forget_pinned_post(self, chat_id: int | str) -> None:
        self.db.execute("DELETE FROM pinned_posts WHERE chat_id = ?", [str(chat_id)])

    # ---- outbox ------------------------------------------------------------------------

    def due_deliveries(
        self, now: datetime, limit: int, *, kinds: Collection[str] = AUDIENCE_KINDS
    ) -> list[Delivery]:
        """At most one row per chat of `kinds`: the oldest undelivered statement, if it is due.

        A chat whose oldest row waits for a retry gets nothing newer meanwhile, so every chat
        reads statements in the order they were published. Each topic of a forum has its own
        queue, but a batch still takes one row per chat: Telegram paces the chat, and a batch
        holding a forum's every topic would wait seconds for the last of them.
        """
        kind_filter = f"AND c.kind IN ({','.join('?' * len(kinds))})"
        params: list[object] = [PENDING, iso(now), *kinds, PENDING, SENDING, limit]
        # A row is its chat's head when no pending or in-flight row of that chat comes before it
        # in (sort_at, statement_id) order. Asked per row through the deliveries_queue index,
        # this takes half the time of grouping every open row by chat (docs/benchmarks.md).
        # Only the statement's id per row: a batch is mostly one statement for hundreds of
        # chats, read once below (its text per row was most of this query's cost).
        rows = self.db.conn.execute(
            f"""
            SELECT d.id, d.attempts, d.kind, d.message_id, d.statement_id,
                   c.id, c.chat_id, c.thread_id, c.kind, c.title, c.active, c.reason, c.silent,
                   c.language
            FROM deliveries d
            JOIN subscribers c ON c.id = d.subscriber_id
            WHERE d.status = ? AND d.next_attempt_at <= ? AND c.active = 1 {kind_filter}
              AND (d.kind = 'push' OR d.message_id IS NOT NULL)
              AND NOT EXISTS (
                  SELECT 1 FROM deliveries e
                  WHERE e.subscriber_id = d.subscriber_id AND e.status IN (?, ?)
                    AND (e.sort_at, e.statement_id) < (d.sort_at, d.statement_id)
              )
            ORDER BY d.sort_at, d.statement_id, d.id
            LIMIT ?
            """,
            params,
        ).fetchall()
        statements = {st.id: st for st in self._statements_by_id(sorted({r[4] for r in rows}))}
        due: list[Delivery] = []
        chats: set[str] = set()
        for (delivery_id, attempts, kind, message_id, statement_id, sub_id, chat_id, thread_id,
             chat_kind, title, active, reason, silent, language) in rows:  # fmt: skip
            if chat_id in chats:  # another topic of a forum already in this batch
                continue
            chats.add(chat_id)
            due.append(
                Delivery(
                    id=delivery_id,
                    subscriber=Subscriber(
                        id=sub_id,
                        chat_id=chat_id_value(chat_id),
                        thread_id=thread_id,
                        kind=chat_kind,
                        title=title,
                        active=bool(active),
                        reason=reason,
                        silent=bool(silent),
                        language=language,
                    ),
                    statement=statements[statement_id],
                    attempts=attempts,
                    kind=kind,
                    message_id=message_id if kind == "edit" else None,
                )
            )
        return due

    def mark_sending(self, delivery_id: int, now: datetime) -> bool:
        """Written before the send: after a crash such a row is sent again (the one duplicate).
        False if the row is no longer pending (/stop closed it since it was read): not sent."""
        return self.claim([delivery_id], now) == {delivery_id}

    def claim(self, ids: Sequence[int], now: datetime) -> set[int]:
        """mark_sending for a whole batch, in two statements instead of one per row, in one
        transaction: the ids that were still pending (and are now 'sending')."""
        claimed: set[int] = set()
        with self.db.atomic():
            for start in range(0, len(ids), 500):  # under SQLite's bound-variable limit
                chunk = list(ids[start : start + 500])
                where = f"id IN ({','.join('?' * len(chunk))}) AND status = ?"
                pending = self.db.execute(
                    f"SELECT id FROM deliveries WHERE {where}", [*chunk, PENDING]
                ).fetchall()
                self.db.execute(
                    "UPDATE deliveries SET status = ?, attempts = attempts + 1, "
                    f"next_attempt_at = ? WHERE {where}",
                    [SENDING, iso(now), *chunk, PENDING],
                )
                claimed.update(r[0] for r in pending)
        return claimed

    def mark_sent(self, delivery_id: int, message_id: int | None, now: datetime) -> None:
        self.mark_sent_many([(delivery_id, message_id, now)])

    def mark_sent_many(self, sent: Sequence[tuple[int, int | None, datetime]]) -> None:
        """(delivery id, message id, when) of rows Telegram accepted; one statement each for
        all of them (the group commit of a fan-out's answers)."""
        self.db.conn.executemany(
            "UPDATE deliveries SET status = ?, message_id = ?, sent_at = ?, last_error = NULL "
            "WHERE id = ?",
            [(SENT, message_id, iso(now), delivery_id) for delivery_id, message_id, now in sent],
        )
        # A correction that came while this push was in flight edits the message it made
        # (asked only when some correction waits for its message: through the small index on
        # edits, instead of a lookup per sent row).
        waiting = self.db.execute(
            "SELECT 1 FROM deliveries WHERE kind = 'edit' AND status = ? "
            "AND message_id IS NULL LIMIT 1",
            [PENDING],
        ).fetchone()
        if not waiting:
            return
        self.db.conn.executemany(
            "UPDATE deliveries SET message_id = ? WHERE kind = 'edit' AND status = ? "
            "AND message_id IS NULL AND (statement_id, subscriber_id) = "
            "(SELECT statement_id, subscriber_id FROM deliveries WHERE id = ? AND kind = 'push')",
            [(message_id, PENDING, delivery_id) for delivery_id, message_id, _ in sent],
        )

    def mark_closed(self, delivery_id: int, reason: str) -> None:
        """An edit whose message is gone (deleted in the chat): nothing left to correct."""
        self.db.execute(
            "UPDATE deliveries SET status = ?, last_error = ? WHERE id = ? AND status = ?",
            [CLOSED, reason, delivery_id, SENDING],
        )

    def mark_retry(
        self, delivery_id: int, error: str, retry_at: datetime, *, count_attempt: bool = True
    ) -> None:
        self.db.execute(
            "UPDATE deliveries SET status = ?, last_error = ?, next_attempt_at = ?"
            + ("" if count_attempt else ", attempts = MAX(0, attempts - 1)")
            # Only a row still in flight: /stop may have closed it meanwhile.
            + " WHERE id = ? AND status = ?",
            [PENDING, error, iso(retry_at), delivery_id, SENDING],
        )

    def mark_failed(self, delivery_id: int, error: str) -> None:
        self.db.execute(
            "UPDATE deliveries SET status = ?, last_error = ? WHERE id = ? AND status = ?",
            [FAILED, error, delivery_id, SENDING],
        )
        # A push that never arrived leaves its edit nothing to change.
        self.db.execute(
            "UPDATE deliveries SET status = ?, last_error = ? WHERE kind = 'edit' AND status = ? "
            "AND message_id IS NULL AND (statement_id, subscriber_id) = "
            "(SELECT statement_id, subscriber_id FROM deliveries WHERE id = ? AND kind = 'push')",
            [CLOSED, "the push failed", PENDING, delivery_id],
        )

    def prune_deliveries(self, before: datetime) -> int:
        """Delete finished outbox rows (sent, closed, failed) created before `before`.

        Each push adds a row per subscriber; kept for ever they would grow the database by
        gigabytes a year. Pending and in-flight rows are never touched.
        """
        return self.db.execute(
            "DELETE FROM deliveries WHERE status IN (?, ?, ?) AND created_at < ?",
            [SENT, CLOSED, FAILED, iso(before)],
        ).rowcount

    def release_in_flight(self, kinds: Collection[str] = AUDIENCE_KINDS) -> int:
        """At start-up: rows left 'sending' by a crash go back to the queue.

        Only the rows of the chats this engine sends to (`kinds`, as for due_deliveries): a
        console run beside the running bot must not re-queue the bot's messages in flight.
        """
        marks = ",".join("?" * len(kinds))
        return self.db.execute(
            "UPDATE deliveries SET status = ? WHERE status = ? AND subscriber_id IN "
            f"(SELECT id FROM subscribers WHERE kind IN ({marks}))",
            [PENDING, SENDING, *kinds],
        ).rowcount

    # ---- maintenance -------------------------------------------------------------------

    def checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it; False if readers kept it from
        finishing (the next one catches up). Without it a WAL that stays under the
        auto-checkpoint size keeps its pages, and on a full disk nothing is written back."""
        busy = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        return not busy

    # ---- status ------------------------------------------------------------------------

    def status(self) -> StoreStatus:
        counts = dict(
            self.db.execute(
                "SELECT status, COUNT(*) FROM deliveries WHERE status IN (?, ?, ?) GROUP BY status",
                [PENDING, SENDING, FAILED],
            ).fetchall()
        )
        corrections = self.db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE kind = 'edit' AND status = ?", [SENT]
        ).fetchone()[0]
        return StoreStatus(
            corrections_sent=corrections,
            statements=self.statement_count(),
            active_subscribers=self.active_subscriber_count(),
            pending=counts.get(PENDING, 0) + counts.get(SENDING, 0),
            failed=counts.get(FAILED, 0),
            feeds=self.feed_states(),
        )

    def backup(self, target: Path) -> None:
        """A consistent copy while the bot runs (SQLite's online backup API), in one file.

        The folder must exist: a mistyped path should not grow a tree of folders. The copy is
        written under a temporary name and renamed when complete, so a failed backup leaves
        nothing that looks like one.
        """
        if not target.parent.is_dir():
            raise FileNotFoundError(f"folder {target.parent} does not exist")
        partial = target.with_name(target.name + ".partial")
        try:
            dest = sqlite3.connect(str(partial), isolation_level=None)
            try:
                self.db.conn.backup(dest)
                # The copied pages say WAL, as the source's do: without this the copy would
                # need -wal/-shm files beside it as soon as anything opened it.
                dest.execute("PRAGMA journal_mode=DELETE")
            finally:
                dest.close()
            os.replace(partial, target)
        except BaseException:
            for leftover in ("", "-wal", "-shm", "-journal"):
                partial.with_name(partial.name + leftover).unlink(missing_ok=True)
            raise


T = TypeVar("T")

WRITE_BUSY_TIMEOUT = 3.0  # s a write waits for another process's lock before giving up
READ_BUSY_TIMEOUT = 3.0  # WAL readers rarely wait at all (only while a WAL is being reset)
WAL_SIZE_LIMIT = 1024 * 1024  # bytes a WAL file is cut back to once checkpointed
WAL_AUTOCHECKPOINT = 250  # pages (about 1 MB); SQLite's default lets it grow to 4 MB


class AsyncStore:
    """The event loop's door to the database.

    Writes run one at a time on one writer thread with its own connection (SQLite has a single
    writer anyway); reads run on another thread and connection, and in WAL mode a reader never
    waits for a writer, so a /latest answers while a write waits out another process's lock.
    The loop only awaits: it never blocks on SQLite. Database errors come out of write() and
    read() as StoreUnavailable, after a short busy timeout; retrying is the caller's choice.

    `writer` is for code that runs before the loop starts (start-up, tests); once the loop
    runs, go through write() so that calls never overlap on the connection.
    """

    def __init__(self, writer: Store, reader: Store) -> None:
        self.writer = writer
        self.reader = reader
        self.path = writer.path
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="db-write")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="db-read")

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        write_timeout: float = WRITE_BUSY_TIMEOUT,
        read_timeout: float = READ_BUSY_TIMEOUT,
    ) -> AsyncStore:
        """Create or migrate as Store.open does (its errors are raised as they are), then open
        the writer and reader connections that the door's threads use."""
        Store.open(path).close()
        writer = Store(_connect(path, write_timeout), path)
        try:
            # Bounded WAL: truncated back after checkpoints and checkpointed every ~1 MB.
            writer.db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            writer.db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
            reader = Store(_connect(path, read_timeout), path)
        except BaseException:
            writer.close()
            raise
        reader.db.execute("PRAGMA query_only=ON")  # a write through read() is a bug: refuse it
        return cls(writer, reader)

    async def write(self, fn: Callable[[Store], T]) -> T:
        """fn(writer) on the writer thread, after every write asked for before it."""
        return await self._run(self._write_thread, self.writer, fn)

    async def read(self, fn: Callable[[Store], T]) -> T:
        """fn(reader) on the read connection: sees every write that write() has returned from."""
        return await self._run(self._read_thread, self.reader, fn)

    async def _run(self, thread: ThreadPoolExecutor, store: Store, fn: Callable[[Store], T]) -> T:
        # Cancelled before its turn, fn never runs; once running, it runs to its end.
        return await asyncio.get_running_loop().run_in_executor(thread, _guarded, store, fn)

    def close(self) -> None:
        """Wait for the calls already queued, then close both connections."""
        self._write_thread.shutdown(wait=True)
        self._read_thread.shutdown(wait=True)
        self.writer.close()
        self.reader.close()


def _connect(path: Path, timeout: float) -> sqlite_utils.Database:
    # Created on the caller's thread, used on the door's: check_same_thread off. One thread
    # at a time uses each connection (single-thread executors), which is what SQLite needs.
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=timeout,
                           check_same_thread=False)  # fmt: skip
    try:
        conn.execute("PRAGMA synchronous=NORMAL")  # per connection, as in Store.open
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return sqlite_utils.Database(conn)


def _guarded(store: Store, fn: Callable[[Store], T]) -> T:
    try:
        return fn(store)
    except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
        raise  # a bug in the caller, not the database's state: retrying would not help
    except sqlite3.Error as exc:
        # A failed COMMIT (locked, full) leaves the transaction open, and every later BEGIN
        # would fail with "cannot start a transaction within a transaction".
        if store.db.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                store.db.conn.execute("ROLLBACK")
        raise StoreUnavailable(unavailable_reason(exc)) from exc


def unavailable_reason(exc: sqlite3.Error) -> str:
    """One line for logs and admins: SQLite's own words, "disk is full" for SQLITE_FULL."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return "disk is full" if "disk is full" in text else text


def retry_delay(attempt: int, base: float, cap: float) -> timedelta:
    """Growing backoff: base, 2*base, 4*base ... up to cap."""
    return timedelta(seconds=min(cap, base * (2 ** max(0, attempt - 1))))


def _iso_or_none(moment: datetime | None) -> str | None:
    return iso(moment) if moment else None


def _compared(row: dict) -> Statement:
    """A stored statement as the diff compares it."""
    return Statement(
        key=row["key"],
        title=row["title"],
        link=row["link"],
        published=from_iso(row["published"]),
        lead=row["lead"],
    )


def _feed_state(row: dict) -> FeedState:
    return FeedState(
        name=row["name"],
        url=row["url"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        baseline_done=bool(row["baseline_done"]),
        last_poll_at=from_iso(row["last_poll_at"]),
        last_success_at=from_iso(row["last_success_at"]),
        last_error=row["last_error"],
        last_error_at=from_iso(row["last_error_at"]),
        consecutive_failures=row["consecutive_failures"],
        next_poll_at=from_iso(row["next_poll_at"]),
        redirected_to=row["redirected_to"],
        discovered_url=row["discovered_url"],
        discovered_private=bool(row["discovered_private"]),
        body_sha256=row["body_sha256"],
        skipped=tuple(line for line in row["skipped"].split("\n") if line),
    )


def _statement(row: dict) -> StoredStatement:
    first_seen = from_iso(row["first_seen"])
    assert first_seen is not None
    return StoredStatement(
        id=row["id"],
        feed=row["feed"],
        key=row["key"],
        title=row["title"],
        link=row["link"],
        published=from_iso(row["published"]),
        lead=row["lead"],
        first_seen=first_seen,
        full_html=row.get("full_html") or "",  # only where a query joins statement_texts
        telegraph_url=row.get("telegraph_url") or "",
        telegraph_path=row.get("telegraph_path") or "",
    )


def _subscriber(row: dict) -> Subscriber:
    return Subscriber(
        id=row["id"],
        chat_id=chat_id_value(row["chat_id"]),
        thread_id=row["thread_id"],
        kind=row["kind"],
        title=row["title"],
        active=bool(row["active"]),
        reason=row["reason"],
        silent=bool(row["silent"]),
        language=row["language"],
    )
