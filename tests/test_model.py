"""Model-based tests: random interleavings against a plain reference model.

A hypothesis `RuleBasedStateMachine` drives an `OrderedStateMachine` (and, in
its own runs, a `ThreadSafeOrderedStateMachine` on one loop) and a few lines of
obviously correct bookkeeping through random sequences of
assignments, ``advance`` with and without a cause, rewinds, waits started from
new tasks, cancellations and timeouts at any point (before the waiter runs,
after it was resolved but before it resumed), event loop iterations, and
``states()`` subscribers that consume slowly or are abandoned.

The event loop is stepped one iteration at a time, so the model knows when
each waiting task starts (it registers then) and can predict every outcome.
After every rule it checks: the state; the numbers of waiters, subscribers and
causes kept; and that every finished wait ended exactly as the model says
(right value, right skipped state and cause, not early). At the end it checks
that every resolved wait did resume (not late), that the waits resolved by one
transition resumed in the order they started (FIFO), and that abandoned
subscriptions retained nothing.

``HYPOTHESIS_PROFILE=long`` runs 100,000 examples (see docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

import hypothesis
import hypothesis.stateful
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)
from typing_extensions import override

from helpers import LOOP_FACTORIES
from ordered_statemachine import (
    OrderedStateMachine,
    OrderedStateSkipped,
    StateSubscription,
    ThreadSafeOrderedStateMachine,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

STATES = st.integers(min_value=0, max_value=8)
Machine = OrderedStateMachine[int] | ThreadSafeOrderedStateMachine[int]

# Typed here: hypothesis 6.168 (the last for Python 3.10) leaves it untyped.
run_state_machine_as_test: Callable[..., None] = getattr(  # noqa: B009
    hypothesis.stateful, "run_state_machine_as_test"
)
PENDING = "pending"
CANCELLED = "cancelled"
TIMEOUT = "timeout"


class Expiry(Protocol):
    """What the model needs of `asyncio.Timeout` (Python 3.11+)."""

    def reschedule(self, when: float | None) -> None:
        """Move the deadline to ``when``."""


@dataclass
class Wait:
    """One started wait and what the model expects of it."""

    index: int
    kind: str
    """"exact", "least" or "timeout" (at least, inside asyncio.timeout)."""
    target: int
    task: asyncio.Task[None] | None = None
    registered: bool = False
    queued: bool = False
    """Whether the model has it in the machine's queue (registered, not yet
    made due by a transition)."""
    expected: object = PENDING
    """PENDING, CANCELLED, TIMEOUT, ("value", v) or ("skipped", state, cause)."""
    resolved_by: int | None = None
    """Which transition resolved it (for the FIFO check)."""
    seq: int = -1
    """Order of registration."""
    observed: object = PENDING
    expiry: Expiry | None = None
    expiring: bool = False
    expiry_steps: int = 0
    """Loop iterations run since `expire` (the timeout fires in the second)."""
    lingering: bool = False
    """Made due by a transition after its cancellation reached its future:
    the machine counts it until its task runs."""

    def in_machine(self) -> bool:
        """Whether the machine still counts it.

        That is: queued, or lingering, and its task has not run since a
        cancellation (which removes it).
        """
        return (self.queued or self.lingering) and not (
            self.task is not None and self.task.done()
        )

    def future_cancelled(self) -> bool:
        """Whether a cancellation has reached the future of the queued wait."""
        return self.expected == CANCELLED or self.expiry_steps >= 2


@dataclass
class Subscriber:
    """One subscription and the states the model says it holds."""

    subscription: StateSubscription[int] | None
    expected: deque[int] = field(default_factory=deque)


def drop_subscriptions(subscribers: Iterable[Subscriber]) -> None:
    """Drop these subscriptions, whose only references the subscribers hold.

    Each is freed on return, even if a reference cycle holds it. Dropping the
    last reference frees an object at once unless it is in a cycle, and a full
    collection costs time that grows with the heap (hypothesis's own records
    grow through a long run), so the collector runs only if one outlived its
    last reference.
    """
    dropped: list[weakref.ref[StateSubscription[int]]] = []
    for subscriber in subscribers:
        if subscriber.subscription is not None:
            dropped.append(weakref.ref(subscriber.subscription))
            subscriber.subscription = None
    if any(ref() is not None for ref in dropped):
        gc.collect()


if sys.version_info >= (3, 11):

    async def wait_with_expiry(machine: Machine, wait: Wait) -> int:
        """``wait_for_at_least`` inside ``asyncio.timeout``, whose handle is kept."""
        async with asyncio.timeout(None) as expiry:
            wait.expiry = expiry
            return await machine.wait_for_at_least(wait.target)

else:

    async def wait_with_expiry(machine: Machine, wait: Wait) -> int:
        """Not on 3.10: timeout waits are only started from 3.11 on."""
        raise NotImplementedError


class MachineModel(RuleBasedStateMachine):
    """An OrderedStateMachine[int] against its model."""

    loop_name: ClassVar[str] = "asyncio"
    """Which of the tests' event loop implementations runs the tasks."""
    machine_name: ClassVar[str] = "OrderedStateMachine"
    """The machine under test: the plain one, or the thread-safe one."""
    timeouts: ClassVar[bool] = sys.version_info >= (3, 11)
    examples_run: ClassVar[int] = 0
    """Examples torn down since `test_machine_against_model` started."""

    waits = Bundle("waits")
    subscribers = Bundle("subscribers")

    def __init__(self) -> None:
        super().__init__()
        self.loop = LOOP_FACTORIES[self.loop_name]()
        self.loop.set_debug(True)
        self.machine = self.new_machine()
        # The model.
        self.state = 0
        self.causes: list[tuple[int, int, BaseException]] = []
        self.all_waits: list[Wait] = []
        self.open_subscribers: list[Subscriber] = []
        self.transitions = 0
        self.registrations = 0
        self.resumed: list[int] = []

    # -- the model's own rules ------------------------------------------------

    def new_machine(self) -> Machine:
        """The machine under test, at state 0."""
        return OrderedStateMachine(0)

    def model_cause_past(self, state: int) -> BaseException | None:
        """The cause of the transition that moved past ``state`` (a linear scan)."""
        for previous, new, cause in self.causes:
            if previous <= state < new:
                return cause
        return None

    def model_enter(self, new: int, cause: BaseException | None) -> None:
        """Apply a forward transition to the model."""
        self.transitions += 1
        previous = self.state
        self.state = new
        if cause is not None:
            self.causes.append((previous, new, cause))
        for wait in self.all_waits:
            if not wait.in_machine() or wait.target > new:
                continue
            wait.queued = False
            wait.lingering = wait.future_cancelled()
            wait.resolved_by = self.transitions
            if wait.expected != PENDING:
                continue  # cancelled or timed out first: that stands
            if wait.kind == "exact":
                wait.expected = (
                    ("value", None)
                    if wait.target == new
                    else ("skipped", wait.target, cause)
                )
            else:
                wait.expected = ("value", new)
        for subscriber in self.open_subscribers:
            subscriber.expected.append(new)

    def model_register(self, wait: Wait) -> None:
        """Called by a waiting task when it starts: the wait meets the machine."""
        wait.registered = True
        wait.seq = self.registrations
        self.registrations += 1
        if wait.kind == "exact":
            if wait.target == self.state:
                wait.expected = ("value", None)
            elif wait.target < self.state:
                wait.expected = (
                    "skipped",
                    wait.target,
                    self.model_cause_past(wait.target),
                )
        elif wait.target <= self.state:
            wait.expected = ("value", self.state)
        wait.queued = wait.expected == PENDING

    # -- driving the loop -------------------------------------------------------

    def run_one(self) -> None:
        """Run exactly one iteration of the event loop."""
        for wait in self.all_waits:
            if wait.expiring and wait.expected == PENDING:
                wait.expected = TIMEOUT
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        for wait in self.all_waits:
            if wait.expiring:
                wait.expiry_steps += 1

    async def waiting(self, wait: Wait) -> None:
        """The body of a waiting task: register, wait, record the outcome."""
        self.model_register(wait)
        machine = self.machine
        try:
            if wait.kind == "exact":
                await machine.wait_for(wait.target)
                outcome: object = ("value", None)
            elif wait.kind == "least":
                outcome = ("value", await machine.wait_for_at_least(wait.target))
            else:
                outcome = ("value", await wait_with_expiry(machine, wait))
        except OrderedStateSkipped as exc:
            outcome = ("skipped", exc.skipped_state, exc.__cause__)
        except asyncio.CancelledError:
            wait.observed = CANCELLED
            raise
        except TimeoutError:
            outcome = TIMEOUT
        self.resumed.append(wait.index)
        wait.observed = outcome

    # -- rules ------------------------------------------------------------------

    @rule(new=STATES, how=st.sampled_from(["assign", "advance", "cause"]))
    def move_forward(self, new: int, how: str) -> None:
        """Assign, or advance with or without a cause; backwards must fail."""
        cause = RuntimeError(f"cause of {new}") if how == "cause" else None
        if new < self.state:
            with pytest.raises(ValueError, match="cannot rewind"):
                self.assign(new, how, cause)
            return
        self.assign(new, how, cause)
        if new > self.state:
            self.model_enter(new, cause)

    def assign(self, new: int, how: str, cause: BaseException | None) -> None:
        """Move the machine the given way."""
        if how == "assign":
            self.machine.state = new
        else:
            self.machine.advance(new, cause=cause)

    @rule(new=STATES)
    def rewind(self, new: int) -> None:
        """Rewind; forward must fail; causes above are forgotten."""
        if new > self.state:
            with pytest.raises(ValueError, match="cannot forward"):
                self.machine.rewind(new)
            return
        self.machine.rewind(new)
        if new < self.state:
            self.state = new
            self.causes = [record for record in self.causes if record[1] <= new]
            for subscriber in self.open_subscribers:
                subscriber.expected.append(new)

    @rule(target=waits, kind=st.sampled_from(["exact", "least", "timeout"]), on=STATES)
    def start_wait(self, kind: str, on: int) -> Wait:
        """Start a wait in a new task (it registers when the task first runs)."""
        if kind == "timeout" and not self.timeouts:
            kind = "least"
        wait = Wait(index=len(self.all_waits), kind=kind, target=on)
        wait.task = self.loop.create_task(self.waiting(wait))

        def cancelled_before_start(task: asyncio.Task[None]) -> None:
            if task.cancelled():
                wait.observed = CANCELLED

        wait.task.add_done_callback(cancelled_before_start)
        self.all_waits.append(wait)
        return wait

    @rule(wait=waits)
    def cancel(self, wait: Wait) -> None:
        """Cancel a wait's task at any point: a task not yet done ends cancelled."""
        assert wait.task is not None
        if not wait.task.done():
            wait.task.cancel()
            wait.expected = CANCELLED

    @precondition(lambda self: self.timeouts)
    @rule(wait=waits)
    def expire(self, wait: Wait) -> None:
        """Move a timeout wait's deadline to now, from inside the loop.

        The deadline moves at the next iteration; the timeout fires in the one
        after. A wait resolved before that next iteration resumes with its
        value (its wake-up comes first); otherwise it times out.
        """
        task, expiry = wait.task, wait.expiry
        assert task is not None
        if expiry is None or wait.expiring or task.done():
            return
        wait.expiring = True

        def deadline_now() -> None:
            if not task.done():
                expiry.reschedule(self.loop.time())

        self.loop.call_soon(deadline_now)

    @rule(n=st.integers(min_value=1, max_value=3))
    def step(self, n: int) -> None:
        """Run the loop for ``n`` iterations."""
        for _ in range(n):
            self.run_one()

    @rule(target=subscribers)
    def subscribe(self) -> Subscriber:
        """Subscribe to states(): it starts with the current state."""
        subscriber = Subscriber(self.machine.states(), deque([self.state]))
        self.open_subscribers.append(subscriber)
        return subscriber

    @rule(subscriber=subscribers, n=st.integers(min_value=1, max_value=4))
    def consume(self, subscriber: Subscriber, n: int) -> None:
        """Take up to ``n`` buffered states: exactly those the model expects."""
        subscription = subscriber.subscription
        if subscription is None:
            return
        for _ in range(min(n, len(subscriber.expected))):
            # Buffered: the step returns without waiting, by StopIteration.
            # Not pytest.raises: its ExceptionInfo, kept in this frame, would
            # hold the traceback, and through it this frame, in a cycle that
            # keeps the subscription alive until the collector runs.
            try:
                anext(subscription).send(None)
            except StopIteration as done:
                received: object = done.value
            else:
                pytest.fail("a state was buffered, but the subscription waited")
            assert received == subscriber.expected.popleft()

    @rule(subscriber=consumes(subscribers), how=st.sampled_from(["aclose", "drop"]))
    def abandon(self, subscriber: Subscriber, how: str) -> None:
        """Close a subscription, or drop the last reference to it."""
        if subscriber.subscription is None:
            return
        if how == "aclose":
            closing = subscriber.subscription.aclose()
            with pytest.raises(StopIteration):
                closing.send(None)
        drop_subscriptions([subscriber])
        self.open_subscribers.remove(subscriber)

    # -- invariants -------------------------------------------------------------

    @invariant()
    def machine_matches_model(self) -> None:
        """State, waiters, subscribers and causes kept are as the model says."""
        stats = self.machine.statistics()
        assert stats.state == self.state
        assert stats.waiters == sum(wait.in_machine() for wait in self.all_waits)
        assert stats.subscribers == len(self.open_subscribers)
        assert stats.causes == len(self.causes)

    @invariant()
    def finished_waits_ended_as_expected(self) -> None:
        """No wait ends early, twice, or otherwise than the model says."""
        for wait in self.all_waits:
            if wait.observed != PENDING:
                assert wait.observed == wait.expected, wait

    def teardown(self) -> None:
        """Check that resolved waits resumed, in FIFO order; clean up."""
        type(self).examples_run += 1
        try:
            for _ in range(3):
                self.run_one()
            self.check_none_late()
            self.check_fifo()
            # Subscriptions still open are dropped: nothing must remain.
            drop_subscriptions(self.open_subscribers)
            self.open_subscribers.clear()
            assert self.machine.statistics().subscribers == 0
        finally:
            for wait in self.all_waits:
                if wait.task is not None:
                    wait.task.cancel()
            pending = [w.task for w in self.all_waits if w.task is not None]
            if pending:
                self.loop.run_until_complete(
                    asyncio.gather(*pending, return_exceptions=True)
                )
            self.loop.close()

    def check_none_late(self) -> None:
        """Every wait the model resolved has resumed, as the model said."""
        for wait in self.all_waits:
            if wait.expected != PENDING:
                assert wait.task is not None
                assert wait.task.done(), f"resolved but never resumed: {wait}"
                assert wait.observed == wait.expected, wait

    def check_fifo(self) -> None:
        """The waits one transition resolved resumed in the order they started."""
        position = {index: i for i, index in enumerate(self.resumed)}
        by_transition: dict[int, list[Wait]] = {}
        for wait in self.all_waits:
            # Cancelled and timed-out waits may resume at any time.
            if wait.resolved_by is not None and wait.observed not in (
                PENDING,
                CANCELLED,
                TIMEOUT,
            ):
                by_transition.setdefault(wait.resolved_by, []).append(wait)
        for resolved in by_transition.values():
            resumed = sorted(resolved, key=lambda wait: position[wait.index])
            assert [wait.seq for wait in resumed] == sorted(w.seq for w in resumed)


class UvloopMachineModel(MachineModel):
    """The same model on uvloop.

    Without the timeout waits: uvloop schedules a timeout's expiry within the
    same iteration, so the model cannot tell which comes first.
    """

    loop_name = "uvloop"
    timeouts = False


class ThreadSafeMachineModel(MachineModel):
    """The thread-safe machine against the same model, on one loop.

    Without the timeout waits: the model moves the machine while its loop is
    not running, so the thread-safe machine hands each outcome to the loop
    through call_soon_threadsafe, and it arrives one iteration later than the
    plain machine's; which of a timeout and a value comes first then differs
    from the plain machine, and the model cannot tell.
    """

    machine_name = "ThreadSafeOrderedStateMachine"
    timeouts = False

    @override
    def new_machine(self) -> Machine:
        return ThreadSafeOrderedStateMachine(0)


class ThreadSafeUvloopMachineModel(UvloopMachineModel):
    """The thread-safe machine against the same model, on uvloop."""

    machine_name = "ThreadSafeOrderedStateMachine"

    @override
    def new_machine(self) -> Machine:
        return ThreadSafeOrderedStateMachine(0)


NO_UVLOOP = pytest.mark.skipif(
    "uvloop" not in LOOP_FACTORIES, reason="uvloop is not installed"
)


@pytest.mark.parametrize(
    "model",
    [
        MachineModel,
        pytest.param(UvloopMachineModel, marks=NO_UVLOOP),
        ThreadSafeMachineModel,
        pytest.param(ThreadSafeUvloopMachineModel, marks=NO_UVLOOP),
    ],
    ids=["asyncio", "uvloop", "threadsafe-asyncio", "threadsafe-uvloop"],
)
def test_machine_against_model(model: type[MachineModel]) -> None:
    """Random interleavings: the machine does exactly what the model says."""
    settings = hypothesis.settings(stateful_step_count=40)
    model.examples_run = 0
    run_state_machine_as_test(model, settings=settings)
    # The figure docs/reliability.md gives for the long run (pytest -rP shows it).
    print(  # noqa: T201
        f"{model.machine_name} on {model.loop_name}: "
        f"{model.examples_run} examples run, none failed"
    )
