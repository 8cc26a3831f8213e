"""bot.runtime: the loop `statement-bot run` runs on, and the collector settings it starts with."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Iterator

import pytest

from bot import runtime


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_runs_on_uvloop_with_the_start_up_heap_frozen() -> None:
    pytest.importorskip("uvloop")
    assert runtime.run(_loop_module()).startswith("uvloop")
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == runtime.GC_THRESHOLD


def test_asyncio_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime.ENV_EVENT_LOOP, "asyncio")
    assert runtime.run(_loop_module()).startswith("asyncio")


def test_asyncio_loop_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop: ImportError
    assert runtime.run(_loop_module()).startswith("asyncio")
