"""One OS process of test_redis_processes.py: moves and awaits shared machines.

Usage: ``python redis_worker.py PORT SEED MACHINES OPS FINAL``

Opens the int machines ``m0`` … ``m<MACHINES-1>`` (initial state 0) on the
redis-server at 127.0.0.1:PORT and makes OPS random operations on them:
advances and rewinds (the refused ones are expected: other processes move
the machines too), and waits, exact and at least, each recorded with the
transition of the machine's log it started at (``seq``). One machine's states
are recorded by a subscription. Then it prints ``READY``, and once every
machine has reached FINAL (the test moves them there) and every wait has
ended, prints one line of JSON with what it saw, and exits.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys

import redis.asyncio

from ordered_statemachine import OrderedStateSkipped
from ordered_statemachine.redis import RedisOrderedStateMachine, RedisStateMachines

TIMEOUT = 60.0
"""The longest any wait of this process may take: a bug fails, never hangs."""

Outcome = tuple[str, int, str, int, int, str, int | None]
"""(kind, machine, "exact" or "least", target, seq at the start, outcome, value)."""


async def wait(
    machine: RedisOrderedStateMachine[int], index: int, target: int, *, exact: bool
) -> Outcome:
    """Wait for ``target`` on ``machine``; return what happened and when it began."""
    # Nothing runs between reading seq and the wait's start (awaited
    # directly, not through asyncio.wait_for, which on 3.10 and 3.11 starts
    # it in a task of its own, later): the wait begins exactly after
    # transition ``seq`` of the server's log. main bounds it.
    start = machine.seq
    kind = "exact" if exact else "least"
    try:
        if exact:
            await machine.wait_for(target)
            return ("wait", index, kind, target, start, "entered", None)
        value = await machine.wait_for_at_least(target)
    except OrderedStateSkipped:
        return ("wait", index, kind, target, start, "skipped", None)
    return ("wait", index, kind, target, start, "reached", value)


async def record_states(
    machine: RedisOrderedStateMachine[int], final: int
) -> tuple[int, list[int]]:
    """Every state of ``machine`` from now until ``final``, and the seq it began at."""
    states: list[int] = []
    start = machine.seq
    async with machine.states() as subscription:
        async for state in subscription:
            states.append(state)
            if state == final:
                break
    return start, states


def say(line: str) -> None:
    """Write ``line`` to the test, at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(port: int, seed: int, count: int, ops: int, final: int) -> None:
    """Run the operations, report READY, then the outcomes as JSON."""
    rng = random.Random(seed)
    client = redis.asyncio.Redis(host="127.0.0.1", port=port)
    try:
        async with RedisStateMachines(client) as hub:
            machines = [await hub.open(f"m{i}", 0) for i in range(count)]
            watched = seed % count
            recorded = asyncio.create_task(record_states(machines[watched], final))
            waits: list[asyncio.Task[Outcome]] = []
            moves = {"advanced": 0, "refused": 0}
            for _ in range(ops):
                index = rng.randrange(count)
                machine = machines[index]
                roll = rng.random()
                if roll < 0.4:
                    target = max(0, machine.state + rng.randint(-1, 6))
                    exact = rng.random() < 0.5
                    waits.append(
                        asyncio.create_task(wait(machine, index, target, exact=exact))
                    )
                else:
                    try:
                        if roll < 0.9:
                            await machine.advance(machine.state + rng.randint(-1, 3))
                        else:
                            await machine.rewind(
                                max(0, machine.state - rng.randint(1, 3))
                            )
                        moves["advanced"] += 1
                    except ValueError:
                        moves["refused"] += 1
                # Let the notifications in, now and then more than once.
                for _ in range(rng.randint(0, 3)):
                    await asyncio.sleep(0)
            say("READY")
            outcomes = await asyncio.wait_for(asyncio.gather(*waits), TIMEOUT)
            start, states = await asyncio.wait_for(recorded, TIMEOUT)
            report = {
                "waits": outcomes,
                "watched": watched,
                "states_from": start,
                "states": states,
                "moves": moves,
            }
            say(json.dumps(report))
    finally:
        await client.aclose()


if __name__ == "__main__":
    port, seed, count, ops, final = (int(arg) for arg in sys.argv[1:6])
    asyncio.run(main(port, seed, count, ops, final))
