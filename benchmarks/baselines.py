"""What ordered_statemachine is measured against, besides aioxmpp.

- `Floor`: the least a forward-only setter can do, a slotted class whose
  ``state`` setter makes one ``<`` comparison and one store. It cannot be
  waited on.
- `ConditionMachine`: what a user would write without a library, an
  `asyncio.Condition` and ``wait_for(predicate)``. Its assignment is a
  coroutine, since notifying needs the lock.
"""

from __future__ import annotations

import asyncio
import threading


class Floor:
    """A forward-only state: one comparison and one store per assignment."""

    __slots__ = ("_state",)

    def __init__(self, state: int) -> None:
        """Start at ``state``."""
        self._state = state

    @property
    def state(self) -> int:
        """The current state; assigning a lesser one raises ValueError."""
        return self._state

    @state.setter
    def state(self, new_state: int) -> None:
        if new_state < self._state:
            raise ValueError(new_state)
        self._state = new_state


class ConditionMachine:
    """A forward-only state that can be awaited, built on `asyncio.Condition`.

    ``rechecks`` counts how many times a waiter has evaluated its predicate;
    the benchmarks use it to tell when every woken waiter has gone back to
    waiting. It is the only thing a user's version would not have.
    """

    def __init__(self, state: int) -> None:
        """Start at ``state``."""
        self.state = state
        self.rechecks = 0
        self._condition = asyncio.Condition()

    async def set_state(self, new_state: int) -> None:
        """Move forward to ``new_state`` and wake every waiter to re-check."""
        async with self._condition:
            if new_state < self.state:
                raise ValueError(new_state)
            self.state = new_state
            self._condition.notify_all()

    def _reached(self, target: int) -> bool:
        self.rechecks += 1
        return not self.state < target

    async def wait_for_at_least(self, target: int) -> int:
        """Wait until the state is at least ``target``; return the state then."""
        async with self._condition:
            await self._condition.wait_for(lambda: self._reached(target))
            return self.state

    async def wait_for(self, target: int) -> None:
        """Wait until the state is at least ``target``; fail if it went past.

        Unlike a real ordered state machine, a state that is entered and left
        before this waiter runs is missed (it raises instead).
        """
        state = await self.wait_for_at_least(target)
        if state != target:
            raise ValueError(target)


class HandoffFloor:
    """The least a waitable forward-only state can do, for the hand-off.

    One pending waiter at most, kept as a bare future: no queue, no FIFO
    order, no cleanup after cancellation, no skip detection beyond one
    comparison. What remains is asyncio's own cost: a future, a task switch
    and a coroutine. It bounds from below what any implementation, aioxmpp's
    included, can reach on the hand-off benchmark.
    """

    __slots__ = ("_state", "_target", "_waiter")

    def __init__(self, state: int) -> None:
        """Start at ``state``."""
        self._state = state
        self._target = 0
        self._waiter: asyncio.Future[None] | None = None

    @property
    def state(self) -> int:
        """The current state; assigning resolves the waiter if it is due."""
        return self._state

    @state.setter
    def state(self, new_state: int) -> None:
        if new_state < self._state:
            raise ValueError(new_state)
        self._state = new_state
        waiter = self._waiter
        if waiter is not None and not new_state < self._target:
            self._waiter = None
            waiter.set_result(None)

    async def wait_for(self, target: int) -> None:
        """Wait until the state reaches ``target`` (one waiter at a time)."""
        if self._state < target:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            self._target = target
            await waiter


class ThreadConditionMachine:
    """A forward-only state for threads: `threading.Condition` and ``wait_for``.

    What synchronous code writes by hand: assign under the condition's lock
    and notify every waiter, which re-checks its predicate.
    """

    def __init__(self, state: int) -> None:
        """Start at ``state``."""
        self.state = state
        self._condition = threading.Condition()

    def set_state(self, new_state: int) -> None:
        """Move forward to ``new_state`` and wake every waiter to re-check."""
        with self._condition:
            if new_state < self.state:
                raise ValueError(new_state)
            self.state = new_state
            self._condition.notify_all()

    def wait_for_at_least(self, target: int) -> int:
        """Block until the state is at least ``target``; return the state then."""
        with self._condition:
            self._condition.wait_for(lambda: not self.state < target)
            return self.state
