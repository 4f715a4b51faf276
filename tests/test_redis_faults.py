"""Faults on a real server: nothing that returned is lost, nothing wrong is said.

Each test narrates its fault: which hub does what, when the server dies or
pauses, what it comes back with.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import pytest

from helpers import TIMEOUT, bounded, steps
from ordered_statemachine import OrderedEnum

if TYPE_CHECKING:
    from collections.abc import Callable

pytest.importorskip("redis.asyncio")
import redis.asyncio as redis_asyncio
import redis.exceptions

from ordered_statemachine.redis import (
    RedisStateMachines,
    StateRegressed,
)
from redis_servers import RedisServer, untyped


class Job(OrderedEnum):
    """A job's lifecycle."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


def client_of(server: RedisServer) -> redis_asyncio.Redis:
    """A client of ``server`` that gives up on connecting after a second."""
    return server.client()


async def until_reachable(client: redis_asyncio.Redis) -> None:
    """Wait until the server answers again."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        with contextlib.suppress(redis.exceptions.ConnectionError):
            await untyped(client).ping()
            return
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)


class TestServerDies:
    """kill -9 and a restart."""

    async def test_waiters_survive_a_restart(
        self, start_redis: Callable[..., RedisServer]
    ) -> None:
        """Durable transitions (appendfsync always) reach waiters after a restart.

        The worker moves the job to RUNNING; the server is killed; an advance
        during the outage raises a clear error; after the restart the same
        advance, retried, succeeds; the web hub's waits and subscriber, which
        waited through it all, see every state.
        """
        server = start_redis(appendonly=True)
        worker_client, web_client = client_of(server), client_of(server)
        try:
            async with (
                RedisStateMachines(worker_client) as worker,
                RedisStateMachines(web_client) as web,
            ):
                job_w = await worker.open("job", Job.QUEUED)
                job_v = await web.open("job", Job.QUEUED)
                seen: list[Job] = []

                async def watch() -> None:
                    async for state in job_v.states():
                        seen.append(state)
                        if state is Job.DONE:
                            return

                waits: list[asyncio.Task[object]] = [
                    asyncio.create_task(job_v.wait_for(Job.RUNNING)),
                    asyncio.create_task(job_v.wait_for(Job.DONE)),
                    asyncio.create_task(job_v.wait_for_at_least(Job.DONE)),
                    asyncio.create_task(watch()),
                ]
                await steps()
                await job_w.advance(Job.RUNNING)
                server.kill()
                with pytest.raises(redis.exceptions.ConnectionError):
                    await job_w.advance(Job.DONE)
                server.start()
                await until_reachable(worker_client)
                await job_w.advance(Job.DONE)  # the retry
                results = await asyncio.wait_for(asyncio.gather(*waits), 3 * TIMEOUT)
                assert results == [None, None, Job.DONE, None]
                assert seen == [Job.QUEUED, Job.RUNNING, Job.DONE]
                assert await job_v.read() is Job.DONE
        finally:
            await untyped(worker_client).aclose()
            await untyped(web_client).aclose()
            server.stop()

    async def test_older_state_after_a_restart_is_reported(
        self, start_redis: Callable[..., RedisServer]
    ) -> None:
        """A server that comes back older than what was seen: StateRegressed.

        With snapshots only, the server is saved at state 1, moves to 3 (the
        web hub sees it), is killed, and comes back at 1: acknowledged
        transitions were lost. The pending wait says so instead of guessing,
        and the machine then follows the server.
        """
        server = start_redis(appendonly=False)
        worker_client, web_client = client_of(server), client_of(server)
        try:
            async with (
                RedisStateMachines(worker_client) as worker,
                RedisStateMachines(web_client) as web,
            ):
                job_w = await worker.open("counter", 0)
                job_v = await web.open("counter", 0)
                await job_w.advance(1)
                await untyped(worker_client).save()
                await job_w.advance(2)
                await job_w.advance(3)
                assert await bounded(job_v.wait_for_at_least(3)) == 3
                pending = asyncio.create_task(job_v.wait_for(10))
                await steps()
                server.kill()
                server.start()
                with pytest.raises(StateRegressed, match="saw transition 3"):
                    await asyncio.wait_for(pending, 3 * TIMEOUT)
                assert await bounded(job_v.wait_for_at_least(1)) == 1
                assert job_v.state == 1
        finally:
            await untyped(worker_client).aclose()
            await untyped(web_client).aclose()
            server.stop()


class TestServerPauses:
    """CLIENT PAUSE and DEBUG SLEEP only delay."""

    @pytest.mark.parametrize("how", ["CLIENT PAUSE", "DEBUG SLEEP"])
    async def test_a_paused_server_only_delays(
        self, start_redis: Callable[..., RedisServer], how: str
    ) -> None:
        """An advance made while the server is paused completes after the pause."""
        server = start_redis()
        clients = [client_of(server) for _ in range(3)]
        try:
            async with (
                RedisStateMachines(clients[0]) as worker,
                RedisStateMachines(clients[1]) as web,
            ):
                job_w = await worker.open("job", Job.QUEUED)
                job_v = await web.open("job", Job.QUEUED)
                done = asyncio.create_task(job_v.wait_for(Job.DONE))
                await steps()
                if how == "CLIENT PAUSE":
                    await untyped(clients[2]).execute_command(
                        "CLIENT", "PAUSE", 300, "WRITE"
                    )
                    await job_w.advance(Job.DONE)
                else:
                    sleeping = asyncio.create_task(
                        untyped(clients[2]).execute_command("DEBUG", "SLEEP", 0.3)
                    )
                    # The sleep is written to its socket before the advance is;
                    # the server reads sockets in its own order, so the
                    # advance usually waits behind the sleep, and the test
                    # holds whichever it reads first.
                    await steps()
                    await job_w.advance(Job.DONE)
                    await sleeping
                await bounded(done)
        finally:
            for client in clients:
                await untyped(client).aclose()
            server.stop()


async def heard_on(pubsub: object) -> bool:
    """Whether ``pubsub`` delivers a message (it waits until one comes)."""
    async for message in untyped(pubsub).listen():
        if message["type"] == "message":
            return True
    return False


class TestLostWakeUps:
    """The same race, for a hand-rolled pub/sub waiter and for ours."""

    async def test_hand_rolled_loses_ours_does_not(
        self, start_redis: Callable[..., RedisServer]
    ) -> None:
        """A publish between the hand-rolled waiter's read and its subscribe is lost.

        The usual code reads the state, finds it not yet DONE, and subscribes
        to hear of the change; the change lands in between (here, on cue,
        every time), and its notification goes to nobody: the waiter hangs
        until its timeout. Our waiter, given the same cue, sees it.
        """
        server = start_redis()
        client = client_of(server)
        rounds, hand_rolled_lost, ours_lost = 20, 0, 0
        try:
            for round_ in range(rounds):
                key, channel = f"naive:{round_}", f"naive:{round_}:changed"
                await client.set(key, "queued")
                between, changed = asyncio.Event(), asyncio.Event()

                async def hand_rolled() -> bool:
                    if (await client.get(key)) == b"done":  # noqa: B023
                        return True
                    between.set()  # noqa: B023
                    # Any await lets the change in: a log line, a pool
                    # checkout. Here it is the cue, so the change always lands.
                    await changed.wait()  # noqa: B023
                    pubsub = untyped(client).pubsub()
                    await pubsub.subscribe(channel)  # noqa: B023
                    try:
                        return await asyncio.wait_for(heard_on(pubsub), 0.3)
                    except asyncio.TimeoutError:
                        return False
                    finally:
                        await pubsub.aclose()

                async def change() -> None:
                    await between.wait()  # noqa: B023
                    await client.set(key, "done")  # noqa: B023
                    await untyped(client).publish(channel, "done")  # noqa: B023
                    changed.set()  # noqa: B023

                heard, _ = await asyncio.gather(hand_rolled(), change())
                hand_rolled_lost += not heard

            async with (
                RedisStateMachines(client) as worker,
                RedisStateMachines(client_of(server)) as web,
            ):
                for round_ in range(rounds):
                    job_w = await worker.open(f"ours:{round_}", Job.QUEUED)
                    job_v = await web.open(f"ours:{round_}", Job.QUEUED)
                    waiting = asyncio.create_task(job_v.wait_for(Job.DONE))
                    await steps()  # registered, as the hand-rolled one read
                    await job_w.advance(Job.DONE)
                    try:
                        await asyncio.wait_for(waiting, TIMEOUT)
                    except asyncio.TimeoutError:
                        ours_lost += 1
                await untyped(web.client).aclose()
        finally:
            await untyped(client).aclose()
            server.stop()
        print(  # noqa: T201 (docs/redis.md quotes it; pytest -rP shows it)
            f"lost wake-ups in {rounds} rounds: hand-rolled {hand_rolled_lost}, "
            f"ours {ours_lost}"
        )
        assert hand_rolled_lost == rounds
        assert ours_lost == 0
