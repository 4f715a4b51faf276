"""The pending waiters of one machine, kept sorted by the state they await."""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from itertools import chain, count
from typing import TYPE_CHECKING, Final, Generic, Protocol

from typing_extensions import TypeVar

from ._typing import StateT

if TYPE_CHECKING:
    from collections.abc import Sequence

AT_LEAST: Final = 0
"""Kind of a `wait_for_at_least` waiter: succeeds with the state reached."""
EXACT: Final = 1
"""Kind of a `wait_for` waiter: succeeds if the state reached is its target."""
SKIPPED: Final = 2
"""Kind given to a `wait_for` waiter when a transition leaps over its target."""
KIND: Final = 3
"""The bits of a tag that hold the kind."""

# A chunk is split in two once it holds more than twice this many waiters, so
# inserting into a chunk moves at most 2 * _LOAD pointers, whatever the total.
_LOAD: Final = 512

# One counter for all queues: a tag only has to be greater than the tags of
# the waiters queued before it.
_next_seq = count().__next__


class Handle(Protocol):
    """What the queue needs of a waiter's handle (an asyncio future, say)."""

    def done(self) -> bool:
        """Whether the waiter is over: resolved, or given up by its task."""
        ...


HandleT = TypeVar("HandleT", bound=Handle, default=Handle)


def new_tag(kind: int) -> int:
    """Return the tag of a waiter of ``kind`` that starts waiting now.

    Tags order waiters by arrival, and their two low bits (`KIND`) hold the
    kind: ``tag & KIND`` is `AT_LEAST`, `EXACT` or `SKIPPED`.
    """
    return _next_seq() << 2 | kind


class WaiterQueue(Generic[StateT, HandleT]):
    """Waiters sorted by target, oldest first among equal targets.

    A waiter is three values, with no object of its own: its handle (what the
    machine resolves, such as the future its task awaits), its target, and
    its tag (see `new_tag`). A lone waiter is kept in ``single`` (its
    handle), ``least`` (its target) and ``single_kind``, with no lists and no
    tag at all (it gets one when a second waiter arrives): one task awaiting
    one milestone is the common case, which the machine's hot path registers
    and resolves without calling the queue. From two waiters on, ``single``
    is None and the waiters live in chunks (the layout of
    ``sortedcontainers.SortedList``): ``targets[i]``, ``handles[i]`` and
    ``tags[i]`` are the parallel columns of chunk ``i``, ``maxes[i]`` is
    ``targets[i][-1]``, and every target of chunk ``i`` is less than or equal
    to every target of chunk ``i + 1``. Locating a position costs O(log n)
    comparisons; inserting moves at most ``2 * _LOAD`` pointers; removing the
    due prefix costs O(log n) comparisons and O(k) moves.

    Every method that compares states does all its comparisons before it
    changes anything, so a comparison that raises leaves the queue as it was
    (or, at most, holds its lone waiter in a chunk instead of ``single``).
    No comparison result is trusted to keep an invariant: an order that lies
    (no total order) may wake the wrong waiters, but never corrupts the
    columns or the counts.

    A waiter whose task gave up compares nothing on its way out: its handle
    is done, so its slot is dead (`discard`), and transitions skip it. Dead
    slots keep their target and handle until a transition removes them or
    the queue is rebuilt without them, which happens once ``dead`` exceeds
    ``live`` (amortised O(1) per waiter that gave up).
    """

    __slots__ = (
        "dead",
        "handles",
        "least",
        "live",
        "maxes",
        "single",
        "single_kind",
        "tags",
        "targets",
    )

    def __init__(self) -> None:
        """Create an empty queue."""
        self.single: HandleT | None = None
        self.single_kind: int = AT_LEAST
        self.targets: list[list[StateT]] = []
        self.handles: list[list[HandleT]] = []
        self.tags: list[array[int]] = []
        self.maxes: list[StateT] = []
        self.least: StateT | None = None
        """The least queued target (of a live or dead slot); None if empty."""
        self.live: int = 0
        """Waiters in the chunks (not ``single``) that have not given up. A
        waiter that gave up is counted until its task runs `discard`, even if
        a transition removed its slot meanwhile (the machine then counts a
        lone waiter in): only the task knows when it has given up. See
        `waiters`."""
        self.dead: int = 0
        """At least the number of dead slots (see `discard`)."""

    def push(self, handle: HandleT, target: StateT, kind: int) -> None:
        """Queue a waiter after every waiter with a target equal to its own.

        An empty queue takes it as its lone waiter (`OrderedStateMachine`
        does that itself, without the call: its hot path).

        Raises whatever comparing the targets raises, with nothing queued.
        """
        if self.least is None:
            self.single = handle
            self.least = target
            self.single_kind = kind
            return
        single = self.single
        if single is not None:
            # A second waiter: the first moves into a chunk of its own, with a
            # tag older than the second's.
            first = self.least
            assert first is not None  # not user-breakable: set with single
            self.targets.append([first])
            self.handles.append([single])
            self.tags.append(array("q", (new_tag(self.single_kind),)))
            self.maxes.append(first)
            self.single = None
            self.live += 1
        tag = new_tag(kind)
        maxes = self.maxes
        i = bisect_right(maxes, target)
        if i == len(maxes):
            # Not less than any queued target: it goes last.
            i -= 1
            targets = self.targets[i]
            targets.append(target)
            self.handles[i].append(handle)
            self.tags[i].append(tag)
            maxes[i] = target
        else:
            targets = self.targets[i]
            j = bisect_right(targets, target)
            targets.insert(j, target)
            self.handles[i].insert(j, handle)
            self.tags[i].insert(j, tag)
            if i == j == 0:
                self.least = target
        self.live += 1
        if len(targets) > 2 * _LOAD:
            self._split(i)

    @property
    def waiters(self) -> int:
        """The waiters that have not given up (and the one that is alone)."""
        return self.live + (self.single is not None)

    def _split(self, i: int) -> None:
        """Split chunk ``i`` in two halves (no comparisons)."""
        targets, handles, tags = self.targets[i], self.handles[i], self.tags[i]
        self.targets.insert(i + 1, targets[_LOAD:])
        self.handles.insert(i + 1, handles[_LOAD:])
        self.tags.insert(i + 1, tags[_LOAD:])
        del targets[_LOAD:], handles[_LOAD:], tags[_LOAD:]
        self.maxes.insert(i, targets[-1])

    def pop_due(self, reached: StateT) -> tuple[Sequence[HandleT], Sequence[int]]:
        """Remove the waiters due when ``reached`` is entered.

        A waiter is due if ``not (reached < target)``; the caller has checked
        that ``least`` is. Returns their handles and tags, two parallel
        sequences in the order the waiters were queued (FIFO), whatever their
        targets. The tags of `EXACT` waiters whose target is less than
        ``reached`` have their kind changed to `SKIPPED`. Dead slots are
        returned too; their handles are done. A lone waiter comes back with
        its kind as its tag, and joins the ``live`` count, as a chunk's waiter
        would be counted there until resolved.

        Raises whatever comparing the states raises, leaving the queue as it
        was.
        """
        single = self.single
        if single is not None:
            kind = self.single_kind
            target = self.least
            assert target is not None  # not user-breakable: set with single
            if kind == EXACT and target < reached:
                kind = SKIPPED
            self.single = self.least = None
            self.live += 1
            return (single,), (kind,)
        targets, handles, tags = self.targets, self.handles, self.tags
        maxes = self.maxes
        nchunks = len(maxes)
        # Comparisons first. Chunks [0, hi) are due entirely, and so is the
        # prefix [0, hi_j) of chunk hi; likewise [0, lo) and [0, lo_j) of chunk
        # lo hold the targets less than ``reached``.
        hi = bisect_right(maxes, reached)
        hi_j = bisect_right(targets[hi], reached) if hi < nchunks else 0
        lo = bisect_left(maxes, reached)
        lo_j = bisect_left(targets[lo], reached) if lo < nchunks else 0
        n_below = sum(map(len, targets[:lo])) + lo_j
        # Equal targets are queued in FIFO order, and the first and last due
        # targets being one object (an enum member, a small int) means that
        # every due target is equal to it.
        first = targets[0][0]
        if hi_j:
            last = targets[hi][hi_j - 1]
        elif hi:
            last = targets[hi - 1][-1]
        else:
            return (), ()  # nothing due after all: only an order that lies

        due_handles = list(chain.from_iterable(handles[:hi]))
        # A list: its ints are made once here, not on every read of an array.
        due_tags = list(chain.from_iterable(tags[:hi]))
        if hi < nchunks:
            due_handles += handles[hi][:hi_j]
            due_tags += tags[hi][:hi_j]
            del targets[hi][:hi_j], handles[hi][:hi_j], tags[hi][:hi_j]
        del targets[:hi], handles[:hi], tags[:hi], maxes[:hi]
        self.least = targets[0][0] if targets else None

        # With a total order the part below ``reached`` is a prefix of the due
        # part; min() keeps an order that lies from reaching past it.
        for i in range(min(n_below, len(due_tags))):
            if due_tags[i] & KIND == EXACT:
                due_tags[i] += SKIPPED - EXACT
        if first is not last:
            order = sorted(range(len(due_tags)), key=due_tags.__getitem__)
            return [due_handles[i] for i in order], [due_tags[i] for i in order]
        return due_handles, due_tags

    def discard(self, handle: HandleT) -> None:
        """Account for the waiter of ``handle``, whose task gave up waiting.

        ``handle`` must be done, so that its slot, if still queued, is dead:
        transitions and rebuilds skip it. Compares no states, so it cannot
        fail.
        """
        if handle is self.single:
            self.single = self.least = None
            return
        self.live -= 1
        # The slot may already be gone (a transition removed it after the task
        # gave up, before the task ran): ``dead`` may over-count, which only
        # brings the next rebuild forward.
        self.dead += 1
        if self.dead > self.live:
            self._sweep()

    def _sweep(self) -> None:
        """Rebuild the chunks without dead slots (no comparisons: order is kept)."""
        targets: list[StateT] = []
        handles: list[HandleT] = []
        tags = array("q")
        for columns in zip(self.targets, self.handles, self.tags, strict=True):
            for target, handle, tag in zip(*columns, strict=True):
                if not handle.done():
                    targets.append(target)
                    handles.append(handle)
                    tags.append(tag)
        spans = range(0, len(tags), _LOAD)
        self.targets = [targets[i : i + _LOAD] for i in spans]
        self.handles = [handles[i : i + _LOAD] for i in spans]
        self.tags = [tags[i : i + _LOAD] for i in spans]
        self.maxes = [chunk[-1] for chunk in self.targets]
        if self.single is None:
            self.least = targets[0] if targets else None
        self.dead = 0
