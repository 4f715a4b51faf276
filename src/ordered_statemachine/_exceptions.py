"""Exceptions raised by ordered state machines."""

from __future__ import annotations

import enum
from typing import Generic

from ._typing import StateT_co, SupportsLessThan


def backwards(machine: str, new_state: object, current: object) -> ValueError:
    """Return the error for assigning ``new_state`` below ``current`` to ``machine``."""
    return ValueError(
        f"cannot rewind {machine} from {current!r} to {new_state!r}: "
        "assigning a lesser state is not allowed (use rewind() to move back)"
    )


def forwards(current: object, new_state: object) -> ValueError:
    """Return the error for a rewind from ``current`` up to ``new_state``."""
    return ValueError(
        f"cannot forward using rewind (from {current!r} to {new_state!r}): "
        "assign the state to move forward"
    )


def unordered(new_state: object, current: object) -> TypeError:
    """Return the error for a state neither less than, equal to nor above another."""
    return TypeError(
        f"states must be ordered, but {new_state!r} is neither less than, "
        f"equal to nor greater than the current state {current!r}"
    )


def check_ordered(state: SupportsLessThan) -> None:
    """Raise TypeError unless ``state`` passes the ordering contract's sanity check.

    That is, as in aioxmpp: ``state < state`` is false and ``state == state``
    true, and neither raises.
    """
    try:
        ordered = not (state < state) and bool(state == state)  # noqa: PLR0124
    except Exception as exc:
        msg = (
            f"states must be ordered, but comparing {state!r} with "
            f"itself raised {type(exc).__name__}: {exc}"
        )
        raise TypeError(msg) from exc
    if not ordered:
        msg = (
            f"states must be ordered, but {state!r} is not equal to "
            "itself, or is less than itself"
        )
        raise TypeError(msg)


def check_cause(cause: object) -> None:
    """Raise TypeError unless ``cause`` is an exception.

    Callers that type-check cannot pass anything else; untyped ones can, and
    it must fail before anything changes, not while waiters are resolved.
    """
    if not isinstance(cause, BaseException):
        msg = f"cause must be an exception or None, not {type(cause).__name__}"
        raise TypeError(msg)


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
