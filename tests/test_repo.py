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


def test_the_readme_shows_the_command_menu_in_every_language() -> None:
    """The README's menu table is the command table's help text, word for word."""
    from bot import i18n
    from bot.command_table import COMMANDS

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for command in COMMANDS:
        row = " | ".join(command.help[lang] for lang in i18n.LANGUAGES)
        assert f"| `/{command.name}` | {row} |" in readme, command.name
