"""A fake Telegram Bot API server for integration tests and benchmarks.

It speaks enough of the Bot API over real HTTP (aiohttp on 127.0.0.1, a free port) that
python-telegram-bot runs against it unmodified::

    with FakeBotAPI(token="123:ABC") as api:
        app = Application.builder().token("123:ABC").base_url(api.base_url).build()
        ...  # start polling
        api.push_message(42, "/start")
        [reply] = api.wait_for_messages(1, chat_id=42)

The server runs in its own thread with its own event loop, so sync tests, async tests (on any
loop) and a bot in a subprocess can all use it. Everything it records is guarded by one lock;
the recording structures only ever grow by appends, so benchmarks stay linear.

What it answers the way Telegram does (checked against python-telegram-bot 22.8):

- requests at ``/bot<TOKEN>/<method>``, method names case-insensitive; params as query string,
  JSON, form-urlencoded (what PTB sends: strings raw, everything else JSON-encoded) or multipart;
- a wrong token: 401 "Unauthorized" (PTB: ``InvalidToken``);
- an unknown method: 400 "Bad Request: method not found" (Telegram answers 404, which PTB turns
  into ``InvalidToken`` - misleading in a test) and the name goes to ``unknown_calls``;
- getUpdates is real long polling; a second concurrent getUpdates ends the first with 409
  "Conflict: terminated by other getUpdates request" (PTB: ``Conflict``), as Telegram does;
- sendMessage checks what Telegram would reject: empty text, text over 4096 characters after
  entity parsing, malformed HTML when ``parse_mode="HTML"`` (MarkdownV2 is not checked);
- per-chat error injection (:meth:`FakeBotAPI.fail_chat`) and optional flood limits;
- inline keyboards: :meth:`FakeBotAPI.push_callback_query` presses a button of a message the bot
  sent; answerCallbackQuery accepts each query id once (a second answer, or an id never issued,
  is 400 "query is too old ... or query ID is invalid"); editMessageText edits a message the bot
  sent in that chat (400 "message to edit not found" otherwise) and refuses an edit that changes
  nothing (400 "message is not modified"), as Telegram does;
- pinned messages: pinChatMessage pins a message the bot sent (400 "message to pin not found"
  otherwise; 400 "not enough rights to manage pinned messages in the chat" after
  :meth:`FakeBotAPI.deny_pin`), getChat names the chat's newest pin as ``pinned_message``, and
  the chat's admins act through :meth:`FakeBotAPI.admin_unpin` and :meth:`FakeBotAPI.admin_delete`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, Literal

from aiohttp import web

__all__ = ["ALL_METHODS", "FailureKind", "FakeBotAPI", "SentMessage"]

JSONDict = dict[str, Any]
ChatId = int | str
ChatType = Literal["private", "group", "supergroup", "channel"]
FailureKind = Literal["blocked", "kicked", "not_found", "migrated", "flood", "server_error", "slow"]
MemberStatus = Literal["creator", "administrator", "member", "restricted", "left", "kicked"]

#: Pass as ``methods`` to :meth:`FakeBotAPI.fail_chat` to fail every chat-scoped method.
ALL_METHODS: Final = "*"

_FAILURE_KINDS: Final = frozenset(
    {"blocked", "kicked", "not_found", "migrated", "flood", "server_error", "slow"}
)
# Methods that take a chat_id, so a per-chat failure rule can apply to them.
_CHAT_METHODS: Final = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "deleteMessage",
        "sendChatAction",
        "getChat",
        "getChatMember",
        "getChatAdministrators",
        "pinChatMessage",
        "unpinChatMessage",
    }
)

# How form values are decoded. PTB sends strings as-is and JSON-encodes everything else, so
# a text of "123" must stay a string while chat_id "123" becomes an int.
_STR_PARAMS: Final = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "language_code",
        "url",
        "secret_token",
        "description",
        "callback_query_id",
    }
)
_INT_PARAMS: Final = frozenset(
    {
        "chat_id",
        "from_chat_id",
        "message_id",
        "message_thread_id",
        "reply_to_message_id",
        "offset",
        "limit",
        "timeout",
        "user_id",
        "until_date",
    }
)
_BOOL_PARAMS: Final = frozenset(
    {
        "disable_notification",
        "protect_content",
        "allow_paid_broadcast",
        "allow_sending_without_reply",
        "disable_web_page_preview",
        "drop_pending_updates",
        "show_alert",
    }
)

_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
# Telegram marks every /command at the start of the text or after whitespace.
_BOT_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{1,64})?")
_HTML_TAGS: Final = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)
# Telegram decodes only these entities; others stay literal text.
_HTML_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")
_HTML_ENTITY_TEXT: Final = {"&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"'}

# What Telegram's nginx front answers on 502: HTML, not JSON. PTB then fails to parse the body
# and still raises NetworkError (after logging the parse failure).
_NGINX_502: Final = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One message the fake accepted (recorded before any injected delay, as Telegram does)."""

    chat_id: ChatId
    message_id: int
    text: str
    parse_mode: str | None
    message_thread_id: int | None
    link_preview_options: JSONDict | None
    time: float
    """``time.time()`` when accepted."""
    monotonic: float
    """``time.monotonic()`` when accepted, for rate computations."""
    params: JSONDict
    """Every parameter as received (decoded)."""


@dataclass(slots=True)
class _Failure:
    kind: str
    times: int | None
    methods: frozenset[str] | None  # None: every chat-scoped method
    retry_after: int
    migrate_to_chat_id: int | None
    delay: float
    status: int
    description: str | None


class _ApiError(Exception):
    """An error answer; raised inside method handlers."""

    def __init__(self, status: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def response(self) -> web.Response:
        if self.status == HTTPStatus.BAD_GATEWAY:
            return web.Response(status=502, body=_NGINX_502, content_type="text/html")
        return _error_response(self.status, self.description, self.parameters)


class _SlidingWindow:
    """At most ``limit`` events in any ``period`` seconds."""

    __slots__ = ("limit", "period", "stamps")

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.stamps: deque[float] = deque()

    def wait_time(self, now: float) -> float:
        """Seconds until one more event fits; 0 if it fits now."""
        while self.stamps and self.stamps[0] <= now - self.period:
            self.stamps.popleft()
        if len(self.stamps) < self.limit:
            return 0.0
        return self.stamps[0] + self.period - now

    def add(self, now: float) -> None:
        self.stamps.append(now)


def _json_response(payload: JSONDict, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload, separators=(",", ":")).encode(),
        content_type="application/json",
    )


def _error_response(
    status: int, description: str, parameters: JSONDict | None = None
) -> web.Response:
    payload: JSONDict = {"ok": False, "error_code": status, "description": description}
    if parameters:
        payload["parameters"] = parameters
    return _json_response(payload, status)


def _decode_form_value(name: str, value: str) -> Any:
    """Decode one form field the way the Bot API reads it."""
    if name in _STR_PARAMS:
        return value
    if name in _INT_PARAMS:
        with contextlib.suppress(ValueError):
            return int(value)
        with contextlib.suppress(ValueError):
            return float(value)
        return value  # "@channelusername"
    if name in _BOOL_PARAMS:
        return value.lower() in ("true", "1")
    if value[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


async def _read_params(request: web.Request) -> JSONDict:
    """All parameters of a request: query string, then JSON, form or multipart body."""
    params: JSONDict = {k: _decode_form_value(k, v) for k, v in request.query.items()}
    if not request.can_read_body:
        return params
    content_type = request.content_type
    if content_type == "application/json":
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("can't parse JSON object")
        params.update(body)
    elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                params[key] = {"filename": value.filename, "data": value.file.read()}
            else:
                params[key] = _decode_form_value(key, value)
    return params


def _normalize_chat_id(chat_id: Any) -> ChatId:
    """Telegram accepts chat ids as numbers or numeric strings; "@name" stays a string."""
    if isinstance(chat_id, bool):
        raise _ApiError(400, "Bad Request: chat not found")
    if isinstance(chat_id, int):
        return chat_id
    if isinstance(chat_id, str):
        with contextlib.suppress(ValueError):
            return int(chat_id)
        if chat_id.startswith("@") and len(chat_id) > 1:
            return chat_id
    raise _ApiError(400, "Bad Request: chat not found")


def _infer_chat_type(chat_id: ChatId) -> ChatType:
    """Guess from the id: users > 0, supergroups -100..., other negatives basic groups.

    Real supergroup ids are -100 followed by 10 digits; any "-100" prefix counts here, so that
    short test ids like -100123 read as supergroups.
    """
    if isinstance(chat_id, str):
        return "channel"
    if chat_id > 0:
        return "private"
    if str(chat_id).startswith("-100"):
        return "supergroup"
    return "group"


def _utf16_len(text: str) -> int:
    """Telegram measures entity offsets and lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _command_entities(text: str) -> list[JSONDict]:
    entities = []
    for match in _BOT_COMMAND.finditer(text):
        entities.append(
            {
                "type": "bot_command",
                "offset": _utf16_len(text[: match.start()]),
                "length": _utf16_len(match.group()),
            }
        )
    return entities


def _html_error(message: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: can't parse entities: {message}")


def _parse_html(text: str) -> str:
    """Check Telegram-HTML the way Telegram does; return the visible text.

    Mirrors tdlib's parser closely enough to reject what Telegram rejects: a tag name runs up to
    whitespace or '>', only Telegram's tags are allowed, and tags must nest properly.
    """
    out: list[str] = []
    stack: list[str] = []
    i = 0
    n = len(text)

    def offset(pos: int) -> int:
        return len(text[:pos].encode())

    while i < n:
        lt = text.find("<", i)
        if lt == -1:
            out.append(text[i:])
            break
        out.append(text[i:lt])
        closing = text.startswith("</", lt)
        name_start = lt + 2 if closing else lt + 1
        j = name_start
        while j < n and not text[j].isspace() and text[j] != ">":
            j += 1
        name = text[name_start:j].lower()
        if closing:
            if not stack:
                raise _html_error(f"Unexpected end tag at byte offset {offset(lt)}")
            if j >= n:
                raise _html_error(f"Unclosed end tag at byte offset {offset(lt)}")
            if name and name != stack[-1]:
                raise _html_error(
                    f'Unmatched end tag at byte offset {offset(lt)}, expected "</{stack[-1]}>", '
                    f'found "</{name}>"',
                )
            stack.pop()
        else:
            if j >= n:
                raise _html_error(f"Unclosed start tag at byte offset {offset(lt)}")
            if name not in _HTML_TAGS:
                raise _html_error(f'Unsupported start tag "{name}" at byte offset {offset(lt)}')
            stack.append(name)
        # Skip attributes up to the '>' that is not inside quotes.
        quote = ""
        while j < n:
            ch = text[j]
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in ("'", '"'):
                quote = ch
            elif ch == ">":
                break
            j += 1
        if j >= n:
            raise _html_error(f"Unclosed start tag at byte offset {offset(lt)}")
        i = j + 1
    if stack:
        raise _html_error(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return _HTML_ENTITY.sub(_decode_html_entity, "".join(out))


def _visible(text: str) -> str:
    """The text a reader sees (HTML markup parsed), or the text itself if it is not valid."""
    try:
        return _parse_html(text)
    except _ApiError:
        return text


def _decode_html_entity(match: re.Match[str]) -> str:
    entity = match.group()
    if entity in _HTML_ENTITY_TEXT:
        return _HTML_ENTITY_TEXT[entity]
    code = int(entity[3:-1], 16) if entity[2] in "xX" else int(entity[2:-1])
    try:
        return chr(code)
    except (ValueError, OverflowError):
        return entity


Handler = Callable[[JSONDict], Coroutine[Any, Any, Any]]
# The request being handled (each aiohttp handler runs in its own task, so its own context).
_current_request: contextvars.ContextVar[web.Request] = contextvars.ContextVar("request")


class FakeBotAPI:
    """A Telegram Bot API stand-in on 127.0.0.1; see the module docstring.

    Public attributes (read them freely; they are appended to under ``lock``):

    - ``calls``: every request as ``(method, params)``, method in canonical camelCase;
    - ``unknown_calls``: names of methods the fake does not implement;
    - ``messages``: every accepted sendMessage as :class:`SentMessage`;
    - ``flood_rejections``: ``(chat_id, retry_after)`` for each 429 from ``enforce_limits``;
    - ``conflicts``: how many getUpdates calls were ended by a newer one (409);
    - ``delay``: seconds added to every sendMessage answer (settable at any time).
    """

    def __init__(
        self,
        token: str = "123:ABC",
        *,
        username: str = "statement_test_bot",
        first_name: str = "Statement Test Bot",
        enforce_limits: bool = False,
        overall_per_second: int = 30,
        per_chat_per_second: int = 1,
        group_per_minute: int = 20,
        check_html: bool = True,
        max_text_length: int = 4096,
    ) -> None:
        """Configure the fake; :meth:`start` (or ``with``) starts serving.

        ``enforce_limits`` answers sendMessage with 429 when Telegram's flood limits would be
        exceeded (``overall_per_second`` in total, ``per_chat_per_second`` per chat,
        ``group_per_minute`` per group or channel).
        """
        self.token = token
        prefix = token.split(":", 1)[0]
        self.bot_id = int(prefix) if prefix.isdigit() else 123456
        self.username = username
        self.first_name = first_name
        self.enforce_limits = enforce_limits
        self.check_html = check_html
        self.max_text_length = max_text_length
        self.delay = 0.0

        self.lock = threading.Lock()
        self._cond = threading.Condition(self.lock)
        self.calls: list[tuple[str, JSONDict]] = []
        self.unknown_calls: list[str] = []
        self.messages: list[SentMessage] = []
        self.flood_rejections: list[tuple[ChatId, int]] = []
        self.conflicts = 0
        self._by_chat: dict[ChatId, list[SentMessage]] = {}

        self._updates: deque[JSONDict] = deque()
        self._next_update_id = 100_000
        self._message_ids: dict[ChatId, int] = {}
        self._chats: dict[ChatId, JSONDict] = {}
        self._username_ids: dict[str, int] = {}
        self._members: dict[tuple[ChatId, int], MemberStatus] = {}
        self._failures: dict[ChatId, _Failure] = {}
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        # The bot's messages as they stand now (after edits): (chat, message_id) -> message.
        self._bot_messages: dict[tuple[ChatId, int], JSONDict] = {}
        self.edits: list[JSONDict] = []  # every accepted editMessageText, as received
        self._pins: dict[ChatId, list[int]] = {}  # chat -> pinned message ids, newest last
        self._no_pin: set[ChatId] = set()  # chats where the bot may not pin
        # Callback queries issued by push_callback_query: id -> its answer's params (or None).
        self.callback_answers: dict[str, JSONDict | None] = {}
        self._next_callback_id = 1

        self._overall_limit = _SlidingWindow(overall_per_second, 1.0)
        self._per_chat_per_second = per_chat_per_second
        self._group_per_minute = group_per_minute
        self._chat_limits: dict[ChatId, _SlidingWindow] = {}
        self._group_limits: dict[ChatId, _SlidingWindow] = {}

        handlers: dict[str, Handler] = {
            "getMe": self._get_me,
            "logOut": self._true,
            "close": self._true,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "getUpdates": self._get_updates,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "deleteMessage": self._chat_ok("deleteMessage"),
            "sendChatAction": self._chat_ok("sendChatAction"),
            "answerCallbackQuery": self._answer_callback_query,
            "getChat": self._get_chat,
            "getChatMember": self._get_chat_member,
            "getChatAdministrators": self._get_chat_administrators,
            "pinChatMessage": self._pin_chat_message,
            "unpinChatMessage": self._unpin_chat_message,
        }
        # Telegram matches method names case-insensitively.
        self._handlers = {name.lower(): (name, fn) for name, fn in handlers.items()}

        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._startup_error: BaseException | None = None
        self._closing = False
        self._closing_event: asyncio.Event | None = None
        self._updates_event: asyncio.Event | None = None
        self._poll_generation = 0
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """What to pass as PTB's ``base_url``; PTB appends the token."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def url(self) -> str:
        """The full method URL prefix, token included."""
        return f"{self.base_url}{self.token}"

    def start(self) -> FakeBotAPI:
        """Start serving in a background thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("FakeBotAPI can be started only once")
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="FakeBotAPI", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("FakeBotAPI did not start within 10 s")
        if self._startup_error is not None:
            raise RuntimeError("FakeBotAPI failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving: pending long polls return empty, delayed answers return early."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            future.result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    def __enter__(self) -> FakeBotAPI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._setup())
        except BaseException as exc:  # reported to start()'s caller
            self._startup_error = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _setup(self) -> None:
        self._closing_event = asyncio.Event()
        self._updates_event = asyncio.Event()
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        # No access log: it costs throughput and would print the token.
        # handler_cancellation: a long poll whose client went away stops at once.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        self._closing = True
        assert self._closing_event is not None
        self._closing_event.set()
        self._wake_pollers()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but return early when the server stops."""
        assert self._closing_event is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing_event.wait(), seconds)

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return _error_response(401, "Unauthorized")
        try:
            params = await _read_params(request)
        except ValueError as exc:
            return _error_response(400, f"Bad Request: {exc}")
        entry = self._handlers.get(method.lower())
        _current_request.set(request)
        with self._cond:
            self.calls.append((entry[0] if entry else method, params))
            if entry is None:
                self.unknown_calls.append(method)
            self._cond.notify_all()
        if entry is None:
            return _error_response(400, "Bad Request: method not found")
        try:
            result = await entry[1](params)
        except _ApiError as exc:
            return exc.response()
        except (TypeError, ValueError) as exc:  # a parameter of the wrong type, e.g. offset="x"
            return _error_response(400, f"Bad Request: {exc}")
        return _json_response({"ok": True, "result": result})

    # ------------------------------------------------------------------ methods

    def _bot_user(self) -> JSONDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }

    async def _true(self, params: JSONDict) -> bool:
        return True

    def _chat_ok(self, method: str) -> Handler:
        """A handler for a chat-scoped method that just succeeds (unless failed on purpose)."""

        async def handler(params: JSONDict) -> bool:
            self._apply_failure(method, self._chat_id(params))
            return True

        return handler

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _delete_webhook(self, params: JSONDict) -> bool:
        if params.get("drop_pending_updates"):
            with self.lock:
                self._updates.clear()
        return True

    async def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        with self.lock:
            pending = len(self._updates)
        return {"url": "", "has_custom_certificate": False, "pending_update_count": pending}

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        # A newer getUpdates ends any older one with 409, as Telegram does.
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake_pollers()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            # Take the event before looking, so a push in between still wakes us.
            event = self._updates_event
            assert event is not None
            if generation != self._poll_generation:
                # Count only conflicts someone sees: PTB's stop abandons a long poll and
                # at once sends one more getUpdates, which is no conflict.
                transport = _current_request.get().transport
                if transport is not None and not transport.is_closing():
                    self.conflicts += 1
                raise _ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one "
                    "bot instance is running",
                )
            with self.lock:
                self._confirm_updates(offset)
                batch = [u for _, u in zip(range(limit), self._updates, strict=False)]
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closing:
                return batch
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def _confirm_updates(self, offset: int) -> None:
        """Forget updates before ``offset``; negative: keep only the last ``-offset``."""
        if offset > 0:
            while self._updates and self._updates[0]["update_id"] < offset:
                self._updates.popleft()
        elif offset < 0:
            while len(self._updates) > -offset:
                self._updates.popleft()

    def _wake_pollers(self) -> None:
        """Wake every waiting getUpdates (runs on the server loop)."""
        event = self._updates_event
        if event is not None:
            self._updates_event = asyncio.Event()
            event.set()

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _ApiError(400, "Bad Request: can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_NAME.fullmatch(
                str(command.get("command", ""))
            ):
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            description = str(command.get("description", "")).strip()
            if not description:
                raise _ApiError(400, "Bad Request: command description must be non-empty")
            if len(description) > 256:
                raise _ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        with self.lock:
            self._commands[self._commands_key(params)] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        with self.lock:
            return list(self._commands.get(self._commands_key(params), []))

    async def _delete_my_commands(self, params: JSONDict) -> bool:
        with self.lock:
            self._commands.pop(self._commands_key(params), None)
        return True

    @staticmethod
    def _commands_key(params: JSONDict) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    async def _send_message(self, params: JSONDict) -> JSONDict:
        chat_id = self._chat_id(params)
        text = params.get("text")
        if not isinstance(text, str):
            raise _ApiError(400, "Bad Request: message text is empty")
        parse_mode = params.get("parse_mode") or None
        self._check_text(text, parse_mode)
        delay = self.delay + self._apply_failure("sendMessage", chat_id)
        self._check_flood(chat_id)
        message = self._message_dict(chat_id, text, params)
        thread_id = params.get("message_thread_id")
        record = SentMessage(
            chat_id=chat_id,
            message_id=message["message_id"],
            text=text,
            parse_mode=parse_mode,
            message_thread_id=thread_id if isinstance(thread_id, int) else None,
            link_preview_options=params.get("link_preview_options"),
            time=time.time(),
            monotonic=time.monotonic(),
            params=params,
        )
        with self._cond:
            self.messages.append(record)
            self._by_chat.setdefault(chat_id, []).append(record)
            self._bot_messages[(chat_id, message["message_id"])] = message
            self._cond.notify_all()
        # Delay after recording: a slow answer still means a delivered message.
        if delay > 0:
            await self._sleep(delay)
        return message

    async def _edit_message_text(self, params: JSONDict) -> JSONDict:
        chat_id = self._chat_id(params)
        text = params.get("text")
        if not isinstance(text, str):
            raise _ApiError(400, "Bad Request: message text is empty")
        self._check_text(text, params.get("parse_mode") or None)
        self._apply_failure("editMessageText", chat_id)
        key = (chat_id, int(params.get("message_id") or 0))
        with self.lock:
            old = self._bot_messages.get(key)
        if old is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        message = self._message_dict(chat_id, text, params, new_id=False)
        for where in ("message_thread_id", "is_topic_message"):  # an edit keeps it in its topic
            if where in old:
                message[where] = old[where]
        # Telegram compares the visible text, not the markup it was written in.
        if _visible(old["text"]) == _visible(text) and old.get("reply_markup") == message.get(
            "reply_markup"
        ):
            raise _ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        message["edit_date"] = int(time.time())
        with self._cond:
            self._bot_messages[key] = message
            self.edits.append(params)
            self._cond.notify_all()
        return message

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        text = params.get("text")
        if isinstance(text, str) and len(text) > 200:
            raise _ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        with self._cond:
            if query_id not in self.callback_answers or self.callback_answers[query_id]:
                raise _ApiError(
                    400,
                    "Bad Request: query is too old and response timeout expired or query ID is "
                    "invalid",
                )
            self.callback_answers[query_id] = params
            self._cond.notify_all()
        return True

    def _check_text(self, text: str, parse_mode: str | None) -> None:
        """Reject what Telegram rejects: empty, too long, malformed HTML."""
        visible = text
        if parse_mode and parse_mode.upper() == "HTML" and self.check_html:
            visible = _parse_html(text)
        if not visible.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        # With Markdown the visible length is not computed here, so do not guess.
        if (not parse_mode or parse_mode.upper() == "HTML") and len(visible) > self.max_text_length:
            raise _ApiError(400, "Bad Request: message is too long")

    def _message_dict(
        self, chat_id: ChatId, text: str, params: JSONDict, *, new_id: bool = True
    ) -> JSONDict:
        with self.lock:
            chat = self._chat_dict(chat_id)
            if new_id:
                message_id = self._new_message_id(chat_id)
            else:
                message_id = int(params.get("message_id") or 0)
        message: JSONDict = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "text": text,
        }
        if chat["type"] == "channel":
            message["sender_chat"] = chat
        else:
            message["from"] = self._bot_user()
        thread_id = params.get("message_thread_id")
        if isinstance(thread_id, int):
            message["message_thread_id"] = thread_id
            if chat.get("is_forum"):
                message["is_topic_message"] = True
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    async def _get_chat(self, params: JSONDict) -> JSONDict:
        chat_id = self._chat_id(params)
        self._apply_failure("getChat", chat_id)
        with self.lock:
            chat = self._chat_dict(chat_id)
            pins = self._pins.get(chat_id)
            pinned = dict(self._bot_messages[(chat_id, pins[-1])]) if pins else None
        extra = {"pinned_message": pinned} if pinned else {}
        # ChatFullInfo fields PTB 22 requires.
        return {
            **chat,
            **extra,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    async def _pin_chat_message(self, params: JSONDict) -> bool:
        chat_id = self._chat_id(params)
        self._apply_failure("pinChatMessage", chat_id)
        key = (chat_id, int(params.get("message_id") or 0))
        with self._cond:
            if chat_id in self._no_pin:
                raise _ApiError(
                    400, "Bad Request: not enough rights to manage pinned messages in the chat"
                )
            if key not in self._bot_messages:
                raise _ApiError(400, "Bad Request: message to pin not found")
            pins = self._pins.setdefault(chat_id, [])
            if key[1] in pins:
                pins.remove(key[1])
            pins.append(key[1])
            self._cond.notify_all()
        return True

    async def _unpin_chat_message(self, params: JSONDict) -> bool:
        chat_id = self._chat_id(params)
        self._apply_failure("unpinChatMessage", chat_id)
        with self._cond:
            if chat_id in self._no_pin:
                raise _ApiError(
                    400, "Bad Request: not enough rights to manage pinned messages in the chat"
                )
            pins = self._pins.get(chat_id, [])
            message_id = params.get("message_id") or (pins[-1] if pins else None)
            if message_id in pins:
                pins.remove(message_id)
        return True

    async def _get_chat_member(self, params: JSONDict) -> JSONDict:
        chat_id = self._chat_id(params)
        user_id = params.get("user_id")
        if not isinstance(user_id, int):
            raise _ApiError(400, "Bad Request: invalid user_id specified")
        self._apply_failure("getChatMember", chat_id)
        with self.lock:
            status = self._members.get((chat_id, user_id), "member")
        return self._member_dict(status, user_id)

    async def _get_chat_administrators(self, params: JSONDict) -> list[JSONDict]:
        chat_id = self._chat_id(params)
        self._apply_failure("getChatAdministrators", chat_id)
        with self.lock:
            if self._chat_dict(chat_id)["type"] == "private":
                raise _ApiError(400, "Bad Request: there are no administrators in the private chat")
            admins = [
                (user_id, status)
                for (chat, user_id), status in self._members.items()
                if chat == chat_id and status in ("creator", "administrator")
            ]
        return [self._member_dict(status, user_id) for user_id, status in admins]

    def _member_dict(self, status: MemberStatus, user_id: int) -> JSONDict:
        if user_id == self.bot_id:
            user = self._bot_user()
        else:
            user = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
        member: JSONDict = {"status": status, "user": user}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            # All the fields PTB 22's ChatMemberAdministrator requires.
            member.update(
                can_be_edited=False,
                is_anonymous=False,
                can_manage_chat=True,
                can_delete_messages=True,
                can_manage_video_chats=True,
                can_restrict_members=True,
                can_promote_members=False,
                can_change_info=True,
                can_invite_users=True,
                can_post_stories=True,
                can_edit_stories=True,
                can_delete_stories=True,
                can_pin_messages=True,
            )
        elif status == "kicked":
            member["until_date"] = 0
        elif status == "restricted":
            member.update(
                is_member=True,
                until_date=0,
                **dict.fromkeys(
                    (
                        "can_send_messages",
                        "can_send_audios",
                        "can_send_documents",
                        "can_send_photos",
                        "can_send_videos",
                        "can_send_video_notes",
                        "can_send_voice_notes",
                        "can_send_polls",
                        "can_send_other_messages",
                        "can_add_web_page_previews",
                        "can_change_info",
                        "can_invite_users",
                        "can_pin_messages",
                        "can_manage_topics",
                        "can_edit_tag",
                    ),
                    False,
                ),
            )
        return member

    # ------------------------------------------------------------------ helpers (server side)

    @staticmethod
    def _chat_id(params: JSONDict) -> ChatId:
        if "chat_id" not in params:
            raise _ApiError(400, "Bad Request: chat_id is empty")
        return _normalize_chat_id(params["chat_id"])

    def _chat_dict(self, chat_id: ChatId) -> JSONDict:
        """The Chat object for ``chat_id`` (call with the lock held)."""
        known = self._chats.get(chat_id, {})
        chat_type = known.get("type") or _infer_chat_type(chat_id)
        if isinstance(chat_id, int):
            numeric_id = chat_id
        else:  # "@channel": Telegram answers with the channel's numeric id; invent a stable one
            numeric_id = self._username_ids.setdefault(
                chat_id.lower(), -1_001_000_000_000 - len(self._username_ids)
            )
        chat: JSONDict = {"id": numeric_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = f"User {chat_id}"
        else:
            chat["title"] = f"Chat {chat_id}"
        if isinstance(chat_id, str):
            chat["username"] = chat_id[1:]
        chat.update((k, v) for k, v in known.items() if v is not None)
        return chat

    def _new_message_id(self, chat_id: ChatId) -> int:
        """Message ids increase per chat, shared by incoming and outgoing (lock held)."""
        message_id = self._message_ids.get(chat_id, 0) + 1
        self._message_ids[chat_id] = message_id
        return message_id

    def _apply_failure(self, method: str, chat_id: ChatId) -> float:
        """Raise the injected error for this chat, if any; return an injected delay."""
        with self.lock:
            rule = self._failures.get(chat_id)
            if rule is None or (rule.methods is not None and method not in rule.methods):
                return 0.0
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    del self._failures[chat_id]
            chat_type = self._chat_dict(chat_id)["type"]
        return self._failure_outcome(rule, chat_type)

    @staticmethod
    def _failure_outcome(rule: _Failure, chat_type: str) -> float:
        kind = rule.kind
        if kind == "slow":
            return rule.delay
        if kind == "blocked":
            raise _ApiError(403, rule.description or "Forbidden: bot was blocked by the user")
        if kind == "kicked":
            where = "supergroup" if chat_type == "supergroup" else "group"
            if chat_type == "channel":
                default = "Forbidden: bot is not a member of the channel chat"
            else:
                default = f"Forbidden: bot was kicked from the {where} chat"
            raise _ApiError(403, rule.description or default)
        if kind == "not_found":
            raise _ApiError(400, rule.description or "Bad Request: chat not found")
        if kind == "migrated":
            raise _ApiError(
                400,
                rule.description or "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": rule.migrate_to_chat_id},
            )
        if kind == "flood":
            raise _ApiError(
                429,
                rule.description or f"Too Many Requests: retry after {rule.retry_after}",
                {"retry_after": rule.retry_after},
            )
        # server_error
        try:
            phrase = HTTPStatus(rule.status).phrase
        except ValueError:
            phrase = "Server Error"
        raise _ApiError(rule.status, rule.description or phrase)

    def _check_flood(self, chat_id: ChatId) -> None:
        """Answer 429 when Telegram's flood limits would be exceeded (``enforce_limits``)."""
        if not self.enforce_limits:
            return
        now = time.monotonic()
        with self.lock:
            windows = [self._overall_limit]
            chat_window = self._chat_limits.get(chat_id)
            if chat_window is None:
                chat_window = self._chat_limits[chat_id] = _SlidingWindow(
                    self._per_chat_per_second, 1.0
                )
            windows.append(chat_window)
            if self._chat_dict(chat_id)["type"] != "private":
                group_window = self._group_limits.get(chat_id)
                if group_window is None:
                    group_window = self._group_limits[chat_id] = _SlidingWindow(
                        self._group_per_minute, 60.0
                    )
                windows.append(group_window)
            wait = max(window.wait_time(now) for window in windows)
            if wait > 0:
                retry_after = max(1, math.ceil(wait))
                self.flood_rejections.append((chat_id, retry_after))
            else:
                for window in windows:
                    window.add(now)
        if wait > 0:
            raise _ApiError(
                429,
                f"Too Many Requests: retry after {retry_after}",
                {"retry_after": retry_after},
            )

    # ------------------------------------------------------------------ test-side API

    def push_update(self, update: JSONDict) -> int:
        """Queue a raw update for getUpdates; ``update_id`` is assigned when missing."""
        update = dict(update)
        with self.lock:
            if "update_id" in update:
                self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
            else:
                update["update_id"] = self._next_update_id
                self._next_update_id += 1
            self._updates.append(update)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop stopping concurrently
                loop.call_soon_threadsafe(self._wake_pollers)
        return int(update["update_id"])

    def push_message(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        chat_type: ChatType | None = None,
        message_thread_id: int | None = None,
        is_topic_message: bool = False,
        username: str | None = "tester",
        first_name: str = "Test",
        chat_title: str | None = None,
        language_code: str | None = "en",
    ) -> int:
        """Queue an update with a text message as Telegram builds it; return its update_id.

        ``user_id`` defaults to ``chat_id`` in private chats and 7777 elsewhere. Text starting
        with "/" gets a bot_command entity (PTB's CommandHandler needs it). In a channel the
        update is a ``channel_post`` with ``sender_chat`` and no ``from``.
        """
        chat_type = chat_type or _infer_chat_type(chat_id)
        if user_id is None:
            user_id = chat_id if chat_type == "private" else 7777
        user: JSONDict = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
        }
        if language_code:  # Telegram leaves it out when the client does not say
            user["language_code"] = language_code
        if username:
            user["username"] = username
        with self.lock:
            # Remember the chat so answers and getChat describe it the same way.
            known = self._chats.setdefault(chat_id, {})
            known["type"] = chat_type
            if chat_type == "private":
                known.setdefault("first_name", first_name)
                if username:
                    known.setdefault("username", username)
            elif chat_title:
                known["title"] = chat_title
            if is_topic_message:
                known["is_forum"] = True
            chat = self._chat_dict(chat_id)
            message_id = self._new_message_id(chat_id)
        message: JSONDict = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "text": text,
        }
        if chat_type == "channel":
            message["sender_chat"] = chat
        else:
            message["from"] = user
        entities = _command_entities(text)
        if entities:
            message["entities"] = entities
        if message_thread_id is not None:
            message["message_thread_id"] = message_thread_id
        if is_topic_message:
            message["is_topic_message"] = True
        return self.push_update({"channel_post" if chat_type == "channel" else "message": message})

    def push_callback_query(
        self,
        chat_id: ChatId,
        message_id: int,
        data: str,
        *,
        user_id: int | None = None,
        language_code: str | None = "en",
        message: JSONDict | None = None,
    ) -> str:
        """Press an inline button: queue a callback_query update; return the query's id.

        The message is the bot's message ``message_id`` in ``chat_id`` as it stands now, or
        ``message`` (a forged press on any message). ``user_id`` defaults as in push_message.
        """
        chat_id = _normalize_chat_id(chat_id)
        with self.lock:
            chat_type = self._chat_dict(chat_id)["type"]
            if message is None:
                message = self._bot_messages.get((chat_id, message_id))
            if message is None:
                raise KeyError(f"the bot sent no message {message_id} to chat {chat_id}")
            query_id = str(self._next_callback_id)
            self._next_callback_id += 1
            self.callback_answers[query_id] = None
        if user_id is None:
            user_id = chat_id if chat_type == "private" and isinstance(chat_id, int) else 7777
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
        if language_code:
            user["language_code"] = language_code
        self.push_update({
            "callback_query": {
                "id": query_id,
                "from": user,
                "message": message,
                "chat_instance": f"instance-{chat_id}",
                "data": data,
            }
        })  # fmt: skip
        return query_id

    def wait_for_callback_answer(self, query_id: str, timeout: float = 10.0) -> JSONDict:
        """Block until the bot answered callback query ``query_id``; return the answer's params."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.callback_answers.get(query_id):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"callback query {query_id} not answered in {timeout} s")
                self._cond.wait(remaining)
            answer = self.callback_answers[query_id]
            assert answer is not None
            return answer

    def bot_message(self, chat_id: ChatId, message_id: int) -> JSONDict:
        """A message the bot sent, as it stands now (after edits)."""
        with self.lock:
            return dict(self._bot_messages[(_normalize_chat_id(chat_id), message_id)])

    def buttons(self, chat_id: ChatId, message_id: int) -> list[list[tuple[str, str]]]:
        """The inline keyboard of a bot message as rows of (text, callback_data)."""
        markup = self.bot_message(chat_id, message_id).get("reply_markup") or {}
        return [
            [(b["text"], b.get("callback_data", "")) for b in row]
            for row in markup.get("inline_keyboard", [])
        ]

    def pinned(self, chat_id: ChatId) -> list[int]:
        """The chat's pinned message ids, newest pin last."""
        with self.lock:
            return list(self._pins.get(_normalize_chat_id(chat_id), []))

    def deny_pin(self, chat_id: ChatId, denied: bool = True) -> None:
        """Take away (or give back) the bot's right to pin messages in the chat."""
        chat_id = _normalize_chat_id(chat_id)
        with self.lock:
            if denied:
                self._no_pin.add(chat_id)
            else:
                self._no_pin.discard(chat_id)

    def admin_unpin(self, chat_id: ChatId, message_id: int) -> None:
        """One of the chat's admins unpins a message."""
        with self.lock:
            pins = self._pins.get(_normalize_chat_id(chat_id), [])
            if message_id in pins:
                pins.remove(message_id)

    def admin_delete(self, chat_id: ChatId, message_id: int) -> None:
        """One of the chat's admins deletes a bot message (a pinned one is unpinned with it)."""
        chat_id = _normalize_chat_id(chat_id)
        self.admin_unpin(chat_id, message_id)
        with self.lock:
            self._bot_messages.pop((chat_id, message_id), None)

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates not yet confirmed by a getUpdates offset."""
        with self.lock:
            return list(self._updates)

    def set_chat(
        self,
        chat_id: ChatId,
        *,
        chat_type: ChatType | None = None,
        title: str | None = None,
        username: str | None = None,
        first_name: str | None = None,
        is_forum: bool | None = None,
    ) -> None:
        """Describe a chat (otherwise its type is inferred from the id)."""
        with self.lock:
            known = self._chats.setdefault(_normalize_chat_id(chat_id), {})
            fields = {
                "type": chat_type,
                "title": title,
                "username": username,
                "first_name": first_name,
                "is_forum": is_forum,
            }
            known.update((k, v) for k, v in fields.items() if v is not None)

    def set_admins(
        self, chat_id: ChatId, admin_ids: Iterable[int], *, creator_id: int | None = None
    ) -> None:
        """Make exactly these users administrators (and ``creator_id`` the creator)."""
        chat_id = _normalize_chat_id(chat_id)
        with self.lock:
            for key in [k for k, s in self._members.items() if k[0] == chat_id]:
                if self._members[key] in ("creator", "administrator"):
                    del self._members[key]
            for user_id in admin_ids:
                self._members[(chat_id, user_id)] = "administrator"
            if creator_id is not None:
                self._members[(chat_id, creator_id)] = "creator"

    def set_member_status(self, chat_id: ChatId, user_id: int, status: MemberStatus) -> None:
        """Set one user's status in a chat (default for everyone: "member")."""
        chat_id = _normalize_chat_id(chat_id)
        with self.lock:
            self._members[(chat_id, user_id)] = status

    def fail_chat(
        self,
        chat_id: ChatId,
        kind: FailureKind,
        times: int | None = None,
        *,
        retry_after: int = 3,
        migrate_to_chat_id: int | None = None,
        delay: float = 2.0,
        status: int = 500,
        description: str | None = None,
        methods: Iterable[str] = ("sendMessage",),
    ) -> None:
        """Make requests about ``chat_id`` fail the way Telegram fails them.

        ``times`` requests fail, then the chat works again (None: forever). ``kind``:
        "blocked"/"kicked" (403), "not_found" (400), "migrated" (400 with
        ``migrate_to_chat_id``), "flood" (429 with ``retry_after``), "server_error" (``status``;
        502 answers nginx's HTML page), "slow" (answers ok after ``delay`` seconds, the message
        counts as delivered). ``methods`` defaults to sendMessage; pass ``[ALL_METHODS]`` for
        every chat-scoped method. A new rule for the same chat replaces the old one.
        """
        if kind not in _FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        if kind == "migrated" and migrate_to_chat_id is None:
            raise ValueError('kind="migrated" needs migrate_to_chat_id')
        method_set = frozenset(methods)
        unknown = method_set - _CHAT_METHODS - {ALL_METHODS}
        if unknown:
            raise ValueError(f"not chat-scoped methods: {sorted(unknown)}")
        rule = _Failure(
            kind=kind,
            times=times,
            methods=None if ALL_METHODS in method_set else method_set,
            retry_after=retry_after,
            migrate_to_chat_id=migrate_to_chat_id,
            delay=delay,
            status=status,
            description=description,
        )
        with self.lock:
            if times is not None and times <= 0:
                self._failures.pop(_normalize_chat_id(chat_id), None)
            else:
                self._failures[_normalize_chat_id(chat_id)] = rule

    def clear_failures(self, chat_id: ChatId | None = None) -> None:
        """Remove the failure rule of one chat, or of all chats."""
        with self.lock:
            if chat_id is None:
                self._failures.clear()
            else:
                self._failures.pop(_normalize_chat_id(chat_id), None)

    def sent_messages(self, chat_id: ChatId | None = None) -> list[SentMessage]:
        """Accepted sendMessage calls, oldest first; all chats or one."""
        with self.lock:
            return list(self._messages_for(chat_id))

    def _messages_for(self, chat_id: ChatId | None) -> list[SentMessage]:
        if chat_id is None:
            return self.messages
        return self._by_chat.get(_normalize_chat_id(chat_id), [])

    def wait_for_messages(
        self, count: int = 1, chat_id: ChatId | None = None, timeout: float = 10.0
    ) -> list[SentMessage]:
        """Block until at least ``count`` messages were sent (to ``chat_id``); return all of them.

        Raises TimeoutError. In an async test whose loop also runs the bot, use
        :meth:`wait_for_messages_async` instead, or the bot cannot run while this waits.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                messages = self._messages_for(chat_id)
                if len(messages) >= count:
                    return list(messages)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    where = "" if chat_id is None else f" to chat {chat_id}"
                    raise TimeoutError(
                        f"expected {count} message(s){where} within {timeout} s, got "
                        f"{len(messages)}: {[m.text for m in messages]!r}"
                    )
                self._cond.wait(remaining)

    async def wait_for_messages_async(
        self, count: int = 1, chat_id: ChatId | None = None, timeout: float = 10.0
    ) -> list[SentMessage]:
        """:meth:`wait_for_messages` without blocking the caller's event loop."""
        return await asyncio.to_thread(self.wait_for_messages, count, chat_id, timeout)

    def calls_to(self, method: str) -> list[JSONDict]:
        """Params of every call to ``method`` (canonical camelCase name)."""
        with self.lock:
            return [params for name, params in self.calls if name == method]

    def wait_for_call(self, method: str, count: int = 1, timeout: float = 10.0) -> list[JSONDict]:
        """Block until ``method`` was called ``count`` times; return the params of all calls."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [params for name, params in self.calls if name == method]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{method} called {len(found)} time(s), wanted {count}")
                self._cond.wait(remaining)

    async def wait_for_call_async(
        self, method: str, count: int = 1, timeout: float = 10.0
    ) -> list[JSONDict]:
        """:meth:`wait_for_call` without blocking the caller's event loop."""
        return await asyncio.to_thread(self.wait_for_call, method, count, timeout)

    def commands(self, scope: JSONDict | None = None, language_code: str = "") -> list[JSONDict]:
        """Commands last set with setMyCommands for this scope and language."""
        key = self._commands_key({"scope": scope, "language_code": language_code})
        with self.lock:
            return list(self._commands.get(key, []))

    def peak_rate(self, chat_id: ChatId | None = None, window: float = 1.0) -> int:
        """Most messages accepted within any ``window`` seconds (all chats or one)."""
        stamps = [m.monotonic for m in self.sent_messages(chat_id)]
        best = start = 0
        for end, stamp in enumerate(stamps):
            while stamp - stamps[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def clear(self) -> None:
        """Forget recorded calls and messages (configuration and queued updates stay)."""
        with self.lock:
            self.calls.clear()
            self.unknown_calls.clear()
            self.messages.clear()
            self._by_chat.clear()
            self.edits.clear()
            self.flood_rejections.clear()
            self.conflicts = 0
