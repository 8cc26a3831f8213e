"""The plain data that flows between the modules: no behaviour that needs I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Statement:
    """One entry of a feed, as the bot understands it."""

    key: str  # guid/id, else link, else a hash of title + date: stable across polls
    title: str  # plain text
    link: str  # absolute URL, or "" when the entry has none
    published: datetime | None  # aware, UTC; None when the feed gives no date
    lead: str  # plain text, whitespace folded, not yet shortened
    # The full text as HTML (content:encoded, JSON Feed content_html, the article's element), as
    # the source gave it: unsafe until bot.telegraph turns it into Telegraph's nodes. "" if none.
    full_html: str = ""
    # Its page on Telegraph, made just before the statement is recorded for a push; "" if none.
    telegraph_url: str = ""
    telegraph_path: str = ""


@dataclass(frozen=True)
class StoredStatement:
    """A statement as the store holds it, with the feed it came from."""

    id: int
    feed: str
    key: str
    title: str
    link: str
    published: datetime | None
    lead: str
    first_seen: datetime
    full_html: str = ""  # unsafe HTML, as in Statement
    telegraph_url: str = ""  # the "Read in full" page, "" if none
    telegraph_path: str = ""  # the page's path, for editPage

    @property
    def sort_at(self) -> datetime:
        """When it was published, or first seen for feeds without dates."""
        return self.published or self.first_seen


@dataclass(frozen=True)
class PollReport:
    feed: str
    pushed: int  # new statements given outbox rows
    silent: int  # new statements recorded without a push (baseline or flood guard)
    updated: int  # known statements whose content changed
    held_back: int  # of `silent`, those the flood guard held back
    deliveries: int  # outbox rows written
    # (title, edit rows queued) per statement corrected within the window: one admin line each
    corrections: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class PollOutcome:
    feed: str
    report: PollReport | None = None  # set when the feed was read
    not_modified: bool = False
    error: str | None = None
    skipped: bool = False  # backing off after failures: not polled this tick

    @property
    def new_deliveries(self) -> int:
        return self.report.deliveries if self.report else 0


@dataclass(frozen=True)
class ParsedDocument:
    """What a source read from one fetched document."""

    statements: list[Statement]  # in document order: newest first, as sites list them
    # One line per item that could not be read and was left out (the rest still counts).
    skipped: tuple[str, ...] = ()
    # (statement key, what is missing or unreadable), e.g. a date text that no format reads.
    problems: tuple[tuple[str, str], ...] = ()
    # Text was decoded through a guessed, fallback encoding: new items are kept, but stored
    # text is never overwritten from it (it may be mojibake).
    fallback_encoding: bool = False


@dataclass(frozen=True)
class PageSpec:
    """How to read an HTML list page ([feeds.page]): CSS selectors, with ::text / ::attr(x)."""

    item: str  # one element per statement, in page order (newest first)
    title: str | None = None  # inside the item; default: the item's first link
    link: str | None = None  # default: the title's href, else the item's first link's
    date: str | None = None  # texts of all matches, joined by a space
    date_formats: tuple[str, ...] = ("%d.%m.%Y",)
    lead: str | None = None
    article: str | None = None  # read each new statement's own page; its text becomes the lead


@dataclass(frozen=True)
class FeedState:
    name: str
    url: str
    etag: str | None
    last_modified: str | None
    baseline_done: bool
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    next_poll_at: datetime | None
    redirected_to: str | None
    discovered_url: str | None = None  # the feed an HTML page at `url` names
    discovered_private: bool = False  # that page was on a private address (so may its feed be)
    body_sha256: str | None = None  # of the last document read
    skipped: tuple[str, ...] = ()  # items of the last poll that could not be read


@dataclass(frozen=True)
class Subscriber:
    id: int
    chat_id: int | str
    thread_id: int | None
    kind: str
    title: str
    active: bool
    reason: str | None
    silent: bool = False  # pushes arrive without a sound (disable_notification)
    language: str | None = None  # None: the bot's default (bot.language)


@dataclass(frozen=True)
class ChatSettings:
    """What a chat chose with /settings; the defaults are what a chat that never did gets."""

    # Feed names whose statements this chat does not get. Stored as what is off, not what is
    # on, so that a feed added to the config later reaches every chat.
    muted: frozenset[str] = frozenset()
    silent: bool = False
    language: str | None = None  # None: the default for its kind (bot.language)


@dataclass(frozen=True)
class Delivery:
    id: int
    subscriber: Subscriber
    statement: StoredStatement
    attempts: int
    kind: str = "push"  # or "edit": a correction of the message already pushed
    message_id: int | None = None  # the message an edit changes


@dataclass(frozen=True)
class StoreStatus:
    statements: int
    active_subscribers: int
    pending: int
    failed: int
    feeds: list[FeedState]
    corrections_sent: int = 0  # edits of pushed messages (as long as the outbox keeps them)


@dataclass(frozen=True)
class FanOutProgress:
    """A statement on its way to its chats, for /status and the log."""

    title: str
    done: int  # chats that have it (or are gone)
    total: int
    rate: float  # messages/s since the engine took it up

    @property
    def seconds_left(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    def line(self) -> str:
        """For the log (English): "sending “Title”: 6,200 of 10,000, 950/s, about 4 s left"."""
        left = self.seconds_left
        eta = "no rate yet" if left is None else f"about {left:.0f} s left"
        return (f"sending “{self.title[:80]}”: {self.done:,} of {self.total:,}, "
                f"{self.rate:.0f}/s, {eta}")  # fmt: skip
