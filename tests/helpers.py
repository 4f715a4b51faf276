"""Helpers for stepping the event loop deterministically in tests."""

from __future__ import annotations

import asyncio
import enum
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable

T = TypeVar("T")

TIMEOUT = 5.0
"""Upper bound for any wait in a test: only a bug makes a wait reach it."""


class Conn(enum.IntEnum):
    """The lifecycle used throughout the tests."""

    READY = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


async def steps(n: int = 1) -> None:
    """Let the event loop run ``n`` iterations."""
    for _ in range(n):
        await asyncio.sleep(0)


async def bounded(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``, failing after `TIMEOUT` seconds instead of hanging."""
    return await asyncio.wait_for(awaitable, TIMEOUT)


class OnlyLtEq:
    """A state type that defines ``<`` and ``==`` and refuses every other comparison."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    def __lt__(self, other: OnlyLtEq) -> bool:
        return self.value < other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OnlyLtEq) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"OnlyLtEq({self.value})"

    def __gt__(self, other: OnlyLtEq) -> bool:
        raise _refused()

    def __le__(self, other: OnlyLtEq) -> bool:
        raise _refused()

    def __ge__(self, other: OnlyLtEq) -> bool:
        raise _refused()

    def __ne__(self, other: object) -> bool:
        raise _refused()


def _refused() -> AssertionError:
    return AssertionError("the machine must only use < and ==")
