"""``states()``: subscribe to every state a machine enters."""

from __future__ import annotations

import asyncio
import gc
import sys
import tracemalloc
import weakref

import pytest
from typing_extensions import TypeVar

from helpers import Conn, bounded, steps
from ordered_statemachine import (
    OrderedStateMachine,
    StateSubscription,
    SupportsLessThan,
)

S = TypeVar("S", bound=SupportsLessThan)


async def take(subscription: StateSubscription[S], n: int) -> list[S]:
    """The next ``n`` states of ``subscription``."""
    return [await bounded(anext(subscription)) for _ in range(n)]


class TestSequence:
    """What a subscriber sees, and in which order."""

    async def test_current_state_then_every_entered_state(self) -> None:
        """It yields the current state, then each state entered, in order."""
        machine = OrderedStateMachine(Conn.READY)
        seen: list[Conn] = []

        async def watch() -> None:
            async for state in machine.states():
                seen.append(state)
                if state is Conn.CLOSED:
                    break

        watcher = asyncio.create_task(watch())
        await steps()
        for state in (Conn.OPEN, Conn.CLOSING, Conn.CLOSED):
            machine.state = state
            await steps()
        await bounded(watcher)
        assert seen == [Conn.READY, Conn.OPEN, Conn.CLOSING, Conn.CLOSED]

    async def test_subscription_starts_when_states_is_called(self) -> None:
        """States entered before the first ``anext`` but after ``states()`` count."""
        machine = OrderedStateMachine(0)
        machine.state = 1
        subscription = machine.states()
        machine.state = 2
        machine.state = 3
        assert await take(subscription, 3) == [1, 2, 3]

    async def test_slow_consumer_misses_nothing(self) -> None:
        """A producer that never yields to the consumer loses no state."""
        machine = OrderedStateMachine(0)
        subscription = machine.states()
        for state in range(1, 1001):
            machine.state = state
        assert await take(subscription, 1001) == list(range(1001))

    async def test_equal_assignments_are_not_repeated(self) -> None:
        """Assigning the current state again publishes nothing."""
        machine = OrderedStateMachine(0)
        subscription = machine.states()
        machine.state = 0
        machine.advance(0)
        machine.rewind(0)
        machine.state = 1
        assert await take(subscription, 2) == [0, 1]

    async def test_rewinds_are_seen(self) -> None:
        """A rewind is a state entered, and is yielded like any other."""
        machine = OrderedStateMachine(Conn.READY)
        subscription = machine.states()
        machine.state = Conn.OPEN
        machine.rewind(Conn.READY)
        machine.advance(Conn.OPEN, cause=RuntimeError())
        assert await take(subscription, 4) == [
            Conn.READY,
            Conn.OPEN,
            Conn.READY,
            Conn.OPEN,
        ]

    async def test_subscribers_are_independent(self) -> None:
        """Two subscriptions started at different times each see their own sequence."""
        machine = OrderedStateMachine(0)
        early = machine.states()
        machine.state = 1
        late = machine.states()
        machine.state = 2
        assert await take(late, 2) == [1, 2]
        await early.aclose()
        machine.state = 3
        assert await take(late, 1) == [3]
        with pytest.raises(StopAsyncIteration):
            await bounded(anext(early))

    async def test_failed_operations_publish_nothing(self) -> None:
        """A rejected assignment or rewind leaves subscribers as they were."""
        machine = OrderedStateMachine(1)
        subscription = machine.states()
        with pytest.raises(ValueError, match="cannot rewind"):
            machine.state = 0
        with pytest.raises(ValueError, match="cannot forward"):
            machine.rewind(2)
        with pytest.raises(TypeError):
            machine.advance("x", cause=RuntimeError())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        machine.state = 2
        assert await take(subscription, 2) == [1, 2]

    async def test_subscribers_and_waiters_together(self) -> None:
        """Waiters are resolved as usual while subscribers are fed."""
        machine = OrderedStateMachine(0)
        subscription = machine.states()
        waiter = asyncio.create_task(machine.wait_for(2))
        least = asyncio.create_task(machine.wait_for_at_least(3))
        await steps()
        machine.state = 1
        machine.state = 2
        await bounded(waiter)
        assert not least.done()
        machine.state = 3
        assert await bounded(least) == 3
        assert await take(subscription, 4) == [0, 1, 2, 3]
        assert machine.statistics().waiters == 0

    @pytest.mark.parametrize("kind", ["wait_for", "wait_for_at_least"])
    async def test_lone_waiter_after_a_subscription(self, kind: str) -> None:
        """A subscriber still gets the states below a lone waiter's target."""
        machine = OrderedStateMachine(0)
        subscription = machine.states()
        wait = machine.wait_for if kind == "wait_for" else machine.wait_for_at_least
        waiter = asyncio.ensure_future(wait(3))
        await steps()
        machine.state = 1
        machine.state = 2
        machine.state = 3
        await bounded(waiter)
        assert await take(subscription, 4) == [0, 1, 2, 3]


class TestLifetime:
    """Closing, breaking out and dropping a subscription unsubscribe it."""

    async def test_async_with_closes(self) -> None:
        """Leaving ``async with`` unsubscribes; the iterator is then exhausted."""
        machine = OrderedStateMachine(0)
        async with machine.states() as subscription:
            assert machine.statistics().subscribers == 1
            assert await take(subscription, 1) == [0]
        assert machine.statistics().subscribers == 0
        machine.state = 1
        with pytest.raises(StopAsyncIteration):
            await bounded(anext(subscription))

    async def test_break_out_of_async_for_unsubscribes(self) -> None:
        """Breaking out of ``async for machine.states()`` drops and unsubscribes it."""
        machine = OrderedStateMachine(0)

        async def first() -> int:
            async for state in machine.states():
                return state
            msg = "states() ended"
            raise AssertionError(msg)

        assert await bounded(first()) == 0
        assert machine.statistics().subscribers == 0

    async def test_garbage_collected_subscription_unsubscribes(self) -> None:
        """A subscription in a reference cycle is unsubscribed when collected."""
        machine = OrderedStateMachine(0)
        subscription = machine.states()
        cycle: list[object] = [subscription]
        cycle.append(cycle)
        ref = weakref.ref(subscription)
        del subscription, cycle
        machine.state = 1
        gc.collect()
        assert ref() is None
        assert machine.statistics().subscribers == 0

    async def test_aclose_is_idempotent_and_ends_a_waiting_consumer(self) -> None:
        """Closing while a consumer waits ends its iteration; closing twice is fine."""
        machine = OrderedStateMachine(0)
        subscription = machine.states()
        assert await take(subscription, 1) == [0]
        consumer = asyncio.create_task(anext(subscription))
        await steps()
        await subscription.aclose()
        await subscription.aclose()
        with pytest.raises(StopAsyncIteration):
            await bounded(consumer)
        assert "closed buffered=0" in repr(subscription)

    async def test_consumer_abandoned_mid_iteration_retains_nothing(self) -> None:
        """A consumer task cancelled while waiting takes its subscription with it."""
        machine = OrderedStateMachine(0)

        async def consume() -> None:
            async for _ in machine.states():
                pass

        consumer = asyncio.create_task(consume())
        await steps()
        machine.state = 1
        await steps()
        assert machine.statistics().subscribers == 1
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bounded(consumer)
        del consumer
        # The loop handle that resumed this test holds the finished task, and
        # so the traceback of its cancellation, until the next iteration
        # (Python 3.12+); only then is the subscription unreachable.
        await steps()
        gc.collect()
        assert machine.statistics().subscribers == 0
        machine.state = 2  # no feed left to push into

    async def test_cancelled_anext_keeps_the_subscription_usable(self) -> None:
        """Cancelling one ``anext`` loses no state; the next call gets it."""
        machine = OrderedStateMachine(0)
        subscription = machine.states()
        assert await take(subscription, 1) == [0]
        pending = asyncio.create_task(anext(subscription))
        await steps()
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bounded(pending)
        machine.state = 1
        assert await take(subscription, 1) == [1]

    async def test_waiting_task_outpaced_by_another_waits_again(self) -> None:
        """A task woken for a state that another task took first waits again.

        Regression: it ended with StopAsyncIteration, as if the subscription
        had been closed.
        """
        machine = OrderedStateMachine(0)
        async with machine.states() as states:
            assert await anext(states) == 0
            waiting = asyncio.create_task(anext(states))
            await steps()
            machine.state = 1  # wakes the waiting task...
            # ...but this task takes the state first, without waiting (so
            # stepped by hand, not in a task of its own).
            try:
                anext(states).send(None)
            except StopIteration as taken:
                assert taken.value == 1  # noqa: PT017 (no ExceptionInfo cycle)
            else:
                pytest.fail("the state was buffered, but anext waited")
            await steps()
            assert not waiting.done()
            machine.state = 2
            assert await bounded(waiting) == 2

    async def test_one_consumer_at_a_time(self) -> None:
        """A second task waiting on the same subscription gets RuntimeError."""
        machine = OrderedStateMachine(0)
        subscription = machine.states()
        assert await take(subscription, 1) == [0]
        first = asyncio.create_task(anext(subscription))
        await steps()
        with pytest.raises(
            RuntimeError,
            match=r"^another task is already waiting on this StateSubscription$",
        ):
            await bounded(anext(subscription))
        machine.state = 1
        assert await bounded(first) == 1

    @pytest.mark.uninstrumented
    async def test_many_subscriptions_retain_nothing(self) -> None:
        """Subscribing and unsubscribing over and over does not grow memory."""
        machine = OrderedStateMachine(0)

        async def cycle(n: int) -> None:
            for _ in range(n):
                async with machine.states() as subscription:
                    await anext(subscription)

        # One bound around each round, not one per anext: each bound is a
        # timer handle, and cancelled ones stay in the loop's heap until the
        # loop runs, which these rounds never let it do.
        await bounded(cycle(200))
        await steps()
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            await bounded(cycle(20_000))
            # The bound's own task and timer are released once the loop runs.
            await steps()
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert grown < 4000, grown  # under 0.2 bytes per subscription
        assert machine.statistics().subscribers == 0

    def test_repr_shows_status_and_buffer(self) -> None:
        """The repr says whether it is open and how many states wait in it."""
        machine = OrderedStateMachine(0)
        subscription = machine.states()
        machine.state = 1
        assert repr(subscription) == (
            "<ordered_statemachine.StateSubscription open buffered=2>"
        )

    def test_failed_construction_reports_nothing_on_collection(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A subscription whose ``__init__`` never ran is collected silently."""
        unraisable: list[object] = []
        monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
        with pytest.raises(TypeError):
            StateSubscription()  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
        gc.collect()
        assert unraisable == []
