"""Randomness where applications expect it, drawn from a :class:`~qitcore.stream.QrngStream`:

- :class:`QuantumBitGenerator` for ``numpy.random.Generator``;
- :class:`QuantumRandom`, a :class:`random.Random` whose every method draws from the stream;
- :func:`randbytes` on the default device.

All of them take only health-tested, extracted bytes; a failure of the stream raises.
"""

from __future__ import annotations

import atexit
import os
import random as _random
import threading
import warnings
from typing import Any

import numpy as np

from . import _core
from .errors import InvalidArgumentError, StreamClosedError
from .stream import QrngStream

__all__ = ["QuantumBitGenerator", "QuantumRandom", "default_stream", "randbytes"]


class QuantumBitGenerator(np.random.BitGenerator):
    """A numpy bit generator fed by a stream: ``np.random.Generator(QuantumBitGenerator(stream))``.

    It cannot be seeded, and has no state to save or restore. When the stream fails during a numpy
    call, that call raises (numpy reports it as a ``SystemError`` caused by the qitcore exception);
    no value drawn after the failure is ever returned.
    """

    def __init__(self, stream: QrngStream) -> None:
        if not isinstance(stream, QrngStream) or type(stream).__name__ == "RawSampleStream":
            raise InvalidArgumentError("stream: expected a QrngStream from qitcore.open (raw samples are not random)")
        super().__init__(0)
        self._stream = stream
        self._capsule = _core.bitgen_capsule(stream._core)

    @property
    def capsule(self) -> Any:  # type: ignore[override]
        return self._capsule

    @property
    def state(self) -> dict[str, Any]:  # type: ignore[override]
        return {"bit_generator": type(self).__name__, "stream": repr(self._stream)}

    @state.setter
    def state(self, value: Any) -> None:
        raise TypeError("QuantumBitGenerator has no state to restore: its bits come from a device")

    def random_raw(self, size: Any = None, output: bool = True) -> Any:  # type: ignore[override]
        """Raw 64-bit words from the stream."""
        count = 1 if size is None else int(np.prod(size))
        words = np.frombuffer(self._stream.read(8 * count), dtype="<u8").copy()
        if len(words) != count:
            raise StreamClosedError("stream ended before the raw words were read")
        if not output:
            return None
        return int(words[0]) if size is None else words.reshape(size)


class QuantumRandom(_random.Random):
    """:class:`random.Random` drawing from a stream, like :class:`random.SystemRandom` draws from
    the OS: ``seed`` does nothing and ``getstate``/``setstate`` raise."""

    def __init__(self, stream: QrngStream) -> None:
        self._stream = stream
        super().__init__()

    def random(self) -> float:
        return (int.from_bytes(self._stream.read(7), "big") >> 3) * 2.0**-53

    def getrandbits(self, k: int) -> int:
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        nbytes = (k + 7) // 8
        return int.from_bytes(self._stream.read(nbytes), "big") >> (nbytes * 8 - k)

    def randbytes(self, n: int) -> bytes:
        return self._stream.read(n)

    def seed(self, *args: Any, **kwargs: Any) -> None:
        return None

    def _notimplemented(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("QuantumRandom has no state: its bits come from a device")

    getstate = setstate = _notimplemented  # type: ignore[assignment]


_default: QrngStream | None = None
_default_lock = threading.Lock()


def default_stream() -> QrngStream:
    """The stream :func:`randbytes` reads: the device named by ``QITCORE_DEVICE`` (a URL), or
    else the simulator, with a warning that it is not a physical source."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            from .devices import open as open_device

            url = os.environ.get("QITCORE_DEVICE")
            if not url:
                warnings.warn(
                    "QITCORE_DEVICE is not set: randbytes() reads the simulator (sim://), which is not a "
                    "physical entropy source",
                    RuntimeWarning,
                    stacklevel=3,
                )
                url = "sim://"
            _default = open_device(url)
            atexit.register(_default.close)
        return _default


def randbytes(n: int) -> bytes:
    """``n`` random bytes from the default device (see :func:`default_stream`)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise InvalidArgumentError(f"n: expected a byte count of 0 or more, got {n!r}")
    data = default_stream().read(n)
    if len(data) != n:
        raise StreamClosedError(f"randbytes: the default device ended after {len(data)} of {n} bytes")
    return data
