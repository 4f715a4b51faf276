"""The README's Python examples run, in order, and print what it shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


class TestReadme:
    """README.md."""

    def test_python_examples_print_what_the_readme_shows(self) -> None:
        """Every python block runs (in one namespace, as a reader would run them).

        The output is exactly the README's ``text`` blocks, in order.
        """
        blocks = FENCE.findall(README.read_text())
        code = [body for language, body in blocks if language == "python"]
        shown = [body for language, body in blocks if language == "text"]
        assert code
        assert shown
        namespace: dict[str, object] = {"__name__": "readme"}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            for block in code:
                exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
        assert out.getvalue() == "".join(shown)
