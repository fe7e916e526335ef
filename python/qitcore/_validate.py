"""Argument checks shared by the public API: each failure names the argument and what it expected."""

from __future__ import annotations

import math
import operator
import os
import re
import sys
from typing import TYPE_CHECKING, Any, Literal

from .errors import InvalidArgumentError, InvalidTypeError, OutOfMemoryError

# numpy is imported only by the checks of arrays: the package, its command line and its entropy
# assessment import this module without it.
if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "InvalidArgumentError",
    "InvalidTypeError",
    "bit_array",
    "bitorder",
    "choice",
    "host_port",
    "integer",
    "real",
]

BitOrder = Literal["big", "little"]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# No size or count reaches this; larger ints could not cross into Rust's usize.
_LARGEST = 2**62


def integer(name: str, value: Any, *, minimum: int | None = None, maximum: int = _LARGEST) -> int:
    """``value`` as an int (anything with ``__index__`` except bool) within the bounds."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise InvalidTypeError(f"{name}: expected an int, got {type(value).__name__} {_show(value)}") from None
    if minimum is not None and number < minimum:
        raise InvalidArgumentError(f"{name}: must be at least {minimum}, got {number}")
    if number > maximum:
        raise InvalidArgumentError(f"{name}: must be at most {maximum}, got {number}")
    return number


def path(name: str, value: Any) -> str:
    """``value`` as a file path: a str or path-like object naming one (bytes are refused, as are
    NUL characters and text the file system cannot encode), never a file descriptor."""
    try:
        if isinstance(value, (int, bytes)):
            raise TypeError
        text = os.fspath(value)
        if not isinstance(text, str):
            raise TypeError
    except TypeError:
        got = type(value).__name__
        raise InvalidTypeError(f"{name}: expected a file path (str or os.PathLike), got {got}") from None
    if "\0" in text:
        raise InvalidArgumentError(f"{name}: a path may not hold a NUL character, got {_show(text)}")
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"{name}: the file system cannot encode {_show(text)}") from None
    if not text:
        raise InvalidArgumentError(f"{name}: expected a file path, got an empty string")
    return text


SECRET_WORDS = ("seed", "key", "pass", "secret", "token")
"""Query keys holding one of these are secret-looking: their values are never shown."""


def public_url(url: str) -> str:
    """``url`` with secret-looking query values (:data:`SECRET_WORDS`) replaced by ``***``: what
    reprs, messages, logs and status show of a device URL."""
    if "?" not in url:
        return url
    head, query = url.split("?", 1)
    parts = []
    for item in query.split("&"):
        key, eq, _ = item.partition("=")
        secret = eq and any(word in key.lower() for word in SECRET_WORDS)
        parts.append(f"{key}=***" if secret else item)
    return f"{head}?{'&'.join(parts)}"


MAX_READ_BYTES = 2**32
"""The most bytes one read of random bytes may ask for (4 GiB): more is a mistake, and a read
that large would hold its bytes in memory twice; read in pieces instead."""


def byte_count(name: str, value: Any) -> int:
    """``value`` as a count of random bytes to read: an int from 0 to :data:`MAX_READ_BYTES`."""
    return integer(name, value, minimum=0, maximum=MAX_READ_BYTES)


def buffer_of(name: str, n: int) -> bytearray:
    """A zeroed bytearray of ``n`` bytes, or :class:`OutOfMemoryError` naming ``name``."""
    try:
        return bytearray(n)
    except MemoryError:
        raise OutOfMemoryError(f"{name}: could not allocate {n} bytes") from None


def _numpy_real(value: Any) -> bool:
    # A numpy scalar can exist only once numpy is imported, so asking does not import it.
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, (numpy.integer, numpy.floating))


def real(name: str, value: Any) -> float:
    """``value`` as a finite float (int or float, numpy's included; not bool)."""
    if isinstance(value, bool) or not (isinstance(value, (int, float)) or _numpy_real(value)):
        raise InvalidTypeError(f"{name}: expected a real number, got {type(value).__name__} {_show(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the floats
        bits = int(value).bit_length()
        raise InvalidArgumentError(f"{name}: must be finite, got an integer of {bits} bits") from None
    if not math.isfinite(number):
        raise InvalidArgumentError(f"{name}: must be finite, got {number}")
    return number


def host_port(name: str, value: Any) -> tuple[str, int]:
    """``"HOST:PORT"`` as ``(host, port)``, port 0 to 65535 (0: any free port). An IPv6 host is
    written in brackets, as in URLs (``[::1]:7000``); the host returned has none."""
    host, _, port = str(value).rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        # socket.getaddrinfo takes the address without its brackets.
        host = host[1:-1]
    # An IPv6 host outside brackets is ambiguous ("fe80::1" would read as host "fe80:", port 1).
    unbracketed_colon = ":" in host and not bracketed
    if (
        not host
        or not re.fullmatch(r"[0-9]{1,5}", port)
        or int(port) > 65535
        or unbracketed_colon
        or ("[" in host or "]" in host)
    ):
        raise InvalidArgumentError(f"{name}: expected HOST:PORT (an IPv6 host in brackets), got {_show(value)}")
    return host, int(port)


def show_host_port(host: str, port: int) -> str:
    """``host:port`` as :func:`host_port` reads it back: an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def flag(name: str, value: Any) -> bool:
    """``value`` as a bool: a bool or numpy's, nothing else (an array's truth is ambiguous)."""
    numpy = sys.modules.get("numpy")
    if isinstance(value, bool) or (numpy is not None and isinstance(value, numpy.bool_)):
        return bool(value)
    raise InvalidTypeError(f"{name}: expected a bool, got {type(value).__name__}")


def bitorder(value: Any) -> BitOrder:
    """``"big"`` or ``"little"``."""
    if isinstance(value, str) and value in ("big", "little"):
        return value  # type: ignore[return-value]
    raise InvalidArgumentError(f'bitorder: expected "big" or "little", got {_show(value)}')


def choice(name: str, value: Any, options: tuple[str, ...]) -> str:
    """One of ``options``; refused as the core refuses its choices (the same wording), with
    ``InvalidTypeError`` for a value that is not a string."""
    if isinstance(value, str) and value in options:
        return value
    names = ", ".join(f'"{o}"' for o in options)
    if not isinstance(value, str):
        raise InvalidTypeError(f"{name}: expected a str, one of {names}; got {type(value).__name__}")
    shown = value[:40]
    raise InvalidArgumentError(f'{name}: expected one of {names}, got "{shown}"' + ("..." if len(value) > 40 else ""))


def bit_array(name: str, bits: Any) -> npt.NDArray[np.uint8]:
    """A one-dimensional array of 0/1 values (bool or integer dtype) as uint8."""
    import numpy as np

    array = np.asarray(bits)
    if array.ndim != 1:
        raise InvalidArgumentError(f"{name}: expected a one-dimensional array of bits, got {array.ndim} dimensions")
    if array.dtype != np.bool_ and not np.issubdtype(array.dtype, np.integer):
        raise InvalidTypeError(f"{name}: expected an array of 0/1 integers or bools, got dtype {array.dtype}")
    if array.dtype != np.bool_ and array.size and (array.min() < 0 or array.max() > 1):
        raise InvalidArgumentError(f"{name}: every element must be 0 or 1")
    return array.astype(np.uint8, copy=False)
