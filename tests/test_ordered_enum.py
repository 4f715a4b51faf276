"""``OrderedEnum``: members ordered by definition, comparable only among themselves."""

from __future__ import annotations

import asyncio
import copy
import enum
import operator
import pickle
from typing import TYPE_CHECKING

import pytest

from helpers import bounded, steps
from ordered_statemachine import OrderedEnum, OrderedStateMachine, OrderedStateSkipped

if TYPE_CHECKING:
    from collections.abc import Callable


@enum.unique
class Lifecycle(OrderedEnum):
    """String values in an order that is not their alphabetical order."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Job(OrderedEnum):
    """``auto()`` values and an alias."""

    QUEUED = enum.auto()
    RUNNING = enum.auto()
    STARTED = 2  # an alias of RUNNING
    DONE = enum.auto()


class Level(enum.IntEnum):
    """An IntEnum, which OrderedEnum must not compare with."""

    LOW = 0


def pickle_round_trip(member: Lifecycle) -> Lifecycle:
    """Pickle ``member`` and load it back."""
    loaded: Lifecycle = pickle.loads(pickle.dumps(member))  # noqa: S301
    return loaded


COMPARISONS = pytest.mark.parametrize(
    "compare",
    [operator.lt, operator.le, operator.gt, operator.ge],
    ids=["<", "<=", ">", ">="],
)


class TestOrder:
    """The order is the definition order, whatever the values."""

    def test_definition_order(self) -> None:
        """Members sort by definition, not by value (here: not alphabetically)."""
        shuffled = [Lifecycle.CLOSED, Lifecycle.CONNECTING, Lifecycle.OPEN]
        assert sorted(shuffled) == [
            Lifecycle.CONNECTING,
            Lifecycle.OPEN,
            Lifecycle.CLOSED,
        ]
        assert Lifecycle.CONNECTING < Lifecycle.OPEN < Lifecycle.CLOSING
        assert Lifecycle.CLOSED > Lifecycle.CLOSING >= Lifecycle.CLOSING
        assert Lifecycle.OPEN <= Lifecycle.OPEN
        assert Lifecycle.OPEN >= Lifecycle.OPEN
        assert not Lifecycle.OPEN < Lifecycle.OPEN
        assert not Lifecycle.OPEN > Lifecycle.OPEN
        assert not Lifecycle.CLOSED <= Lifecycle.OPEN
        assert not Lifecycle.OPEN >= Lifecycle.CLOSED

    def test_auto_and_aliases(self) -> None:
        """``auto()`` works; an alias ranks exactly as the member it aliases."""
        started: Job = Job.STARTED  # checkers cannot see auto()'s values
        assert started is Job.RUNNING
        assert Job.QUEUED < started < Job.DONE
        assert not started < Job.RUNNING
        assert [member.name for member in Job] == ["QUEUED", "RUNNING", "DONE"]

    @COMPARISONS
    @pytest.mark.parametrize(
        "other",
        [Job.QUEUED, Level.LOW, 0, "connecting", None],
        ids=["other-ordered-enum", "int-enum", "int", "str", "None"],
    )
    def test_comparing_with_anything_else_raises(
        self, compare: Callable[[object, object], bool], other: object
    ) -> None:
        """``<``, ``<=``, ``>``, ``>=`` with a non-member raise TypeError, both ways."""
        with pytest.raises(TypeError):
            compare(Lifecycle.OPEN, other)
        with pytest.raises(TypeError):
            compare(other, Lifecycle.OPEN)

    def test_identity_equality_and_hash(self) -> None:
        """Members equal only themselves (not their values) and are hashable."""
        values: list[object] = ["open", 1]
        assert Lifecycle.OPEN == Lifecycle.OPEN
        assert values[0] != Lifecycle.OPEN
        assert values[1] != Job.QUEUED
        assert {Lifecycle.OPEN: 1}[Lifecycle("open")] == 1
        assert len({Lifecycle.OPEN, Lifecycle.OPEN, Lifecycle.CLOSED}) == 2

    def test_unique_rejects_aliases(self) -> None:
        """``@enum.unique`` works as for any enum."""
        with pytest.raises(ValueError, match="duplicate values"):

            @enum.unique
            class Duplicated(OrderedEnum):
                A = 1
                B = 1

    @pytest.mark.parametrize(
        "clone",
        [pickle_round_trip, copy.copy, copy.deepcopy],
        ids=["pickle", "copy", "deepcopy"],
    )
    def test_pickle_and_copy_keep_identity(
        self, clone: Callable[[Lifecycle], Lifecycle]
    ) -> None:
        """Members survive pickling and copying as themselves."""
        for member in Lifecycle:
            assert clone(member) is member

    def test_data_type_mixins_are_rejected(self) -> None:
        """A str mixin would compare by value, so it is refused at class creation."""
        with pytest.raises(TypeError, match="cannot mix in a data type"):

            class Named(str, OrderedEnum):  # noqa: SLOT000  # pyright: ignore[reportUnusedClass]
                A = "a"

    def test_members_can_be_defined_in_a_subclass(self) -> None:
        """A member-less base with methods can be extended, as with any enum."""

        class Describable(OrderedEnum):
            def describe(self) -> str:
                return self.name.lower()

        class Phase(Describable):
            FIRST = "1st"
            SECOND = "2nd"

        assert Phase.FIRST < Phase.SECOND
        assert Phase.SECOND.describe() == "second"


class TestAsState:
    """An OrderedEnum is a state type like any other."""

    async def test_full_lifecycle(self) -> None:
        """Assignments, waits, skips and rewinds work with OrderedEnum states."""
        machine = OrderedStateMachine(Lifecycle.CONNECTING)
        opened = asyncio.create_task(machine.wait_for(Lifecycle.OPEN))
        closing = asyncio.create_task(machine.wait_for(Lifecycle.CLOSING))
        closed = asyncio.create_task(machine.wait_for_at_least(Lifecycle.CLOSED))
        await steps()
        machine.state = Lifecycle.OPEN
        await bounded(opened)
        machine.advance(Lifecycle.CLOSED, cause=EOFError())
        with pytest.raises(OrderedStateSkipped) as info:
            await bounded(closing)
        assert isinstance(info.value.__cause__, EOFError)
        assert await bounded(closed) is Lifecycle.CLOSED
        with pytest.raises(ValueError, match="cannot rewind"):
            machine.state = Lifecycle.OPEN
        machine.rewind(Lifecycle.CONNECTING)
        assert machine.state is Lifecycle.CONNECTING

    def test_members_of_another_enum_are_rejected_at_runtime(self) -> None:
        """Assigning another enum's member raises TypeError and changes nothing."""
        machine = OrderedStateMachine(Lifecycle.OPEN)
        with pytest.raises(TypeError):
            machine.state = Job.DONE  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
        assert machine.state is Lifecycle.OPEN
