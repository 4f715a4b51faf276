"""Shared configuration: event loops, hypothesis profiles, asyncio's log.

Every async test runs twice, on asyncio's default event loop and on uvloop
(where it is installed), through pytest-asyncio's loop-factories hook.

Every test fails if asyncio logs an error while it runs: asyncio reports
"Task was destroyed but it is pending", "Future exception was never
retrieved" and exceptions in callbacks through its logger, not as warnings,
so ``filterwarnings = error`` does not catch them. The autouse fixture below
does, after a garbage collection that makes them appear.
"""

from __future__ import annotations

import gc
import logging
import os
import re
from typing import TYPE_CHECKING

import hypothesis
import pytest

from helpers import LOOP_FACTORIES
from redis_servers import RedisServer

if TYPE_CHECKING:
    import asyncio
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

hypothesis.settings.register_profile("dev", max_examples=100, deadline=None)
hypothesis.settings.register_profile(
    "ci", max_examples=300, deadline=None, print_blob=True
)
# Mutation testing (tools/mutation.py): a failing example is enough to kill a
# mutant, so hypothesis does not shrink it.
hypothesis.settings.register_profile(
    "mutation",
    max_examples=100,
    deadline=None,
    phases=[
        hypothesis.Phase.explicit,
        hypothesis.Phase.reuse,
        hypothesis.Phase.generate,
    ],
)
# The documented long run of the model-based tests (docs/reliability.md): 100,000
# examples, or as many as HYPOTHESIS_LONG_EXAMPLES says.
hypothesis.settings.register_profile(
    "long",
    max_examples=int(os.environ.get("HYPOTHESIS_LONG_EXAMPLES", "100000")),
    deadline=None,
    print_blob=True,
)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_asyncio_loop_factories(
    config: pytest.Config,  # noqa: ARG001 (the hook's signature)
    item: pytest.Item,  # noqa: ARG001
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run every async test on each event loop implementation available."""
    return dict(LOOP_FACTORIES)


# Debug mode also logs callbacks slower than 100 ms: a matter of timing on a
# shared, busy machine, not of correctness.
_SLOW_CALLBACK = re.compile(r"^Executing .* took \d+\.\d+ seconds$", re.DOTALL)


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not _SLOW_CALLBACK.match(record.getMessage()):
            self.records.append(record)


@pytest.fixture(autouse=True)
def no_asyncio_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if asyncio logged a warning or an error during it.

    A test marked ``asyncio_log(prefix, ...)`` provokes the logs that start
    with one of the prefixes on purpose: those, and only those, are allowed.
    """
    marker = request.node.get_closest_marker("asyncio_log")
    allowed: tuple[str, ...] = marker.args if marker is not None else ()
    recorder = _Recorder()
    logger = logging.getLogger("asyncio")
    logger.addHandler(recorder)
    try:
        yield
        gc.collect()
    finally:
        logger.removeHandler(recorder)
    messages = [record.getMessage() for record in recorder.records]
    unexpected = [message for message in messages if not message.startswith(allowed)]
    assert not unexpected, f"asyncio logged: {unexpected}"


@pytest.fixture
async def start_redis(tmp_path: Path) -> AsyncIterator[Callable[..., RedisServer]]:
    """Start redis-servers on 127.0.0.1: ``start_redis(appendonly=..., save=...)``.

    The options are `RedisServer`'s. Each server's clients are closed and the
    server stopped after the test, whatever its outcome.
    """
    made: list[RedisServer] = []

    def start(*, appendonly: bool = False, save: str = "") -> RedisServer:
        directory = tmp_path / f"redis{len(made)}"
        server = RedisServer(directory, appendonly=appendonly, save=save)
        made.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in made:
            try:
                await server.aclose_clients()
            finally:
                server.stop()


@pytest.fixture
def redis_server(start_redis: Callable[..., RedisServer]) -> RedisServer:
    """A fresh redis-server on 127.0.0.1 (persistence off), stopped after the test."""
    return start_redis()
