"""URL query parameters: what each one holds and its range, checked before a device is opened.

Every backend declares the parameters it reads (:func:`~qitcore.devices.register_backend`'s
``params``); :func:`qitcore.open` refuses any other key by name, and any value out of its
declared range, with :class:`~qitcore.errors.InvalidArgumentError` naming the parameter. Numbers
are read strictly: ASCII digits, an optional sign, decimal point and exponent (``1e6`` is a whole
number where one is asked for); no ``nan``, no digit separators (``1_0``), no other scripts' digits,
and ``inf`` only where a parameter allows it.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import InvalidArgumentError

__all__ = ["Param", "choice", "faults", "integer", "number", "text"]

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_INFINITY = re.compile(r"\+?inf(?:inity)?\Z", re.IGNORECASE)


@dataclass(frozen=True)
class Param:
    """One query parameter: its name, kind (``"int"``, ``"float"``, ``"choice"``, ``"text"``,
    ``"list"``), range and meaning."""

    name: str
    kind: str
    help: str = ""
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    """``low`` itself is excluded."""
    open_high: bool = False
    """``high`` itself is excluded."""
    zero: bool = False
    """0 is allowed besides the range (``rate=0``: as fast as possible)."""
    infinite: bool = False
    """``inf`` is allowed (``bandwidth=inf``: no filter)."""
    words: tuple[str, ...] = ()
    """The values of a choice, or words a number parameter also takes (``min_entropy=assess``)."""
    items: Mapping[str, Param] = field(default_factory=dict)
    """For a list (``fault=stuck:100,drop:0.01``): the parameter of each ``name:value`` item."""

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")

    @property
    def many(self) -> bool:
        """Whether the parameter may be given more than once (lists add up)."""
        return self.kind == "list"

    def describe(self) -> str:
        """What the parameter takes, for messages."""
        if self.kind in ("choice", "text") and self.words:
            return "one of " + ", ".join(self.words)
        if self.kind == "text":
            return "text"
        if self.kind == "list":
            return "NAME:VALUE items, comma-separated, NAME one of " + ", ".join(self.items)
        what = "a whole number" if self.kind == "int" else "a number"
        low, high = _show(self.low), _show(self.high)
        if self.low is not None and self.high is not None:
            below = f"below {high}" if self.open_high else f"up to {high}"
            span = (
                f"{what} from {low} {below.replace('up to', 'to')}"
                if not self.open_low
                else f"{what} above {low}, {below}"
            )
        elif self.low is not None:
            span = f"{what} {'above' if self.open_low else 'of at least'} {low}"
        else:
            span = what
        extras = (["0"] if self.zero else []) + (["inf"] if self.infinite else []) + list(self.words)
        return span + (f" (or {', '.join(extras)})" if extras else "")

    def parse(self, text: str) -> Any:
        """The value of ``text`` (from a URL), checked.

        Raises:
            InvalidArgumentError: naming the parameter.
        """
        if self.kind == "list":
            return [self._item(part) for part in text.split(",") if part]
        if self.kind == "text":
            return self.check(text)
        if text in self.words:
            return text
        if self.kind == "choice":
            return self.check(text)
        if self.infinite and _INFINITY.match(text):
            return math.inf
        if not _NUMBER.match(text):
            raise self._refuse(text)
        exact = Decimal(text)
        # Bounds first on the exact value, so that 1e999999999 never becomes a Python int.
        if not self._in_range(exact):
            raise self._refuse(text)
        if self.kind == "int":
            if exact != exact.to_integral_value():
                raise self._refuse(text)
            return int(exact)
        return float(exact)

    def check(self, value: Any) -> Any:
        """``value`` (given in Python, not as text), checked; ints are returned as ``int``.

        Raises:
            InvalidArgumentError: naming the parameter.
        """
        if self.kind in ("choice", "text"):
            if not isinstance(value, str) or (self.words and value not in self.words):
                raise self._refuse(value)
            if self.kind == "text" and ("\0" in value or len(value) > 4096):
                raise self._refuse(value)
            return value
        if self.kind == "list":
            raise self._refuse(value)
        if isinstance(value, str) and value in self.words:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:  # numpy integers and the like
                value = operator.index(value)
            except TypeError:
                raise self._refuse(value) from None
        if self.infinite and isinstance(value, float) and value == math.inf:
            return math.inf
        try:
            exact = Decimal(value)
        except (InvalidOperation, ValueError):
            raise self._refuse(value) from None
        if not exact.is_finite() or not self._in_range(exact):
            raise self._refuse(value)
        if self.kind == "int":
            if exact != exact.to_integral_value():
                raise self._refuse(value)
            return int(exact)
        return float(value)

    def _in_range(self, x: Decimal) -> bool:
        if self.zero and x == 0:
            return True
        if self.low is not None and (x < Decimal(self.low) or (self.open_low and x == Decimal(self.low))):
            return False
        if self.high is None:
            return True
        return x < Decimal(self.high) if self.open_high else x <= Decimal(self.high)

    def _item(self, part: str) -> tuple[str, Any]:
        name, colon, value = part.partition(":")
        item = self.items.get(name)
        known = ", ".join(f"{k}:{_placeholder(p)}" for k, p in self.items.items())
        if item is None:
            raise InvalidArgumentError(f"{self.name}: unknown {self.name} {name!r}; known: {known}")
        if not colon:
            raise InvalidArgumentError(f"{self.name}: {name} needs a value after a colon ({name}:{_placeholder(item)})")
        try:
            return name, item.parse(value)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"{self.name}: {exc}") from None

    def _refuse(self, value: object) -> InvalidArgumentError:
        # Text as typed is quoted; a number is shown as a number. Either is cut at 60 characters,
        # since a URL's value may be anything, of any size.
        text = repr(value) if isinstance(value, str) else " ".join(str(value).split())  # one line
        shown = text if len(text) <= 60 else f"{text[:60]}..."
        return InvalidArgumentError(f"{self.name}: expected {self.describe()}, got {shown}")


def _show(x: float | None) -> str:
    if x is None:
        return ""
    if isinstance(x, int):
        return f"{x:,}"
    return f"{int(x):,}" if x.is_integer() and abs(x) < 1e16 else f"{x:g}"


def _placeholder(p: Param) -> str:
    return "N" if p.kind == "int" else "X"


def integer(name: str, low: int, high: int, help: str = "") -> Param:
    """A whole number from ``low`` to ``high``."""
    return Param(name, "int", help, low, high)


def number(
    name: str,
    low: float | None,
    high: float | None,
    help: str = "",
    *,
    open_low: bool = False,
    open_high: bool = False,
    zero: bool = False,
    infinite: bool = False,
    words: tuple[str, ...] = (),
) -> Param:
    """A finite number in a range (``open_low``: above ``low``; ``open_high``: below ``high``)."""
    return Param(
        name,
        "float",
        help,
        low,
        high,
        open_low=open_low,
        open_high=open_high,
        zero=zero,
        infinite=infinite,
        words=words,
    )


def choice(name: str, *words: str, help: str = "") -> Param:
    """One of ``words``."""
    return Param(name, "choice", help, words=words)


def text(name: str, help: str = "") -> Param:
    """Free text (a path, a serial number, a pyserial URL)."""
    return Param(name, "text", help)


def faults(name: str, items: dict[str, Param], help: str = "") -> Param:
    """``NAME:VALUE`` items, comma-separated or repeated."""
    return Param(name, "list", help, items=items)


Declared = Mapping[str, Param]
"""A backend's parameters by name."""
