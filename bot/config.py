"""Load and validate the TOML configuration into plain, typed objects.

Every problem is collected (key and reason) so that an operator fixes a bad file in one go;
nothing here reads secrets: the token comes from the environment at the Telegram edge.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.i18n import DEFAULT_LANGUAGE, LANGUAGES, PLURAL_CATEGORIES, whole_number_categories
from bot.model import PageSpec

DEFAULT_CONFIG_PATH = Path("config/bot.toml")
CONFIG_ENV = "STATEMENT_BOT_CONFIG"
STATE_ENV = "STATEMENT_BOT_STATE"
API_BASE_URL_ENV = "TELEGRAM_API_BASE_URL"
TELEGRAPH_API_BASE_URL_ENV = "TELEGRAPH_API_BASE_URL"  # tests point the bot at a fake Telegraph


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class FeedConfig:
    name: str
    url: str  # http(s) URL, file: URL or a local path (resolved against the config's folder)
    interval: float = 300.0  # seconds between polls
    jitter: float = 0.0  # up to this many seconds added to each poll, so feeds do not poll in step
    announce_first: int = 0  # on the feed's first poll, push the newest N; the rest is baseline
    flood_limit: int = 10  # a poll with more unseen items pushes only the newest this many
    page: PageSpec | None = None  # set: `url` is an HTML list page read with these selectors
    # Request headers the site expects (User-Agent, Accept-Language, Cookie): values may be
    # secrets, so they are kept out of repr (and so out of logs and tracebacks).
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # What /settings shows as the section: (language, title) pairs, "" for every language.
    titles: tuple[tuple[str, str], ...] = ()

    def title(self, language: str) -> str:
        """The section's display title in `language`, else its title for all, else its name."""
        titles = dict(self.titles)
        return titles.get(language) or titles.get("") or self.name


@dataclass(frozen=True)
class CounterConfig:
    since: date
    text: str  # contains "{days}": the sentence in every language without its own below
    text_one: str | None = None  # `text` when the count is exactly 1
    # Per language: (language, ((CLDR plural category, sentence), ...)); a sentence that is the
    # same for every count is filed under "other".
    languages: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    def sentence(self, days: int, language: str) -> str:
        """The template for `days` in `language`: its form for the count's plural category
        (Russian 1332 -> "few": "{days} дня прошло ..."), else the default text."""
        from bot.i18n import plural_category

        forms = dict(dict(self.languages).get(language, ()))
        if forms:
            return forms.get(plural_category(language, days)) or forms["other"]
        return self.text_one if days == 1 and self.text_one else self.text


@dataclass(frozen=True)
class Config:
    timezone: ZoneInfo
    clocks: tuple[ZoneInfo, ...]
    state_dir: Path
    feeds: tuple[FeedConfig, ...]
    counters: tuple[CounterConfig, ...]
    admins: tuple[int, ...] = ()
    channels: tuple[int | str, ...] = ()
    lead_length: int = 500
    link_previews: bool = False
    fetch_timeout: float = 20.0
    max_feed_bytes: int = 5 * 1024 * 1024
    failure_alert_after: int = 3  # consecutive failed polls before admins are told
    max_backoff: float = 3600.0
    send_retry_base: float = 5.0  # first wait before resending after a network error, seconds
    send_max_attempts: int = 5  # then the delivery is marked failed and the admins are told
    telegram_check_interval: float = 60.0  # seconds between checks that the token still works
    keep_deliveries_days: int = 30  # finished outbox rows are deleted after this many days
    # A pushed statement whose title or lead changes within the window (hours from when it was
    # recorded): "edit" corrects the messages already sent, "ignore" only stores the change.
    corrections: str = "edit"
    corrections_window_hours: int = 48
    # Pushes as Telegram's paid broadcasts: up to 1000 messages/s, 0.1 Stars per message billed
    # above the free 30/s. Replies to commands stay free.
    paid_broadcast: bool = False
    # One pinned post of the date, clocks and counters per channel (and per group that asks),
    # edited in place at midnight in `timezone`.
    pinned_counters: bool = False
    api_base_url: str | None = None
    metrics: tuple[str, int] | None = None  # host and port of the Prometheus endpoint; None: off
    source: Path | None = field(default=None, compare=False)
    language: str = DEFAULT_LANGUAGE  # of channels and groups that chose none
    # Full text on Telegraph: a pushed statement with a full text gets a page ("Read in full").
    telegraph: bool = False
    telegraph_api_base_url: str = "https://api.telegra.ph"  # $TELEGRAPH_API_BASE_URL: a fake

    @property
    def corrections_window(self) -> timedelta | None:
        """How long after recording a statement its corrections are sent; None: never."""
        if self.corrections != "edit":
            return None
        return timedelta(hours=self.corrections_window_hours)

    @property
    def database_path(self) -> Path:
        return self.state_dir / "bot.sqlite3"


_BOT_KEYS = {
    "timezone",
    "clocks",
    "state",
    "admins",
    "channels",
    "lead_length",
    "link_previews",
    "fetch_timeout",
    "max_feed_bytes",
    "failure_alert_after",
    "max_backoff",
    "send_retry_base",
    "send_max_attempts",
    "telegram_check_interval",
    "keep_deliveries_days",
    "corrections",
    "corrections_window_hours",
    "paid_broadcast",
    "pinned_counters",
    "api_base_url",
    "metrics",
    "language",
    "telegraph",
}
_FEED_KEYS = {
    "name",
    "url",
    "interval",
    "jitter",
    "announce_first",
    "flood_limit",
    "page",
    "headers",
    "title",
}
_PAGE_SELECTORS = ("item", "title", "link", "date", "lead", "article")
_PAGE_KEYS = {*_PAGE_SELECTORS, "date_formats"}
# RFC 9110 token characters: a header name with anything else would be refused by the client.
# Headers the fetch itself sets, which a feed's `headers` may not replace.
RESERVED_HEADERS = frozenset(
    {"accept-encoding", "host", "content-length", "transfer-encoding", "connection", "te"}
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_COUNTER_KEYS = {"since", "text", "text_one", *LANGUAGES}
_TOP_KEYS = {"bot", "feeds", "counters"}


def config_path_from(cli_value: str | None, env: dict[str, str] | None = None) -> Path:
    """`--config`, else $STATEMENT_BOT_CONFIG, else config/bot.toml."""
    env = os.environ if env is None else env
    return Path(cli_value or env.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def load_config(path: Path, env: dict[str, str] | None = None) -> Config:
    """Read and validate `path`; raise ConfigError listing every problem found."""
    env = dict(os.environ) if env is None else env
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot be read: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    return parse_config(raw, env=env, source=path)


def parse_config(raw: dict[str, Any], env: dict[str, str], source: Path | None = None) -> Config:
    problems: list[str] = []
    _unknown(raw, _TOP_KEYS, "", problems)

    bot = raw.get("bot", {})
    if not isinstance(bot, dict):
        problems.append("bot: must be a table ([bot])")
        bot = {}
    _unknown(bot, _BOT_KEYS, "bot.", problems)

    timezone = _zone(bot.get("timezone", "Europe/London"), "bot.timezone", problems)
    clocks_raw = bot.get("clocks", [])
    clocks: list[ZoneInfo] = []
    if not isinstance(clocks_raw, list):
        problems.append("bot.clocks: must be a list of time zone names")
    else:
        for i, name in enumerate(clocks_raw):
            zone = _zone(name, f"bot.clocks[{i}]", problems)
            if zone is not None:
                clocks.append(zone)

    # Relative paths in the file are read from the file's own folder, so a config works
    # whatever the working directory; the environment's are read from the working directory.
    base = source.parent if source else Path.cwd()
    state_dir = Path(env[STATE_ENV]) if env.get(STATE_ENV) else None
    if state_dir is None:
        state_raw = bot.get("state", "state")
        if not isinstance(state_raw, str) or not state_raw:
            problems.append("bot.state: must be a folder path")
            state_raw = "state"
        state_dir = base / Path(state_raw).expanduser()

    admins = _int_list(bot.get("admins", []), "bot.admins", problems)
    channels = _channel_list(bot.get("channels", []), problems)
    lead_length = _int(bot, "lead_length", 500, 50, 3500, "bot.", problems)
    link_previews = bot.get("link_previews", False)
    if not isinstance(link_previews, bool):
        problems.append("bot.link_previews: must be true or false")
        link_previews = False
    fetch_timeout = _number(bot, "fetch_timeout", 20.0, 0.1, 600, "bot.", problems)
    max_feed_bytes = _int(bot, "max_feed_bytes", 5 * 1024 * 1024, 1024, 1 << 30, "bot.", problems)
    failure_alert_after = _int(bot, "failure_alert_after", 3, 1, 1000, "bot.", problems)
    max_backoff = _number(bot, "max_backoff", 3600.0, 1, 7 * 86400, "bot.", problems)
    send_retry_base = _number(bot, "send_retry_base", 5.0, 0.1, 3600, "bot.", problems)
    send_max_attempts = _int(bot, "send_max_attempts", 5, 1, 100, "bot.", problems)
    keep_deliveries_days = _int(bot, "keep_deliveries_days", 30, 1, 36500, "bot.", problems)
    corrections = bot.get("corrections", "edit")
    if corrections not in ("edit", "ignore"):
        problems.append(f'bot.corrections: must be "edit" or "ignore", got {corrections!r}')
        corrections = "edit"
    # At most 30 days: edit rows come from pushes the outbox still keeps.
    corrections_window_hours = _int(bot, "corrections_window_hours", 48, 1, 720, "bot.", problems)
    telegram_check_interval = _number(
        bot, "telegram_check_interval", 60.0, 0.5, 86400, "bot.", problems
    )
    paid_broadcast = bot.get("paid_broadcast", False)
    if not isinstance(paid_broadcast, bool):
        problems.append("bot.paid_broadcast: must be true or false")
        paid_broadcast = False
    pinned_counters = bot.get("pinned_counters", False)
    if not isinstance(pinned_counters, bool):
        problems.append("bot.pinned_counters: must be true or false")
        pinned_counters = False

    api_base_url = env.get(API_BASE_URL_ENV) or bot.get("api_base_url")
    if api_base_url is not None and not _is_http_url(api_base_url):
        where = API_BASE_URL_ENV if env.get(API_BASE_URL_ENV) else "bot.api_base_url"
        problems.append(f"{where}: must be an http(s) URL such as http://host:8081/bot")
        api_base_url = None
    metrics = _listen_address(bot.get("metrics"), "bot.metrics", problems)

    language = bot.get("language", DEFAULT_LANGUAGE)
    if language not in LANGUAGES:
        problems.append(f"bot.language: must be one of {', '.join(LANGUAGES)}, got {language!r}")
        language = DEFAULT_LANGUAGE
    telegraph = bot.get("telegraph", False)
    if not isinstance(telegraph, bool):
        problems.append("bot.telegraph: must be true or false")
        telegraph = False
    telegraph_api = env.get(TELEGRAPH_API_BASE_URL_ENV) or "https://api.telegra.ph"
    if not _is_http_url(telegraph_api):
        problems.append(f"{TELEGRAPH_API_BASE_URL_ENV}: must be an http(s) URL")
        telegraph_api = "https://api.telegra.ph"

    feeds = _feeds(raw.get("feeds"), base, problems)
    counters = _counters(raw.get("counters", []), problems)

    if problems:
        raise ConfigError([f"{source}: {p}" if source else p for p in problems])
    assert timezone is not None
    return Config(
        timezone=timezone,
        clocks=tuple(clocks),
        state_dir=state_dir.resolve(),
        feeds=tuple(feeds),
        counters=tuple(counters),
        admins=tuple(admins),
        channels=tuple(channels),
        lead_length=lead_length,
        link_previews=link_previews,
        fetch_timeout=fetch_timeout,
        max_feed_bytes=max_feed_bytes,
        failure_alert_after=failure_alert_after,
        max_backoff=max_backoff,
        send_retry_base=send_retry_base,
        send_max_attempts=send_max_attempts,
        telegram_check_interval=telegram_check_interval,
        keep_deliveries_days=keep_deliveries_days,
        corrections=corrections,
        corrections_window_hours=corrections_window_hours,
        paid_broadcast=paid_broadcast,
        pinned_counters=pinned_counters,
        api_base_url=api_base_url,
        metrics=metrics,
        source=source,
        language=language,
        telegraph=telegraph,
        telegraph_api_base_url=telegraph_api,
    )


def parse_feeds(raw: list[dict[str, Any]], base: Path) -> list[FeedConfig]:
    """[[feeds]] tables alone (e.g. built from `preview`'s options); ConfigError on problems."""
    problems: list[str] = []
    feeds = _feeds(raw, base, problems)
    if problems:
        raise ConfigError(problems)
    return feeds


def _feeds(raw: Any, base: Path, problems: list[str]) -> list[FeedConfig]:
    if raw is None:
        problems.append("feeds: at least one [[feeds]] entry is needed")
        return []
    if not isinstance(raw, list) or not all(isinstance(f, dict) for f in raw):
        problems.append("feeds: must be a list of tables ([[feeds]])")
        return []
    if not raw:
        problems.append("feeds: at least one [[feeds]] entry is needed")
    feeds: list[FeedConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"feeds[{i}]."
        _unknown(item, _FEED_KEYS, where, problems)
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{where}name: must be a non-empty string")
            name = f"feed{i}"
        elif name in seen:
            problems.append(f"{where}name: {name!r} is used by another feed")
        seen.add(name)
        url = _feed_url(item.get("url"), base, f"{where}url", problems)
        interval = _number(item, "interval", 300.0, 1, 7 * 86400, where, problems)
        jitter = _number(item, "jitter", min(interval / 10, 30.0), 0, 3600, where, problems)
        announce_first = _int(item, "announce_first", 0, 0, 100, where, problems)
        flood_limit = _int(item, "flood_limit", 10, 1, 1000, where, problems)
        page = _page(item["page"], f"{where}page.", problems) if "page" in item else None
        headers = _headers(item.get("headers", {}), f"{where}headers", problems)
        titles = _titles(item.get("title"), f"{where}title", problems)
        feeds.append(
            FeedConfig(
                name, url, interval, jitter, announce_first, flood_limit, page, tuple(headers),
                titles,
            )
        )  # fmt: skip
    return feeds


def _page(raw: Any, where: str, problems: list[str]) -> PageSpec | None:
    """[feeds.page]: CSS selectors and strptime formats, each checked so a typo is named."""
    from bot.page import date_format_problem, selector_problem  # parsel loads only if used

    if not isinstance(raw, dict):
        problems.append(f"{where[:-1]}: must be a table ([feeds.page])")
        return None
    _unknown(raw, _PAGE_KEYS, where, problems)
    selectors: dict[str, str | None] = {}
    for key in _PAGE_SELECTORS:
        value = raw.get(key)
        if value is None:
            selectors[key] = None
            if key == "item":
                problems.append(f"{where}item: required: the CSS selector of one statement")
            continue
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{where}{key}: must be a CSS selector (a string)")
            selectors[key] = None
            continue
        problem = selector_problem(value)
        if problem:
            problems.append(f"{where}{key}: bad CSS selector {value!r}: {problem}")
        selectors[key] = value.strip()
    formats_raw = raw.get("date_formats", ["%d.%m.%Y"])
    formats: list[str] = []
    if not isinstance(formats_raw, list) or not formats_raw:
        problems.append(f"{where}date_formats: must be a list of strptime formats such as %d.%m.%Y")
    else:
        for i, fmt in enumerate(formats_raw):
            problem = date_format_problem(fmt) if isinstance(fmt, str) else "must be a string"
            if problem:
                problems.append(f"{where}date_formats[{i}]: {fmt!r}: {problem}")
            else:
                formats.append(fmt)
    if not selectors["item"]:
        return None
    return PageSpec(
        item=selectors["item"],
        title=selectors["title"],
        link=selectors["link"],
        date=selectors["date"],
        date_formats=tuple(formats) or ("%d.%m.%Y",),
        lead=selectors["lead"],
        article=selectors["article"],
    )


def _headers(raw: Any, where: str, problems: list[str]) -> list[tuple[str, str]]:
    """Header names are checked; values are never quoted back, they may be secrets."""
    if not isinstance(raw, dict):
        problems.append(f'{where}: must be a table such as {{ "Accept-Language" = "en" }}')
        return []
    headers = []
    for name, value in raw.items():
        if not _HEADER_NAME.match(name):
            problems.append(f"{where}: {name!r} is not a valid header name")
        elif name.lower() in RESERVED_HEADERS:
            problems.append(f"{where}.{name}: set by the bot itself, not per feed")
        elif not isinstance(value, str) or not value.isascii() or not value.isprintable():
            problems.append(f"{where}.{name}: must be a string of printable ASCII on one line")
        else:
            headers.append((name, value))
    return headers


def _feed_url(value: Any, base: Path, where: str, problems: list[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: must be an http(s) URL, a file: URL or a file path")
        return ""
    try:
        parsed = urlparse(value)
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        problems.append(f"{where}: {value!r} is not a valid URL ({exc})")
        return value
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        if not parsed.netloc:
            problems.append(f"{where}: {value!r} has no host")
        return value  # a URL is checked by fetching it: statement-bot preview
    if scheme == "file":
        path = Path(unquote(parsed.path))
    elif scheme and len(scheme) > 1:  # a one-letter "scheme" is a Windows drive letter
        problems.append(f"{where}: scheme {scheme!r} is not supported (http, https, file)")
        return value
    else:
        path = (base / Path(value).expanduser()).resolve()
        value = str(path)
    if not path.exists():
        problems.append(f"{where}: no such file: {path}")
    elif not path.is_file():
        problems.append(f"{where}: not a regular file: {path}")
    return value


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = urlparse(value)
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:  # e.g. "http://[::1/bot": an unclosed IPv6 bracket
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


_HOST_NAME = re.compile(r"^[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*$")


def _listen_address(value: Any, where: str, problems: list[str]) -> tuple[str, int] | None:
    """An address to listen on, "host:port": "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464"
    (in a container). None when the key is absent."""
    if value is None:
        return None
    problem = f'{where}: must be "host:port" such as "127.0.0.1:9464", got {value!r}'
    if not isinstance(value, str):
        problems.append(problem)
        return None
    host, _, port_text = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            host = ""
    elif ":" in host or not _HOST_NAME.match(host):
        host = ""  # an IPv6 address needs brackets; anything else is no host name
    port = int(port_text) if port_text.isascii() and port_text.isdigit() else 0
    if not host or not 0 < port < 65536:
        problems.append(problem)
        return None
    return host, port


def _counters(raw: Any, problems: list[str]) -> list[CounterConfig]:
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
        problems.append("counters: must be a list of tables ([[counters]])")
        return []
    counters: list[CounterConfig] = []
    for i, item in enumerate(raw):
        where = f"counters[{i}]."
        _unknown(item, _COUNTER_KEYS, where, problems)
        since = item.get("since")
        if isinstance(since, str):
            with contextlib.suppress(ValueError):
                since = date.fromisoformat(since)
        if not isinstance(since, date) or hasattr(since, "hour"):
            problems.append(f"{where}since: must be a date such as 2018-03-04")
            continue
        texts: dict[str, str | None] = {}
        for key in ("text", "text_one"):
            text = item.get(key)
            if text is None and key == "text_one":
                texts[key] = None
                continue
            if not isinstance(text, str) or "{days}" not in text:
                problems.append(f"{where}{key}: must be a string containing {{days}}")
                texts[key] = None
                continue
            try:
                text.format(days=1)
            except (KeyError, IndexError, ValueError) as exc:
                problems.append(f"{where}{key}: only {{days}} may stand in braces ({exc})")
            texts[key] = text
        languages = tuple(
            (lang, forms)
            for lang in LANGUAGES
            if lang in item and (forms := _counter_forms(item[lang], lang, where, problems))
        )
        if texts.get("text"):
            counters.append(
                CounterConfig(since, texts["text"] or "", texts.get("text_one"), languages)
            )
    return counters


def _counter_forms(
    raw: Any, language: str, where: str, problems: list[str]
) -> tuple[tuple[str, str], ...]:
    """`ru = "..."` (one sentence for every count) or `[counters.ru]` with a sentence per CLDR
    plural category: Russian needs one ("1 день"), few ("2 дня") and many ("5 дней")."""
    where = f"{where}{language}"
    if isinstance(raw, str):
        raw = {"other": raw}
    if not isinstance(raw, dict) or not raw:
        categories = ", ".join(sorted(whole_number_categories(language)))
        problems.append(f"{where}: must be a sentence with {{days}}, or a table of them by "
                        f"plural category ({categories})")  # fmt: skip
        return ()
    forms: list[tuple[str, str]] = []
    for category, text in raw.items():
        if category not in PLURAL_CATEGORIES:
            problems.append(f"{where}.{category}: not a plural category "
                            f"({', '.join(PLURAL_CATEGORIES)})")  # fmt: skip
        elif _sentence_problem(text):
            problems.append(f"{where}.{category}: {_sentence_problem(text)}")
        else:
            forms.append((category, text))
    missing = whole_number_categories(language) - {c for c, _ in forms}
    if missing and "other" not in raw:
        problems.append(f"{where}: needs a sentence for {', '.join(sorted(missing))} "
                        "(or one for other)")  # fmt: skip
        return ()
    return tuple(forms)


def _sentence_problem(text: Any) -> str | None:
    if not isinstance(text, str) or "{days}" not in text:
        return "must be a string containing {days}"
    try:
        text.format(days=1)
    except (KeyError, IndexError, ValueError) as exc:
        return f"only {{days}} may stand in braces ({exc})"
    return None


def _titles(raw: Any, where: str, problems: list[str]) -> tuple[tuple[str, str], ...]:
    """`title = "Press releases"`, or `title = { en = "Press releases", ru = "Пресс-релизы" }`."""
    if raw is None:
        return ()
    if isinstance(raw, str) and raw.strip():
        return (("", raw.strip()),)
    if isinstance(raw, dict) and raw:
        titles = []
        for language, title in raw.items():
            if language not in LANGUAGES:
                problems.append(f"{where}.{language}: not a language of the bot "
                                f"({', '.join(LANGUAGES)})")  # fmt: skip
            elif not isinstance(title, str) or not title.strip():
                problems.append(f"{where}.{language}: must be a non-empty string")
            else:
                titles.append((language, title.strip()))
        return tuple(titles)
    problems.append(f"{where}: must be a string, or a table of strings by language")
    return ()


def _unknown(table: dict[str, Any], allowed: set[str], where: str, problems: list[str]) -> None:
    for key in table:
        if key not in allowed:
            problems.append(f"{where}{key}: unknown key (allowed: {', '.join(sorted(allowed))})")


def _zone(value: Any, where: str, problems: list[str]) -> ZoneInfo | None:
    if not isinstance(value, str):
        problems.append(f"{where}: must be a time zone name such as Europe/London")
        return None
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{where}: unknown time zone {value!r}")
        return None


def _number(
    table: dict[str, Any], key: str, default: float, low: float, high: float, where: str, problems
) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        problems.append(f"{where}{key}: must be a number from {low:g} to {high:g}, got {value!r}")
        return default
    return float(value)


def _int(
    table: dict[str, Any], key: str, default: int, low: int, high: int, where: str, problems
) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(f"{where}{key}: must be a whole number from {low} to {high}, got {value!r}")
        return default
    return value


def _int_list(value: Any, where: str, problems: list[str]) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        problems.append(f"{where}: must be a list of Telegram user ids (whole numbers)")
        return []
    return list(value)


def _channel_list(value: Any, problems: list[str]) -> list[int | str]:
    ok = isinstance(value, list) and all(
        (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, str) and v[:1] == "@")
        for v in value
    )
    if not ok:
        problems.append("bot.channels: must be a list of chat ids or @channel usernames")
        return []
    return list(value)
