"""Command line: the entry point, where logging is configured and the application is wired."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bot import __version__, commands, console, runtime
from bot.config import (
    Config,
    ConfigError,
    FeedConfig,
    config_path_from,
    load_config,
    parse_feeds,
)
from bot.console import SHOWN_HEADER, ConsoleAdmin, ConsoleSender, as_console_text, console_loop
from bot.fetch import FetchError, make_client
from bot.health import CHECK_SECONDS, assess
from bot.logs import configure_logging, secret_filter
from bot.metrics import MetricsError, metrics_for
from bot.migrations import SchemaTooNewError
from bot.parse import FeedFormatError
from bot.preview import render_preview, take_preview
from bot.service import Service, utc_now
from bot.store import (
    OPEN_CHECK_SECONDS,
    AsyncStore,
    CheckTimedOut,
    SchemaMismatchError,
    Store,
    StoreOpenError,
    StoreUnavailable,
)
from bot.telegram_bot import TokenError, read_token, run_telegram

logger = logging.getLogger("bot")

DEMO_NEWEST = 3  # statements a console run shows when nothing is new


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statement-bot",
        description="Pushes an organisation's new official statements to Telegram, "
        "with incident day counters.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config", help="TOML config (default: $STATEMENT_BOT_CONFIG, else config/bot.toml)"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    parser.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="log line format"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run the bot on Telegram ($TELEGRAM_BOT_TOKEN), or --console without it"
    )
    run.add_argument(
        "--console",
        action="store_true",
        help="no Telegram: pushes are printed, commands are read from stdin",
    )
    run.add_argument("--once", action="store_true", help="poll every feed once, deliver, exit")

    sub.add_parser("check-config", help="validate the config; exit 2 on problems")

    counters = sub.add_parser("counters", help="print the date, clocks and day counters")
    counters.add_argument("--at", help="ISO-8601 moment, e.g. 2021-10-26T22:54+01:00 (default now)")

    latest = sub.add_parser("latest", help="print the newest statement, or a list of N")
    latest.add_argument("n", nargs="?", help=f"how many (1-{commands.MAX_LATEST})")

    sub.add_parser("health", help="exit 0 when the database opens and every feed was read lately")

    preview = sub.add_parser(
        "preview",
        help="fetch one source once and print what the bot reads from it (stores nothing)",
        description="NAME: a feed of the config. URL: any page or feed; with --item it is read "
        "as an HTML list page, as a [feeds.page] table would.",
    )
    preview.add_argument("target", metavar="NAME|URL", help="a configured feed's name, or a URL")
    for option, what in (
        ("item", "CSS selector of one statement on the page"),
        ("title", "inside the item: the title (default: its first link)"),
        ("link", "inside the item: the link, e.g. 'a::attr(href)'"),
        ("date", "inside the item: the date text"),
        ("lead", "inside the item: the lead paragraph"),
        ("article", "on each statement's own page: the text that becomes its lead"),
    ):
        preview.add_argument(f"--{option}", help=what)
    preview.add_argument(
        "--date-format",
        action="append",
        dest="date_formats",
        metavar="FORMAT",
        help="strptime format of the date, e.g. %%d.%%m.%%Y (repeat to try several)",
    )

    backup = sub.add_parser(
        "backup", help="write a consistent copy of the database, also while running"
    )
    backup.add_argument("path", help="the file to write (it must not exist)")

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # In console mode stdout is the chat, so the log goes to stderr there.
    console_chat = args.command == "run" and args.console
    configure_logging(args.log_level, args.log_format, sys.stderr if console_chat else sys.stdout)
    try:
        config = load_config(config_path_from(args.config))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config: {problem}", file=sys.stderr)
        return 2
    for feed in config.feeds:  # a cookie or key in a feed's headers never reaches a log line
        for _, value in feed.headers:
            secret_filter.add(value)
    if args.command == "check-config":
        print(f"{config.source}: OK ({len(config.feeds)} feeds, {len(config.counters)} counters)")
        return 0
    if args.command == "counters":
        return _print_counters(config, args.at)
    try:
        if args.command == "health":
            return _health(config)
        if args.command == "backup":
            return _backup(config, Path(args.path))
        if args.command == "preview":
            return asyncio.run(_preview(config, args))
        if args.command == "latest":
            return _print_latest(config, [args.n] if args.n is not None else [])
        if args.command == "run" and args.console:
            return asyncio.run(run_console(config, once=args.once))
        if args.command == "run":
            try:
                token = read_token()
            except TokenError as exc:
                print(f"statement-bot: {exc}", file=sys.stderr)
                return 2
            return runtime.run(run_telegram(config, token))
    except SchemaTooNewError as exc:
        print(f"statement-bot: {exc}", file=sys.stderr)
        return 2
    except StoreOpenError as exc:
        # Every command that opens the database: one line, the exit code of its kind.
        print(f"statement-bot: {exc}", file=sys.stderr)
        return exc.exit_code
    except MetricsError as exc:  # run: the metrics port is taken, or not on this machine
        print(f"statement-bot: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


def _print_counters(config: Config, at: str | None) -> int:
    if at:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            print(f"--at: {at!r} is not an ISO-8601 time such as 2021-10-26T22:54+01:00",
                  file=sys.stderr)  # fmt: skip
            return 2
        if moment.tzinfo is None:  # a bare time is read in the bot's zone, as the site does
            moment = moment.replace(tzinfo=config.timezone)
    else:
        moment = datetime.now(UTC)
    print(as_console_text(commands.counters_reply(config, moment)))
    return 0


def _health(config: Config) -> int:
    # Always exit 1 when unhealthy, whatever the cause: Docker's HEALTHCHECK reserves 2.
    try:
        store = Store.open_readonly(config.database_path)
    except StoreOpenError as exc:
        print(f"unhealthy: {exc}")
        return 1
    except SchemaMismatchError as exc:
        print(f"unhealthy: database {config.database_path}: {exc}")
        return 1
    try:
        # A file can answer the status queries and still be damaged where they do not look.
        store.quick_check(CHECK_SECONDS)
        checked = "quick_check ok"
    except CheckTimedOut:
        checked = f"check timed out after {CHECK_SECONDS:g} s (not verified)"
    except StoreOpenError as exc:
        store.close()
        print(f"unhealthy: {exc}")
        return 1
    try:
        verdict = assess(store.status(), config, utc_now(), database=checked)
    except sqlite3.Error as exc:
        print(f"unhealthy: database {config.database_path}: {exc}")
        return 1
    finally:
        store.close()
    print("healthy" if verdict.ok else "unhealthy")
    for line in verdict.lines:
        print(f"  {line}")
    return 0 if verdict.ok else 1


def _backup(config: Config, target: Path) -> int:
    if target.exists():
        print(f"statement-bot: {target} exists; choose a new file name", file=sys.stderr)
        return 2
    if not target.parent.is_dir():  # a mistyped folder should not be created silently
        print(f"statement-bot: folder {target.parent} does not exist; create it first, "
              "or choose another path", file=sys.stderr)  # fmt: skip
        return 2
    # Opening errors (missing, damaged, locked) go on to main() as StoreOpenError: one line.
    try:
        store = Store.open_readonly(config.database_path)
        try:
            # A copy of a damaged file would look like a good backup: refuse to make one.
            with contextlib.suppress(CheckTimedOut):
                store.quick_check(OPEN_CHECK_SECONDS)
            store.backup(target)
        finally:
            store.close()
        copy = Store.open_readonly(target)
        try:
            counts = (copy.statement_count(), copy.active_subscriber_count())
        finally:
            copy.close()
    except (OSError, sqlite3.Error, SchemaMismatchError) as exc:
        print(f"statement-bot: backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"backup written to {target} (statements: {counts[0]}, subscribers: {counts[1]})")
    return 0


async def _preview(config: Config, args: argparse.Namespace) -> int:
    """Read one source once and print its statements; exit 1 when it yields none."""
    try:
        feed = preview_feed(config, args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"preview: {problem}", file=sys.stderr)
        return 2
    for _, value in feed.headers:  # headers given for a URL not in the config
        secret_filter.add(value)
    client = make_client(config.fetch_timeout)
    try:
        result = await take_preview(
            client,
            feed,
            timezone=config.timezone,
            max_bytes=config.max_feed_bytes,
            timeout=config.fetch_timeout,
        )
    except (FetchError, FeedFormatError) as exc:
        print(f"{feed.name}: {feed.url}\n  failed: {exc}")
        return 1
    finally:
        await client.aclose()
    print(render_preview(result, config.timezone))
    return 0 if result.parsed.statements else 1


def preview_feed(config: Config, args: argparse.Namespace) -> FeedConfig:
    """The configured feed called `target`, or a feed for a URL built from the options."""
    page_options = {
        key: getattr(args, key)
        for key in ("item", "title", "link", "date", "lead", "article", "date_formats")
        if getattr(args, key)
    }
    by_name = {f.name: f for f in config.feeds}
    if args.target in by_name and not page_options:
        return by_name[args.target]
    raw: dict[str, object] = {"name": "preview", "url": args.target}
    if page_options:
        raw["page"] = page_options
    elif "://" not in args.target and not Path(args.target).exists():
        names = ", ".join(by_name)
        raise ConfigError([f"{args.target!r} is neither a feed of the config ({names}) nor a URL"])
    return parse_feeds([raw], Path.cwd())[0]


def _print_latest(config: Config, args: list[str]) -> int:
    try:  # read-only, so it never waits behind the running bot's write lock
        store = Store.open_readonly(config.database_path)
    except SchemaMismatchError as exc:
        # Not migrated from here: the bot running on it may be the older one, and would then
        # refuse to start again.
        raise StoreOpenError(
            f"database {config.database_path}: {exc}. `statement-bot run` migrates an older "
            "one at start-up; a newer one needs a newer bot",
            2,
        ) from None
    except StoreOpenError:  # no file yet (a new one is made), or Store.open says it better
        store = Store.open(config.database_path)
    else:
        try:
            store.quick_check(OPEN_CHECK_SECONDS)  # a damaged file: one line, as Store.open
        except CheckTimedOut:
            pass  # as at start-up: read it without the check
        except BaseException:
            store.close()
            raise
    try:
        reply = commands.latest_reply(store, config, utc_now(), args)
    finally:
        store.close()
    print(as_console_text(reply))
    return 0 if not reply.startswith("Usage:") else 2


async def run_console(config: Config, *, once: bool) -> int:
    """The whole service with the console as its only chat.

    Every feed is polled at once (even one backing off after failures: whoever runs this wants
    a poll now); a feed that fails is named on stdout, and --once then exits 1.
    """
    out = sys.stdout
    db = AsyncStore.open(config.database_path)
    client = make_client(config.fetch_timeout)
    sender = ConsoleSender(out)
    metrics = metrics_for(config)
    service = Service(
        config, db, client, sender, ConsoleAdmin(out), delivery_kinds=console.CONSOLE_KINDS,
        metrics=metrics,
    )  # fmt: skip

    def join_console(store: Store) -> None:
        store.release_in_flight(console.CONSOLE_KINDS)
        console.join(store, utc_now())

    await db.write(join_console)
    try:
        metrics.start()  # a port in use is MetricsError: exit 6 in main()
        if not once:
            out.write(
                f"statement-bot {__version__}, console mode: database {config.database_path}\n"
                "Type /latest, /latest 5, /counters, /status, /poll or /help. Ctrl-C stops.\n"
            )
            out.flush()
        # Read every feed before taking commands (so /latest has something to show), and before
        # delivering, so the first pushes come oldest first across feeds too.
        outcomes = await asyncio.gather(
            *(service.poller.poll(feed, force=True) for feed in config.feeds)
        )
        await service.drain()
        failed = [o for o in outcomes if o.error]
        for outcome in failed:
            out.write(f"Feed {outcome.feed} failed: {outcome.error}\n")
        if not sender.count:
            await _show_newest(db, config, out)
        out.flush()
        if once:
            return 1 if failed else 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        service.start_scheduler(poll_now=False)
        await console_loop(service, config, db, out, utc_now, stop)
        return 0
    finally:
        await service.stop()
        with contextlib.suppress(StoreUnavailable):
            await db.write(lambda s: console.leave(s, utc_now()))
        metrics.stop()
        await client.aclose()
        db.close()


async def _show_newest(db: AsyncStore, config: Config, out: TextIO) -> None:
    """Nothing new since the last run: the newest statements, as subscribers read them."""
    now = utc_now()
    newest = await db.read(lambda s: s.latest(DEMO_NEWEST))
    if not newest:
        out.write("No statements yet.\n")
        return
    out.write(f"No new statements since the last run. The newest {len(newest)}:\n\n")
    for statement in reversed(newest):  # oldest first, as they were pushed
        text = as_console_text(commands.push_message(statement, config, now))
        out.write(f"{SHOWN_HEADER}\n\n{text}\n\n")
