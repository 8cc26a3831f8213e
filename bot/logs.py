"""Logging set-up for the entry point: text or JSON lines, secrets scrubbed, noisy libs quiet."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO


class SecretFilter(logging.Filter):
    """Replaces known secrets in every record: defence in depth behind quiet httpx logs."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, secret: str) -> None:
        if secret:
            self.secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        text = message
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self.secrets:
            text = text.replace(secret, "<token>")
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, "<token>")
        if text != message:
            record.msg, record.args = text, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


secret_filter = SecretFilter()


def configure_logging(level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.addFilter(secret_filter)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO, and Bot API URLs contain the token: quiet unless
    # an admin asks for DEBUG, and then the secret filter scrubs the token out of every line.
    quiet = logging.WARNING if root.level > logging.DEBUG else logging.NOTSET
    for noisy in ("httpx", "httpcore", "apscheduler", "telegram.ext.ExtBot", "hpack"):
        logging.getLogger(noisy).setLevel(quiet)  # NOTSET: DEBUG shows them, secrets scrubbed
    # With max_retries=0 the rate limiter logs every RetryAfter as an ERROR with a traceback;
    # the delivery engine handles it (waits as told) and logs it as a warning.
    logging.getLogger("telegram.ext.AIORateLimiter").setLevel(logging.CRITICAL)
