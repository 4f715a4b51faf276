"""Stress: many threads and loops at once, every outcome checked against the model.

Each round, on a fresh ``ThreadSafeOrderedStateMachine``:

- advancing threads make random assignments (with and without a cause),
  equal assignments and rewinds. Each holds ``history.lock`` across its call
  and appends the operation to the history before releasing it, so the
  history is the order in which the operations took effect on the machine;
- waiting tasks on two asyncio and two uvloop loops, each loop in a thread
  of its own (in debug mode), start ``wait_for`` and ``wait_for_at_least``
  waits on random targets, some cut short by a timeout;
- plain threads make blocking waits, some with a short timeout.

A wait notes the length of the history before it starts and when its
outcome is seen. The wait took effect somewhere in between: its outcome must
be what the sequential contract gives for some registration point in that
window (the cause included, by identity). The switch interval is tiny, to
force interleavings. After the last round: no waiter is left, asyncio logged
nothing (the conftest checks that across threads), and memory is flat across
rounds.
"""

from __future__ import annotations

import asyncio
import gc
import random
import sys
import threading
import tracemalloc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from helpers import LOOP_FACTORIES, TIMEOUT, LoopThread
from ordered_statemachine import OrderedStateSkipped, ThreadSafeOrderedStateMachine

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow

ADVANCERS = 3
OPS_PER_ADVANCER = 150
WAITS_PER_LOOP = 150
WAITS_PER_BLOCKER = 40
BLOCKERS = 3
ROUNDS = 4
FINAL = 10**6
"""The last state: greater than every target (a wait that starts after it
ends at once), so every pending wait ends."""


@dataclass
class Op:
    """One operation that took effect: an assignment, an advance or a rewind."""

    kind: str  # "forward", "equal" or "rewind"
    state: int
    cause: BaseException | None = None


@dataclass
class History:
    """The operations, in the order they took effect, and the lock that orders them."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ops: list[Op] = field(default_factory=list)

    def length(self) -> int:
        """The number of operations that took effect so far.

        Under the lock: an advancer holds it from its call to its append, so
        an operation whose effect a waiter has seen is counted.
        """
        with self.lock:
            return len(self.ops)


@dataclass
class Outcome:
    """A wait: what it awaited, the window it took effect in, how it ended."""

    exact: bool
    target: int
    start: int
    """The length of the history before the wait started."""
    end: int = -1
    """The length of the history when the outcome was seen."""
    result: tuple[object, ...] = ()


class Model:
    """The sequential contract, over a history (the states start at 0)."""

    def __init__(self, ops: list[Op]) -> None:
        self.ops = ops
        # states[i], causes[i]: the state, and the transitions with a cause
        # kept, after the first i operations.
        self.states = [0]
        self.causes: list[list[tuple[int, int, BaseException]]] = [[]]
        for op in ops:
            state, causes = self.states[-1], list(self.causes[-1])
            if op.kind == "forward":
                if op.cause is not None:
                    causes.append((state, op.state, op.cause))
            elif op.kind == "rewind":
                causes = [kept for kept in causes if not op.state < kept[1]]
            self.states.append(op.state)
            self.causes.append(causes)

    def outcome(self, exact: bool, target: int, at: int) -> tuple[object, ...]:  # noqa: FBT001
        """What a wait registered after ``at`` operations ends with.

        ("pending",) if none of the operations decides it.
        """
        state = self.states[at]
        if exact and target == state:
            return ("entered",)
        if not state < target:
            if not exact:
                return ("reached", state)
            cause = next(
                (c for prev, new, c in self.causes[at] if prev <= target < new), None
            )
            return ("skipped", cause)
        for index in range(at, len(self.ops)):
            op = self.ops[index]
            if op.kind != "forward" or op.state < target:
                continue
            if not exact:
                return ("reached", op.state)
            return ("entered",) if op.state == target else ("skipped", op.cause)
        return ("pending",)

    def consistent(self, wait: Outcome) -> bool:
        """Whether the wait's outcome fits some registration point in its window."""
        window = range(wait.start, wait.end + 1)
        if wait.result[0] in {"timeout", "cancelled"}:
            # It gave up while still pending: at its registration, the target
            # was not yet reached.
            return any(self.states[at] < wait.target for at in window)
        return any(
            self.outcome(wait.exact, wait.target, at) == wait.result for at in window
        )


def advance(
    machine: ThreadSafeOrderedStateMachine[int], history: History, seed: int
) -> None:
    """Make random operations, each recorded in the history as it takes effect."""
    rng = random.Random(seed)
    for _ in range(OPS_PER_ADVANCER):
        with history.lock:
            state = machine.state
            roll = rng.random()
            if roll < 0.7:
                new = state + rng.randint(1, 3)
                cause = RuntimeError(f"to {new}") if rng.random() < 0.3 else None
                machine.advance(new, cause=cause)
                history.ops.append(Op("forward", new, cause))
            elif roll < 0.8:
                machine.state = state
                history.ops.append(Op("equal", state))
            else:
                new = max(0, state - rng.randint(0, 3))
                machine.rewind(new)
                history.ops.append(Op("rewind", new))


async def wait_on_loop(
    machine: ThreadSafeOrderedStateMachine[int], history: History, seed: int
) -> list[Outcome]:
    """Start random waits, some with a timeout; return how each ended."""
    rng = random.Random(seed)

    async def one(wait: Outcome, timeout: float | None) -> None:
        try:
            if wait.exact:
                await asyncio.wait_for(machine.wait_for(wait.target), timeout)
                wait.result = ("entered",)
            else:
                reached = await asyncio.wait_for(
                    machine.wait_for_at_least(wait.target), timeout
                )
                wait.result = ("reached", reached)
        except OrderedStateSkipped as exc:
            wait.result = ("skipped", exc.__cause__)
        except asyncio.TimeoutError:
            wait.result = ("timeout",)
        wait.end = history.length()

    waits: list[Outcome] = []
    tasks: list[asyncio.Task[None]] = []
    for _ in range(WAITS_PER_LOOP):
        wait = Outcome(
            exact=rng.random() < 0.5,
            target=min(machine.state + rng.randint(-1, 4), FINAL - 1),
            start=history.length(),
        )
        waits.append(wait)
        timeout = rng.choice([None, None, 0.001, 0.01])
        tasks.append(asyncio.create_task(one(wait, timeout)))
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*tasks), 10 * TIMEOUT)
    return waits


def block(
    machine: ThreadSafeOrderedStateMachine[int],
    history: History,
    seed: int,
    into: list[Outcome],
) -> None:
    """Make random blocking waits, some with a short timeout."""
    rng = random.Random(seed)
    for _ in range(WAITS_PER_BLOCKER):
        wait = Outcome(
            exact=rng.random() < 0.5,
            target=min(machine.state + rng.randint(-1, 4), FINAL - 1),
            start=history.length(),
        )
        timeout = rng.choice([10 * TIMEOUT, 0.001, 0.01])
        try:
            if wait.exact:
                machine.wait_for_blocking(wait.target, timeout=timeout)
                wait.result = ("entered",)
            else:
                reached = machine.wait_for_at_least_blocking(
                    wait.target, timeout=timeout
                )
                wait.result = ("reached", reached)
        except OrderedStateSkipped as exc:
            wait.result = ("skipped", exc.__cause__)
        except TimeoutError:
            wait.result = ("timeout",)
        wait.end = history.length()
        into.append(wait)


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    """Switch threads as often as the interpreter allows."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def one_round(seed: int) -> tuple[int, int]:
    """Run a round; check every outcome; return (waits checked, operations)."""
    machine = ThreadSafeOrderedStateMachine(0)
    history = History()
    loops = [LoopThread(name) for name in sorted(LOOP_FACTORIES) for _ in range(2)]
    try:
        loop_waits = [
            loop.submit(wait_on_loop(machine, history, seed * 100 + i))
            for i, loop in enumerate(loops)
        ]
        blocked: list[Outcome] = []
        threads = [
            threading.Thread(
                target=advance, args=(machine, history, seed * 100 + 10 + i)
            )
            for i in range(ADVANCERS)
        ] + [
            threading.Thread(
                target=block, args=(machine, history, seed * 100 + 20 + i, blocked)
            )
            for i in range(BLOCKERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads[:ADVANCERS]:
            thread.join(10 * TIMEOUT)
        # Every wait still pending ends: the last transition passes them all.
        with history.lock:
            machine.advance(FINAL)
            history.ops.append(Op("forward", FINAL))
        for thread in threads[ADVANCERS:]:
            thread.join(10 * TIMEOUT)
        assert not any(thread.is_alive() for thread in threads)
        waits = [wait for done in loop_waits for wait in done.result(10 * TIMEOUT)]
    finally:
        for loop in loops:
            loop.close()
    waits += blocked
    model = Model(history.ops)
    wrong = [wait for wait in waits if not model.consistent(wait)]
    assert not wrong, wrong[:5]
    assert machine.statistics().waiters == 0
    assert machine.statistics().subscribers == 0
    return len(waits), len(history.ops)


@pytest.mark.uninstrumented
def test_linearizable_under_stress(tiny_switch_interval: None) -> None:
    """Every outcome fits the sequential model; nothing is left; memory is flat."""
    del tiny_switch_interval
    totals = [0, 0]
    kept: list[int] = []
    tracemalloc.start()
    try:
        for seed in range(ROUNDS):
            waits, ops = one_round(seed)
            totals[0] += waits
            totals[1] += ops
            gc.collect()
            kept.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    # What the first round leaves (caches, interned names, asyncio's registry
    # of tasks) is not growth; each later round must leave about nothing.
    growth = kept[-1] - kept[1]
    per_wait = growth / totals[0]
    print(  # noqa: T201 (docs/threads.md gives these figures; pytest -rP shows them)
        f"{totals[0]} waits and {totals[1]} operations checked; "
        f"memory kept after rounds 2 to {ROUNDS}: {kept[1:]} B"
    )
    assert per_wait < 10, kept
