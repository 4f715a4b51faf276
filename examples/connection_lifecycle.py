"""A client connection whose lifecycle is an OrderedStateMachine, over real TCP.

The connection goes CONNECTING -> OPEN -> CLOSING -> CLOSED (an OrderedEnum,
so its values can be the words printed in logs). Four tasks coordinate through
the machine alone:

- the sender writes only once the connection is OPEN (``wait_for(OPEN)``),
  and gets ``OrderedStateSkipped``, caused by the connection error, if the
  connection fails first;
- the closer closes the connection once the sender is done;
- the watcher awaits CLOSED;
- the status task prints every state through ``states()``.

It runs twice: against an echo server listening on 127.0.0.1 (an ephemeral
port), and against a port that refuses connections. Run it with
``python examples/connection_lifecycle.py``; it exits 0 when both runs end as
expected.
"""

from __future__ import annotations

import asyncio
import socket
import sys

from ordered_statemachine import OrderedEnum, OrderedStateMachine, OrderedStateSkipped

TIMEOUT = 5.0  # no step of this program should take more than a moment


class Conn(OrderedEnum):
    """The lifecycle of a client connection, in order."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Client:
    """A line-based client whose ``lifecycle`` tells where the connection is."""

    def __init__(self) -> None:
        """Create a client that is not connected yet (CONNECTING)."""
        self.lifecycle = OrderedStateMachine(Conn.CONNECTING)
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None

    async def connect(self, host: str, port: int) -> None:
        """Open the connection; on failure go straight to CLOSED, saying why."""
        try:
            self._reader, self._writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            self.lifecycle.advance(Conn.CLOSED, cause=exc)
            raise
        self.lifecycle.state = Conn.OPEN

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
        if self.lifecycle.state is Conn.CLOSED:
            return
        self.lifecycle.state = Conn.CLOSING
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()
        self.lifecycle.state = Conn.CLOSED


async def echo_upper(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Serve one connection: reply to each line with the line in upper case."""
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def session(port: int) -> Conn:
    """Connect to ``port`` on 127.0.0.1 with the four tasks; return the end state."""
    client = Client()
    sent = asyncio.Event()

    async def status() -> None:
        # The block unsubscribes when it is left, however it is left.
        async with client.lifecycle.states() as states:
            async for state in states:
                print(f"  status: {state.value}")
                if state is Conn.CLOSED:
                    break

    async def sender() -> None:
        try:
            reply = await client.request("hello over loopback")
        except OrderedStateSkipped as exc:
            reason = type(exc.__cause__).__name__
            print(f"  sender: gave up, {exc}, because of {reason}")
        else:
            print(f"  sender: got reply {reply!r}")
        sent.set()

    async def closer() -> None:
        await sent.wait()
        await client.close()

    async def watcher() -> None:
        await client.lifecycle.wait_for_at_least(Conn.CLOSED)
        print("  watcher: connection is closed")

    tasks = [asyncio.create_task(job()) for job in (status, sender, closer, watcher)]
    await asyncio.sleep(0)  # every task is now waiting on the machine
    try:
        await client.connect("127.0.0.1", port)
    except OSError as exc:
        print(f"  connect: {type(exc).__name__}")
    await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    return client.lifecycle.state


async def main() -> int:
    """Run a session against an echo server, then one against a refused port."""
    server = await asyncio.start_server(echo_upper, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        print(f"echo server on 127.0.0.1:{port}")
        served = await session(port)

    # A bound socket that does not listen: connecting to it is refused.
    with socket.socket() as closed_door:
        closed_door.bind(("127.0.0.1", 0))
        port = closed_door.getsockname()[1]
        print(f"nothing listens on 127.0.0.1:{port}")
        refused = await session(port)

    return 0 if served is refused is Conn.CLOSED else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
