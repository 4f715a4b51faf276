"""Typing contract of the Redis machines: checked, never executed.

A machine stored in Redis is inferred and checked like `OrderedStateMachine`
(from its initial state, or from its codec), and a state type with no codec
of its own needs one. See contract_core.py for the markers.
"""

from __future__ import annotations

import enum
from typing import Literal

from typing_extensions import assert_type

from ordered_statemachine import (
    MachineStatistics,
    OrderedEnum,
    OrderedStateMachine,
    StateSubscription,
)
from ordered_statemachine.redis import (
    EnumCodec,
    IntCodec,
    RedisOrderedStateMachine,
    RedisStateMachines,
    StateCodec,
    StrCodec,
)


class Conn(enum.IntEnum):
    READY = 0
    OPEN = 1


class Job(OrderedEnum):
    QUEUED = "queued"
    DONE = "done"


class Versions:
    """A codec of one's own, for (major, minor) pairs."""

    name = "version"
    rank_kind: Literal["str"] = "str"

    def encode(self, state: tuple[int, int]) -> tuple[str, str]:
        return f"{state[0]:04}.{state[1]:04}", f"{state[0]}.{state[1]}"

    def decode(self, rank: str, text: str) -> tuple[int, int]:
        major, minor = text.split(".")
        state = int(major), int(minor)
        if self.encode(state)[0] != rank:
            raise ValueError(rank)
        return state


async def inferred(machines: RedisStateMachines) -> None:
    job = await machines.open("job", Job.QUEUED)
    assert_type(job, RedisOrderedStateMachine[Job])
    assert_type(job.state, Job)
    assert_type(await job.read(), Job)
    assert_type(await job.wait_for_at_least(Job.DONE), Job)
    assert_type(await job.wait_for(Job.DONE), None)
    assert_type(job.states(), StateSubscription[Job])
    assert_type(job.statistics(), MachineStatistics[Job])
    assert_type(job.seq, int)
    assert_type(await job.expire(60), bool)
    assert_type(await job.advance(Job.DONE, cause=RuntimeError()), None)
    assert_type(await job.rewind(Job.QUEUED), None)
    assert_type(await machines.open("conn", Conn.READY), RedisOrderedStateMachine[Conn])
    assert_type(await machines.open("n", 0), RedisOrderedStateMachine[int])
    assert_type(await machines.open("s", "a"), RedisOrderedStateMachine[str])
    release = await machines.open("v", (1, 2), codec=Versions())
    assert_type(release, RedisOrderedStateMachine[tuple[int, int]])
    assert_type(EnumCodec(Job), EnumCodec[Job])
    codec: StateCodec[tuple[int, int]] = Versions()
    assert_type(codec.encode((1, 0)), tuple[str, str])
    ints: StateCodec[int] = IntCodec()
    strs: StateCodec[str] = StrCodec()
    assert_type((ints.decode("1", "1"), strs.decode("a", "a")), tuple[int, str])


async def rejected(machines: RedisStateMachines) -> None:
    job = await machines.open("job", Job.QUEUED)
    # A state of another type, everywhere.
    await job.advance(Conn.OPEN)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await job.rewind("queued")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await job.wait_for(1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await job.wait_for_at_least(Conn.OPEN)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await job.advance(Job.DONE, cause="failed")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    # The state is the server's: written by advance and rewind only.
    job.state = Job.DONE  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]
    # A state type with no codec of its own needs one; a codec fits its type.
    await machines.open("f", 1.5)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    await machines.open("v", (1, 2))  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    await machines.open("n", 0, codec=StrCodec())  # type: ignore[misc]  # pyright: ignore[reportCallIssue, reportArgumentType]
    # Not a local machine, though its contract is.
    _plain: OrderedStateMachine[Job] = job  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    # Keyword-only options.
    RedisStateMachines(machines.client, "app")  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
