"""A device on a byte transport with pyserial's interface (``read(n)`` returning what arrives
within the port's timeout, ``write``, ``flush``, ``close``): the reader that feeds the Rust
pipeline, and closing. Serial ports and ptys are read by a Rust thread on their descriptor; other
transports (pyserial URLs, USB) by a Python thread. Devices speak QDP/1 (``framed``) or stream
plain sample bytes, which the pipeline frames itself."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from .. import _core
from ..errors import QitError
from ..stream import QrngStream
from ._registry import Options
from .sim import stream_class

__all__ = ["PortLink"]


class PortLink:
    """A device on ``port``. ``framed``: it sends QDP/1 frames (else plain samples)."""

    def __init__(self, port: Any, options: Options, description: str, *, framed: bool = True) -> None:
        self.port = port
        self.options = options
        self.description = description
        self.framed = framed
        self.before_close: list[Callable[[], object]] = []
        """Called (best effort) before the port closes: STOP, pause, ..."""
        self._core: _core.Stream | None = None
        self._pump: threading.Thread | None = None
        self._stop = threading.Event()
        self._write_lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._write_lock:
            self.port.write(data)
            self.port.flush()

    def start(self, core: _core.Stream, info: dict[str, Any], raw: bool, claimed: float | None) -> QrngStream:
        """Starts reading into ``core``; returns the stream."""
        self._core = core
        fd = _descriptor(self.port)
        if fd is not None and hasattr(core, "attach_fd"):
            # A serial port or pty: a Rust thread reads its descriptor, no Python in the data path.
            core.attach_fd(fd, framed=self.framed)
        else:
            self._pump = threading.Thread(target=self._run, name=f"qitcore {self.description}", daemon=True)
            self._pump.start()
        h = None if raw else self.options.entropy(claimed)
        stream = stream_class(raw)(core, description=self.description, info=info, min_entropy=h, on_close=self.close)
        stream.device = self
        stream.transport = self.port  # type: ignore[attr-defined]
        return stream

    def _run(self) -> None:
        core = self._core
        assert core is not None
        try:
            feed = core.feed if self.framed else core.feed_samples
            while not self._stop.is_set():
                # Up to 64 KiB a call (the port returns early on its timeout): fewer, larger pieces
                # at high rates, bounded latency at low ones.
                data = self.port.read(1 << 16)
                if data:
                    feed(data)
        except QitError:
            return  # the stream failed or closed: the reader sees that
        except Exception as exc:  # a transport's own errors: serial.SerialException, USBError, OSError
            core.disconnect(f"{self.description}: {exc}")

    def close(self) -> None:
        """The ``before_close`` hooks (best effort), then the reader and the port. Safe twice."""
        if self._stop.is_set():
            return
        if self._core is None or self._core.error() is None:
            for hook in self.before_close:
                with contextlib.suppress(Exception):  # the device may be gone; closing goes on
                    hook()
        self._stop.set()
        if self._pump is not None:
            self._pump.join(timeout=2)
        with contextlib.suppress(Exception):
            self.port.close()


def _descriptor(port: Any) -> int | None:
    """The descriptor of a plain POSIX serial port (not of pyserial's URL transports)."""
    if type(port).__module__ != "serial.serialposix":
        return None
    try:
        return int(port.fileno())
    except (AttributeError, OSError, ValueError):
        return None
