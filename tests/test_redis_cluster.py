"""Scale-out: machines spread over a local Redis Cluster of three masters.

The cluster is three real redis-server processes (tests/redis_servers.py),
started once for this module; its slots are assigned by ``redis-cli
--cluster create``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import pytest

from helpers import bounded, steps
from ordered_statemachine import OrderedEnum, OrderedStateSkipped

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

pytest.importorskip("redis.asyncio")

import redis.asyncio
import redis.asyncio.cluster

from ordered_statemachine.redis import (
    RedisOrderedStateMachine,
    RedisStateMachines,
    RemoteCause,
)
from redis_servers import RedisServer, start_cluster, untyped

MACHINES = 1_000


class Job(OrderedEnum):
    """A job's lifecycle."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    REFUSED = "refused"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    """Three masters, every slot assigned, stopped after the module."""
    servers = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def cluster_client(
    servers: list[RedisServer], name: str
) -> redis.asyncio.cluster.RedisCluster:
    """A cluster client that knows one node, with ``name`` on its connections."""
    return redis.asyncio.cluster.RedisCluster(
        host="127.0.0.1", port=servers[0].port, client_name=name
    )


async def per_node(
    servers: list[RedisServer], name: str, prefix: str
) -> list[tuple[int, int, int]]:
    """Each node's keys under ``prefix``, connections named ``name``, pub/subs."""
    counts: list[tuple[int, int, int]] = []
    for server in servers:
        client = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
        listed: list[dict[str, str]] = await untyped(client).client_list()
        named = [entry for entry in listed if entry.get("name") == name]
        subscribers = sum(1 for entry in named if "P" in entry.get("flags", ""))
        keys = len([k async for k in untyped(client).scan_iter(f"{prefix}:*")])
        counts.append((keys, len(named), subscribers))
        await untyped(client).aclose()
    return counts


@pytest.fixture
async def clients(
    cluster: list[RedisServer],
) -> AsyncIterator[Callable[[str], redis.asyncio.cluster.RedisCluster]]:
    """Make cluster clients (``clients(name)``), closed after the test."""
    made: list[redis.asyncio.cluster.RedisCluster] = []

    def make(name: str) -> redis.asyncio.cluster.RedisCluster:
        made.append(cluster_client(cluster, name))
        return made[-1]

    try:
        yield make
    finally:
        # Even on a failure: a connection left open hangs uvloop's close.
        for client in made:
            await client.aclose()


async def test_a_machines_keys_share_a_slot(
    clients: Callable[[str], redis.asyncio.cluster.RedisCluster],
) -> None:
    """The state, log and causes of a machine live in one slot (its hash tag)."""
    client = clients("slots")
    async with RedisStateMachines(client) as hub:
        await client.delete("osm:{job:slot}", "osm:{job:slot}:log")
        job = await hub.open("job:slot", Job.QUEUED)
        await job.advance(Job.RUNNING, cause=RuntimeError("started"))
        keys = ["osm:{job:slot}", "osm:{job:slot}:log", "osm:{job:slot}:causes"]
        assert len({client.keyslot(key) for key in keys}) == 1
        assert all([await client.exists(key) for key in keys])


async def test_one_process_watches_a_thousand_machines(
    cluster: list[RedisServer],
    clients: Callable[[str], redis.asyncio.cluster.RedisCluster],
) -> None:
    """A thousand machines over three masters, watched with one connection per node.

    The watcher opens every machine and awaits each one's RUNNING-or-later
    and its DONE, exactly; a worker runs them all to DONE, but refuses every
    tenth with a cause (straight to REFUSED, past DONE). Every wait resolves
    with the right outcome, the machines are spread over every node, and the
    watcher holds one pub/sub connection and a command connection or two per
    node, not one per machine.
    """
    watcher_client, worker_client = clients("watcher"), clients("worker")
    prefix = f"osm-{uuid.uuid4().hex}"  # the module's cluster is shared
    async with (
        RedisStateMachines(watcher_client, prefix=prefix) as watcher,
        RedisStateMachines(worker_client, prefix=prefix) as worker,
    ):
        watched = [await watcher.open(f"job:{i}", Job.QUEUED) for i in range(MACHINES)]

        async def outcome(job: RedisOrderedStateMachine[Job]) -> tuple[Job, str]:
            started = await job.wait_for_at_least(Job.RUNNING)
            try:
                await job.wait_for(Job.DONE)
            except OrderedStateSkipped as exc:
                cause = exc.__cause__
                return started, cause.message if isinstance(
                    cause, RemoteCause
                ) else repr(cause)
            return started, "done"

        waits = [asyncio.create_task(outcome(job)) for job in watched]
        await steps()
        for i in range(MACHINES):
            job = await worker.open(f"job:{i}", Job.QUEUED)
            if i % 10 == 0:
                await job.advance(Job.REFUSED, cause=RuntimeError(f"job {i} refused"))
            else:
                await job.advance(Job.RUNNING)
                await job.advance(Job.DONE)
        results = await bounded(asyncio.gather(*waits))
        assert results == [
            (Job.REFUSED, f"job {i} refused") if i % 10 == 0 else (Job.RUNNING, "done")
            for i in range(MACHINES)
        ]
        nodes = await per_node(cluster, "watcher", prefix)
        assert all(keys > 0 for keys, _, _ in nodes), nodes
        # One pub/sub connection; the command connections are the client's
        # pool, per node: one, or two when commands overlap.
        assert sum(pubsub for _, _, pubsub in nodes) == 1, nodes
        assert all(named - pubsub <= 2 for _, named, pubsub in nodes), nodes


async def test_opens_at_once_on_a_new_hub_share_one_pubsub(
    cluster: list[RedisServer],
    clients: Callable[[str], redis.asyncio.cluster.RedisCluster],
) -> None:
    """Many machines opened at once, before the hub has connected: one pub/sub."""
    prefix = f"osm-{uuid.uuid4().hex}"
    async with RedisStateMachines(clients("eager"), prefix=prefix) as hub:
        opened = await bounded(
            asyncio.gather(*(hub.open(f"job:{i}", Job.QUEUED) for i in range(60)))
        )
        assert [job.state for job in opened] == [Job.QUEUED] * 60
        nodes = await per_node(cluster, "eager", prefix)
        assert sum(pubsub for _, _, pubsub in nodes) == 1, nodes
