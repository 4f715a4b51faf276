"""Await milestones of a state that only moves forward.

`OrderedStateMachine` holds a state from a totally ordered type. Assigning its
``state`` moves it forward only; coroutines wait for an exact state
(`OrderedStateMachine.wait_for`) or for a state at least as far
(`OrderedStateMachine.wait_for_at_least`).
"""

from __future__ import annotations

from importlib.metadata import version as _version

from ._enum import OrderedEnum
from ._exceptions import OrderedStateSkipped
from ._machine import MachineStatistics, OrderedStateMachine
from ._subscription import StateSubscription
from ._threadsafe import ThreadSafeOrderedStateMachine
from ._typing import SupportsLessThan

__all__ = [
    "MachineStatistics",
    "OrderedEnum",
    "OrderedStateMachine",
    "OrderedStateSkipped",
    "StateSubscription",
    "SupportsLessThan",
    "ThreadSafeOrderedStateMachine",
    "__version__",
]

__version__: str = _version("ordered-statemachine")
