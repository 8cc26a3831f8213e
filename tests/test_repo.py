"""The repository's own hygiene: lint and format are part of the test command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
RUFF = Path(sys.executable).parent / "ruff"  # installed with the test requirements


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff(args: list[str]) -> None:
    result = subprocess.run([str(RUFF), *args], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_state_folder_keeps_only_its_placeholder_in_git() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "state"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked == ["state/.gitkeep"]
