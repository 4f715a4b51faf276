"""How many comparisons each operation makes, as the number of waiters grows.

Counting the calls of ``<`` and ``==`` on an instrumented state type is
deterministic, unlike timing, and shows the complexity directly: registering
a waiter is O(log n), an assignment that wakes nobody is O(1), waking k
waiters is O(log n) comparisons (within the O(k log n) budget), and
cancelling compares nothing (amortised O(1)).

Waits are driven as bare coroutines (``send``/``close``), so thousands of
them cost no tasks.
"""

from __future__ import annotations

import math
import os
import random
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from ordered_statemachine import (
    OrderedStateMachine,
    StateSubscription,
    ThreadSafeOrderedStateMachine,
)

if TYPE_CHECKING:
    from collections.abc import Coroutine

# Under tools/mutation.py, which runs these for each of a thousand mutants,
# up to 2**14 waiters: they tell O(log n) from O(n) as well, in a quarter of
# the time.
SIZES = [2**6, 2**10, 2**14] + (
    [] if os.environ.get("ORDERED_STATEMACHINE_MUTATION") else [2**16]
)


class Counted:
    """An int-like state that counts every comparison made on it."""

    __slots__ = ("value",)
    comparisons: ClassVar[int] = 0

    def __init__(self, value: int) -> None:
        self.value = value

    def __lt__(self, other: Counted) -> bool:
        Counted.comparisons += 1
        return self.value < other.value

    def __eq__(self, other: object) -> bool:
        Counted.comparisons += 1
        return isinstance(other, Counted) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def counted(action: Coroutine[Any, Any, object] | None = None) -> int:
    """Comparisons made by starting ``action`` (a wait) until it suspends."""
    before = Counted.comparisons
    if action is not None:
        action.send(None)
    return Counted.comparisons - before


def machine_with_waiters(
    n: int, targets: list[int]
) -> tuple[OrderedStateMachine[Counted], list[Coroutine[Any, Any, object]]]:
    """A machine at 0 with ``n`` suspended waits for the given targets (all > 0)."""
    machine = OrderedStateMachine(Counted(0))
    waits: list[Coroutine[Any, Any, object]] = []
    for i, target in enumerate(targets[:n]):
        wait = (machine.wait_for if i % 2 else machine.wait_for_at_least)(
            Counted(target)
        )
        wait.send(None)
        waits.append(wait)
    return machine, waits


class TestComparisonCounts:
    """Comparisons per operation against the number n of pending waiters."""

    @pytest.mark.parametrize("n", SIZES)
    async def test_registering_is_logarithmic(self, n: int) -> None:
        """Registering one more waiter makes at most log2(n) + 4 comparisons."""
        rng = random.Random(n)
        targets = [rng.randrange(1, 10 * n) for _ in range(n)]
        machine, waits = machine_with_waiters(n, targets)
        worst = max(
            counted(machine.wait_for_at_least(Counted(rng.randrange(1, 10 * n))))
            for _ in range(50)
        )
        assert worst <= math.log2(n) + 4, (n, worst)
        for wait in waits:
            wait.close()

    @pytest.mark.parametrize("n", [0, *SIZES])
    @pytest.mark.parametrize(
        "after",
        ["registering", "a wake-up", "cancelling the least", "cancelling another"],
    )
    async def test_assignment_waking_nobody_is_constant(
        self, n: int, after: str
    ) -> None:
        """With none due, an assignment makes 2 comparisons (1 with no waiter).

        Whatever happened last: waiters registered, one woken by the previous
        assignment, or one cancelled. The slot of a cancelled waiter with the
        least target is removed by the first assignment that reaches it, at
        O(log n) comparisons: the cost of the cancellation, paid once.
        """
        machine, waits = machine_with_waiters(n, [10**9] * n)
        first = 1
        if after == "cancelling another":
            extra = machine.wait_for_at_least(Counted(2 * 10**9))
            extra.send(None)
            extra.close()
        elif after != "registering":
            extra = machine.wait_for_at_least(Counted(1))
            extra.send(None)
            if after == "a wake-up":
                machine.state = Counted(1)
            extra.close()
            removal = Counted.comparisons
            machine.state = Counted(1)
            removal = Counted.comparisons - removal
            assert removal <= 2 * math.log2(n or 1) + 8, (n, removal)
            first = 2
        for state in range(first, 50):
            before = Counted.comparisons
            machine.state = Counted(state)
            assert Counted.comparisons - before == (2 if n else 1)
        for wait in waits:
            wait.close()

    @pytest.mark.parametrize("n", SIZES)
    @pytest.mark.parametrize("share", [1, 10, 100], ids=["k=n", "k=n/10", "k=n/100"])
    async def test_waking_k_waiters_is_within_k_log_n(self, n: int, share: int) -> None:
        """Waking k of n waiters makes O(log n) comparisons: within O(k log n)."""
        rng = random.Random(n * share)
        targets = [rng.randrange(1, 100 * share + 1) for _ in range(n)]
        targets[n // 2] = 50  # at least one is due, even for small n
        machine, waits = machine_with_waiters(n, targets)
        before = Counted.comparisons
        machine.state = Counted(100)
        made = Counted.comparisons - before
        woken = sum(target <= 100 for target in targets)
        assert woken > 0
        assert made <= 4 * math.log2(n) + 8, (n, woken, made)
        assert made <= 4 * woken * math.log2(n) + 8
        assert machine.statistics().waiters == n - woken
        for wait in waits:
            wait.close()

    @pytest.mark.parametrize("n", SIZES)
    async def test_cancelling_compares_nothing(self, n: int) -> None:
        """Cancelling every waiter, in any order, makes no comparison at all."""
        rng = random.Random(n)
        machine, waits = machine_with_waiters(
            n, [rng.randrange(1, n) for _ in range(n)]
        )
        rng.shuffle(waits)
        before = Counted.comparisons
        for wait in waits:
            wait.close()
        assert Counted.comparisons - before == 0
        assert machine.statistics().waiters == 0

    @pytest.mark.parametrize("how", ["setter", "advance"])
    async def test_two_waiters_for_the_next_state(self, how: str) -> None:
        """Two waiters for one target: the least target is compared once.

        current < new, new < least (found not less: the transition has
        waiters to wake), then the queue's own comparisons to take the two;
        the transition does not compare new with the least target again.
        """
        machine = OrderedStateMachine(Counted(0))
        waits = [machine.wait_for_at_least(Counted(1)) for _ in range(2)]
        for wait in waits:
            wait.send(None)
        before = Counted.comparisons
        if how == "setter":
            machine.state = Counted(1)
        else:
            machine.advance(Counted(1))
        assert Counted.comparisons - before == 6
        for wait in waits:
            with pytest.raises(StopIteration):
                wait.send(None)

    @pytest.mark.parametrize("how", ["setter", "advance"])
    async def test_single_waiter_hand_off(self, how: str) -> None:
        """One waiter: registering makes 1 comparison, waking it 3."""
        machine = OrderedStateMachine(Counted(0))
        for state in range(1, 20):
            wait = machine.wait_for(Counted(state))
            assert counted(wait) == 1
            before = Counted.comparisons
            if how == "setter":
                machine.state = Counted(state)
            else:
                machine.advance(Counted(state))
            # current < new, new < least, and target < new (exact: reached?)
            assert Counted.comparisons - before == 3
            with pytest.raises(StopIteration):
                wait.send(None)


def assignment_cost(
    machine: OrderedStateMachine[Counted] | ThreadSafeOrderedStateMachine[Counted],
    value: int,
) -> int:
    """Comparisons made by assigning ``Counted(value)``."""
    before = Counted.comparisons
    machine.state = Counted(value)
    return Counted.comparisons - before


class TestThreshold:
    """Both machines keep their assignment fast after every change.

    With a waiter pending far above, an assignment below it makes two
    comparisons (current < new, new < the least target). Every change of the
    waiters or subscribers (a wake-up, a rewind, a waiter giving up, a
    subscription closed) must leave the threshold there, or every later
    assignment would take the slow path.
    """

    @pytest.mark.parametrize("threadsafe", [False, True], ids=["plain", "threadsafe"])
    async def test_after_each_change_an_assignment_makes_two(
        self, *, threadsafe: bool
    ) -> None:
        """Wake-up, rewind, give-up, closed subscription: two comparisons after each."""
        machine: OrderedStateMachine[Counted] | ThreadSafeOrderedStateMachine[Counted]
        if threadsafe:
            machine = ThreadSafeOrderedStateMachine(Counted(0))
        else:
            machine = OrderedStateMachine(Counted(0))
        far = machine.wait_for_at_least(Counted(1_000))
        far.send(None)
        assert assignment_cost(machine, 1) == 2
        near = machine.wait_for_at_least(Counted(2))
        near.send(None)
        assert assignment_cost(machine, 2) > 2  # wakes it
        with pytest.raises(StopIteration):
            near.send(None)
        assert assignment_cost(machine, 3) == 2
        machine.rewind(Counted(1))
        assert assignment_cost(machine, 2) == 2
        # Its slot stays queued (dead) until swept or reached: keep below it.
        leaving = machine.wait_for(Counted(900))
        leaving.send(None)
        leaving.close()  # gives up
        assert assignment_cost(machine, 3) == 2
        subscription = machine.states()
        assert assignment_cost(machine, 4) > 2  # publishes to it
        await subscription.aclose()
        assert assignment_cost(machine, 5) == 2
        assert machine.statistics().waiters == 1
        far.close()

    async def test_after_a_subscription_dropped_mid_operation(self) -> None:
        """A subscription collected inside an operation, dropped later: two again."""
        subscriptions: list[StateSubscription[Counted]] = []

        class Dropping(Counted):
            __slots__ = ()

            def __lt__(self, other: Counted) -> bool:
                subscriptions.clear()  # its finalizer runs inside the operation
                return super().__lt__(other)

        machine = ThreadSafeOrderedStateMachine(Counted(0))
        far = machine.wait_for_at_least(Counted(1_000))
        far.send(None)
        subscriptions.append(machine.states())
        machine.state = Dropping(1)
        assert not subscriptions
        # Put off by the operation it was collected in; gone at the next look.
        assert machine.statistics().subscribers == 0
        assert assignment_cost(machine, 2) == 2
        machine.state = Counted(1_000)
        with pytest.raises(StopIteration):
            far.send(None)
