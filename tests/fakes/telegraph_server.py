"""A small real Telegraph API (https://telegra.ph/api) on 127.0.0.1, for integration tests.

createAccount, createPage and editPage/{path}, with form or query parameters as Telegraph takes
them, answering {"ok": true, "result": ...} or {"ok": false, "error": "..."}. It checks what the
real one checks and the bot relies on: the access token, a title, content that is a JSON array
of nodes, of allowed tags, within 64 KB. Every call is recorded (method and parameters).

    with TelegraphServer() as telegraph:
        config = replace(config, telegraph=True, telegraph_api_base_url=telegraph.url)
        ...
        assert telegraph.pages["Title-11-28"].content == [...]

`fail_with("FLOOD_WAIT_5")` makes every call answer that error; `hang()` makes every call wait
(until the server stops) without an answer; `recover()` undoes both.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlparse

from tests.fakes.threaded_server import ThreadedServer

__all__ = ["FakePage", "TelegraphServer"]

MAX_CONTENT = 64 * 1024
ALLOWED_TAGS = {
    "a", "aside", "b", "blockquote", "br", "code", "em", "figcaption", "figure", "h3", "h4",
    "hr", "i", "iframe", "img", "li", "ol", "p", "pre", "s", "strong", "u", "ul", "video",
}  # fmt: skip


@dataclass
class FakePage:
    path: str
    title: str
    content: list[Any]
    author_name: str
    author_url: str
    edits: int = 0

    @property
    def url(self) -> str:
        return f"https://telegra.ph/{self.path}"


@dataclass
class Call:
    method: str
    params: dict[str, str]


@dataclass
class _State:
    tokens: list[str] = field(default_factory=list)
    pages: dict[str, FakePage] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    error: str | None = None
    hanging: bool = False


def _check_nodes(nodes: Any) -> bool:
    if not isinstance(nodes, list):
        return False
    for node in nodes:
        if isinstance(node, str):
            continue
        if not isinstance(node, dict) or node.get("tag") not in ALLOWED_TAGS:
            return False
        attrs = node.get("attrs", {})
        if not isinstance(attrs, dict) or set(attrs) - {"href", "src"}:
            return False
        if "children" in node and not _check_nodes(node["children"]):
            return False
    return True


class TelegraphServer(ThreadedServer):
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.state = _State()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8") if length else ""
                self._answer(urlparse(self.path), dict(parse_qsl(body)))

            def do_GET(self) -> None:
                self._answer(urlparse(self.path), {})

            def _answer(self, url: Any, params: dict[str, str]) -> None:
                params = {**dict(parse_qsl(url.query)), **params}
                method = url.path.strip("/")
                answer = server._handle(method, params)
                if answer is None:  # hanging: no answer until the server stops
                    server._stop.wait()
                    return
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler, host)

    @property
    def pages(self) -> dict[str, FakePage]:
        with self._lock:
            return dict(self.state.pages)

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self.state.calls)

    def methods(self) -> list[str]:
        return [c.method.split("/")[0] for c in self.calls]

    @property
    def tokens(self) -> list[str]:
        with self._lock:
            return list(self.state.tokens)

    def fail_with(self, error: str) -> None:
        with self._lock:
            self.state.error = error

    def hang(self) -> None:
        with self._lock:
            self.state.hanging = True

    def recover(self) -> None:
        with self._lock:
            self.state.error, self.state.hanging = None, False

    def _handle(self, method: str, params: dict[str, str]) -> dict[str, Any] | None:
        with self._lock:
            state = self.state
            state.calls.append(Call(method, params))
            if state.hanging:
                return None
            if state.error:
                return {"ok": False, "error": state.error}
            name, _, path = method.partition("/")
            if name == "createAccount":
                if not params.get("short_name"):
                    return {"ok": False, "error": "SHORT_NAME_REQUIRED"}
                token = secrets.token_hex(30)
                state.tokens.append(token)
                return {"ok": True, "result": {"short_name": params["short_name"],
                        "author_name": params.get("author_name", ""), "author_url": "",
                        "access_token": token, "auth_url": "https://edit.telegra.ph/auth/x"}}  # fmt: skip
            if name not in ("createPage", "editPage"):
                return {"ok": False, "error": "METHOD_NOT_FOUND"}
            if params.get("access_token") not in state.tokens:
                return {"ok": False, "error": "ACCESS_TOKEN_INVALID"}
            title = params.get("title", "")
            if not title:
                return {"ok": False, "error": "TITLE_REQUIRED"}
            if len(title) > 256:
                return {"ok": False, "error": "TITLE_TOO_LONG"}
            raw = params.get("content", "")
            if not raw:
                return {"ok": False, "error": "CONTENT_REQUIRED"}
            if len(raw.encode("utf-8")) > MAX_CONTENT:
                return {"ok": False, "error": "CONTENT_TOO_BIG"}
            try:
                content = json.loads(raw)
            except ValueError:
                return {"ok": False, "error": "CONTENT_FORMAT_INVALID"}
            if not _check_nodes(content):
                return {"ok": False, "error": "CONTENT_FORMAT_INVALID"}
            author, author_url = params.get("author_name", ""), params.get("author_url", "")
            if name == "createPage":
                slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")[:40] or "page"
                path, n = f"{slug}-11-28", 2
                while path in state.pages:
                    path, n = f"{slug}-11-28-{n}", n + 1
                page = FakePage(path, title, content, author, author_url)
                state.pages[path] = page
            else:
                if path not in state.pages:
                    return {"ok": False, "error": "PAGE_NOT_FOUND"}
                page = state.pages[path]
                page.title, page.content = title, content
                page.author_name, page.author_url = author, author_url
                page.edits += 1
            return {"ok": True, "result": {"path": page.path, "url": page.url,
                    "title": page.title, "views": 0}}  # fmt: skip

    def stop(self) -> None:
        self._stop.set()  # a hanging answer returns at once
        super().stop()
