"""The ordering protocol that state types must satisfy, and the type variables."""

from __future__ import annotations

from typing import Any, Protocol

from typing_extensions import TypeVar


class SupportsLessThan(Protocol):
    """A type whose values can be compared with ``<``.

    This is the static half of the ordering contract: `OrderedStateMachine`
    accepts any type that defines ``__lt__`` (``int``, ``float``, ``str``,
    tuples, `enum.IntEnum`, `OrderedEnum`-style enums, user classes), and type
    checkers reject types that do not (a plain `enum.Enum`, ``object``). The
    runtime half is the sanity check in `OrderedStateMachine` and the rule that
    the states of one machine form a total order.
    """

    # ``Any`` as in typeshed's ``SupportsDunderLT``: ``int.__lt__`` takes an
    # ``int``, so a narrower parameter type would reject every real state type.
    def __lt__(self, other: Any, /) -> bool: ...  # noqa: ANN401


StateT = TypeVar("StateT", bound=SupportsLessThan)
"""The state type of a machine (invariant: the state is read and written)."""

StateT_co = TypeVar("StateT_co", covariant=True, default=object)
"""The state type carried by an exception (covariant: it is only read)."""
