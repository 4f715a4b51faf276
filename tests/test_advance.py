"""``advance(new_state, cause=...)``: the assignment that says why."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import traceback
import tracemalloc
from typing import TYPE_CHECKING

import pytest

from helpers import Conn, bounded, steps
from ordered_statemachine import OrderedStateMachine, OrderedStateSkipped

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType


def by_setter(machine: OrderedStateMachine[Conn], state: Conn) -> None:
    """Assign ``state`` to ``machine.state``."""
    machine.state = state


def by_advance(machine: OrderedStateMachine[Conn], state: Conn) -> None:
    """Call ``machine.advance(state)`` without a cause."""
    machine.advance(state)


def depth(tb: TracebackType | None) -> int:
    """The number of entries of the traceback ``tb``."""
    entries = 0
    while tb is not None:
        entries += 1
        tb = tb.tb_next
    return entries


ASSIGNMENTS = pytest.mark.parametrize(
    "assign", [by_setter, by_advance], ids=["setter", "advance"]
)


class TestSameAsAssignment:
    """``machine.state = x`` is ``machine.advance(x)``: same checks and wake-ups."""

    @ASSIGNMENTS
    async def test_moves_forward_and_wakes(
        self, assign: Callable[[OrderedStateMachine[Conn], Conn], None]
    ) -> None:
        """A greater state is stored and resolves the due waiters."""
        machine = OrderedStateMachine(Conn.READY)
        exact = asyncio.create_task(machine.wait_for(Conn.OPEN))
        least = asyncio.create_task(machine.wait_for_at_least(Conn.OPEN))
        await steps()
        assign(machine, Conn.OPEN)
        assert machine.state is Conn.OPEN
        await bounded(exact)
        assert await bounded(least) is Conn.OPEN

    @ASSIGNMENTS
    def test_backwards_is_rejected(
        self, assign: Callable[[OrderedStateMachine[Conn], Conn], None]
    ) -> None:
        """A lesser state raises the same ValueError, naming both; nothing changes."""
        machine = OrderedStateMachine(Conn.CLOSING)
        with pytest.raises(
            ValueError,
            match=r"^cannot rewind OrderedStateMachine from <Conn.CLOSING: 2> "
            r"to <Conn.OPEN: 1>:",
        ):
            assign(machine, Conn.OPEN)
        assert machine.state is Conn.CLOSING

    @ASSIGNMENTS
    async def test_equal_does_nothing(
        self, assign: Callable[[OrderedStateMachine[Conn], Conn], None]
    ) -> None:
        """An equal state wakes no one and publishes nothing."""
        machine = OrderedStateMachine(Conn.OPEN)
        subscription = machine.states()
        assert await bounded(anext(subscription)) is Conn.OPEN
        assign(machine, Conn.OPEN)
        assign(machine, Conn.CLOSED)
        assert await bounded(anext(subscription)) is Conn.CLOSED

    def test_advance_rejects_nan_and_incomparable(self) -> None:
        """``advance`` raises TypeError for NaN or incomparable states, cause or not."""
        machine = OrderedStateMachine(1.0)
        with pytest.raises(
            TypeError,
            match=r"^states must be ordered, but nan is neither less than, equal "
            r"to nor greater than the current state 1.0$",
        ):
            machine.advance(math.nan)
        with pytest.raises(TypeError, match="states must be ordered"):
            machine.advance(math.nan, cause=RuntimeError())
        with pytest.raises(TypeError):
            machine.advance("two", cause=RuntimeError())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        assert machine.state == 1.0
        assert machine.statistics().causes == 0


class TestCauses:
    """The cause given to ``advance`` is the ``__cause__`` of the skips it makes."""

    async def test_pending_waiters_skipped_by_the_transition_carry_the_cause(
        self,
    ) -> None:
        """Every ``wait_for`` the transition skips raises with ``__cause__ = cause``."""
        machine = OrderedStateMachine(Conn.READY)
        first = asyncio.create_task(machine.wait_for(Conn.OPEN))
        second = asyncio.create_task(machine.wait_for(Conn.CLOSING))
        least = asyncio.create_task(machine.wait_for_at_least(Conn.OPEN))
        hit = asyncio.create_task(machine.wait_for(Conn.CLOSED))
        await steps()
        refused = ConnectionRefusedError(111, "Connection refused")
        machine.advance(Conn.CLOSED, cause=refused)
        for task, state in ((first, Conn.OPEN), (second, Conn.CLOSING)):
            with pytest.raises(OrderedStateSkipped) as info:
                await bounded(task)
            assert info.value.skipped_state is state
            assert info.value.__cause__ is refused
        assert await bounded(least) is Conn.CLOSED
        await bounded(hit)

    async def test_traceback_shows_the_real_reason(self) -> None:
        """The formatted traceback names the cause, chained as the direct cause."""
        machine = OrderedStateMachine(Conn.READY)
        waiter = asyncio.create_task(machine.wait_for(Conn.OPEN))
        await steps()
        try:
            msg = "refused by 127.0.0.1"
            raise ConnectionRefusedError(msg)  # noqa: TRY301
        except ConnectionRefusedError as exc:
            machine.advance(Conn.CLOSED, cause=exc)
        with pytest.raises(OrderedStateSkipped) as info:
            await bounded(waiter)
        text = "".join(traceback.format_exception(info.value))
        assert "ConnectionRefusedError: refused by 127.0.0.1" in text
        assert "The above exception was the direct cause" in text

    async def test_unwrapping_the_cause_keeps_memory_flat(self) -> None:
        """Re-raising the cause of skip after skip grows nothing the machine keeps.

        Regression: every skip shared the recorded cause, and each re-raise
        appended frames to its traceback, which the machine kept: 10,000
        requests left a traceback of 20,000 entries. Each skip now shows the
        cause with the traceback it had when ``advance`` recorded it.
        """
        machine = OrderedStateMachine(Conn.READY)
        try:
            msg = "refused by 127.0.0.1"
            raise ConnectionRefusedError(msg)  # noqa: TRY301
        except ConnectionRefusedError as exc:
            machine.advance(Conn.CLOSED, cause=exc)
            refused, recorded = exc, exc.__traceback__

        async def request() -> None:
            try:
                await machine.wait_for(Conn.OPEN)
            except OrderedStateSkipped as skipped:
                # Inside the handler: the request unwraps and re-raises.
                assert skipped.__cause__ is refused  # noqa: PT017
                assert refused.__traceback__ is recorded
                raise refused from None

        def kept() -> int:
            gc.collect()
            return tracemalloc.get_traced_memory()[0]

        async def requests(count: int) -> None:
            # One bound for the lot: asyncio.wait_for leaves a cancelled timer
            # handle per call (until its deadline) on Python 3.12 and later.
            async def each() -> None:
                for _ in range(count):
                    with contextlib.suppress(ConnectionRefusedError):
                        await request()

            await bounded(each())

        tracemalloc.start()
        try:
            await requests(100)  # first-use allocations are not growth
            before = kept()
            await requests(10_000)
            grown = kept() - before
        finally:
            tracemalloc.stop()
        assert depth(refused.__traceback__) < 10
        # Frames appended per re-raise would be hundreds of bytes each.
        assert grown < 5_000, grown

    async def test_pending_skips_show_the_recorded_traceback(self) -> None:
        """Waiters that resume after the cause was re-raised see it as recorded."""
        machine = OrderedStateMachine(Conn.READY)
        waiters = [asyncio.create_task(machine.wait_for(Conn.OPEN)) for _ in range(3)]
        await steps()
        try:
            raise ConnectionResetError  # noqa: TRY301
        except ConnectionResetError as exc:
            machine.advance(Conn.CLOSED, cause=exc)
            reset, recorded = exc, exc.__traceback__
        # Before the skipped waiters resume, someone re-raises the shared
        # cause, which grows its traceback.
        with contextlib.suppress(ConnectionResetError):
            raise reset
        assert depth(reset.__traceback__) > depth(recorded)
        for waiter in waiters:
            with pytest.raises(OrderedStateSkipped) as info:
                await bounded(waiter)
            assert info.value.__cause__ is reset
            assert reset.__traceback__ is recorded

    async def test_later_wait_for_a_passed_state_carries_the_cause(self) -> None:
        """A wait started after the transition is chained to the same cause."""
        machine = OrderedStateMachine(Conn.READY)
        refused = ConnectionRefusedError()
        machine.advance(Conn.CLOSED, cause=refused)
        for state in (Conn.READY, Conn.OPEN, Conn.CLOSING):
            with pytest.raises(OrderedStateSkipped) as info:
                await bounded(machine.wait_for(state))
            assert info.value.__cause__ is refused, state

    async def test_cause_of_the_first_transition_past_the_state(self) -> None:
        """Each passed state is chained to the transition that moved past it."""
        machine = OrderedStateMachine(0)
        first, third = RuntimeError("first"), RuntimeError("third")
        machine.advance(2, cause=first)  # past 0 and 1
        machine.advance(4)  # past 2 and 3, no cause
        machine.advance(6, cause=third)  # past 4 and 5
        expected = {0: first, 1: first, 2: None, 3: None, 4: third, 5: third}
        for state, cause in expected.items():
            with pytest.raises(OrderedStateSkipped) as info:
                await bounded(machine.wait_for(state))
            assert info.value.__cause__ is cause, state
        assert machine.statistics().causes == 2

    async def test_states_below_the_initial_state_have_no_cause(self) -> None:
        """No transition moved past a state below the initial one."""
        machine = OrderedStateMachine(5)
        machine.advance(6, cause=RuntimeError())
        with pytest.raises(OrderedStateSkipped) as info:
            await bounded(machine.wait_for(4))
        assert info.value.__cause__ is None

    async def test_rewind_forgets_the_causes_it_undoes(self) -> None:
        """Rewinding to r drops the causes of transitions that moved above r."""
        machine = OrderedStateMachine(0)
        low, high = RuntimeError("low"), RuntimeError("high")
        machine.advance(2, cause=low)
        machine.advance(5, cause=high)
        machine.rewind(3)
        assert machine.statistics().causes == 1
        with pytest.raises(OrderedStateSkipped) as info:
            await bounded(machine.wait_for(1))
        assert info.value.__cause__ is low
        machine.advance(6)  # past 3, 4 and 5 again, this time without a cause
        with pytest.raises(OrderedStateSkipped) as info:
            await bounded(machine.wait_for(4))
        assert info.value.__cause__ is None
        machine.rewind(2)  # 2 is where "low" arrived: it did not move above 2
        assert machine.statistics().causes == 1
        machine.rewind(0)
        assert machine.statistics().causes == 0
        with pytest.raises(OrderedStateSkipped):
            await bounded(machine.wait_for(-1))

    async def test_rewind_boundary_is_the_transitions_new_state(self) -> None:
        """A rewind forgets a transition's cause iff it goes below its new state.

        The rule of the docstring and the concepts page alike:
        after ``2 -> 5`` with a cause, rewinding to 5 keeps it, and rewinding
        to 4 forgets it, even for the skipped state 3, which stays skipped.
        """
        machine = OrderedStateMachine(2)
        cause = RuntimeError("jumped")
        machine.advance(5, cause=cause)
        machine.rewind(5)
        with pytest.raises(OrderedStateSkipped) as info:
            await bounded(machine.wait_for(3))
        assert info.value.__cause__ is cause
        machine.rewind(4)
        assert machine.statistics().causes == 0
        with pytest.raises(OrderedStateSkipped) as info:
            await bounded(machine.wait_for(3))
        assert info.value.__cause__ is None

    async def test_cause_is_not_recorded_when_advance_fails(self) -> None:
        """A rejected or equal advance records nothing."""
        machine = OrderedStateMachine(Conn.OPEN)
        with pytest.raises(ValueError, match="cannot rewind"):
            machine.advance(Conn.READY, cause=RuntimeError())
        machine.advance(Conn.OPEN, cause=RuntimeError())
        assert machine.statistics().causes == 0

    @pytest.mark.uninstrumented
    async def test_transitions_without_cause_cost_nothing(self) -> None:
        """Ten thousand causeless transitions keep no record and no memory."""
        machine = OrderedStateMachine(0)
        machine.state = 1
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for state in range(2, 10_002):
                machine.advance(state)
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert machine.statistics().causes == 0
        # A record per transition would take at least 56 bytes each (560 kB);
        # what grows is the interpreter's own caches (int free lists on 3.10)
        # and the last state, which the machine keeps.
        assert grown < 1_000, grown
