"""A client connection whose lifecycle is an OrderedStateMachine, over real TCP.

An echo server listens on 127.0.0.1 (an ephemeral port). The client's
connection goes CONNECTING -> OPEN -> CLOSING -> CLOSED. Three tasks
coordinate through the machine alone:

- the sender writes only once the connection is OPEN (``wait_for(OPEN)``),
  and would get ``OrderedStateSkipped`` if the connection failed first;
- the closer closes the connection once the reply has arrived;
- the watcher awaits CLOSED.

Run it with ``python examples/connection_lifecycle.py``; it prints the
transitions and what each task sees, and exits 0.
"""

from __future__ import annotations

import asyncio
import enum
import sys

from ordered_statemachine import OrderedStateMachine, OrderedStateSkipped

TIMEOUT = 5.0  # no step of this program should take more than a moment


class Conn(enum.IntEnum):
    """The lifecycle of a client connection, in order."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class Client:
    """A line-based client whose ``lifecycle`` tells where the connection is."""

    def __init__(self) -> None:
        """Create a client that is not connected yet (CONNECTING)."""
        self.lifecycle = OrderedStateMachine(Conn.CONNECTING)
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None

    def _enter(self, state: Conn) -> None:
        print(f"transition: {self.lifecycle.state.name} -> {state.name}")
        self.lifecycle.state = state

    async def connect(self, host: str, port: int) -> None:
        """Open the connection; on failure, go straight to CLOSED."""
        try:
            self._reader, self._writer = await asyncio.open_connection(host, port)
        except OSError:
            self._enter(Conn.CLOSED)
            raise
        self._enter(Conn.OPEN)

    async def request(self, line: str) -> str:
        """Send ``line`` once the connection is OPEN and return the reply.

        Raises OrderedStateSkipped if the connection never became OPEN.
        """
        await self.lifecycle.wait_for(Conn.OPEN)
        assert self._reader is not None
        assert self._writer is not None
        self._writer.write(line.encode() + b"\n")
        await self._writer.drain()
        return (await self._reader.readline()).decode().rstrip("\n")

    async def close(self) -> None:
        """Close the connection: CLOSING, then CLOSED once the socket is shut."""
        self._enter(Conn.CLOSING)
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()
        self._enter(Conn.CLOSED)


async def echo_upper(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Serve one connection: reply to each line with the line in upper case."""
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def main() -> int:
    """Run the server and the three client tasks; return the exit status."""
    server = await asyncio.start_server(echo_upper, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"server listening on 127.0.0.1:{port}")
    client = Client()
    replied = asyncio.Event()

    async def sender() -> None:
        try:
            reply = await client.request("hello over loopback")
        except OrderedStateSkipped as exc:
            print(f"sender: gave up, {exc}")
        else:
            print(f"sender: got reply {reply!r}")
        replied.set()

    async def closer() -> None:
        await replied.wait()
        await client.close()

    async def watcher() -> None:
        await client.lifecycle.wait_for(Conn.CLOSED)
        print("watcher: connection is CLOSED")

    async with server:
        tasks = [
            asyncio.create_task(sender()),
            asyncio.create_task(closer()),
            asyncio.create_task(watcher()),
        ]
        await asyncio.sleep(0)  # the sender and the watcher are now waiting
        print(f"before connecting: {client.lifecycle!r}")
        await client.connect("127.0.0.1", port)
        await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    print(f"finally: {client.lifecycle!r}")
    return 0 if client.lifecycle.state is Conn.CLOSED else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
