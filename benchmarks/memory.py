"""Memory figures, measured with tracemalloc (run by ``benchmarks/run.py``).

- ``idle``: bytes per idle machine, over ``N_IDLE`` machines constructed with
  an int state (the list that holds them is allocated before tracing starts,
  so only the machines count).
- ``abandoned``: bytes still held, per wait, after ``N_ABANDONED`` waits on a
  machine whose state never changes were started, cancelled and collected.
- ``pending``: bytes per pending waiter, its task included, over
  ``N_PENDING`` tasks each awaiting one wait on one machine (or event, or
  condition, or, for ``floor``, a bare future): what a program with many
  waiters pays for each.

``python benchmarks/memory.py`` prints them as JSON; ``--smoke`` uses small
counts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import inspect
import json
import sys
import tracemalloc
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baselines import ConditionMachine, Floor

from ordered_statemachine import OrderedStateMachine

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

N_IDLE = 100_000
N_ABANDONED = 50_000
N_PENDING = 20_000
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


# asyncio's registry of every task is a WeakSet whose table grows in steps and
# never shrinks: when it grows is a matter of every task the process ever ran,
# so its allocations are left out of the per-waiter figure.
_TASK_REGISTRY = tracemalloc.Filter(
    inclusive=False, filename_pattern=inspect.getfile(weakref.WeakSet)
)
FAR = 10**18
"""A state no machine reaches here: its waiters stay pending."""


async def pending_bytes(
    wait: Callable[[], Coroutine[object, object, object]], count: int
) -> float:
    """Bytes per pending task awaiting ``wait()``, over ``count`` such tasks."""
    first = [asyncio.ensure_future(wait()) for _ in range(10)]
    await asyncio.sleep(0)  # first-use allocations are not per waiter
    gc.collect()
    tracemalloc.start()
    try:
        tasks = [asyncio.ensure_future(wait()) for _ in range(count)]
        await asyncio.sleep(0)  # every task is now waiting
        snapshot = tracemalloc.take_snapshot().filter_traces([_TASK_REGISTRY])
    finally:
        tracemalloc.stop()
    held = sum(trace.size for trace in snapshot.traces)
    for task in (*first, *tasks):
        task.cancel()
    await asyncio.gather(*first, *tasks, return_exceptions=True)
    return held / count


def _pending_waits() -> dict[str, Callable[[], Coroutine[object, object, object]]]:
    """How each implementation waits, by name: one machine (or event) each."""
    ours_exact, ours_least = OrderedStateMachine(0), OrderedStateMachine(0)
    condition = ConditionMachine(0)
    event = asyncio.Event()

    async def bare_future() -> None:
        await asyncio.get_running_loop().create_future()

    waits: dict[str, Callable[[], Coroutine[object, object, object]]] = {
        "ours wait_for": lambda: ours_exact.wait_for(FAR),
        "ours wait_for_at_least": lambda: ours_least.wait_for_at_least(FAR),
        "condition": lambda: condition.wait_for_at_least(FAR),
        "event": event.wait,
        "floor": bare_future,
    }
    if HAVE_AIOXMPP:
        import aioxmpp.statemachine  # noqa: PLC0415 (only where installed)

        theirs_exact = aioxmpp.statemachine.OrderedStateMachine(0)
        theirs_least = aioxmpp.statemachine.OrderedStateMachine(0)
        waits["aioxmpp wait_for"] = lambda: theirs_exact.wait_for(FAR)
        waits["aioxmpp wait_for_at_least"] = lambda: theirs_least.wait_for_at_least(FAR)
    return waits


def _wait_at_least_one(machine: object) -> Coroutine[object, object, object]:
    """Start ``machine.wait_for_at_least(1)`` on any of the waitable machines."""
    waitable: ConditionMachine | OrderedStateMachine[int] = machine  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    return waitable.wait_for_at_least(1)


async def measure(*, smoke: bool) -> dict[str, dict[str, float]]:
    """Every memory figure, by figure and implementation."""
    n_idle = 1_000 if smoke else N_IDLE
    n_abandoned = 1_000 if smoke else N_ABANDONED
    n_pending = 1_000 if smoke else N_PENDING
    figures: dict[str, dict[str, float]] = {"idle": {}, "abandoned": {}, "pending": {}}
    for impl, make in _factories().items():
        figures["idle"][impl] = await idle_bytes(make, n_idle)
        if impl != "floor":
            figures["abandoned"][impl] = await abandoned_bytes(
                make, _wait_at_least_one, n_abandoned
            )
    # Grow asyncio's task registry past what the measurements need first.
    await pending_bytes(asyncio.Event().wait, n_pending)
    for name, wait in _pending_waits().items():
        figures["pending"][name] = await pending_bytes(wait, n_pending)
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
