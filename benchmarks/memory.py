"""Memory figures, measured with tracemalloc (run by ``benchmarks/run.py``).

- ``idle``: bytes per idle machine, over ``N_IDLE`` machines constructed with
  an int state (the list that holds them is allocated before tracing starts,
  so only the machines count).
- ``abandoned``: bytes still held, per wait, after ``N_ABANDONED`` waits on a
  machine whose state never changes were started, cancelled and collected.

``python benchmarks/memory.py`` prints them as JSON; ``--smoke`` uses small
counts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import sys
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baselines import ConditionMachine, Floor

from ordered_statemachine import OrderedStateMachine

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

N_IDLE = 100_000
N_ABANDONED = 50_000
HAVE_AIOXMPP = importlib.util.find_spec("aioxmpp") is not None


def _factories() -> dict[str, Callable[[], object]]:
    found: dict[str, Callable[[], object]] = {
        "ours": lambda: OrderedStateMachine(0),
        "condition": lambda: ConditionMachine(0),
        "floor": lambda: Floor(0),
    }
    if HAVE_AIOXMPP:
        import aioxmpp.statemachine  # noqa: PLC0415 (only where installed)

        found["aioxmpp"] = lambda: aioxmpp.statemachine.OrderedStateMachine(0)
    return found


async def idle_bytes(make: Callable[[], object], count: int) -> float:
    """Bytes allocated per machine made by ``make``, over ``count`` machines."""
    machines: list[object] = [None] * count
    make()  # first-use allocations (caches, interned names) are not per machine
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            machines[i] = make()
        allocated = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del machines
    return allocated / count


async def abandoned_bytes(
    make: Callable[[], object],
    wait: Callable[[object], Coroutine[object, object, object]],
    count: int,
) -> float:
    """Bytes retained per wait after ``count`` waits were started and cancelled.

    ``make`` creates a machine, ``wait`` starts a wait on it. A first round on
    a throwaway machine grows what asyncio itself keeps (its registry of
    tasks never shrinks), so that only what the measured machine retains is
    counted.
    """

    async def abandon(machine: object, n: int) -> None:
        tasks = [asyncio.ensure_future(wait(machine)) for _ in range(n)]
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # The loop handle that resumed this coroutine holds gather()'s result
        # (the cancelled tasks' exceptions) until the next loop iteration.
        await asyncio.sleep(0)

    await abandon(make(), count)
    machine = make()
    await abandon(machine, 10)  # first-use allocations are not per wait
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        await abandon(machine, count)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return retained / count


def _wait_at_least_one(machine: object) -> Coroutine[object, object, object]:
    """Start ``machine.wait_for_at_least(1)`` on any of the waitable machines."""
    waitable: ConditionMachine | OrderedStateMachine[int] = machine  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    return waitable.wait_for_at_least(1)


async def measure(*, smoke: bool) -> dict[str, dict[str, float]]:
    """Every memory figure, by figure and implementation."""
    n_idle = 1_000 if smoke else N_IDLE
    n_abandoned = 1_000 if smoke else N_ABANDONED
    figures: dict[str, dict[str, float]] = {"idle": {}, "abandoned": {}}
    for impl, make in _factories().items():
        figures["idle"][impl] = await idle_bytes(make, n_idle)
        if impl != "floor":
            figures["abandoned"][impl] = await abandoned_bytes(
                make, _wait_at_least_one, n_abandoned
            )
    return figures


def main() -> None:
    """Print the memory figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="small counts")
    args = parser.parse_args()
    smoke: bool = args.smoke
    print(json.dumps(asyncio.run(measure(smoke=smoke)), indent=2))


if __name__ == "__main__":
    main()
