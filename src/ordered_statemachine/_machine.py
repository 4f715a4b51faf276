"""`OrderedStateMachine`: a state that only moves forward, and waits on it."""

from __future__ import annotations

import warnings
from asyncio import InvalidStateError, get_running_loop
from dataclasses import dataclass
from itertools import count
from typing import TYPE_CHECKING, Any, Final, Generic, TypeAlias, overload

from typing_extensions import deprecated, final

from ._exceptions import backwards, check_cause, check_ordered, forwards, unordered
from ._queue import AT_LEAST, EXACT, KIND, SKIPPED
from ._subscription import Feed, StateSubscription
from ._transitions import NO_CAUSE, Attachments, record, report_undeliverable, skipped
from ._typing import StateT

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Sequence

    from ._transitions import Record

_NO_LOOP: Final = object()
_next_token = count().__next__
_NAME: Final = "OrderedStateMachine"


@final
@dataclass(frozen=True)
class MachineStatistics(Generic[StateT]):
    """A snapshot of an `OrderedStateMachine`, for debugging and tests."""

    state: StateT
    """The state at the time of the snapshot."""
    waiters: int
    """Pending calls of `~OrderedStateMachine.wait_for` and
    `~OrderedStateMachine.wait_for_at_least`. A cancelled call counts until its
    task has run (the next loop iteration), as it does in the waiters of an
    `asyncio.Event`."""
    subscribers: int
    """Open `StateSubscription` iterators from `~OrderedStateMachine.states`."""
    causes: int
    """Transitions whose cause the machine keeps (see
    `~OrderedStateMachine.advance`)."""


_Due: TypeAlias = "tuple[Sequence[asyncio.Future[Any]], Sequence[int]]"
"""The waiters a transition resolves: futures and tags, in FIFO order.

A waiter's future receives, by its kind: the state reached (`AT_LEAST`), None
(`EXACT`), or the `Record` of the transition that skipped its target
(`SKIPPED`). The waiter raises `OrderedStateSkipped` itself: no future ever
holds an exception, whose traceback would tie it to the waiter's frame."""
_Attachments: TypeAlias = "Attachments[StateT, asyncio.Future[Any]]"
"""A machine's attachments: a waiter's handle is the future its task awaits."""


@final
class OrderedStateMachine(Generic[StateT]):
    """A state from a totally ordered type that only moves forward.

    ``initial_state`` is the state of the new machine. States are compared
    with ``<`` and ``==`` only (never ``>``, ``<=``, ``>=`` or ``!=``), and the
    states of one machine must form a total order: for any two of them exactly
    one of ``a < b``, ``a == b``, ``b < a`` holds. ``IntEnum`` and `OrderedEnum`
    members, ``int``, ``float`` (except NaN), ``str`` and tuples of such all
    qualify.

    No event loop is needed to create a machine, and none is stored: each
    waiter uses the loop it runs in. A machine is not thread-safe; use it from
    one thread at a time, like the rest of asyncio.

    A state's comparisons must not use the machine whose states they compare:
    one that assigns or rewinds it during an operation is outside the
    contract, and can move it backwards unnoticed.

    The machine wakes waiters in the order they started waiting (FIFO): all
    the waiters that one transition resolves resume in the order of their
    calls of `wait_for` and `wait_for_at_least`, whatever their targets.

    Raises:
        TypeError: ``initial_state`` fails the sanity check of the ordering
            contract: ``initial_state < initial_state`` must be false and
            ``initial_state == initial_state`` true, and neither may raise.
            This rejects plain `enum.Enum` members, ``None``, ``object()``,
            dicts, complex numbers and NaN. The message says ``states must be
            ordered``.

    """

    # An idle machine is three pointers and a weak reference slot; waiters,
    # subscribers and causes live in an _Attachments created on first use.
    __slots__ = ("__weakref__", "_attached", "_state", "_threshold")

    @overload
    def __init__(self, initial_state: StateT) -> None: ...
    @overload
    @deprecated("the loop argument has no effect: each waiter uses the loop it runs in")
    def __init__(
        self,
        initial_state: StateT,
        *,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None: ...
    def __init__(self, initial_state: StateT, *, loop: object = _NO_LOOP) -> None:
        """Create a machine in ``initial_state``; see the class documentation.

        ``loop`` is accepted for code written against ``aioxmpp.statemachine``;
        it has no effect, and passing it (even as None) emits a
        `DeprecationWarning`.
        """
        if loop is not _NO_LOOP:
            warnings.warn(
                "the loop argument of OrderedStateMachine has no effect and is "
                "deprecated: each waiter uses the event loop it runs in",
                DeprecationWarning,
                stacklevel=2,
            )
        check_ordered(initial_state)
        self._state = initial_state
        # Invariant: None, or the least state whose assignment has more to do
        # than store itself: the current state while anyone is subscribed,
        # else the least queued target. Every state less than it can simply
        # be stored.
        self._threshold: StateT | None = None
        self._attached: _Attachments[StateT] | None = None

    def __repr__(self) -> str:
        """Show the class, the current state and the number of waiters."""
        attached = self._attached
        waiters = attached.waiters if attached is not None else 0
        return (
            f"<ordered_statemachine.OrderedStateMachine state={self._state!r} "
            f"waiters={waiters}>"
        )

    def statistics(self) -> MachineStatistics[StateT]:
        """Return a snapshot: state, waiters, subscribers, and causes kept."""
        attached = self._attached
        if attached is None:
            return MachineStatistics(self._state, 0, 0, 0)
        return MachineStatistics(
            self._state, attached.waiters, len(attached.feeds), len(attached.causes)
        )

    @property
    def state(self) -> StateT:
        """The current state. Assigning it moves the machine forward.

        ``machine.state = new`` is ``machine.advance(new)``: see `advance`.
        """
        return self._state

    @state.setter
    def state(self, new_state: StateT) -> None:
        # advance() without a cause, inlined: this is the hot path. Moving
        # forward costs one comparison (two with waiters or subscribers): in
        # a total order, current < new rules out new < current.
        current = self._state
        if current < new_state:
            threshold = self._threshold
            if threshold is None or new_state < threshold:
                self._state = new_state
            else:
                self._reach(new_state, threshold)
        elif new_state < current:
            raise backwards(_NAME, new_state, current)
        elif not new_state == current:
            raise unordered(new_state, current)

    def _reach(self, new_state: StateT, threshold: StateT) -> None:
        """Enter ``new_state``, which reaches ``threshold``: the setter's slow path.

        Apart from the setter, whose frame every assignment pays for.
        """
        attached = self._attached
        # A threshold means attachments (the None test is for checkers).
        if attached is None or attached.feeds or attached.single is None:
            self._enter(new_state, None, threshold)
            return
        # One waiter, no subscriber, no cause: `_enter`, inlined for the
        # hot path of one task awaiting the next milestone. The threshold
        # is the waiter's target, which new_state reaches.
        lone = attached.single
        kind = attached.single_kind
        if kind == EXACT and threshold < new_state:
            kind = SKIPPED
        attached.single = attached.least = self._threshold = None
        self._state = new_state
        try:
            lone.set_result(
                new_state if kind == AT_LEAST else None if kind == EXACT else NO_CAUSE
            )
        except InvalidStateError:
            # Done: cancelled by its task, which has not run yet. It is
            # counted until then, among the waiters of the chunks (see
            # WaiterQueue.discard).
            attached.live += 1
        # Not raised: the transition must go on (see _resolve).
        except Exception as error:  # noqa: BLE001
            report_undeliverable(lone.get_loop(), lone, error)

    def advance(self, new_state: StateT, *, cause: BaseException | None = None) -> None:
        """Move the machine forward to ``new_state``, recording why.

        Assigning a state greater than the current one stores it and, before
        the call returns, resolves every waiter it decides:
        ``wait_for_at_least(t)`` waiters with ``not (new < t)`` succeed with
        the new state, ``wait_for(t)`` waiters with ``t == new`` succeed, and
        ``wait_for(t)`` waiters with ``t < new`` fail with
        `OrderedStateSkipped`. A state that is entered and left again before
        the waiters run is therefore still seen by them. They resume in the
        order they started waiting. Subscribers of `states` receive the new
        state.

        ``cause``, an exception, explains the transition: each
        `OrderedStateSkipped` it makes a ``wait_for`` raise has ``cause`` as
        its ``__cause__``, and so does a later ``wait_for`` of a state this
        transition moved past, until a `rewind` to a state below ``new_state``
        forgets the transition. Each such exception shows ``cause`` with the
        traceback it had when ``advance`` was called, however often the cause
        has been re-raised since. The machine keeps ``cause``, and with it its
        traceback (the frames that raised it and their locals), until then; if
        those frames refer to the machine's owner, the two form a reference
        cycle that only the garbage collector frees (pass
        ``cause=exc.with_traceback(None)`` to record the exception without
        its frames). Transitions without a cause cost nothing.

        A state equal to the current one changes nothing (and records no
        cause).

        A waiter or subscriber that cannot be resumed (its event loop was
        closed while it waited) is dropped, and disturbs nothing else; if its
        loop is still open, the loop's exception handler is told.

        Raises:
            ValueError: the new state is less than the current one; the
                message starts ``cannot rewind OrderedStateMachine`` and names
                both states. Use `rewind` to move back.
            TypeError: the new state cannot be compared with the current
                state or with a pending waiter's target (the comparison's own
                `TypeError`), or it is neither less than, equal to nor greater
                than the current state (NaN), or ``cause`` is neither None nor
                an exception.

        The machine, its waiters and its subscribers are unchanged when
        ``advance`` raises.

        """
        if cause is not None:
            check_cause(cause)
        current = self._state
        if current < new_state:
            threshold = self._threshold
            if cause is not None:
                self._enter(new_state, cause, None)
            elif threshold is None or new_state < threshold:
                self._state = new_state
            else:
                self._enter(new_state, None, threshold)
        elif new_state < current:
            raise backwards(_NAME, new_state, current)
        elif not new_state == current:
            raise unordered(new_state, current)

    def rewind(self, new_state: StateT) -> None:
        """Move the machine back to ``new_state``, the explicit exception to the rule.

        A state equal to the current one is allowed and changes nothing. Pending
        waiters are left as they are: they all await states greater than the
        current one, so none can be due after moving back. Waits that already
        failed with `OrderedStateSkipped` stay failed. Subscribers of `states`
        receive the new state. The causes of the transitions that moved the
        machine above ``new_state`` are forgotten; the others are kept.

        Raises:
            ValueError: ``new_state`` is greater than the current state; the
                message starts ``cannot forward using rewind``.
            TypeError: ``new_state`` cannot be compared with the current state,
                or is neither less than, equal to nor greater than it.

        The machine is unchanged when ``rewind`` raises.

        """
        current = self._state
        if current < new_state:
            raise forwards(current, new_state)
        if new_state < current:
            attached = self._attached
            if attached is None:
                self._state = new_state
            else:
                self._rewind(attached, new_state)
        elif not new_state == current:
            raise unordered(new_state, current)

    def states(self) -> StateSubscription[StateT]:
        """Subscribe to every state the machine enters, as an async iterator.

        The subscription starts now: it yields the current state, then every
        state the machine enters afterwards, in order, none skipped and none
        repeated, even if it is consumed more slowly than the states change.
        It never ends by itself. Close it with ``async with``, `aclose()
        <StateSubscription.aclose>`, or by dropping it (``break`` out of
        ``async for state in machine.states()``); a closed subscription keeps
        nothing.

        ::

            async with machine.states() as states:
                async for state in states:
                    print(state)
                    if state is Conn.CLOSED:
                        break
        """
        attached = self._attach()
        token = _next_token()
        feed = Feed(self._state)
        attached.feeds[token] = feed
        self._threshold = self._state
        return StateSubscription(feed, lambda: self._unsubscribe(token))

    async def wait_for(self, state: StateT) -> None:
        """Wait until the machine enters exactly ``state``.

        Returns at once if the machine is in ``state``. Otherwise waits until
        an assignment enters ``state`` (even if a later one leaves it before
        this coroutine resumes).

        Cancellation (including `asyncio.timeout` and `asyncio.wait_for`)
        takes the waiter out of the machine's count at once and propagates;
        it is never swallowed.

        Raises:
            OrderedStateSkipped: the machine is past ``state`` already, or an
                assignment moves it past ``state`` without entering it. Its
                ``__cause__`` is the cause given to `advance` for the
                transition that moved the machine past ``state``, if any,
                with the traceback it had when `advance` recorded it.
            TypeError: ``state`` cannot be compared with the current state or
                with a pending waiter's target, or is neither less than, equal
                to nor greater than the current state (nothing is registered).

        """
        if self._state < state:
            future: asyncio.Future[Record | None] = get_running_loop().create_future()
            attached = self._attached
            if attached is not None and attached.least is None and not attached.feeds:
                # `_enqueue` inlined for its hot path: an empty queue takes its
                # lone waiter (WaiterQueue.push).
                attached.single = future
                attached.least = self._threshold = state
                attached.single_kind = EXACT
            else:
                self._enqueue(future, state, EXACT)
            try:
                if await future is None:
                    return
            except BaseException:
                self._abandon(future)
                raise
            # Skipped: the future holds why (see _Due).
            raise skipped(state, future.result() or NO_CAUSE)
        self._check_exact(state)

    async def wait_for_at_least(self, state: StateT) -> StateT:
        """Wait until the machine's state is ``state`` or greater; return it.

        Returns the current state at once if it is not less than ``state``.
        Otherwise waits, and returns the state whose assignment satisfied the
        wait, even if the machine has moved on by the time this coroutine
        resumes.

        Cancellation (including `asyncio.timeout` and `asyncio.wait_for`)
        takes the waiter out of the machine's count at once and propagates;
        it is never swallowed.

        Raises:
            TypeError: ``state`` cannot be compared with the current state or
                with a pending waiter's target, or is neither less than, equal
                to nor greater than the current state (nothing is registered).

        """
        if self._state < state:
            future: asyncio.Future[StateT] = get_running_loop().create_future()
            attached = self._attached
            if attached is not None and attached.least is None and not attached.feeds:
                # As in wait_for.
                attached.single = future
                attached.least = self._threshold = state
                attached.single_kind = AT_LEAST
            else:
                self._enqueue(future, state, AT_LEAST)
            try:
                return await future
            except BaseException:
                self._abandon(future)
                raise
        return self._check_at_least(state)

    # The not-waiting halves of the waits, apart: a wait's frame, which every
    # pending waiter keeps, grows with what its code needs.
    def _check_exact(self, state: StateT) -> None:
        """Return if ``state`` is the state; raise if it was skipped or is unordered.

        The state is not less than ``state``.
        """
        current = self._state
        if state < current:
            attached = self._attached
            raise skipped(state, attached.cause_past(state) if attached else NO_CAUSE)
        if not state == current:
            raise unordered(state, current)

    def _check_at_least(self, state: StateT) -> StateT:
        """Return the state, which is not less than ``state``, unless unordered."""
        current = self._state
        if not (state < current or state == current):
            raise unordered(state, current)
        return current

    def _attach(self) -> _Attachments[StateT]:
        attached = self._attached
        if attached is None:
            attached = self._attached = Attachments()
        return attached

    def _rethreshold(self, attached: _Attachments[StateT]) -> None:
        """Restore the invariant of ``_threshold`` (see ``__init__``)."""
        self._threshold = self._state if attached.feeds else attached.least

    # The two waits share these helpers rather than a helper coroutine: a
    # coroutine per wait costs more than the rest of the bookkeeping, and
    # every local of a wait's frame costs each pending waiter 8 bytes.
    def _enqueue(self, future: asyncio.Future[Any], target: StateT, kind: int) -> None:
        """Queue ``future``'s waiter for ``target`` (greater than the state).

        The future gets what `_Due` says for ``kind``. Raises what comparing
        the targets raises, with nothing queued.
        """
        attached = self._attached
        if attached is None:
            attached = self._attached = Attachments()
        attached.push(future, target, kind)
        if not attached.feeds:
            self._threshold = attached.least

    def _abandon(self, future: asyncio.Future[Any]) -> None:
        """Clean up after the wait on ``future`` ended with an exception."""
        if not future.done():
            # An exception was thrown into the wait (a coroutine closed, say)
            # while it was queued: its slot becomes dead like a cancelled one.
            future.cancel()
        elif not future.cancelled():
            # Resolved, then cancelled before the task resumed: the outcome is
            # dropped (it is never an exception, so asyncio logs nothing).
            return
        attached = self._attached
        assert attached is not None  # it holds the future that was queued
        attached.discard(future)
        self._rethreshold(attached)

    def _enter(
        self,
        new_state: StateT,
        cause: BaseException | None,
        reached: StateT | None,
    ) -> None:
        """Enter ``new_state``, greater than the state: the slow path of `advance`.

        Resolves the waiters that are due, in FIFO order, feeds subscribers,
        and records ``cause``. ``reached`` is None or a threshold the caller
        has found ``new_state`` not to be less than (it is not compared
        again). All comparisons happen before any change; after them, nothing
        can stop the transition half-way (see `_resolve`).
        """
        attached = self._attached
        if attached is None:  # only a cause brings us here without attachments
            attached = self._attached = Attachments()
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
        # The threshold invariant (see __init__), inlined.
        self._threshold = new_state if attached.feeds else attached.least
        if due is not None:
            self._resolve(attached, due, new_state, why)
        if attached.feeds:
            self._publish(attached, new_state)

    @staticmethod
    def _resolve(
        attached: _Attachments[StateT],
        due: _Due,
        new_state: StateT,
        why: Record,
    ) -> None:
        """Resolve the ``due`` waiters, in order; none can stop the others."""
        futures, tags = due
        # What a waiter of each kind receives (see _Due), indexed by kind.
        outcomes = (new_state, None, why)
        attached.live -= len(futures)
        for future, tag in zip(futures, tags, strict=True):
            # Free in CPython 3.11+ unless raised; 3.10 pays a setup.
            try:
                future.set_result(outcomes[tag & KIND])
            except InvalidStateError:  # noqa: PERF203
                # Done: cancelled by its task, which has not run yet (and does
                # its own accounting when it does), or a dead slot.
                attached.live += 1
            # Not raised: the transition must go on for the others.
            except Exception as error:  # noqa: BLE001
                # Its loop is closed, say: the waiter is dropped.
                report_undeliverable(future.get_loop(), future, error)

    def _rewind(self, attached: _Attachments[StateT], new_state: StateT) -> None:
        """Move back to ``new_state`` (less than the state): `rewind`'s slow path."""
        attached.forget_causes_above(new_state)  # comparisons first
        self._state = new_state
        self._rethreshold(attached)
        self._publish(attached, new_state)

    def _publish(self, attached: _Attachments[StateT], state: StateT) -> None:
        # A snapshot: a subscription collected meanwhile (its __del__ runs
        # whenever the garbage collector does) unsubscribes itself.
        for token, feed in tuple(attached.feeds.items()):
            feed.buffer.append(state)
            waiter = feed.waiter
            if waiter is None:
                continue
            try:
                waiter.set_result(None)
            except InvalidStateError:
                pass  # woken already, by an earlier state it has not consumed
            # Not raised: the transition must go on for the others.
            except Exception as error:  # noqa: BLE001
                # Its consumer cannot be resumed (its loop is closed, say):
                # the subscription is closed.
                feed.close(wake=False)
                del attached.feeds[token]
                self._rethreshold(attached)
                report_undeliverable(waiter.get_loop(), waiter, error)

    def _unsubscribe(self, token: int) -> None:
        attached = self._attached
        assert attached is not None  # only subscriptions call this
        # A subscription dropped by _publish has nothing left to unsubscribe.
        if attached.feeds.pop(token, None) is not None:
            self._rethreshold(attached)


def fail_pending(
    machine: OrderedStateMachine[StateT],
    error: Callable[[], BaseException],
    spare: Callable[[StateT, bool], bool] | None = None,
) -> None:
    """End pending waits and every open subscription of ``machine`` with ``error()``.

    For a machine that mirrors one whose history cannot be followed in full
    (see ``ordered_statemachine.redis``). A pending wait for ``target`` is
    kept, in its place in the FIFO order, if ``spare(target, exact)`` is
    true (``exact`` for `OrderedStateMachine.wait_for`); without ``spare``,
    none is. The machine keeps its state and causes.

    Raises what ``spare`` or comparing the kept targets raises, with nothing
    changed.
    """
    # The machine's own module, reaching into it on purpose.
    attached = machine._attached  # noqa: SLF001  # pyright: ignore[reportPrivateUsage]
    if attached is None:
        return
    # Every pending waiter, oldest first: (tag, target, future).
    waiting: list[tuple[int, StateT, asyncio.Future[Any]]] = []
    if attached.single is not None:
        target = attached.least
        assert target is not None  # set with single
        waiting.append((attached.single_kind, target, attached.single))
    else:
        for columns in zip(
            attached.targets, attached.handles, attached.tags, strict=True
        ):
            waiting.extend(
                (tag, target, future)
                for target, future, tag in zip(*columns, strict=True)
            )
        waiting.sort(key=lambda waiter: waiter[0])
    waiting = [waiter for waiter in waiting if not waiter[2].done()]
    failed = waiting
    # A fresh queue, which still counts the waits cancelled whose tasks have
    # not run: each discards itself from it when it does.
    kept: _Attachments[StateT] = Attachments()
    kept.causes = attached.causes
    kept.live = attached.waiters - len(waiting)
    if spare is not None:
        spared = [spare(target, tag & KIND == EXACT) for tag, target, _ in waiting]
        failed = [w for w, keep in zip(waiting, spared, strict=True) if not keep]
        for (tag, target, future), keep in zip(waiting, spared, strict=True):
            if keep:
                kept.push(future, target, tag & KIND)
    machine._attached = kept  # noqa: SLF001  # pyright: ignore[reportPrivateUsage]
    machine._rethreshold(kept)  # noqa: SLF001  # pyright: ignore[reportPrivateUsage]
    for _, _, future in failed:
        future.set_exception(error())
    for feed in attached.feeds.values():
        feed.fail(error())
