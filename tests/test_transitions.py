"""Assigning ``state`` and calling ``rewind``: what moves, what raises, what wakes."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re

import pytest

from helpers import Conn, OnlyLtEq, bounded, steps
from ordered_statemachine import OrderedStateMachine, OrderedStateSkipped


class TestAssign:
    """Assigning ``state``."""

    def test_greater_state_is_stored(self) -> None:
        """Assigning a greater state changes the state."""
        machine = OrderedStateMachine(Conn.READY)
        machine.state = Conn.OPEN
        assert machine.state is Conn.OPEN
        machine.state = Conn.CLOSED
        assert machine.state is Conn.CLOSED

    def test_lesser_state_raises_value_error_naming_both(self) -> None:
        """Moving backwards raises ValueError naming both states; nothing changes."""
        machine = OrderedStateMachine(Conn.CLOSING)
        with pytest.raises(
            ValueError, match=r"^cannot rewind OrderedStateMachine"
        ) as info:
            machine.state = Conn.OPEN
        assert "Conn.OPEN" in str(info.value)
        assert "Conn.CLOSING" in str(info.value)
        assert machine.state is Conn.CLOSING

    async def test_lesser_state_leaves_waiters_alone(self) -> None:
        """A rejected backwards assignment resolves no waiter."""
        machine = OrderedStateMachine(2)
        task = asyncio.create_task(machine.wait_for_at_least(3))
        await steps()
        with pytest.raises(ValueError, match="cannot rewind"):
            machine.state = 1
        await steps()
        assert not task.done()
        assert machine.statistics().waiters == 1
        machine.state = 3
        assert await bounded(task) == 3

    async def test_incomparable_state_raises_type_error_and_changes_nothing(
        self,
    ) -> None:
        """The comparison's TypeError propagates; state and waiters are unchanged."""
        machine = OrderedStateMachine(1)
        task = asyncio.create_task(machine.wait_for(2))
        await steps()
        with pytest.raises(TypeError):
            machine.state = "two"  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
        await steps()
        assert machine.state == 1
        assert machine.statistics().waiters == 1
        assert not task.done()
        machine.state = 2
        await bounded(task)

    def test_nan_is_rejected(self) -> None:
        """NaN is neither less, equal nor greater: TypeError, state unchanged."""
        machine = OrderedStateMachine(1.0)
        with pytest.raises(TypeError, match="states must be ordered"):
            machine.state = math.nan
        assert machine.state == 1.0

    async def test_equal_state_does_nothing(self) -> None:
        """Assigning an equal state keeps the stored object and wakes no one."""
        first = (1, "a")
        machine = OrderedStateMachine[tuple[object, ...]](first)
        task = asyncio.create_task(machine.wait_for_at_least((2,)))
        await steps()
        machine.state = (1, "a")
        assert machine.state is first
        await steps()
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bounded(task)

    async def test_waiters_are_resolved_before_the_assignment_returns(self) -> None:
        """A state entered and left again in the same step is still seen."""
        machine = OrderedStateMachine(Conn.READY)
        exact = asyncio.create_task(machine.wait_for(Conn.OPEN))
        least = asyncio.create_task(machine.wait_for_at_least(Conn.OPEN))
        await steps()
        machine.state = Conn.OPEN
        machine.state = Conn.CLOSED
        await bounded(exact)
        assert await bounded(least) is Conn.OPEN

    async def test_one_assignment_decides_every_kind_of_waiter(self) -> None:
        """Each waiter gets the outcome the contract gives it for the new state."""
        machine = OrderedStateMachine(0)
        outcomes: dict[str, object] = {}

        async def record(name: str, kind: str, target: int) -> None:
            try:
                if kind == "exact":
                    await machine.wait_for(target)
                    outcomes[name] = None
                else:
                    outcomes[name] = await machine.wait_for_at_least(target)
            except OrderedStateSkipped as exc:
                outcomes[name] = exc

        specs = {
            "exact-below": ("exact", 1),
            "exact-hit": ("exact", 2),
            "exact-above": ("exact", 3),
            "least-below": ("least", 1),
            "least-hit": ("least", 2),
            "least-above": ("least", 3),
        }
        tasks = [
            asyncio.create_task(record(name, kind, target))
            for name, (kind, target) in specs.items()
        ]
        await steps()
        machine.state = 2
        await steps()
        skipped = outcomes.pop("exact-below")
        assert isinstance(skipped, OrderedStateSkipped)
        assert skipped.args == (1,)
        assert outcomes == {"exact-hit": None, "least-below": 2, "least-hit": 2}
        assert machine.statistics().waiters == 2
        machine.state = 3
        await bounded(asyncio.gather(*tasks))
        assert outcomes["exact-above"] is None
        assert outcomes["least-above"] == 3

    @pytest.mark.parametrize(
        "calls",
        [
            # Targets interleaved so that neither target order nor kind order
            # matches the order of calls.
            [
                ("exact", 3),
                ("least", 1),
                ("exact", 1),
                ("least", 3),
                ("exact", 2),
                ("least", 2),
            ],
            # Two waiters, the later one with the lesser target.
            [("exact", 3), ("least", 1)],
            # The lesser target many times after the greater one, over two
            # chunks of the queue (it splits past 1,024): the first due
            # target and the last of the first chunk are one object.
            [("least", 3)] + [("least", 1)] * 1_100,
        ],
        ids=["six", "two", "two chunks"],
    )
    async def test_fifo_across_kinds_and_targets(
        self, calls: list[tuple[str, int]]
    ) -> None:
        """Waiters resolved by one assignment resume in the order they started."""
        machine = OrderedStateMachine(0)
        resumed: list[int] = []

        async def wait(kind: str, target: int, name: int) -> None:
            if kind == "least":
                await machine.wait_for_at_least(target)
            else:
                with contextlib.suppress(OrderedStateSkipped):
                    await machine.wait_for(target)
            resumed.append(name)

        tasks = [
            asyncio.create_task(wait(kind, target, name))
            for name, (kind, target) in enumerate(calls)
        ]
        await steps()
        machine.state = 3
        await bounded(asyncio.gather(*tasks))
        assert resumed == list(range(len(calls)))

    async def test_fifo_with_a_waiter_left_pending(self) -> None:
        """FIFO holds when a waiter queued after the due ones stays pending.

        The queue holds 1, 1, 3, 4 (by target); entering 3 takes the first
        three, whose first two are one object (a small int) and the third is
        not: they must still resume in the order they started.
        """
        machine = OrderedStateMachine(0)
        resumed: list[int] = []

        async def wait(target: int, name: int) -> None:
            await machine.wait_for_at_least(target)
            resumed.append(name)

        tasks = [
            asyncio.create_task(wait(target, name))
            for name, target in enumerate([3, 1, 1, 4])
        ]
        await steps()
        machine.state = 3
        await bounded(asyncio.gather(*tasks[:3]))
        assert resumed == [0, 1, 2]
        machine.state = 4
        await bounded(tasks[3])
        assert resumed == [0, 1, 2, 3]


class TestRewind:
    """``rewind``: the explicit way back."""

    def test_rewind_moves_back(self) -> None:
        """Rewinding to a lesser state stores it."""
        machine = OrderedStateMachine(Conn.CLOSED)
        machine.rewind(Conn.READY)
        assert machine.state is Conn.READY
        machine.state = Conn.OPEN
        assert machine.state is Conn.OPEN

    def test_rewind_to_equal_state_is_allowed(self) -> None:
        """Rewinding to the current state changes nothing."""
        machine = OrderedStateMachine(Conn.OPEN)
        machine.rewind(Conn.OPEN)
        assert machine.state is Conn.OPEN

    def test_rewind_forward_raises(self) -> None:
        """Rewinding to a greater state raises ValueError; state unchanged."""
        machine = OrderedStateMachine(Conn.OPEN)
        with pytest.raises(ValueError, match=re.escape("cannot forward using rewind")):
            machine.rewind(Conn.CLOSED)
        assert machine.state is Conn.OPEN

    def test_rewind_incomparable_or_nan_raises_type_error(self) -> None:
        """An incomparable or NaN target raises TypeError; state unchanged."""
        machine = OrderedStateMachine(2.0)
        with pytest.raises(TypeError):
            machine.rewind("one")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        with pytest.raises(
            TypeError,
            match=r"^states must be ordered, but nan is neither less than, equal "
            r"to nor greater than the current state 2.0$",
        ):
            machine.rewind(math.nan)
        assert machine.state == 2.0

    async def test_rewind_leaves_pending_waiters_pending(self) -> None:
        """Pending waiters survive a rewind and are resolved by later assignments."""
        machine = OrderedStateMachine(Conn.OPEN)
        exact = asyncio.create_task(machine.wait_for(Conn.CLOSED))
        least = asyncio.create_task(machine.wait_for_at_least(Conn.CLOSING))
        await steps()
        machine.rewind(Conn.READY)
        await steps()
        assert not exact.done()
        assert not least.done()
        assert machine.statistics().waiters == 2
        machine.state = Conn.CLOSED
        await bounded(exact)
        assert await bounded(least) is Conn.CLOSED

    async def test_after_rewind_a_passed_state_can_be_awaited_again(self) -> None:
        """After rewinding, a state that was skipped can be waited for and reached."""
        machine = OrderedStateMachine(Conn.CLOSED)
        with pytest.raises(OrderedStateSkipped):
            await bounded(machine.wait_for(Conn.OPEN))
        machine.rewind(Conn.READY)
        task = asyncio.create_task(machine.wait_for(Conn.OPEN))
        await steps()
        machine.state = Conn.OPEN
        await bounded(task)


class TestOnlyLessThanAndEqual:
    """The machine compares states with ``<`` and ``==`` only."""

    async def test_every_operation_with_a_lt_eq_only_type(self) -> None:
        """Construction, assignment, rewind and both waits never call >, <=, >=, !=."""
        s = [OnlyLtEq(i) for i in range(5)]
        machine = OrderedStateMachine(s[0])
        exact = asyncio.create_task(machine.wait_for(s[2]))
        skipped = asyncio.create_task(machine.wait_for(s[1]))
        least = asyncio.create_task(machine.wait_for_at_least(s[3]))
        await steps()
        machine.state = s[0]
        machine.state = s[2]
        with pytest.raises(ValueError, match="cannot rewind"):
            machine.state = s[1]
        await bounded(exact)
        with pytest.raises(OrderedStateSkipped):
            await bounded(skipped)
        machine.rewind(s[2])
        machine.rewind(s[1])
        with pytest.raises(ValueError, match="cannot forward"):
            machine.rewind(s[4])
        await bounded(machine.wait_for(s[1]))
        assert await bounded(machine.wait_for_at_least(s[0])) == s[1]
        with pytest.raises(OrderedStateSkipped):
            await bounded(machine.wait_for(s[0]))
        machine.state = s[4]
        assert await bounded(least) == s[4]
