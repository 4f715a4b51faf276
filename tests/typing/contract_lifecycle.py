"""Typing contract of advance(), states() and OrderedEnum (see contract_core.py).

Checked by mypy and pyright, never executed.
"""

from __future__ import annotations

import enum

from typing_extensions import assert_type

from ordered_statemachine import (
    OrderedEnum,
    OrderedStateMachine,
    StateSubscription,
)


class Conn(OrderedEnum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"


class Job(OrderedEnum):
    QUEUED = enum.auto()
    DONE = enum.auto()


# An OrderedEnum subclass is a state type.
sm = OrderedStateMachine(Conn.CONNECTING)
assert_type(sm, OrderedStateMachine[Conn])

# Members of one OrderedEnum compare with each other...
assert_type(Conn.OPEN < Conn.CLOSED, bool)
assert_type(Conn.OPEN >= Conn.CLOSED, bool)
# ...and not with another OrderedEnum's, nor with ints or strings.
other_enum: bool = Conn.OPEN < Job.DONE  # type: ignore[operator]  # pyright: ignore[reportOperatorIssue, reportUnknownVariableType]
other_enum_ge: bool = Conn.OPEN >= Job.QUEUED  # type: ignore[operator]  # pyright: ignore[reportOperatorIssue, reportUnknownVariableType]
an_int: bool = Conn.OPEN < 1  # type: ignore[operator]  # pyright: ignore[reportOperatorIssue, reportUnknownVariableType]
a_str: bool = Conn.OPEN > "open"  # type: ignore[operator]  # pyright: ignore[reportOperatorIssue, reportUnknownVariableType]

# advance() takes a state of the machine's type and an optional exception.
sm.advance(Conn.OPEN)
sm.advance(Conn.CLOSED, cause=ConnectionRefusedError())
sm.advance(Job.DONE)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
sm.advance(Conn.CLOSED, cause="refused")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
sm.advance(Conn.CLOSED, ConnectionRefusedError())  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]

# states() iterates over states of the machine's type.
assert_type(sm.states(), StateSubscription[Conn])
assert_type(sm.statistics().subscribers, int)
assert_type(sm.statistics().causes, int)


async def watch() -> None:
    async for state in sm.states():
        assert_type(state, Conn)
    async with sm.states() as states:
        assert_type(states, StateSubscription[Conn])
        assert_type(await anext(states), Conn)
    subscription: StateSubscription[Job] = sm.states()  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    await subscription.aclose()
