"""A small real HTTP server for feeds, on 127.0.0.1 and a free port, for integration tests.

`FeedServer("127.0.0.2")` listens on another loopback address instead (Linux answers on all of
127/8), for tests that need a second, "public", host. A route's own `Server` header replaces the
server's default one.

It runs the standard library's ThreadingHTTPServer in a background thread::

    with FeedServer() as server:
        server.set("/feed.xml", body, etag='"v1"', last_modified=http_date(moment))
        url = server.url("/feed.xml")
        ...  # the bot fetches url
        server.set("/feed.xml", next_body, etag='"v2"')  # the next poll sees the new version
        assert server.requests_for("/feed.xml")[-1].header("If-None-Match") == '"v1"'

Routes are configured per path and may be swapped at any time (each request reads the route
once, under a lock):

- `set`: serve bytes with a content type, an optional ETag / Last-Modified and real conditional
  GET (304 when If-None-Match or If-Modified-Since match; If-None-Match wins when both are sent);
- `status`: answer a status code with headers (429/503 with Retry-After, 404, 500 ...);
- `redirect`: 301/302/307/308 to another path (or any URL);
- `slow`: wait before answering (`delay`), and/or trickle the body a few bytes at a time;
- `huge`: stream more bytes than a cap, announced by Content-Length or not (then chunked);
- `close_connection`: accept the request, then drop the connection without an answer.

Every request is recorded (method, path, headers) before it is answered. Handler threads are
daemons and every wait is on the server's stop event, so `stop()` returns at once even while a
slow handler is in the middle of an answer.
"""

from __future__ import annotations

import email.utils
import hashlib
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["FeedServer", "RecordedRequest", "closed_port_url", "http_date", "strong_etag"]

RSS = "application/rss+xml; charset=utf-8"
ATOM = "application/atom+xml; charset=utf-8"
HTML = "text/html; charset=utf-8"


def http_date(moment: datetime) -> str:
    """An HTTP date (RFC 9110 IMF-fixdate), e.g. for Last-Modified or Retry-After."""
    return email.utils.format_datetime(moment.astimezone(UTC), usegmt=True)


def strong_etag(body: bytes) -> str:
    """A strong ETag derived from the body, as many servers make them."""
    return '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def closed_port_url(path: str = "/feed.xml") -> str:
    """An http URL on 127.0.0.1 where nothing listens: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # the request target as sent, query string included
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None when it was not sent."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


@dataclass
class _Route:
    status: int = 200
    body: bytes = b""
    content_type: str | None = RSS
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    delay: float = 0.0  # seconds to wait before the status line
    trickle: float = 0.0  # seconds to wait between chunks of the body
    chunk_size: int = 1 << 14
    huge_size: int = 0  # stream this many filler bytes instead of `body`
    content_length: bool = True  # announce the length; False sends the body chunked
    drop: bool = False  # close the connection without an answer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, as real feed hosts do

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
        # holds the body's last segment until the client's delayed ACK (40 ms on Linux), and
        # every mid-sized answer would look 40 ms slower than any real server makes it.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    _server_header: str | None = None

    def version_string(self) -> str:
        return self._server_header or super().version_string()

    def _answer(self, *, send_body: bool) -> None:
        owner = self.server.owner
        owner._record(RecordedRequest(self.command, self.path, tuple(self.headers.items())))
        route = owner._route(self.path.split("?", 1)[0])
        if route is None:
            self._send_simple(404, b"not found\n", "text/plain", send_body=send_body)
            return
        if route.delay and self.server.stopping.wait(route.delay):
            self.close_connection = True  # the server is stopping: hang up without an answer
            return
        if route.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if route.status == 200 and self._not_modified(route):
            self.send_response(304)
            self._validators(route)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        # A route's own Server header (cloudflare, ddos-guard ...) replaces the default one, as
        # behind a real proxy, rather than adding a second.
        self._server_header = next(
            (value for name, value in route.headers.items() if name.lower() == "server"), None
        )
        self.send_response(route.status)
        if route.content_type and route.status != 304:
            self.send_header("Content-Type", route.content_type)
        self._validators(route)
        for name, value in route.headers.items():
            if name.lower() != "server":
                self.send_header(name, value)
        size = route.huge_size or len(route.body)
        if route.content_length:
            self.send_header("Content-Length", str(size))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if send_body:
            self._send_body(route, size)

    def _send_body(self, route: _Route, size: int) -> None:
        chunked = not route.content_length
        sent = 0
        while sent < size:
            n = min(route.chunk_size, size - sent)
            piece = b"x" * n if route.huge_size else route.body[sent : sent + n]
            if chunked:
                piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            self.wfile.write(piece)
            self.wfile.flush()
            sent += n
            if route.trickle and sent < size and self.server.stopping.wait(route.trickle):
                self.close_connection = True
                return
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    def _not_modified(self, route: _Route) -> bool:
        """Conditional GET as RFC 9110 has it: If-None-Match first, else If-Modified-Since."""
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            if route.etag is None:
                return False
            wanted = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
            return "*" in wanted or route.etag.removeprefix("W/") in wanted
        if_modified_since = self.headers.get("If-Modified-Since")
        if if_modified_since and route.last_modified:
            try:
                since = email.utils.parsedate_to_datetime(if_modified_since)
                modified = email.utils.parsedate_to_datetime(route.last_modified)
            except (TypeError, ValueError):
                return False
            return modified <= since
        return False

    def _validators(self, route: _Route) -> None:
        if route.etag:
            self.send_header("ETag", route.etag)
        if route.last_modified:
            self.send_header("Last-Modified", route.last_modified)

    def _send_simple(self, status: int, body: bytes, content_type: str, *, send_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still trickling bytes never holds up the test run
    block_on_close = False

    def __init__(self, owner: FeedServer, host: str) -> None:
        self.owner = owner
        self.stopping = threading.Event()
        super().__init__((host, 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, size cap) closes the socket mid-answer: expected here.
        pass


class FeedServer:
    """A feed host on 127.0.0.1 whose routes the test configures; see the module docstring.

    `host` may be any other loopback address (Linux answers on all of 127/8): tests of the
    private-address rules run a "public" server on 127.0.0.2 beside an "internal" one.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}
        self._requests: list[RecordedRequest] = []
        self._server = _Server(self, host)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"feed-server-{self.port}",
            daemon=True,
        )

    # ---- life cycle --------------------------------------------------------------------

    def start(self) -> FeedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stopping.set()  # wakes every slow or trickling handler
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- addresses and records ---------------------------------------------------------

    def url(self, path: str = "/feed.xml") -> str:
        return f"http://{self.host}:{self.port}{path}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    # ---- routes ------------------------------------------------------------------------

    def set(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str | None = RSS,
        etag: str | None = None,
        last_modified: str | None = None,
        headers: Mapping[str, str] | None = None,
        content_length: bool = True,
    ) -> None:
        """Serve `body` at `path` (200), replacing whatever was there."""
        self._put(
            path,
            _Route(
                body=body,
                content_type=content_type,
                etag=etag,
                last_modified=last_modified,
                headers=dict(headers or {}),
                content_length=content_length,
            ),
        )

    def status(
        self,
        path: str,
        status: int,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        content_type: str | None = "text/plain; charset=utf-8",
    ) -> None:
        """Answer `status` (e.g. 429 with {"Retry-After": "30"}) with an optional small body."""
        self._put(
            path,
            _Route(
                status=status, body=body, content_type=content_type, headers=dict(headers or {})
            ),
        )

    def redirect(self, path: str, to: str, *, status: int = 301) -> None:
        """Redirect `path` to `to` (a path on this server, or a full URL)."""
        location = self.url(to) if to.startswith("/") else to
        self._put(path, _Route(status=status, content_type=None, headers={"Location": location}))

    def slow(
        self,
        path: str,
        body: bytes,
        *,
        delay: float = 0.0,
        trickle: float = 0.0,
        chunk_size: int = 1,
        content_type: str | None = RSS,
    ) -> None:
        """Serve `body` slowly: wait `delay` s before answering, then `trickle` s per chunk."""
        self._put(
            path,
            _Route(
                body=body,
                content_type=content_type,
                delay=delay,
                trickle=trickle,
                chunk_size=chunk_size if trickle else 1 << 14,
            ),
        )

    def huge(self, path: str, size: int, *, content_length: bool = True) -> None:
        """Stream `size` filler bytes, with a Content-Length header or chunked without one."""
        self._put(path, _Route(huge_size=size, content_length=content_length))

    def close_connection(self, path: str) -> None:
        """Read the request, then hang up without an answer (a crashed upstream)."""
        self._put(path, _Route(drop=True))

    def remove(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path, None)

    def _put(self, path: str, route: _Route) -> None:
        with self._lock:
            self._routes[path] = route

    def _route(self, path: str) -> _Route | None:
        with self._lock:
            return self._routes.get(path)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)
