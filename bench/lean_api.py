"""A lean fake Bot API for throughput benchmarks: only what `statement-bot run` calls.

At 1000 messages/s the test suite's fake (aiohttp's web server, a lock, an HTML check per
message) would take a third of the second core, and the bare-client figure would measure the
fake. This one is an asyncio.Protocol answering HTTP/1.1 keep-alive requests from canned
JSON: getMe, getUpdates (held for its timeout, then empty), sendMessage (recorded: time, chat,
allow_paid_broadcast) and true for anything else (deleteWebhook, setMyCommands, ...).
It is driven like bench.fake_api_server (`python -m bench.fake_api_server --lean`).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any
from urllib.parse import parse_qsl

_ME = {"id": 123456, "is_bot": True, "first_name": "Bench", "username": "bench_bot",
       "can_join_groups": True, "can_read_all_group_messages": False,
       "supports_inline_queries": False}  # fmt: skip


class LeanBotAPI:
    """Serves on 127.0.0.1 in a thread of its own; `stamps`, `chats`, `paid` only grow."""

    def __init__(self, token: str) -> None:
        self.prefix = f"/bot{token}/".encode()
        self.stamps: list[float] = []  # time.monotonic() of each accepted sendMessage
        self.chats: list[int | str] = []
        self.paid = 0
        self.calls: dict[str, int] = {}
        self.base_url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> LeanBotAPI:
        self._server = self._loop.run_until_complete(
            self._loop.create_server(lambda: _Connection(self), "127.0.0.1", 0, backlog=1024)
        )
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/bot"
        self._thread.start()
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def answer(self, method: str, params: dict[str, Any]) -> tuple[bytes, float]:
        """The JSON answer and how long to hold it (getUpdates long-polls)."""
        self.calls[method] = self.calls.get(method, 0) + 1
        if method == "sendMessage":
            chat = params.get("chat_id")
            self.stamps.append(time.monotonic())
            self.chats.append(chat)
            if params.get("allow_paid_broadcast") in (True, "true", "True"):
                self.paid += 1
            message_id = len(self.stamps)
            kind = "private" if isinstance(chat, int) and chat > 0 else "channel"
            result: Any = {"message_id": message_id, "date": int(time.time()),
                           "chat": {"id": chat, "type": kind}}  # fmt: skip
            return json.dumps({"ok": True, "result": result}).encode(), 0.0
        if method == "getMe":
            return json.dumps({"ok": True, "result": _ME}).encode(), 0.0
        if method == "getUpdates":
            return b'{"ok":true,"result":[]}', min(float(params.get("timeout", 0) or 0), 30.0)
        return b'{"ok":true,"result":true}', 0.0


class _Connection(asyncio.Protocol):
    def __init__(self, api: LeanBotAPI) -> None:
        self.api = api
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length = 0
            content_type = ""
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "content-type":
                    content_type = value.strip()
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            path = head[0].split(" ")[1].encode()
            if "://" in head[0].split(" ")[1]:  # absolute form (through a proxy)
                path = b"/" + path.split(b"/", 3)[3]
            self._handle(path, content_type, body)

    def _handle(self, path: bytes, content_type: str, body: bytes) -> None:
        if not path.startswith(self.api.prefix):
            self._send(b'{"ok":false,"error_code":401,"description":"Unauthorized"}', 401)
            return
        method = path[len(self.api.prefix) :].split(b"?")[0].decode()
        params: dict[str, Any] = {}
        if body and content_type.startswith("application/json"):
            params = json.loads(body)
        elif body:
            params = dict(parse_qsl(body.decode()))
            if "chat_id" in params:
                params["chat_id"] = _chat_id(params["chat_id"])
        payload, hold = self.api.answer(method, params)
        if hold:
            asyncio.get_running_loop().call_later(hold, self._send, payload, 200)
        else:
            self._send(payload, 200)

    def _send(self, payload: bytes, status: int) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        reason = b"OK" if status == 200 else b"Unauthorized"
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (status, reason, len(payload), payload)
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _chat_id(value: str) -> int | str:
    try:
        return int(value)
    except ValueError:
        return value
