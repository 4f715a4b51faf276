"""Real redis-server processes for the tests: started, killed, restarted, stopped.

Each server runs from Debian's ``redis-server`` on a free port of 127.0.0.1,
in a folder of its own, and only 127.0.0.1 is ever a target. Without the
binary the tests that need one are skipped, unless ``REQUIRE_REDIS`` is set
(CI sets it), in which case they fail.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    import redis.asyncio

START_TIMEOUT = 10.0


def redis_server_binary() -> str:
    """The path of redis-server; skip (or fail, with REQUIRE_REDIS) without it."""
    found = shutil.which("redis-server")
    if found is None:
        if os.environ.get("REQUIRE_REDIS"):
            pytest.fail("REQUIRE_REDIS is set but redis-server is not installed")
        pytest.skip(
            "redis-server is not installed (Debian: apt-get install redis-server)"
        )
    return found


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on, now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port() -> int:
    """A free port of 127.0.0.1 whose cluster bus port (10,000 above) is free too."""
    for _ in range(1000):
        port = free_port()
        if port > 55535:
            port -= 30000
        if _is_free(port) and _is_free(port + 10000):
            return port
    msg = "no free pair of ports for a cluster node"
    raise RuntimeError(msg)


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-LOADING"))
    except OSError:
        return False


class RedisServer:
    """One redis-server on 127.0.0.1, in ``directory``."""

    def __init__(
        self,
        directory: Path,
        *,
        appendonly: bool = False,
        cluster: bool = False,
        save: str = "",
    ) -> None:
        self.binary = redis_server_binary()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_cluster_port() if cluster else free_port()
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {directory}",
            f'save "{save}"' if not save else f"save {save}",
            f"appendonly {'yes' if appendonly else 'no'}",
            "appendfsync always",
            "enable-debug-command yes",
            "daemonize no",
            "loglevel warning",
            f"logfile {directory / 'redis.log'}",
        ]
        if cluster:
            lines += [
                "cluster-enabled yes",
                f"cluster-config-file {directory / 'nodes.conf'}",
                "cluster-node-timeout 5000",
            ]
        self.config = directory / "redis.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None
        self.clients: list[redis.asyncio.Redis] = []

    def client(self) -> redis.asyncio.Redis:
        """A new client of this server, on 127.0.0.1, that connects within 1 s.

        `aclose_clients` closes it (the fixtures call it, even on a failure:
        a connection left open makes uvloop hang as its loop closes).
        """
        import redis.asyncio  # noqa: PLC0415 (the redis extra, for its tests)

        client = redis.asyncio.Redis(
            host="127.0.0.1", port=self.port, socket_connect_timeout=1
        )
        self.clients.append(client)
        return client

    async def aclose_clients(self) -> None:
        """Close every client made by `client`."""
        clients, self.clients = self.clients, []
        for client in clients:
            await untyped(client).aclose()

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self.process = subprocess.Popen(
            [self.binary, str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not _ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "redis.log").read_text(errors="replace")
                msg = f"redis-server did not start on port {self.port}:\n{log}"
                raise RuntimeError(msg)
            time.sleep(0.02)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): nothing is flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(START_TIMEOUT)
        self.process = None

    def stop(self) -> None:
        """Stop the server, if it runs."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(START_TIMEOUT)
        self.process = None


def start_cluster(directory: Path, masters: int = 3) -> list[RedisServer]:
    """Start a cluster of ``masters`` masters (no replicas), all slots assigned."""
    servers = [
        RedisServer(directory / f"node{i}", cluster=True) for i in range(masters)
    ]
    for server in servers:
        server.start()
    redis_cli = shutil.which("redis-cli")
    assert redis_cli is not None, "redis-cli comes with redis-server (redis-tools)"
    subprocess.run(
        [
            redis_cli,
            "--cluster",
            "create",
            *(f"127.0.0.1:{server.port}" for server in servers),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + 30
    for server in servers:
        while True:
            info = subprocess.run(
                [redis_cli, "-p", str(server.port), "cluster", "info"],
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            ).stdout
            if "cluster_state:ok" in info:
                break
            assert time.monotonic() < deadline, info
            time.sleep(0.1)
    return servers


def untyped(client: object) -> Any:  # noqa: ANN401 (that is the point)
    """``client``, for the calls redis-py leaves untyped (execute_command, save)."""
    return client


def late_sync_client(server: RedisServer) -> tuple[Any, asyncio.Event, asyncio.Event]:
    """A client of ``server`` whose replies to a hub's catch-up read come late.

    Returns the client and two events. While ``release`` is clear (it starts
    set), ``arrived`` is set when a catch-up's reply has come from the server
    (which ran the read at that instant), and the reply is handed to the hub
    only once the caller sets ``release``. Only the client is delayed; the
    server is the real one.
    """
    import redis.asyncio  # noqa: PLC0415 (the redis extra, for its tests)

    from ordered_statemachine.redis._scripts import SYNC  # noqa: PLC0415

    sync_sha = hashlib.sha1(SYNC.encode()).hexdigest()  # noqa: S324 (Redis's)
    arrived, release = asyncio.Event(), asyncio.Event()
    release.set()

    class LateSync(redis.asyncio.Redis):
        async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:  # noqa: ANN401
            reply = await super().evalsha(sha, numkeys, *keys_and_args)
            if sha == sync_sha and not release.is_set():
                arrived.set()
                await release.wait()
            return reply

    client = LateSync(host="127.0.0.1", port=server.port, socket_connect_timeout=1)
    return client, arrived, release
