"""python-telegram-bot's HTTP layer on aiohttp instead of httpx.

PTB's own HTTPXRequest costs 4-5 ms of CPU per message (httpcore's pool bookkeeping, anyio),
which caps the bot at about 200 messages/s; aiohttp does the same request in about a tenth of
that (docs/benchmarks.md). Only the transport changes: PTB's BaseRequest still turns every
answer into its errors (RetryAfter, Forbidden, ChatMigrated, BadRequest, InvalidToken, ...),
so the delivery engine sees exactly what it saw before.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

try:  # ~3% of the bot's CPU per message was the standard library's json (docs/benchmarks.md)
    import orjson
except ImportError:  # pragma: no cover - orjson is a pinned dependency; this is a fallback
    orjson = None  # type: ignore[assignment]

_DEFAULT = BaseRequest.DEFAULT_NONE
# Made once, not per request: aiohttp copies them into the request's own headers.
_JSON_HEADERS = {"User-Agent": BaseRequest.USER_AGENT, "Content-Type": "application/json"}
_HEADERS = {"User-Agent": BaseRequest.USER_AGENT}


class AiohttpRequest(BaseRequest):
    """A BaseRequest on one aiohttp.ClientSession (keep-alive connections to the Bot API).

    Timeouts mean what they mean for HTTPXRequest: `read_timeout` bounds the wait for the
    answer (getUpdates adds its long-poll time to it), `connect_timeout` the connection, and
    `pool_timeout` the wait for a free connection (aiohttp counts both in its `connect`).
    aiohttp has no write timeout; a stalled write is caught by the read timeout.
    """

    __slots__ = ("_connect_timeout", "_pool_size", "_pool_timeout", "_proxies", "_read_timeout",
                 "_session", "_timeouts")  # fmt: skip

    def __init__(
        self,
        connection_pool_size: int = 256,
        read_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[str, str | None] = {}  # URL -> proxy URL
        self._timeouts: dict[tuple[Any, Any, Any], aiohttp.ClientTimeout] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        # Made here, not in __init__: a ClientSession belongs to the loop it was made on.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                # Not trust_env: aiohttp then reads the proxy variables and ~/.netrc in a thread
                # on every request (two thread hops a message); _proxy_for reads them once.
                trust_env=False,
                # Never raise on 4xx/5xx: BaseRequest reads the status and the body.
                raise_for_status=False,
                skip_auto_headers=("User-Agent",),
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = _DEFAULT,
        write_timeout: Any = _DEFAULT,
        connect_timeout: Any = _DEFAULT,
        pool_timeout: Any = _DEFAULT,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        read = self._read_timeout if read_timeout is _DEFAULT else read_timeout
        connect = self._connect_timeout if connect_timeout is _DEFAULT else connect_timeout
        pool = self._pool_timeout if pool_timeout is _DEFAULT else pool_timeout
        timeout = self._timeouts.get((read, connect, pool))
        if timeout is None:
            timeout = self._timeouts[read, connect, pool] = aiohttp.ClientTimeout(
                total=None,
                connect=None if connect is None or pool is None else connect + pool,
                sock_connect=connect,
                sock_read=read,
            )
        headers = _HEADERS
        body: Any = None
        if request_data is not None:
            if request_data.contains_files:
                body = _form(request_data)
            else:
                # JSON body: one encode, no per-field form encoding (the Bot API takes both).
                body = _json_body(request_data.parameters)
                headers = _JSON_HEADERS
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, timeout=timeout,
                proxy=self._proxy_for(url),
            ) as response:  # fmt: skip
                return response.status, await response.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            # As PTB's TimedOut: the request may have reached Telegram (and the message too).
            raise TimedOut(f"timed out: {type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc

    def _proxy_for(self, url: str) -> str | None:
        """As httpx: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY and NO_PROXY, read once per URL."""
        if url in self._proxies:
            return self._proxies[url]
        if len(self._proxies) > 256:  # file downloads have URLs of their own
            self._proxies.clear()
        parts = urlsplit(url)
        proxies = urllib.request.getproxies()
        proxy = proxies.get(parts.scheme) or proxies.get("all")
        if proxy and parts.hostname and urllib.request.proxy_bypass(parts.hostname):
            proxy = None
        self._proxies[url] = proxy
        return proxy

    @staticmethod
    def parse_json_payload(payload: bytes) -> dict[str, Any]:
        """orjson, as PTB's docs suggest for a faster JSON library; anything orjson refuses
        (invalid UTF-8, say) goes through PTB's own parser, its error and its log line."""
        if orjson is not None:
            try:
                result = orjson.loads(payload)
            except orjson.JSONDecodeError:
                pass
            else:
                if isinstance(result, dict):
                    return result
        return BaseRequest.parse_json_payload(payload)


def _json_body(parameters: dict[str, Any]) -> bytes:
    if orjson is not None:
        try:
            return orjson.dumps(parameters)
        except TypeError:  # what orjson cannot encode (an int over 64 bits): as json does
            pass
    return json.dumps(parameters).encode()


class PlainRequestData(RequestData):
    """RequestData for parameters that are plain JSON already (str, int, bool, dict, list).

    PTB's own RequestData holds a RequestParameter per field, made by from_input's chain of
    isinstance checks for TelegramObjects, dates and files: ~9% of the bot's CPU per message at
    1,000/s, for pushes whose fields are a chat id, the HTML and a few flags. What a request
    layer reads (parameters, json_parameters, contains_files) means the same here.
    """

    __slots__ = ("_plain",)

    def __init__(self, parameters: dict[str, Any]) -> None:
        super().__init__()  # no RequestParameters: contains_files is False
        self._plain = {k: v for k, v in parameters.items() if v is not None}

    @property
    def parameters(self) -> dict[str, Any]:
        return self._plain

    @property
    def json_parameters(self) -> dict[str, str]:
        # As RequestParameter.json_value: strings as they are, anything else JSON-encoded.
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in self._plain.items()}


def _form(request_data: RequestData) -> aiohttp.FormData:
    """multipart/form-data for uploads: the other parameters as PTB encodes them, plus files."""
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form
