"""Every kind of bad input: what it gets, and that nothing changed.

One test per row of the "Bad input" table of docs/reliability.md, in its
order (the rows on unresumable waiters are tested in test_unresumable.py).
"""

from __future__ import annotations

import asyncio
import decimal
import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from helpers import TIMEOUT, Conn, bounded, steps
from ordered_statemachine import (
    MachineStatistics,
    OrderedEnum,
    OrderedStateMachine,
    OrderedStateSkipped,
    StateSubscription,
)

if TYPE_CHECKING:
    from collections.abc import Sequence


class Colour(enum.Enum):
    """A plain enum: no order."""

    RED = 1


class Level(enum.IntEnum):
    """Another IntEnum: compares with Conn as plain ints."""

    LOW = 1
    HIGH = 3


class Link(OrderedEnum):
    """An OrderedEnum."""

    DOWN = "down"
    UP = "up"


class Job(OrderedEnum):
    """Another OrderedEnum."""

    QUEUED = "queued"


def anything(value: object) -> Any:  # noqa: ANN401
    """Hide ``value``'s type from the checkers, as untyped callers do."""
    return value


@dataclass
class Watched:
    """A machine with waiters and a subscriber, and its statistics then."""

    machine: OrderedStateMachine[Any]
    tasks: list[asyncio.Task[object]]
    subscription: StateSubscription[Any]
    before: MachineStatistics[Any]

    def unchanged(self) -> None:
        """Assert the machine's statistics are what they were."""
        assert self.machine.statistics() == self.before


async def watched(initial: Any, targets: list[Any]) -> Watched:  # noqa: ANN401
    """A machine at ``initial`` with waiters on ``targets`` and a subscriber."""
    machine = OrderedStateMachine(initial)
    machine.advance(initial, cause=RuntimeError())  # equal: records nothing
    subscription = machine.states()
    tasks: list[asyncio.Task[object]] = [
        asyncio.ensure_future(machine.wait_for(target)) for target in targets
    ]
    await steps()
    return Watched(machine, tasks, subscription, machine.statistics())


async def cleanup(tasks: Sequence[asyncio.Task[object]]) -> None:
    """Cancel and reap the waiting tasks."""
    for task in tasks:
        task.cancel()
    await bounded(asyncio.gather(*tasks, return_exceptions=True))


class TestBadInput:
    """The table of docs/reliability.md, row by row."""

    @pytest.mark.parametrize(
        "state", [Colour.RED, object(), None, {}, 1j, decimal.Decimal("NaN")], ids=repr
    )
    def test_unordered_initial_state(self, state: object) -> None:
        """An unorderable initial state: TypeError naming the comparison's error."""
        with pytest.raises(TypeError, match=r"^states must be ordered, but comparing"):
            OrderedStateMachine(anything(state))

    @pytest.mark.parametrize("state", ["nan", "less-than-itself"])
    def test_initial_state_unequal_to_itself(self, state: str) -> None:
        """NaN, or a value less than itself, fails the sanity check: TypeError."""

        class Liar:
            def __lt__(self, other: object) -> bool:
                return True

        initial = math.nan if state == "nan" else Liar()
        with pytest.raises(TypeError, match="is not equal to itself, or is less than"):
            OrderedStateMachine(anything(initial))

    async def test_incomparable_assignment(self) -> None:
        """The comparison's own TypeError; state, waiters, subscriber unchanged."""
        world = await watched(1, [2, 3])
        with pytest.raises(TypeError, match="not supported between"):
            world.machine.state = "two"
        world.unchanged()
        await cleanup(world.tasks)

    async def test_backward_assignment(self) -> None:
        """ValueError naming both states; nothing changes."""
        world = await watched(Conn.CLOSING, [Conn.CLOSED])
        with pytest.raises(
            ValueError,
            match=r"^cannot rewind OrderedStateMachine from <Conn.CLOSING: 2> "
            r"to <Conn.OPEN: 1>: assigning a lesser state is not allowed",
        ):
            world.machine.state = Conn.OPEN
        world.unchanged()
        await cleanup(world.tasks)

    async def test_nan_assignment(self) -> None:
        """NaN is neither less, equal nor greater: TypeError; nothing changes."""
        world = await watched(1.0, [2.0])
        with pytest.raises(
            TypeError,
            match=r"^states must be ordered, but nan is neither less than, equal "
            r"to nor greater than the current state 1.0",
        ):
            world.machine.state = math.nan
        world.unchanged()
        await cleanup(world.tasks)

    async def test_forward_rewind(self) -> None:
        """ValueError; nothing changes."""
        world = await watched(Conn.OPEN, [Conn.CLOSED])
        with pytest.raises(
            ValueError,
            match=r"^cannot forward using rewind \(from <Conn\.OPEN: 1> to "
            r"<Conn\.CLOSED: 3>\): assign the state to move forward$",
        ):
            world.machine.rewind(Conn.CLOSED)
        world.unchanged()
        await cleanup(world.tasks)

    @pytest.mark.parametrize("target", ["one", math.nan], ids=["incomparable", "nan"])
    async def test_incomparable_or_nan_rewind(self, target: object) -> None:
        """TypeError; nothing changes."""
        world = await watched(2.0, [3.0])
        with pytest.raises(TypeError):
            world.machine.rewind(anything(target))
        world.unchanged()
        await cleanup(world.tasks)

    @pytest.mark.parametrize("kind", ["wait_for", "wait_for_at_least"])
    async def test_incomparable_wait_target(self, kind: str) -> None:
        """The comparison's TypeError; nothing is registered."""
        world = await watched(1, [2])
        machine = world.machine
        wait = machine.wait_for if kind == "wait_for" else machine.wait_for_at_least
        with pytest.raises(TypeError, match="not supported between"):
            await bounded(wait("two"))
        world.unchanged()
        await cleanup(world.tasks)

    @pytest.mark.parametrize("kind", ["wait_for", "wait_for_at_least"])
    async def test_nan_wait_target(self, kind: str) -> None:
        """TypeError (states must be ordered); nothing is registered."""
        world = await watched(1.0, [2.0])
        machine = world.machine
        wait = machine.wait_for if kind == "wait_for" else machine.wait_for_at_least
        with pytest.raises(TypeError, match=r"^states must be ordered"):
            await bounded(wait(math.nan))
        world.unchanged()
        await cleanup(world.tasks)

    async def test_target_incomparable_with_a_pending_target(self) -> None:
        """The comparison's TypeError; nothing registered; the others intact."""
        world = await watched((0,), [(1, "a"), (2, "b")])
        with pytest.raises(TypeError, match="not supported between"):
            await bounded(world.machine.wait_for((1, 2)))
        world.unchanged()
        world.machine.state = (2, "b")
        outcomes = await bounded(asyncio.gather(*world.tasks, return_exceptions=True))
        assert isinstance(outcomes[0], OrderedStateSkipped)
        assert outcomes[1] is None

    async def test_cause_that_is_not_an_exception(self) -> None:
        """TypeError before anything changes (checkers catch it where they see it)."""
        world = await watched(0, [1])
        with pytest.raises(
            TypeError, match=r"^cause must be an exception or None, not str"
        ):
            world.machine.advance(1, cause=anything("refused"))
        world.unchanged()
        await cleanup(world.tasks)

    async def test_member_of_another_ordered_enum(self) -> None:
        """TypeError from OrderedEnum's comparison; nothing changes."""
        world = await watched(Link.DOWN, [Link.UP])
        with pytest.raises(TypeError, match="not supported between"):
            world.machine.state = anything(Job.QUEUED)
        world.unchanged()
        await cleanup(world.tasks)

    async def test_member_of_another_int_enum_is_accepted(self) -> None:
        """IntEnums compare as ints: another one's member is silently accepted."""
        machine = OrderedStateMachine(Conn.READY)
        machine.state = anything(Level.HIGH)
        assert repr(machine.state) == "<Level.HIGH: 3>"
        assert machine.state == Conn.CLOSED

    async def test_comparison_that_raises(self) -> None:
        """The exception propagates; nothing changes (see test_faults.py)."""

        class Touchy(int):
            def __lt__(self, other: object) -> bool:
                msg = "no"
                raise ArithmeticError(msg)

        world = await watched(1, [3])
        with pytest.raises(ArithmeticError):
            world.machine.state = Touchy(2)
        world.unchanged()
        await cleanup(world.tasks)

    async def test_comparison_that_lies(self) -> None:
        """A cyclic order: wake-ups are unspecified, the machine stays usable."""

        class Hand:
            """Rock < paper < scissors < rock: no total order."""

            beats: ClassVar[dict[str, str]] = {
                "paper": "rock",
                "scissors": "paper",
                "rock": "scissors",
            }

            def __init__(self, name: str) -> None:
                self.name = name

            def __lt__(self, other: Hand) -> bool:
                return self.beats[other.name] == self.name

            def __eq__(self, other: object) -> bool:
                return isinstance(other, Hand) and other.name == self.name

            def __hash__(self) -> int:
                return hash(self.name)

        rock, paper, scissors = Hand("rock"), Hand("paper"), Hand("scissors")
        machine = OrderedStateMachine(rock)
        tasks: list[asyncio.Task[object]] = [
            asyncio.ensure_future(wait(target))
            for target in (paper, scissors, rock, paper)
            for wait in (machine.wait_for, machine.wait_for_at_least)
        ]
        await steps()
        for hand in (paper, scissors, rock, paper, scissors):
            try:
                machine.state = hand
            except ValueError:
                machine.rewind(hand)
            await steps()
        # Whatever woke, nothing is lost: the rest can still be cancelled and
        # the machine ends with no waiter and no error of its own.
        await cleanup(tasks)
        for task in tasks:
            assert (
                task.cancelled()
                or task.exception() is None
                or isinstance(task.exception(), OrderedStateSkipped)
            )
        assert machine.statistics().waiters == 0

    @pytest.mark.parametrize("targets", ["ascending", "descending"])
    async def test_comparison_that_lies_with_many_waiters(self, targets: str) -> None:
        """Many waiters (several chunks): no error of the library's, no miscount.

        Regression: with ``<`` meaning ``!=`` and 1,100 waiters, one
        assignment raised the library's own AssertionError after 75 waiters
        had left the queue while ``statistics().waiters`` still counted them
        (and under ``python -O`` it went on with wrong counts).
        """

        class Liar:
            """``<`` is ``!=``, until the test makes it honest."""

            honest: ClassVar[bool] = False

            def __init__(self, value: int) -> None:
                self.value = value

            def __lt__(self, other: Liar) -> bool:
                if Liar.honest:
                    return self.value < other.value
                return self.value != other.value

            def __eq__(self, other: object) -> bool:
                return isinstance(other, Liar) and other.value == self.value

            def __hash__(self) -> int:
                return hash(self.value)

        machine = OrderedStateMachine(Liar(0))
        order = range(1, 1101) if targets == "ascending" else range(1100, 0, -1)
        tasks: list[asyncio.Task[Liar]] = [
            asyncio.ensure_future(machine.wait_for_at_least(Liar(target)))
            for target in order
        ]
        await steps()
        for state in (1100, 1):
            machine.state = Liar(state)  # must not raise an error of its own
            await steps()
            pending = sum(not task.done() for task in tasks)
            assert machine.statistics().waiters == pending
        # Every waiter the machine still counts is still queued: with an
        # honest order, a transition past every target wakes them all.
        Liar.honest = True
        machine.rewind(Liar(0))
        machine.state = Liar(2000)
        done, pending_tasks = await asyncio.wait(tasks, timeout=TIMEOUT)
        assert not pending_tasks
        assert len(done) == 1100
        assert machine.statistics().waiters == 0

    async def test_comparison_that_changes_its_answers(self) -> None:
        """An order that answers differently each time: no error of the library's.

        Here ``<`` says "not less" while the assignment decides that a waiter
        is due, then "less" to every later question, so that the queue finds
        nobody due after all.
        """

        class Fickle:
            """``<`` answers False until the test flips it, then True."""

            lies: ClassVar[bool] = False

            def __init__(self, value: int) -> None:
                self.value = value

            def __lt__(self, other: Fickle) -> bool:
                if Fickle.lies:
                    return True
                return self.value < other.value

            def __eq__(self, other: object) -> bool:
                return isinstance(other, Fickle) and other.value == self.value

            def __hash__(self) -> int:
                return hash(self.value)

        class Flipping(Fickle):
            """A state whose comparison with the threshold flips the order."""

            def __lt__(self, other: Fickle) -> bool:
                if Fickle.lies:
                    return True
                Fickle.lies = True
                return False  # not less than the least target: someone is due

        machine = OrderedStateMachine(Fickle(0))
        tasks: list[asyncio.Task[Fickle]] = [
            asyncio.ensure_future(machine.wait_for_at_least(Fickle(target)))
            for target in (5, 5, 6)
        ]
        await steps()
        machine.state = Flipping(1)  # must not raise an error of its own
        await steps()
        assert machine.statistics().waiters == sum(not t.done() for t in tasks)
        await cleanup(tasks)
        assert machine.statistics().waiters == 0
