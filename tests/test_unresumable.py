"""Waiters and subscribers that cannot be resumed never disturb a transition.

A machine can be shared by successive event loops. A task left waiting on a
loop that was then closed can never run again, and resolving its future
raises ``RuntimeError: Event loop is closed``. The transition must go on as
if that waiter were not there: the state changes, every other waiter is
resolved (in FIFO order), every other subscriber gets the state, and the
counts stay right.

Regression: ``set_result`` raised inside the transition, after the state had
changed and the later waiters had been taken off the queue: they were never
resolved (a lost wake-up), subscribers missed the state, and ``advance``
raised although it promises to change nothing when it does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, cast

import pytest

from helpers import LOOP_FACTORIES, TIMEOUT, bounded, steps
from ordered_statemachine import (
    OrderedStateMachine,
    OrderedStateSkipped,
    ThreadSafeOrderedStateMachine,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    Machine = OrderedStateMachine[int] | ThreadSafeOrderedStateMachine[int]
    """Either kind of machine, of int states."""
    Start = Callable[[Coroutine[object, object, object]], asyncio.Task[object]]
    """Start a coroutine on the loop that the test will close."""

# The orphaned task is reported by asyncio when it is collected, as it should.
pytestmark = pytest.mark.asyncio_log("Task was destroyed but it is pending")


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def on_closed_loop(request: pytest.FixtureRequest) -> Iterator[Start]:
    """Start coroutines on another loop and run it one step; it is then closed."""
    make: Callable[[], asyncio.AbstractEventLoop] = LOOP_FACTORIES[request.param]
    loop = make()
    orphans: list[asyncio.Task[object]] = []

    def start(coroutine: Coroutine[object, object, object]) -> asyncio.Task[object]:
        orphans.append(loop.create_task(coroutine))

        def one_step_then_close() -> None:
            loop.run_until_complete(asyncio.sleep(0))  # the orphan now waits
            loop.close()

        # A thread of its own, since this one runs the test's loop; the test
        # waits for it, so the machine is used by one thread at a time.
        thread = threading.Thread(target=one_step_then_close)
        thread.start()
        thread.join(TIMEOUT)
        assert loop.is_closed()
        return orphans[-1]

    try:
        yield start
    finally:
        # Closing the orphans' coroutines runs the waits' cleanup, as the
        # garbage collector would.
        for orphan in orphans:
            # None for an eager task (3.12+), which typeshed allows on 3.12+
            # only: typed as object, the check is necessary on every version.
            coroutine = cast("object", orphan.get_coro())
            if isinstance(coroutine, (Coroutine, Generator)):
                coroutine.close()


async def consume(
    machine: OrderedStateMachine[int], into: list[int], until: int
) -> None:
    """Append every state of ``machine`` to ``into`` until ``until``."""
    async with machine.states() as states:
        async for state in states:
            into.append(state)
            if state >= until:
                return


class TestClosedLoop:
    """Waiters and subscribers left on a closed loop, and a transition."""

    @pytest.mark.parametrize("orphan_kind", ["wait_for", "wait_for_at_least"])
    async def test_orphaned_waiter_is_dropped(
        self, on_closed_loop: Start, orphan_kind: str
    ) -> None:
        """The state changes, every other waiter and subscriber gets it, in order."""
        machine = OrderedStateMachine(0)
        order: list[str] = []

        async def wait(name: str, target: int, *, exact: bool) -> None:
            try:
                if exact:
                    await machine.wait_for(target)
                else:
                    await machine.wait_for_at_least(target)
            except OrderedStateSkipped:
                order.append(f"{name} skipped")
            else:
                order.append(name)

        first = asyncio.create_task(wait("first", 2, exact=True))
        seen: list[int] = []
        watcher = asyncio.create_task(consume(machine, seen, 2))
        await steps()
        orphan = on_closed_loop(
            machine.wait_for(1)
            if orphan_kind == "wait_for"
            else machine.wait_for_at_least(1)
        )
        later = [
            asyncio.create_task(wait("skipped", 1, exact=True)),
            asyncio.create_task(wait("at least", 2, exact=False)),
            asyncio.create_task(wait("pending", 3, exact=True)),
        ]
        await steps()
        assert machine.statistics().waiters == 5
        machine.state = 2  # must not raise
        assert machine.state == 2
        await bounded(asyncio.gather(first, *later[:2], watcher))
        assert order == ["first", "skipped skipped", "at least"]
        assert seen == [0, 2]
        # The orphan is not counted; the one pending waiter still is, and
        # still wakes.
        assert machine.statistics().waiters == 1
        machine.state = 3
        await bounded(later[2])
        assert order[-1] == "pending"
        assert machine.statistics().waiters == 0
        assert not orphan.done()  # its loop is gone: it never ran again

    @pytest.mark.parametrize("how", ["assign", "advance with a cause"])
    async def test_lone_orphan_is_dropped(
        self, on_closed_loop: Start, how: str
    ) -> None:
        """The one waiter of the machine, on a closed loop: the transition completes."""
        machine = OrderedStateMachine(0)
        orphan = on_closed_loop(machine.wait_for_at_least(1))
        assert machine.statistics().waiters == 1
        if how == "assign":
            machine.state = 1  # must not raise
        else:
            machine.advance(1, cause=RuntimeError("why"))
        assert machine.state == 1
        assert machine.statistics().waiters == 0
        assert await bounded(machine.wait_for_at_least(1)) == 1
        assert not orphan.done()

    async def test_orphaned_subscriber_is_dropped(self, on_closed_loop: Start) -> None:
        """A subscriber waiting on a closed loop is closed; the others are fed."""
        machine = OrderedStateMachine(0)
        before: list[int] = []
        early = asyncio.create_task(consume(machine, before, 2))
        await steps()
        orphaned: list[int] = []
        orphan = on_closed_loop(consume(machine, orphaned, 2))
        after: list[int] = []
        late = asyncio.create_task(consume(machine, after, 2))
        await steps()
        assert machine.statistics().subscribers == 3
        machine.state = 1  # must not raise
        assert machine.statistics().subscribers == 2
        machine.state = 2
        await bounded(asyncio.gather(early, late))
        assert before == after == [0, 1, 2]
        assert orphaned == [0]
        assert machine.statistics().subscribers == 0
        assert not orphan.done()


class BrokenFuture(asyncio.Future[object]):
    """A future whose resolution fails, as a faulty custom loop's might."""

    def set_result(self, result: object, /) -> None:
        """Refuse."""
        del result
        msg = "this future cannot be resolved"
        raise RuntimeError(msg)


def dropped_reports(scenario: Coroutine[object, object, None]) -> int:
    """Run ``scenario`` on a new loop; return how many waiters it reported dropped.

    Each report the loop's exception handler hears must be a `BrokenFuture`
    dropped, with the error it raised.
    """
    loop = asyncio.new_event_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        loop.run_until_complete(scenario)
    finally:
        loop.close()
    for context in reported:
        assert context["message"] == (
            "OrderedStateMachine could not resume a waiter, and dropped it"
        )
        assert isinstance(context["exception"], RuntimeError)
        assert isinstance(context["future"], BrokenFuture)
    return len(reported)


def new_machine(*, threadsafe: bool) -> Machine:
    """A machine in state 0, thread-safe or plain."""
    return ThreadSafeOrderedStateMachine(0) if threadsafe else OrderedStateMachine(0)


class TestFaultyLoop:
    """Resolving a waiter fails on a loop that is still open."""

    @pytest.mark.parametrize("threadsafe", [False, True], ids=["plain", "threadsafe"])
    def test_lone_waiter_reported_to_the_loop(self, *, threadsafe: bool) -> None:
        """The only waiter (the plain machine's shortest path) is reported too."""
        machine = new_machine(threadsafe=threadsafe)

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            loop.create_future = lambda: BrokenFuture(loop=loop)  # type: ignore[method-assign]
            broken = asyncio.create_task(machine.wait_for_at_least(1))
            await steps()
            del loop.create_future
            machine.state = 1  # must not raise
            assert machine.statistics().waiters == 0
            broken.cancel()
            await asyncio.gather(broken, return_exceptions=True)

        assert dropped_reports(scenario()) == 1

    @pytest.mark.parametrize("threadsafe", [False, True], ids=["plain", "threadsafe"])
    def test_reported_to_the_loop_and_dropped(self, *, threadsafe: bool) -> None:
        """The loop's exception handler hears of it; the transition completes."""
        machine = new_machine(threadsafe=threadsafe)
        outcomes: list[str] = []

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            good = asyncio.create_task(machine.wait_for_at_least(1))
            consumer = machine.states()
            assert await anext(consumer) == 0  # buffered: the next one waits
            await steps()
            # The waits that start in this step get futures that cannot be
            # resolved (asyncio's own helpers need working ones afterwards).
            loop.create_future = lambda: BrokenFuture(loop=loop)  # type: ignore[method-assign]
            broken = asyncio.create_task(machine.wait_for(1))
            anext_ = asyncio.ensure_future(anext(consumer))
            await steps()
            del loop.create_future
            machine.state = 1  # must not raise
            outcomes.append(f"good {await bounded(good)}")
            assert machine.statistics().waiters == 0
            assert machine.statistics().subscribers == 0
            broken.cancel()
            anext_.cancel()
            await asyncio.gather(broken, anext_, return_exceptions=True)

        assert dropped_reports(scenario()) == 2  # the waiter and the subscriber
        assert outcomes == ["good 1"]
