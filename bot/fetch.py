"""Fetch a feed document: conditional GET over httpx, or a local file. No parsing here.

Everything a hostile or broken host can do is bounded here:

- time: one deadline for the whole exchange, redirects and decoding included;
- size: `max_bytes` counts DECODED bytes, through every Content-Encoding layer, enforced while
  decoding in small steps that give the event loop back between them (a 3 KB 'gzip, gzip' bomb
  is refused after at most max_bytes of output, not after 4 GB);
- where the bot goes: redirects are followed here, one hop at a time, and the address actually
  connected to is checked, so a public feed cannot send the bot to a loopback, private,
  link-local or cloud-metadata address (see AddressPolicy). Behind a proxy (HTTP_PROXY and
  the like) the connected address is the proxy's: each hop's host is then judged by what it
  resolves to here, before the proxy is asked to go there, and a name that does not resolve
  here counts as private;
- what the bot sends: per-feed headers (cookies, keys) are never put in an error message;
- local files: regular files only, at most max_bytes, within the same deadline.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import os
import re
import socket
import stat
import urllib.request
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from bot import __version__
from bot.config import RESERVED_HEADERS
from bot.protection import HEAD_BYTES, detect

USER_AGENT = f"statement-bot/{__version__} (Telegram bot that relays official statements)"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
# Only what _Decoder can decode in bounded steps; br/zstd would need libraries we do not have.
ACCEPT_ENCODING = "gzip, deflate"
MAX_REDIRECTS = 5
MAX_ENCODINGS = 3  # 'gzip, gzip' is odd but seen; more layers than this is an attack

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PRIVATE_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network": 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT, also used by some clouds internally
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, and 169.254.169.254, the cloud metadata service
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::/128",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)

# Headers the fetch itself owns: a per-feed value would break decoding, framing or the request.
# The only headers that follow a redirect to another origin: any other per-feed one may be a key.
_CROSS_ORIGIN_HEADERS = frozenset(
    {"user-agent", "accept", "accept-language", "accept-encoding"}
    | {"if-none-match", "if-modified-since"}
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")  # visible ASCII, space, tab: no CR/LF/NUL
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,19}")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DECODE_STEP = 64 * 1024  # the most one decompress call may produce: a short slice of CPU
_MIN_SECRET = 4  # shorter header values are not worth scrubbing (and would mangle messages)


class FetchError(Exception):
    """The document could not be had this time. `retry_after` is the server's own wish."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class FetchResult:
    body: bytes | None  # None: not modified since the validators we sent
    url: str  # where the document finally came from (after redirects)
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    permanent_redirect: str | None = None  # the new address, if the server moved the feed for good
    # The first address connected to was private (or the document is a local file): links found
    # in it may be fetched with private_allowed=True, links in a public one with False.
    private: bool = False

    @property
    def not_modified(self) -> bool:
        return self.body is None


@dataclass(frozen=True)
class AddressPolicy:
    """Which connected addresses count as private. Tests carve 127.0.0.2 out to play 'public'."""

    private_networks: tuple[IPNetwork, ...] = field(default=PRIVATE_NETWORKS)

    def is_private(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
        except ValueError:
            return True  # not an address we can judge: treat it as the riskier kind
        return any(
            candidate in network
            for candidate in _addresses_behind(ip)
            for network in self.private_networks
        )

    def excluding(self, *networks: str) -> AddressPolicy:
        """This policy with `networks` (e.g. "127.0.0.2/32") counted as public."""
        remaining = list(self.private_networks)
        for text in networks:
            carve = ipaddress.ip_network(text)
            kept: list[IPNetwork] = []
            for network in remaining:
                if network.version != carve.version or not network.overlaps(carve):
                    kept.append(network)
                elif carve.subnet_of(network):
                    kept.extend(network.address_exclude(carve))
                # else the network lies wholly inside `carve`: all of it is public now
            remaining = kept
        return AddressPolicy(tuple(remaining))


DEFAULT_POLICY = AddressPolicy()


def _addresses_behind(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The address and any IPv4 address it wraps (::ffff:127.0.0.1 is 127.0.0.1 on the wire)."""
    yield ip
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            yield ip.ipv4_mapped
        if ip.sixtofour is not None:
            yield ip.sixtofour
        if ip in _NAT64:
            yield ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def make_client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        # fetch_feed follows redirects itself, so that every hop's address is checked.
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING},
    )


async def fetch_feed(
    client: httpx.AsyncClient,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    private_allowed: bool | None = None,
    policy: AddressPolicy = DEFAULT_POLICY,
) -> FetchResult:
    """Fetch `url` (http(s), file: URL or path). Raise FetchError for anything unusable.

    `headers` are sent on every request (they override User-Agent and Accept) and never appear
    in an error. `private_allowed`: None for a URL the admin configured (it may be private, and
    then so may its redirects); True or False for a link found in a document whose own
    FetchResult.private it should be (a public page cannot lead to a private address). A link
    (True or False) must be http(s): only a configured URL may be a local file.
    """
    scheme = urlparse(url).scheme.lower()
    if scheme in ("http", "https"):
        secrets = [
            v for v in (headers or {}).values() if isinstance(v, str) and len(v) >= _MIN_SECRET
        ]
        try:
            # The whole exchange is bounded, not only each read: a server that trickles a byte
            # every few seconds must not hold the poll for ever.
            async with asyncio.timeout(timeout * 2):
                return await _fetch_http(
                    client,
                    url,
                    _request_headers(headers, etag, last_modified),
                    max_bytes,
                    private_allowed,
                    policy,
                )
        except TimeoutError:
            raise FetchError(f"timed out after {timeout * 2:g} s") from None
        except FetchError as exc:
            # Our own messages never quote a header, but a library's text might; be sure.
            raise FetchError(_scrub(exc.reason, secrets), exc.retry_after) from None
    if private_allowed is not None:
        # A link never reaches the disk, not even from a private page: /proc/self/environ is a
        # regular file, and what is read gets pushed to subscribers.
        what = "a local file" if scheme in ("", "file") else f"a {_scheme_name(scheme)}: address"
        where = "from a public page" if private_allowed is False else "only a configured feed"
        raise FetchError(f"refused: {what} ({where})")
    try:
        async with asyncio.timeout(timeout * 2):
            return await asyncio.to_thread(_read_file, url, last_modified, max_bytes)
    except TimeoutError:
        # The thread may stay blocked (a hung network mount); the poll goes on without it.
        raise FetchError(f"timed out after {timeout * 2:g} s reading {_file_path(url)}") from None


# ---- HTTP -----------------------------------------------------------------------------


def _request_headers(
    extra: Mapping[str, str] | None, etag: str | None, last_modified: str | None
) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING}
    # Validators come from the server; one that cannot be sent back is simply not sent.
    if etag and _HEADER_VALUE.fullmatch(etag):
        headers["If-None-Match"] = etag
    if last_modified and _HEADER_VALUE.fullmatch(last_modified):
        headers["If-Modified-Since"] = last_modified
    for name, value in (extra or {}).items():
        if not _TOKEN.fullmatch(name):
            raise FetchError(f"request header name {name[:40]!r} is not valid")
        if name.lower() in RESERVED_HEADERS:
            raise FetchError(f"request header {name} cannot be set per feed")
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            # Never the value itself: it may be a cookie or a key.
            raise FetchError(
                f"request header {name} has a line break or a character that is not allowed"
            )
        for known in [k for k in headers if k.lower() == name.lower()]:
            del headers[known]
        headers[name] = value
    return headers


def _scrub(message: str, secrets: list[str]) -> str:
    for secret in secrets:
        message = message.replace(secret, "***")
    return message


async def _fetch_http(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    max_bytes: int,
    private_allowed: bool | None,
    policy: AddressPolicy,
) -> FetchResult:
    try:
        current = httpx.URL(url)
    except httpx.InvalidURL:
        raise FetchError("cannot fetch: the address is not a valid URL") from None
    origin = _origin(current)
    allowed = private_allowed  # resolved to a bool by the first hop
    first_private: bool | None = None
    moved = False

    def judge(private: bool | None, address: str) -> None:
        """Refuse a private address where only public ones may go; the first hop decides
        what its redirects may reach (for a configured URL). None: unknown (a name that does
        not resolve here, behind a proxy): private for a link or a redirect, but for a
        configured URL public, so that it cannot widen what its redirects may reach."""
        nonlocal first_private, allowed
        if private is None:
            private = not (first_private is None and allowed is None)
        if first_private is None:
            first_private = private
            if allowed is None:
                allowed = private
            elif private and not allowed:
                raise FetchError(f"refused: a private address {address} (from a public page)")
        elif private and not allowed:
            raise FetchError(
                f"refused: redirect to a private address {address} (from a public one)"
            )

    try:
        for hop in range(MAX_REDIRECTS + 1):
            if allowed is not True:
                # An address literal is judged before connecting: nothing is sent to it at all.
                _refuse_literal(current.host, hop, allowed, policy)
            proxied = _behind_proxy(client, current)
            if proxied:  # judged before the proxy is asked to go there
                judge(*await _resolved_here(current, policy))
            sent = headers if _origin(current) == origin else _cross_origin(headers)
            async with client.stream("GET", current, headers=sent, follow_redirects=False) as r:
                if not proxied:
                    address = _server_address(r)
                    # No address (a test transport, say): assume the worst, private.
                    judge(address is None or policy.is_private(address), address or "(unknown)")
                target = _redirect_target(r)
                if target is None:
                    return await _answer(r, headers, max_bytes, moved, first_private)
                moved = moved or r.status_code in (301, 308)
                current = target
        raise FetchError(f"too many redirects (more than {MAX_REDIRECTS})")
    except httpx.TimeoutException as exc:
        raise FetchError(f"timed out ({type(exc).__name__})") from None
    except httpx.RemoteProtocolError as exc:
        if str(exc).startswith("Invalid URL in location header"):
            raise FetchError("refused: redirect to an address that is not a valid URL") from None
        raise FetchError(_one_line(f"cannot fetch: RemoteProtocolError: {exc}")) from None
    except httpx.HTTPError as exc:
        raise FetchError(_one_line(f"cannot fetch: {type(exc).__name__}: {exc}")) from None
    except httpx.InvalidURL:
        # `url` was parsed before the loop: this is httpx reading a redirect's Location itself,
        # which it does even when not following it.
        raise FetchError("refused: redirect to an address that is not a valid URL") from None


def _refuse_literal(host: str, hop: int, allowed: bool | None, policy: AddressPolicy) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return  # a name: judged by the address it connects to
    if allowed is False and policy.is_private(host):
        if hop == 0:
            raise FetchError(f"refused: a private address {host} (from a public page)")
        raise FetchError(f"refused: redirect to a private address {host} (from a public one)")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def _cross_origin(headers: dict[str, str]) -> dict[str, str]:
    """The headers safe to send to another origin: cookies and keys stay with the configured one."""
    return {k: v for k, v in headers.items() if k.lower() in _CROSS_ORIGIN_HEADERS}


def _behind_proxy(client: httpx.AsyncClient, url: httpx.URL) -> bool:
    """Whether the client sends this request through a proxy. Asked of httpx itself, which
    routes by HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY as read when the client was made,
    with its own reading of NO_PROXY (urllib's differs: ".example.com" also bypasses
    example.com there): the check must follow the route actually taken. httpx has no public
    way to ask; without the private one, any proxy variable counts (the name check is made)."""
    route = getattr(client, "_transport_for_url", None)
    if route is None:
        return bool(urllib.request.getproxies_environment())
    return route(url) is not getattr(client, "_transport", None)


async def _resolved_here(url: httpx.URL, policy: AddressPolicy) -> tuple[bool | None, str]:
    """(private, what to call it) for a host the proxy will connect to: private if any
    address it resolves to here is; None if it does not resolve here (maybe a name only the
    proxy's network knows). The proxy resolves it again, so a name that changes its answer in
    between can still slip through: the check narrows the hole, it cannot close it."""
    host = url.host
    try:
        return policy.is_private(str(ipaddress.ip_address(host))), host
    except ValueError:
        pass
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        # The ASCII (IDNA 2008) form the proxy is asked for: Python's idna codec is IDNA 2003,
        # which maps some names (straße.de) to another one.
        name = url.raw_host.decode("ascii")
        infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None, f"{host} (not resolvable here, behind a proxy)"
    addresses = sorted({str(info[4][0]) for info in infos})
    private = [a for a in addresses if policy.is_private(a)]
    if not addresses:
        return None, f"{host} (not resolvable here, behind a proxy)"
    return bool(private), f"{host} ({', '.join(private or addresses)})"


def _server_address(response: httpx.Response) -> str | None:
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    peer = stream.get_extra_info("server_addr")
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return None


def _redirect_target(response: httpx.Response) -> httpx.URL | None:
    if response.status_code not in _REDIRECTS:
        return None
    location = response.headers.get("Location")
    if not location:
        raise FetchError(f"HTTP {response.status_code} redirect without a Location")
    try:
        target = response.url.join(location)
    except httpx.InvalidURL:
        raise FetchError("refused: redirect to an address that is not a valid URL") from None
    if target.scheme not in ("http", "https"):
        raise FetchError(f"refused: redirect to a {_scheme_name(target.scheme)}: address")
    if not target.host:
        raise FetchError("refused: redirect to an address without a host")
    return target


def _scheme_name(scheme: str) -> str:
    scheme = scheme.lower()
    return scheme if _SCHEME.fullmatch(scheme) else "non-http"


async def _answer(
    response: httpx.Response, sent: Mapping[str, str], max_bytes: int, moved: bool, private: bool
) -> FetchResult:
    """The final (non-redirect) answer: a 304, an error, or the document."""
    final = str(response.url)
    status = response.status_code
    if status == 304:
        # A 304 need not repeat the validators: the ones sent stay good.
        return FetchResult(
            None,
            final,
            etag=response.headers.get("ETag", sent.get("If-None-Match")),
            last_modified=response.headers.get("Last-Modified", sent.get("If-Modified-Since")),
            permanent_redirect=final if moved else None,
            private=private,
        )
    if status >= 300:
        retry_after = _retry_after(response) if status in (429, 503) else None
        try:
            head = await _read_body(response, min(max_bytes, HEAD_BYTES), truncate=True)
        except (FetchError, httpx.HTTPError):
            head = b""  # an unreadable error page still tells its status
        blocker = detect(status, response.headers, head)
        if blocker:
            raise FetchError(f"blocked by bot protection ({blocker})", retry_after=retry_after)
        raise FetchError(
            _one_line(f"HTTP {status} {response.reason_phrase[:100]}"), retry_after=retry_after
        )
    length = response.headers.get("Content-Length")
    encoded = any(c.strip().lower() not in ("", "identity") for c in _codings(response))
    announced_limit = _raw_limit(max_bytes) if encoded else max_bytes
    if length and length.isdigit() and int(length) > announced_limit:
        raise FetchError(f"the document is larger than the limit of {max_bytes} bytes")
    body = await _read_body(response, max_bytes)
    blocker = detect(status, response.headers, body[:HEAD_BYTES])
    if blocker:
        raise FetchError(f"blocked by bot protection ({blocker})")
    return FetchResult(
        body,
        final,
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
        content_type=response.headers.get("Content-Type"),
        permanent_redirect=final if moved else None,
        private=private,
    )


def _raw_limit(max_bytes: int) -> int:
    """Encoded bytes allowed for max_bytes decoded: deflate adds a little to incompressible data."""
    return max_bytes + max_bytes // 64 + 4096


async def _read_body(response: httpx.Response, limit: int, *, truncate: bool = False) -> bytes:
    """The decoded body, at most `limit` bytes; more is an error (or cut off, with `truncate`)."""
    decoder = _Decoder(_codings(response), _raw_limit(limit))
    too_big = FetchError(f"the document is larger than the limit of {limit} bytes" + decoder.note)
    body = bytearray()
    raw_size = 0
    try:
        async for raw in response.aiter_raw():
            raw_size += len(raw)
            if raw_size > _raw_limit(limit):
                # Even bytes that decode to nothing (junk after a gzip member) are bounded.
                if truncate:
                    return bytes(body[:limit])
                raise too_big
            for piece in decoder.feed(raw):
                body += piece
                if len(body) > limit:
                    if truncate:
                        return bytes(body[:limit])
                    raise too_big
                await asyncio.sleep(0)  # one bounded step done: let the rest of the bot run
            if len(body) >= limit and truncate:
                return bytes(body[:limit])
        decoder.finish()  # every byte was already decoded by feed(): this only checks the ends
    except _TooBig:
        if truncate:
            return bytes(body[:limit])
        raise too_big from None
    return bytes(body)


# ---- Content-Encoding -----------------------------------------------------------------


def _codings(response: httpx.Response) -> list[str]:
    return response.headers.get_list("Content-Encoding", split_commas=True)


class _TooBig(Exception):
    """A layer produced more than any acceptable document could need."""


class _Layer:
    """One gzip or deflate layer, decoded in steps of at most _DECODE_STEP output bytes."""

    def __init__(self, coding: str, limit: int) -> None:
        self.coding = coding
        self.limit = limit
        self.produced = 0
        self.pending = b""  # a byte or two held back until a stream's start can be judged
        self.obj: zlib._Decompress | None = None
        self.junk = False  # the stream ended and what followed is not another gzip member

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Yield the decoded output of `data`, each piece from one bounded decompress call."""
        data = self.pending + data
        self.pending = b""
        drain = False  # the last call filled its quota: zlib may hold more output
        while data or drain:
            if self.obj is None or self.obj.eof:
                if self.junk or (self.obj is not None and self.coding != "gzip"):
                    return  # bytes after the end are ignored, as browsers do
                if len(data) < 2 and (self.obj is None or data == _GZIP_MAGIC[:1]):
                    self.pending = data
                    return
                if self.obj is not None and data[:2] != _GZIP_MAGIC:
                    self.junk = True
                    return
                self.obj = self._start(data)  # the first stream, or a next gzip member
            obj = self.obj
            try:
                out = obj.decompress(data, _DECODE_STEP)
            except zlib.error as exc:
                raise FetchError(f"cannot decode the {self.coding} body: {exc}") from None
            self.produced += len(out)
            if self.produced > self.limit:
                raise _TooBig
            yield out
            drain = len(out) == _DECODE_STEP and not obj.eof
            data = obj.unused_data if obj.eof else obj.unconsumed_tail

    def finish(self) -> None:
        """Refuse a stream that stopped before its end (a cut connection, a broken server)."""
        if self.obj is None and not self.pending:
            return  # an empty body says nothing, encoded or not
        # After the end, a byte left pending is junk (or half a magic number): ignored.
        if self.obj is None or not self.obj.eof:
            raise FetchError(f"cannot decode the {self.coding} body: it is truncated")

    def _start(self, data: bytes) -> zlib._Decompress:
        if self.coding == "gzip":
            return zlib.decompressobj(zlib.MAX_WBITS | 16)
        # 'deflate' should be zlib-wrapped (RFC 9110), but some servers send raw deflate.
        zlib_header = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)


_GZIP_MAGIC = b"\x1f\x8b"


class _Decoder:
    """Undo the Content-Encoding layers in order, each bounded, all in small steps."""

    def __init__(self, codings: list[str], layer_limit: int) -> None:
        names: list[str] = []
        for coding in codings:
            name = coding.strip().lower()
            if name in ("", "identity"):
                continue
            if name == "x-gzip":
                name = "gzip"
            if name not in ("gzip", "deflate"):
                shown = name if _TOKEN.fullmatch(name) and len(name) <= 20 else "?"
                raise FetchError(f"unsupported Content-Encoding: {shown}")
            names.append(name)
        if len(names) > MAX_ENCODINGS:
            raise FetchError(f"too many Content-Encoding layers ({len(names)})")
        self.note = f" once decoded ({', '.join(names)})" if names else ""
        # The last encoding applied is the first to undo.
        self.layers = [_Layer(name, layer_limit) for name in reversed(names)]

    def feed(self, raw: bytes) -> Iterator[bytes]:
        return self._through(0, raw)

    def finish(self) -> None:
        for layer in self.layers:
            layer.finish()

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self.layers):
            yield data
            return
        for piece in self.layers[index].feed(data):
            yield from self._through(index + 1, piece)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After as seconds (it may be a number or an HTTP date)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# ---- local files ----------------------------------------------------------------------


def _file_path(url: str) -> Path:
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.scheme.lower() == "file" else Path(url)


def _read_file(url: str, last_modified: str | None, max_bytes: int) -> FetchResult:
    path = _file_path(url)
    too_big = FetchError(f"the document is larger than the limit of {max_bytes} bytes")
    try:
        # Judge the path before opening it: opening a FIFO blocks, a device may act on open.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise FetchError(f"not a regular file: {path}")
        # Non-blocking, and judged again by what was opened, in case it was swapped meanwhile.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise FetchError(f"not a regular file: {path}")
            # The file's mtime plays the part of Last-Modified: unchanged file, no parse.
            stamp = str(info.st_mtime_ns)
            if last_modified == stamp:
                return FetchResult(None, url, last_modified=stamp, private=True)
            if info.st_size > max_bytes:
                raise too_big
            chunks: list[bytes] = []
            size = 0
            while size <= max_bytes:  # the file may grow while it is read: never past the cap
                chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            if size > max_bytes:
                raise too_big
        finally:
            os.close(fd)
        return FetchResult(
            b"".join(chunks),
            path.resolve().as_uri(),
            last_modified=stamp,
            content_type="application/xml",  # what a web server would say for a feed file
            private=True,  # the admin's own disk: links in it are as trusted as a local feed
        )
    except FileNotFoundError:
        raise FetchError(f"no such file: {path}") from None
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from None
