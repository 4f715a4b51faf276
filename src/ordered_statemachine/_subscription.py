"""`StateSubscription`: an async iterator over every state a machine enters."""

from __future__ import annotations

import enum
from asyncio import get_running_loop
from collections import deque
from typing import TYPE_CHECKING, Final, Generic

from typing_extensions import Self, final

from ._typing import StateT

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from types import TracebackType


class Nothing(enum.Enum):
    """The type of `NOTHING`."""

    NOTHING = enum.auto()


NOTHING: Final = Nothing.NOTHING
"""What `Feed.take` returns when no state is buffered."""


class Feed(Generic[StateT]):
    """The states a machine has entered and a subscriber has not yet consumed.

    The machine holds the feed while the subscription is open, appends the
    states it enters to the buffer and resolves the waiter; the subscription
    consumes through `take`, `park` and `unpark`. The feed never refers to
    either, so dropping the subscription frees everything. This feed is for
    one thread; `ThreadSafeOrderedStateMachine` uses a locked one.
    """

    __slots__ = ("buffer", "closed", "error", "waiter")

    def __init__(self, first: StateT) -> None:
        """Start a feed whose first state is ``first``."""
        self.buffer: deque[StateT] = deque((first,))
        self.closed: bool = False
        self.error: BaseException | None = None
        """Why the machine ended the feed, if it did (see `fail`)."""
        self.waiter: asyncio.Future[None] | None = None
        """The future the consumer awaits while the buffer is empty."""

    def take(self) -> StateT | Nothing:
        """Return the next state, or `NOTHING` if none is buffered yet.

        Raises StopAsyncIteration if the feed is closed, or the error it was
        failed with.
        """
        if self.buffer:
            return self.buffer.popleft()
        if self.closed:
            if self.error is not None:
                raise self.error
            raise StopAsyncIteration
        return NOTHING

    def fail(self, error: BaseException) -> None:
        """End the feed: its consumer gets ``error`` (the machine's history is lost)."""
        self.error = error
        self.close()

    def park(self) -> asyncio.Future[None]:
        """Return a future for the consumer to await until a state comes.

        Raises RuntimeError if another consumer is waiting already.
        """
        if self.waiter is not None:
            raise second_consumer()
        waiter = self.waiter = get_running_loop().create_future()
        return waiter

    def unpark(self) -> None:
        """Forget the consumer's future: it has stopped waiting."""
        self.waiter = None

    def close(self, *, wake: bool = True) -> None:
        """Drop the buffered states, and wake a waiting consumer to stop.

        ``wake=False`` when the consumer cannot be woken (its loop is closed).
        """
        self.closed = True
        self.buffer.clear()
        waiter = self.waiter
        if wake and waiter is not None and not waiter.done():
            waiter.set_result(None)


def second_consumer() -> RuntimeError:
    """Return the error for a second task waiting on one subscription."""
    return RuntimeError("another task is already waiting on this StateSubscription")


@final
class StateSubscription(Generic[StateT]):
    """An async iterator over the states an `OrderedStateMachine` enters.

    Returned by `OrderedStateMachine.states` and
    `ThreadSafeOrderedStateMachine.states`. It yields the state current when
    it was created, then every state the machine enters (by assignment,
    `~OrderedStateMachine.advance` or `~OrderedStateMachine.rewind`), in
    order, none skipped and none repeated, however slowly it is consumed: the
    states wait in a buffer, which grows while the consumer lags.

    It never ends by itself; leave the loop with ``break``. Closing it, with
    `aclose`, ``async with``, or by dropping the last reference to it (as
    ``break`` out of ``async for machine.states()`` does), unsubscribes it
    and drops its buffer. After that it is exhausted.

    One task at a time may wait on a subscription; several subscriptions of
    one machine are independent.
    """

    __slots__ = ("__weakref__", "_feed", "_unsubscribe")

    def __init__(self, feed: Feed[StateT], unsubscribe: Callable[[], None]) -> None:
        """Wrap ``feed``; ``unsubscribe`` detaches it from its machine.

        Created by `OrderedStateMachine.states`, not directly.
        """
        self._feed = feed
        self._unsubscribe: Callable[[], None] | None = unsubscribe

    def __repr__(self) -> str:
        """Show whether the subscription is open and how many states it holds."""
        feed = self._feed
        status = "closed" if feed.closed else "open"
        return (
            f"<ordered_statemachine.StateSubscription {status} "
            f"buffered={len(feed.buffer)}>"
        )

    def __aiter__(self) -> Self:
        """Return the subscription itself."""
        return self

    async def __anext__(self) -> StateT:
        """Return the next state, waiting for the machine to enter one.

        Raises:
            StopAsyncIteration: the subscription is closed (also when it is
                closed while this call waits).
            RuntimeError: another task is already waiting on this
                subscription.

        """
        feed = self._feed
        while True:
            state = feed.take()  # StopAsyncIteration once closed
            if state is not NOTHING:
                return state
            # Woken by a state (which a task that did not wait may take
            # first: then wait again) or by closing.
            waiter = feed.park()
            try:
                await waiter
            finally:
                feed.unpark()

    async def aclose(self) -> None:
        """Unsubscribe, drop the buffered states, and end the iteration.

        Idempotent. A task waiting in ``__anext__`` gets `StopAsyncIteration`.
        """
        self._close()

    async def __aenter__(self) -> Self:
        """Return the subscription; leaving the block closes it."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the subscription (see `aclose`)."""
        self._close()

    def __del__(self) -> None:
        """Unsubscribe a subscription that was dropped without being closed."""
        # getattr: __del__ also runs if __init__ failed before setting it.
        if getattr(self, "_unsubscribe", None) is not None:
            self._close()

    def _close(self) -> None:
        unsubscribe = self._unsubscribe
        if unsubscribe is None:
            return
        self._unsubscribe = None
        unsubscribe()
        self._feed.close()
