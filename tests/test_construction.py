"""Creating a machine: the ordering sanity check, no event loop, ``loop=``."""

from __future__ import annotations

import asyncio
import decimal
import enum
import fractions
import functools
import math
import warnings
from typing import TYPE_CHECKING, Any

import pytest

from helpers import Conn, OnlyLtEq
from ordered_statemachine import OrderedStateMachine

if TYPE_CHECKING:
    from collections.abc import Callable


@functools.total_ordering
class Phase(enum.Enum):
    """An `Enum` made orderable with `functools.total_ordering`."""

    FIRST = 1
    SECOND = 2

    def __lt__(self, other: Phase) -> bool:
        return self.value < other.value


class PlainColour(enum.Enum):
    """A plain `Enum`: its members cannot be ordered."""

    RED = 1


ORDERED_STATES: list[Any] = [
    Conn.READY,
    Phase.FIRST,
    0,
    -3,
    1.5,
    math.inf,
    "ready",
    b"ready",
    (1, "a"),
    (),
    decimal.Decimal("1.5"),
    fractions.Fraction(1, 3),
    OnlyLtEq(1),
    True,
]


class TestSanityCheck:
    """The ordering sanity check on ``initial_state``."""

    @pytest.mark.parametrize("state", ORDERED_STATES, ids=repr)
    def test_ordered_types_are_accepted(self, state: Any) -> None:  # noqa: ANN401
        """A state that is equal to itself and not less than itself is accepted."""
        machine = OrderedStateMachine(state)
        assert machine.state is state

    @pytest.mark.parametrize(
        "state",
        [
            PlainColour.RED,
            object(),
            None,
            {},
            {"a": 1},
            1j,
            math.nan,
            decimal.Decimal("NaN"),
            lambda: None,
        ],
        ids=[
            "plain-enum",
            "object",
            "None",
            "empty-dict",
            "dict",
            "complex",
            "float-nan",
            "decimal-nan",
            "function",
        ],
    )
    def test_unordered_states_are_rejected(self, state: Any) -> None:  # noqa: ANN401
        """Unorderable values and values unequal to themselves raise TypeError."""
        with pytest.raises(TypeError, match="states must be ordered"):
            OrderedStateMachine(state)

    def test_comparison_that_raises_is_reported_as_type_error(self) -> None:
        """A ``__lt__`` that raises anything becomes a chained TypeError."""

        class Broken:
            def __lt__(self, other: object) -> bool:
                msg = "no"
                raise ValueError(msg)

        with pytest.raises(
            TypeError,
            match=r"^states must be ordered, but comparing .* with itself raised "
            r"ValueError: no$",
        ) as info:
            OrderedStateMachine(Broken())
        assert isinstance(info.value.__cause__, ValueError)

    def test_less_than_itself_is_rejected(self) -> None:
        """A state that claims to be less than itself is not a state."""

        class Liar:
            def __lt__(self, other: object) -> bool:
                return True

        with pytest.raises(TypeError, match="states must be ordered"):
            OrderedStateMachine(Liar())


class TestNoEventLoop:
    """A machine needs no event loop, stores none, and works on any loop."""

    def test_construct_outside_any_loop_without_warning(self) -> None:
        """Construction before ``asyncio.run`` emits no warning of any kind."""
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            machine = OrderedStateMachine(Conn.READY)
        assert machine.state is Conn.READY

    def test_machine_is_used_by_successive_loops(self) -> None:
        """A machine created in a sync factory serves waiters of two different loops."""
        machine = OrderedStateMachine(0)

        async def wait(target: int) -> int:
            task = asyncio.create_task(machine.wait_for_at_least(target))
            await asyncio.sleep(0)
            machine.state = target
            return await asyncio.wait_for(task, 5)

        assert asyncio.run(wait(1)) == 1
        assert asyncio.run(wait(2)) == 2


LOOP_DEPRECATED = (
    r"^the loop argument of OrderedStateMachine has no effect and is deprecated: "
    r"each waiter uses the event loop it runs in$"
)


class TestLoopArgument:
    """``loop=`` is accepted for aioxmpp code, ignored and deprecated."""

    @pytest.mark.uninstrumented
    def test_warning_points_at_the_caller(self) -> None:
        """The DeprecationWarning names the line that passed ``loop``."""
        with pytest.warns(DeprecationWarning, match=LOOP_DEPRECATED) as record:
            OrderedStateMachine(1, loop=None)  # type: ignore[deprecated]  # pyright: ignore[reportDeprecated]
        assert record[0].filename == __file__

    @pytest.mark.parametrize(
        "make_loop",
        [lambda: None, asyncio.new_event_loop],
        ids=["None", "a-loop"],
    )
    def test_loop_argument_warns_and_is_ignored(
        self, make_loop: Callable[[], asyncio.AbstractEventLoop | None]
    ) -> None:
        """Passing ``loop`` (even None) warns, pointing at the caller."""
        loop = make_loop()
        try:
            with pytest.warns(DeprecationWarning, match=LOOP_DEPRECATED):
                machine = OrderedStateMachine(1, loop=loop)  # type: ignore[deprecated]  # pyright: ignore[reportDeprecated]
        finally:
            if loop is not None:
                loop.close()
        assert machine.state == 1

        async def wait() -> int:
            task = asyncio.create_task(machine.wait_for_at_least(2))
            await asyncio.sleep(0)
            machine.state = 2
            return await asyncio.wait_for(task, 5)

        # The waiter runs on asyncio.run's loop, not on the one passed in.
        assert asyncio.run(wait()) == 2


class TestIntrospection:
    """``repr`` and ``statistics`` say where the machine is."""

    async def test_repr_shows_class_state_and_waiters(self) -> None:
        """The repr names the public class, the state's repr and the waiter count."""
        machine = OrderedStateMachine(Conn.READY)
        assert repr(machine) == (
            "<ordered_statemachine.OrderedStateMachine state=<Conn.READY: 0> waiters=0>"
        )
        task = asyncio.create_task(machine.wait_for(Conn.OPEN))
        await asyncio.sleep(0)
        assert repr(machine).endswith("state=<Conn.READY: 0> waiters=1>")
        machine.state = Conn.OPEN
        assert repr(machine).endswith("state=<Conn.OPEN: 1> waiters=0>")
        await asyncio.wait_for(task, 5)

    def test_statistics_is_a_frozen_snapshot(self) -> None:
        """``statistics()`` returns state and waiter count, and cannot be changed."""
        machine = OrderedStateMachine(2)
        stats = machine.statistics()
        assert (stats.state, stats.waiters) == (2, 0)
        machine.state = 3
        assert stats.state == 2
        with pytest.raises(AttributeError):
            stats.waiters = 1  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]
