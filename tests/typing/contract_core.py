"""Typing contract of the core API: checked by mypy and pyright, never executed.

``assert_type`` lines state what both checkers must infer. Lines that both
must reject carry ``# type: ignore[<mypy code>]`` and
``# pyright: ignore[<pyright rule>]``; a marker that suppresses nothing is an
error for both checkers, so the file fails the check as soon as a checker
stops reporting an expected error.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from fractions import Fraction

from typing_extensions import assert_type

from ordered_statemachine import (
    MachineStatistics,
    OrderedStateMachine,
    OrderedStateSkipped,
)


class Conn(enum.IntEnum):
    READY = 0
    OPEN = 1
    CLOSED = 2


class Job(enum.IntEnum):
    QUEUED = 0
    DONE = 1


class Colour(enum.Enum):
    RED = 1


@functools.total_ordering
class Phase(enum.Enum):
    FIRST = 1
    SECOND = 2

    def __lt__(self, other: Phase) -> bool:
        return self.value < other.value


# Inference of the state type.
sm = OrderedStateMachine(Conn.READY)
assert_type(sm, OrderedStateMachine[Conn])
assert_type(sm.state, Conn)
assert_type(OrderedStateMachine(0), OrderedStateMachine[int])
assert_type(OrderedStateMachine(0.5), OrderedStateMachine[float])
assert_type(OrderedStateMachine("ready"), OrderedStateMachine[str])
# Pyright keeps the literal types of a tuple display, so tuple states are best
# spelled out: both checkers accept the explicit specialisation.
assert_type(
    OrderedStateMachine[tuple[int, str]]((1, "a")),
    OrderedStateMachine[tuple[int, str]],
)
assert_type(OrderedStateMachine(Phase.FIRST), OrderedStateMachine[Phase])
assert_type(OrderedStateMachine(Fraction(1, 2)), OrderedStateMachine[Fraction])
assert_type(sm.statistics(), MachineStatistics[Conn])
assert_type(sm.statistics().state, Conn)
assert_type(sm.statistics().waiters, int)


async def waits() -> None:
    assert_type(await sm.wait_for_at_least(Conn.OPEN), Conn)
    assert_type(await sm.wait_for(Conn.OPEN), None)
    # The waits compose with asyncio's combinators and keep their types.
    assert_type(await asyncio.wait_for(sm.wait_for_at_least(Conn.OPEN), 5), Conn)
    task = asyncio.create_task(sm.wait_for_at_least(Conn.CLOSED))
    assert_type(await task, Conn)


# The exception is generic in the state it carries.
assert_type(OrderedStateSkipped(Conn.OPEN).skipped_state, Conn)
assert_type(OrderedStateSkipped("open"), OrderedStateSkipped[str])

# Accepted writes.
sm.state = Conn.OPEN
sm.rewind(Conn.READY)
number = OrderedStateMachine(0)
number.state = 1

# Rejected: a state of the wrong type.
sm.state = 1  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
sm.state = Job.DONE  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
sm.rewind(Job.QUEUED)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
sm.rewind(0)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
number.state = "one"  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]


async def rejected_waits() -> None:
    await sm.wait_for(Job.DONE)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await sm.wait_for(1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await sm.wait_for_at_least(Job.DONE)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await sm.wait_for_at_least("open")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# Rejected: state types without an order.
OrderedStateMachine(Colour.RED)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
OrderedStateMachine(object())  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
OrderedStateMachine(None)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]

# Flagged: the loop argument is deprecated (and has no effect).
OrderedStateMachine(Conn.READY, loop=None)  # type: ignore[deprecated]  # pyright: ignore[reportDeprecated]
OrderedStateMachine(Conn.READY, loop=asyncio.new_event_loop())  # type: ignore[deprecated]  # pyright: ignore[reportDeprecated]
