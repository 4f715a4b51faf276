"""`StateSubscription`: an async iterator over every state a machine enters."""

from __future__ import annotations

from asyncio import get_running_loop
from collections import deque
from typing import TYPE_CHECKING, Generic

from typing_extensions import Self, final

from ._typing import StateT

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from types import TracebackType


class Feed(Generic[StateT]):
    """The states a machine has entered and a subscriber has not yet consumed.

    The machine holds the feed while the subscription is open, appends the
    states it enters to the buffer and resolves the waiter; the subscription
    consumes from it. The feed never refers to either, so
    dropping the subscription frees everything.
    """

    __slots__ = ("buffer", "closed", "waiter")

    def __init__(self, first: StateT) -> None:
        """Start a feed whose first state is ``first``."""
        self.buffer: deque[StateT] = deque((first,))
        self.closed: bool = False
        self.waiter: asyncio.Future[None] | None = None
        """The future the consumer awaits while the buffer is empty."""

    def wake(self) -> None:
        """Resume the consumer if it waits."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        """Drop the buffered states; the consumer gets no more."""
        self.closed = True
        self.buffer.clear()


@final
class StateSubscription(Generic[StateT]):
    """An async iterator over the states an `OrderedStateMachine` enters.

    Returned by `OrderedStateMachine.states`. It yields the state current when
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
        status = "closed" if self._feed.closed else "open"
        return (
            f"<ordered_statemachine.StateSubscription {status} "
            f"buffered={len(self._feed.buffer)}>"
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
        buffer = feed.buffer
        if not buffer:
            if feed.closed:
                raise StopAsyncIteration
            if feed.waiter is not None:
                msg = "another task is already waiting on this StateSubscription"
                raise RuntimeError(msg)
            feed.waiter = get_running_loop().create_future()
            try:
                await feed.waiter
            finally:
                feed.waiter = None
            if not buffer:
                # Only closing wakes a consumer without a state to give it.
                raise StopAsyncIteration
        return buffer.popleft()

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
        feed = self._feed
        feed.close()
        feed.wake()
