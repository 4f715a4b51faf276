"""`OrderedStateMachine`: a state that only moves forward, and waits on it."""

from __future__ import annotations

import warnings
from asyncio import get_running_loop
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, cast, overload

from typing_extensions import deprecated, final

from ._exceptions import OrderedStateSkipped
from ._queue import AT_LEAST, EXACT, SKIPPED, Waiter, WaiterQueue
from ._typing import StateT

if TYPE_CHECKING:
    import asyncio

_NO_LOOP: Final = object()


def _backwards(new_state: object, current: object) -> ValueError:
    return ValueError(
        f"cannot rewind OrderedStateMachine from {current!r} to {new_state!r}: "
        "assigning a lesser state is not allowed (use rewind() to move back)"
    )


def _unordered(new_state: object, current: object) -> TypeError:
    return TypeError(
        f"states must be ordered, but {new_state!r} is neither less than, "
        f"equal to nor greater than the current state {current!r}"
    )


@final
@dataclass(frozen=True)
class MachineStatistics(Generic[StateT]):
    """A snapshot of an `OrderedStateMachine`, for debugging and tests."""

    state: StateT
    """The state at the time of the snapshot."""
    waiters: int
    """Pending calls of `~OrderedStateMachine.wait_for` and
    `~OrderedStateMachine.wait_for_at_least` (cancelled ones excluded)."""


@final
class OrderedStateMachine(Generic[StateT]):
    """A state from a totally ordered type that only moves forward.

    ``initial_state`` is the state of the new machine. States are compared
    with ``<`` and ``==`` only (never ``>``, ``<=`` or ``>=``), and the states
    of one machine must form a total order: for any two of them exactly one of
    ``a < b``, ``a == b``, ``b < a`` holds. ``IntEnum`` members, ``int``,
    ``float`` (except NaN), ``str`` and tuples of such all qualify.

    No event loop is needed to create a machine, and none is stored: each
    waiter uses the loop it runs in. A machine is not thread-safe; use it from
    one thread at a time, like the rest of asyncio.

    The machine wakes waiters in the order they started waiting (FIFO): all
    the waiters that one transition resolves resume in the order of their
    calls of `wait_for` and `wait_for_at_least`, whatever their targets.

    Raises:
        TypeError: ``initial_state`` fails the sanity check of the ordering
            contract: ``initial_state < initial_state`` must be false and
            ``initial_state == initial_state`` true, and neither may raise.
            This rejects plain `enum.Enum` members, ``None``, ``object()``,
            dicts, complex numbers and NaN. The message says ``states must be
            ordered``.

    """

    # An idle machine is three pointers and a weak reference slot: the waiter
    # queue is created on first use.
    __slots__ = ("__weakref__", "_queue", "_state", "_threshold")

    @overload
    def __init__(self, initial_state: StateT) -> None: ...
    @overload
    @deprecated("the loop argument has no effect: each waiter uses the loop it runs in")
    def __init__(
        self,
        initial_state: StateT,
        *,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None: ...
    def __init__(self, initial_state: StateT, *, loop: object = _NO_LOOP) -> None:
        """Create a machine in ``initial_state``; see the class documentation.

        ``loop`` is accepted for code written against ``aioxmpp.statemachine``;
        it has no effect, and passing it (even as None) emits a
        `DeprecationWarning`.
        """
        if loop is not _NO_LOOP:
            warnings.warn(
                "the loop argument of OrderedStateMachine has no effect and is "
                "deprecated: each waiter uses the event loop it runs in",
                DeprecationWarning,
                stacklevel=2,
            )
        try:
            # The sanity check of the ordering contract, as in aioxmpp.
            ordered = not (initial_state < initial_state) and bool(  # noqa: PLR0124
                initial_state == initial_state  # noqa: PLR0124
            )
        except Exception as exc:
            msg = (
                f"states must be ordered, but comparing {initial_state!r} with "
                f"itself raised {type(exc).__name__}: {exc}"
            )
            raise TypeError(msg) from exc
        if not ordered:
            msg = (
                f"states must be ordered, but {initial_state!r} is not equal to "
                "itself, or is less than itself"
            )
            raise TypeError(msg)
        self._state = initial_state
        # None, or the least state whose assignment has more to do than store
        # itself: the least queued target. Every state less than it can be
        # stored without looking at the queue.
        self._threshold: StateT | None = None
        self._queue: WaiterQueue[StateT] | None = None

    def __repr__(self) -> str:
        """Show the class, the current state and the number of waiters."""
        waiters = self._queue.live if self._queue is not None else 0
        return f"<{_qualname(self)} state={self._state!r} waiters={waiters}>"

    def statistics(self) -> MachineStatistics[StateT]:
        """Return a snapshot of the state and the number of pending waiters."""
        waiters = self._queue.live if self._queue is not None else 0
        return MachineStatistics(self._state, waiters)

    @property
    def state(self) -> StateT:
        """The current state. Assigning it moves the machine forward.

        Assigning a state greater than the current one stores it and, before
        the assignment returns, resolves every waiter it decides:
        ``wait_for_at_least(t)`` waiters with ``not (new < t)`` succeed with
        the new state, ``wait_for(t)`` waiters with ``t == new`` succeed, and
        ``wait_for(t)`` waiters with ``t < new`` fail with
        `OrderedStateSkipped`. A state that is entered and left again before
        the waiters run is therefore still seen by them. They resume in the
        order they started waiting.

        Assigning a state equal to the current one does nothing.

        Raises:
            ValueError: the new state is less than the current one; the
                message starts ``cannot rewind OrderedStateMachine`` and names
                both states. Use `rewind` to move back.
            TypeError: the new state cannot be compared with the current
                state or with a pending waiter's target (the comparison's own
                `TypeError`), or it is neither less than, equal to nor greater
                than the current state (NaN).

        The machine and its waiters are unchanged when the assignment raises.

        """
        return self._state

    @state.setter
    def state(self, new_state: StateT) -> None:
        current = self._state
        if new_state < current:
            raise _backwards(new_state, current)
        if current < new_state:
            threshold = self._threshold
            if threshold is None or new_state < threshold:
                self._state = new_state
            else:
                self._advance_and_wake(new_state)
        elif not new_state == current:
            raise _unordered(new_state, current)

    def rewind(self, new_state: StateT) -> None:
        """Move the machine back to ``new_state``, the explicit exception to the rule.

        A state equal to the current one is allowed and changes nothing. Pending
        waiters are left as they are: they all await states greater than the
        current one, so none can be due after moving back. Waits that already
        failed with `OrderedStateSkipped` stay failed.

        Raises:
            ValueError: ``new_state`` is greater than the current state; the
                message starts ``cannot forward using rewind``.
            TypeError: ``new_state`` cannot be compared with the current state,
                or is neither less than, equal to nor greater than it.

        The machine is unchanged when ``rewind`` raises.

        """
        current = self._state
        if current < new_state:
            msg = (
                f"cannot forward using rewind (from {current!r} to "
                f"{new_state!r}): assign the state to move forward"
            )
            raise ValueError(msg)
        if new_state < current:
            self._state = new_state
        elif not new_state == current:
            raise _unordered(new_state, current)

    async def wait_for(self, state: StateT) -> None:
        """Wait until the machine enters exactly ``state``.

        Returns at once if the machine is in ``state``. Otherwise waits until
        an assignment enters ``state`` (even if a later one leaves it before
        this coroutine resumes).

        Cancellation (including `asyncio.timeout` and `asyncio.wait_for`)
        removes the waiter from the machine and propagates; it is never
        swallowed.

        Raises:
            OrderedStateSkipped: the machine is past ``state`` already, or an
                assignment moves it past ``state`` without entering it.
            TypeError: ``state`` cannot be compared with the current state or
                with a pending waiter's target, or is neither less than, equal
                to nor greater than the current state (nothing is registered).

        """
        current = self._state
        if current < state:
            waiter = Waiter(get_running_loop().create_future(), EXACT, state)
            future = self._enqueue(waiter)
            try:
                await future
            except BaseException:
                self._abandon(waiter, future)
                raise
        elif state < current:
            raise OrderedStateSkipped(state)
        elif not state == current:
            raise _unordered(state, current)

    async def wait_for_at_least(self, state: StateT) -> StateT:
        """Wait until the machine's state is ``state`` or greater; return it.

        Returns the current state at once if it is not less than ``state``.
        Otherwise waits, and returns the state whose assignment satisfied the
        wait, even if the machine has moved on by the time this coroutine
        resumes.

        Cancellation (including `asyncio.timeout` and `asyncio.wait_for`)
        removes the waiter from the machine and propagates; it is never
        swallowed.

        Raises:
            TypeError: ``state`` cannot be compared with the current state or
                with a pending waiter's target, or is neither less than, equal
                to nor greater than the current state (nothing is registered).

        """
        current = self._state
        if current < state:
            waiter = Waiter(get_running_loop().create_future(), AT_LEAST, state)
            future = self._enqueue(waiter)
            try:
                reached = await future
            except BaseException:
                self._abandon(waiter, future)
                raise
            # An AT_LEAST waiter's future only ever holds a state.
            return cast("StateT", reached)
        if not (state < current or state == current):
            raise _unordered(state, current)
        return current

    # The two waits share these helpers rather than a helper coroutine: a
    # coroutine per wait costs more than the rest of the bookkeeping.
    def _enqueue(self, waiter: Waiter[StateT]) -> asyncio.Future[StateT | None]:
        """Queue ``waiter`` (its target is greater than the state); return its future.

        Raises what comparing the targets raises, with nothing queued.
        """
        queue = self._queue
        if queue is None:
            queue = self._queue = WaiterQueue()
        queue.push(waiter)
        self._threshold = queue.targets[0][0]
        future = waiter.future
        assert future is not None  # a new waiter is live
        return future

    def _abandon(
        self, waiter: Waiter[StateT], future: asyncio.Future[StateT | None]
    ) -> None:
        """Clean up after the wait on ``waiter`` ended with an exception."""
        if waiter.future is not None:
            # Still queued: the task was cancelled (or had an exception thrown
            # in) before any transition resolved the waiter.
            queue = self._queue
            assert queue is not None
            queue.discard(waiter)
            self._threshold = queue.targets[0][0] if queue.maxes else None
        elif not future.cancelled():
            # Resolved, then cancelled before the task resumed: the outcome is
            # dropped, and fetching it keeps asyncio from logging an exception
            # that was never retrieved.
            future.exception()

    def _advance_and_wake(self, new_state: StateT) -> None:
        """Enter ``new_state`` (greater than the state, not less than the threshold).

        Resolves the waiters that are due, in FIFO order.
        """
        queue = self._queue
        assert queue is not None  # the threshold is only set while queued
        due = queue.pop_due(new_state)
        self._state = new_state
        self._threshold = queue.targets[0][0] if queue.maxes else None
        for waiter in due:
            future = waiter.future
            assert future is not None  # pop_due returns live waiters only
            waiter.future = None
            # A future that is done here was cancelled by its task, which has
            # not yet run to discard it; the task's cleanup sees the waiter as
            # already removed.
            if future.done():
                continue
            if waiter.kind == AT_LEAST:
                future.set_result(new_state)
            elif waiter.kind == EXACT:
                future.set_result(None)
            else:
                assert waiter.kind == SKIPPED
                future.set_exception(OrderedStateSkipped(waiter.target))


def _qualname(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"
