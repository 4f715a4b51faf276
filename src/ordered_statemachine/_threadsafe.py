"""`ThreadSafeOrderedStateMachine`: the machine, for any thread and any event loop.

Locking
=======

One lock, ``_lock``, guards everything the machine holds: the state,
the threshold, the attachments (queue of waiters, feeds of subscriptions,
causes), the outbox, the ``_delivering`` flag, the ``over`` flag of every
waiter, and the buffer, future and flags of every feed. The lock is
reentrant, and ``_busy`` says that an operation holds it, so that a thread
that uses the machine in the middle of its own operation is caught.

Every operation takes the lock once and decides everything under it: the
comparisons, which waiters are due and what each gets. That instant is the
operation's linearization point. While the lock is held, no code runs but
the machine's own and the states' comparisons: no future is resolved, no
event loop is called, no thread is woken, no exception handler runs.

Decisions leave the lock as deliveries, appended to the outbox in the order
they were made. After releasing the lock, the operation delivers the outbox,
unless another thread is already doing so (``_delivering``), in which case
that thread delivers these too. So deliveries happen outside the lock, one
thread at a time, in the order of the decisions: waiters are resumed in FIFO
order across all threads and loops. A waiter on the deliverer's own running
loop is resolved directly; one on another loop through that loop's
``call_soon_threadsafe``; a blocked thread by releasing its own lock. A
waiter or subscriber whose loop is closed is dropped.

A comparison runs under the lock. One that uses the same machine from the
same thread (re-entrancy) gets a RuntimeError; one that uses it from another
thread, or waits for a thread that does, deadlocks: comparisons must not
touch their machine.
"""

from __future__ import annotations

import math
from asyncio import get_running_loop
from asyncio.events import _get_running_loop
from threading import Lock, RLock
from typing import TYPE_CHECKING, Any, Final, Generic, TypeAlias, cast

from typing_extensions import final, override

from ._exceptions import backwards, check_cause, check_ordered, forwards, unordered
from ._machine import MachineStatistics
from ._queue import AT_LEAST, EXACT, KIND
from ._subscription import Feed, Nothing, StateSubscription, second_consumer
from ._transitions import NO_CAUSE, Attachments, record, report_undeliverable, skipped
from ._typing import StateT

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from ._transitions import Record

_NAME: Final = "ThreadSafeOrderedStateMachine"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """Return the event loop running in this thread, if any."""
    # The low-level accessor event loops themselves use: no exception to make
    # in the (common) thread without a loop.
    return _get_running_loop()


class _LoopWaiter:
    """A wait on an event loop, resumed through its future."""

    __slots__ = ("future", "loop", "over")

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future
        self.loop = future.get_loop()
        self.over = True
        """Not a pending waiter of the machine: not yet queued, resolved by a
        transition, or given up (guarded by the lock)."""

    def done(self) -> bool:
        """Whether the waiter is over (see `WaiterQueue`)."""
        return self.over


class _ThreadWaiter:
    """A blocking wait, resumed by releasing the lock its thread waits on."""

    __slots__ = ("lock", "outcome", "over")

    def __init__(self) -> None:
        self.lock = Lock()
        self.lock.acquire()
        self.outcome: object = None
        self.over = True
        """As `_LoopWaiter.over`."""

    def done(self) -> bool:
        """Whether the waiter is over (see `WaiterQueue`)."""
        return self.over


_Waiter: TypeAlias = "_LoopWaiter | _ThreadWaiter"
_Delivery: TypeAlias = (
    "tuple[asyncio.AbstractEventLoop | None, Callable[[Any, Any], None], Any, object]"
)
"""(loop or None, deliver, target, value): call ``deliver(target, value)`` on
``loop`` (or in any thread, if None)."""
_PENDING: Final = object()
"""The outcome of a wait that has to wait."""


def _settle(future: asyncio.Future[Any], outcome: object) -> None:
    """Resolve ``future`` with ``outcome``, unless its task gave up meanwhile."""
    if not future.done():
        future.set_result(outcome)


def _wake_thread(waiter: _ThreadWaiter, outcome: object) -> None:
    """Hand ``outcome`` to the blocked thread of ``waiter`` and wake it."""
    waiter.outcome = outcome
    waiter.lock.release()


def _wake_consumer(feed: LockedFeed[Any], waiter: asyncio.Future[None]) -> None:
    """Resume the consumer of ``feed``, which awaits ``waiter``."""
    del feed  # the target of the delivery, to close if the waiter cannot be resumed
    _settle(waiter, None)


def _reentered() -> RuntimeError:
    return RuntimeError(
        f"{_NAME} was used while this thread was in the middle of an "
        "operation on it: a comparison of states (or a finalizer run by "
        "one) must not use the machine whose states it compares"
    )


class LockedFeed(Feed[StateT]):
    """A feed that any thread may fill and any event loop consume.

    The machine's lock guards it: the machine appends states and takes note
    of the consumer's future under it, and the consumer takes states and
    parks under it too, so that a state cannot slip in between the consumer
    finding the buffer empty and its future being noted (a lost wake-up).
    ``woken`` is whether the noted future has been sent its wake-up. The lock
    is reentrant: closing a feed in the middle of the machine's operation (a
    finalizer, on that thread) touches only the feed.
    """

    __slots__ = ("lock", "woken")

    def __init__(self, first: StateT, lock: RLock) -> None:
        """Start a feed whose first state is ``first``, guarded by ``lock``."""
        super().__init__(first)
        self.lock = lock
        self.woken = False

    @override
    def take(self) -> StateT | Nothing:
        with self.lock:
            return super().take()

    @override
    def park(self) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = get_running_loop().create_future()
        with self.lock:
            if self.waiter is not None:
                raise second_consumer()
            if self.buffer or self.closed:
                waiter.set_result(None)  # it came meanwhile: no need to wait
            else:
                self.waiter = waiter
                self.woken = False
        return waiter

    @override
    def unpark(self) -> None:
        with self.lock:
            self.waiter = None

    @override
    def close(self, *, wake: bool = True) -> None:
        with self.lock:
            self.closed = True
            self.buffer.clear()
            waiter, self.waiter = self.waiter, None
        if wake and waiter is not None:
            loop = waiter.get_loop()
            if loop is _running_loop():
                _settle(waiter, None)
            else:
                loop.call_soon_threadsafe(_settle, waiter, None)


def _valid_timeout(timeout: float | None) -> float | None:
    """Return ``timeout``, checked: None or a number of seconds, at least 0."""
    if timeout is not None and not (timeout >= 0 and not math.isinf(timeout)):
        msg = (
            f"timeout must be None or a finite number of seconds >= 0, not {timeout!r}"
        )
        raise ValueError(msg)
    return timeout


@final
class ThreadSafeOrderedStateMachine(Generic[StateT]):
    """An `OrderedStateMachine` that any thread and any event loop can use.

    The same contract as `OrderedStateMachine` (the same ordering rules, the
    same outcomes, FIFO wake-ups, causes, rewinds, subscriptions), made safe
    for concurrent use: any thread, with or without a running event loop, can
    assign the state, `advance`, `rewind` and read it; coroutines on any
    event loop in any thread (asyncio's or uvloop's) can await it, each
    resumed on its own loop; synchronous code can block until a milestone
    with `wait_for_blocking` and `wait_for_at_least_blocking`.

    Every operation takes effect at one instant (it is linearizable): each
    waiter's outcome is what the sequential contract gives for the order in
    which the operations took effect, no wake-up is lost and none is
    spurious, and the waiters one transition resolves are resumed in the
    order they started waiting, across all threads and loops. A waiter or
    subscriber whose event loop was closed is dropped without disturbing
    anything else.

    It costs a lock per operation, so code that stays on one thread should
    use `OrderedStateMachine`.

    A comparison of states runs while the machine's lock is held: one that
    uses the same machine from the same thread gets `RuntimeError`, and one
    that uses it from another thread (or waits for a thread that does)
    deadlocks. Comparisons must not touch their machine.

    Raises:
        TypeError: ``initial_state`` fails the sanity check of the ordering
            contract (see `OrderedStateMachine`); the message says ``states
            must be ordered``.

    """

    __slots__ = (
        "__weakref__",
        "_attached",
        "_busy",
        "_delivering",
        "_lock",
        "_outbox",
        "_state",
        "_threshold",
    )

    def __init__(self, initial_state: StateT) -> None:
        """Create a machine in ``initial_state``; see the class documentation."""
        check_ordered(initial_state)
        # Reentrant, so that a thread in the middle of an operation that
        # uses the machine again gets the lock and finds _busy set: caught
        # (_lock_up), or put off (_unsubscribe), instead of a deadlock.
        self._lock = RLock()
        self._busy = False
        self._state = initial_state
        # As in OrderedStateMachine: None, or the least state whose assignment
        # has more to do than store itself.
        self._threshold: StateT | None = None
        self._attached: Attachments[StateT, _Waiter] | None = None
        self._outbox: list[_Delivery] = []
        self._delivering = False

    # -- the lock ---------------------------------------------------------------

    def _try_lock_up(self) -> bool:
        """Take the lock for an operation; False if this thread is in one already."""
        lock = self._lock
        lock.acquire()
        if self._busy:
            lock.release()
            return False
        self._busy = True
        return True

    def _lock_up(self) -> None:
        """Take the lock for an operation, or raise RuntimeError (re-entrancy)."""
        if not self._try_lock_up():
            raise _reentered()

    def _unlock(self) -> None:
        self._busy = False
        self._lock.release()

    def _attach(self) -> Attachments[StateT, _Waiter]:
        attached = self._attached
        if attached is None:
            attached = self._attached = Attachments()
        return attached

    # -- reading ----------------------------------------------------------------

    def __repr__(self) -> str:
        """Show the class, the current state and the number of waiters."""
        stats = self.statistics()
        return (
            f"<ordered_statemachine.{_NAME} state={stats.state!r} "
            f"waiters={stats.waiters}>"
        )

    def statistics(self) -> MachineStatistics[StateT]:
        """Return a snapshot: state, waiters, subscribers, and causes kept.

        All four are read at one instant. Waiters are counted until they are
        resolved or give up (a cancelled wait, at the instant its task runs;
        a blocking wait that timed out, at the instant it raises).
        """
        self._lock_up()
        try:
            attached = self._attached
            if attached is None:
                return MachineStatistics(self._state, 0, 0, 0)
            self._drop_closed_feeds(attached)
            return MachineStatistics(
                self._state,
                attached.waiters,
                len(attached.feeds),
                len(attached.causes),
            )
        finally:
            self._unlock()

    @property
    def state(self) -> StateT:
        """The current state. Assigning it moves the machine forward.

        Reading it takes no lock: it is the state of the last operation that
        took effect. ``machine.state = new`` is ``machine.advance(new)``: see
        `advance`.
        """
        return self._state

    @state.setter
    def state(self, new_state: StateT) -> None:
        # advance() without a cause, with the lock taken inline: the hot path
        # (a with-statement or a method call would cost more than the rest).
        lock = self._lock
        lock.acquire()
        if self._busy:
            lock.release()
            raise _reentered()
        self._busy = True
        try:
            current = self._state
            if not current < new_state:
                if new_state < current:
                    raise backwards(_NAME, new_state, current)
                if not new_state == current:
                    raise unordered(new_state, current)
                return  # equal: nothing changes
            threshold = self._threshold
            if threshold is None or new_state < threshold:
                self._state = new_state
                return
            self._enter(new_state, None, threshold)
            batch = self._claim()
        finally:
            self._busy = False
            lock.release()
        self._deliver(batch)

    def advance(self, new_state: StateT, *, cause: BaseException | None = None) -> None:
        """Move the machine forward to ``new_state``, recording why.

        As `OrderedStateMachine.advance`, at one instant: the waiters it
        decides are decided then, and resumed in FIFO order, on their own
        loops, once the machine's lock is released (a waiter on this
        thread's running loop before ``advance`` returns).

        Raises:
            ValueError: the new state is less than the current one; the
                message starts ``cannot rewind ThreadSafeOrderedStateMachine``.
            TypeError: the new state cannot be compared with the current
                state or with a pending waiter's target, or is unordered
                (NaN), or ``cause`` is neither None nor an exception.
            RuntimeError: called by a comparison of this machine's states.

        The machine, its waiters and its subscribers are unchanged when
        ``advance`` raises.

        """
        if cause is not None:
            check_cause(cause)
        self._lock_up()
        try:
            current = self._state
            if not current < new_state:
                if new_state < current:
                    raise backwards(_NAME, new_state, current)
                if not new_state == current:
                    raise unordered(new_state, current)
                return  # equal: nothing changes
            threshold = self._threshold
            if cause is None and (threshold is None or new_state < threshold):
                self._state = new_state
                return
            self._enter(new_state, cause, None)
            batch = self._claim()
        finally:
            self._unlock()
        self._deliver(batch)

    def rewind(self, new_state: StateT) -> None:
        """Move the machine back to ``new_state``, as `OrderedStateMachine.rewind`.

        Raises:
            ValueError: ``new_state`` is greater than the current state; the
                message starts ``cannot forward using rewind``.
            TypeError: ``new_state`` cannot be compared with the current
                state, or is unordered.
            RuntimeError: called by a comparison of this machine's states.

        The machine is unchanged when ``rewind`` raises.

        """
        self._lock_up()
        try:
            current = self._state
            if current < new_state:
                raise forwards(current, new_state)
            if new_state < current:
                attached = self._attached
                if attached is not None:
                    attached.forget_causes_above(new_state)  # comparisons first
                    self._state = new_state
                    self._threshold = new_state if attached.feeds else attached.least
                    self._publish(attached, new_state)
                else:
                    self._state = new_state
            elif not new_state == current:
                raise unordered(new_state, current)
            # Also what an interrupted delivery left, even for an equal state.
            batch = self._claim()
        finally:
            self._unlock()
        self._deliver(batch)

    # -- waiting ------------------------------------------------------------------

    async def wait_for(self, state: StateT) -> None:
        """Wait, on this event loop, until the machine enters exactly ``state``.

        As `OrderedStateMachine.wait_for`, from any event loop in any thread.

        Raises:
            OrderedStateSkipped: the machine is past ``state`` already, or a
                transition moves it past ``state`` without entering it; its
                ``__cause__`` is the transition's cause, if any.
            TypeError: ``state`` cannot be compared with the current state or
                with a pending waiter's target, or is unordered (nothing is
                registered).
            RuntimeError: called by a comparison of this machine's states.

        """
        waiter = _LoopWaiter(get_running_loop().create_future())
        outcome = self._register(waiter, state, EXACT)
        if outcome is _PENDING:
            try:
                outcome = await waiter.future
            except BaseException:
                self._give_up(waiter)
                raise
        if outcome is not None:
            raise skipped(state, cast("Record", outcome))

    async def wait_for_at_least(self, state: StateT) -> StateT:
        """Wait, on this event loop, until the state is ``state`` or greater; return it.

        As `OrderedStateMachine.wait_for_at_least`, from any event loop in any
        thread: returns the state whose assignment satisfied the wait.

        Raises:
            TypeError: ``state`` cannot be compared with the current state or
                with a pending waiter's target, or is unordered (nothing is
                registered).
            RuntimeError: called by a comparison of this machine's states.

        """
        waiter = _LoopWaiter(get_running_loop().create_future())
        outcome = self._register(waiter, state, AT_LEAST)
        if outcome is _PENDING:
            try:
                outcome = await waiter.future
            except BaseException:
                self._give_up(waiter)
                raise
        return cast("StateT", outcome)

    def wait_for_blocking(self, state: StateT, *, timeout: float | None = None) -> None:
        """Block this thread until the machine enters exactly ``state``.

        The blocking form of `wait_for`, for synchronous code in a thread with
        no running event loop. ``timeout`` is None (wait as long as it takes)
        or a number of seconds. A wait that times out, or is interrupted
        (Ctrl-C in the main thread raises `KeyboardInterrupt` from it), leaves
        nothing behind. A wait whose outcome was decided just as it timed out
        returns (or raises) that outcome.

        Raises:
            OrderedStateSkipped: the machine is past ``state`` already, or a
                transition moves it past ``state`` without entering it; its
                ``__cause__`` is the transition's cause, if any.
            TimeoutError: ``timeout`` seconds passed first.
            TypeError: ``state`` cannot be compared with the current state or
                with a pending waiter's target, or is unordered.
            ValueError: ``timeout`` is negative, infinite or NaN.
            RuntimeError: an event loop is running in this thread (blocking
                it would deadlock it: await `wait_for` there), or a comparison
                of this machine's states called it.

        """
        outcome = self._block(state, EXACT, timeout)
        if outcome is not None:
            raise skipped(state, cast("Record", outcome))

    def wait_for_at_least_blocking(
        self, state: StateT, *, timeout: float | None = None
    ) -> StateT:
        """Block this thread until the state is ``state`` or greater; return it.

        The blocking form of `wait_for_at_least`; ``timeout`` as in
        `wait_for_blocking`. Returns the state whose assignment satisfied the
        wait.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            TypeError: ``state`` cannot be compared with the current state or
                with a pending waiter's target, or is unordered.
            ValueError: ``timeout`` is negative, infinite or NaN.
            RuntimeError: an event loop is running in this thread, or a
                comparison of this machine's states called it.

        """
        return cast("StateT", self._block(state, AT_LEAST, timeout))

    def _block(self, state: StateT, kind: int, timeout: float | None) -> object:
        """Register a blocking waiter and wait; return its outcome."""
        timeout = _valid_timeout(timeout)
        if _running_loop() is not None:
            msg = (
                f"{_NAME}.wait_for_blocking() and wait_for_at_least_blocking() "
                "would block the event loop running in this thread; await "
                "wait_for() or wait_for_at_least() instead"
            )
            raise RuntimeError(msg)
        waiter = _ThreadWaiter()
        try:
            outcome = self._register(waiter, state, kind)
            if outcome is not _PENDING:
                return outcome
            woken = waiter.lock.acquire(timeout=-1 if timeout is None else timeout)
        except BaseException:
            # KeyboardInterrupt, say: the waiter leaves, unless decided.
            self._give_up(waiter)
            raise
        if not woken:
            if self._give_up(waiter):
                msg = f"the state was not reached within {timeout} s"
                raise TimeoutError(msg)
            # Decided just as the wait timed out: the delivery is under way,
            # and waits for nothing.
            waiter.lock.acquire()
        return waiter.outcome

    def _register(self, waiter: _Waiter, state: StateT, kind: int) -> object:
        """Queue ``waiter`` for ``state``, or return its outcome if it need not wait.

        Returns `_PENDING` if it was queued; else what its future would have
        received (see `_machine._Due`). Raises what comparing raises, with
        nothing queued.
        """
        self._lock_up()
        try:
            current = self._state
            if current < state:
                attached = self._attach()
                attached.push(waiter, state, kind)
                waiter.over = False  # queued: a pending waiter from now on
                if not attached.feeds:
                    self._threshold = attached.least
                return _PENDING
            if kind == AT_LEAST:
                if state < current or state == current:
                    return current
            elif state < current:
                kept = self._attached
                return kept.cause_past(state) if kept is not None else NO_CAUSE
            elif state == current:
                return None
            raise unordered(state, current)
        finally:
            self._unlock()

    def _give_up(self, waiter: _Waiter) -> bool:
        """Take ``waiter`` out of the queue; False if it is not pending there.

        That is, if a transition decided it first, or it was never queued.
        """
        self._lock_up()
        try:
            if waiter.over:
                return False
            waiter.over = True
            attached = self._attached
            assert attached is not None  # it holds the waiter that was queued
            attached.discard(waiter)
            self._threshold = self._state if attached.feeds else attached.least
            return True
        finally:
            self._unlock()

    # -- subscriptions ------------------------------------------------------------

    def states(self) -> StateSubscription[StateT]:
        """Subscribe to every state the machine enters.

        As `OrderedStateMachine.states`: the subscription yields the current
        state, then every state entered afterwards, in order, none skipped
        and none repeated, whichever threads make the transitions. Any thread
        may subscribe, and any event loop consume it (one task at a time).

        Raises:
            RuntimeError: a comparison of this machine's states called it.

        """
        self._lock_up()
        try:
            attached = self._attach()
            feed = LockedFeed(self._state, self._lock)
            # The subscription keeps its feed alive, so no other feed gets
            # its identity while it can still unsubscribe.
            token = id(feed)
            attached.feeds[token] = feed
            self._threshold = self._state
        finally:
            self._unlock()
        return StateSubscription(feed, lambda: self._unsubscribe(token))

    def _unsubscribe(self, token: int) -> None:
        if not self._try_lock_up():
            # A finalizer, in the middle of an operation of this thread: the
            # feed, closed by the subscription, is dropped by the next
            # operation that looks at the feeds.
            return
        try:
            attached = self._attached
            assert attached is not None  # only subscriptions call this
            if attached.feeds.pop(token, None) is not None:
                self._threshold = self._state if attached.feeds else attached.least
        finally:
            self._unlock()

    def _drop_closed_feeds(self, attached: Attachments[StateT, _Waiter]) -> None:
        """Forget the feeds whose subscription was closed (the lock is held)."""
        closed = [token for token, feed in attached.feeds.items() if feed.closed]
        for token in closed:
            del attached.feeds[token]
        if closed:
            self._threshold = self._state if attached.feeds else attached.least

    # -- transitions ----------------------------------------------------------------

    def _enter(
        self, new_state: StateT, cause: BaseException | None, reached: StateT | None
    ) -> None:
        """Enter ``new_state``, greater than the state; decide the due waiters.

        The lock is held. As `OrderedStateMachine._enter`, but the outcomes go
        to the outbox instead of the futures. All comparisons come first.
        """
        attached = self._attach()
        least = attached.least
        due = None
        if least is not None and (least is reached or not (new_state < least)):
            due = attached.pop_due(new_state)
        previous = self._state
        self._state = new_state
        why = NO_CAUSE
        if cause is not None:
            why = record(cause)
            attached.causes.append((previous, new_state, why))
        self._threshold = new_state if attached.feeds else attached.least
        if due is not None:
            outbox = self._outbox
            outcomes = (new_state, None, why)  # by kind: see _machine._Due
            waiters, tags = due
            for waiter, tag in zip(waiters, tags, strict=True):
                if waiter.over:
                    continue  # a dead slot: it gave up, and did its accounting
                if isinstance(waiter, _LoopWaiter):
                    # Cancelled on its loop, its task not yet run: it is
                    # counted until then, as in OrderedStateMachine. done()
                    # only ever turns true, so a stale False is harmless:
                    # _settle skips a future cancelled meanwhile.
                    if waiter.future.done():
                        continue
                    delivery: _Delivery = (
                        waiter.loop,
                        _settle,
                        waiter.future,
                        outcomes[tag & KIND],
                    )
                else:
                    delivery = (None, _wake_thread, waiter, outcomes[tag & KIND])
                waiter.over = True
                attached.live -= 1
                outbox.append(delivery)
        if attached.feeds:
            self._publish(attached, new_state)

    def _publish(self, attached: Attachments[StateT, _Waiter], state: StateT) -> None:
        """Hand ``state`` to every open subscription (the lock is held)."""
        self._drop_closed_feeds(attached)
        outbox = self._outbox
        for feed in attached.feeds.values():
            feed = cast("LockedFeed[StateT]", feed)
            feed.buffer.append(state)
            waiter = feed.waiter
            if waiter is not None and not feed.woken:
                feed.woken = True
                outbox.append((waiter.get_loop(), _wake_consumer, feed, waiter))

    def _claim(self) -> list[_Delivery] | None:
        """Take the outbox for this thread to deliver (the lock is held).

        None if it is empty, or if another thread is delivering: that thread
        delivers these too, after its own, keeping the order of decisions.
        """
        if self._delivering or not self._outbox:
            return None
        self._delivering = True
        batch, self._outbox = self._outbox, []
        return batch

    def _deliver(self, batch: list[_Delivery] | None) -> None:
        """Deliver a claimed ``batch``, then what the outbox gets meanwhile."""
        if batch is None:
            return
        running = _running_loop()
        delivered = 0
        try:
            while True:
                for delivery in batch:
                    delivered += 1
                    self._deliver_one(delivery, running)
                self._lock_up()
                try:
                    batch, self._outbox = self._outbox, []
                    delivered = 0
                    if not batch:
                        self._delivering = False
                        return
                finally:
                    self._unlock()
        except BaseException:
            # Interrupted (KeyboardInterrupt, say): what is left goes back to
            # the front of the outbox, for the next operation to deliver.
            self._lock_up()
            try:
                self._outbox[:0] = batch[delivered:]
                self._delivering = False
            finally:
                self._unlock()
            raise

    def _deliver_one(
        self, delivery: _Delivery, running: asyncio.AbstractEventLoop | None
    ) -> None:
        """Make one delivery; drop a waiter or subscriber that cannot be resumed."""
        loop, deliver, target, value = delivery
        if loop is None:
            deliver(target, value)  # waking a blocked thread: it cannot fail
            return
        try:
            if loop is running:
                deliver(target, value)
            else:
                loop.call_soon_threadsafe(deliver, target, value)
        # Not raised: the deliveries must go on for the others.
        except Exception as error:  # noqa: BLE001
            # Its loop is closed, say: it is dropped (a subscription closed).
            future = target
            if isinstance(target, LockedFeed):
                target.close(wake=False)
                future = value  # the consumer's future (see _publish)
            report_undeliverable(loop, cast("asyncio.Future[Any]", future), error)
