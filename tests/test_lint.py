"""ruff's linter and formatter accept the whole project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ruff from this environment in the project root."""
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
class TestRuff:
    """The configured rule set and the formatter."""

    def test_lint(self) -> None:
        """``ruff check`` reports nothing."""
        result = ruff("check", "--no-cache", ".")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_format(self) -> None:
        """``ruff format --check`` would change nothing."""
        result = ruff("format", "--check", "--no-cache", ".")
        assert result.returncode == 0, result.stdout + result.stderr
