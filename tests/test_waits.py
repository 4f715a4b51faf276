"""``wait_for`` and ``wait_for_at_least``: immediate answers, waiting, cancellation."""

from __future__ import annotations

import asyncio
import gc
import math
import random
import sys
import tracemalloc
import weakref

import pytest

from helpers import TIMEOUT, Conn, OnlyLtEq, bounded, steps
from ordered_statemachine import OrderedStateMachine, OrderedStateSkipped


class TestImmediate:
    """Waits that are decided when they start never suspend."""

    async def test_wait_for_current_state_returns_at_once(self) -> None:
        """``wait_for(current)`` returns None without suspending."""
        machine = OrderedStateMachine(Conn.OPEN)
        coro = machine.wait_for(Conn.OPEN)
        with pytest.raises(StopIteration) as info:
            coro.send(None)
        assert info.value.value is None

    async def test_wait_for_passed_state_raises_skipped(self) -> None:
        """``wait_for`` of a state already passed raises OrderedStateSkipped(state)."""
        machine = OrderedStateMachine(Conn.CLOSING)
        with pytest.raises(OrderedStateSkipped) as info:
            await bounded(machine.wait_for(Conn.OPEN))
        assert info.value.skipped_state is Conn.OPEN
        assert machine.statistics().waiters == 0

    @pytest.mark.parametrize("target", [Conn.READY, Conn.OPEN], ids=["less", "equal"])
    async def test_wait_for_at_least_satisfied_returns_current_state(
        self, target: Conn
    ) -> None:
        """``wait_for_at_least(t)`` returns the current state if it is not below t."""
        machine = OrderedStateMachine(Conn.OPEN)
        coro = machine.wait_for_at_least(target)
        with pytest.raises(StopIteration) as info:
            coro.send(None)
        assert info.value.value is Conn.OPEN

    @pytest.mark.parametrize("kind", ["wait_for", "wait_for_at_least"])
    @pytest.mark.parametrize(
        ("target", "message"),
        [
            ("two", r"^'<' not supported between instances of 'float' and 'str'$"),
            (
                math.nan,
                (
                    r"^states must be ordered, but nan is neither less than, equal "
                    r"to nor greater than the current state 1\.0$"
                ),
            ),
        ],
        ids=["incomparable", "nan"],
    )
    async def test_bad_target_raises_type_error_and_registers_nothing(
        self, kind: str, target: object, message: str
    ) -> None:
        """An incomparable or NaN target raises TypeError before anything is queued."""
        machine = OrderedStateMachine(1.0)
        with pytest.raises(TypeError, match=message):
            await bounded(getattr(machine, kind)(target))
        assert machine.statistics().waiters == 0

    async def test_target_incomparable_with_another_target_registers_nothing(
        self,
    ) -> None:
        """A target incomparable with a queued target raises; nothing is queued."""
        machine = OrderedStateMachine[tuple[object, ...]]((0,))
        first = asyncio.create_task(machine.wait_for((1, "a")))
        await steps()
        with pytest.raises(TypeError):
            await bounded(machine.wait_for((1, 2)))
        assert machine.statistics().waiters == 1
        machine.state = (1, "a")
        await bounded(first)
        assert machine.statistics().waiters == 0


class TestWaiting:
    """Waits that suspend until an assignment decides them."""

    async def test_wait_for_at_least_returns_the_state_that_satisfied_it(self) -> None:
        """The result is the satisfying state, even if the machine has moved on."""
        machine = OrderedStateMachine(Conn.READY)
        task = asyncio.create_task(machine.wait_for_at_least(Conn.OPEN))
        await steps()
        machine.state = Conn.CLOSING
        machine.state = Conn.CLOSED
        assert await bounded(task) is Conn.CLOSING

    async def test_wait_for_raises_skipped_when_leapt_over(self) -> None:
        """An assignment past the target fails ``wait_for`` with the target."""
        machine = OrderedStateMachine(Conn.READY)
        task = asyncio.create_task(machine.wait_for(Conn.OPEN))
        await steps()
        machine.state = Conn.CLOSED
        with pytest.raises(OrderedStateSkipped) as info:
            await bounded(task)
        assert info.value.skipped_state is Conn.OPEN

    async def test_lesser_assignment_does_not_resolve(self) -> None:
        """An assignment below the target leaves the waiter pending."""
        machine = OrderedStateMachine(0)
        task = asyncio.create_task(machine.wait_for(5))
        await steps()
        for state in range(1, 5):
            machine.state = state
            await steps()
            assert not task.done()
        machine.state = 5
        await bounded(task)

    async def test_every_waiter_below_the_new_state_across_chunks(self) -> None:
        """A state above every target of several chunks skips every exact wait."""
        machine = OrderedStateMachine(0)
        targets = [1 + i % 900 for i in range(2500)]
        exact = [asyncio.create_task(machine.wait_for(t)) for t in targets]
        least = [asyncio.create_task(machine.wait_for_at_least(t)) for t in targets]
        await steps()
        machine.state = 1000
        assert await bounded(asyncio.gather(*least)) == [1000] * len(targets)
        skipped = await bounded(asyncio.gather(*exact, return_exceptions=True))
        assert [e.args[0] for e in skipped if isinstance(e, OrderedStateSkipped)] == (
            targets
        )
        assert machine.statistics().waiters == 0

    async def test_many_waiters_across_chunks(self) -> None:
        """Thousands of waiters on many targets each get their own outcome."""
        machine = OrderedStateMachine(0)
        targets = [(i * 7919) % 3000 + 1 for i in range(3000)]
        exact = [asyncio.create_task(machine.wait_for(t)) for t in targets]
        least = [asyncio.create_task(machine.wait_for_at_least(t)) for t in targets]
        await steps()
        assert machine.statistics().waiters == 6000
        machine.state = 1500
        await steps(2)
        for target, e, a in zip(targets, exact, least, strict=True):
            if target <= 1500:
                assert a.result() == 1500
                if target < 1500:
                    assert isinstance(e.exception(), OrderedStateSkipped)
                else:
                    assert e.result() is None
            else:
                assert not e.done()
                assert not a.done()
        assert machine.statistics().waiters == 2 * (3000 - 1500)
        machine.state = 3000
        await bounded(asyncio.gather(*least))
        await bounded(asyncio.gather(*exact, return_exceptions=True))
        assert machine.statistics().waiters == 0

    @pytest.mark.parametrize("order", ["ascending", "shuffled"])
    async def test_each_of_many_distinct_targets_wakes_exactly_on_time(
        self, order: str
    ) -> None:
        """1,100 waiters (more than one chunk holds) each wake at their own target."""
        targets = list(range(1, 1101))
        if order == "shuffled":
            random.Random(1100).shuffle(targets)
        machine = OrderedStateMachine(0)
        tasks = {t: asyncio.create_task(machine.wait_for_at_least(t)) for t in targets}
        await steps()
        for state in range(1, 1101):
            machine.state = state
            assert machine.statistics().waiters == 1100 - state
        woken = await bounded(asyncio.gather(*(tasks[t] for t in range(1, 1101))))
        assert woken == list(range(1, 1101))


class TestCancellation:
    """Cancelled and timed-out waits leave nothing behind and are never swallowed."""

    @pytest.mark.parametrize("kind", ["wait_for", "wait_for_at_least"])
    async def test_cancelled_waiter_is_removed_at_once(self, kind: str) -> None:
        """Cancelling a waiting task removes its waiter when the cancellation lands."""
        machine = OrderedStateMachine(0)
        wait = machine.wait_for if kind == "wait_for" else machine.wait_for_at_least
        task = asyncio.create_task(wait(1))
        await steps()
        assert machine.statistics().waiters == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bounded(task)
        assert machine.statistics().waiters == 0
        assert "waiters=0" in repr(machine)

    async def test_cancellation_is_not_swallowed_when_resolved_in_same_step(
        self,
    ) -> None:
        """Resolved, then cancelled before resuming: the task ends cancelled."""
        machine = OrderedStateMachine(0)
        task = asyncio.create_task(machine.wait_for_at_least(1))
        await steps()
        machine.state = 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bounded(task)
        assert machine.statistics().waiters == 0

    async def test_skip_then_cancel_in_same_step_logs_nothing(self) -> None:
        """A skipped wait cancelled before resuming logs no unretrieved exception."""
        machine = OrderedStateMachine(0)
        task = asyncio.create_task(machine.wait_for(1))
        await steps()
        machine.state = 2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bounded(task)
        del task
        gc.collect()
        # The autouse fixture fails the test if asyncio logged anything.

    async def test_skip_then_throw_into_bare_coroutine_logs_nothing(self) -> None:
        """Driven without a Task, a skipped wait that gets cancelled logs nothing.

        A Task fetches its future's outcome before throwing the cancellation
        in; a hand-driven coroutine (a custom scheduler) does not, so the wait
        must fetch it or asyncio logs "exception was never retrieved".
        """
        machine = OrderedStateMachine(0)
        coro = machine.wait_for(1)
        coro.send(None)
        machine.state = 2
        with pytest.raises(asyncio.CancelledError):
            coro.throw(asyncio.CancelledError())
        del coro
        gc.collect()

    async def test_cancel_then_resolve_in_same_step(self) -> None:
        """Cancelled, then its target reached before it resumes: stays cancelled.

        The cancelled wait counts as a waiter until its task runs (as a
        cancelled ``asyncio.Event.wait`` stays in the event's waiters), and
        not a moment longer, even though the transition removed its slot.
        """
        machine = OrderedStateMachine(0)
        victim = asyncio.create_task(machine.wait_for(1))
        survivor = asyncio.create_task(machine.wait_for(1))
        await steps()
        victim.cancel()
        machine.state = 1
        assert machine.statistics().waiters == 1
        await steps()
        assert machine.statistics().waiters == 0
        with pytest.raises(asyncio.CancelledError):
            await bounded(victim)
        await bounded(survivor)
        assert machine.statistics().waiters == 0

    async def test_lingering_cancelled_waiter_leaves_a_new_lone_one_alone(
        self,
    ) -> None:
        """A cancelled waiter, resolved before it ran, then a new lone waiter.

        The cancelled wait counts until its task runs; its cleanup then finds
        its slot gone and a new waiter alone in the queue, which must still
        wake on time.
        """
        machine = OrderedStateMachine(0)
        victim = asyncio.create_task(machine.wait_for(1))
        await steps()
        # Scheduled first, the newcomer registers before the victim runs.
        newcomer = asyncio.create_task(machine.wait_for_at_least(3))
        victim.cancel()
        machine.state = 1  # the victim's slot goes; its task has not run
        assert machine.statistics().waiters == 1
        await steps()  # the newcomer registers, then the victim cleans up
        assert victim.cancelled()
        assert machine.statistics().waiters == 1
        machine.state = 2
        assert not newcomer.done()
        machine.state = 3
        assert await bounded(newcomer) == 3
        assert machine.statistics().waiters == 0

    async def test_cancelling_one_waiter_leaves_the_others(self) -> None:
        """Other waiters on the same and other targets are unaffected."""
        machine = OrderedStateMachine(0)
        tasks = [asyncio.create_task(machine.wait_for_at_least(t)) for t in (1, 1, 2)]
        await steps()
        tasks[0].cancel()
        await steps()
        assert machine.statistics().waiters == 2
        machine.state = 2
        assert await bounded(asyncio.gather(*tasks[1:])) == [2, 2]
        assert tasks[0].cancelled()

    async def test_asyncio_wait_for_timeout(self) -> None:
        """``asyncio.wait_for`` times out with TimeoutError and removes the waiter."""
        machine = OrderedStateMachine(Conn.READY)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(machine.wait_for(Conn.OPEN), timeout=0.001)
        assert machine.statistics().waiters == 0

    @pytest.mark.uninstrumented
    async def test_cancelled_waits_retain_nothing(self) -> None:
        """Waiting with a timeout over and over on a still machine does not grow."""
        machine = OrderedStateMachine(0)
        pending = asyncio.create_task(machine.wait_for(10))  # one that stays

        async def abandon(n: int) -> None:
            for _ in range(n):
                task = asyncio.create_task(machine.wait_for_at_least(1))
                await asyncio.sleep(0)
                task.cancel()
                await asyncio.sleep(0)

        await abandon(2000)  # warm up allocator caches and the queue's lists
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            await abandon(20_000)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert grown < 2_000, f"{grown} bytes retained by 20,000 abandoned waits"
        assert machine.statistics().waiters == 1
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bounded(pending)

    async def test_cancelled_task_and_future_are_freed(self) -> None:
        """Nothing keeps the cancelled task alive: its weak reference dies."""
        machine = OrderedStateMachine(0)
        task = asyncio.create_task(machine.wait_for(1))
        await steps()
        task.cancel()
        await steps()
        ref = weakref.ref(task)
        del task
        gc.collect()
        assert ref() is None

    async def test_waiter_with_exception_thrown_in_is_removed(self) -> None:
        """A wait whose coroutine gets an exception thrown in leaves the queue."""
        machine = OrderedStateMachine(0)
        coro = machine.wait_for(1)
        coro.send(None)
        assert machine.statistics().waiters == 1
        with pytest.raises(KeyError):
            coro.throw(KeyError("thrown"))
        assert machine.statistics().waiters == 0
        machine.state = 1  # nothing left to resolve

    async def test_many_cancellations_among_live_waiters(self) -> None:
        """Cancelling most waiters sweeps their slots; the rest are still resolved."""
        machine = OrderedStateMachine(0)
        tasks = [
            asyncio.create_task(machine.wait_for_at_least(1 + i % 7))
            for i in range(3000)
        ]
        await steps()
        keep = tasks[::10]
        for task in tasks:
            if task not in keep:
                task.cancel()
        await steps()
        assert machine.statistics().waiters == len(keep)
        machine.state = 7
        assert await bounded(asyncio.gather(*keep)) == [7] * len(keep)
        assert machine.statistics().waiters == 0

    async def test_targets_of_cancelled_waiters_are_released(self) -> None:
        """Cancelled waiters hold their targets only until they outnumber the live.

        The machine keeps the slot of a cancelled waiter (its target, not its
        task) until such slots outnumber the live waiters; a transition that
        removes slots must keep that count right.
        """
        machine = OrderedStateMachine(OnlyLtEq(0))

        def wait(value: int) -> tuple[asyncio.Task[None], weakref.ref[OnlyLtEq]]:
            target = OnlyLtEq(value)
            return asyncio.create_task(machine.wait_for(target)), weakref.ref(target)

        reached = asyncio.create_task(machine.wait_for_at_least(OnlyLtEq(1)))
        early, _ = wait(1)
        late = [wait(5) for _ in range(3)]
        await steps()
        early.cancel()
        await steps()
        machine.state = OnlyLtEq(1)  # removes the live and the cancelled slot
        assert (await bounded(reached)).value == 1
        late[0][0].cancel()
        late[1][0].cancel()
        await steps()
        assert [task.cancelled() for task, _ in late[:2]] == [True, True]
        assert machine.statistics().waiters == 1
        refs = [ref for _, ref in late]
        pending = late[2][0]
        del early, late
        await steps()  # the loop's handles drop the finished tasks
        gc.collect()
        assert [ref() is None for ref in refs] == [True, True, False]
        pending.cancel()


def model_outcome(kind: str, target: int, state: int) -> object:
    """What a wait of ``kind`` for ``target`` ends with when ``state`` is entered."""
    if kind == "least":
        return state
    return None if target == state else f"skipped {target}"


def task_outcome(task: asyncio.Task[int | None]) -> object:
    """How a finished wait ended, in the terms of `model_outcome`."""
    if task.cancelled():
        return "cancelled"
    if isinstance(error := task.exception(), OrderedStateSkipped):
        return f"skipped {error.args[0]}"
    return task.result()


class TestManyWaitersAgainstAModel:
    """Thousands of waiters (several internal chunks) against a plain model."""

    @pytest.mark.parametrize("seed", range(6))
    async def test_random_waits_cancellations_and_transitions(self, seed: int) -> None:
        """Every outcome matches a dictionary model after random operations."""
        rng = random.Random(seed)
        machine = OrderedStateMachine(0)
        tasks: list[tuple[str, int, asyncio.Task[int | None]]] = []
        expected: dict[int, object] = {}  # index into tasks -> how it must end
        state = 0
        for _ in range(4):
            for _ in range(rng.randrange(600, 1500)):
                kind = rng.choice(["exact", "least"])
                target = state + rng.randrange(1, 60)
                wait = (
                    machine.wait_for if kind == "exact" else machine.wait_for_at_least
                )
                tasks.append((kind, target, asyncio.create_task(wait(target))))
            await steps()
            for index in rng.sample(range(len(tasks)), len(tasks) // 3):
                if index not in expected:
                    tasks[index][2].cancel()
                    expected[index] = "cancelled"
            await steps()
            state += rng.randrange(1, 40)
            machine.state = state
            for index, (kind, target, _) in enumerate(tasks):
                if index not in expected and not state < target:
                    expected[index] = model_outcome(kind, target, state)
            await steps(2)
            assert machine.statistics().waiters == len(tasks) - len(expected)
        for index, (_, _, task) in enumerate(tasks):
            if index not in expected:
                assert not task.done()
                task.cancel()
                expected[index] = "cancelled"
        await bounded(asyncio.gather(*(t for _, _, t in tasks), return_exceptions=True))
        assert [task_outcome(t) for _, _, t in tasks] == [
            expected[i] for i in range(len(tasks))
        ]
        assert machine.statistics().waiters == 0


class TestNoReferenceCycles:
    """A machine whose waits are over is freed by reference counting alone."""

    @pytest.mark.parametrize(
        "how", ["success", "skipped at once", "skipped while pending", "cancelled"]
    )
    async def test_freed_without_the_garbage_collector(self, how: str) -> None:
        """With ``gc.disable()``, dropping the machine frees it, whatever its waits did.

        Regression: a wait skipped while pending left a cycle (exception ->
        traceback -> the wait's frame -> its future -> the exception) that
        kept the machine alive until the cyclic collector ran.
        """
        gc.collect()
        gc.disable()
        try:
            machine = OrderedStateMachine(OnlyLtEq(1))
            watch = weakref.ref(machine)
            target = OnlyLtEq(0 if how == "skipped at once" else 2)
            exact = asyncio.ensure_future(machine.wait_for(target))
            at_least = asyncio.ensure_future(machine.wait_for_at_least(target))
            await steps()
            if how == "cancelled":
                exact.cancel()
                at_least.cancel()
            elif how != "skipped at once":
                machine.state = OnlyLtEq(2 if how == "success" else 3)
            await asyncio.wait([exact, at_least], timeout=TIMEOUT)
            outcomes = {
                "cancelled" if task.cancelled() else type(task.exception()).__name__
                for task in (exact, at_least)
            }
            del exact, at_least, machine, target
            await steps()  # the loop's last handle held the tasks
            assert watch() is None, outcomes
        finally:
            gc.enable()
        assert outcomes <= {"NoneType", "OrderedStateSkipped", "cancelled"}


# asyncio.timeout, TaskGroup and BaseExceptionGroup are new in 3.11. A static
# version check (rather than a skip inside the test) lets both type checkers
# skip the block when they check for 3.10.
if sys.version_info >= (3, 11):

    class TestPython311Cancellation:
        """The 3.11 cancellation scopes: ``asyncio.timeout`` and ``TaskGroup``."""

        async def test_asyncio_timeout(self) -> None:
            """The documented idiom: ``async with asyncio.timeout(...)``."""
            machine = OrderedStateMachine(Conn.READY)

            async def wait_with_deadline() -> None:
                async with asyncio.timeout(0.001):
                    await machine.wait_for(Conn.OPEN)

            with pytest.raises(TimeoutError):
                await wait_with_deadline()
            assert machine.statistics().waiters == 0

        async def test_task_group_cancels_waiters_on_failure(self) -> None:
            """A failing sibling in a TaskGroup cancels the waiters; none remain."""
            machine = OrderedStateMachine(Conn.READY)

            async def fail() -> None:
                await steps()
                msg = "boom"
                raise RuntimeError(msg)

            async def group() -> None:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(machine.wait_for(Conn.OPEN))
                    tasks.create_task(machine.wait_for_at_least(Conn.CLOSED))
                    tasks.create_task(fail())

            with pytest.raises(BaseExceptionGroup) as info:  # noqa: F821 (3.11+)
                await bounded(group())
            assert info.group_contains(RuntimeError)
            assert machine.statistics().waiters == 0

else:

    def test_python311_cancellation_scopes() -> None:
        """Placeholder that reports the 3.11-only tests as skipped on 3.10."""
        pytest.skip("asyncio.timeout and TaskGroup are new in Python 3.11")
