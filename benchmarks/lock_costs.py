"""Where the thread-safe machine's uncontended assignment spends its time.

Usage::

    python benchmarks/lock_costs.py
    python benchmarks/lock_costs.py --smoke   # one short round: it runs

A diagnostic, not part of the suite (``run.py`` measures the figures that
have targets): it times one assignment of a greater state, no waiters, on
`OrderedStateMachine`, on `ThreadSafeOrderedStateMachine`, and on three
stand-ins that do the thread-safe setter's work with less protection: a
reentrant lock without the flag that catches a comparison using its own
machine, a plain lock with that flag checked before taking it, and a plain
lock with no flag at all (the cheapest assignment any lock-based design can
have). Prints each against the plain machine. The implementations take
turns, 15 rounds of 200,000 assignments, and each keeps its best round, so
that the ratios compare one period of this machine's load.
"""

from __future__ import annotations

import argparse
import gc
from threading import Lock, RLock
from time import perf_counter
from typing import TYPE_CHECKING, Protocol

from ordered_statemachine import OrderedStateMachine, ThreadSafeOrderedStateMachine

if TYPE_CHECKING:
    from collections.abc import Callable

ROUNDS = 15
ASSIGNMENTS = 200_000


class _Lock(Protocol):
    def acquire(self) -> bool: ...
    def release(self) -> None: ...


class _Assignable(Protocol):
    @property
    def state(self) -> int: ...
    @state.setter
    def state(self, new_state: int) -> None: ...


class _StandIn:
    """The thread-safe setter's fast path, for the plain machine's case."""

    __slots__ = ("_busy", "_lock", "_state", "_threshold")

    def __init__(self, lock: _Lock) -> None:
        self._lock = lock
        self._busy = False
        self._state = 0
        self._threshold: int | None = None


class Unguarded(_StandIn):
    """Lock, store, release: no re-entrancy guard at all."""

    __slots__ = ()

    @property
    def state(self) -> int:
        """The state."""
        return self._state

    @state.setter
    def state(self, new_state: int) -> None:
        lock = self._lock
        lock.acquire()
        try:
            current = self._state
            if not current < new_state:
                raise ValueError(new_state)
            threshold = self._threshold
            if threshold is None or new_state < threshold:
                self._state = new_state
                return
            raise NotImplementedError
        finally:
            lock.release()


class FlagFirst(_StandIn):
    """A plain lock, with the flag tested before taking it (else: deadlock)."""

    __slots__ = ()

    @property
    def state(self) -> int:
        """The state."""
        return self._state

    @state.setter
    def state(self, new_state: int) -> None:
        if self._busy:
            raise RuntimeError
        lock = self._lock
        lock.acquire()
        self._busy = True
        try:
            current = self._state
            if not current < new_state:
                raise ValueError(new_state)
            threshold = self._threshold
            if threshold is None or new_state < threshold:
                self._state = new_state
                return
            raise NotImplementedError
        finally:
            self._busy = False
            lock.release()


def _time(machine: _Assignable, assignments: int) -> float:
    start = perf_counter()
    for state in range(1, assignments + 1):
        machine.state = state
    return (perf_counter() - start) / assignments


def main() -> None:
    """Print each implementation's best round, and its ratio to the plain machine."""
    parser = argparse.ArgumentParser(
        description="Where the thread-safe machine's assignment spends its time."
    )
    parser.add_argument(
        "--smoke", action="store_true", help="one round of 1,000: too short to judge"
    )
    smoke = parser.parse_args().smoke
    rounds, assignments = (1, 1_000) if smoke else (ROUNDS, ASSIGNMENTS)
    gc.enable()  # as in the suite: figures are taken with the collector on
    makers: dict[str, Callable[[], _Assignable]] = {
        "OrderedStateMachine": lambda: OrderedStateMachine(0),
        "ThreadSafeOrderedStateMachine (RLock, flag)": lambda: (
            ThreadSafeOrderedStateMachine(0)
        ),
        "stand-in: RLock, no flag": lambda: Unguarded(RLock()),
        "stand-in: Lock, flag tested first": lambda: FlagFirst(Lock()),
        "stand-in: Lock, no flag": lambda: Unguarded(Lock()),
    }
    best = dict.fromkeys(makers, float("inf"))
    for _ in range(rounds):
        for name, make in makers.items():
            best[name] = min(best[name], _time(make(), assignments))
    plain = best["OrderedStateMachine"]
    for name, seconds in best.items():
        print(f"{name:45} {seconds * 1e9:6.1f} ns  {seconds / plain:.2f}")


if __name__ == "__main__":
    main()
