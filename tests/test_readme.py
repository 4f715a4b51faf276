"""The README's Python examples run, in order, and print what they claim."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    """The README's fenced ``python`` code blocks, in order."""
    return re.findall(
        r"^```python\n(.*?)^```$", README.read_text(), re.MULTILINE | re.DOTALL
    )


class TestReadme:
    """README.md."""

    def test_python_examples_run(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Every python block runs (sharing one namespace, as a reader would)."""
        blocks = python_blocks()
        assert len(blocks) >= 2
        namespace: dict[str, object] = {"__name__": "readme"}
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
        out = capsys.readouterr().out.splitlines()
        assert out == [
            "OrderedStateSkipped(<Conn.CLOSING: 2>)",
            "not open in time",
            (
                "state Link.OPEN has been skipped, because: "
                "ConnectionRefusedError('127.0.0.1:1 refused the connection')"
            ),
            "status: connecting",
            "status: open",
            "status: closed",
            "not comparable",
        ]
