"""What every machine keeps besides its state, and what a transition records.

Shared by `OrderedStateMachine` and `ThreadSafeOrderedStateMachine`: the
attachments (queue of waiters, feeds of subscriptions, causes kept), the
record of why a transition happened, the skip it turns into, and how a waiter
that cannot be resumed is reported.
"""

from __future__ import annotations

from bisect import bisect_right
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from ._exceptions import OrderedStateSkipped
from ._queue import HandleT, WaiterQueue
from ._typing import StateT

if TYPE_CHECKING:
    import asyncio
    from types import TracebackType

    from ._subscription import Feed

Record: TypeAlias = "tuple[BaseException | None, TracebackType | None]"
"""Why a transition happened: its cause and the cause's traceback then."""
NO_CAUSE: Final[Record] = (None, None)
Cause: TypeAlias = "tuple[StateT, StateT, Record]"
"""A transition with a cause: previous state, new state, and the record."""

new_state_of: Final = itemgetter(1)
"""The new state of a `Cause`: the key the causes are sorted by."""


def record(cause: BaseException) -> Record:
    """Record ``cause`` with its traceback as it is now."""
    return cause, cause.__traceback__


def skipped(state: StateT, why: Record) -> OrderedStateSkipped[StateT]:
    """``OrderedStateSkipped(state)``, chained to the cause in ``why``, if any."""
    exc = OrderedStateSkipped(state)
    cause, traceback = why
    if cause is not None:
        # The traceback recorded with the cause, not whatever re-raising the
        # shared cause object since then has grown it to (as asyncio.Future
        # keeps an exception's traceback apart): memory stays flat however
        # often callers unwrap and re-raise it.
        exc.__cause__ = cause.with_traceback(traceback)
    return exc


def report_undeliverable(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], error: Exception
) -> None:
    """Report that resuming ``future`` of ``loop`` raised ``error`` (it is dropped)."""
    if loop.is_closed():
        # Its task can never run again; asyncio reports the task itself when
        # it is collected ("Task was destroyed but it is pending").
        return
    loop.call_exception_handler(
        {
            "message": "OrderedStateMachine could not resume a waiter, and dropped it",
            "exception": error,
            "future": future,
        }
    )


class Attachments(WaiterQueue[StateT, HandleT]):
    """Everything a machine holds besides its state, created on first use.

    The pending waiters (this object is their queue), the feeds of open
    subscriptions, and the transitions that carried a cause.
    """

    __slots__ = ("causes", "feeds")

    def __init__(self) -> None:
        """Create empty attachments."""
        super().__init__()
        self.feeds: dict[int, Feed[StateT]] = {}
        # Each transition with a cause, in order, until a rewind below its new
        # state; the new states increase strictly, so a bisection finds the
        # transition past a state.
        self.causes: list[Cause[StateT]] = []

    def cause_past(self, state: StateT) -> Record:
        """Return why the machine moved past ``state``.

        That is the record of the transition from ``prev`` to ``new`` with
        ``not (state < prev)`` and ``state < new``, or `NO_CAUSE` if that
        transition had no cause.
        """
        causes = self.causes
        i = bisect_right(causes, state, key=new_state_of)
        if i < len(causes) and not (state < causes[i][0]):
            return causes[i][2]
        return NO_CAUSE

    def forget_causes_above(self, state: StateT) -> None:
        """Forget the transitions that moved the machine above ``state`` (a rewind).

        Raises what comparing the states raises, forgetting nothing.
        """
        causes = self.causes
        del causes[bisect_right(causes, state, key=new_state_of) :]
