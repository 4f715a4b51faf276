"""``OrderedStateSkipped``: its type, its message, and its round trips."""

from __future__ import annotations

import copy
import enum
import pickle
from typing import TYPE_CHECKING

import pytest

from helpers import Conn
from ordered_statemachine import OrderedEnum, OrderedStateSkipped

if TYPE_CHECKING:
    from collections.abc import Callable

Skipped = OrderedStateSkipped[object]


class Link(OrderedEnum):
    """An OrderedEnum with a string value."""

    OPEN = "open"


class Plain(enum.Enum):
    """A plain enum (a state only for the exception, which takes anything)."""

    RED = 1


class Perm(enum.Flag):
    """A flag enum, whose value 0 has no name."""

    READ = 1


def pickle_round_trip(exc: Skipped) -> Skipped:
    """Pickle ``exc`` and load it back."""
    loaded: Skipped = pickle.loads(pickle.dumps(exc))  # noqa: S301
    return loaded


class TestOrderedStateSkipped:
    """The exception raised for a state that can no longer be reached."""

    def test_is_a_value_error(self) -> None:
        """Existing ``except ValueError`` handlers keep catching it."""
        assert issubclass(OrderedStateSkipped, ValueError)

    def test_message_and_attribute(self) -> None:
        """``str()`` is ``state <s> has been skipped``; ``.skipped_state`` is ``s``."""
        exc = OrderedStateSkipped("open")
        assert str(exc) == "state 'open' has been skipped"
        assert exc.skipped_state == "open"
        assert exc.args == ("open",)

    @pytest.mark.parametrize(
        ("state", "named"),
        [
            pytest.param(Conn.CLOSING, "Conn.CLOSING", id="IntEnum"),
            pytest.param(Link.OPEN, "Link.OPEN", id="OrderedEnum"),
            pytest.param(Plain.RED, "Plain.RED", id="Enum"),
            pytest.param(Perm(0), repr(Perm(0)), id="Flag without a name"),
            pytest.param(2, "2", id="int"),
            pytest.param("open", "'open'", id="str"),
            pytest.param((1, "a"), "(1, 'a')", id="tuple"),
        ],
    )
    def test_message_names_the_state(self, state: object, named: str) -> None:
        """Members by ``Class.NAME`` on every version, other values by repr.

        Regression: an ``IntEnum`` member showed as its number (``state 2 has
        been skipped``) on Python 3.11 and later, where its ``str`` is the
        int's.
        """
        assert str(OrderedStateSkipped(state)) == f"state {named} has been skipped"

    def test_repr_shows_the_constructor_call(self) -> None:
        """The repr shows the constructor call with the state."""
        assert repr(OrderedStateSkipped(3)) == "OrderedStateSkipped(3)"

    @pytest.mark.parametrize(
        "clone",
        [
            pytest.param(pickle_round_trip, id="pickle"),
            pytest.param(copy.copy, id="copy"),
            pytest.param(copy.deepcopy, id="deepcopy"),
        ],
    )
    @pytest.mark.parametrize(
        "state", [Conn.OPEN, Link.OPEN, 3, "open", (1, 2)], ids=repr
    )
    def test_survives_pickle_and_copy(
        self,
        clone: Callable[[Skipped], Skipped],
        state: object,
    ) -> None:
        """Round trips keep type, state and message (aioxmpp doubles the message)."""
        original = OrderedStateSkipped(state)
        cloned = clone(original)
        assert type(cloned) is OrderedStateSkipped
        assert cloned.skipped_state == state
        assert str(cloned) == str(original)
        assert cloned.args == original.args
