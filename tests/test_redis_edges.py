"""Machines stored in Redis: bad input, introspection, a server changed behind them.

Every test starts its own redis-server (tests/redis_servers.py). Where a test
writes the machine's keys by hand, it stands for another program (or an
operator) writing them; the hub must say what it cannot follow, never guess.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import subprocess
import sys
from typing import TYPE_CHECKING, Any, TypeAlias

import pytest

from helpers import TIMEOUT, bounded, steps
from ordered_statemachine import OrderedEnum, OrderedStateMachine, OrderedStateSkipped
from redis_servers import free_port, late_sync_client, untyped

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from redis_servers import RedisServer

pytest.importorskip("redis.asyncio")

import redis.asyncio
import redis.exceptions

from ordered_statemachine.redis import (
    CorruptState,
    HistoryLost,
    RedisMachineError,
    RedisStateMachines,
    RemoteCause,
    StateRegressed,
)

Raw: TypeAlias = Any
"""A redis-py client used for its commands, whose declared replies are unions."""


class Job(OrderedEnum):
    """A job's lifecycle."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@pytest.fixture
async def hub(redis_server: RedisServer) -> AsyncIterator[RedisStateMachines]:
    """A hub on its own client of the server."""
    async with RedisStateMachines(redis_server.client()) as machines:
        yield machines


@pytest.fixture
def raw(redis_server: RedisServer) -> Raw:
    """A plain client: another program writing the machine's keys."""
    return untyped(redis_server.client())


def entry(seq: int, prev: int, state: int, chain: str = "bogus") -> str:
    """A log entry as the scripts write it, for an int machine."""
    return json.dumps(
        [seq, "f", str(prev), str(prev), str(state), str(state), "", chain, 0]
    )


async def nudge(raw: Raw, name: str, seq: int) -> None:
    """Publish an entry far ahead, so the hub reads the log (a catch-up)."""
    await raw.publish(f"osm:{{{name}}}", entry(seq + 100, 0, 1))


class TestPackaging:
    """The extra is optional: the core never imports it; without it, a clear error."""

    def test_core_imports_no_redis(self) -> None:
        """``import ordered_statemachine`` loads neither redis-py nor the extra."""
        code = (
            "import sys, ordered_statemachine; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis' "
            "or m.startswith('ordered_statemachine.redis')))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert out.strip() == "[]"

    def test_without_redis_py_the_error_says_what_to_install(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Importing the extra without redis-py names the pip command."""
        for module in list(sys.modules):
            if module.startswith("ordered_statemachine.redis"):
                monkeypatch.delitem(sys.modules, module)
            elif module.split(".")[0] == "redis":
                monkeypatch.setitem(sys.modules, module, None)  # not installed
        monkeypatch.setitem(sys.modules, "redis", None)
        with pytest.raises(ModuleNotFoundError, match=r"ordered-statemachine\[redis\]"):
            importlib.import_module("ordered_statemachine.redis")


class TestIntrospection:
    """What a hub and a machine show, and what a closed hub does."""

    async def test_repr_properties_and_closing(self, redis_server: RedisServer) -> None:
        """Reprs name prefix and machine; a closed hub refuses; closing twice is ok."""
        client = redis_server.client()
        machines = RedisStateMachines(client, prefix="app", max_log=50, max_causes=5)
        assert (machines.client, machines.prefix) == (client, "app")
        assert (machines.max_log, machines.max_causes) == (50, 5)
        assert repr(machines) == (
            "<ordered_statemachine.redis.RedisStateMachines 'app' following 0>"
        )
        job = await machines.open("job:1", Job.QUEUED)
        assert await client.exists("app:{job:1}") == 1
        waiting = asyncio.create_task(job.wait_for(Job.DONE))
        await steps()
        assert job.name == "job:1"
        assert job.statistics().waiters == 1
        assert repr(job) == (
            "<ordered_statemachine.redis.RedisOrderedStateMachine 'job:1' "
            f"state={Job.QUEUED!r} waiters=1>"
        )
        assert "following 1" in repr(machines)
        await machines.aclose()
        with pytest.raises(RedisMachineError, match="is closed"):
            await bounded(waiting)
        assert repr(machines).endswith("'app' closed>")
        with pytest.raises(RedisMachineError, match="is closed"):
            _ = job.state
        with pytest.raises(RedisMachineError, match="is closed"):
            await machines.open("job:2", Job.QUEUED)
        await machines.aclose()  # closing twice does nothing

    async def test_closing_while_an_open_is_under_way(
        self, redis_server: RedisServer
    ) -> None:
        """An open that the hub's closing overtakes fails; it does not hang."""
        machines = RedisStateMachines(redis_server.client())
        opening = asyncio.create_task(machines.open("job:3", Job.QUEUED))
        await steps()
        await machines.aclose()
        with pytest.raises((RedisMachineError, redis.exceptions.ConnectionError)):
            await bounded(opening)

    async def test_opens_at_once_share_one_pubsub_connection(
        self,
        hub: RedisStateMachines,
        raw: Raw,
    ) -> None:
        """Machines opened all at once on a hub not yet connected: one pub/sub.

        Fewer than the client's pool allows at once (redis-py's default is
        100 connections): each open's commands take one while they run.
        """
        opened = await bounded(
            asyncio.gather(*(hub.open(f"many:{i}", i) for i in range(80)))
        )
        assert [machine.state for machine in opened] == list(range(80))
        listed: list[dict[str, str]] = await raw.client_list()
        assert sum("P" in entry["flags"] for entry in listed) == 1

    async def test_cancelled_open_fails_the_open_waiting_for_it(
        self, redis_server: RedisServer
    ) -> None:
        """A second open of a name waits for the first; cancelling that one fails it."""
        client, arrived, release = late_sync_client(redis_server)
        try:
            async with RedisStateMachines(client) as machines:
                release.clear()
                first = asyncio.create_task(machines.open("job:4", Job.QUEUED))
                await bounded(arrived.wait())  # the first is reading the log
                second = asyncio.create_task(machines.open("job:4", Job.QUEUED))
                await steps()
                first.cancel()
                with pytest.raises(RedisMachineError, match="was cancelled"):
                    await bounded(second)
                assert first.cancelled()
                release.set()
                # Nothing of the failed open is left: opening again works.
                assert (await machines.open("job:4", Job.QUEUED)).state is Job.QUEUED
        finally:
            await untyped(client).aclose()


class TestBadInput:
    """Bad arguments get a clear error and change nothing."""

    async def test_constructor_refuses(self, redis_server: RedisServer) -> None:
        """Braces in the prefix, empty bounds, a client without pub/sub."""
        client = redis_server.client()
        with pytest.raises(ValueError, match="must not contain braces"):
            RedisStateMachines(client, prefix="a{b}")
        with pytest.raises(ValueError, match="at least 1"):
            RedisStateMachines(client, max_log=0)
        with pytest.raises(ValueError, match="at least 1"):
            RedisStateMachines(client, max_causes=0)
        with pytest.raises(TypeError, match="has no pub/sub"):
            RedisStateMachines(untyped(object()))

    async def test_open_refuses(self, hub: RedisStateMachines) -> None:
        """Braces in a name, a state no codec fits, a second codec for one name."""
        with pytest.raises(ValueError, match="must not contain braces"):
            await hub.open("job:{5}", Job.QUEUED)
        with pytest.raises(TypeError, match="no codec for float states"):
            await hub.open("job:5", untyped(1.5))
        await hub.open("job:5", Job.QUEUED)
        with pytest.raises(
            TypeError,
            match=r"is open with the codec enum:test_redis_edges.Job, not int",
        ):
            await hub.open("job:5", 0)

    async def test_states_of_another_type_change_nothing(
        self, hub: RedisStateMachines
    ) -> None:
        """A state the codec cannot encode: TypeError, on the server nothing moved."""
        job = await hub.open("job:6", Job.QUEUED)
        with pytest.raises(TypeError, match="is not a member of Job"):
            await job.advance(untyped("running"))
        word = await hub.open("word", "b")
        with pytest.raises(TypeError, match="StrCodec encodes str states, not int"):
            await word.advance(untyped(3))
        assert (job.state, await job.read()) == (Job.QUEUED, Job.QUEUED)
        assert (word.state, await word.read(), word.seq) == ("b", "b", 0)

    @pytest.mark.parametrize(
        "seconds", [0, -1, float("nan"), float("inf"), True, 10**12, 1e12]
    )
    async def test_expiry_must_be_a_positive_number(
        self, hub: RedisStateMachines, raw: Raw, seconds: float
    ) -> None:
        """An expiry that would delete the machine at once, or never: ValueError."""
        job = await hub.open("job:7", Job.QUEUED)
        with pytest.raises(ValueError, match="positive number of seconds"):
            await job.expire(seconds)
        assert await raw.pttl("osm:{job:7}") == -1  # no expiry given
        assert await job.expire(1.5) is True
        assert 1_000 < await raw.pttl("osm:{job:7}") <= 1_500

    async def test_expiry_below_a_second_and_the_longest(
        self, hub: RedisStateMachines, raw: Raw
    ) -> None:
        """Any positive number of seconds below 10**12 is an expiry, in milliseconds."""
        job = await hub.open("job:9", Job.QUEUED)
        assert await job.expire(0.5) is True
        assert 0 < await raw.pttl("osm:{job:9}") <= 500
        assert await job.expire(10**12 - 1) is True
        longest = (10**12 - 1) * 1_000
        assert longest - 1_000_000 < await raw.pttl("osm:{job:9}") <= longest


class TestServerChanged:
    """Keys changed by something else: the hub reports it, and keeps following."""

    async def test_deleted_machine(self, hub: RedisStateMachines, raw: Raw) -> None:
        """Reading or moving a deleted machine: HistoryLost; so do its waits."""
        job = await hub.open("gone", 0)
        waiting = asyncio.create_task(job.wait_for(3))
        await steps()
        await raw.delete("osm:{gone}", "osm:{gone}:log")
        with pytest.raises(HistoryLost, match="no longer exists"):
            await job.read()
        with pytest.raises(HistoryLost, match="no longer exists"):
            await job.advance(1)
        await nudge(raw, "gone", job.seq)
        with pytest.raises(HistoryLost, match="no longer exists"):
            await bounded(waiting)

    async def test_overwritten_machine_ends_the_waits(
        self,
        hub: RedisStateMachines,
        raw: Raw,
    ) -> None:
        """A key overwritten with a string: the waits get CorruptState."""
        job = await hub.open("overwritten", 0)
        waiting = asyncio.create_task(job.wait_for_at_least(3))
        await steps()
        await raw.set("osm:{overwritten}", "something else")
        await nudge(raw, "overwritten", job.seq)
        with pytest.raises(CorruptState, match="holds something other"):
            await bounded(waiting)

    async def test_other_server_errors_pass_through(
        self,
        hub: RedisStateMachines,
        redis_server: RedisServer,
        raw: Raw,
    ) -> None:
        """An error of the server's other than a wrong type is raised as it is."""
        await hub.open("acl", 0)
        await raw.execute_command(
            "ACL", "SETUSER", "reader", "on", "nopass", "~*", "&*", "+@all"
        )
        limited = redis.asyncio.Redis(
            host="127.0.0.1", port=redis_server.port, username="reader", password=""
        )
        redis_server.clients.append(limited)
        async with RedisStateMachines(limited) as other:
            machine = await other.open("acl", 0)
            await raw.execute_command("ACL", "SETUSER", "reader", "-hmget")
            with pytest.raises(redis.exceptions.NoPermissionError):
                await machine.read()

    async def test_catch_up_that_fails_is_logged_and_retried(
        self,
        hub: RedisStateMachines,
        redis_server: RedisServer,
        raw: Raw,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A catch-up the server refuses is logged; the next notification continues."""
        await raw.execute_command(
            "ACL", "SETUSER", "worker", "on", "nopass", "~*", "&*", "+@all"
        )
        limited = redis.asyncio.Redis(
            host="127.0.0.1", port=redis_server.port, username="worker", password=""
        )
        redis_server.clients.append(limited)
        async with RedisStateMachines(limited) as web:
            job = await web.open("refused", 0)
            waiting = asyncio.create_task(job.wait_for(1))
            await steps()
            await raw.execute_command("ACL", "SETUSER", "worker", "-evalsha", "-eval")
            with caplog.at_level(logging.WARNING, "ordered_statemachine.redis"):
                await nudge(raw, "refused", job.seq)
                for _ in range(200):
                    if "could not catch up" in caplog.text:
                        break
                    await asyncio.sleep(0.01)
            assert "could not catch up with 'refused'" in caplog.text
            assert not waiting.done()
            await raw.execute_command("ACL", "SETUSER", "worker", "+@all")
            await (await hub.open("refused", 0)).advance(1)
            await bounded(waiting)

    async def test_corrupt_fields_and_causes(
        self,
        hub: RedisStateMachines,
        raw: Raw,
    ) -> None:
        """Stored fields or causes this library does not write: CorruptState."""
        await hub.open("bad-seq", 0)
        await raw.hset("osm:{bad-seq}", "seq", "many")
        async with RedisStateMachines(raw) as other:
            with pytest.raises(CorruptState, match="stored machine is not what"):
                await other.open("bad-seq", 0)
        await hub.open("bad-cause", 0)
        await raw.rpush("osm:{bad-cause}:causes", json.dumps(["0", "0", "1", "1", "{"]))
        async with RedisStateMachines(raw) as other:
            with pytest.raises(CorruptState, match="a recorded cause is not what"):
                await other.open("bad-cause", 0)
        word = await hub.open("bad-rank", "a")
        await raw.hset("osm:{bad-rank}", "rank", "z")
        with pytest.raises(CorruptState, match="has another rank"):
            await word.read()

    async def test_garbage_published_ends_the_waits(
        self,
        hub: RedisStateMachines,
        raw: Raw,
    ) -> None:
        """A notification that is not an entry: CorruptState; the machine goes on."""
        job = await hub.open("noise", 0)
        waiting = asyncio.create_task(job.wait_for(2))
        await steps()
        await raw.publish("osm:{noise}", "not an entry")
        with pytest.raises(CorruptState, match="a log entry is not what"):
            await bounded(waiting)
        later = asyncio.create_task(job.wait_for(2))
        await steps()
        await job.advance(2)
        await bounded(later)

    async def test_late_copy_of_an_old_transition_is_ignored(
        self,
        hub: RedisStateMachines,
        raw: Raw,
    ) -> None:
        """A copy of a transition older than those remembered changes nothing."""
        job = await hub.open("old", 0)
        for state in range(1, 21):
            await job.advance(state)
        waiting = asyncio.create_task(job.wait_for(21))
        first = await raw.xrange("osm:{old}:log", "1-0", "1-0")
        await raw.publish("osm:{old}", first[0][1][b"e"])
        await steps(5)
        assert (job.state, job.seq, waiting.done()) == (20, 20, False)
        await job.advance(21)
        await bounded(waiting)

    @pytest.mark.parametrize(
        "change",
        ["next entry of another chain", "logged entry rewritten", "chain rewritten"],
    )
    async def test_another_history_is_state_regressed(
        self,
        hub: RedisStateMachines,
        raw: Raw,
        change: str,
    ) -> None:
        """A log or state that does not continue the history seen: StateRegressed."""
        job = await hub.open("forked", 0)
        await job.advance(1)
        waiting = asyncio.create_task(job.wait_for(5))
        await steps()
        if change == "next entry of another chain":
            forged = entry(2, 1, 2)
            await raw.xadd("osm:{forked}:log", {"e": forged}, id="2-0")
            await raw.hset("osm:{forked}", mapping={"seq": 2, "rank": 2, "text": 2})
            await raw.publish("osm:{forked}", forged)
        elif change == "logged entry rewritten":
            await raw.delete("osm:{forked}:log")
            await raw.xadd("osm:{forked}:log", {"e": entry(1, 0, 1)}, id="1-0")
            await nudge(raw, "forked", job.seq)
        else:
            await raw.hset("osm:{forked}", "chain", "bogus")
            await nudge(raw, "forked", job.seq)
        with pytest.raises(StateRegressed, match="differs from the one seen"):
            await bounded(waiting)

    async def test_log_gone_is_history_lost(
        self,
        hub: RedisStateMachines,
        raw: Raw,
    ) -> None:
        """A log deleted by hand while the state moved on: HistoryLost."""
        job = await hub.open("unlogged", 0)
        waiting = asyncio.create_task(job.wait_for(5))
        await steps()
        await raw.hincrby("osm:{unlogged}", "seq", 1)
        await raw.delete("osm:{unlogged}:log")
        await nudge(raw, "unlogged", job.seq)
        with pytest.raises(HistoryLost, match="the log of 'unlogged' is gone"):
            await bounded(waiting)

    async def test_trimmed_window_starting_lower_is_state_regressed(
        self,
        hub: RedisStateMachines,
        raw: Raw,
    ) -> None:
        """The oldest entry left starts below the state seen, with no rewind: a loss."""
        job = await hub.open("lower", 0)
        await job.advance(5)
        waiting = asyncio.create_task(job.wait_for_at_least(9))
        await steps()
        await raw.delete("osm:{lower}:log")
        await raw.xadd("osm:{lower}:log", {"e": entry(4, 3, 6)}, id="4-0")
        await raw.hset("osm:{lower}", mapping={"seq": 4, "rank": 6, "text": 6})
        await nudge(raw, "lower", job.seq)
        with pytest.raises(
            StateRegressed, match="moved back to 3 from 5 with no rewind"
        ):
            await bounded(waiting)


class TestFollowing:
    """Corners of following the log that the contract tests do not reach."""

    async def test_kept_causes_reach_a_process_that_opens_later(
        self, redis_server: RedisServer
    ) -> None:
        """Opened after the fact, a process chains each passed state to its cause.

        Compared with the local machine given the same transitions.
        """
        local = OrderedStateMachine(0)
        async with RedisStateMachines(redis_server.client()) as worker:
            job = await worker.open("causes", 0)
            for state, why in [(2, "a"), (5, None), (7, "b"), (9, None)]:
                error = None if why is None else ValueError(why)
                await job.advance(state, cause=error)
                local.advance(state, cause=error)
        async with RedisStateMachines(redis_server.client()) as web:
            view = await web.open("causes", 0)
            seen: dict[int, str | None] = {}
            expected: dict[int, str | None] = {}
            for target in (1, 3, 6, 8):
                with pytest.raises(OrderedStateSkipped) as remote:
                    await bounded(view.wait_for(target))
                cause = remote.value.__cause__
                assert cause is None or isinstance(cause, RemoteCause)
                seen[target] = None if cause is None else cause.message
                with pytest.raises(OrderedStateSkipped) as there:
                    await bounded(local.wait_for(target))
                mine = there.value.__cause__
                expected[target] = None if mine is None else str(mine)
        assert seen == expected == {1: "a", 3: None, 6: "b", 8: None}

    async def test_own_advance_after_missed_notifications(
        self, redis_server: RedisServer
    ) -> None:
        """An advance whose reply is ahead of what was followed reads the log first."""
        async with (
            RedisStateMachines(redis_server.client()) as web,
            RedisStateMachines(redis_server.client()) as worker,
        ):
            view = await web.open("behind", 0)
            job = await worker.open("behind", 0)
            entered = asyncio.create_task(view.wait_for(1))
            await steps()
            await untyped(redis_server.client()).execute_command(
                "CLIENT", "KILL", "TYPE", "pubsub"
            )
            await job.advance(1)
            await view.advance(2)
            assert (view.state, view.seq) == (2, 2)
            await bounded(entered)

    async def test_reader_error_resubscribes_and_goes_on(
        self,
        hub: RedisStateMachines,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A pub/sub read that fails is logged; the hub resubscribes, loses nothing."""
        job = await hub.open("flaky", 0)
        # redis-py's PubSub, whose methods it leaves partly untyped.
        pubsub_class = untyped(importlib.import_module("redis.asyncio.client")).PubSub
        real = pubsub_class.get_message
        failures = [redis.exceptions.ConnectionError("injected")]

        async def failing_once(self: object, *args: object, **kwargs: object) -> object:
            if failures:
                raise failures.pop()
            return await real(self, *args, **kwargs)

        entered = asyncio.create_task(job.wait_for(1))
        await steps()
        with caplog.at_level(logging.WARNING, "ordered_statemachine.redis"):
            monkeypatch.setattr(pubsub_class, "get_message", failing_once)
            # The reader is parked in a read: a transition lets it read again.
            async with RedisStateMachines(hub.client) as other:
                await (await other.open("flaky", 0)).advance(1)
                await bounded(entered)
                assert not failures
                await (await other.open("flaky", 0)).advance(2)
                await bounded(job.wait_for(2))
        assert "pub/sub connection lost; resubscribing" in caplog.text

    async def test_a_cluster_client_that_cannot_connect(self) -> None:
        """A first open that cannot reach the cluster fails, and leaves nothing."""
        cluster = redis.asyncio.RedisCluster(
            host="127.0.0.1", port=free_port(), socket_connect_timeout=TIMEOUT
        )
        try:
            async with RedisStateMachines(cluster) as machines:
                for _ in range(2):
                    with pytest.raises(
                        (
                            redis.exceptions.RedisError,
                            redis.exceptions.RedisClusterException,
                        )
                    ):
                        await machines.open("job", 0)
                assert "following 0" in repr(machines)
        finally:
            await cluster.aclose()
