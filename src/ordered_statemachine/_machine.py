"""`OrderedStateMachine`: a state that only moves forward, and waits on it."""

from __future__ import annotations

import warnings
from asyncio import get_running_loop
from bisect import bisect_right
from dataclasses import dataclass
from itertools import count
from operator import itemgetter
from typing import TYPE_CHECKING, Final, Generic, cast, overload

from typing_extensions import deprecated, final

from ._exceptions import OrderedStateSkipped
from ._queue import AT_LEAST, EXACT, SKIPPED, Waiter, WaiterQueue
from ._subscription import Feed, StateSubscription
from ._typing import StateT

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Sequence

_NO_LOOP: Final = object()
_next_token = count().__next__
_new_state: Final = itemgetter(1)


def _backwards(new_state: object, current: object) -> ValueError:
    return ValueError(
        f"cannot rewind OrderedStateMachine from {current!r} to {new_state!r}: "
        "assigning a lesser state is not allowed (use rewind() to move back)"
    )


def _unordered(new_state: object, current: object) -> TypeError:
    return TypeError(
        f"states must be ordered, but {new_state!r} is neither less than, "
        f"equal to nor greater than the current state {current!r}"
    )


def _check_cause(cause: object) -> None:
    # Callers that type-check cannot pass anything else; untyped ones can, and
    # it must fail before anything changes, not while waiters are resolved.
    if not isinstance(cause, BaseException):
        msg = f"cause must be an exception or None, not {type(cause).__name__}"
        raise TypeError(msg)


def _skipped(state: StateT, cause: BaseException | None) -> OrderedStateSkipped[StateT]:
    exc = OrderedStateSkipped(state)
    if cause is not None:
        exc.__cause__ = cause
    return exc


@final
@dataclass(frozen=True)
class MachineStatistics(Generic[StateT]):
    """A snapshot of an `OrderedStateMachine`, for debugging and tests."""

    state: StateT
    """The state at the time of the snapshot."""
    waiters: int
    """Pending calls of `~OrderedStateMachine.wait_for` and
    `~OrderedStateMachine.wait_for_at_least` (cancelled ones excluded)."""
    subscribers: int
    """Open `StateSubscription` iterators from `~OrderedStateMachine.states`."""
    causes: int
    """Transitions whose cause the machine keeps (see
    `~OrderedStateMachine.advance`)."""


class _Attachments(WaiterQueue[StateT]):
    """Everything a machine holds besides its state, created on first use.

    The pending waiters (this object is their queue), the feeds of open
    subscriptions, and the transitions that carried a cause.
    """

    __slots__ = ("causes", "feeds")

    def __init__(self) -> None:
        super().__init__()
        self.feeds: dict[int, Feed[StateT]] = {}
        # (previous state, new state, cause) for each transition with a
        # cause since the last rewind below it, in order; the new states
        # increase strictly, so a bisection finds the transition past a state.
        self.causes: list[tuple[StateT, StateT, BaseException]] = []

    def cause_past(self, state: StateT) -> BaseException | None:
        """Return the cause of the transition that moved the machine past ``state``.

        That is the transition from ``prev`` to ``new`` with
        ``not (state < prev)`` and ``state < new``; None if it had no cause.
        """
        causes = self.causes
        i = bisect_right(causes, state, key=_new_state)
        if i < len(causes) and not (state < causes[i][0]):
            return causes[i][2]
        return None


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
        try:
            # The sanity check of the ordering contract, as in aioxmpp.
            ordered = not (initial_state < initial_state) and bool(  # noqa: PLR0124
                initial_state == initial_state  # noqa: PLR0124
            )
        except Exception as exc:
            msg = (
                f"states must be ordered, but comparing {initial_state!r} with "
                f"itself raised {type(exc).__name__}: {exc}"
            )
            raise TypeError(msg) from exc
        if not ordered:
            msg = (
                f"states must be ordered, but {initial_state!r} is not equal to "
                "itself, or is less than itself"
            )
            raise TypeError(msg)
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
        waiters = attached.live if attached is not None else 0
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
            self._state, attached.live, len(attached.feeds), len(attached.causes)
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
                self._enter(new_state, None, threshold)
        elif new_state < current:
            raise _backwards(new_state, current)
        elif not new_state == current:
            raise _unordered(new_state, current)

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
        transition moved past (until a `rewind` below that state forgets the
        transition). The machine keeps ``cause``, and with it its traceback,
        until then; transitions without a cause cost nothing.

        A state equal to the current one changes nothing (and records no
        cause).

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
            _check_cause(cause)
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
            raise _backwards(new_state, current)
        elif not new_state == current:
            raise _unordered(new_state, current)

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
            msg = (
                f"cannot forward using rewind (from {current!r} to "
                f"{new_state!r}): assign the state to move forward"
            )
            raise ValueError(msg)
        if new_state < current:
            attached = self._attached
            if attached is None:
                self._state = new_state
            else:
                self._rewind(attached, new_state)
        elif not new_state == current:
            raise _unordered(new_state, current)

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
        removes the waiter from the machine and propagates; it is never
        swallowed.

        Raises:
            OrderedStateSkipped: the machine is past ``state`` already, or an
                assignment moves it past ``state`` without entering it. Its
                ``__cause__`` is the cause given to `advance` for the
                transition that moved the machine past ``state``, if any.
            TypeError: ``state`` cannot be compared with the current state or
                with a pending waiter's target, or is neither less than, equal
                to nor greater than the current state (nothing is registered).

        """
        current = self._state
        if current < state:
            waiter = Waiter(get_running_loop().create_future(), EXACT, state)
            future = self._enqueue(waiter)
            try:
                await future
            except BaseException:
                self._abandon(waiter, future)
                raise
        elif state < current:
            attached = self._attached
            cause = attached.cause_past(state) if attached is not None else None
            raise _skipped(state, cause)
        elif not state == current:
            raise _unordered(state, current)

    async def wait_for_at_least(self, state: StateT) -> StateT:
        """Wait until the machine's state is ``state`` or greater; return it.

        Returns the current state at once if it is not less than ``state``.
        Otherwise waits, and returns the state whose assignment satisfied the
        wait, even if the machine has moved on by the time this coroutine
        resumes.

        Cancellation (including `asyncio.timeout` and `asyncio.wait_for`)
        removes the waiter from the machine and propagates; it is never
        swallowed.

        Raises:
            TypeError: ``state`` cannot be compared with the current state or
                with a pending waiter's target, or is neither less than, equal
                to nor greater than the current state (nothing is registered).

        """
        current = self._state
        if current < state:
            waiter = Waiter(get_running_loop().create_future(), AT_LEAST, state)
            future = self._enqueue(waiter)
            try:
                reached = await future
            except BaseException:
                self._abandon(waiter, future)
                raise
            # An AT_LEAST waiter's future only ever holds a state.
            return cast("StateT", reached)
        if not (state < current or state == current):
            raise _unordered(state, current)
        return current

    def _attach(self) -> _Attachments[StateT]:
        attached = self._attached
        if attached is None:
            attached = self._attached = _Attachments()
        return attached

    def _rethreshold(self, attached: _Attachments[StateT]) -> None:
        """Restore the invariant of ``_threshold`` (see ``__init__``)."""
        self._threshold = self._state if attached.feeds else attached.least

    # The two waits share these helpers rather than a helper coroutine: a
    # coroutine per wait costs more than the rest of the bookkeeping.
    def _enqueue(self, waiter: Waiter[StateT]) -> asyncio.Future[StateT | None]:
        """Queue ``waiter`` (its target is greater than the state); return its future.

        Raises what comparing the targets raises, with nothing queued.
        """
        attached = self._attached
        if attached is None:
            attached = self._attached = _Attachments()
        attached.push(waiter)
        if not attached.feeds:
            self._threshold = attached.least
        future = waiter.future
        assert future is not None  # a new waiter is live
        return future

    def _abandon(
        self, waiter: Waiter[StateT], future: asyncio.Future[StateT | None]
    ) -> None:
        """Clean up after the wait on ``waiter`` ended with an exception."""
        if waiter.future is not None:
            # Still queued: the task was cancelled (or had an exception thrown
            # in) before any transition resolved the waiter.
            attached = self._attached
            assert attached is not None
            attached.discard(waiter)
            self._rethreshold(attached)
        elif not future.cancelled():
            # Resolved, then cancelled before the task resumed: the outcome is
            # dropped, and fetching it keeps asyncio from logging an exception
            # that was never retrieved.
            future.exception()

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
        again). All comparisons happen before any change.
        """
        attached = self._attached
        if attached is None:  # only a cause brings us here without attachments
            attached = self._attached = _Attachments()
        due: Sequence[Waiter[StateT]] = ()
        least = attached.least
        if least is not None and (least is reached or not (new_state < least)):
            due = attached.pop_due(new_state)
        previous = self._state
        self._state = new_state
        if cause is not None:
            attached.causes.append((previous, new_state, cause))
        # The threshold invariant (see __init__), inlined.
        self._threshold = new_state if attached.feeds else attached.least
        for waiter in due:
            future = waiter.future
            assert future is not None  # pop_due returns live waiters only
            waiter.future = None
            # A future that is done here was cancelled by its task, which has
            # not yet run to discard it; the task's cleanup sees the waiter as
            # already removed.
            if future.done():
                continue
            if waiter.kind == AT_LEAST:
                future.set_result(new_state)
            elif waiter.kind == EXACT:
                future.set_result(None)
            else:
                assert waiter.kind == SKIPPED
                future.set_exception(_skipped(waiter.target, cause))
        if attached.feeds:
            self._publish(attached, new_state)

    def _rewind(self, attached: _Attachments[StateT], new_state: StateT) -> None:
        """Move back to ``new_state`` (less than the state): `rewind`'s slow path."""
        causes = attached.causes
        # Comparisons first: the transitions that moved above new_state.
        keep = bisect_right(causes, new_state, key=_new_state)
        self._state = new_state
        del causes[keep:]
        self._rethreshold(attached)
        self._publish(attached, new_state)

    @staticmethod
    def _publish(attached: _Attachments[StateT], state: StateT) -> None:
        # A snapshot: a subscription collected meanwhile (its __del__ runs
        # whenever the garbage collector does) unsubscribes itself.
        for feed in tuple(attached.feeds.values()):
            feed.push(state)

    def _unsubscribe(self, token: int) -> None:
        attached = self._attached
        assert attached is not None  # only subscriptions call this
        del attached.feeds[token]
        self._rethreshold(attached)
