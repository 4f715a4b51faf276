"""Helpers for stepping the event loop deterministically in tests."""

from __future__ import annotations

import asyncio
import enum
import importlib.util
import os
import threading
import time
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine
    from concurrent.futures import Future

T = TypeVar("T")

TIMEOUT = 5.0
"""Upper bound for any wait in a test: only a bug makes a wait reach it."""


def _uvloop() -> asyncio.AbstractEventLoop:
    import uvloop  # noqa: PLC0415 (only where installed)

    loop = uvloop.new_event_loop()
    # asyncio's loops read PYTHONASYNCIODEBUG when created; uvloop's do not.
    loop.set_debug(bool(os.environ.get("PYTHONASYNCIODEBUG")))
    return loop


LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop
}
"""The event loop implementations every async test runs on."""
if importlib.util.find_spec("uvloop") is not None:
    LOOP_FACTORIES["uvloop"] = _uvloop


def run_on(loop_name: str, awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to completion on a new loop from `LOOP_FACTORIES`."""
    loop = LOOP_FACTORIES[loop_name]()
    try:
        return loop.run_until_complete(awaitable)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class Conn(enum.IntEnum):
    """The lifecycle used throughout the tests."""

    READY = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


async def steps(n: int = 1) -> None:
    """Let the event loop run ``n`` iterations."""
    for _ in range(n):
        await asyncio.sleep(0)


async def bounded(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``, failing after `TIMEOUT` seconds instead of hanging."""
    return await asyncio.wait_for(awaitable, TIMEOUT)


class OnlyLtEq:
    """A state type that defines ``<`` and ``==`` and refuses every other comparison.

    Weakly referenceable, so that tests can see whether the machine holds one.
    """

    __slots__ = ("__weakref__", "value")

    def __init__(self, value: int) -> None:
        self.value = value

    def __lt__(self, other: OnlyLtEq) -> bool:
        return self.value < other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OnlyLtEq) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"OnlyLtEq({self.value})"

    def __gt__(self, other: OnlyLtEq) -> bool:
        raise _refused()

    def __le__(self, other: OnlyLtEq) -> bool:
        raise _refused()

    def __ge__(self, other: OnlyLtEq) -> bool:
        raise _refused()

    def __ne__(self, other: object) -> bool:
        raise _refused()


def _refused() -> AssertionError:
    return AssertionError("the machine must only use < and ==")


class LoopThread:
    """An event loop running in a thread of its own, in asyncio's debug mode.

    ``submit`` runs a coroutine there and returns a `concurrent.futures.Future`
    of its result; ``close`` stops the loop, closes it and joins the thread.
    """

    def __init__(self, loop_name: str) -> None:
        self.loop = LOOP_FACTORIES[loop_name]()
        self.loop.set_debug(True)
        self.thread = threading.Thread(
            target=self._run, name=f"{loop_name} loop", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, awaitable: Coroutine[object, object, T]) -> Future[T]:
        """Run ``awaitable`` on the loop; return a future of its outcome."""
        return asyncio.run_coroutine_threadsafe(awaitable, self.loop)

    def close(self) -> None:
        """Stop and close the loop, cancelling what still runs on it."""

        async def cancel_the_rest() -> None:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        if self.loop.is_running():
            self.submit(cancel_the_rest()).result(TIMEOUT)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the loop thread did not stop"
        self.loop.close()


def bounded_call(function: Callable[[], T]) -> T:
    """Return ``function()``, called in a thread of its own; fail after `TIMEOUT`.

    For a blocking call that should return (or raise) at once or after a
    short timeout of its own: a bug that makes it block fails the test
    instead of hanging it. Re-raises what the call raised.
    """
    outcome: list[T] = []
    raised: list[BaseException] = []

    def call() -> None:
        try:
            outcome.append(function())
        except BaseException as error:  # noqa: BLE001 (re-raised below)
            raised.append(error)

    # A daemon: a call that never returns must not keep the process alive.
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive(), "the call did not return"
    if raised:
        raise raised[0]
    return outcome[0]


def until_blocking(condition: Callable[[], bool]) -> None:
    """Wait in this thread until ``condition()`` holds, failing after `TIMEOUT`.

    For what another thread does at a moment no event marks: a waiter that
    has registered with a machine, say.
    """
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.001)


async def until(condition: Callable[[], bool]) -> None:
    """Step the loop until ``condition()`` holds, failing after `TIMEOUT`."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        # Another thread's progress is awaited: a short sleep, bounded above.
        await asyncio.sleep(0.001)
