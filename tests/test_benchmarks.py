"""The benchmark suite runs (smoke mode: small sizes, single values).

No timing is asserted here: this machine is shared and noisy, and the
figures come from ``python benchmarks/run.py``, whose ratios compare
measurements from one run.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("pyperf") is None, reason="needs the bench extra"
)
class TestBenchmarkSuite:
    """``benchmarks/run.py --smoke``."""

    def test_smoke_run_prints_every_figure_and_plots(self, tmp_path: Path) -> None:
        """Every figure is measured, the table is written, the plot is drawn."""
        plot = tmp_path / "performance.png"
        result = subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "run.py"),
                "--smoke",
                "--out",
                str(tmp_path),
                "--plot",
                str(plot),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        table = (tmp_path / "table.md").read_text()
        for figure in (
            "assign a greater state, no waiters",
            "pending waiters, none due",
            "waiters, per woken waiter",
            "bytes retained per abandoned wait",
            "bytes per idle machine",
            "bytes per pending waiter, task included: wait_for",
            "bytes per pending waiter, task included: wait_for_at_least",
            "hand-off round trip",
            "garbage collector on",
            "cross-thread wake",
            "blocking wake",
            "hand-off between two threads",
            "thread-safe / plain machine",
        ):
            assert figure in table
        if importlib.util.find_spec("aioxmpp") is not None:
            assert "ours / aioxmpp" in table
        assert plot.read_bytes().startswith(b"\x89PNG")
