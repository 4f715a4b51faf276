"""Run mypy and pyright over the project, typing contract files included.

The contract files in ``tests/typing`` mark every error a checker must report;
a marker that suppresses nothing is itself an error. So a clean run of both
checkers proves both halves of the contract: what is inferred, and what is
rejected.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"

pytestmark = pytest.mark.typecheck


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    """Run mypy with the project's configuration for the running Python."""
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--python-version", VERSION, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def pyright(*args: str) -> subprocess.CompletedProcess[str]:
    """Run basedpyright with the project's configuration for the running Python."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "basedpyright",
            "--pythonpath",
            sys.executable,
            "--pythonversion",
            VERSION,
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


class TestCheckers:
    """Both checkers pass over the whole project, strictly."""

    def test_mypy_strict(self) -> None:
        """Mypy --strict: src, tests (with the typing contracts) and examples."""
        result = mypy()
        assert result.returncode == 0, result.stdout + result.stderr
        # Every Python file under the configured roots was checked.
        assert f"in {len(_configured_files())} source files" in result.stdout

    def test_pyright_strict(self) -> None:
        """Pyright (basedpyright, strict): the same files."""
        result = pyright()
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 errors" in result.stdout


class TestHarness:
    """The checks above can fail: an unmarked error makes each checker fail."""

    @pytest.fixture
    def violation(self, tmp_path: Path) -> Path:
        """A file with a misuse that carries no marker."""
        path = tmp_path / "_violation_probe.py"
        path.write_text(
            textwrap.dedent(
                """\
                from ordered_statemachine import OrderedStateMachine

                OrderedStateMachine(object())
                """
            )
        )
        return path

    def test_mypy_reports_an_unmarked_violation(self, violation: Path) -> None:
        """Mypy fails on the probe file."""
        result = mypy(str(violation))
        assert result.returncode == 1
        assert "_violation_probe.py:3" in result.stdout

    def test_pyright_reports_an_unmarked_violation(self, violation: Path) -> None:
        """Pyright fails on the probe file."""
        result = pyright(str(violation))
        assert result.returncode == 1
        assert "_violation_probe.py:3" in result.stdout


def _configured_files() -> list[Path]:
    """The Python files under the roots listed in ``mypy.ini``'s ``files``."""
    config = (ROOT / "mypy.ini").read_text()
    line = next(x for x in config.splitlines() if x.startswith("files"))
    roots = [part.strip() for part in line.split("=", 1)[1].split(",")]
    assert "tests" in roots
    return [path for root in roots for path in (ROOT / root).rglob("*.py")]
