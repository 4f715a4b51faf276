"""Typing contract of ThreadSafeOrderedStateMachine: checked, never executed.

It is inferred and checked exactly like OrderedStateMachine, and its blocking
waits are typed like the async ones. See contract_core.py for the markers.
"""

from __future__ import annotations

import asyncio
import enum

from typing_extensions import assert_type

from ordered_statemachine import (
    MachineStatistics,
    OrderedEnum,
    OrderedStateMachine,
    StateSubscription,
    ThreadSafeOrderedStateMachine,
)


class Conn(enum.IntEnum):
    READY = 0
    OPEN = 1
    CLOSED = 2


class Job(OrderedEnum):
    QUEUED = "queued"
    DONE = "done"


class Colour(enum.Enum):
    RED = 1


# Inference of the state type, as for OrderedStateMachine.
sm = ThreadSafeOrderedStateMachine(Conn.READY)
assert_type(sm, ThreadSafeOrderedStateMachine[Conn])
assert_type(sm.state, Conn)
assert_type(ThreadSafeOrderedStateMachine(0), ThreadSafeOrderedStateMachine[int])
assert_type(
    ThreadSafeOrderedStateMachine(Job.QUEUED), ThreadSafeOrderedStateMachine[Job]
)
assert_type(sm.statistics(), MachineStatistics[Conn])
assert_type(sm.states(), StateSubscription[Conn])

# Blocking waits: the same results as the async ones, with a timeout.
assert_type(sm.wait_for_blocking(Conn.OPEN), None)
assert_type(sm.wait_for_blocking(Conn.OPEN, timeout=5), None)
assert_type(sm.wait_for_at_least_blocking(Conn.OPEN), Conn)
assert_type(sm.wait_for_at_least_blocking(Conn.OPEN, timeout=0.5), Conn)


async def waits() -> None:
    assert_type(await sm.wait_for_at_least(Conn.OPEN), Conn)
    assert_type(await sm.wait_for(Conn.OPEN), None)
    task = asyncio.create_task(sm.wait_for_at_least(Conn.CLOSED))
    assert_type(await task, Conn)


# Accepted writes.
sm.state = Conn.OPEN
sm.advance(Conn.CLOSED, cause=ConnectionResetError())
sm.rewind(Conn.READY)

# Rejected: a state of the wrong type, everywhere.
sm.state = 1  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
sm.advance(Job.DONE)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
sm.rewind(0)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
sm.wait_for_blocking(Job.DONE)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
sm.wait_for_at_least_blocking("open")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
sm.advance(Conn.OPEN, cause="refused")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

# Rejected: a timeout that is not a number of seconds, or positional.
sm.wait_for_blocking(Conn.OPEN, timeout="5")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
sm.wait_for_blocking(Conn.OPEN, 5)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]


async def rejected_waits() -> None:
    await sm.wait_for(Job.DONE)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await sm.wait_for_at_least(1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# Rejected: state types without an order.
ThreadSafeOrderedStateMachine(Colour.RED)  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]
ThreadSafeOrderedStateMachine(object())  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]

# Rejected: the two machines are different types.
plain: OrderedStateMachine[Conn] = sm  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]

# No loop argument: it never needed one.
ThreadSafeOrderedStateMachine(Conn.READY, loop=None)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
