"""Machines stored in Redis, and the hub that follows them for one process.

How a process follows a machine
===============================

The server's order of transitions is the truth: each ``advance`` and
``rewind`` is one Lua script (`_scripts.MOVE`), which appends the transition
to the machine's log and publishes it. Notifications are only hints.

A `RedisStateMachines` hub owns one pub/sub connection. For each machine it
follows it keeps a *mirror*, an `OrderedStateMachine` that replays every
transition of the log, in order: every wait and subscription of this process
is a wait or subscription of the mirror, so that exact skip detection, the
value that satisfied a wait, FIFO wake-ups and "every state, none skipped"
are the local machine's own.

No wake-up is lost, by construction: the hub subscribes to a machine's
channel and waits for the server to confirm, and only then reads the
machine; so every transition after that read is published to it. A
published entry is applied if it is the next one (by ``seq``); one that skips
ahead makes the hub read the log from where it is, and so does every
(re)subscription the server confirms, after any reconnection. Each entry's
``chain`` is checked against the one before it, so a history other than the
one this process saw (lost writes, a failover, a machine created again) is
detected, never followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, cast, overload

from typing_extensions import Self, TypeVar, final

from ordered_statemachine._exceptions import backwards, check_cause, forwards
from ordered_statemachine._machine import (
    MachineStatistics,
    OrderedStateMachine,
    fail_pending,
)
from ordered_statemachine._typing import StateT
from ordered_statemachine.redis._codec import StateCodec, codec_for
from ordered_statemachine.redis._errors import (
    CorruptState,
    HistoryLost,
    RedisMachineError,
    StateRegressed,
)
from ordered_statemachine.redis._scripts import EXPIRE, MOVE, OPEN, SYNC

try:
    from redis.asyncio.cluster import RedisCluster
    from redis.exceptions import ResponseError
except ModuleNotFoundError as exc:  # redis-py is the extra's, not the core's
    msg = (
        "ordered_statemachine.redis needs redis-py: "
        "pip install 'ordered-statemachine[redis]'"
    )
    raise ModuleNotFoundError(msg, name=exc.name) from exc

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    from ordered_statemachine._enum import OrderedEnum
    from ordered_statemachine._subscription import StateSubscription


class RedisClient(Protocol):
    """What a hub needs of its client: ``redis.asyncio.Redis`` or ``RedisCluster``.

    Both of redis-py's asyncio clients satisfy it (``RedisCluster`` has
    pub/sub from redis-py 8.0 on). Only these calls are made through it, on
    the caller's client, whose connections and settings stay the caller's.
    """

    def register_script(self, script: str, /) -> object:
        """Return a callable that runs ``script`` by its hash."""
        ...

    def hmget(self, name: str, keys: list[str], /) -> object:
        """Return (an awaitable of) the values of ``keys`` in hash ``name``."""
        ...

    def pubsub(self) -> object:
        """Return a new pub/sub object on its own connection."""
        ...


EncodableT = TypeVar("EncodableT", bound="OrderedEnum | int | str")
"""A state type with a codec of its own (`enum.IntEnum` is an int)."""

_log = logging.getLogger("ordered_statemachine.redis")
_NAME: Final = "RedisOrderedStateMachine"
MAX_TYPE: Final = 200
MAX_MESSAGE: Final = 2_000
MAX_TRACEBACK: Final = 8_000
"""The most characters of a cause's type name, message and traceback kept."""
_MAX_EXPIRY: Final = 10**12
"""Seconds: far beyond any lifecycle, and within what Redis accepts."""
_RECENT: Final = 16
"""How many of the last transitions followed a hub remembers, per machine."""


class RemoteCause(Exception):
    """The cause of a transition, as recorded by the process that made it.

    Not the exception itself, which is never pickled: its type's name, its
    message and its formatted traceback, as text (each truncated to a bound).
    It is the ``__cause__`` of the `~ordered_statemachine.OrderedStateSkipped`
    that such a transition makes a wait raise, in any process.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str) -> None:
        """Record a cause by its type's name, its message and its traceback."""
        super().__init__(type_name, message, traceback_text)
        self.type_name = type_name
        """The qualified name of the original exception's type."""
        self.message = message
        """The original exception's ``str()``."""
        self.traceback_text = traceback_text
        """The original exception's traceback, formatted."""

    def __str__(self) -> str:
        """Return ``"<type name>: <message>"``."""
        return f"{self.type_name}: {self.message}"


def _clip(text: str, limit: int) -> str:
    """Return ``text``, or as much of it as fits in ``limit`` with a marker."""
    if len(text) <= limit:
        return text
    # The marker, sized for the most it could count: it never grows past it.
    keep = limit - len(f"... [{len(text)} more characters]")
    return text[:keep] + f"... [{len(text) - keep} more characters]"


def _cause_json(cause: BaseException) -> str:
    """Return the JSON that records ``cause`` (bounded), for other processes."""
    kind = type(cause)
    return json.dumps(
        {
            "type": _clip(f"{kind.__module__}.{kind.__qualname__}", MAX_TYPE),
            "message": _clip(str(cause), MAX_MESSAGE),
            "traceback": _clip(
                "".join(traceback.format_exception(cause)), MAX_TRACEBACK
            ),
        }
    )


def _remote_cause(text: str) -> RemoteCause | None:
    """Return the cause recorded as ``text`` (JSON), or None for ``""``."""
    if not text:
        return None
    try:
        fields = json.loads(text)
        return RemoteCause(
            str(fields["type"]), str(fields["message"]), str(fields["traceback"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        msg = f"a recorded cause is not what this library writes: {text[:100]!r}"
        raise CorruptState(msg) from exc


class _PubSub:
    """redis-py's PubSub, typed: the four calls the hub makes."""

    __slots__ = ("_commands", "_pubsub")

    def __init__(self, client: RedisClient) -> None:
        # redis-py leaves its PubSub partly untyped.
        self._pubsub: Any = cast("Any", client).pubsub()
        # One command at a time: redis-py's PubSub connects on its first
        # command, and commands sent at once would each open a connection of
        # their own (and all but one would never be read).
        self._commands = asyncio.Lock()

    async def subscribe(self, *channels: str) -> None:
        async with self._commands:
            await self._pubsub.subscribe(*channels)

    async def unsubscribe(self, *channels: str) -> None:
        async with self._commands:
            await self._pubsub.unsubscribe(*channels)

    async def get_message(self) -> dict[str, object] | None:
        """Wait for the next message (or confirmation); None on a timeout."""
        message: dict[str, object] | None = await self._pubsub.get_message(timeout=None)
        return message

    async def aclose(self) -> None:
        await self._pubsub.aclose()


def _text(value: object) -> str:
    """Return a reply from the server as text, whatever the client decodes."""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _foreign(followed: _Followed[Any]) -> CorruptState:
    """Return the error for a machine's key that holds something else."""
    key = followed.keys[0]
    return CorruptState(f"the key {key!r} holds something other than a machine")


def _gone(followed: _Followed[Any]) -> HistoryLost:
    """Return the error for a machine that no longer exists on the server."""
    return HistoryLost(f"the machine {followed.name!r} no longer exists")


def _check_found(followed: _Followed[Any], outcome: str) -> None:
    """Raise if a script found no machine (``missing``) or another key (``foreign``)."""
    if outcome == "missing":
        raise _gone(followed)
    if outcome == "foreign":
        raise _foreign(followed)


@dataclass
class _Entry:
    """One transition of the log."""

    seq: int
    op: str
    prev_rank: str
    prev_text: str
    rank: str
    text: str
    cause: str
    chain: str
    rewound: int
    """The ``seq`` of the last rewind before this transition (0 if none)."""

    @classmethod
    def parse(cls, raw: object) -> _Entry:
        """Read an entry (see `_scripts`); CorruptState if it is not one."""
        try:
            seq, op, prev_rank, prev_text, rank, text, cause, chain, rewound = (
                json.loads(_text(raw))
            )
            return cls(
                int(seq),
                str(op),
                str(prev_rank),
                str(prev_text),
                str(rank),
                str(text),
                str(cause),
                str(chain),
                int(rewound),
            )
        except (ValueError, TypeError) as exc:
            msg = f"a log entry is not what this library writes: {_text(raw)[:100]!r}"
            raise CorruptState(msg) from exc

    def follows(self, chain: str) -> bool:
        """Whether this entry comes right after a history whose chain is ``chain``."""
        expected = "|".join((chain, str(self.seq), self.op, self.rank, self.text))
        return hashlib.sha1(expected.encode()).hexdigest() == self.chain  # noqa: S324 (a chain, not a secret)


@dataclass
class _Stored:
    """The machine as stored: from OPEN or SYNC."""

    id: str
    codec: str
    kind: str
    rank: str
    text: str
    seq: int
    chain: str
    causes: list[tuple[str, str, str, str, str]]
    """Each kept cause: previous rank and text, new rank and text, cause."""

    @classmethod
    def parse(cls, fields: Sequence[object], causes: Sequence[object]) -> _Stored:
        """Read OPEN's or SYNC's reply; CorruptState if it is not a machine."""
        try:
            _, id_, codec, kind, rank, text, seq, chain = map(_text, fields)
            kept: list[tuple[str, str, str, str, str]] = []
            for item in causes:
                prev_rank, prev_text, new_rank, new_text, cause = json.loads(
                    _text(item)
                )
                kept.append(
                    (
                        str(prev_rank),
                        str(prev_text),
                        str(new_rank),
                        str(new_text),
                        str(cause),
                    )
                )
            return cls(id_, codec, kind, rank, text, int(seq), chain, kept)
        except (ValueError, TypeError) as exc:
            msg = "the stored machine is not what this library writes"
            raise CorruptState(msg) from exc


@dataclass(eq=False)
class _Followed(Generic[StateT]):
    """What the hub knows of one machine: its mirror, and where it is."""

    name: str
    keys: tuple[str, str, str]
    channel: str
    codec: StateCodec[StateT]
    id: str = ""
    seq: int = 0
    chain: str = ""
    recent: deque[tuple[int, str]] = field(
        default_factory=lambda: deque(maxlen=_RECENT)
    )
    """The last transitions followed (seq, chain), to check a late copy."""
    own: object = None
    """The entry of this process's last move, as the server replied with it."""
    mirror: OrderedStateMachine[StateT] | None = None
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    """Done when the machine is followed, or with the error that prevented it."""

    def chain_at(self, seq: int) -> str | None:
        """Return the chain after transition ``seq``, if it is a recent one."""
        for known, chain in reversed(self.recent):
            if known == seq:
                return chain
        return None

    def moved(self, seq: int, chain: str) -> None:
        """Record that the mirror is at transition ``seq``, whose chain is ``chain``."""
        self.seq, self.chain = seq, chain
        self.recent.append((seq, chain))


@final
class RedisOrderedStateMachine(Generic[StateT]):
    """An ordered state machine stored in Redis, shared by processes.

    Made by `RedisStateMachines.open`. Its contract is the local machine's
    wherever it makes sense, across every process that opens it:

    - `advance` and `rewind` go to the server, and take effect there in one
      order for everyone: of two processes advancing at once, the greater
      state wins and the lesser gets the local machine's `ValueError`; an
      equal state changes nothing, so a retry is safe.
    - `wait_for`, `wait_for_at_least` and `states` follow every transition
      of the server's log, in its order: a state entered and left between two
      reads is still seen, and a cause reaches every skipped wait as a
      `RemoteCause`.
    - `state` and `statistics` are this process's view: the state of the last
      transition it has followed, which may lag the server's by the time a
      notification takes. `read` asks the server.

    If this process cannot follow the server's history (`HistoryLost`,
    `StateRegressed`, `CorruptState`), the pending waits and subscriptions
    get that error, and the machine follows the server from then on.
    """

    __slots__ = ("_followed", "_hub")

    def __init__(self, hub: _Hub, followed: _Followed[StateT]) -> None:
        """Wrap what ``hub`` follows of a machine; made by `RedisStateMachines.open`."""
        self._hub = hub
        self._followed = followed

    def __repr__(self) -> str:
        """Show the machine's name, this process's view of its state, and waiters."""
        stats = self.statistics()
        return (
            f"<ordered_statemachine.redis.{_NAME} {self._followed.name!r} "
            f"state={stats.state!r} waiters={stats.waiters}>"
        )

    @property
    def name(self) -> str:
        """The machine's name (its keys are derived from it)."""
        return self._followed.name

    @property
    def state(self) -> StateT:
        """The state of the last transition this process has followed (may lag)."""
        return self._mirror().state

    def statistics(self) -> MachineStatistics[StateT]:
        """Return this process's view: the state it has followed, its own waiters."""
        return self._mirror().statistics()

    def _mirror(self) -> OrderedStateMachine[StateT]:
        mirror = self._followed.mirror
        if mirror is None:
            raise self._hub.closed_error()
        return mirror

    async def read(self) -> StateT:
        """Return the state stored on the server now (one round trip).

        Raises:
            HistoryLost: the machine no longer exists on the server.
            CorruptState: the stored state cannot be decoded, or the key
                holds something other than a machine.
            redis.exceptions.RedisError: the server could not be reached,
                say.

        """
        followed = self._followed
        try:
            # redis-py declares its replies as "awaitable or value".
            client = cast("Any", self._hub.client)
            raw = await client.hmget(followed.keys[0], ["rank", "text"])
        except ResponseError as exc:
            if "WRONGTYPE" in str(exc):
                raise _foreign(followed) from exc
            raise
        rank, text = cast("list[object]", raw)
        if rank is None or text is None:
            raise _gone(followed)
        return followed.codec.decode(_text(rank), _text(text))

    async def advance(
        self, new_state: StateT, *, cause: BaseException | None = None
    ) -> None:
        """Move the machine forward to ``new_state`` on the server, recording why.

        Atomic on the server. When it returns, every process that follows the
        machine will see the transition, and this one already does
        (``state`` is at least ``new_state``).

        Raises:
            ValueError: the stored state is greater (the local machine's
                message, ``cannot rewind RedisOrderedStateMachine ...``).
                Nothing changes.
            TypeError: ``new_state`` is not a state of the machine's codec,
                or ``cause`` is neither None nor an exception.
            redis.exceptions.ConnectionError: the server could not be reached
                (or the reply was lost); the transition may or may not have
                taken effect, and retrying is safe: an equal state is a no-op.
            HistoryLost: the machine no longer exists on the server.

        """
        if cause is not None:
            check_cause(cause)
        await self._move(
            "f", new_state, _cause_json(cause) if cause is not None else ""
        )

    async def rewind(self, new_state: StateT) -> None:
        """Move the machine back to ``new_state`` on the server.

        As `OrderedStateMachine.rewind`: the causes of the transitions it
        undoes are forgotten, pending waits stay pending.

        Raises:
            ValueError: the stored state is less (``cannot forward using
                rewind``). Nothing changes.
            TypeError: ``new_state`` is not a state of the machine's codec.
            redis.exceptions.ConnectionError: as for `advance`.
            HistoryLost: the machine no longer exists on the server.

        """
        await self._move("r", new_state, "")

    async def _move(self, op: str, new_state: StateT, cause: str) -> None:
        hub, followed = self._hub, self._followed
        rank, text = followed.codec.encode(new_state)
        reply = await hub.script(
            MOVE,
            followed.keys,
            op,
            rank,
            text,
            cause,
            hub.max_log,
            hub.max_causes,
            followed.channel,
        )
        outcome = _text(reply[0])
        _check_found(followed, outcome)
        if outcome in {"backwards", "forwards"}:
            current = followed.codec.decode(_text(reply[1]), _text(reply[2]))
            if outcome == "backwards":
                raise backwards(_NAME, new_state, current)
            raise forwards(current, new_state)
        # Followed at once, not when the notification comes: read your own
        # writes. The notification is then a duplicate.
        if outcome == "ok":
            if hub.apply(followed, _Entry.parse(reply[1])):
                followed.own = reply[1]
            else:
                await hub.catch_up(followed)

    async def wait_for(self, state: StateT) -> None:
        """Wait until the machine enters exactly ``state``, in any process.

        As `OrderedStateMachine.wait_for`, over the server's history from
        this process's view on (the wait starts at transition `seq`).

        Raises:
            OrderedStateSkipped: the machine is past ``state``, or a
                transition moves it past ``state``; its ``__cause__`` is the
                transition's `RemoteCause`, if it had one.
            HistoryLost, StateRegressed, CorruptState: the history could not
                be followed while this waited.
            TypeError: ``state`` cannot be compared with the machine's.

        """
        await self._mirror().wait_for(state)

    async def wait_for_at_least(self, state: StateT) -> StateT:
        """Wait until the machine's state is ``state`` or greater; return it.

        As `OrderedStateMachine.wait_for_at_least`: returns the state whose
        transition satisfied the wait.

        Raises:
            HistoryLost, StateRegressed, CorruptState: the history could not
                be followed while this waited.
            TypeError: ``state`` cannot be compared with the machine's.

        """
        return await self._mirror().wait_for_at_least(state)

    def states(self) -> StateSubscription[StateT]:
        """Subscribe to this process's view of the state, then every state entered.

        As `OrderedStateMachine.states`, across processes: in the server's
        order, none skipped and none repeated. The subscription raises
        `HistoryLost`, `StateRegressed` or `CorruptState` if the history
        cannot be followed.
        """
        return self._mirror().states()

    @property
    def seq(self) -> int:
        """How many transitions of the server's log this process has followed."""
        return self._followed.seq

    async def expire(self, seconds: float) -> bool:
        """Give the machine an expiry: after ``seconds``, it is deleted.

        For a finished lifecycle. Every key of the machine gets it; later
        transitions keep it. Returns False if the machine does not exist.

        Expiring sends no notification: a wait still pending on the machine
        when it expires gets `HistoryLost` only when its process next reads
        the machine (after a reconnection, or on a notification), so give an
        expiry only to a machine that nobody awaits any more.

        Raises:
            ValueError: ``seconds`` is not a positive, finite number.
            redis.exceptions.ConnectionError: the server could not be
                reached; the expiry may or may not have been given.

        """
        # Not a bool, not NaN, neither 0 (which would delete at once) nor inf.
        if not (type(seconds) in {int, float} and 0 < seconds < _MAX_EXPIRY):
            msg = f"an expiry is a positive number of seconds, not {seconds!r}"
            raise ValueError(msg)
        followed = self._followed
        milliseconds = max(1, round(seconds * 1000))  # 0 would delete at once
        done = await self._hub.script(EXPIRE, followed.keys, milliseconds)
        return bool(done)


class _Hub:
    """What a `RedisStateMachines` does: follow machines, run the scripts."""

    def __init__(
        self, client: RedisClient, prefix: str, max_log: int, max_causes: int
    ) -> None:
        """Follow machines through ``client`` (arguments checked by the caller)."""
        self.client = client
        self.prefix = prefix
        self.max_log = max_log
        self.max_causes = max_causes
        self.followed: dict[str, _Followed[Any]] = {}
        self._by_channel: dict[str, _Followed[Any]] = {}
        self._pubsub: _PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._scripts: dict[str, Any] = {}
        self.closed: bool = False

    def closed_error(self) -> RedisMachineError:
        """Return the error for using a machine of a closed hub."""
        return RedisMachineError("the RedisStateMachines of this machine is closed")

    async def script(self, source: str, keys: Sequence[str], *args: str | int) -> Any:  # noqa: ANN401 (redis replies)
        """Run a script of `_scripts` (registered once, then called by hash)."""
        registered = self._scripts.get(source)
        if registered is None:
            registered = self._scripts[source] = cast(
                "Any", self.client.register_script(source)
            )
        return await registered(keys=list(keys), args=list(args))

    async def follow(
        self, name: str, initial_state: StateT, codec: StateCodec[StateT]
    ) -> _Followed[StateT]:
        """Follow the machine ``name`` (see `RedisStateMachines.open`)."""
        existing = self.followed.get(name)
        if existing is not None:
            if existing.codec.name != codec.name:
                msg = (
                    f"{name!r} is open with the codec {existing.codec.name}, "
                    f"not {codec.name}"
                )
                raise TypeError(msg)
            # Being opened by another task, maybe: ready when it is.
            await asyncio.shield(existing.opened)
            return existing
        base = f"{self.prefix}:{{{name}}}"
        followed: _Followed[StateT] = _Followed(
            name, (base, f"{base}:log", f"{base}:causes"), base, codec
        )
        self.followed[name] = followed
        self._by_channel[followed.channel] = followed
        try:
            await self._start_following(followed, initial_state)
        except BaseException as exc:
            del self.followed[name], self._by_channel[followed.channel]
            # The tasks that wait for this open get its error (not
            # CancelledError, which is this task's own).
            error = exc
            if isinstance(exc, asyncio.CancelledError):
                error = RedisMachineError(f"opening {name!r} was cancelled")
            followed.opened.set_exception(error)
            followed.opened.exception()  # retrieved: no "never retrieved" log
            if self._pubsub is not None:
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(followed.channel)
            raise
        followed.opened.set_result(None)
        return followed

    async def _start_following(
        self, followed: _Followed[StateT], initial_state: StateT
    ) -> None:
        """Subscribe, then read (or create) the machine; make its mirror."""
        # Subscribed first, confirmed, then read: no transition after the read
        # can go unnoticed.
        await self._subscribe(followed)
        codec = followed.codec
        rank, text = codec.encode(initial_state)
        reply = await self.script(
            OPEN,
            followed.keys,
            secrets.token_hex(8),
            codec.name,
            codec.rank_kind,
            rank,
            text,
        )
        _check_found(followed, _text(reply[0]))  # OPEN creates a missing one
        stored = _Stored.parse(reply[1], reply[2])
        if stored.codec != codec.name:
            msg = (
                f"the machine {followed.name!r} is stored with the codec "
                f"{stored.codec}, not {codec.name}"
            )
            raise TypeError(msg)
        self._rebuild(followed, stored)
        await self.catch_up(followed)

    async def _subscribe(self, followed: _Followed[Any]) -> None:
        pubsub = self._pubsub or await self._start_pubsub()
        await pubsub.subscribe(followed.channel)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())
        await followed.subscribed.wait()
        if self.closed:  # woken by aclose, not by the server
            raise self.closed_error()

    async def _start_pubsub(self) -> _PubSub:
        """Make the hub's pub/sub, once, however many opens come at once."""
        async with self._starting:
            if self._pubsub is None:
                if isinstance(self.client, RedisCluster):
                    # Its pub/sub needs the map of slots to nodes.
                    _ = await self.client.initialize()
                self._pubsub = _PubSub(self.client)
            return self._pubsub

    async def _read(self) -> None:
        """Follow the notifications, and every (re)subscription, forever."""
        backoff = 0.05
        while not self.closed:
            pubsub = self._pubsub
            assert pubsub is not None  # made before the reader
            try:
                message = await pubsub.get_message()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 (a broken connection, say: resubscribe)
                _log.warning("pub/sub connection lost; resubscribing", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)
                with contextlib.suppress(Exception):
                    await pubsub.subscribe(*self._by_channel)
            else:
                backoff = 0.05
                # None: nothing for the hub (redis-py handled it itself).
                await self._handle(message or {})

    async def _handle(self, message: dict[str, object]) -> None:
        followed = self._by_channel.get(_text(message.get("channel", "")))
        if followed is None:
            return
        kind = _text(message.get("type", ""))
        try:
            if kind == "subscribe":
                # Confirmed: from now on nothing is missed. After a
                # reconnection, what was missed meanwhile is read now.
                if followed.subscribed.is_set():
                    await self.catch_up(followed)
                followed.subscribed.set()
            elif (
                kind == "message"
                and followed.mirror is not None
                # The copy of this process's own move, already followed, is
                # the common case: recognised without parsing it.
                and message["data"] != followed.own
                and not self.apply(followed, _Entry.parse(message["data"]))
            ):
                await self.catch_up(followed)
        except RedisMachineError as error:
            self._break(followed, error, None)
        except Exception:  # noqa: BLE001 (the server unreachable for a catch-up)
            _log.warning("could not catch up with %r", followed.name, exc_info=True)

    def apply(self, followed: _Followed[StateT], entry: _Entry) -> bool:
        """Follow ``entry`` if it is the next transition of the history seen.

        Returns False if the mirror cannot follow it without reading the log
        (`catch_up`): it is ahead, or it is not the transition seen with its
        ``seq`` (another history). A copy of a transition older than the
        recent ones is taken for a late duplicate.
        """
        if entry.seq <= followed.seq:
            return followed.chain_at(entry.seq) in {None, entry.chain}
        if entry.seq == followed.seq + 1 and entry.follows(followed.chain):
            self._enter(followed, entry)
            return True
        return False

    def _enter(self, followed: _Followed[StateT], entry: _Entry) -> None:
        """Make the mirror take the transition of ``entry``, the next one."""
        mirror = followed.mirror
        assert mirror is not None
        state = followed.codec.decode(entry.rank, entry.text)
        if entry.op == "f":
            mirror.advance(state, cause=_remote_cause(entry.cause))
        else:
            mirror.rewind(state)
        followed.moved(entry.seq, entry.chain)

    async def catch_up(self, followed: _Followed[StateT]) -> None:
        """Read the log from where the mirror is, and follow it; check the history.

        Raises:
            HistoryLost: the machine no longer exists (the waits get it).

        """
        asked = followed.seq
        reply = await self.script(SYNC, followed.keys, max(asked, 1))
        _check_found(followed, _text(reply[0]))
        stored = _Stored.parse(reply[1], reply[2])
        entries = [_Entry.parse(raw) for raw in reply[3]]
        error = self._follow(followed, asked, stored, entries)
        if error is not None:
            self._break(followed, error, stored)

    def _follow(
        self,
        followed: _Followed[StateT],
        asked: int,
        stored: _Stored,
        entries: list[_Entry],
    ) -> RedisMachineError | None:
        """Follow the log as read (from ``asked`` on); return why it cannot be."""
        error: RedisMachineError | None = self._contradiction(
            followed, asked, stored, entries
        )
        if error is not None or stored.seq <= followed.seq:
            return error
        entries = [entry for entry in entries if entry.seq > followed.seq]
        if not entries:
            # Only a log deleted by hand: the last entry is never trimmed.
            return HistoryLost(f"the log of {followed.name!r} is gone")
        if entries[0].seq != followed.seq + 1:
            error = self._skip_gap(followed, entries[0])
            if error is not None:
                return error
            # The chain of the transitions trimmed is unknown: the oldest
            # entry left is taken as it is (the machine's id was checked).
            self._enter(followed, entries[0])
            entries = entries[1:]
        for entry in entries:
            if entry.seq != followed.seq + 1 or not entry.follows(followed.chain):
                return StateRegressed(
                    f"the history of {followed.name!r} differs from the one seen"
                )
            self._enter(followed, entry)
        return None

    @staticmethod
    def _contradiction(
        followed: _Followed[StateT],
        asked: int,
        stored: _Stored,
        entries: list[_Entry],
    ) -> StateRegressed | None:
        """Return why the log as read is not the history seen, if it is not.

        The reply is one instant of the server's; transitions may have been
        followed since (an advance's own reply), each checked to continue the
        history seen. What the reply holds of that history must match it.
        """
        name = followed.name
        if stored.id != followed.id:
            return StateRegressed(f"the machine {name!r} was deleted and created again")
        differs = StateRegressed(f"the history of {name!r} differs from the one seen")
        if any(
            followed.chain_at(entry.seq) not in {None, entry.chain}
            for entry in entries
            if entry.seq <= followed.seq
        ):
            return differs
        if stored.seq > followed.seq:
            return None
        # The server had transition ``asked`` when it was asked: it holds
        # fewer only if it lost some.
        if stored.seq < asked:
            return StateRegressed(
                f"the server holds transition {stored.seq} of {name!r}, "
                f"but this process saw transition {followed.seq}"
            )
        if followed.chain_at(stored.seq) in {None, stored.chain}:
            return None  # nothing new: the reply is older than what was followed
        return differs

    def _skip_gap(
        self, followed: _Followed[StateT], oldest: _Entry
    ) -> RedisMachineError | None:
        """Follow the machine past transitions trimmed before this process read them.

        ``oldest`` is the oldest entry left. The waits whose outcome the
        missing transitions decided are decided only if they are known: with
        no rewind among them, the states they entered increase, from the
        mirror's state to ``oldest``'s previous state, so a wait for that
        state or a greater one is decided by it and what follows; a wait for
        a state in between gets `HistoryLost` (it may have been entered, or
        skipped), and so does every subscription (it would miss states).
        Returns the error if the mirror cannot follow at all; otherwise the
        mirror is in ``oldest``'s previous state, for the caller to enter it.
        """
        mirror = followed.mirror
        assert mirror is not None  # followed
        lost = oldest.seq - followed.seq - 1
        trimmed = (
            f"{lost} transitions of {followed.name!r} were trimmed from its log "
            f"before this process read them (max_log={self.max_log})"
        )
        if oldest.rewound > followed.seq:
            return HistoryLost(f"{trimmed}, a rewind among them")
        before = followed.codec.decode(oldest.prev_rank, oldest.prev_text)
        if before < mirror.state:
            return StateRegressed(
                f"{followed.name!r} moved back to {before!r} from "
                f"{mirror.state!r} with no rewind (a lost write or a failover)"
            )
        _log.warning("%s; the waits it decided are ended", trimmed)
        fail_pending(
            mirror,
            lambda: HistoryLost(trimmed),
            spare=lambda target, _exact: not (target < before),
        )
        # Forward (the lost transitions only moved forward), and no pending
        # wait is skipped by it: those were ended above.
        mirror.advance(before)
        return None

    def _rebuild(self, followed: _Followed[StateT], stored: _Stored) -> None:
        """Make a new mirror at the stored state, with its causes."""
        codec = followed.codec
        state = codec.decode(stored.rank, stored.text)
        mirror = OrderedStateMachine(state)
        if stored.causes:
            # Replay the kept causes on a fresh mirror, so that a wait for a
            # passed state is chained to the cause of the transition that
            # passed it. The causes' new states increase, each at most the
            # next one's previous state, and none above the state.
            first = stored.causes[0]
            mirror = OrderedStateMachine(codec.decode(first[0], first[1]))
            for prev_rank, prev_text, rank, text, cause in stored.causes:
                previous = codec.decode(prev_rank, prev_text)
                if mirror.state < previous:
                    mirror.advance(previous)
                mirror.advance(codec.decode(rank, text), cause=_remote_cause(cause))
            if mirror.state < state:
                mirror.advance(state)
        followed.mirror = mirror
        followed.id = stored.id
        followed.recent.clear()
        followed.moved(stored.seq, stored.chain)

    def _break(
        self, followed: _Followed[Any], error: RedisMachineError, stored: _Stored | None
    ) -> None:
        """End the waits on the mirror with ``error``; follow ``stored`` from now."""
        mirror = followed.mirror
        if mirror is not None:
            kind, text = type(error), str(error)
            # A new exception for each: one shared would gather tracebacks.
            fail_pending(mirror, lambda: kind(text))
        if stored is not None:
            _log.warning("%s", error)
            self._rebuild(followed, stored)

    async def aclose(self) -> None:
        """Stop following: unsubscribe, end the pending waits, close the connection."""
        if self.closed:
            return
        self.closed = True
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        for followed in self.followed.values():
            self._break(followed, self.closed_error(), None)
            followed.mirror = None
            followed.subscribed.set()  # an open still waiting for it ends
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe()
            await pubsub.aclose()


@final
class RedisStateMachines:
    """The machines one process follows on one Redis server (or cluster).

    ``client`` is a ``redis.asyncio.Redis`` or ``RedisCluster`` owned by the
    caller; the hub uses it for commands and opens one pub/sub connection of
    its own (one for a cluster too: a cluster delivers every channel's
    messages to every node). Use it as ``async with RedisStateMachines(client)
    as machines:``; closing it unsubscribes and ends the waits of its
    machines with `RedisMachineError`.

    ``prefix`` starts every key; ``max_log`` is how many transitions each
    machine's log keeps (a process that falls further behind gets
    `HistoryLost`); ``max_causes``, how many causes it keeps.
    """

    __slots__ = ("_hub",)

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "osm",
        max_log: int = 10_000,
        max_causes: int = 100,
    ) -> None:
        """Follow machines through ``client``; see the class documentation.

        Raises:
            ValueError: ``prefix`` contains braces, or ``max_log`` or
                ``max_causes`` is less than 1.
            TypeError: ``client`` is a ``RedisCluster`` of a redis-py older
                than 8.0, whose asyncio cluster client has no pub/sub.

        """
        if "{" in prefix or "}" in prefix:
            msg = f"the prefix must not contain braces: {prefix!r}"
            raise ValueError(msg)
        if max_log < 1 or max_causes < 1:
            msg = "max_log and max_causes must be at least 1"
            raise ValueError(msg)
        if not hasattr(client, "pubsub"):
            msg = (
                "this RedisCluster has no pub/sub: redis-py's asyncio "
                "RedisCluster has it from redis-py 8.0 on"
            )
            raise TypeError(msg)
        self._hub = _Hub(client, prefix, max_log, max_causes)

    def __repr__(self) -> str:
        """Show the prefix and how many machines the hub follows."""
        hub = self._hub
        state = "closed" if hub.closed else f"following {len(hub.followed)}"
        return f"<ordered_statemachine.redis.RedisStateMachines {hub.prefix!r} {state}>"

    @property
    def client(self) -> RedisClient:
        """The client given, which the hub uses for its commands."""
        return self._hub.client

    @property
    def prefix(self) -> str:
        """What every key of the hub's machines starts with."""
        return self._hub.prefix

    @property
    def max_log(self) -> int:
        """How many transitions each machine's log keeps, as this hub writes."""
        return self._hub.max_log

    @property
    def max_causes(self) -> int:
        """How many causes each machine keeps, as this hub writes."""
        return self._hub.max_causes

    async def __aenter__(self) -> Self:
        """Return the hub; leaving the block closes it."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the hub (see `aclose`)."""
        await self.aclose()

    @overload
    async def open(
        self, name: str, initial_state: EncodableT, *, codec: None = None
    ) -> RedisOrderedStateMachine[EncodableT]: ...
    @overload
    async def open(
        self, name: str, initial_state: StateT, *, codec: StateCodec[StateT]
    ) -> RedisOrderedStateMachine[StateT]: ...
    async def open(
        self,
        name: str,
        initial_state: StateT,
        *,
        codec: StateCodec[StateT] | None = None,
    ) -> RedisOrderedStateMachine[StateT]:
        """Open the machine ``name``, creating it in ``initial_state`` if it is new.

        If it exists, ``initial_state`` only gives its type: the machine is
        in whatever state it is. ``codec`` says how states are stored; by
        default, an `OrderedEnum` or `enum.IntEnum` member by name, an ``int``
        or a ``str`` as is. Opening a name twice gives the same machine.

        Raises:
            ValueError: ``name`` contains braces (they make Redis Cluster's
                hash tag).
            TypeError: no codec fits ``initial_state``, or the stored machine
                was stored with another codec.
            CorruptState: the key holds something else, or its state cannot
                be decoded.
            RedisMachineError: the hub is closed.

        """
        if "{" in name or "}" in name:
            msg = f"a machine's name must not contain braces: {name!r}"
            raise ValueError(msg)
        hub = self._hub
        if hub.closed:
            raise hub.closed_error()
        codec = codec if codec is not None else codec_for(initial_state)
        return RedisOrderedStateMachine(
            hub, await hub.follow(name, initial_state, codec)
        )

    async def aclose(self) -> None:
        """Stop following: unsubscribe, end the pending waits, close the connection.

        The waits of the hub's machines raise `RedisMachineError`. Closing
        twice does nothing; the client stays open (it is the caller's).
        """
        await self._hub.aclose()
