"""Exceptions raised by ordered state machines."""

from __future__ import annotations

import enum
from typing import Generic

from ._typing import StateT_co


def describe(state: object) -> str:
    """Name ``state`` for a message: ``Conn.OPEN`` for an enum member, else its repr.

    ``str()`` would not do: an ``IntEnum`` member's is its number on Python
    3.11 and later.
    """
    if isinstance(state, enum.Enum):
        # None for a composite enum.Flag value on Python 3.10, although
        # typeshed says str.
        name: str | None = getattr(state, "name", None)
        if name is not None:
            return f"{type(state).__name__}.{name}"
    return repr(state)


class OrderedStateSkipped(ValueError, Generic[StateT_co]):
    """The state awaited by `OrderedStateMachine.wait_for` can no longer be reached.

    Raised when the machine is already past ``skipped_state`` as the wait
    starts, or moves past it while the wait is pending. A subclass of
    `ValueError`, as in ``aioxmpp.statemachine``, so existing handlers keep
    working.

    ``str(exc)`` names the state: ``"state Conn.OPEN has been skipped"`` for
    a member of an enum (`enum.IntEnum`, `OrderedEnum`, any `enum.Enum`),
    ``"state 2 has been skipped"`` (the repr) for any other value. The
    exception survives `pickle` and `copy` with the same state and message
    (the constructor's only argument is the state; the message is derived
    from it).
    """

    def __init__(self, skipped_state: StateT_co) -> None:
        """Record ``skipped_state``, the state that can no longer be reached."""
        # ``args`` holds the state, not the message, so that pickling, which
        # calls ``cls(*args)``, rebuilds the same exception.
        super().__init__(skipped_state)
        self._skipped_state = skipped_state

    @property
    def skipped_state(self) -> StateT_co:
        """The state that a coroutine waited for and that was skipped."""
        return self._skipped_state

    def __str__(self) -> str:
        """Return ``"state <the state, named> has been skipped"``."""
        return f"state {describe(self._skipped_state)} has been skipped"
