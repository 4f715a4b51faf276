"""``OrderedStateSkipped``: its type, its message, and its round trips."""

from __future__ import annotations

import copy
import pickle
from typing import TYPE_CHECKING

import pytest

from helpers import Conn
from ordered_statemachine import OrderedStateSkipped

if TYPE_CHECKING:
    from collections.abc import Callable

Skipped = OrderedStateSkipped[object]


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
        assert str(exc) == "state open has been skipped"
        assert exc.skipped_state == "open"
        assert exc.args == ("open",)

    def test_repr_names_the_public_module_path(self) -> None:
        """The repr shows the constructor call with the state."""
        assert repr(OrderedStateSkipped(3)) == "OrderedStateSkipped(3)"
        assert OrderedStateSkipped.__module__ == "ordered_statemachine"

    @pytest.mark.parametrize(
        "clone",
        [
            pytest.param(pickle_round_trip, id="pickle"),
            pytest.param(copy.copy, id="copy"),
            pytest.param(copy.deepcopy, id="deepcopy"),
        ],
    )
    @pytest.mark.parametrize("state", [Conn.OPEN, 3, "open", (1, 2)], ids=repr)
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
