"""The example program runs and shows the library doing its job over TCP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = (
    Path(__file__).resolve().parent.parent / "examples" / "connection_lifecycle.py"
)


def run_example(path: Path, *, dev: bool = True) -> str:
    """Run the example program ``path``; return what it printed.

    It must exit 0 within 60 s and print nothing on stderr. With ``dev``, it
    runs in Python's development mode with asyncio's debug mode on, which
    report what a program gets wrong about tasks and loops.
    """
    options = ["-X", "dev"] if dev else []
    debug = {"PYTHONASYNCIODEBUG": "1"} if dev else {}
    result = subprocess.run(
        [sys.executable, *options, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **debug},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


@pytest.mark.slow
class TestConnectionLifecycleExample:
    """``examples/connection_lifecycle.py``."""

    def test_runs_over_loopback_and_exits_zero(self) -> None:
        """Both sessions print what the contract makes them see, and it exits 0."""
        output = run_example(EXAMPLE, dev=False)
        served, refused = output.split("nothing listens on 127.0.0.1:")
        assert served.startswith("echo server on 127.0.0.1:")
        # The status task sees every state, in order, from states().
        statuses = ["connecting", "open", "closing", "closed"]
        assert [line[10:] for line in served.splitlines() if "status:" in line] == (
            statuses
        )
        assert "  sender: got reply 'HELLO OVER LOOPBACK'" in served
        assert "  watcher: connection is closed" in served
        # The refused connection goes straight to CLOSED; the sender's wait
        # for OPEN fails, caused by the connection error.
        assert [line[10:] for line in refused.splitlines() if "status:" in line] == [
            "connecting",
            "closed",
        ]
        assert "  connect: ConnectionRefusedError" in refused
        assert (
            "  sender: gave up, state Conn.OPEN has been skipped, "
            "because of ConnectionRefusedError"
        ) in refused
        assert "  watcher: connection is closed" in refused


THREADED = EXAMPLE.parent / "threaded_client.py"


def said_by(output: str, party: str) -> list[str]:
    """What ``party`` printed, in its order (parties run in different threads)."""
    prefix = f"  {party}: "
    return [
        line[len(prefix) :] for line in output.splitlines() if line.startswith(prefix)
    ]


@pytest.mark.slow
class TestThreadedClientExample:
    """``examples/threaded_client.py``."""

    def test_runs_over_loopback_and_exits_zero(self) -> None:
        """The reader thread drives; the tasks and the blocked thread see it all."""
        served, refused = run_example(THREADED).split("nothing listens on 127.0.0.1:")
        assert served.startswith("echo server on 127.0.0.1:")
        assert said_by(served, "status task") == [
            "connecting",
            "open",
            "closing",
            "closed",
        ]
        assert said_by(served, "sender task") == [
            "got reply 'HELLO FROM THE EVENT LOOP'"
        ]
        assert said_by(served, "watcher thread") == [
            "the connection is open",
            "the connection is closed",
        ]
        # Refused: the cause reaches the asyncio task and the blocked thread.
        assert said_by(refused, "status task") == ["connecting", "closed"]
        gave_up = (
            "gave up, state Conn.OPEN has been skipped, "
            "because of ConnectionRefusedError"
        )
        assert said_by(refused, "sender task") == [gave_up]
        assert said_by(refused, "watcher thread") == [
            gave_up,
            "the connection is closed",
        ]


REDIS_JOBS = EXAMPLE.parent / "redis_jobs.py"


@pytest.mark.slow
class TestRedisJobsExample:
    """``examples/redis_jobs.py``, with the redis-server it starts itself."""

    def test_worker_process_drives_the_web_process_sees_it_all(self) -> None:
        """Every state of each job, DONE awaited, the refusal's cause delivered."""
        from redis_servers import redis_server_binary  # noqa: PLC0415

        redis_server_binary()  # skips, or fails with REQUIRE_REDIS, without one
        lines = run_example(REDIS_JOBS).splitlines()
        assert lines[0].startswith("redis-server on 127.0.0.1:")
        first = [line for line in lines if line.startswith("  job:1 ")]
        second = [line for line in lines if line.startswith("  job:2 ")]
        # The waits and the state printer run at once: their lines interleave.
        assert sorted(first) == sorted(
            [
                "  job:1 is queued",
                "  job:1 is running",
                "  job:1 is done",
                "  job:1 has been done",
            ]
        )
        assert [line for line in first if " is " in line] == [
            "  job:1 is queued",
            "  job:1 is running",
            "  job:1 is done",
        ]
        assert sorted(second) == sorted(
            [
                "  job:2 is queued",
                "  job:2 is refused",
                (
                    "  job:2 will never be done: "
                    "__main__.QuotaExceeded: tenant 7 is over its quota"
                ),
            ]
        )
