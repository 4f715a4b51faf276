"""A worker process runs jobs; a web process awaits them, through Redis.

Each job's lifecycle is a ``RedisOrderedStateMachine`` over an
``OrderedEnum``: QUEUED -> RUNNING -> DONE, or QUEUED -> REFUSED, with the
reason as the cause. The web process (this one) opens the jobs, starts the
worker process, prints every state of each job as it happens (``states()``)
and awaits DONE (``wait_for(Job.DONE)``); a refused job's cause, raised in
the worker, reaches it as the ``RemoteCause`` of its ``OrderedStateSkipped``.
No polling, no message the two exchange besides the machines.

Run it with ``python examples/redis_jobs.py``: it starts its own redis-server
(Debian's ``redis-server`` on PATH) on a free port of 127.0.0.1 in a
temporary folder, and stops it; or give ``--port`` of a server of yours on
127.0.0.1. It exits 0 when both jobs end as expected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING

import redis.asyncio

from ordered_statemachine import OrderedEnum, OrderedStateSkipped
from ordered_statemachine.redis import (
    RedisOrderedStateMachine,
    RedisStateMachines,
    RemoteCause,
)

if TYPE_CHECKING:
    from collections.abc import Generator

TIMEOUT = 10.0  # no job of this program should take more than a moment


class Job(OrderedEnum):
    """A job's lifecycle, in order; stored in Redis by name."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    REFUSED = "refused"


class QuotaExceeded(Exception):
    """The worker's reason to refuse a job."""


async def worker(port: int) -> None:
    """Be the worker process: run job 1 to DONE, refuse job 2."""
    client = redis.asyncio.Redis(host="127.0.0.1", port=port)
    async with RedisStateMachines(client, prefix="example") as machines:
        job = await machines.open("job:1", Job.QUEUED)
        await job.advance(Job.RUNNING)
        await asyncio.sleep(0.05)  # the work
        await job.advance(Job.DONE)
        await job.expire(3600)  # finished: gone in an hour

        job = await machines.open("job:2", Job.QUEUED)
        try:
            reason = "tenant 7 is over its quota"
            raise QuotaExceeded(reason)  # noqa: TRY301 (raised to have a traceback)
        except QuotaExceeded as exc:
            await job.advance(Job.REFUSED, cause=exc)
    await client.aclose()


async def follow(job: RedisOrderedStateMachine[Job]) -> None:
    """Print every state of ``job`` until it ends."""
    async with job.states() as states:
        async for state in states:
            print(f"  {job.name} is {state.value}", flush=True)
            if state >= Job.DONE:
                return


async def await_done(job: RedisOrderedStateMachine[Job]) -> None:
    """Wait for ``job`` to be DONE; say why if it never will be."""
    try:
        await job.wait_for(Job.DONE)
    except OrderedStateSkipped as exc:
        cause = exc.__cause__
        assert isinstance(cause, RemoteCause)
        print(f"  {job.name} will never be done: {cause}", flush=True)
    else:
        print(f"  {job.name} has been done", flush=True)


async def web(port: int) -> None:
    """Be the web process: open the jobs, start the worker, follow and await them."""
    client = redis.asyncio.Redis(host="127.0.0.1", port=port)
    async with RedisStateMachines(client, prefix="example") as machines:
        jobs = [await machines.open(f"job:{i}", Job.QUEUED) for i in (1, 2)]
        followers = [asyncio.create_task(follow(job)) for job in jobs]
        waits = [asyncio.create_task(await_done(job)) for job in jobs]
        # Subscribed before the worker starts, but that is not needed: a
        # process that opens a job later still sees its state and history.
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--worker", "--port", str(port)
        )
        await asyncio.wait_for(process.wait(), TIMEOUT)
        await asyncio.wait_for(asyncio.gather(*followers, *waits), TIMEOUT)
        assert process.returncode == 0
    await client.aclose()


@contextlib.contextmanager
def redis_server() -> Generator[int, None, None]:
    """Start redis-server on a free port of 127.0.0.1; yield the port; stop it."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("needs redis-server on PATH (Debian: apt-get install redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        server = subprocess.Popen(  # noqa: S603 (redis-server, found on PATH)
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + TIMEOUT
            while True:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=0.1),
                ):
                    break
                if time.monotonic() > deadline:
                    sys.exit("redis-server did not start")
                time.sleep(0.02)
            print(f"redis-server on 127.0.0.1:{port}", flush=True)
            yield port
        finally:
            server.terminate()
            server.wait(TIMEOUT)


def main() -> None:
    """Run the web side (and the worker in a process of its own)."""
    parser = argparse.ArgumentParser(
        description="A worker process runs jobs; a web process awaits them."
    )
    parser.add_argument("--port", type=int, help="a redis-server on 127.0.0.1")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(args.port))
    elif args.port is not None:
        asyncio.run(web(args.port))
    else:
        with redis_server() as port:
            asyncio.run(web(port))


if __name__ == "__main__":
    main()
