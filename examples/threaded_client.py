"""A connection read by a plain thread, awaited by asyncio tasks and another thread.

The client's socket on 127.0.0.1 is read by a ``threading.Thread`` doing
blocking ``recv`` calls, as a C library's callback thread or a serial reader
would. That thread drives the lifecycle, a ``ThreadSafeOrderedStateMachine``
over an ``OrderedEnum``: CONNECTING -> OPEN -> CLOSING -> CLOSED. Two other
parties wait on it, without any other coordination:

- asyncio tasks on the main event loop: a sender that writes once the
  connection is OPEN (``await wait_for(OPEN)``), and a status task that prints
  every state (``states()``);
- a watcher in a third, plain thread, with blocking waits
  (``wait_for_blocking(OPEN)``, then ``wait_for_at_least_blocking(CLOSED)``).

It runs twice: against an echo server on 127.0.0.1 (an ephemeral port), and
against a port that refuses the connection, whose ``ConnectionRefusedError``
reaches both the asyncio sender and the blocked watcher as the cause of their
``OrderedStateSkipped``. Run it with ``python examples/threaded_client.py``;
it exits 0 when both runs end as expected. Each line says who printed it: the
threads run at once, so lines of different parties may interleave.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import sys
import threading

from ordered_statemachine import (
    OrderedEnum,
    OrderedStateSkipped,
    ThreadSafeOrderedStateMachine,
)

TIMEOUT = 5.0  # no step of this program should take more than a moment
_printing = threading.Lock()


def say(line: str) -> None:
    """Print ``line`` whole: print() from several threads can interleave lines."""
    with _printing:
        print(line, flush=True)


class Conn(OrderedEnum):
    """The lifecycle of the client connection, in order."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class ThreadedClient:
    """A line client whose socket a thread of its own reads, with blocking calls."""

    def __init__(self, port: int) -> None:
        """Prepare a client of 127.0.0.1:``port`` (CONNECTING, nothing started)."""
        self.lifecycle = ThreadSafeOrderedStateMachine(Conn.CONNECTING)
        self.lines: queue.Queue[str] = queue.Queue()
        self._port = port
        self._socket: socket.socket | None = None
        self._reader = threading.Thread(target=self._read, name="reader")

    def start(self) -> None:
        """Start the reader thread, which connects and then reads."""
        self._reader.start()

    def _read(self) -> None:
        """Connect, read lines and drive the lifecycle (in the reader thread)."""
        try:
            sock = socket.create_connection(("127.0.0.1", self._port), TIMEOUT)
        except OSError as exc:
            # Straight to CLOSED, saying why: every wait for OPEN learns it.
            self.lifecycle.advance(Conn.CLOSED, cause=exc.with_traceback(None))
            return
        self._socket = sock
        self.lifecycle.state = Conn.OPEN
        with sock:
            pending = b""
            while data := sock.recv(4096):  # blocking, in this thread
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self.lines.put(line.decode())
        self.lifecycle.state = Conn.CLOSED  # the server closed its end

    def send(self, line: str) -> None:
        """Send ``line`` (the connection is OPEN)."""
        assert self._socket is not None
        self._socket.sendall(line.encode() + b"\n")

    def close(self) -> None:
        """Stop sending: CLOSING; the reader sees the end and moves to CLOSED."""
        self.lifecycle.state = Conn.CLOSING
        assert self._socket is not None
        self._socket.shutdown(socket.SHUT_WR)

    def join(self) -> None:
        """Wait for the reader thread to end."""
        self._reader.join(TIMEOUT)


def echo_server(listener: socket.socket) -> None:
    """Serve one connection: reply to each line with the line in upper case."""
    connection, _ = listener.accept()
    with connection:
        while data := connection.recv(4096):
            connection.sendall(data.upper())


def watcher(lifecycle: ThreadSafeOrderedStateMachine[Conn]) -> None:
    """Block until the milestones, in a plain thread (no event loop there)."""
    try:
        lifecycle.wait_for_blocking(Conn.OPEN, timeout=TIMEOUT)
    except OrderedStateSkipped as exc:
        reason = type(exc.__cause__).__name__
        say(f"  watcher thread: gave up, {exc}, because of {reason}")
    else:
        say("  watcher thread: the connection is open")
    reached = lifecycle.wait_for_at_least_blocking(Conn.CLOSED, timeout=TIMEOUT)
    say(f"  watcher thread: the connection is {reached.value}")


async def session(port: int) -> Conn:
    """Run the client against ``port`` with every party; return the end state."""
    client = ThreadedClient(port)
    lifecycle = client.lifecycle

    async def status() -> None:
        async with lifecycle.states() as states:
            async for state in states:
                say(f"  status task: {state.value}")
                if state is Conn.CLOSED:
                    return

    async def sender() -> None:
        try:
            await lifecycle.wait_for(Conn.OPEN)
        except OrderedStateSkipped as exc:
            reason = type(exc.__cause__).__name__
            say(f"  sender task: gave up, {exc}, because of {reason}")
            return
        client.send("hello from the event loop")
        reply = await asyncio.to_thread(client.lines.get, timeout=TIMEOUT)
        say(f"  sender task: got reply {reply!r}")
        client.close()

    watching = threading.Thread(target=watcher, args=(lifecycle,), name="watcher")
    watching.start()
    tasks = [asyncio.create_task(job()) for job in (status, sender)]
    await asyncio.sleep(0)  # the tasks wait on the machine before it moves
    client.start()
    await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    await lifecycle.wait_for_at_least(Conn.CLOSED)
    client.join()
    watching.join(TIMEOUT)
    return lifecycle.state


async def main() -> int:
    """Run a session against an echo server, then one against a refused port."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        server = threading.Thread(target=echo_server, args=(listener,), daemon=True)
        server.start()
        say(f"echo server on 127.0.0.1:{port}")
        served = await session(port)
        server.join(TIMEOUT)

    # A bound socket that does not listen: connecting to it is refused.
    with socket.socket() as closed_door:
        closed_door.bind(("127.0.0.1", 0))
        port = closed_door.getsockname()[1]
        say(f"nothing listens on 127.0.0.1:{port}")
        refused = await session(port)

    return 0 if served is refused is Conn.CLOSED else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
