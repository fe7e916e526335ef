"""Randomness where applications expect it, drawn from a :class:`~qitcore.stream.QrngStream`:

- :class:`QuantumBitGenerator` for ``numpy.random.Generator``;
- :class:`QuantumRandom`, a :class:`random.Random` whose every method draws from the stream;
- :func:`randbytes`.

Without a stream they use the default one (:func:`default_stream`): the device named by
``$QITCORE_DEVICE``, else a running local daemon (``qitcore serve``, through ``qitcored://``).
All of them take only health-tested, extracted bytes; a failure of the stream raises, and a short
read is never passed off as random. There is no fallback to a weaker source: with neither a device
nor a daemon, they raise :class:`~qitcore.errors.DeviceNotFound`, saying how to start a daemon.
"""

from __future__ import annotations

import atexit
import os
import random as _random
import threading
from collections.abc import Mapping
from typing import Any, NoReturn

import numpy as np

from . import _core, _random_arguments, _validate
from .errors import (
    DeviceNotFound,
    InvalidArgumentError,
    InvalidTypeError,
    QitError,
    StreamClosedError,
    UnsupportedOperationError,
)
from .stream import QrngStream, RawSampleStream

__all__ = ["QuantumBitGenerator", "QuantumRandom", "default_stream", "randbytes"]


def _random_stream(stream: object) -> QrngStream:
    """``stream`` if it yields extracted random bytes; raw sample streams are refused."""
    if not isinstance(stream, QrngStream) or isinstance(stream, RawSampleStream):
        raise InvalidArgumentError(
            f"stream: expected a QrngStream from qitcore.open, got {type(stream).__name__} "
            "(raw samples from qitcore.open_raw are not random numbers)"
        )
    return stream


def _read_exactly(stream: QrngStream, n: int) -> bytes:
    """``n`` bytes from ``stream``; when it fails first, its failure (``DeviceDisconnected``, a
    health test's, ...), or :class:`StreamClosedError` when it just ended. The bytes read before
    are dropped: a short read is never passed off as random."""
    data = stream.read(n)
    if len(data) != n:
        failure = stream._core.error()
        if failure is not None:
            raise failure
        raise StreamClosedError(f"{stream.description}: the stream ended after {len(data)} of {n} bytes")
    return data


class QuantumBitGenerator(np.random.BitGenerator):
    """A numpy bit generator fed by a stream: ``np.random.Generator(QuantumBitGenerator(stream))``.

    It cannot be seeded, spawned or pickled, and has no state to save or restore: its bits come
    from a device (those operations raise :class:`~qitcore.errors.UnsupportedOperationError`, as
    do numpy's ``ctypes`` and ``cffi`` interfaces, which it does not offer; setting ``state``
    raises :class:`~qitcore.errors.InvalidTypeError`). When the stream fails
    during a numpy call, or Ctrl-C interrupts a wait for it, that call raises the stream's
    exception (``RepetitionCountFailure``, ``DeviceDisconnected``, ``KeyboardInterrupt``, ...);
    no value drawn after the failure is ever returned.

    Without a stream it draws from :func:`default_stream` as it is when the generator is made;
    after that stream fails, make a new generator (the default stream is then opened again).
    """

    def __init__(self, stream: QrngStream | None = None) -> None:
        self._stream = default_stream() if stream is None else _random_stream(stream)
        super().__init__(0)
        # numpy holds `lock` around every draw; the core's raises a failed draw's exception, and
        # the guard around it refuses draws in a forked child (numpy's draws reach the core
        # through the capsule, never through the stream's read).
        self._capsule, core_lock = _core.bitgen_capsule(self._stream._core)
        self._lock = _ProcessGuard(self._stream, core_lock)

    @property
    def capsule(self) -> Any:
        return self._capsule

    @property
    def lock(self) -> Any:  # type: ignore[override]
        return self._lock

    @property
    def state(self) -> Mapping[str, Any]:
        return {"bit_generator": type(self).__name__, "stream": repr(self._stream)}

    @state.setter
    def state(self, value: Any) -> None:
        raise InvalidTypeError("QuantumBitGenerator has no state to restore: its bits come from a device")

    def _unsupported(self, what: str) -> NoReturn:
        raise UnsupportedOperationError(
            f"QuantumBitGenerator.{what}: a device has no seed and no state to share; "
            "draw through numpy.random.Generator(bit_generator) or random_raw()"
        )

    @property
    def seed_seq(self) -> NoReturn:
        self._unsupported("seed_seq")

    def spawn(self, n_children: int) -> NoReturn:
        self._unsupported("spawn")

    @property
    def ctypes(self) -> NoReturn:
        self._unsupported("ctypes")

    @property
    def cffi(self) -> NoReturn:
        self._unsupported("cffi")

    def __reduce__(self) -> NoReturn:
        self._unsupported("__reduce__ (pickling)")

    def random_raw(self, size: Any = None, output: bool = True) -> Any:
        """Raw 64-bit words from the stream."""
        try:
            shape = () if size is None else tuple(np.atleast_1d(np.asarray(size, dtype=np.int64)).tolist())
        except (TypeError, ValueError, OverflowError):
            raise InvalidArgumentError(f"size: expected None, a count or a shape, got {size!r}") from None
        if any(d < 0 for d in shape):
            raise InvalidArgumentError(f"size: dimensions must be 0 or more, got {size!r}")
        count = int(np.prod(shape, dtype=object)) if shape else 1
        words = np.frombuffer(_read_exactly(self._stream, 8 * count), dtype="<u8").astype(np.uint64)
        if not output:
            return None
        return int(words[0]) if size is None else words.reshape(shape)


class _ProcessGuard:
    """The lock numpy holds around each draw of a :class:`QuantumBitGenerator`: the core's, entered
    only while the stream may be read in this process (not closed, not a forked child's copy)."""

    __slots__ = ("_lock", "_stream")

    def __init__(self, stream: QrngStream, lock: Any) -> None:
        self._stream = stream
        self._lock = lock

    def __enter__(self) -> None:
        self._stream._check_open()
        self._lock.__enter__()

    def __exit__(self, *exc: object) -> bool:
        return bool(self._lock.__exit__(*exc))


class QuantumRandom(_random.Random):
    """:class:`random.Random` drawing from a stream, like :class:`random.SystemRandom` draws from
    the OS: ``seed`` does nothing and ``getstate``/``setstate`` raise. Raw sample streams are
    refused, and a stream that ends raises :class:`~qitcore.errors.StreamClosedError` rather than
    returning fewer bits. Without a stream it draws as :func:`randbytes` does: from
    :func:`default_stream`, opened again after it failed."""

    def __init__(self, stream: QrngStream | None = None) -> None:
        self._stream = None if stream is None else _random_stream(stream)
        super().__init__()

    def _read(self, n: int) -> bytes:
        return _read_default(n) if self._stream is None else _read_exactly(self._stream, n)

    def random(self) -> float:
        return (int.from_bytes(self._read(7), "big") >> 3) * 2.0**-53

    def getrandbits(self, k: int) -> int:
        k = _validate.integer("k", k, minimum=0, maximum=8 * _validate.MAX_READ_BYTES)
        nbytes = (k + 7) // 8
        return int.from_bytes(self._read(nbytes), "big") >> (nbytes * 8 - k)

    def randbytes(self, n: int) -> bytes:
        return self._read(_validate.byte_count("n", n))

    def seed(self, *args: Any, **kwargs: Any) -> None:
        return None

    def _notimplemented(self, *args: Any, **kwargs: Any) -> Any:
        raise UnsupportedOperationError("QuantumRandom has no state: its bits come from a device")

    getstate = setstate = _notimplemented


# The distributions, choices and ranges: arguments checked, errors raised as QitErrors.
_random_arguments.install(QuantumRandom)


_default: QrngStream | None = None
_default_lock = threading.Lock()


def default_stream() -> QrngStream:
    """The stream :func:`randbytes` reads, opened once (and again after it failed or was closed):

    1. the device named by ``$QITCORE_DEVICE`` (a URL), if set;
    2. else a running local daemon (``qitcore serve``), through ``qitcored://``: the socket in
       ``$QITCORE_SOCKET``, else the system daemon's, else this user's default;
    3. else :class:`~qitcore.errors.DeviceNotFound`, saying how to start a daemon. A library of
       randomness never falls back to a weaker source; name the simulator
       (``QITCORE_DEVICE=sim://``) to use it.

    Raises:
        DeviceNotFound: neither is there.
        ServiceAccessDenied: a daemon runs, but its socket's permissions refuse this user.
    """
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            from .devices import open as open_device

            url = os.environ.get("QITCORE_DEVICE")
            _default = open_device(url) if url else _open_daemon()
        return _default


def _open_daemon() -> QrngStream:
    """The local daemon's stream; DeviceNotFound saying how to start one when none listens."""
    from .devices import open as open_device

    try:
        return open_device("qitcored://")
    except DeviceNotFound as exc:
        raise DeviceNotFound(
            f"no random device: QITCORE_DEVICE is not set, and {exc}; or open a device with qitcore.open(url)"
        ) from None


def _forget_default() -> None:
    """In a forked child: the parent's default stream is the parent's (its queue holds the bytes
    the parent reads next, its connection is the parent's). Forget it without closing anything,
    and make a new lock (the parent's may have been held at the fork): the child's first call
    opens its own stream."""
    global _default, _default_lock
    _default = None
    _default_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_default)


@atexit.register
def _close_default() -> None:
    with _default_lock:
        if _default is not None:
            _default.close()


def _read_default(n: int) -> bytes:
    """``n`` bytes of the default stream; a stream that fails is closed (after raising its
    error), so that the next call opens it again: a daemon that restarted is found again."""
    global _default
    stream = default_stream()
    try:
        return _read_exactly(stream, n)
    except QitError as exc:
        if not isinstance(exc, InvalidArgumentError):
            with _default_lock:
                if _default is stream:
                    _default = None
            stream.close()
        raise


def randbytes(n: int) -> bytes:
    """``n`` random bytes from :func:`default_stream` (``$QITCORE_DEVICE``, else a running local
    daemon). When the stream fails, this call raises its error and the next one opens it again.

    Raises:
        DeviceNotFound: ``$QITCORE_DEVICE`` is not set and no daemon runs (the message says how
            to start one).
        DeviceDisconnected: the daemon (or device) went away; call again once it is back.
        InvalidArgumentError: ``n`` is not a byte count of 0 or more.
    """
    return _read_default(_validate.byte_count("n", n))
