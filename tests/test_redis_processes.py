"""Machines stored in Redis, moved and awaited by several OS processes at once.

Each process (tests/redis_worker.py) makes random advances, rewinds and
waits on the same machines; every outcome it reports is checked against the
sequential contract, replayed on a local `OrderedStateMachine` in the order
the server applied the transitions (the machine's log, read with XRANGE).

Also here: a differential test, in which the same random program gives the
same outcomes on a Redis machine (moved through one hub, awaited through
another) as on the in-process machine.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from helpers import TIMEOUT, bounded, steps
from ordered_statemachine import OrderedStateMachine, OrderedStateSkipped
from redis_servers import untyped

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from redis_servers import RedisServer

pytest.importorskip("redis.asyncio")

from ordered_statemachine.redis import (
    RedisOrderedStateMachine,
    RedisStateMachines,
    RemoteCause,
)

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("redis_worker.py")
PROCESSES = 4
MACHINES = 3
OPS = 150
FINAL = 10_000
"""Greater than any state a worker reaches: every wait ends once it is entered."""

Transition = tuple[str, int]
"""("f" or "r", the new state): one entry of a machine's log."""


async def server_log(client: Any, name: str) -> list[Transition]:  # noqa: ANN401
    """The transitions of machine ``name`` in the order the server applied them."""
    entries = await client.xrange(f"osm:{{{name}}}:log", "-", "+")
    transitions: list[Transition] = []
    for number, (entry_id, fields) in enumerate(entries, start=1):
        entry = json.loads(fields[b"e"])
        assert entry[0] == number, (name, entry_id)  # none trimmed, none missing
        transitions.append((entry[1], int(entry[5])))
    return transitions


async def replay(
    log: list[Transition], waits: list[tuple[str, int, int]]
) -> list[tuple[str, int | None]]:
    """The outcome of each wait ``(kind, target, start seq)`` under the local contract.

    A local machine takes the server's transitions in order; each wait
    starts right after transition ``start`` (before any, for 0).
    """
    machine = OrderedStateMachine(0)
    tasks: list[asyncio.Task[int | None]] = [
        asyncio.create_task(asyncio.sleep(0)) for _ in waits
    ]
    by_start: dict[int, list[int]] = {}
    for index, (_, _, start) in enumerate(waits):
        by_start.setdefault(start, []).append(index)
    for seq in range(len(log) + 1):
        for index in by_start.get(seq, []):
            kind, target, _ = waits[index]
            waiting = (
                machine.wait_for(target)
                if kind == "exact"
                else machine.wait_for_at_least(target)
            )
            tasks[index] = asyncio.create_task(waiting)
        await steps(2)
        if seq < len(log):
            op, state = log[seq]
            if op == "f":
                machine.advance(state)
            else:
                machine.rewind(state)
    await steps(2)
    outcomes: list[tuple[str, int | None]] = []
    for (kind, _, _), task in zip(waits, tasks, strict=True):
        assert task.done(), "the final state ends every wait"
        if task.exception() is not None:
            assert isinstance(task.exception(), OrderedStateSkipped)
            outcomes.append(("skipped", None))
        elif kind == "exact":
            outcomes.append(("entered", None))
        else:
            outcomes.append(("reached", task.result()))
    return outcomes


async def test_processes_agree_with_the_servers_order(
    redis_server: RedisServer,
) -> None:
    """Four processes move and await three machines; every outcome is the contract's."""
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            *map(str, (redis_server.port, seed, MACHINES, OPS, FINAL)),
            stdout=asyncio.subprocess.PIPE,
        )
        for seed in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), 60)
            assert line == b"READY\n"
        async with RedisStateMachines(redis_server.client()) as hub:
            for i in range(MACHINES):
                await (await hub.open(f"m{i}", 0)).advance(FINAL)
        reports: list[dict[str, Any]] = []
        for worker in workers:
            out, _ = await asyncio.wait_for(worker.communicate(), 60)
            assert worker.returncode == 0
            reports.append(json.loads(out))
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()

    raw = untyped(redis_server.client())
    logs = [await server_log(raw, f"m{i}") for i in range(MACHINES)]
    waits_seen = 0
    for report in reports:
        for machine in range(MACHINES):
            mine = [w for w in report["waits"] if w[1] == machine]
            expected = await replay(
                logs[machine],
                [(kind, target, start) for _, _, kind, target, start, _, _ in mine],
            )
            assert [(w[5], w[6]) for w in mine] == expected
            waits_seen += len(mine)
        # Every state, none skipped, none repeated: the log's, from where it began.
        watched: int = report["watched"]
        start: int = report["states_from"]
        log = logs[watched]
        before = log[start - 1][1] if start else 0
        assert report["states"] == [before] + [state for _, state in log[start:]]
    # The processes really did contend: moves refused, waits of every kind.
    assert sum(r["moves"]["refused"] for r in reports) > 0
    assert sum(r["moves"]["advanced"] for r in reports) >= len(logs[0])
    outcomes = {w[5] for r in reports for w in r["waits"]}
    assert outcomes == {"entered", "skipped", "reached"}
    assert waits_seen > PROCESSES * OPS // 5


Op = tuple[str, int, str | None]
"""(operation, state, cause message): advance, rewind, wait_for, wait_for_at_least."""


def program(rng: random.Random, length: int) -> list[Op]:
    """A random program over small int states, most operations near the state."""
    ops: list[Op] = []
    for _ in range(length):
        kind = rng.choice(
            ["advance", "advance", "rewind", "wait_for", "wait_for_at_least"]
        )
        cause = f"cause {rng.randrange(100)}" if rng.random() < 0.3 else None
        ops.append((kind, rng.randint(0, 12), cause if kind == "advance" else None))
    return ops


Target = OrderedStateMachine[int] | RedisOrderedStateMachine[int]


async def move(mover: Target, kind: str, state: int, cause: str | None) -> str:
    """Make one move; return ``ok``, or the ValueError (the machine named alike)."""
    try:
        if kind == "advance":
            error = RuntimeError(cause) if cause is not None else None
            result = mover.advance(state, cause=error)
        else:
            result = mover.rewind(state)
        if result is not None:  # the Redis machine's moves are coroutines
            await result
    except ValueError as exc:
        name = str(exc).replace("RedisOrderedStateMachine", "OrderedStateMachine")
        return f"ValueError {name}"
    return "ok"


async def run(
    ops: list[Op],
    mover: Target,
    waiter: Target,
    synced: Callable[[], Awaitable[None]],
) -> tuple[list[str], list[str]]:
    """Run ``ops``; return each operation's outcome and the order waits ended in."""
    outcomes: list[str] = []
    ended: list[str] = []
    tasks: list[asyncio.Task[str]] = []

    async def wait(label: str, kind: str, state: int) -> str:
        try:
            if kind == "wait_for":
                await waiter.wait_for(state)
                result = "entered"
            else:
                result = f"reached {await waiter.wait_for_at_least(state)}"
        except OrderedStateSkipped as exc:
            cause = exc.__cause__
            message = cause.message if isinstance(cause, RemoteCause) else cause
            result = f"skipped (cause {message})"
        ended.append(label)
        return result

    for number, (kind, state, cause) in enumerate(ops):
        if kind in {"wait_for", "wait_for_at_least"}:
            label = f"{number} {kind} {state}"
            tasks.append(asyncio.create_task(wait(label, kind, state)))
            outcomes.append(f"{number}: waiting")
        else:
            outcomes.append(f"{number}: {await move(mover, kind, state, cause)}")
        await synced()
    for task in tasks:
        outcomes.append(task.result() if task.done() else "pending")
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return outcomes, ended


@pytest.mark.parametrize("seed", range(12))
async def test_same_program_same_outcomes(redis_server: RedisServer, seed: int) -> None:
    """A random program: the outcomes and wake order of the local machine.

    Moved through one hub and awaited through another (two processes'
    worth), as the local machine is moved and awaited in one.
    """
    ops = program(random.Random(seed), 60)
    local = OrderedStateMachine(0)

    async def settle() -> None:
        await steps(3)

    expected = await run(ops, local, local, settle)
    async with (
        RedisStateMachines(redis_server.client(), prefix=f"d{seed}") as movers,
        RedisStateMachines(redis_server.client(), prefix=f"d{seed}") as waiters,
    ):
        mover = await movers.open("program", 0)
        waiter = await waiters.open("program", 0)

        async def synced() -> None:
            # The waiting hub has followed every transition the mover made.
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while waiter.seq != mover.seq:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.001)
            await steps(3)

        actual = await bounded(run(ops, mover, waiter, synced))
    assert actual == expected
