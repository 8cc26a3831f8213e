"""Full text on Telegraph (telegra.ph): a pushed statement's full text as a page to read in full.

Three parts: `to_nodes` turns feed or article HTML into Telegraph's Node format (a short list of
safe tags, http(s) links only, within the API's 64 KB content limit; pure); `TelegraphClient`
speaks the API (createAccount once, its access token kept in the database; createPage; editPage);
`Publisher` is what the poller calls: pages for the statements about to be pushed, within one
bounded wait, so a slow or failing Telegraph never holds a push back for long.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlparse

import httpx

from bot.logs import secret_filter
from bot.model import Statement, StoredStatement
from bot.store import AsyncStore, Store, StoreUnavailable
from bot.text import fold_whitespace, shorten

logger = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.telegra.ph"
# The API takes up to 64 KB of content; the JSON we send is measured in UTF-8 bytes, with room
# for the closing note.
MAX_CONTENT_BYTES = 64 * 1024 - 256
MAX_TITLE_LENGTH = 256
MAX_AUTHOR_NAME_LENGTH = 128
CUT_NOTE = "…"

Node = str | dict[str, Any]

# Tags kept (with what they become), everything else is unwrapped to its text.
_KEEP = {
    "p": "p", "a": "a", "b": "b", "strong": "strong", "i": "i", "em": "em", "ul": "ul",
    "ol": "ol", "li": "li", "blockquote": "blockquote", "img": "img", "br": "br",
}  # fmt: skip
_VOID = {"img", "br", "hr", "input", "meta", "link", "source", "wbr", "area", "base", "col",
         "embed", "param", "track"}  # fmt: skip
_DROP = {"script", "style", "head", "title", "template", "noscript", "iframe", "object",
         "svg", "math", "textarea", "select"}  # fmt: skip
_BLOCKS = {"p", "ul", "ol", "blockquote"}
# Unwrapped elements that end a line: their text must not run into the next block's.
_BREAKING = {"div", "section", "article", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
             "figure", "figcaption", "header", "footer", "pre", "dl", "dt", "dd", "hr",
             "td", "th"}  # fmt: skip
MAX_DEPTH = 16  # deeper markup is kept as its text: a hostile nest must not recurse us away
_SPACES = re.compile(r"\s+")


class TelegraphError(Exception):
    """Telegraph refused or did not answer; the message never holds the access token.

    `service`: the trouble is Telegraph's (no answer, a server error, flood control), not the
    page's (its content or title refused) nor the token's: the next page would fail alike."""

    def __init__(self, message: str, *, service: bool = False) -> None:
        super().__init__(message)
        self.service = service


# Telegraph's errors about the page asked for; any other error is the service's.
_PAGE_ERRORS = ("CONTENT_", "TITLE_", "AUTHOR_", "PAGE_", "ACCESS_TOKEN_INVALID")
# After Telegraph failed as a service, pushes go out without a page for this long, instead of
# each poll with pushes waiting out the whole timeout again.
TELEGRAPH_REST = 300.0


# ---- HTML to nodes ---------------------------------------------------------------------------


class _NodeBuilder(HTMLParser):
    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.root: list[Node] = []
        # Open kept elements: (tag, node); unwrapped elements are not on it.
        self.stack: list[tuple[str, dict[str, Any]]] = []
        self.open_tags: list[tuple[str, bool]] = []  # every open element: (tag, kept)
        self.skip = 0  # inside a dropped element (script, style)

    # Where children go: the innermost kept element, else the top level.
    def _children(self) -> list[Node]:
        if self.stack:
            children: list[Node] = self.stack[-1][1].setdefault("children", [])
            return children
        return self.root

    def _text(self, text: str) -> None:
        children = self._children()
        if children and isinstance(children[-1], str):
            children[-1] += text
        else:
            children.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP:
            if tag not in _VOID:
                self.skip += 1
            return
        if self.skip:
            return
        kept = tag in _KEEP and len(self.stack) < MAX_DEPTH
        if tag in _BLOCKS and self.stack and self.stack[-1][0] == "p":
            self._close_until("p")  # a block inside a paragraph ends it, as browsers do
        node: dict[str, Any] = {"tag": _KEEP.get(tag, tag)}
        attributes = dict(attrs)
        if kept and tag == "a":
            href = _http_url(attributes.get("href"), self.base_url)
            if href:
                node["attrs"] = {"href": href}
            else:
                kept = False  # javascript:, mailto:, "#": the text stays, the link goes
        if kept and tag == "img":
            src = _http_url(attributes.get("src"), self.base_url)
            if not src:
                return
            node["attrs"] = {"src": src}
        if not kept:
            if tag in _BREAKING:
                self._text("\n")
            if tag not in _VOID:
                self.open_tags.append((tag, False))
            return
        self._children().append(node)
        if tag not in _VOID:
            self.stack.append((tag, node))
            self.open_tags.append((tag, True))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and tag not in _DROP:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP:
            if tag not in _VOID:
                self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if tag in _BREAKING:
            self._text("\n")
        # Close up to the latest open element of this name; a stray end tag is ignored.
        for index in range(len(self.open_tags) - 1, -1, -1):
            if self.open_tags[index][0] == tag:
                for _name, kept in self.open_tags[index:]:
                    if kept:
                        self.stack.pop()
                del self.open_tags[index:]
                return

    def _close_until(self, tag: str) -> None:
        self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self._text(data)


def _http_url(value: str | None, base: str) -> str:
    if not value:
        return ""
    value = re.sub(r"[\t\n\r]", "", value).strip()
    try:
        absolute = urljoin(base, value) if base else value
        parts = urlparse(absolute)
    except ValueError:
        return ""
    return absolute if parts.scheme in ("http", "https") and parts.netloc else ""


def _tidy(nodes: list[Node], depth: int = 0) -> list[Node]:
    """Whitespace folded, empty texts and empty elements (but img, br) gone; loose top-level
    text and inline elements gathered into paragraphs."""
    out: list[Node] = []
    for node in nodes:
        if isinstance(node, str):
            text = _SPACES.sub(" ", node)
            if text.strip():
                out.append(text)
            elif text and out:
                out.append(" ")
            continue
        children = _tidy(node.get("children", []), depth + 1)
        if children:
            node = {**node, "children": children}
        else:
            node = {k: v for k, v in node.items() if k != "children"}
            if node["tag"] not in ("img", "br"):
                continue
        out.append(node)
    if depth == 0:
        return _paragraphs(out)
    return out


def _paragraphs(nodes: list[Node]) -> list[Node]:
    result: list[Node] = []
    loose: list[Node] = []

    def flush() -> None:
        while loose and isinstance(loose[-1], str) and not loose[-1].strip():
            loose.pop()
        if loose:
            first = loose[0]
            if isinstance(first, str):
                loose[0] = first.lstrip()
            result.append({"tag": "p", "children": list(loose)})
        loose.clear()

    for node in nodes:
        if isinstance(node, dict) and node["tag"] in (*_BLOCKS, "li", "img"):
            flush()
            result.append(node)
        elif not loose and isinstance(node, str) and not node.strip():
            continue
        else:
            loose.append(node)
    flush()
    return result


def _size(node: Node) -> int:
    return len(json.dumps(node, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _fit(nodes: Sequence[Node], budget: int) -> tuple[list[Node], bool]:
    """The longest prefix of `nodes` within `budget` bytes (as a JSON list), cut at a node
    boundary; an element that does not fit whole keeps the children that do, a text is cut at
    a word. Returns (nodes, complete)."""
    kept: list[Node] = []
    used = 2  # the brackets
    for node in nodes:
        comma = 1 if kept else 0
        size = _size(node)
        if used + comma + size <= budget:
            kept.append(node)
            used += comma + size
            continue
        room = budget - used - comma
        if isinstance(node, str):
            cut = _cut_text(node, room)
            if cut:
                kept.append(cut)
        elif "children" in node and room > _size({**node, "children": []}):
            shell = _size({**node, "children": []})
            children, _ = _fit(node["children"], room - shell + 2)
            if children:
                kept.append({**node, "children": children})
        return kept, False
    return kept, True


def _cut_text(text: str, room: int) -> str:
    """The longest start of `text` within `room` bytes (as JSON), at a word boundary."""
    low, high = 0, len(text)
    while low < high:  # sizes grow with length: binary search
        middle = (low + high + 1) // 2
        if _size(text[:middle]) <= room:
            low = middle
        else:
            high = middle - 1
    cut = text[:low]
    space = cut.rfind(" ")
    if space > len(cut) // 2:
        cut = cut[:space]
    return cut.rstrip()


def to_nodes(markup: str, base_url: str = "", max_bytes: int = MAX_CONTENT_BYTES) -> list[Node]:
    """Telegraph nodes of `markup`: p, a (http(s) href), b/strong, i/em, ul/ol/li, blockquote,
    img (http(s) src), br; other elements unwrapped to their text, scripts and styles dropped.
    Over `max_bytes` the content is cut at a node boundary and ends with a "…" paragraph."""
    builder = _NodeBuilder(base_url)
    builder.feed(markup)
    builder.close()
    nodes = _tidy(builder.root)
    note: Node = {"tag": "p", "children": [CUT_NOTE]}
    if _size(nodes) <= max_bytes:
        return nodes
    fitted, _ = _fit(nodes, max_bytes - _size(note) - 1)
    return [*fitted, note]


def content_json(nodes: Sequence[Node]) -> str:
    return json.dumps(list(nodes), ensure_ascii=False, separators=(",", ":"))


# ---- the API -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    url: str
    path: str


def load_token(store: Store) -> str | None:
    row = store.db.execute("SELECT access_token FROM telegraph_account WHERE id = 1").fetchone()
    return row[0] if row else None


def save_token(store: Store, token: str, now: datetime) -> str:
    """Keep the first token ever saved (another process may have made one meanwhile)."""
    with store.db.atomic():
        store.db.execute(
            "INSERT OR IGNORE INTO telegraph_account (id, access_token, created_at) "
            "VALUES (1, ?, ?)",
            [token, now.isoformat()],
        )
    saved = load_token(store)
    assert saved is not None
    return saved


def forget_token(store: Store, token: str) -> None:
    store.db.execute("DELETE FROM telegraph_account WHERE access_token = ?", [token])


def save_page(store: Store, statement_id: int, page: Page) -> None:
    store.db.execute(
        "UPDATE statements SET telegraph_url = ?, telegraph_path = ? WHERE id = ?",
        [page.url, page.path, statement_id],
    )


def pages_of(store: Store, feed: str, keys: Sequence[str]) -> list[StoredStatement]:
    """The statements of `feed` among `keys` that have a Telegraph page."""
    from bot.store import _statement

    found = []
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        marks = ",".join("?" * len(chunk))
        rows = store.db.query(
            "SELECT s.*, t.full_html FROM statements s "
            "LEFT JOIN statement_texts t ON t.statement_id = s.id "
            f"WHERE s.feed = ? AND s.key IN ({marks}) AND s.telegraph_path != ''",
            [feed, *chunk],
        )
        found.extend(_statement(r) for r in rows)
    return found


def statement_with_text(store: Store, statement_id: int) -> StoredStatement | None:
    """A statement with its full text, as Publisher.edit needs it (the correction path)."""
    from bot.store import _statement

    rows = list(
        store.db.query(
            "SELECT s.*, t.full_html FROM statements s "
            "LEFT JOIN statement_texts t ON t.statement_id = s.id WHERE s.id = ?",
            [statement_id],
        )
    )
    return _statement(rows[0]) if rows else None


class TelegraphClient:
    """createAccount (once; the token lives in the database), createPage, editPage."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        db: AsyncStore,
        *,
        base_url: str = DEFAULT_API_BASE_URL,
        timeout: float = 20.0,
        short_name: str = "statement-bot",
        clock: Any = None,
    ) -> None:
        self.client = client
        self.db = db
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.short_name = short_name
        self.clock = clock or (lambda: datetime.now(UTC))
        self._token: str | None = None
        self._token_lock = asyncio.Lock()  # one createAccount, however many pages wait for it

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        # POST with a form body: the token never sits in a URL (httpx logs URLs).
        try:
            response = await self.client.post(
                f"{self.base_url}/{method}", data=params, timeout=self.timeout
            )
        except httpx.TimeoutException:
            raise TelegraphError(
                f"{method}: no answer within {self.timeout:g} s", service=True
            ) from None
        except httpx.HTTPError as exc:
            raise TelegraphError(f"{method}: {type(exc).__name__}", service=True) from None
        try:
            answer = response.json()
        except ValueError:
            raise TelegraphError(
                f"{method}: HTTP {response.status_code}, not JSON", service=True
            ) from None
        if not isinstance(answer, dict) or not answer.get("ok"):
            error = str((answer.get("error") if isinstance(answer, dict) else None) or "")
            raise TelegraphError(
                f"{method}: {self._scrub(error or str(response.status_code))}",
                service=not error.startswith(_PAGE_ERRORS),
            )
        result = answer.get("result")
        if not isinstance(result, dict):
            raise TelegraphError(f"{method}: the answer has no result")
        return result

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "<token>") if self._token else text

    async def token(self) -> str:
        if self._token:
            return self._token
        async with self._token_lock:
            if self._token:
                return self._token
            stored = await self.db.read(load_token)
            if not stored:
                result = await self._call("createAccount", {"short_name": self.short_name})
                created = str(result.get("access_token") or "")
                if not created:
                    raise TelegraphError("createAccount: the answer has no access_token")
                secret_filter.add(created)
                now = self.clock()
                stored = await self.db.write(lambda s: save_token(s, created, now))
                logger.info("Telegraph: created the bot's account")
            secret_filter.add(stored)
            self._token = stored
            return stored

    async def _page_call(self, method: str, params: dict[str, Any]) -> Page:
        token = await self.token()
        try:
            result = await self._call(method, {"access_token": token, **params})
        except TelegraphError as exc:
            if "ACCESS_TOKEN_INVALID" in str(exc):  # revoked: the next page makes a new account
                self._token = None
                await self.db.write(lambda s: forget_token(s, token))
            raise
        url, path = result.get("url"), result.get("path")
        if not isinstance(url, str) or not isinstance(path, str) or not path:
            raise TelegraphError(f"{method}: the answer has no page url and path")
        return Page(url, path)

    async def create_page(self, title: str, nodes: Sequence[Node], *, author: str = "",
                          author_url: str = "") -> Page:  # fmt: skip
        return await self._page_call("createPage", _page_params(title, nodes, author, author_url))

    async def edit_page(self, path: str, title: str, nodes: Sequence[Node], *, author: str = "",
                        author_url: str = "") -> Page:  # fmt: skip
        return await self._page_call(
            f"editPage/{path}", _page_params(title, nodes, author, author_url)
        )


def _page_params(title: str, nodes: Sequence[Node], author: str, author_url: str) -> dict:
    params = {
        "title": shorten(fold_whitespace(title), MAX_TITLE_LENGTH) or "…",
        "content": content_json(nodes),
        "author_name": shorten(author, MAX_AUTHOR_NAME_LENGTH),
    }
    if author_url:
        params["author_url"] = author_url  # "the original", a tap away from the page
    return params


# ---- what the poller calls --------------------------------------------------------------------


class Publisher:
    """Pages for statements about to be pushed, and edits of pages whose statement changed.

    Every call shares one deadline (`budget` seconds): past it, the statements left go out with
    their original link only. Failures are logged, never raised.
    """

    def __init__(
        self,
        api: TelegraphClient,
        budget: float,
        *,
        rest: float = TELEGRAPH_REST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.budget = budget
        self.rest = rest
        self.clock = clock
        self._resting_until = 0.0  # clock() until which Telegraph is not asked

    def _resting(self) -> bool:
        return self.clock() < self._resting_until

    def _failed(self, exc: Exception, *, asking: bool) -> None:
        """Telegraph itself failed, or did not answer within the wait (`asking`: the time ran
        out during the call, not while the text was converted): rest from it for a while."""
        if (isinstance(exc, TimeoutError) and asking) or getattr(exc, "service", False):
            self._resting_until = self.clock() + self.rest
            logger.warning("Telegraph: failing (%s); pushes go out without a page for %.0f s",
                           str(exc) or "timed out", self.rest)  # fmt: skip

    async def publish(self, statements: list[Statement], author: str) -> list[Statement]:
        """`statements` with telegraph_url/path set where a page was made.

        Made before the statements are recorded: a crash in between makes a second page on the
        next poll (the first is left unlinked on telegra.ph), never a lost push.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.budget
        done: list[Statement] = []
        for index, statement in enumerate(statements):
            if not statement.full_html:
                done.append(statement)
                continue
            if self._resting():
                logger.info("Telegraph: resting after a failure; %d statements go out without "
                            "a page", len(statements) - index)  # fmt: skip
                done.extend(statements[index:])
                break
            left = deadline - loop.time()
            if left <= 0:
                logger.warning("Telegraph: no time left; %d statements go out without a page",
                               len(statements) - index)  # fmt: skip
                done.extend(statements[index:])
                break
            asking = False
            try:
                async with asyncio.timeout(left):
                    nodes = await asyncio.to_thread(to_nodes, statement.full_html, statement.link)
                    if not nodes:
                        done.append(statement)
                        continue
                    asking = True
                    page = await self.api.create_page(
                        statement.title, nodes, author=author, author_url=statement.link
                    )
            except (TelegraphError, TimeoutError, StoreUnavailable) as exc:
                logger.warning("Telegraph: no page for %r: %s", statement.title[:80],
                               str(exc) or "timed out")  # fmt: skip
                self._failed(exc, asking=asking)
                done.append(statement)
                continue
            except Exception:  # a bug here must never hold the push back
                logger.exception("Telegraph: no page for %r", statement.title[:80])
                done.append(statement)
                continue
            done.append(replace(statement, telegraph_url=page.url, telegraph_path=page.path))
        return done

    async def edit(self, statement: StoredStatement, author: str) -> bool:
        """Bring a statement's page in line with its corrected title and text: True when the
        page was edited. For the correction path as well as the poller: load the statement
        with `statement_with_text` (the outbox's statements carry no full text); the
        running bot's Publisher is `Service.poller.publisher` (None with telegraph off)."""
        if not statement.telegraph_path or not statement.full_html:
            return False
        # Tried even while resting: a correction comes once, and nothing retries a skipped one.
        try:
            async with asyncio.timeout(self.budget):
                nodes = await asyncio.to_thread(to_nodes, statement.full_html, statement.link)
                await self.api.edit_page(
                    statement.telegraph_path, statement.title, nodes, author=author,
                    author_url=statement.link,
                )  # fmt: skip
        except (TelegraphError, TimeoutError, StoreUnavailable) as exc:
            logger.warning("Telegraph: page %s not edited: %s", statement.telegraph_path,
                           str(exc) or "timed out")  # fmt: skip
            return False
        except Exception:
            logger.exception("Telegraph: page %s not edited", statement.telegraph_path)
            return False
        return True

    async def edit_updated(self, feed: str, keys: Sequence[str], author: str) -> int:
        """Edit the pages of `feed`'s statements among `keys` (just updated); how many."""
        if not keys:
            return 0
        try:
            statements = await self.api.db.read(lambda s: pages_of(s, feed, keys))
        except StoreUnavailable as exc:
            logger.warning("Telegraph: pages not edited, the database is unavailable: %s", exc)
            return 0
        edited = 0
        for statement in statements:
            edited += await self.edit(statement, author)
        return edited
