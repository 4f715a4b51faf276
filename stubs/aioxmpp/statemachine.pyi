# Stubs for aioxmpp.statemachine 0.13.3, which ships no type information.
import asyncio
from typing import Any, Generic, Protocol, TypeVar

class _SupportsLessThan(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...  # noqa: ANN401

_S = TypeVar("_S", bound=_SupportsLessThan)

class OrderedStateSkipped(ValueError):
    skipped_state: object
    def __init__(self, skipped_state: object) -> None: ...

class OrderedStateMachine(Generic[_S]):
    loop: asyncio.AbstractEventLoop
    def __init__(
        self,
        initial_state: _S,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None: ...
    @property
    def state(self) -> _S: ...
    @state.setter
    def state(self, new_state: _S) -> None: ...
    def rewind(self, new_state: _S) -> None: ...
    async def wait_for(self, new_state: _S) -> None: ...
    # Returns None: unlike ordered_statemachine, aioxmpp does not say which
    # state satisfied the wait.
    async def wait_for_at_least(self, new_state: _S) -> None: ...
