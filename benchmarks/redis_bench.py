"""Machines stored in Redis, measured on loopback against what people use today.

Usage::

    python benchmarks/redis_bench.py                 # about a minute
    python benchmarks/redis_bench.py --smoke         # small counts: proves it runs
    python benchmarks/redis_bench.py --out DIR       # where redis.json and redis.md go

Starts its own redis-server (Debian's ``redis-server`` on PATH, persistence
off) on a free port of 127.0.0.1 in a temporary folder, and stops it. A
harness of its own, not pyperf: hand-off latencies are a distribution
(p50, p99) of single events across two processes, which pyperf's loop
timings cannot express. Every figure comes from this one run.

- ``PING`` round trip: one redis-py client awaiting ``PING``, one at a time.
- Cross-process hand-off: this process moves a state to ``i``; a waiter in
  another OS process resumes; the latency is from just before the move to
  just after the waiter resumes, on the system-wide monotonic clock both
  processes read (``time.perf_counter_ns``: CLOCK_MONOTONIC on Linux). The
  waiter then acknowledges, and the next move waits for that, so moves
  never overlap. Three waiters: ours (``wait_for(i)`` on a
  `RedisOrderedStateMachine`), the hand-rolled pub/sub one (``SET`` and
  ``PUBLISH`` in one transaction; the waiter subscribed first), and a poller
  reading the key every 0.5 s, arq's interval, each move made at a random
  moment of its period (fewer rounds: each takes up to half a second).
- Advances per second from one process, one at a time, against plain
  ``SET`` calls from the same client.
- Memory per watched key in a process (tracemalloc, over machines opened
  and followed by one hub), and on the server (``MEMORY USAGE`` of a
  machine's keys after ten transitions).

Targets: hand-off p50 at most 3 times the ``PING`` round trip's p50;
advances per second at least half the ``SET``s per second. Exits 1 if one
is missed (not in ``--smoke``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import redis
import redis.asyncio

from ordered_statemachine.redis import RedisStateMachines

if TYPE_CHECKING:
    from collections.abc import Generator

HERE = Path(__file__).resolve().parent
POLL_INTERVAL = 0.5
"""arq's interval between reads of a job's status."""


def _client(port: int) -> Any:  # noqa: ANN401 (redis-py's replies are unions)
    return cast("Any", redis.asyncio.Redis(host="127.0.0.1", port=port))


@contextlib.contextmanager
def redis_server() -> Generator[int, None, None]:
    """Start a redis-server on a free port of 127.0.0.1; yield the port; stop it."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not on PATH (Debian: apt-get install redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            [
                binary,
                *("--port", str(port), "--bind", "127.0.0.1", "--dir", directory),
                *("--save", "", "--appendonly", "no", "--loglevel", "warning"),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=0.1),
                ):
                    break
                if time.monotonic() > deadline:
                    sys.exit("redis-server did not start")
                time.sleep(0.02)
            yield port
        finally:
            process.terminate()
            process.wait(10)


def percentile(values: list[float], fraction: float) -> float:
    """Return the ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# --- the waiting process -----------------------------------------------------


async def waiter(port: int, impl: str, rounds: int) -> None:
    """Be the other process: resume on each state 1..rounds, stamp it, acknowledge."""
    client = _client(port)
    stamps: list[int] = []
    try:
        if impl == "ours":
            async with RedisStateMachines(client, prefix="bench") as hub:
                job = await hub.open("handoff", 0)
                ack = await hub.open("ack", 0)
                _say("READY")
                for i in range(1, rounds + 1):
                    await job.wait_for(i)
                    stamps.append(time.perf_counter_ns())
                    await ack.advance(i)
        else:
            pubsub = client.pubsub()
            await pubsub.subscribe("handoff")
            await pubsub.get_message(timeout=5)  # the confirmation
            _say("READY")
            for i in range(1, rounds + 1):
                if impl == "pubsub":
                    while True:
                        message = await pubsub.get_message(timeout=None)
                        if message is not None and int(message["data"]) == i:
                            break
                else:
                    # What a poller does (arq's job.result()): read, sleep, read.
                    while int(await client.get("handoff") or 0) < i:  # noqa: ASYNC110
                        await asyncio.sleep(POLL_INTERVAL)
                stamps.append(time.perf_counter_ns())
                await client.publish("ack", i)
            await pubsub.aclose()
        _say(json.dumps(stamps))
    finally:
        await client.aclose()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# --- the measuring process ---------------------------------------------------


async def ping(port: int, count: int) -> list[float]:
    """Round trips of PING, in seconds."""
    client = _client(port)
    try:
        await client.ping()
        times: list[float] = []
        for _ in range(count):
            start = time.perf_counter()
            await client.ping()
            times.append(time.perf_counter() - start)
        return times
    finally:
        await client.aclose()


async def handoff(port: int, impl: str, rounds: int) -> list[float]:
    """Hand-off latencies to a waiter in another process, in seconds."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--waiter",
        impl,
        "--port",
        str(port),
        "--rounds",
        str(rounds),
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    client = _client(port)
    starts: list[int] = []
    rng = random.Random(rounds)  # noqa: S311 (when to move, not a secret)
    try:
        await client.delete("handoff", "bench:{handoff}", "bench:{ack}")
        await client.delete("bench:{handoff}:log", "bench:{ack}:log")
        if impl == "ours":
            async with RedisStateMachines(client, prefix="bench") as hub:
                job = await hub.open("handoff", 0)
                ack = await hub.open("ack", 0)
                assert await asyncio.wait_for(child.stdout.readline(), 30) == b"READY\n"
                for i in range(1, rounds + 1):
                    starts.append(time.perf_counter_ns())
                    await job.advance(i)
                    await asyncio.wait_for(ack.wait_for(i), 30)
        else:
            pubsub = client.pubsub()
            await pubsub.subscribe("ack")
            await pubsub.get_message(timeout=5)
            assert await asyncio.wait_for(child.stdout.readline(), 30) == b"READY\n"
            for i in range(1, rounds + 1):
                if impl == "poll":
                    # At a random moment of the poller's period, as events come.
                    await asyncio.sleep(rng.uniform(0, POLL_INTERVAL))
                starts.append(time.perf_counter_ns())
                if impl == "pubsub":
                    async with client.pipeline(transaction=True) as pipe:
                        pipe.set("handoff", i)
                        pipe.publish("handoff", i)
                        await pipe.execute()
                else:
                    await client.set("handoff", i)
                while True:
                    message = await asyncio.wait_for(
                        pubsub.get_message(timeout=None), 30
                    )
                    if message is not None and int(message["data"]) == i:
                        break
            await pubsub.aclose()
        out, _ = await asyncio.wait_for(child.communicate(), 30)
        stamps: list[int] = json.loads(out.splitlines()[-1])
    finally:
        await client.aclose()
        if child.returncode is None:
            child.kill()
            await child.wait()
    return [(end - start) / 1e9 for start, end in zip(starts, stamps, strict=True)]


async def throughput(port: int, count: int) -> dict[str, float]:
    """Advances per second and SETs per second, one at a time, one client."""
    client = _client(port)
    rates: dict[str, float] = {}
    try:
        async with RedisStateMachines(client, prefix="rate") as hub:
            machine = await hub.open("counter", 0)
            await machine.advance(1)  # the script registered, the pool warm
            await client.set("plain", 1)
            for impl in ("set", "advance", "set", "advance"):  # interleaved
                start = time.perf_counter()
                for i in range(2, count + 2):
                    if impl == "set":
                        await client.set("plain", i)
                    else:
                        await machine.advance(machine.state + 1)
                rate = count / (time.perf_counter() - start)
                rates[impl] = max(rates.get(impl, 0.0), rate)
    finally:
        await client.aclose()
    return rates


async def memory(port: int, count: int) -> dict[str, float]:
    """Bytes per watched key in this process; bytes per machine on the server."""
    client = _client(port)
    try:
        async with RedisStateMachines(client, prefix="mem") as hub:
            await hub.open("warm", 0)
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.take_snapshot()
            machines = [await hub.open(f"m{i}", 0) for i in range(count)]
            gc.collect()
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
            per_key = grown / count
            for state in range(1, 11):
                await machines[0].advance(state)
            server = 0
            for key in ("mem:{m0}", "mem:{m0}:log", "mem:{m0}:causes"):
                server += int(await client.memory_usage(key) or 0)
            listed: list[dict[str, str]] = await client.client_list()
            pubsub = sum("P" in entry["flags"] for entry in listed)
    finally:
        await client.aclose()
    return {
        "process_bytes_per_key": per_key,
        "server_bytes_per_machine": server,
        "machines": count + 1,
        "pubsub_connections": pubsub,
        "command_connections": len(listed) - pubsub,
    }


async def measure(port: int, *, smoke: bool) -> dict[str, Any]:
    """Every figure, in one run."""
    rounds, poll_rounds = (20, 3) if smoke else (2_000, 20)
    results: dict[str, Any] = {"ping": await ping(port, 100 if smoke else 5_000)}
    for impl in ("ours", "pubsub"):
        results[f"handoff_{impl}"] = await handoff(port, impl, rounds)
    results["handoff_poll"] = await handoff(port, "poll", poll_rounds)
    results["rates"] = await throughput(port, 200 if smoke else 5_000)
    results["memory"] = await memory(port, 100 if smoke else 2_000)
    return results


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs" if seconds < 0.01 else f"{seconds * 1e3:,.0f} ms"


def table(results: dict[str, Any]) -> tuple[str, bool]:
    """Return the Markdown table of the results, and whether every target is met."""
    ping_p50 = percentile(results["ping"], 0.5)
    lines = [
        "| figure | p50 | p99 | rounds | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
        (
            f"| redis-py `PING` round trip | {_us(ping_p50)} | "
            f"{_us(percentile(results['ping'], 0.99))} | "
            f"{len(results['ping']):,} | | | |"
        ),
    ]
    met = True
    labels = {
        "ours": "hand-off, ours (`wait_for` in another process)",
        "pubsub": "hand-off, hand-rolled pub/sub waiter",
        "poll": f"hand-off, poller every {POLL_INTERVAL} s (arq)",
    }
    for impl, label in labels.items():
        values: list[float] = results[f"handoff_{impl}"]
        p50 = percentile(values, 0.5)
        ratio, target, ok = f"p50 / PING p50: {p50 / ping_p50:.2f}", "", ""
        if impl == "ours":
            target, ok = "≤ 3", "yes" if p50 <= 3 * ping_p50 else "**no**"
            met = met and p50 <= 3 * ping_p50
        lines.append(
            f"| {label} | {_us(p50)} | {_us(percentile(values, 0.99))} | "
            f"{len(values):,} | {ratio} | {target} | {ok} |"
        )
    rates = results["rates"]
    ratio = rates["advance"] / rates["set"]
    met = met and ratio >= 0.5
    lines.append(
        f"| advances per second, one process (`SET`s: {rates['set']:,.0f}/s) | "
        f"{rates['advance']:,.0f}/s | | | advances / SETs: {ratio:.2f} | ≥ 0.5 | "
        f"{'yes' if ratio >= 0.5 else '**no**'} |"
    )
    mem = results["memory"]
    lines.append(
        f"| memory per watched key: in the process / on the server "
        f"(after 10 transitions) | {mem['process_bytes_per_key']:,.0f} B / "
        f"{mem['server_bytes_per_machine']:,} B | | | | | |"
    )
    lines.append(
        f"| connections of the process following {mem['machines']:,} machines "
        f"(the server's count) | {mem['pubsub_connections']} pub/sub + "
        f"{mem['command_connections']} command | | | | | |"
    )
    return "\n".join(lines) + "\n", met


def main() -> int:
    """Measure, print and write the table; 1 if a target is missed."""
    parser = argparse.ArgumentParser(
        description="Measure machines stored in Redis against what people use today."
    )
    parser.add_argument("--smoke", action="store_true", help="prove it runs, quickly")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="directory")
    parser.add_argument("--waiter", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.waiter is not None:
        asyncio.run(waiter(args.port, args.waiter, args.rounds))
        return 0
    smoke: bool = args.smoke
    with redis_server() as port:
        results = asyncio.run(measure(port, smoke=smoke))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "redis.json").write_text(json.dumps(results))
    text, met = table(results)
    text = (
        f"Python {platform.python_version()}, redis-py {redis.__version__}, "
        f"{platform.machine()}, {platform.system()}, loopback"
        f"{' (smoke run: small counts, not figures)' if smoke else ''}\n\n{text}"
    )
    (out / "redis.md").write_text(text)
    print(text)
    return 0 if smoke or met else 1


if __name__ == "__main__":
    sys.exit(main())
