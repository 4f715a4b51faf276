"""The thread benchmarks of ``ThreadSafeOrderedStateMachine`` (run by ``suite.py``).

Each is named ``figure[implementation]``:

- ``tassign[impl]``: one uncontended assignment of a greater state, no
  waiters: ``threadsafe`` (our thread-safe machine), ``ours`` (the plain
  machine, for the ratio) and ``tcondition`` (`ThreadConditionMachine`,
  ``threading.Condition`` with ``notify_all``);
- ``thandoff[impl]``: two threads take turns, each blocked until the other
  moves the state one step: ``threadsafe`` (blocking waits) against
  ``tcondition`` (``Condition.wait_for(predicate)``); per hand-off;
- ``xwake[impl]``: a thread makes a change that an asyncio task on an event
  loop in another thread awaits, and waits for the task's acknowledgement:
  ``threadsafe`` (assign; the task awaits ``wait_for_at_least``) against
  ``idiom``, what users write by hand (``loop.call_soon_threadsafe(event.set)``;
  the task awaits ``event.wait()``); per round trip;
- ``bwake[impl]``: the same with a blocked thread as the waiter:
  ``threadsafe`` (``wait_for_at_least_blocking``) against ``tevent``
  (``threading.Event``); per round trip.

The acknowledgement is the same `threading.Lock` in every implementation, so
the ratios compare the wake-ups alone.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from time import perf_counter
from typing import TYPE_CHECKING

from baselines import ThreadConditionMachine

from ordered_statemachine import OrderedStateMachine, ThreadSafeOrderedStateMachine

if TYPE_CHECKING:
    from collections.abc import Callable

TIMEOUT = 60.0
"""Upper bound of any wait here: only a bug reaches it."""


def _gc_on() -> None:
    # As in suite.py: the figures are taken with the collector on.
    assert gc.isenabled(), "the benchmarks run with the garbage collector on"


def time_tassign(loops: int, impl: str) -> float:
    """Time ``loops`` uncontended assignments of greater states."""
    _gc_on()
    if impl == "tcondition":
        condition = ThreadConditionMachine(0)
        start = perf_counter()
        for state in range(1, loops + 1):
            condition.set_state(state)
        return perf_counter() - start
    machine: ThreadSafeOrderedStateMachine[int] | OrderedStateMachine[int]
    if impl == "threadsafe":
        machine = ThreadSafeOrderedStateMachine(0)
    else:
        machine = OrderedStateMachine(0)
    start = perf_counter()
    for state in range(1, loops + 1):
        machine.state = state
    return perf_counter() - start


def time_thandoff(loops: int, impl: str) -> float:
    """Time ``loops`` hand-offs between two threads that take turns."""
    _gc_on()
    if impl == "tcondition":
        condition = ThreadConditionMachine(0)
        wait: Callable[[int], object] = condition.wait_for_at_least
        assign: Callable[[int], object] = condition.set_state
    else:
        machine = ThreadSafeOrderedStateMachine(0)

        def blocking_wait(target: int) -> object:
            return machine.wait_for_at_least_blocking(target, timeout=TIMEOUT)

        wait, assign = blocking_wait, machine.advance

    def other() -> None:
        # Moves the odd states, after the even ones before them.
        for state in range(1, loops + 1, 2):
            wait(state - 1)
            assign(state)

    thread = threading.Thread(target=other)
    thread.start()
    start = perf_counter()
    for state in range(2, loops + 1, 2):
        wait(state - 1)
        assign(state)
    wait(loops)
    elapsed = perf_counter() - start
    thread.join(TIMEOUT)
    return elapsed


class _LoopThread:
    """An event loop running in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever)
        self.thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


def time_xwake(loops: int, impl: str) -> float:
    """Time ``loops`` round trips: a thread changes, a task on another loop wakes."""
    _gc_on()
    ack = threading.Lock()
    ack.acquire()
    other = _LoopThread()
    try:
        if impl == "idiom":
            event = asyncio.Event()

            async def waiter() -> None:
                for _ in range(loops):
                    await event.wait()
                    event.clear()
                    ack.release()

            def set_event(_: int) -> None:
                other.loop.call_soon_threadsafe(event.set)

            trigger: Callable[[int], None] = set_event
        else:
            machine = ThreadSafeOrderedStateMachine(0)

            async def waiter() -> None:
                for state in range(1, loops + 1):
                    await machine.wait_for_at_least(state)
                    ack.release()

            def assign(state: int) -> None:
                machine.state = state

            trigger = assign
        done = asyncio.run_coroutine_threadsafe(waiter(), other.loop)
        start = perf_counter()
        for state in range(1, loops + 1):
            trigger(state)
            ack.acquire(timeout=TIMEOUT)
        elapsed = perf_counter() - start
        done.result(TIMEOUT)
    finally:
        other.close()
    return elapsed


def time_bwake(loops: int, impl: str) -> float:
    """Time ``loops`` round trips: a thread changes, a blocked thread wakes."""
    _gc_on()
    ack = threading.Lock()
    ack.acquire()
    if impl == "tevent":
        event = threading.Event()

        def waiter() -> None:
            for _ in range(loops):
                event.wait(TIMEOUT)
                event.clear()
                ack.release()

        def set_event(_: int) -> None:
            event.set()

        trigger: Callable[[int], None] = set_event
    else:
        machine = ThreadSafeOrderedStateMachine(0)

        def waiter() -> None:
            for state in range(1, loops + 1):
                machine.wait_for_at_least_blocking(state, timeout=TIMEOUT)
                ack.release()

        def assign(state: int) -> None:
            machine.state = state

        trigger = assign
    thread = threading.Thread(target=waiter)
    thread.start()
    start = perf_counter()
    for state in range(1, loops + 1):
        trigger(state)
        ack.acquire(timeout=TIMEOUT)
    elapsed = perf_counter() - start
    thread.join(TIMEOUT)
    return elapsed
