"""How states cross the wire: a text to show and a rank the server compares."""

from __future__ import annotations

import enum
import re
from typing import Final, Generic, Literal, Protocol, TypeAlias, cast

from typing_extensions import TypeVar

from ordered_statemachine._enum import OrderedEnum
from ordered_statemachine._typing import SupportsLessThan
from ordered_statemachine.redis._errors import CorruptState

RankKind: TypeAlias = Literal["int", "str"]
"""How the server compares ranks: as integers, or as strings (byte by byte)."""

S = TypeVar("S", bound=SupportsLessThan)
E = TypeVar("E", bound=enum.Enum)

MAX_TEXT: Final = 1_000
"""The longest state text (characters): states are names, not payloads."""
_INTEGER: Final = re.compile(r"-?(0|[1-9][0-9]{0,99})")
"""A canonical decimal integer of at most 100 digits."""


class StateCodec(Protocol[S]):
    """Turns states into (rank, text) pairs and back.

    The server orders states by rank alone: the codec must give ``a < b``
    exactly when the rank of ``a`` is less than the rank of ``b`` (as
    integers for ``rank_kind == "int"``, given as canonical decimal strings;
    byte by byte in UTF-8 for ``"str"``). ``text`` is what is stored and shown.
    ``name`` identifies the codec and its state type; a machine stored by one
    codec is never read by another.
    """

    @property
    def name(self) -> str:
        """What the codec and its state type are called, stored with the machine."""
        ...

    @property
    def rank_kind(self) -> RankKind:
        """How the server compares ranks."""
        ...

    def encode(self, state: S) -> tuple[str, str]:
        """Return ``(rank, text)`` for ``state``; ValueError if it has none."""
        ...

    def decode(self, rank: str, text: str) -> S:
        """Return the state stored as ``(rank, text)``; CorruptState if none is."""
        ...


def _checked_text(text: str) -> str:
    if len(text) > MAX_TEXT:
        msg = f"a state's text is at most {MAX_TEXT} characters, not {len(text)}"
        raise ValueError(msg)
    return text


class EnumCodec(Generic[E]):
    """States that are members of an `OrderedEnum` or an `enum.IntEnum`.

    A member is stored by its name, ranked by its position (`OrderedEnum`) or
    its value (`enum.IntEnum`). Decoding checks both, so a member renamed,
    removed or reordered since it was stored is reported (`CorruptState`),
    never read as another member.
    """

    def __init__(self, enum_type: type[E]) -> None:
        """Encode members of ``enum_type``, an `OrderedEnum` or an `enum.IntEnum`.

        Raises:
            TypeError: ``enum_type`` is neither.

        """
        if not issubclass(enum_type, (OrderedEnum, enum.IntEnum)):
            msg = (
                f"EnumCodec needs an OrderedEnum or an IntEnum, not "
                f"{enum_type.__qualname__}; write a StateCodec for other types"
            )
            raise TypeError(msg)
        self._type = enum_type
        self._name = f"enum:{enum_type.__module__}.{enum_type.__qualname__}"
        # Iteration gives the canonical members in definition order, the
        # order of OrderedEnum (aliases are their canonical member).
        by_position = issubclass(enum_type, OrderedEnum)
        self._ranks: dict[E, str] = {}
        for position, member in enumerate(enum_type):
            self._ranks[member] = str(position if by_position else member.value)

    @property
    def name(self) -> str:
        """``enum:<module>.<qualified name of the enum>``."""
        return self._name

    @property
    def rank_kind(self) -> RankKind:
        """Integers: positions or values."""
        return "int"

    def encode(self, state: E) -> tuple[str, str]:
        """Return ``(rank, name)`` of the member ``state``."""
        if not isinstance(state, self._type):
            msg = f"{state!r} is not a member of {self._type.__qualname__}"
            raise TypeError(msg)
        return self._ranks[state], state.name

    def decode(self, rank: str, text: str) -> E:
        """Return the member named ``text``, if its rank is ``rank``."""
        member = self._type.__members__.get(text)
        if member is None or self._ranks[member] != rank:
            msg = (
                f"the stored state {text!r} (rank {rank}) is not a member of "
                f"{self._type.__qualname__} as it is defined now"
            )
            raise CorruptState(msg)
        return member


class IntCodec:
    """States that are ``int``: ranked by value, up to 100 digits."""

    @property
    def name(self) -> str:
        """``int``."""
        return "int"

    @property
    def rank_kind(self) -> RankKind:
        """Integers."""
        return "int"

    def encode(self, state: int) -> tuple[str, str]:
        """Return ``(rank, text)``: both the decimal ``state``."""
        if type(state) is not int:
            msg = f"IntCodec encodes int states, not {type(state).__name__}"
            raise TypeError(msg)
        text = str(state)
        # As many digits as decode accepts (a sign is not a digit).
        if len(text) - (state < 0) > 100:
            msg = f"an int state has at most 100 digits, not {len(text) - (state < 0)}"
            raise ValueError(msg)
        return text, text

    def decode(self, rank: str, text: str) -> int:
        """Return the int stored as decimal ``text`` (and ``rank``)."""
        if rank != text or not _INTEGER.fullmatch(text):
            msg = f"the stored state {text!r} (rank {rank!r}) is not an int"
            raise CorruptState(msg)
        return int(text)


class StrCodec:
    """States that are ``str``: ranked as text, up to `MAX_TEXT` characters."""

    @property
    def name(self) -> str:
        """``str``."""
        return "str"

    @property
    def rank_kind(self) -> RankKind:
        """Strings: compared byte by byte in UTF-8, which orders as ``str`` does."""
        return "str"

    def encode(self, state: str) -> tuple[str, str]:
        """Return ``(rank, text)``: both ``state``."""
        if type(state) is not str:
            msg = f"StrCodec encodes str states, not {type(state).__name__}"
            raise TypeError(msg)
        state.encode()  # a lone surrogate has no UTF-8, hence no rank
        return _checked_text(state), state

    def decode(self, rank: str, text: str) -> str:
        """Return the str stored as ``text`` (and ``rank``)."""
        if rank != text:
            msg = f"the stored state {text!r} has another rank, {rank!r}"
            raise CorruptState(msg)
        return text


def codec_for(state: S) -> StateCodec[S]:
    """Return the codec for states of ``state``'s type; TypeError if none fits."""
    codec: object
    if isinstance(state, (OrderedEnum, enum.IntEnum)):
        codec = EnumCodec(type(state))
    elif type(state) is int:
        codec = IntCodec()
    elif type(state) is str:
        codec = StrCodec()
    else:
        msg = (
            f"no codec for {type(state).__qualname__} states: use an OrderedEnum, "
            "an IntEnum, int or str, or pass codec= (a StateCodec)"
        )
        raise TypeError(msg)
    # Chosen by the state's own type, so it encodes S.
    return cast("StateCodec[S]", codec)
