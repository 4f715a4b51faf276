"""``ThreadSafeOrderedStateMachine``: the contract, from any thread and any loop.

On one loop it must behave exactly as ``OrderedStateMachine`` (the
model-based test of test_model.py runs on both). Across threads and
loops: every waiter is resumed on its own loop, blocking waits work from
plain threads, and nothing that cannot be resumed, nor a misuse, disturbs
the machine. The linearizability stress test is in test_threadsafe_stress.py.
"""

from __future__ import annotations

import asyncio
import gc
import re
import signal
import subprocess
import sys
import textwrap
import threading
import weakref
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from helpers import (
    LOOP_FACTORIES,
    TIMEOUT,
    Conn,
    LoopThread,
    bounded,
    bounded_call,
    steps,
    until,
    until_blocking,
)
from ordered_statemachine import (
    OrderedStateSkipped,
    StateSubscription,
    ThreadSafeOrderedStateMachine,
)
from ordered_statemachine import _threadsafe as threadsafe_module  # pyright: ignore[reportPrivateUsage]

if TYPE_CHECKING:
    import contextvars
    from collections.abc import Awaitable, Callable, Iterator
    from concurrent.futures import Future


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def other_loop(request: pytest.FixtureRequest) -> Iterator[LoopThread]:
    """An event loop (asyncio's or uvloop) running in a thread of its own."""
    loop_thread = LoopThread(request.param)
    try:
        yield loop_thread
    finally:
        loop_thread.close()


# -- on one loop: the same contract ---------------------------------------------


class TestSameContractOnOneLoop:
    """On one loop it behaves as ``OrderedStateMachine``.

    test_model.py runs the model-based test on both machines; these are the
    parts of the contract the model does not draw.
    """

    def test_sanity_check_of_the_initial_state(self) -> None:
        """An unordered initial state is refused as by the plain machine."""
        with pytest.raises(TypeError, match="states must be ordered"):
            ThreadSafeOrderedStateMachine(float("nan"))
        with pytest.raises(TypeError, match="states must be ordered"):
            ThreadSafeOrderedStateMachine(object())  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]

    async def test_causes_and_their_tracebacks(self) -> None:
        """A skip is chained to its cause, with the recorded traceback."""
        machine = ThreadSafeOrderedStateMachine(Conn.READY)
        pending = asyncio.create_task(machine.wait_for(Conn.OPEN))
        await steps()
        try:
            msg = "refused"
            raise ConnectionRefusedError(msg)  # noqa: TRY301
        except ConnectionRefusedError as exc:
            machine.advance(Conn.CLOSED, cause=exc)
            refused, recorded = exc, exc.__traceback__
        for wait in (pending, machine.wait_for(Conn.CLOSING)):
            with pytest.raises(OrderedStateSkipped) as info:
                await bounded(wait)
            assert info.value.__cause__ is refused
            assert refused.__traceback__ is recorded
        with pytest.raises(TypeError, match="cause must be an exception"):
            machine.advance(Conn.CLOSED, cause="refused")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        assert machine.statistics().causes == 1
        machine.rewind(Conn.READY)
        assert machine.statistics().causes == 0

    def test_error_messages_name_both_states(self) -> None:
        """Backwards, a forward rewind, unordered: each message names both states."""
        machine = ThreadSafeOrderedStateMachine(2.0)
        backwards = re.escape(
            "cannot rewind ThreadSafeOrderedStateMachine from 2.0 to 1.0: "
            "assigning a lesser state is not allowed (use rewind() to move back)"
        )
        for move in (partial(setattr, machine, "state"), machine.advance):
            with pytest.raises(ValueError, match=f"^{backwards}$"):
                move(1.0)
        forwards = re.escape(
            "cannot forward using rewind (from 2.0 to 3.0): "
            "assign the state to move forward"
        )
        with pytest.raises(ValueError, match=f"^{forwards}$"):
            machine.rewind(3.0)
        unordered = re.escape(
            "states must be ordered, but nan is neither less than, equal to "
            "nor greater than the current state 2.0"
        )
        nan = float("nan")
        for unordered_move in (
            partial(setattr, machine, "state"),
            machine.advance,
            machine.rewind,
            machine.wait_for_blocking,
            machine.wait_for_at_least_blocking,
        ):
            with pytest.raises(TypeError, match=f"^{unordered}$"):
                bounded_call(partial(unordered_move, nan))
        for wait in (machine.wait_for, machine.wait_for_at_least):
            with pytest.raises(TypeError, match=f"^{unordered}$"):
                asyncio.run(wait(nan))
        stats = machine.statistics()
        assert (stats.state, stats.waiters, stats.causes) == (2.0, 0, 0)

    def test_repr(self) -> None:
        """The repr shows the class, the state and the waiters."""
        machine = ThreadSafeOrderedStateMachine(Conn.READY)
        assert repr(machine) == (
            "<ordered_statemachine.ThreadSafeOrderedStateMachine "
            "state=<Conn.READY: 0> waiters=0>"
        )


class BrokenFuture(asyncio.Future[Any]):
    """A future whose resolution fails, as a faulty custom loop's might."""

    def set_result(self, result: object, /) -> None:
        """Refuse."""
        del result
        msg = "this future cannot be resolved"
        raise RuntimeError(msg)


class Dropper:
    """A state whose comparison drops the subscriptions in `held`.

    Their last reference goes, so their finalizers run inside the machine's
    operation that compares.
    """

    held: ClassVar[list[StateSubscription[Dropper]]] = []

    def __init__(self, value: int) -> None:
        self.value = value

    def __lt__(self, other: Dropper) -> bool:
        Dropper.held.clear()  # the subscriptions' __del__ runs now
        return self.value < other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dropper) and other.value == self.value

    def __hash__(self) -> int:
        return self.value


# -- across threads and loops ---------------------------------------------------


class TestAcrossThreads:
    """Transitions from other threads, waiters on other loops."""

    async def test_assignment_from_another_thread_wakes_this_loop(self) -> None:
        """A plain thread assigns; the waiter resumes here, through the loop."""
        asyncio.get_running_loop().set_debug(True)
        machine = ThreadSafeOrderedStateMachine(Conn.READY)
        waiter = asyncio.create_task(machine.wait_for_at_least(Conn.OPEN))
        await steps()
        thread = threading.Thread(target=lambda: setattr(machine, "state", Conn.OPEN))
        thread.start()
        thread.join(TIMEOUT)
        assert await bounded(waiter) is Conn.OPEN

    async def test_each_waiter_resumes_on_its_own_loop(
        self, other_loop: LoopThread
    ) -> None:
        """Waiters on two loops in two threads, one transition from a third."""
        machine = ThreadSafeOrderedStateMachine(0)
        where: dict[str, str] = {}

        async def wait(name: str) -> int:
            reached = await machine.wait_for_at_least(2)
            where[name] = threading.current_thread().name
            return reached

        there = other_loop.submit(wait("there"))
        here = asyncio.create_task(wait("here"))
        await until(lambda: machine.statistics().waiters == 2)
        thread = threading.Thread(target=machine.advance, args=(3,), name="advancer")
        thread.start()
        thread.join(TIMEOUT)
        assert await bounded(here) == 3
        assert there.result(TIMEOUT) == 3
        assert where == {
            "here": threading.current_thread().name,
            "there": other_loop.thread.name,
        }
        assert machine.statistics().waiters == 0

    async def test_subscription_sees_every_state_from_other_threads(self) -> None:
        """States entered by other threads reach a subscriber in order."""
        machine = ThreadSafeOrderedStateMachine(0)
        seen: list[int] = []

        async def consume() -> None:
            async with machine.states() as states:
                async for state in states:
                    seen.append(state)
                    if state == 50:
                        return

        consumer = asyncio.create_task(consume())
        await steps()

        def advance() -> None:
            for state in range(1, 51):
                if state % 10 == 0:
                    machine.rewind(state - 5)
                machine.state = state

        thread = threading.Thread(target=advance)
        thread.start()
        thread.join(TIMEOUT)
        await bounded(consumer)
        expected = [0]
        for state in range(1, 51):
            if state % 10 == 0:
                expected.append(state - 5)
            expected.append(state)
        assert seen == expected
        assert machine.statistics().subscribers == 0

    async def test_subscribed_in_one_thread_consumed_on_another_loop(
        self, other_loop: LoopThread
    ) -> None:
        """Any thread subscribes; any loop consumes; a third thread advances."""
        machine = ThreadSafeOrderedStateMachine(0)
        subscriptions: list[StateSubscription[int]] = []
        thread = threading.Thread(target=lambda: subscriptions.append(machine.states()))
        thread.start()
        thread.join(TIMEOUT)
        (subscription,) = subscriptions

        async def consume() -> list[int]:
            seen: list[int] = []
            async with subscription as states:
                async for state in states:
                    seen.append(state)
                    if state == 3:
                        return seen
            return seen

        consumed = other_loop.submit(consume())
        for state in (1, 2, 3):
            advancer = threading.Thread(target=machine.advance, args=(state,))
            advancer.start()
            advancer.join(TIMEOUT)
        assert consumed.result(TIMEOUT) == [0, 1, 2, 3]
        assert machine.statistics().subscribers == 0

    async def test_one_consumer_at_a_time(self) -> None:
        """A second task waiting on one subscription is refused, as usual."""
        machine = ThreadSafeOrderedStateMachine(0)
        async with machine.states() as states:
            assert await anext(states) == 0
            first = asyncio.create_task(anext(states))
            await steps()
            with pytest.raises(RuntimeError, match="another task is already waiting"):
                await anext(states)
            machine.state = 1
            assert await bounded(first) == 1


class RecordingLoop(asyncio.SelectorEventLoop):
    """An event loop that records, by name, each call of call_soon_threadsafe."""

    def __init__(self, name: str, record: list[str]) -> None:
        super().__init__()
        self.name = name
        self.record = record

    def call_soon_threadsafe(
        self,
        callback: Callable[..., object],
        *args: object,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        """Record the call, then schedule as asyncio does."""
        self.record.append(self.name)
        return super().call_soon_threadsafe(callback, *args, context=context)


class TestFifoAcrossLoops:
    """One transition resumes the waiters of every loop in FIFO order."""

    def test_deliveries_follow_the_order_of_waiting(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Waiters on two loops and a blocked thread, interleaved: in that order."""
        deliveries: list[str] = []
        loops = [RecordingLoop(name, deliveries) for name in "AB"]
        threads = [threading.Thread(target=loop.run_forever) for loop in loops]
        for thread in threads:
            thread.start()
        wake_thread = threadsafe_module._wake_thread  # pyright: ignore[reportPrivateUsage]

        def recorded_wake(waiter: Any, outcome: object) -> None:  # noqa: ANN401
            deliveries.append("thread")
            wake_thread(waiter, outcome)

        monkeypatch.setattr(threadsafe_module, "_wake_thread", recorded_wake)
        machine = ThreadSafeOrderedStateMachine(0)
        try:
            results: list[object] = []
            blocked = threading.Thread(
                target=lambda: results.append(machine.wait_for_at_least_blocking(1))
            )
            order = ["A", "B", "thread", "A", "B"]

            def waiting(count: int) -> Callable[[], bool]:
                return lambda: machine.statistics().waiters == count

            waits: list[Future[None]] = []
            for number, where in enumerate(order, 1):
                if where == "thread":
                    blocked.start()
                else:
                    loop = loops["AB".index(where)]
                    waits.append(
                        asyncio.run_coroutine_threadsafe(machine.wait_for(1), loop)
                    )
                # One at a time, so that the order of waiting is known.
                until_blocking(waiting(number))
            deliveries.clear()  # run_coroutine_threadsafe's own calls
            machine.state = 1  # delivers from this thread, before it returns
            assert deliveries == order
            blocked.join(TIMEOUT)
            assert results == [1]
            for wait in waits:
                wait.result(TIMEOUT)
        finally:
            for loop in loops:
                loop.call_soon_threadsafe(loop.stop)
            for thread in threads:
                thread.join(TIMEOUT)
            for loop in loops:
                loop.close()


class TestBlockingWaits:
    """``wait_for_blocking`` and ``wait_for_at_least_blocking``, from plain threads."""

    def test_immediate_outcomes(self) -> None:
        """Reached, passed, unordered: at once, as the async waits."""
        machine = ThreadSafeOrderedStateMachine(2)
        machine.advance(3, cause=RuntimeError("why"))
        bounded_call(lambda: machine.wait_for_blocking(3))
        assert bounded_call(lambda: machine.wait_for_at_least_blocking(1)) == 3
        with pytest.raises(OrderedStateSkipped) as info:
            bounded_call(lambda: machine.wait_for_blocking(2))
        assert str(info.value.__cause__) == "why"
        for wait in (machine.wait_for_blocking, machine.wait_for_at_least_blocking):
            with pytest.raises(TypeError, match="states must be ordered"):
                bounded_call(partial(wait, float("nan")))  # type: ignore[arg-type]
        assert machine.statistics().waiters == 0

    @pytest.mark.parametrize("kind", ["exact", "at least"])
    def test_woken_by_another_thread(self, kind: str) -> None:
        """A thread blocks; another enters the state; the first gets the outcome."""
        machine = ThreadSafeOrderedStateMachine(Conn.READY)
        outcome: list[object] = []

        def wait() -> None:
            try:
                if kind == "exact":
                    machine.wait_for_blocking(Conn.OPEN, timeout=TIMEOUT)
                    outcome.append("entered")
                else:
                    outcome.append(
                        machine.wait_for_at_least_blocking(Conn.OPEN, timeout=TIMEOUT)
                    )
            except OrderedStateSkipped as exc:
                outcome.append(exc.__cause__)

        for target, cause in ((Conn.OPEN, None), (Conn.CLOSED, EOFError())):
            machine.rewind(Conn.READY)
            outcome.clear()
            thread = threading.Thread(target=wait)
            thread.start()
            until_blocking(lambda: machine.statistics().waiters == 1)
            machine.advance(target, cause=cause)
            thread.join(TIMEOUT)
            if kind == "exact":
                assert outcome == (["entered"] if cause is None else [cause])
            else:
                assert outcome == [target]

    async def test_past_state_of_a_machine_never_waited_on(self) -> None:
        """A wait for a state already passed, on a fresh machine: skipped, no cause."""
        blocking = ThreadSafeOrderedStateMachine(2)
        with pytest.raises(OrderedStateSkipped) as info:
            bounded_call(lambda: blocking.wait_for_blocking(1))
        awaiting = ThreadSafeOrderedStateMachine(2)
        with pytest.raises(OrderedStateSkipped) as async_info:
            await bounded(awaiting.wait_for(1))
        for skipped in (info.value, async_info.value):
            assert skipped.skipped_state == 1
            assert skipped.__cause__ is None

    def test_timeout_leaves_nothing_behind(self) -> None:
        """TimeoutError after the timeout; the waiter is gone."""
        machine = ThreadSafeOrderedStateMachine(0)
        with pytest.raises(TimeoutError, match=r"not reached within 0\.01 s"):
            bounded_call(lambda: machine.wait_for_blocking(1, timeout=0.01))
        with pytest.raises(TimeoutError):
            bounded_call(lambda: machine.wait_for_at_least_blocking(1, timeout=0))
        assert machine.statistics().waiters == 0
        machine.state = 1  # nobody left to resolve

    @pytest.mark.parametrize("first", ["pending", "timed out"])
    async def test_timed_out_among_pending_waiters(self, first: str) -> None:
        """A timed-out blocking wait, its slot still queued, is skipped and not counted.

        A waiter for 2 keeps the slot of the one that timed out queued (dead)
        until the transition to 1. Before it or after it, with a cancelled
        wait whose task has not run yet in between, the pending waiters for
        1 are resumed, and each is counted once.
        """
        machine = ThreadSafeOrderedStateMachine(0)
        keeper = asyncio.create_task(machine.wait_for(2))
        pending: list[asyncio.Task[int]] = []
        if first == "pending":
            pending.append(asyncio.create_task(machine.wait_for_at_least(1)))
        await steps()
        with pytest.raises(TimeoutError):
            bounded_call(lambda: machine.wait_for_at_least_blocking(1, timeout=0))
        cancelled = asyncio.create_task(machine.wait_for_at_least(1))
        pending.append(asyncio.create_task(machine.wait_for_at_least(1)))
        await steps()
        cancelled.cancel()  # its future is done; its task has not run yet
        assert machine.statistics().waiters == 2 + len(pending)
        machine.state = 1
        assert await bounded(asyncio.gather(*pending)) == [1] * len(pending)
        await asyncio.gather(cancelled, return_exceptions=True)
        assert machine.statistics().waiters == 1
        machine.state = 2
        await bounded(keeper)
        assert machine.statistics().waiters == 0

    async def test_subscriber_after_a_waiter_gives_up(self) -> None:
        """A waiter giving up does not hide later states from a subscriber."""
        machine = ThreadSafeOrderedStateMachine(0)
        async with machine.states() as states:
            assert await bounded(anext(states)) == 0
            with pytest.raises(TimeoutError):
                bounded_call(lambda: machine.wait_for_blocking(5, timeout=0))
            machine.state = 1
            assert await bounded(anext(states)) == 1

    async def test_blocked_waiter_among_waiters_that_give_up(self) -> None:
        """Waiters that give up around a blocked thread leave it waiting, then woken."""
        machine = ThreadSafeOrderedStateMachine(0)
        outcome: list[int] = []
        blocked = threading.Thread(
            target=lambda: outcome.append(
                machine.wait_for_at_least_blocking(9, timeout=TIMEOUT)
            )
        )
        blocked.start()
        await until(lambda: machine.statistics().waiters == 1)
        tasks = [asyncio.create_task(machine.wait_for(t)) for t in (2, 9, 9)]
        await steps()
        tasks[0].cancel()  # its slot (the least) stays, dead
        await steps()
        machine.state = 3  # removes the dead slot
        for task in tasks[1:]:
            task.cancel()  # the queue is rebuilt without them
        await asyncio.gather(*tasks, return_exceptions=True)
        assert machine.statistics().waiters == 1
        machine.state = 9
        blocked.join(TIMEOUT)
        assert outcome == [9]
        assert machine.statistics().waiters == 0

    def test_equal_assignments_change_nothing(self) -> None:
        """Assigning or advancing to the current state is a no-op, as usual."""
        machine = ThreadSafeOrderedStateMachine(Conn.OPEN)
        machine.state = Conn.OPEN
        machine.advance(Conn.OPEN, cause=RuntimeError())
        machine.advance(Conn.OPEN)
        assert machine.statistics() == type(machine.statistics())(Conn.OPEN, 0, 0, 0)

    def test_interrupted_in_this_thread(self) -> None:
        """SIGINT to this (the main) thread, blocked in a wait: nothing left."""
        if threading.current_thread() is not threading.main_thread():
            pytest.skip("signals reach the main thread only")
        machine = ThreadSafeOrderedStateMachine(0)

        def interrupt() -> None:
            until_blocking(lambda: machine.statistics().waiters == 1)
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

        # What Ctrl-C does, even in a process that was started with SIGINT
        # ignored (as a background job of a shell script is).
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        helper = threading.Thread(target=interrupt)
        helper.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                machine.wait_for_blocking(1, timeout=TIMEOUT)
        finally:
            signal.signal(signal.SIGINT, previous)
        helper.join(TIMEOUT)
        assert machine.statistics().waiters == 0

    @pytest.mark.parametrize("timeout", [-1, float("nan"), float("inf")])
    def test_bad_timeout(self, timeout: float) -> None:
        """A timeout that is not a finite number of seconds >= 0 is refused."""
        machine = ThreadSafeOrderedStateMachine(0)
        with pytest.raises(ValueError, match="timeout must be None or a finite"):
            bounded_call(lambda: machine.wait_for_blocking(1, timeout=timeout))
        assert machine.statistics().waiters == 0

    async def test_refused_inside_a_running_loop(self) -> None:
        """Blocking the loop would deadlock it: a clear error, at once."""
        machine = ThreadSafeOrderedStateMachine(0)
        message = re.escape(
            "ThreadSafeOrderedStateMachine.wait_for_blocking() and "
            "wait_for_at_least_blocking() would block the event loop running "
            "in this thread; await wait_for() or wait_for_at_least() instead"
        )
        for wait in (machine.wait_for_blocking, machine.wait_for_at_least_blocking):
            with pytest.raises(RuntimeError, match=f"^{message}$"):
                wait(1)
        assert machine.statistics().waiters == 0

    @pytest.mark.parametrize("kind", ["exact", "at least"])
    def test_no_timeout_means_no_deadline(
        self, kind: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without a timeout, the blocked thread waits with no deadline at all.

        Seen from its lock (no test may wait long enough to see it otherwise):
        the thread blocks on it without a timeout, and with one when given.
        """
        timeouts: list[float] = []

        class RecordingLock:
            def __init__(self) -> None:
                self.lock = threading.Lock()

            def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:  # noqa: FBT001, FBT002
                timeouts.append(timeout)
                return self.lock.acquire(blocking, timeout)

            def release(self) -> None:
                self.lock.release()

        monkeypatch.setattr(threadsafe_module, "Lock", RecordingLock)
        machine = ThreadSafeOrderedStateMachine(0)
        wait = (
            machine.wait_for_blocking
            if kind == "exact"
            else machine.wait_for_at_least_blocking
        )
        for timeout in (None, TIMEOUT):
            timeouts.clear()
            blocked = threading.Thread(
                target=lambda: wait(1, timeout=timeout),  # noqa: B023 (joined below)
                daemon=True,
            )
            blocked.start()
            until_blocking(lambda: machine.statistics().waiters == 1)
            machine.advance(1)
            blocked.join(TIMEOUT)
            assert not blocked.is_alive()
            machine.rewind(0)
            # The first acquire takes the waiter's lock for the thread to wait on.
            assert timeouts == [-1, -1 if timeout is None else timeout]

    def test_decided_as_it_times_out(self) -> None:
        """A transition that decides the wait just before its timeout expires wins.

        The waiter's timeout expires while a transition has decided its
        outcome but not yet delivered it: it returns the outcome, not
        TimeoutError.
        """
        machine = ThreadSafeOrderedStateMachine(0)
        # The race is inside it.
        give_up = ThreadSafeOrderedStateMachine[int]._give_up  # pyright: ignore[reportPrivateUsage]

        def give_up_after_a_transition(
            self: ThreadSafeOrderedStateMachine[int],
            waiter: Any,  # noqa: ANN401
        ) -> bool:
            self.state = 5  # decided now, after the waiter timed out
            return give_up(self, waiter)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(
                ThreadSafeOrderedStateMachine, "_give_up", give_up_after_a_transition
            )
            waited = bounded_call(
                lambda: machine.wait_for_at_least_blocking(1, timeout=0.001)
            )
            assert waited == 5
        assert machine.statistics().waiters == 0


class TestInterrupt:
    """Ctrl-C interrupts a blocking wait in the main thread."""

    @pytest.mark.slow
    def test_keyboard_interrupt_leaves_nothing_behind(self) -> None:
        """SIGINT raises KeyboardInterrupt from the wait, and no waiter is left."""
        program = textwrap.dedent(
            """
            import os, signal, threading, time
            from ordered_statemachine import ThreadSafeOrderedStateMachine

            # As at a terminal, even if this process inherited SIGINT ignored.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            machine = ThreadSafeOrderedStateMachine(0)

            def interrupt():
                while machine.statistics().waiters < 1:
                    time.sleep(0.001)
                os.kill(os.getpid(), signal.SIGINT)

            threading.Thread(target=interrupt, daemon=True).start()
            try:
                machine.wait_for_blocking(1, timeout=30)
            except KeyboardInterrupt:
                print("interrupted", machine.statistics().waiters)
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "interrupted 0\n"


class TestNothingDisturbs:
    """Misuse, closed loops, and collection leave the machine as it was."""

    pytestmark = pytest.mark.asyncio_log("Task was destroyed but it is pending")

    @pytest.mark.parametrize("how", ["assign", "advance"])
    def test_comparison_that_uses_its_machine(self, how: str) -> None:
        """A re-entrant comparison gets RuntimeError; the machine is unchanged."""

        class Meddler:
            machine: ClassVar[ThreadSafeOrderedStateMachine[Meddler] | None] = None

            def __init__(self, value: int) -> None:
                self.value = value

            def __lt__(self, other: Meddler) -> bool:
                meddled = Meddler.machine
                if meddled is not None:
                    if how == "assign":
                        meddled.state = Meddler(100)
                    else:
                        meddled.advance(Meddler(100))
                return self.value < other.value

            def __eq__(self, other: object) -> bool:
                return isinstance(other, Meddler) and other.value == self.value

            def __hash__(self) -> int:
                return self.value

        machine = ThreadSafeOrderedStateMachine(Meddler(0))
        Meddler.machine = machine
        message = re.escape(
            "ThreadSafeOrderedStateMachine was used while this thread was in "
            "the middle of an operation on it: a comparison of states (or a "
            "finalizer run by one) must not use the machine whose states it "
            "compares"
        )
        with pytest.raises(RuntimeError, match=f"^{message}$"):
            machine.state = Meddler(1)
        with pytest.raises(RuntimeError, match=f"^{message}$"):
            machine.advance(Meddler(1), cause=RuntimeError())
        Meddler.machine = None
        assert machine.state.value == 0
        assert machine.statistics().causes == 0
        machine.state = Meddler(1)  # the lock was released
        assert machine.state.value == 1

    @pytest.mark.parametrize(
        ("operation", "state", "outcome"),
        [
            ("assign 7", 7, None),
            ("advance 3", 5, "cannot rewind"),  # behind the finalizer's 5 by then
            ("rewind 2", 2, None),
            ("statistics", 5, None),
        ],
    )
    def test_finalizer_run_as_the_lock_is_taken(
        self, operation: str, state: int, outcome: str | None
    ) -> None:
        """A finalizer that assigns the machine, run just as the lock is taken.

        The garbage collector may run a finalizer right after the lock's
        acquire returns, before the operation says it holds the lock (from
        Python 3.12 it runs where a call returns). Here the lock's acquire
        runs one itself. Its assignment takes effect first; nothing hangs
        (with a plain lock, this thread would wait for itself forever).
        """
        machine = ThreadSafeOrderedStateMachine(0)
        started: list[bool] = []
        ran: list[int] = []

        def finalizer() -> None:
            started.append(True)  # once: its own assignment takes the lock too
            machine.state = 5
            ran.append(machine.state)

        class AcquireRunsTheFinalizer:
            def __init__(self) -> None:
                self.lock = threading.RLock()

            def acquire(self) -> bool:
                self.lock.acquire()
                if not started:
                    finalizer()
                return True

            def release(self) -> None:
                self.lock.release()

        machine._lock = AcquireRunsTheFinalizer()  # type: ignore[assignment]  # pyright: ignore[reportPrivateUsage, reportAttributeAccessIssue]
        operations: dict[str, Callable[[], object]] = {
            "assign 7": lambda: setattr(machine, "state", 7),
            "advance 3": lambda: machine.advance(3),
            "rewind 2": lambda: machine.rewind(2),
            # A lambda, not the bound method: a failure report shows the
            # arguments, and the method's repr would ask the machine.
            "statistics": lambda: machine.statistics(),  # noqa: PLW0108
        }
        # In a thread of its own (bounded_call), so that a hang fails the test.
        if outcome is None:
            bounded_call(operations[operation])
        else:
            with pytest.raises(ValueError, match=f"^{outcome}"):
                bounded_call(operations[operation])
        assert ran == [5]
        assert machine.state == state
        # The lock is free: another thread can use the machine.
        bounded_call(lambda: machine.advance(9))
        assert machine.state == 9

    async def test_subscription_collected_in_the_middle_of_an_operation(self) -> None:
        """A subscription collected while the machine's lock is held closes later.

        Its finalizer runs inside the operation (here, a comparison drops the
        last reference): it neither deadlocks nor disturbs the operation, and
        the closed subscription is gone by the next look at the subscribers.
        """
        machine = ThreadSafeOrderedStateMachine(Dropper(0))
        Dropper.held.append(machine.states())
        machine.state = Dropper(1)
        assert not Dropper.held
        assert machine.state.value == 1
        assert machine.statistics().subscribers == 0

    async def test_waiter_and_subscriber_on_a_closed_loop_are_dropped(
        self, other_loop: LoopThread
    ) -> None:
        """A loop closed with a waiter and a subscriber on it disturbs nothing."""
        machine = ThreadSafeOrderedStateMachine(0)

        async def subscribe_and_wait() -> None:
            async with machine.states() as states:
                async for _ in states:
                    pass

        other_loop.submit(machine.wait_for_at_least(1))
        other_loop.submit(subscribe_and_wait())
        here = asyncio.create_task(machine.wait_for_at_least(1))
        await until(lambda: machine.statistics().waiters == 2)
        other_loop.loop.call_soon_threadsafe(other_loop.loop.stop)
        other_loop.thread.join(TIMEOUT)
        other_loop.loop.close()
        assert machine.statistics().subscribers == 1
        machine.state = 1  # must not raise
        assert await bounded(here) == 1
        assert machine.statistics().waiters == 0
        machine.state = 2  # the closed subscription is gone by now
        assert machine.statistics().subscribers == 0

    async def test_interrupted_delivery_is_finished_by_the_next_operation(
        self,
    ) -> None:
        """A KeyboardInterrupt while delivering loses no wake-up, and repeats none.

        It comes from the third of four deliveries: the next operation that
        delivers makes the fourth, and only it.
        """
        loop = asyncio.get_running_loop()
        machine = ThreadSafeOrderedStateMachine(0)
        interrupted: list[object] = []

        class Interrupting(asyncio.Future[object]):
            def set_result(self, result: object, /) -> None:
                interrupted.append(result)
                raise KeyboardInterrupt

        resumed: list[str] = []

        async def wait(label: str) -> None:
            await machine.wait_for_at_least(1)
            resumed.append(label)

        tasks = [asyncio.create_task(wait(label)) for label in ("one", "two")]
        await steps()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(loop, "create_future", lambda: Interrupting(loop=loop))
            bad = asyncio.ensure_future(machine.wait_for_at_least(1))
            await steps()
        tasks.append(asyncio.create_task(wait("four")))
        await steps()
        with pytest.raises(KeyboardInterrupt):
            machine.state = 1
        try:
            machine.rewind(1)  # an equal rewind: delivers what was left
        except KeyboardInterrupt:
            pytest.fail("the interrupted delivery was made again")
        await bounded(asyncio.gather(*tasks))
        assert resumed == ["one", "two", "four"]
        assert interrupted == [1]
        bad.cancel()
        await asyncio.gather(bad, return_exceptions=True)

    async def test_interrupted_in_a_later_batch(self) -> None:
        """Interrupted in the second batch of a delivery, with more decided meanwhile.

        The first batch's broken waiter has the exception handler move the
        machine to 2; the deliverer takes that batch next, whose first
        delivery moves it to 3 and is interrupted. The next operation makes
        what was left of the second batch, then the third, in order.
        """
        loop = asyncio.get_running_loop()
        machine = ThreadSafeOrderedStateMachine(0)

        class Interrupting(asyncio.Future[object]):
            def set_result(self, result: object, /) -> None:
                del result
                machine.state = 3
                raise KeyboardInterrupt

        resumed: list[str] = []

        async def wait(label: str, target: int) -> None:
            await machine.wait_for_at_least(target)
            resumed.append(label)

        def moving_to_2(_: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            del context
            machine.state = 2

        async def park(
            future_class: type[asyncio.Future[Any]], target: int
        ) -> asyncio.Future[int]:
            """Start a wait for ``target`` whose future is a ``future_class``."""
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(loop, "create_future", lambda: future_class(loop=loop))
                parked = asyncio.ensure_future(machine.wait_for_at_least(target))
                await steps()
            return parked

        parked = [await park(BrokenFuture, 1)]
        tasks = [asyncio.create_task(wait("A", 1))]
        await steps()
        parked.append(await park(Interrupting, 2))
        tasks += [asyncio.create_task(wait("B", 2)), asyncio.create_task(wait("C", 3))]
        await steps()
        loop.set_exception_handler(moving_to_2)
        try:
            with pytest.raises(KeyboardInterrupt):
                machine.state = 1
        finally:
            loop.set_exception_handler(None)
        machine.rewind(3)  # an equal rewind: delivers what was left
        await bounded(asyncio.gather(*tasks))
        assert resumed == ["A", "B", "C"]
        for future in parked:
            future.cancel()
        await asyncio.gather(*parked, return_exceptions=True)

    async def test_state_between_an_empty_take_and_parking(self) -> None:
        """A state that comes after the consumer found nothing is not missed.

        The consumer takes (nothing), then parks: a state entered in between
        (here, by the loop's create_future, which parking calls first) makes
        parking return at once.
        """
        loop = asyncio.get_running_loop()
        machine = ThreadSafeOrderedStateMachine(0)
        async with machine.states() as states:
            assert await anext(states) == 0
            real = loop.create_future

            def entering_first() -> asyncio.Future[Any]:
                machine.state = 1
                return real()

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(loop, "create_future", entering_first)
                # Its first step only, under the patch: on 3.10 bounded()'s
                # wait_for calls create_future too, before the take.
                consumer = asyncio.ensure_future(anext(states))
                await steps()
            assert await bounded(consumer) == 1

    async def test_deliveries_made_while_delivering(self) -> None:
        """What an operation decides while another delivers is delivered too, after.

        A delivery's exception handler (user code, run by the deliverer) moves
        the machine again: its deliveries wait for the current batch, and the
        deliverer makes them next.
        """
        loop = asyncio.get_running_loop()
        machine = ThreadSafeOrderedStateMachine(0)
        reported: list[object] = []

        def handler(_: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            reported.append(context["exception"])
            machine.state = 2  # while the first batch is being delivered

        resumed: list[str] = []

        async def wait(label: str, wait: Awaitable[object]) -> None:
            await wait
            resumed.append(label)

        broken_wait = machine.wait_for_at_least(1)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(loop, "create_future", lambda: BrokenFuture(loop=loop))
            broken = asyncio.ensure_future(broken_wait)
            await steps()
        # Decided with the broken one, delivered after it: in the same batch.
        first = asyncio.create_task(wait("first", machine.wait_for_at_least(1)))
        second = asyncio.create_task(wait("second", machine.wait_for(2)))
        await steps()
        loop.set_exception_handler(handler)
        try:
            machine.state = 1
        finally:
            loop.set_exception_handler(None)
        assert len(reported) == 1
        await bounded(asyncio.gather(first, second))
        # The handler's transition was delivered after the batch it interrupted.
        assert resumed == ["first", "second"]
        assert machine.state == 2
        broken.cancel()
        await asyncio.gather(broken, return_exceptions=True)

    async def test_closing_wakes_a_waiting_consumer(
        self, other_loop: LoopThread
    ) -> None:
        """aclose() ends a consumer waiting on this loop or on another."""
        machine = ThreadSafeOrderedStateMachine(0)
        for where in ("here", "there"):
            subscription = machine.states()
            assert await anext(subscription) == 0

            async def drain(states: StateSubscription[int] = subscription) -> list[int]:
                return [state async for state in states]

            if where == "here":
                drained = asyncio.ensure_future(drain())
                await steps()
                await subscription.aclose()
                assert await bounded(drained) == []
            else:
                there = other_loop.submit(drain())
                # Parked on the other loop: no public view shows that moment.
                feed = subscription._feed  # pyright: ignore[reportPrivateUsage]

                def parked(feed: object = feed) -> bool:
                    return getattr(feed, "waiter", None) is not None

                await until(parked)
                await subscription.aclose()
                assert there.result(TIMEOUT) == []
        assert machine.statistics().subscribers == 0

    async def test_other_subscriber_after_a_closed_one_is_dropped(self) -> None:
        """Dropping a subscription collected mid-operation leaves the others whole.

        One subscription is collected inside an operation (its removal put
        off), then dropped by the next look at the subscribers; the other
        still gets every state, although a waiter far above is pending.
        """
        machine = ThreadSafeOrderedStateMachine(Dropper(0))
        far = asyncio.create_task(machine.wait_for_at_least(Dropper(1_000)))
        async with machine.states() as kept:
            Dropper.held.append(machine.states())
            await steps()
            machine.state = Dropper(1)
            assert machine.statistics().subscribers == 1  # the collected one: gone
            machine.state = Dropper(2)
            seen = [(await bounded(anext(kept))).value for _ in range(3)]
            assert seen == [0, 1, 2]
        far.cancel()
        await asyncio.gather(far, return_exceptions=True)

    async def test_dropped_subscription_unsubscribes(self) -> None:
        """A subscription collected without being closed leaves the machine."""
        machine = ThreadSafeOrderedStateMachine(0)
        subscription = machine.states()
        watch = weakref.ref(subscription)
        del subscription
        gc.collect()
        assert watch() is None
        assert machine.statistics().subscribers == 0

    async def test_cancelled_waits_leave_nothing(self) -> None:
        """Cancelled waits, lone or many, resolved or not, leave no waiter."""
        machine = ThreadSafeOrderedStateMachine(0)
        tasks = [asyncio.create_task(machine.wait_for(t)) for t in (1, 1, 2, 3)]
        await steps()
        tasks[0].cancel()
        machine.state = 1
        tasks[1].cancel()  # resolved, then cancelled before it resumed
        tasks[2].cancel()
        await asyncio.gather(*tasks[:3], return_exceptions=True)
        assert [t.cancelled() for t in tasks[:3]] == [True, True, True]
        assert machine.statistics().waiters == 1
        tasks[3].cancel()
        await asyncio.gather(tasks[3], return_exceptions=True)
        assert machine.statistics().waiters == 0


def test_message_names_the_class() -> None:
    """A backward assignment names the thread-safe machine."""
    machine = ThreadSafeOrderedStateMachine(2)
    with pytest.raises(
        ValueError,
        match=re.escape("cannot rewind ThreadSafeOrderedStateMachine from 2 to 1"),
    ):
        machine.state = 1
    with pytest.raises(ValueError, match="cannot forward using rewind"):
        machine.rewind(3)
    with pytest.raises(TypeError, match="states must be ordered"):
        machine.rewind(float("nan"))  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    nan: Any = float("nan")
    with pytest.raises(TypeError, match="states must be ordered"):
        machine.state = nan
    with pytest.raises(TypeError, match="states must be ordered"):
        machine.advance(nan, cause=RuntimeError())
    assert machine.statistics() == type(machine.statistics())(2, 0, 0, 0)


async def test_waiter_cancelled_after_a_thread_decided_it() -> None:
    """A wait cancelled between another thread's decision and its delivery ends.

    The assigning thread decides the wait and hands its outcome to this
    loop; the task is cancelled before the loop runs that hand-off, which
    then finds the future done and leaves it.
    """
    machine = ThreadSafeOrderedStateMachine(0)
    task = asyncio.create_task(machine.wait_for(1))
    await steps()
    thread = threading.Thread(target=setattr, args=(machine, "state", 1))
    thread.start()
    thread.join(TIMEOUT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await bounded(task)
    assert machine.statistics().waiters == 0
