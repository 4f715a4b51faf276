"""The timing benchmarks, as a pyperf script (run by ``benchmarks/run.py``).

Each benchmark is named ``figure[implementation]`` or
``figure[implementation,n]``:

- ``assign[impl,n]``: one assignment of a greater state with ``n`` pending
  waiters, none of which is due (``n = 0``: no waiters);
- ``wake[impl,n]``: per woken waiter, one assignment (or ``Event.set()``)
  that wakes ``n`` ``wait_for_at_least`` waiters, until all have resumed;
- ``handoff[impl]``: a task assigns state ``i + 1`` and yields; another task,
  awaiting ``wait_for(i + 1)``, resumes and starts its next wait.

Implementations: ``ours`` (ordered_statemachine), ``aioxmpp``
(aioxmpp.statemachine 0.13.3, where installed), ``condition`` (the
`asyncio.Condition` baseline in ``baselines.py``), ``floor`` (assignment only)
``floor`` for the hand-off (``HandoffFloor``: a bare future, no bookkeeping)
and ``event`` (`asyncio.Event`, waking only).

Run directly for a single benchmark's raw pyperf output, e.g.
``python benchmarks/suite.py --bench 'assign[ours,0]'``.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import sys
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Protocol, TypeAlias

import pyperf

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baselines import ConditionMachine, Floor, HandoffFloor
from threads import time_bwake, time_tassign, time_thandoff, time_xwake

from ordered_statemachine import OrderedStateMachine, ThreadSafeOrderedStateMachine

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable, Coroutine

HAVE_AIOXMPP = importlib.util.find_spec("aioxmpp") is not None
FAR = 10**18
"""A target no benchmark reaches: its waiters stay pending."""

PENDING_SIZES = (0, 10, 100, 1_000, 10_000, 100_000)
WAKE_SIZES = (10, 100, 1_000, 10_000, 20_000, 100_000)
SMOKE_SIZES = (0, 10, 100)


class Machine(Protocol):
    """What ours and aioxmpp's machines share (their argument names differ)."""

    @property
    def state(self) -> int: ...  # noqa: D102
    @state.setter
    def state(self, value: int, /) -> None: ...
    def wait_for(self, value: int, /) -> Coroutine[object, object, None]: ...  # noqa: D102
    def wait_for_at_least(  # noqa: D102
        self, value: int, /
    ) -> Coroutine[object, object, int | None]: ...


def make_machine(impl: str) -> Machine:
    """Make a machine of ``impl`` ("ours", "threadsafe" or "aioxmpp") at state 0."""
    if impl == "ours":
        return OrderedStateMachine(0)
    if impl == "threadsafe":
        return ThreadSafeOrderedStateMachine(0)
    import aioxmpp.statemachine  # noqa: PLC0415 (only where installed)

    return aioxmpp.statemachine.OrderedStateMachine(0)


async def _cancel_all(tasks: list[asyncio.Task[object]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# assign[impl,n] ----------------------------------------------------------


async def _assign(loops: int, impl: str, pending: int) -> float:
    if impl == "condition":
        return await _assign_condition(loops, pending)
    machine: Machine | Floor
    tasks: list[asyncio.Task[object]] = []
    if impl == "floor":
        machine = Floor(0)
    else:
        waited = make_machine(impl)
        tasks = [
            asyncio.ensure_future(waited.wait_for_at_least(FAR)) for _ in range(pending)
        ]
        machine = waited
    await asyncio.sleep(0)
    start = perf_counter()
    for state in range(1, loops + 1):
        machine.state = state
    elapsed = perf_counter() - start
    await _cancel_all(tasks)
    return elapsed


async def _assign_condition(loops: int, pending: int) -> float:
    machine = ConditionMachine(0)
    tasks: list[asyncio.Task[object]] = [
        asyncio.ensure_future(machine.wait_for_at_least(FAR)) for _ in range(pending)
    ]
    await asyncio.sleep(0)
    start = perf_counter()
    for state in range(1, loops + 1):
        target = machine.rechecks + pending
        await machine.set_state(state)
        # notify_all() woke every waiter: the assignment is done when each
        # has re-checked its predicate (through the lock) and waits again.
        # One loop iteration at a time, so the wait ends when the last waiter
        # is back, not at some later event.
        while machine.rechecks < target:  # noqa: ASYNC110
            await asyncio.sleep(0)
    elapsed = perf_counter() - start
    await _cancel_all(tasks)
    return elapsed


def _gc_on() -> None:
    # Programs run with the collector on, and so do these figures (pyperf
    # leaves it as it is).
    assert gc.isenabled(), "the benchmarks run with the garbage collector on"


def time_assign(loops: int, impl: str, pending: int) -> float:
    """Time ``loops`` assignments of greater states with ``pending`` waiters."""
    _gc_on()
    return asyncio.run(_assign(loops, impl, pending))


# wake[impl,n] -------------------------------------------------------------


Wait: TypeAlias = "Callable[[], Awaitable[object]]"
Trigger: TypeAlias = "Callable[[], Awaitable[None] | None]"


def _wake_setup(impl: str) -> tuple[Wait, Trigger]:
    """Return how to wait on a fresh ``impl``, and how to wake every waiter."""
    if impl == "event":
        event = asyncio.Event()
        return event.wait, event.set
    if impl == "condition":
        condition = ConditionMachine(0)

        def set_condition() -> Awaitable[None]:
            return condition.set_state(1)

        return lambda: condition.wait_for_at_least(1), set_condition
    machine = make_machine(impl)

    def assign() -> None:
        machine.state = 1

    return lambda: machine.wait_for_at_least(1), assign


async def _wake_once(impl: str, n: int) -> float:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    remaining = n
    wait, trigger = _wake_setup(impl)

    async def waiter() -> None:
        nonlocal remaining
        await wait()
        remaining -= 1
        if remaining == 0:
            done.set_result(None)

    tasks = [asyncio.ensure_future(waiter()) for _ in range(n)]
    await asyncio.sleep(0)
    start = perf_counter()
    pending = trigger()
    if pending is not None:
        await pending
    await done
    elapsed = perf_counter() - start
    await asyncio.gather(*tasks)
    return elapsed


async def _wake(loops: int, impl: str, n: int) -> float:
    return sum([await _wake_once(impl, n) for _ in range(loops)])


def time_wake(loops: int, impl: str, n: int) -> float:
    """Time ``loops`` rounds of waking ``n`` waiters at once."""
    _gc_on()
    return asyncio.run(_wake(loops, impl, n))


# handoff[impl] ------------------------------------------------------------


async def _handoff(loops: int, impl: str) -> float:
    condition = ConditionMachine(0) if impl == "condition" else None
    machine: Machine | HandoffFloor | None = None
    if impl == "floor":
        machine = HandoffFloor(0)
    elif condition is None:
        machine = make_machine(impl)

    async def consumer() -> None:
        for state in range(1, loops + 1):
            if condition is not None:
                await condition.wait_for(state)
            else:
                assert machine is not None
                await machine.wait_for(state)

    task = asyncio.ensure_future(consumer())
    await asyncio.sleep(0)
    start = perf_counter()
    for state in range(1, loops + 1):
        if condition is not None:
            await condition.set_state(state)
        else:
            assert machine is not None
            machine.state = state
        await asyncio.sleep(0)
    await task
    return perf_counter() - start


def time_handoff(loops: int, impl: str) -> float:
    """Time ``loops`` hand-offs from an assigning task to a waiting one."""
    _gc_on()
    return asyncio.run(_handoff(loops, impl))


# the suite ----------------------------------------------------------------


def benchmarks(
    *, smoke: bool
) -> list[tuple[str, Callable[..., float], tuple[object, ...], int]]:
    """Every benchmark as (name, time function, arguments, inner loops)."""
    waitable = (
        ["ours", "aioxmpp", "condition"] if HAVE_AIOXMPP else ["ours", "condition"]
    )
    pending_sizes = SMOKE_SIZES if smoke else PENDING_SIZES
    wake_sizes = SMOKE_SIZES[1:] if smoke else WAKE_SIZES
    found: list[tuple[str, Callable[..., float], tuple[object, ...], int]] = [
        ("assign[floor,0]", time_assign, ("floor", 0), 1)
    ]
    for impl in waitable:
        # The Condition baseline wakes every waiter on every assignment; past
        # 10,000 waiters one assignment takes seconds.
        found.extend(
            (f"assign[{impl},{n}]", time_assign, (impl, n), 1)
            for n in pending_sizes
            if not (impl == "condition" and n > 10_000)
        )
    for impl in ["event", *waitable]:
        found.extend((f"wake[{impl},{n}]", time_wake, (impl, n), n) for n in wake_sizes)
    found.extend(
        (f"handoff[{impl}]", time_handoff, (impl,), 1)
        for impl in [*waitable, "floor", "threadsafe"]
    )
    # The thread-safe machine (threads.py).
    found.extend(
        (f"tassign[{impl}]", time_tassign, (impl,), 1)
        for impl in ("ours", "threadsafe", "tcondition")
    )
    found.extend(
        (f"{name}[{impl}]", func, (impl,), 1)
        for name, func, impls in (
            ("thandoff", time_thandoff, ("threadsafe", "tcondition")),
            ("xwake", time_xwake, ("threadsafe", "idiom")),
            ("bwake", time_bwake, ("threadsafe", "tevent")),
        )
        for impl in impls
    )
    return found


def main() -> None:
    """Run the suite (or the benchmarks named by ``--bench``) under pyperf."""

    def forward(cmd: list[str], args: argparse.Namespace) -> None:
        if args.smoke:
            cmd.append("--smoke")
        for name in args.bench:
            cmd.extend(["--bench", name])

    runner = pyperf.Runner(add_cmdline_args=forward)
    runner.argparser.add_argument(
        "--smoke", action="store_true", help="small sizes only, to prove the suite runs"
    )
    runner.argparser.add_argument(
        "--bench", action="append", default=[], help="run only this benchmark"
    )
    args = runner.parse_args()
    smoke: bool = args.smoke
    selected: list[str] = args.bench
    for name, func, func_args, inner_loops in benchmarks(smoke=smoke):
        if not selected or name in selected:
            runner.bench_time_func(name, func, *func_args, inner_loops=inner_loops)


if __name__ == "__main__":
    main()
