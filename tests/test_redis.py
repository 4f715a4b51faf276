"""Machines stored in Redis: the local contract across processes, on a real server.

Every test starts its own redis-server (tests/redis_servers.py). Two hubs on
two clients stand for two processes (each has its own connections); the
tests with real OS processes are in test_redis_processes.py.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import logging
import pickle
import re
import threading
import traceback
from typing import TYPE_CHECKING, Any, Literal

import pytest

from helpers import TIMEOUT, bounded, steps
from ordered_statemachine import OrderedEnum, OrderedStateSkipped
from redis_servers import late_sync_client, untyped

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from redis_servers import RedisServer

pytest.importorskip("redis.asyncio")

from ordered_statemachine.redis import (
    CorruptState,
    EnumCodec,
    HistoryLost,
    IntCodec,
    RedisStateMachines,
    RemoteCause,
    StateRegressed,
    StrCodec,
)


class Job(OrderedEnum):
    """A job's lifecycle, stored by name."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Level(enum.IntEnum):
    """An IntEnum, ranked by value."""

    LOW = -5
    MID = 3
    HIGH = 40


@pytest.fixture
async def hubs(redis_server: RedisServer) -> AsyncIterator[list[RedisStateMachines]]:
    """Two hubs on two clients of the server: two processes' worth."""
    clients = [redis_server.client() for _ in range(2)]
    machines = [RedisStateMachines(client) for client in clients]
    try:
        yield machines
    finally:
        for hub in machines:
            await untyped(hub).aclose()
        for client in clients:
            await untyped(client).aclose()


class TestContract:
    """The local machine's contract, across hubs."""

    async def test_open_creates_only_if_new(
        self, hubs: list[RedisStateMachines]
    ) -> None:
        """The initial state is set by the first open; later opens see the state."""
        first, second = hubs
        job = await first.open("job:1", Job.QUEUED)
        await job.advance(Job.RUNNING)
        again = await second.open("job:1", Job.QUEUED)
        assert again.state is Job.RUNNING
        assert await again.read() is Job.RUNNING
        assert await first.open("job:1", Job.DONE) is not job  # a new view...
        assert (
            await first.open("job:1", Job.DONE)
        ).state is Job.RUNNING  # ...same machine

    async def test_wait_in_one_process_advance_in_another(
        self, hubs: list[RedisStateMachines]
    ) -> None:
        """A waiter resumes with the state that satisfied it."""
        worker, web = hubs
        job_w = await worker.open("job:2", Job.QUEUED)
        job_v = await web.open("job:2", Job.QUEUED)
        done = asyncio.create_task(job_v.wait_for_at_least(Job.DONE))
        running = asyncio.create_task(job_v.wait_for(Job.RUNNING))
        await steps()
        await job_w.advance(Job.RUNNING)
        await job_w.advance(Job.DONE)
        await bounded(running)
        assert await bounded(done) is Job.DONE
        assert job_v.state is Job.DONE

    async def test_entered_and_left_between_two_reads_is_seen(
        self, hubs: list[RedisStateMachines]
    ) -> None:
        """The log, not the stored state, decides: a transient state is seen."""
        worker, web = hubs
        job_w = await worker.open("job:3", Job.QUEUED)
        job_v = await web.open("job:3", Job.QUEUED)
        entered = asyncio.create_task(job_v.wait_for(Job.RUNNING))
        reached = asyncio.create_task(job_v.wait_for_at_least(Job.RUNNING))
        await steps()
        # Both before the web hub runs: it never reads RUNNING as the state.
        await job_w.advance(Job.RUNNING)
        await job_w.advance(Job.DONE)
        await bounded(entered)
        assert await bounded(reached) is Job.RUNNING

    async def test_skip_carries_the_remote_cause(
        self, hubs: list[RedisStateMachines]
    ) -> None:
        """The cause reaches pending and later waiters as text, never pickled."""
        worker, web = hubs
        job_w = await worker.open("job:4", Job.QUEUED)
        job_v = await web.open("job:4", Job.QUEUED)
        pending = asyncio.create_task(job_v.wait_for(Job.DONE))
        await steps()
        try:
            msg = "disk full"
            raise OSError(msg)  # noqa: TRY301
        except OSError as exc:
            await job_w.advance(Job.FAILED, cause=exc)
            raised = exc
        with pytest.raises(OrderedStateSkipped) as info:
            await bounded(pending)
        cause = info.value.__cause__
        assert isinstance(cause, RemoteCause)
        assert cause.type_name == "builtins.OSError"
        assert cause.message == "disk full"
        assert cause.traceback_text == "".join(traceback.format_exception(raised))
        assert str(cause) == "builtins.OSError: disk full"
        # The args, which repr() shows and pickle rebuilds it from.
        assert cause.args == ("builtins.OSError", "disk full", cause.traceback_text)
        for copied in (pickle.loads(pickle.dumps(cause)), copy.copy(cause)):  # noqa: S301 (our own bytes)
            assert type(copied) is RemoteCause
            assert (copied.type_name, copied.message, copied.traceback_text) == (
                cause.type_name,
                cause.message,
                cause.traceback_text,
            )
        # A process that opens it later is chained to the same cause.
        async with RedisStateMachines(worker.client) as late:
            job_l = await late.open("job:4", Job.QUEUED)
            with pytest.raises(OrderedStateSkipped) as info:
                await bounded(job_l.wait_for(Job.RUNNING))
            assert str(info.value.__cause__) == "builtins.OSError: disk full"

    async def test_concurrent_advances_greater_wins(
        self, hubs: list[RedisStateMachines]
    ) -> None:
        """Of two advances, the greater wins; the lesser gets the local ValueError."""
        first, second = hubs
        a = await first.open("job:5", Job.QUEUED)
        b = await second.open("job:5", Job.QUEUED)
        await a.advance(Job.DONE)
        with pytest.raises(
            ValueError, match="cannot rewind RedisOrderedStateMachine from"
        ):
            await b.advance(Job.RUNNING)
        await b.advance(Job.DONE)  # equal: a retry is safe
        with pytest.raises(ValueError, match="cannot forward using rewind"):
            await b.rewind(Job.FAILED)
        assert await b.read() is Job.DONE

    async def test_states_every_state_across_processes(
        self, hubs: list[RedisStateMachines]
    ) -> None:
        """A subscriber sees every state, rewinds included, none skipped or repeated."""
        worker, web = hubs
        job_w = await worker.open("job:6", Job.QUEUED)
        job_v = await web.open("job:6", Job.QUEUED)
        seen: list[Job] = []

        async def watch() -> None:
            async for state in job_v.states():
                seen.append(state)
                if len(seen) == 5:
                    return

        watcher = asyncio.create_task(watch())
        await steps()
        await job_w.advance(Job.RUNNING)
        await job_w.advance(Job.FAILED)
        await job_w.rewind(Job.QUEUED)
        await job_w.advance(Job.DONE)
        await bounded(watcher)
        assert seen == [Job.QUEUED, Job.RUNNING, Job.FAILED, Job.QUEUED, Job.DONE]


class TestCodecs:
    """States cross the wire by name or value, with a rank the server compares."""

    @pytest.mark.parametrize(
        ("states", "codec_name"),
        [
            ([Level.LOW, Level.MID, Level.HIGH], "enum:test_redis.Level"),
            ([-12, -3, 0, 7, 10**30], "int"),
            (["", "a", "ab", "b", "z", "é"], "str"),
        ],
        ids=["IntEnum", "int", "str"],
    )
    async def test_server_orders_as_python(
        self,
        hubs: list[RedisStateMachines],
        states: list[Any],
        codec_name: str,
    ) -> None:
        """Each state after the first is greater on the server too; none is less."""
        hub, _ = hubs
        machine = await hub.open("ordered", states[0])
        for state in states[1:]:
            await machine.advance(state)
            assert await machine.read() == state
        for state in states[:-1]:
            with pytest.raises(ValueError, match="cannot rewind"):
                await machine.advance(state)
        raw = await untyped(hub.client).hget("osm:{ordered}", "codec")
        assert raw == codec_name.encode()

    async def test_foreign_and_corrupt_values_are_reported(
        self, hubs: list[RedisStateMachines]
    ) -> None:
        """A key written by something else, or a name the enum lacks: CorruptState."""
        hub, other = hubs
        await untyped(hub.client).hset("osm:{foreign}", "owner", "someone else")
        with pytest.raises(
            CorruptState,
            match=r"^the key 'osm:\{foreign\}' holds something other than a machine$",
        ):
            await hub.open("foreign", Job.QUEUED)
        job = await hub.open("job:7", Job.QUEUED)
        await untyped(hub.client).hset(
            "osm:{job:7}", mapping={"text": "EXPLODED", "rank": "1"}
        )
        with pytest.raises(CorruptState, match="not a member of Job"):
            await job.read()
        with pytest.raises(TypeError, match="stored with the codec"):
            await other.open("job:7", 0)

    async def test_custom_codec(self, hubs: list[RedisStateMachines]) -> None:
        """A StateCodec of one's own: here, versions ranked as zero-padded text."""

        class Versions:
            name = "version"
            rank_kind: Literal["str"] = "str"

            def encode(self, state: tuple[int, int]) -> tuple[str, str]:
                major, minor = state
                return f"{major:04}.{minor:04}", f"{major}.{minor}"

            def decode(self, rank: str, text: str) -> tuple[int, int]:
                major, minor = (int(part) for part in text.split("."))
                if self.encode((major, minor))[0] != rank:
                    raise CorruptState(text)
                return major, minor

        hub, other = hubs
        first: tuple[int, int] = (1, 2)
        release = await hub.open("release", first, codec=Versions())
        await release.advance((1, 10))
        watcher = await other.open("release", (0, 0), codec=Versions())
        assert watcher.state == (1, 10)
        with pytest.raises(ValueError, match="cannot rewind"):
            await release.advance((1, 9))

    async def test_cause_text_is_truncated(
        self, hubs: list[RedisStateMachines]
    ) -> None:
        """A cause's message is bounded: truncated, not refused."""
        hub, other = hubs
        job = await hub.open("job:8", Job.QUEUED)
        view = await other.open("job:8", Job.QUEUED)
        pending = asyncio.create_task(view.wait_for(Job.RUNNING))
        await steps()
        await job.advance(Job.DONE, cause=ValueError("x" * 100_000))
        with pytest.raises(OrderedStateSkipped) as info:
            await bounded(pending)
        cause = info.value.__cause__
        assert isinstance(cause, RemoteCause)
        # 2,000 characters in all: as many x as fit before the marker.
        assert cause.message == "x" * 1_972 + "... [98028 more characters]"

    async def test_enum_ranks(self, hubs: list[RedisStateMachines]) -> None:
        """An IntEnum member is ranked by its value, an OrderedEnum's by its place."""

        class Priority(enum.IntEnum):
            HIGH = 10  # defined first, greater
            LOW = 5

        class Stage(OrderedEnum):
            FIRST = "z"
            SECOND = "a"

        assert EnumCodec(Priority).encode(Priority.HIGH) == ("10", "HIGH")
        assert EnumCodec(Priority).encode(Priority.LOW) == ("5", "LOW")
        assert EnumCodec(Stage).encode(Stage.FIRST) == ("0", "FIRST")
        assert EnumCodec(Stage).encode(Stage.SECOND) == ("1", "SECOND")
        # The server orders them so: 5 before 10, although "10" < "5" as text.
        hub, other = hubs
        priority = await hub.open("priority", Priority.LOW)
        await priority.advance(Priority.HIGH)
        with pytest.raises(ValueError, match="cannot rewind"):
            await priority.advance(Priority.LOW)
        seen = await other.open("priority", Priority.LOW)
        assert await seen.read() is Priority.HIGH

    def test_codecs_refuse_what_they_cannot_rank(self) -> None:
        """Types and sizes the codecs cannot encode are refused, not mangled."""
        with pytest.raises(
            TypeError, match=r"^IntCodec encodes int states, not float$"
        ):
            IntCodec().encode(1.5)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        for too_long in (10**100, -(10**100), 10**200):
            digits = len(str(abs(too_long)))
            with pytest.raises(
                ValueError,
                match=rf"^an int state has at most 100 digits, not {digits}$",
            ):
                IntCodec().encode(too_long)
        for longest in (10**100 - 1, -(10**100 - 1)):
            assert IntCodec().decode(*IntCodec().encode(longest)) == longest
        with pytest.raises(
            ValueError, match=r"^a state's text is at most 1000 characters, not 1001$"
        ):
            StrCodec().encode("x" * 1001)
        assert StrCodec().decode(*StrCodec().encode("x" * 1000)) == "x" * 1000
        with pytest.raises(UnicodeEncodeError):
            StrCodec().encode("\ud800")

        class Plain(enum.Enum):
            A = 1

        with pytest.raises(TypeError, match="OrderedEnum or an IntEnum"):
            EnumCodec(Plain)
        with pytest.raises(CorruptState, match="is not an int"):
            IntCodec().decode("07", "07")


class TestHistory:
    """What the hub does when it cannot follow the history: it says so."""

    @staticmethod
    def missed(
        server: RedisServer, name: str, moves: list[tuple[str, int]], max_log: int
    ) -> None:
        """Make ``moves`` on ``name``, from another thread, unseen by this loop's hubs.

        This thread blocks until they are made, so its hubs, whose pub/sub
        connections are killed first, can only resubscribe afterwards: they
        miss every notification, and learn of the moves from the log.
        """

        async def elsewhere() -> None:
            client = server.client()
            await untyped(client).execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            async with RedisStateMachines(client, max_log=max_log) as hub:
                machine = await hub.open(name, 0)
                for op, state in moves:
                    if op == "f":
                        await machine.advance(state)
                    else:
                        await machine.rewind(state)
            await untyped(client).aclose()

        thread = threading.Thread(target=asyncio.run, args=(elsewhere(),))
        thread.start()
        thread.join(TIMEOUT)
        assert not thread.is_alive()

    async def test_trimmed_window_decides_what_it_can(
        self, redis_server: RedisServer
    ) -> None:
        """Waits the trimmed transitions decided get HistoryLost; no others.

        The web hub follows 0; meanwhile the server goes 1, 2, ... 10 and
        keeps the last 3 transitions (8, 9, 10), so the oldest left says the
        state was 7 before it. With no rewind among the lost transitions,
        the states they entered increase up to 7: a wait for 7 or more is
        decided by the log, a wait for a state in between is not (entered or
        skipped, nobody can tell), nor is a subscription (it lost states).
        """
        client = redis_server.client()
        async with RedisStateMachines(client, max_log=3) as web:
            job = await web.open("counter", 0)
            states = job.states()
            assert await bounded(anext(states)) == 0
            waits = {
                "exact 5": asyncio.create_task(job.wait_for(5)),
                "at least 3": asyncio.create_task(job.wait_for_at_least(3)),
                "exact 7": asyncio.create_task(job.wait_for(7)),
                "at least 7": asyncio.create_task(job.wait_for_at_least(7)),
                "exact 9": asyncio.create_task(job.wait_for(9)),
                "at least 8": asyncio.create_task(job.wait_for_at_least(8)),
                "exact 12": asyncio.create_task(job.wait_for(12)),
            }
            await steps()
            finished: list[str] = []

            def record(task: asyncio.Task[Any]) -> None:
                finished.extend(label for label, wait in waits.items() if wait is task)

            for wait in waits.values():
                wait.add_done_callback(record)
            moves = [("f", state) for state in range(1, 11)]
            self.missed(redis_server, "counter", moves, max_log=3)
            outcomes: dict[str, object] = {}
            for label, wait in waits.items():
                if label == "exact 12":
                    continue
                try:
                    outcomes[label] = await bounded(wait)
                except HistoryLost as exc:
                    outcomes[label] = str(exc).split(" of ")[0]
            assert outcomes == {
                "exact 5": "7 transitions",
                "at least 3": "7 transitions",
                "exact 7": None,
                "at least 7": 7,
                "exact 9": None,
                "at least 8": 8,
            }
            await steps()  # the done callbacks of the tasks found done
            # The waits it ended, in the order they started (FIFO), then the
            # ones the log decided, in the order of their transitions.
            assert finished == [
                "exact 5",
                "at least 3",
                "exact 7",
                "at least 7",
                "at least 8",
                "exact 9",
            ]
            with pytest.raises(HistoryLost, match="trimmed from its log"):
                await bounded(anext(states))
            assert job.state == 10
            assert job.seq == 10
            assert job.statistics().waiters == 1  # exact 12
            with pytest.raises(OrderedStateSkipped):
                await bounded(job.wait_for(9))  # passed: the mirror knows it
            # From then on it follows the server.
            assert not waits["exact 12"].done()
            await job.advance(12)
            await bounded(waits["exact 12"])
        await untyped(client).aclose()

    async def test_trimmed_transitions_are_counted_and_logged(
        self, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The error and the warning say how many transitions were lost.

        The web hub has followed 2 transitions; the server makes 6 more
        (states 3 to 8) and keeps the last 2, so transitions 3 to 6, four of
        them, are lost to it.
        """
        client = redis_server.client()
        async with RedisStateMachines(client, max_log=2) as web:
            job = await web.open("counted", 0)
            await job.advance(1)
            await job.advance(2)
            wait = asyncio.create_task(job.wait_for(4))
            await steps()
            moves = [("f", state) for state in range(3, 9)]
            with caplog.at_level(logging.WARNING, "ordered_statemachine.redis"):
                self.missed(redis_server, "counted", moves, max_log=2)
                trimmed = (
                    "4 transitions of 'counted' were trimmed from its log "
                    "before this process read them (max_log=2)"
                )
                with pytest.raises(HistoryLost, match=f"^{re.escape(trimmed)}$"):
                    await bounded(wait)
            assert [record.getMessage() for record in caplog.records] == [
                f"{trimmed}; the waits it decided are ended"
            ]
            assert job.state == 8
        await untyped(client).aclose()

    async def test_rewind_in_the_trimmed_window_decides_nothing(
        self, redis_server: RedisServer
    ) -> None:
        """With a rewind among the transitions lost, every pending wait: HistoryLost.

        The states entered no longer increase, so even the oldest entry's
        previous state says nothing about what was entered before it.
        """
        client = redis_server.client()
        async with RedisStateMachines(client, max_log=3) as web:
            job = await web.open("rewound", 0)
            waits = [
                asyncio.create_task(job.wait_for(8)),
                asyncio.create_task(job.wait_for_at_least(20)),
            ]
            await steps()
            moves = [("f", 9), ("r", 1), ("f", 2), ("f", 7), ("f", 8), ("f", 9)]
            self.missed(redis_server, "rewound", moves, max_log=3)
            for wait in waits:
                with pytest.raises(HistoryLost, match="a rewind among them"):
                    await bounded(wait)
            assert job.state == 9
        await untyped(client).aclose()

    async def test_catch_up_read_older_than_own_advances(
        self, redis_server: RedisServer
    ) -> None:
        """A catch-up whose reply is older than the advances followed since: no error.

        The hub's pub/sub connection is killed, so it resubscribes and reads
        the log (at seq 0); that reply reaches the hub only after three of its
        own advances, whose replies it followed at once. The reply is stale,
        not a server that lost transitions: the pending wait is not ended.
        """
        client, arrived, release = late_sync_client(redis_server)
        killer = redis_server.client()
        async with RedisStateMachines(client) as hub:
            job = await hub.open("stale", 0)
            later = asyncio.create_task(job.wait_for(5))
            release.clear()
            await untyped(killer).execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            await bounded(arrived.wait())  # the server ran the read at seq 0
            for state in (1, 2, 3):
                await job.advance(state)
            assert job.seq == 3
            release.set()
            await steps(5)
            await job.advance(5)
            await bounded(later)
            assert job.seq == 4
        await untyped(killer).aclose()
        await untyped(client).aclose()

    async def test_concurrent_opens_wait_for_the_first(
        self, hubs: list[RedisStateMachines]
    ) -> None:
        """Two tasks opening one name at once both get it followed, in its state."""
        hub, other = hubs
        await (await other.open("job:opened", Job.QUEUED)).advance(Job.RUNNING)

        async def open_and_look() -> Job:
            # The state at once, as soon as open returns.
            return (await hub.open("job:opened", Job.QUEUED)).state

        states = await bounded(asyncio.gather(open_and_look(), open_and_look()))
        assert list(states) == [Job.RUNNING, Job.RUNNING]
        # A failed open fails the one that waited for it, too.
        await untyped(hub.client).set("osm:{job:foreign}", "not a machine")
        outcomes = await bounded(
            asyncio.gather(
                hub.open("job:foreign", Job.QUEUED),
                hub.open("job:foreign", Job.QUEUED),
                return_exceptions=True,
            )
        )
        assert [type(outcome) for outcome in outcomes] == [CorruptState] * 2

    async def test_key_overwritten_by_something_else(
        self, hubs: list[RedisStateMachines]
    ) -> None:
        """A key overwritten with another type: CorruptState, not WRONGTYPE."""
        hub, _ = hubs
        job = await hub.open("job:overwritten", Job.QUEUED)
        await untyped(hub.client).set("osm:{job:overwritten}", "not a machine")
        with pytest.raises(CorruptState, match="holds something other"):
            await job.advance(Job.RUNNING)
        with pytest.raises(CorruptState, match="holds something other"):
            await job.read()
        await untyped(hub.client).delete("osm:{job:overwritten}")
        await untyped(hub.client).hset(
            "osm:{job:overwritten}", "owner", "another library"
        )
        with pytest.raises(CorruptState, match="holds something other"):
            await job.rewind(Job.QUEUED)
        assert job.state is Job.QUEUED

    async def test_machine_created_again_gives_state_regressed(
        self, hubs: list[RedisStateMachines]
    ) -> None:
        """A machine deleted and created again is another history: StateRegressed."""
        worker, web = hubs
        job_w = await worker.open("job:9", Job.QUEUED)
        job_v = await web.open("job:9", Job.QUEUED)
        await job_w.advance(Job.RUNNING)
        await bounded(job_v.wait_for(Job.RUNNING))
        pending = asyncio.create_task(job_v.wait_for(Job.DONE))
        await steps()
        await untyped(worker.client).delete("osm:{job:9}", "osm:{job:9}:log")
        async with RedisStateMachines(worker.client) as third:
            recreated = await third.open("job:9", Job.QUEUED)
            await recreated.advance(Job.RUNNING)
            await recreated.advance(Job.DONE)
        with pytest.raises(StateRegressed, match="deleted and created again"):
            await bounded(pending)

    async def test_expiry(self, hubs: list[RedisStateMachines]) -> None:
        """A finished lifecycle expires, all of its keys, and later moves keep it."""
        hub, _ = hubs
        job = await hub.open("job:10", Job.QUEUED)
        await job.advance(Job.DONE, cause=RuntimeError("finished"))
        assert await job.expire(60) is True
        for key in ("osm:{job:10}", "osm:{job:10}:log", "osm:{job:10}:causes"):
            assert 0 < await untyped(hub.client).ttl(key) <= 60, key
        await job.rewind(Job.QUEUED)
        assert 0 < await untyped(hub.client).ttl("osm:{job:10}:log") <= 60
