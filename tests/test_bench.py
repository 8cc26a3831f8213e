"""The benchmarks in bench/ still run: each one, at a tiny size, as its README says to run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
pytestmark = pytest.mark.slow  # each starts processes


def run_bench(module: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def table_rows(out: str) -> dict[str, str]:
    """The two-column Markdown tables of a bench's output, label -> value (padding ignored)."""
    rows = {}
    for line in out.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 2:
            rows[cells[0]] = cells[1]
    return rows


@pytest.mark.parametrize(
    "args",
    [
        ["--rate", "0"],
        ["--rate", "30"],
        ["--paid-broadcast", "--enforce-limits"],
        ["--rate", "0", "--profile", "--top", "3"],
        ["--rate", "0", "--lean", "--baseline"],
    ],
)
def test_fanout(args: list[str]) -> None:
    out = run_bench("bench.fanout", "--chats", "20", "--quiet-log", *args)
    rows = table_rows(out)
    assert rows["messages accepted by the fake"] == "20 to 20 chats"
    assert rows["still pending / failed in the outbox"] == "0 / 0"
    if "--profile" in args:
        assert "Where the time goes" in out
    if "--paid-broadcast" in args:
        assert rows["sent with allow_paid_broadcast"] == "20"
    if "--baseline" in args:
        assert "the bot / the bare client" in out


@pytest.mark.parametrize("free", [False, True])
def test_broadcast(free: bool) -> None:
    out = run_bench("bench.broadcast", "--chats", "30", "--channels", "3", "--items", "20",
                    "--interval", "1", *(["--free"] if free else []))  # fmt: skip
    assert "| quiet: messages accepted" in out
    assert "30 to 30 chats (" + ("0" if free else "30") + " with allow_paid_broadcast)" in out
    assert "| exit code after SIGTERM" in out


def test_poll_cost() -> None:
    out = run_bench("bench.poll_cost", "--items", "20", "--new", "2", "--subscribers", "5",
                    "--runs", "3")  # fmt: skip
    for case in ("304 Not Modified", "200, same body", "200, 2 new items"):
        assert f"| {case}" in out
    assert "30 outbox rows" in out  # 3 polls x 2 new items x 5 subscribers


def test_poll_cost_of_a_list_page() -> None:
    out = run_bench("bench.poll_cost", "--page", "--items", "10", "--new", "1",
                    "--subscribers", "5", "--runs", "3")  # fmt: skip
    assert "List page of 10 items" in out
    assert "| 200, 1 new items" in out and "15 outbox rows" in out


@pytest.mark.parametrize("paid", [False, True])
def test_kill9(paid: bool) -> None:
    out = run_bench("bench.kill9", "--chats", "20", "--points", "1",
                    *(["--paid-broadcast"] if paid else []))  # fmt: skip
    [row] = [line for line in out.splitlines() if line.startswith("| 50%")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    lost, once, twice, most = (int(cell) for cell in cells[2:6])
    # The guarantee: nothing lost, at most the one message in flight to a chat sent twice.
    assert (lost, once + twice) == (0, 20) and most <= 2


def test_chats() -> None:
    out = run_bench("bench.chats", "--burst", "30")
    assert "| probes answered after more than 2 s | 0" in out
    assert "| exit code after SIGTERM             | 0" in out


def test_db_faults() -> None:
    out = run_bench("bench.db_faults", "--fault", "lock", "--chats", "30", "--hold", "4")
    assert "| chats that got it once / twice+ / never    | 30 / 0 / 0" in out
    assert "| rows left sending / pending at the end     | 0 / 0" in out


def test_kill9_during_the_edits_of_a_correction() -> None:
    out = run_bench("bench.kill9", "--edits", "--chats", "20", "--points", "1")
    [row] = [line for line in out.splitlines() if line.startswith("| 50%")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2] == "0" and int(cells[5]) <= 2  # none left unedited, at most one edit twice
    assert "New messages sent by a correction (must be 0): 0" in out


def test_store_queries() -> None:
    out = run_bench("bench.store_queries", "--statements", "300", "--subscribers", "200",
                    "--runs", "3")  # fmt: skip
    assert "| due_deliveries(500), 200 pending" in out
    assert "| record_poll: 1 new statement, 200 outbox rows" in out


def test_memory() -> None:
    out = run_bench("bench.memory", "--chats", "20", "--idle", "1", "--window", "0")
    assert "| messages sent while sampled" in out and "20 of 20" in out
    assert "| exit code after SIGTERM               | 0" in out
