"""`OrderedEnum`: an enum whose members are ordered by definition."""

from __future__ import annotations

import enum
from typing import Any

from typing_extensions import Self


class _OrderedEnumType(enum.EnumMeta):
    """Give each member its rank (its position among the canonical members)."""

    def __new__(
        metacls,
        cls: str,
        bases: tuple[type, ...],
        classdict: Any,  # noqa: ANN401 (enum._EnumDict, private in typeshed)
        **kwds: Any,  # noqa: ANN401
    ) -> _OrderedEnumType:
        enum_class = super().__new__(metacls, cls, bases, classdict, **kwds)
        # The data type Enum found among the bases (``object`` if none);
        # typeshed does not declare this attribute of enum classes.
        member_type: type = getattr(enum_class, "_member_type_")  # noqa: B009
        if member_type is not object:
            msg = (
                f"{cls}: an OrderedEnum cannot mix in a data type "
                f"({member_type.__name__}): members compare by definition "
                "order only"
            )
            raise TypeError(msg)
        for rank, name in enumerate(enum_class._member_names_):
            # Members are frozen against rebinding by Enum, not against new
            # attributes; aliases are the canonical member itself.
            object.__setattr__(enum_class[name], "_rank_", rank)
        return enum_class


class OrderedEnum(enum.Enum, metaclass=_OrderedEnumType):
    """An `enum.Enum` whose members are ordered by their definition order.

    Values can be anything (``"open"`` for logs and wire formats, `enum.auto`)
    since they play no part in the order. Members compare only with members
    of the same enum: ``<``, ``<=``, ``>`` and ``>=`` with anything else
    (another enum, an ``int``, a string) raise `TypeError`, unlike `enum.IntEnum`,
    which compares with every int and every other ``IntEnum``. Equality is
    identity and members stay hashable, as for every enum. Aliases rank as the
    member they alias. Works with `enum.unique` and pickles like any enum.

    Data-type mixins (``class E(str, OrderedEnum)``) are rejected with
    `TypeError`: the mixin's comparisons would replace the definition order.

    ::

        class Conn(OrderedEnum):
            CONNECTING = "connecting"
            OPEN = "open"
            CLOSED = "closed"

        assert Conn.CONNECTING < Conn.OPEN < Conn.CLOSED
    """

    _rank_: int

    def __lt__(self, other: Self) -> bool:
        """Whether ``self`` is defined before ``other`` (same enum only)."""
        if self.__class__ is other.__class__:
            return self._rank_ < other._rank_
        return NotImplemented

    def __le__(self, other: Self) -> bool:
        """Whether ``self`` is ``other`` or defined before it (same enum only)."""
        if self.__class__ is other.__class__:
            return self._rank_ <= other._rank_
        return NotImplemented

    def __gt__(self, other: Self) -> bool:
        """Whether ``self`` is defined after ``other`` (same enum only)."""
        if self.__class__ is other.__class__:
            return self._rank_ > other._rank_
        return NotImplemented

    def __ge__(self, other: Self) -> bool:
        """Whether ``self`` is ``other`` or defined after it (same enum only)."""
        if self.__class__ is other.__class__:
            return self._rank_ >= other._rank_
        return NotImplemented
