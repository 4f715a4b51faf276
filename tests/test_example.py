"""The example program runs and shows the library doing its job over TCP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = (
    Path(__file__).resolve().parent.parent / "examples" / "connection_lifecycle.py"
)


class TestConnectionLifecycleExample:
    """``examples/connection_lifecycle.py``."""

    def test_runs_over_loopback_and_exits_zero(self) -> None:
        """The sender waits for OPEN, the closer closes, the watcher sees CLOSED."""
        result = subprocess.run(
            [sys.executable, str(EXAMPLE)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith("server listening on 127.0.0.1:")
        assert "waiters=2" in lines[1]  # sender and watcher wait before connecting
        assert lines[2:7] == [
            "transition: CONNECTING -> OPEN",
            "sender: got reply 'HELLO OVER LOOPBACK'",
            "transition: OPEN -> CLOSING",
            "transition: CLOSING -> CLOSED",
            "watcher: connection is CLOSED",
        ]
        assert "state=<Conn.CLOSED: 3> waiters=0" in lines[7]
        assert result.stderr == ""
