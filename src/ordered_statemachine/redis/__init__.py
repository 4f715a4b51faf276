"""Ordered state machines stored in Redis, awaited from any process.

Needs the ``redis`` extra (``pip install 'ordered-statemachine[redis]'``),
which brings redis-py; the rest of the package never imports it. Works with
Redis 6.2 or newer (and Valkey) and Redis Cluster::

    async with RedisStateMachines(redis.asyncio.Redis()) as machines:
        job = await machines.open("job:42", Job.QUEUED)
        await job.wait_for_at_least(Job.DONE)
"""

from __future__ import annotations

from ordered_statemachine.redis._codec import (
    EnumCodec,
    IntCodec,
    RankKind,
    StateCodec,
    StrCodec,
)
from ordered_statemachine.redis._errors import (
    CorruptState,
    HistoryLost,
    RedisMachineError,
    StateRegressed,
)
from ordered_statemachine.redis._hub import (
    RedisClient,
    RedisOrderedStateMachine,
    RedisStateMachines,
    RemoteCause,
)

__all__ = [
    "CorruptState",
    "EnumCodec",
    "HistoryLost",
    "IntCodec",
    "RankKind",
    "RedisClient",
    "RedisMachineError",
    "RedisOrderedStateMachine",
    "RedisStateMachines",
    "RemoteCause",
    "StateCodec",
    "StateRegressed",
    "StrCodec",
]
