"""Streams of random bytes from a device: what :func:`qitcore.open` returns.

A :class:`QrngStream` yields only bytes extracted (Toeplitz hashing) from samples that passed the
SP 800-90B health tests; a failure raises and withholds everything from the failing window on.
Its raw counterpart, :class:`RawSampleStream`, returned only by :func:`qitcore.open_raw`, yields
the device's samples untested and unextracted, for entropy assessment.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import _core, _validate
from ._core import StreamCounters
from .errors import StreamClosedError

__all__ = ["QrngStream", "RawSampleStream", "StreamCounters", "StreamStats"]


@dataclass(frozen=True)
class StreamStats:
    """A snapshot of a stream's counters, with rates over its life so far."""

    elapsed: float
    """Seconds since the stream opened."""
    raw_rate: float
    """Transport bytes per second."""
    output_rate: float
    """Output bytes per second."""
    counters: StreamCounters
    """The counts along the path (bytes_in, frames, crc_errors, ..., bytes_delivered,
    bytes_queued), as attributes or by name (``counters["frames"]``)."""
    device_status: _core.DeviceStatus | None = field(default=None)
    """The device's last status block (state, its own health counters), when it sends them."""

    def __getitem__(self, key: str) -> int:
        return self.counters[key]


class QrngStream:
    """Random bytes from a device, health-tested and extracted.

    Use as a context manager, or call :meth:`close` (safe to call twice). ``read(n)`` returns
    exactly ``n`` bytes unless the device's stream ended (a file) or failed first; then it returns
    what is left, and the next read raises the failure (``HealthTestFailure``,
    ``DeviceDisconnected``, ``SequenceGapError`` under ``gap_policy="error"``, ...). Bytes
    already returned are never taken back.

    Every wait answers Ctrl-C (``KeyboardInterrupt``, nothing consumed). A device that sends no
    valid frame for ``frame_timeout`` seconds (an option of :func:`qitcore.open`, 10 s by default,
    counted from the first read) fails the stream with :class:`~qitcore.errors.NoValidFrames`.
    Threads may share a stream: reads are served one at a time, each a contiguous run of the
    output. Processes may not: a stream belongs to the process that opened it. After
    ``os.fork()`` the child's copy refuses to read (:class:`~qitcore.errors.StreamClosedError`),
    since its queue holds the very bytes the parent will read; the child opens its own stream.
    """

    def __init__(
        self,
        core: _core.Stream,
        *,
        description: str,
        info: dict[str, Any],
        min_entropy: float | None,
        on_close: Callable[[], None] | None = None,
        chunk: int = 1 << 16,
    ) -> None:
        self._core = core
        self.description = description
        self.info = info
        """What is known of the device: vendor, model, serial, firmware, format, ..."""
        self.min_entropy = min_entropy
        """Min-entropy per sample the health tests and the extractor assume (None when raw)."""
        self._on_close = on_close
        self.device: Any = None
        """The device driver, where it takes commands (QDP/1 devices: ``device.command(code)``)."""
        self._chunk = chunk
        self._opened = time.monotonic()
        self._closed = False
        # The process that owns the stream: a forked child inherits a copy of its queue (the
        # parent's next bytes) and of its sockets, and must use neither.
        self._pid = os.getpid()

    # -- reading -----------------------------------------------------------------------------

    def read(self, n: int, timeout: float | None = None) -> bytes:
        """Exactly ``n`` bytes (fewer only at the end of a finite source or before a failure).

        Args:
            n: bytes wanted, 0 or more.
            timeout: seconds to wait at most; ``DeviceTimeout`` then, with nothing consumed.
        """
        n = _validate.byte_count("n", n)
        self._check_open()
        return self._core.read(n, timeout)

    def readinto(self, buffer: Any, timeout: float | None = None) -> int:
        """Fills a writable buffer as :meth:`read` would; returns the bytes written."""
        self._check_open()
        return self._core.readinto(buffer, timeout)

    def __iter__(self) -> Iterator[bytes]:
        """Chunks until the source ends (for ever for a device)."""
        while True:
            chunk = self.read(self._chunk)
            if not chunk:
                return
            yield chunk

    # -- state -------------------------------------------------------------------------------

    def stats(self) -> StreamStats:
        counters = self._core.stats()
        elapsed = max(time.monotonic() - self._opened, 1e-9)
        return StreamStats(
            elapsed=elapsed,
            raw_rate=counters.bytes_in / elapsed,
            output_rate=counters.bytes_out / elapsed,
            counters=counters,
            device_status=self._core.device_status(),
        )

    @property
    def block_shape(self) -> tuple[int, int] | None:
        """Toeplitz ``(n, m)``: input and output bits per block."""
        return self._core.block_shape

    @property
    def cutoffs(self) -> tuple[int, int, int] | None:
        """Health test cutoffs ``(rct, apt, window)``."""
        return self._core.cutoffs

    @property
    def closed(self) -> bool:
        """Closed, or opened by another process (this is a forked child's copy)."""
        return self._closed or self._pid != os.getpid()

    def close(self) -> None:
        """Stops the device and the stream. Safe to call more than once. In a forked child it only
        marks the copy closed: the device, its threads and its connection are the parent's."""
        if self._closed:
            return
        self._closed = True
        if self._pid != os.getpid():
            return
        try:
            if self._on_close is not None:
                self._on_close()
        finally:
            self._core.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StreamClosedError("stream: read from a closed stream")
        if self._pid != os.getpid():
            raise StreamClosedError(
                f"{self.description}: this stream was opened in process {self._pid}; "
                "open it again after fork (a forked copy would read the bytes its parent reads)"
            )

    def __enter__(self) -> QrngStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A stream dropped without close() still stops its threads.
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.description} ({state})>"


class RawSampleStream(QrngStream):
    """The device's samples, one per byte, **untested and unextracted**: for entropy assessment
    only (:func:`qitcore.entropy.assess_non_iid`), never as random numbers."""

    def read_samples(self, n: int, timeout: float | None = None) -> bytes:
        """``n`` raw samples (one byte each)."""
        return self.read(n, timeout)
