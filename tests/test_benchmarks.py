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

from redis_servers import redis_server_binary

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


@pytest.mark.slow
def test_lock_costs_smoke_run_prints_every_row() -> None:
    """``benchmarks/lock_costs.py --smoke`` times every implementation."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "lock_costs.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = result.stdout.splitlines()
    assert len(rows) == 5
    assert rows[0].startswith("OrderedStateMachine ")
    assert rows[0].endswith(" 1.00")
    assert rows[1].startswith("ThreadSafeOrderedStateMachine (RLock, flag) ")
    assert all(row.startswith("stand-in: ") for row in rows[2:])


@pytest.mark.slow
class TestRedisBenchmark:
    """``benchmarks/redis_bench.py --smoke``, against its own redis-server."""

    def test_smoke_run_prints_every_figure(self, tmp_path: Path) -> None:
        """Every figure of the Redis table is measured and written."""
        redis_server_binary()  # skips, or fails with REQUIRE_REDIS, without one
        result = subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "redis_bench.py"),
                "--smoke",
                "--out",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        table = (tmp_path / "redis.md").read_text()
        for figure in (
            "`PING` round trip",
            "hand-off, ours",
            "hand-off, hand-rolled pub/sub waiter",
            "hand-off, poller every 0.5 s",
            "advances per second",
            "memory per watched key",
            "1 pub/sub + ",
        ):
            assert figure in table
