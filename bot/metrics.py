"""Prometheus metrics: what the poller and the delivery engine count, and what the database holds.

`Metrics` is what they call; its methods do nothing, so a bot without `bot.metrics` pays
nothing. `PrometheusMetrics` counts into a registry of its own (not prometheus_client's global
one, so tests can run several bots in one process) and serves it over HTTP from a daemon thread.
Gauges of what the database holds (pending deliveries, subscribers, fan-out progress) are read
at scrape time, in the scrape's own thread, through a read-only connection of its own: never
the event loop's connections, and nothing is counted twice or drifts after a restart.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from bot.config import Config
from bot.model import PollOutcome
from bot.store import Store

logger = logging.getLogger(__name__)

EXIT_METRICS = 6  # the metrics address cannot be listened on (port in use, no such address)

POLL_OUTCOMES = ("ok", "not_modified", "failed", "skipped")
# "edited" and "message_gone" are corrections' outcomes (edits of pushed messages).
DELIVERY_OUTCOMES = ("sent", "retried", "failed", "chat_gone", "moved", "throttled", "edited",
                     "message_gone")  # fmt: skip
# Sender.send includes the wait for the rate limiter's slot: tens of ms to seconds.
SEND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# From a statement recorded to its last chat: seconds for a few chats, an hour for 100,000.
FANOUT_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)
SCRAPE_DB_TIMEOUT = 1.0  # s a scrape waits for the database; a WAL reader rarely waits at all
OPEN = ("pending", "sending")


class MetricsError(Exception):
    """The metrics endpoint cannot start: one line naming bot.metrics and why."""

    exit_code = EXIT_METRICS


class Metrics:
    """What the poller and the delivery engine report. This one keeps nothing (metrics off)."""

    enabled = False  # False: callers skip work done only for metrics (a query per batch)

    def polled(self, outcome: PollOutcome) -> None:
        """A poll of a feed ended: ok, not_modified, failed or skipped (backing off)."""

    def delivered(self, outcome: str) -> None:
        """One send's outcome, one of DELIVERY_OUTCOMES."""

    def send_took(self, seconds: float) -> None:
        """Time spent in Sender.send for one message."""

    def flood_wait(self, seconds: float) -> None:
        """Telegram's flood control paused every send; `seconds` it added to the pause (0 for
        an answer that came while an earlier one's pause still ran longer)."""

    def fanout_finished(self, seconds: float) -> None:
        """A statement's last open delivery finished, `seconds` after it was recorded."""

    def start(self) -> None:
        """Serve the metrics (nothing to serve here)."""

    def stop(self) -> None:
        """Stop serving; harmless when never started."""


NO_METRICS = Metrics()


class PrometheusMetrics(Metrics):
    enabled = True

    def __init__(
        self,
        database: Path,
        feeds: Sequence[str] = (),
        address: tuple[str, int] | None = None,
    ) -> None:
        self.address = address
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            "statement_bot_polls", "Polls of a feed, by outcome", ["feed", "outcome"], registry=r
        )
        self.statements = Counter(
            "statement_bot_statements_recorded",
            "New statements recorded: pushed to subscribers, or silently (first poll, flood guard)",
            ["feed", "push"],
            registry=r,
        )
        self.deliveries = Counter(
            "statement_bot_deliveries",
            "Sends to a chat, by outcome",
            ["outcome"],
            registry=r,
        )
        self.send_seconds = Histogram(
            "statement_bot_send_duration_seconds",
            "Time one message spent in Sender.send, the rate limiter's wait included",
            buckets=SEND_BUCKETS,
            registry=r,
        )
        self.flood_waits = Counter(
            "statement_bot_flood_waits",
            "Telegram flood-control waits (429 retry_after)",
            registry=r,
        )
        self.flood_wait_seconds = Counter(
            "statement_bot_flood_wait_seconds",
            "Seconds sends were paused by Telegram's flood control",
            registry=r,
        )
        self.fanout_seconds = Histogram(
            "statement_bot_fanout_duration_seconds",
            "From a statement being recorded to its last delivery finishing (sent, gone, failed)",
            buckets=FANOUT_BUCKETS,
            registry=r,
        )
        # Every series exists from the start at 0: rate() and alerts need no "absent" case.
        for feed in feeds:
            for outcome in POLL_OUTCOMES:
                self.polls.labels(feed, outcome)
            for push in ("pushed", "silent"):
                self.statements.labels(feed, push)
        for outcome in DELIVERY_OUTCOMES:
            self.deliveries.labels(outcome)
        self.database = DatabaseCollector(database)
        r.register(self.database)
        ProcessCollector(registry=r)  # memory, CPU, open files of the bot's process
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def polled(self, outcome: PollOutcome) -> None:
        if outcome.skipped:
            label = "skipped"
        elif outcome.error is not None:
            label = "failed"
        elif outcome.not_modified:
            label = "not_modified"
        else:
            label = "ok"
        self.polls.labels(outcome.feed, label).inc()
        if outcome.report is not None:
            self.statements.labels(outcome.feed, "pushed").inc(outcome.report.pushed)
            self.statements.labels(outcome.feed, "silent").inc(outcome.report.silent)

    def delivered(self, outcome: str) -> None:
        self.deliveries.labels(outcome).inc()

    def send_took(self, seconds: float) -> None:
        self.send_seconds.observe(seconds)

    def flood_wait(self, seconds: float) -> None:
        self.flood_waits.inc()
        self.flood_wait_seconds.inc(max(0.0, seconds))

    def fanout_finished(self, seconds: float) -> None:
        self.fanout_seconds.observe(max(0.0, seconds))

    def start(self) -> None:
        """Listen on the configured address; MetricsError (one line) when that cannot be done."""
        if self.address is None or self._server is not None:
            return
        host, port = self.address
        try:
            self._server, self._thread = start_http_server(port, host, registry=self.registry)
        except OSError as exc:  # in use, not an address of this machine, unknown name
            why = exc.strerror or str(exc)
            raise MetricsError(
                f"bot.metrics: cannot serve metrics on {format_address(self.address)}: {why}"
            ) from None
        logger.info("metrics at http://%s/metrics", format_address(self.address))

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()  # waits for serve_forever to return (a scrape may finish)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None


def metrics_for(config: Config) -> Metrics:
    """The bot's metrics: none without bot.metrics, else a registry that start() serves there."""
    if config.metrics is None:
        return NO_METRICS
    return PrometheusMetrics(config.database_path, [f.name for f in config.feeds], config.metrics)


def format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class DatabaseCollector(Collector):
    """Gauges read from the database at each scrape, through a read-only connection opened in
    the scrape's thread (prometheus_client serves each scrape on a thread of its own)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last_seconds = 0.0  # how long the last scrape's queries took (docs, benchmarks)

    def describe(self) -> Iterable[Metric]:
        # Names only: without describe(), registering would run the queries once.
        return [_readable(), *self._families()]

    def collect(self) -> Iterable[Metric]:
        started = time.perf_counter()
        families = list(self._families())
        ok = _readable()
        try:
            conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro",
                uri=True,
                timeout=SCRAPE_DB_TIMEOUT,
                isolation_level=None,  # transactions are explicit: one snapshot per scrape
            )
            try:
                self._read(conn, *families)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            logger.warning("metrics: cannot read database %s: %s", self.path, exc)
            ok.add_metric([], 0)
            yield ok
            return
        self.last_seconds = time.perf_counter() - started
        ok.add_metric([], 1)
        yield ok
        yield from families

    def _families(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "statement_bot_pending_deliveries",
            "Outbox rows not yet finished (waiting, waiting for a retry, or in flight)",
        )
        yield GaugeMetricFamily(
            "statement_bot_failed_deliveries",
            "Outbox rows that failed for good (kept until pruned after keep_deliveries_days)",
        )
        yield GaugeMetricFamily(
            "statement_bot_subscribers", "Active subscribed chats, by kind", labels=["kind"]
        )
        yield GaugeMetricFamily(
            "statement_bot_fanout_statements",
            "Statements whose delivery to every chat is under way (some rows still open)",
        )
        yield GaugeMetricFamily(
            "statement_bot_fanout_deliveries",
            "Outbox rows of the statements under way: finished (sent, gone, failed) or open",
            labels=["state"],
        )
        yield GaugeMetricFamily(
            "statement_bot_fanout_progress_ratio",
            "Finished rows / all rows of the statements under way (1 when none is)",
        )

    @staticmethod
    def _read(
        conn: sqlite3.Connection,
        pending: GaugeMetricFamily,
        failed: GaugeMetricFamily,
        subscribers: GaugeMetricFamily,
        statements: GaugeMetricFamily,
        fanout: GaugeMetricFamily,
        progress: GaugeMetricFamily,
    ) -> None:
        # Each query walks an index that holds what it counts (deliveries_due, the unique
        # (statement_id, subscriber_id) one): ~70 ms with 100,000 rows open (README, Metrics).
        conn.execute("BEGIN")  # one snapshot for every gauge of this scrape
        open_by_statement = dict(
            conn.execute(
                "SELECT statement_id, COUNT(*) FROM deliveries WHERE status IN (?, ?) "
                "GROUP BY statement_id",
                OPEN,
            ).fetchall()
        )
        ids = list(open_by_statement)
        rows = 0
        for start in range(0, len(ids), 500):  # under SQLite's bound-variable limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows += conn.execute(
                f"SELECT COUNT(*) FROM deliveries WHERE statement_id IN ({marks})", chunk
            ).fetchone()[0]
        failures = conn.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'failed'")
        failed.add_metric([], failures.fetchone()[0])
        for kind, count in conn.execute(
            "SELECT kind, COUNT(*) FROM subscribers WHERE active = 1 GROUP BY kind ORDER BY kind"
        ):
            subscribers.add_metric([kind], count)
        conn.execute("COMMIT")
        open_rows = sum(open_by_statement.values())
        finished = rows - open_rows
        pending.add_metric([], open_rows)
        statements.add_metric([], len(open_by_statement))
        fanout.add_metric(["finished"], finished)
        fanout.add_metric(["open"], open_rows)
        progress.add_metric([], finished / rows if rows else 1.0)


def _readable() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "statement_bot_database_readable",
        "1 when this scrape could read the database, else 0 (the other gauges are missing)",
    )


def open_statements(store: Store, ids: Sequence[int], kinds: Sequence[str]) -> set[int]:
    """Of `ids`, the statements that still have a pending or in-flight row for a chat that the
    delivery engine of `kinds` drains (the filter of Store.due_deliveries)."""
    if not ids:
        return set()
    kind_filter = f"AND c.kind IN ({','.join('?' * len(kinds))})"
    marks = ",".join("?" * len(ids))
    # An outbox row has its statement's sort_at, so deliveries_due finds an open row in a few
    # steps: 0.02 ms, where reading the statement's rows took 96 ms with 100,000 chats.
    rows = store.db.execute(
        f"SELECT s.id FROM statements s WHERE s.id IN ({marks}) AND EXISTS ("
        "SELECT 1 FROM deliveries d INDEXED BY deliveries_due "
        "JOIN subscribers c ON c.id = d.subscriber_id "
        "WHERE d.status IN (?, ?) AND d.sort_at = s.sort_at AND d.statement_id = s.id "
        f"AND c.active = 1 {kind_filter})",
        [*ids, *OPEN, *kinds],
    ).fetchall()
    return {r[0] for r in rows}
