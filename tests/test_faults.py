"""Fault injection: a comparison that raises leaves the machine as it was.

The states here are `Faulty` ints whose k-th comparison, once armed, raises
`Fault`, or cancels a waiting task instead. Each test builds two identical
worlds (a machine with a recorded cause, waiters of both kinds on several
targets, a dead slot, a subscriber), applies an operation to one of them with
the fault armed at k = 1, 2, ... until the operation makes fewer than k
comparisons, and checks after each failure that:

- the failing operation raised `Fault`;
- both worlds are observably identical right away (state, waiters,
  subscribers, causes kept, which tasks are done);
- both stay identical through the same follow-up script: every remaining
  state is entered, and every wait's outcome and every state the subscriber
  sees are compared (all or nothing, not "looks the same for now").
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from helpers import bounded, steps
from ordered_statemachine import (
    OrderedStateMachine,
    OrderedStateSkipped,
    StateSubscription,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Generator

TOP = 12


class Fault(Exception):
    """Raised by the armed comparison."""


@dataclass
class Arming:
    """When the next fault fires, and what it does."""

    countdown: int | None = None
    """Comparisons left before the fault fires; None when disarmed."""
    on_fault: Callable[[], None] | None = None
    """What the fault does instead of raising (cancelling a task), if set."""

    def tick(self) -> None:
        """Count one comparison; fire on the armed one."""
        if self.countdown is None:
            return
        self.countdown -= 1
        if self.countdown == 0:
            self.countdown = None
            if self.on_fault is None:
                raise Fault
            self.on_fault()


ARMING = Arming()


class Faulty:
    """An int-like state whose comparisons can be made to fail on the k-th call."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    def __lt__(self, other: Faulty) -> bool:
        ARMING.tick()
        return self.value < other.value

    def __eq__(self, other: object) -> bool:
        ARMING.tick()
        return isinstance(other, Faulty) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"F{self.value}"


@contextlib.contextmanager
def armed(
    k: int, on_fault: Callable[[], None] | None = None
) -> Generator[None, None, None]:
    """Make the k-th comparison inside the block fail (or call ``on_fault``)."""
    ARMING.countdown, ARMING.on_fault = k, on_fault
    try:
        yield
    finally:
        ARMING.countdown, ARMING.on_fault = None, None


@dataclass
class World:
    """A machine with waiters, a dead slot, a recorded cause and a subscriber."""

    machine: OrderedStateMachine[Faulty]
    tasks: list[asyncio.Task[object]]
    subscription: StateSubscription[Faulty]

    def snapshot(self) -> tuple[object, ...]:
        """What can be observed without changing anything."""
        stats = self.machine.statistics()
        return (
            stats.state.value,
            stats.waiters,
            stats.subscribers,
            stats.causes,
            [task.done() for task in self.tasks],
        )

    async def finish(self) -> tuple[object, ...]:
        """Enter every remaining state, then report every outcome."""
        for value in range(self.machine.state.value + 1, TOP + 1):
            self.machine.state = Faulty(value)
            await steps()
        await bounded(asyncio.gather(*self.tasks, return_exceptions=True))
        seen: list[int] = []
        while not seen or seen[-1] != TOP:
            seen.append((await bounded(anext(self.subscription))).value)
        await self.subscription.aclose()
        return (self.snapshot(), [outcome(task) for task in self.tasks], seen)


def outcome(task: asyncio.Task[object]) -> object:
    """A comparable description of how a finished wait ended."""
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    if isinstance(error, OrderedStateSkipped):
        cause = error.__cause__
        return ("skipped", error.args[0].value, cause and cause.args)
    assert error is None, error
    result = task.result()
    return ("value", result.value if isinstance(result, Faulty) else result)


async def build(waiters: int) -> World:
    """A world at state 2, with ``waiters`` waits on targets 3 to 9."""
    machine = OrderedStateMachine(Faulty(0))
    machine.advance(Faulty(2), cause=ConnectionError("first"))
    subscription = machine.states()
    tasks: list[asyncio.Task[object]] = []
    for i in range(waiters):
        target = Faulty(3 + (i * 5) % 7)
        wait = machine.wait_for if i % 2 else machine.wait_for_at_least
        tasks.append(asyncio.ensure_future(wait(target)))
    await steps()
    if waiters > 2:
        tasks[1].cancel()  # a dead slot in the queue
        await steps()
    return World(machine, tasks, subscription)


async def assign(world: World) -> object:
    """Assign state 6: wakes some waiters, skips some."""
    world.machine.state = Faulty(6)
    return None


async def advance_with_cause(world: World) -> object:
    """Advance to 9 with a cause: skips with that cause."""
    world.machine.advance(Faulty(9), cause=ConnectionError("second"))
    return None


async def rewind(world: World) -> object:
    """Rewind to 1: below the recorded cause."""
    world.machine.rewind(Faulty(1))
    return None


async def wait_exact(world: World) -> object:
    """Start a wait_for (it is registered, or raises)."""
    world.tasks.append(asyncio.ensure_future(world.machine.wait_for(Faulty(7))))
    await steps()
    task = world.tasks[-1]
    if task.done() and isinstance(task.exception(), Fault):
        del world.tasks[-1]
        raise Fault
    return None


async def wait_at_least(world: World) -> object:
    """Start a wait_for_at_least (it is registered, or raises)."""
    task = asyncio.ensure_future(world.machine.wait_for_at_least(Faulty(4)))
    world.tasks.append(task)
    await steps()
    if task.done() and isinstance(task.exception(), Fault):
        del world.tasks[-1]
        raise Fault
    return None


async def wait_for_passed(world: World) -> object:
    """wait_for a passed state: skipped at once, with the recorded cause."""
    with pytest.raises(OrderedStateSkipped) as info:
        await bounded(world.machine.wait_for(Faulty(1)))
    cause = info.value.__cause__
    assert isinstance(cause, ConnectionError)
    return cause.args


OPERATIONS = [assign, advance_with_cause, rewind, wait_exact, wait_at_least]
SIZES = pytest.mark.parametrize(
    "waiters", [0, 1, 6, 1500], ids=["none", "one", "few", "chunks"]
)


class TestAllOrNothing:
    """A raising comparison at any point leaves the machine exactly as it was."""

    @SIZES
    @pytest.mark.parametrize("operation", [*OPERATIONS, wait_for_passed])
    async def test_fault_at_every_comparison(
        self,
        waiters: int,
        operation: Callable[[World], Awaitable[object]],
    ) -> None:
        """For every k, the operation raises and the machine is untouched."""
        for k in range(1, 200):
            faulty, clean = await build(waiters), await build(waiters)
            try:
                with armed(k):
                    await operation(faulty)
            except Fault:
                assert faulty.snapshot() == clean.snapshot(), k
                assert await faulty.finish() == await clean.finish(), k
                continue
            # Fewer than k comparisons: it succeeded, as it does unarmed.
            await operation(clean)
            assert faulty.snapshot() == clean.snapshot()
            assert await faulty.finish() == await clean.finish()
            assert k > 1 or operation is wait_for_passed
            return
        pytest.fail("the operation never got through")  # pragma: no cover


class TestCancelledDuringResolution:
    """A waiter cancelled while a transition decides the others."""

    @SIZES
    @pytest.mark.parametrize("operation", [assign, advance_with_cause])
    async def test_cancel_at_every_comparison(
        self,
        waiters: int,
        operation: Callable[[World], Awaitable[object]],
    ) -> None:
        """Cancelling a due waiter at the k-th comparison: it ends cancelled."""
        if waiters < 1:
            pytest.skip("needs a waiter to cancel")
        victim = 0  # waits for state 3, due in both operations
        for k in range(1, 200):
            during, before = await build(waiters), await build(waiters)
            fired: list[int] = []

            def cancel_victim(
                world: World = during, fired: list[int] = fired, k: int = k
            ) -> None:
                fired.append(k)
                world.tasks[victim].cancel()

            with armed(k, on_fault=cancel_victim):
                await operation(during)
            if not fired:
                # Fewer than k comparisons: every earlier point was covered.
                assert k > 1
                await during.finish()
                await before.finish()
                return
            before.tasks[victim].cancel()
            await operation(before)
            assert during.snapshot() == before.snapshot(), k
            assert await during.finish() == await before.finish(), k
            assert during.tasks[victim].cancelled()
        pytest.fail("the operation never got through")  # pragma: no cover
