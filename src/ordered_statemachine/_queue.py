"""The pending waiters of one machine, kept sorted by the state they await."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import chain, count
from operator import attrgetter
from typing import TYPE_CHECKING, Final, Generic

from ._typing import StateT

if TYPE_CHECKING:
    import asyncio

AT_LEAST: Final = 0
"""Kind of a `wait_for_at_least` waiter: succeeds with the state reached."""
EXACT: Final = 1
"""Kind of a `wait_for` waiter: succeeds if the state reached is its target."""
SKIPPED: Final = 2
"""Kind given to a `wait_for` waiter when a transition leaps over its target."""

# A chunk is split in two once it holds more than twice this many waiters, so
# inserting into a chunk moves at most 2 * _LOAD pointers, whatever the total.
_LOAD: Final = 512

# One counter for all machines: sequence numbers only need to be increasing.
next_seq = count().__next__
by_seq: Final = attrgetter("seq")


class Waiter(Generic[StateT]):
    """One pending call of `wait_for` or `wait_for_at_least`.

    ``future`` is None once the waiter has left the queue's live set: either
    the machine resolved it (and removed it), or its task gave up and it stays
    in the queue as a dead slot until the queue sweeps it.
    """

    __slots__ = ("future", "kind", "seq", "target")

    def __init__(
        self,
        future: asyncio.Future[StateT | None],
        kind: int,
        target: StateT,
    ) -> None:
        self.future: asyncio.Future[StateT | None] | None = future
        self.kind: int = kind
        self.seq: int = next_seq()
        self.target: StateT = target


class WaiterQueue(Generic[StateT]):
    """Waiters sorted by target, oldest first among equal targets.

    A lone waiter is kept in ``single``, with no lists at all: one task
    awaiting one milestone is the common case, and it should cost little more
    than a future. From two waiters on, ``single`` is None and the waiters
    live in a list of sorted chunks (the layout of
    ``sortedcontainers.SortedList``): ``targets[i]`` holds the targets of
    ``waiters[i]`` in the same order, ``maxes[i]`` is ``targets[i][-1]``, and
    every target of chunk ``i`` is less than or equal to every target of chunk
    ``i + 1``. Locating a position costs O(log n) comparisons; inserting moves
    at most ``2 * _LOAD`` pointers; removing the due prefix costs O(log n)
    comparisons and O(k) moves.

    Every method that compares states does all its comparisons before it
    changes anything, so a comparison that raises leaves the queue as it was
    (or, at most, holds its lone waiter in a chunk instead of ``single``).
    Removing a cancelled waiter compares nothing: it becomes a dead slot, and
    the queue is rebuilt without its dead slots once they outnumber the live
    ones (amortised O(1) per cancellation, and at most one dead slot per live
    waiter is ever kept).
    """

    __slots__ = ("dead", "least", "live", "maxes", "single", "targets", "waiters")

    def __init__(self) -> None:
        """Create an empty queue."""
        self.single: Waiter[StateT] | None = None
        self.targets: list[list[StateT]] = []
        self.waiters: list[list[Waiter[StateT]]] = []
        self.maxes: list[StateT] = []
        self.least: StateT | None = None
        """The least queued target (of a live or dead slot); None if empty."""
        self.live: int = 0
        """Waiters whose future the machine will resolve."""
        self.dead: int = 0
        """Slots of waiters that gave up, not yet swept."""

    def push(self, waiter: Waiter[StateT]) -> None:
        """Queue ``waiter`` after every waiter with a target equal to its own.

        Raises whatever comparing the targets raises, with ``waiter`` not
        queued.
        """
        target = waiter.target
        if self.least is None:
            self.single = waiter
            self.least = target
            self.live = 1
            return
        single = self.single
        if single is not None:
            # A second waiter: the first moves into a chunk of its own.
            self.single = None
            self.targets.append([single.target])
            self.waiters.append([single])
            self.maxes.append(single.target)
        maxes = self.maxes
        i = bisect_right(maxes, target)
        if i == len(maxes):
            # Not less than any queued target: it goes last.
            i -= 1
            targets = self.targets[i]
            targets.append(target)
            self.waiters[i].append(waiter)
            maxes[i] = target
        else:
            targets = self.targets[i]
            j = bisect_right(targets, target)
            targets.insert(j, target)
            self.waiters[i].insert(j, waiter)
            if i == j == 0:
                self.least = target
        self.live += 1
        if len(targets) > 2 * _LOAD:
            self.targets.insert(i + 1, targets[_LOAD:])
            del targets[_LOAD:]
            waiters = self.waiters[i]
            self.waiters.insert(i + 1, waiters[_LOAD:])
            del waiters[_LOAD:]
            maxes.insert(i, targets[-1])

    def pop_due(self, reached: StateT) -> list[Waiter[StateT]]:
        """Remove and return the live waiters due when ``reached`` is entered.

        A waiter is due if ``not (reached < target)``; the caller has checked
        that ``least`` is. Those whose target is less than ``reached`` have
        their kind changed from `EXACT` to `SKIPPED`. The result is in the
        order the waiters were queued (FIFO), whatever their targets. Dead
        slots among the due ones are dropped.

        Raises whatever comparing the states raises, leaving the queue as it
        was.
        """
        single = self.single
        if single is not None:
            skipped = single.kind == EXACT and single.target < reached
            self.single = None
            self.least = None
            self.live = 0
            if skipped:
                single.kind = SKIPPED
            return [single]
        if len(self.maxes) == 1:
            due, n_below = self._pop_due_chunk(reached)
        else:
            due, n_below = self._pop_due_chunks(reached)
        self.least = self.targets[0][0] if self.maxes else None

        if n_below:
            for waiter in due[:n_below]:
                if waiter.kind == EXACT:
                    waiter.kind = SKIPPED
        if self.dead:
            live = [waiter for waiter in due if waiter.future is not None]
            self.dead -= len(due) - len(live)
            due = live
        self.live -= len(due)
        if len(due) > 1:
            due.sort(key=by_seq)
        return due

    def _pop_due_chunk(self, reached: StateT) -> tuple[list[Waiter[StateT]], int]:
        """`pop_due` over one chunk: the due waiters, and how many are below."""
        chunk = self.targets[0]
        # Comparisons first: the due prefix, and its part below ``reached``.
        hi = bisect_right(chunk, reached)
        n_below = bisect_left(chunk, reached)
        waiters = self.waiters
        if hi == len(chunk):
            due = waiters[0]
            self.targets.clear()
            waiters.clear()
            self.maxes.clear()
        else:
            due = waiters[0][:hi]
            del chunk[:hi]
            del waiters[0][:hi]
        return due, n_below

    def _pop_due_chunks(self, reached: StateT) -> tuple[list[Waiter[StateT]], int]:
        """`pop_due` over several chunks: the due waiters, and how many are below."""
        maxes = self.maxes
        targets = self.targets
        waiters = self.waiters
        nchunks = len(maxes)
        # Comparisons first. Chunks [0, hi) are due entirely, and so is the
        # prefix [0, hi_j) of chunk hi; likewise [0, lo) and [0, lo_j) of chunk
        # lo hold the targets less than ``reached``.
        hi = bisect_right(maxes, reached)
        hi_j = bisect_right(targets[hi], reached) if hi < nchunks else 0
        lo = bisect_left(maxes, reached)
        lo_j = bisect_left(targets[lo], reached) if lo < nchunks else 0

        n_below = sum(map(len, targets[:lo])) + lo_j
        due = list(chain.from_iterable(waiters[:hi]))
        if hi < nchunks:
            due += waiters[hi][:hi_j]
            del targets[hi][:hi_j]
            del waiters[hi][:hi_j]
        del maxes[:hi]
        del targets[:hi]
        del waiters[:hi]
        assert n_below <= len(due)  # the part below reached is part of the due
        return due, n_below

    def discard(self, waiter: Waiter[StateT]) -> None:
        """Forget the live ``waiter``, whose task gave up waiting.

        Compares no states, so it cannot fail.
        """
        waiter.future = None
        if waiter is self.single:
            self.single = None
            self.least = None
            self.live = 0
            return
        self.live -= 1
        self.dead += 1
        if self.dead > self.live:
            self._sweep()

    def _sweep(self) -> None:
        """Rebuild the chunks without dead slots (no comparisons: order is kept)."""
        live = [w for w in chain.from_iterable(self.waiters) if w.future is not None]
        self.waiters = [live[i : i + _LOAD] for i in range(0, len(live), _LOAD)]
        self.targets = [[w.target for w in chunk] for chunk in self.waiters]
        self.maxes = [chunk[-1] for chunk in self.targets]
        self.least = self.targets[0][0] if live else None
        self.dead = 0
