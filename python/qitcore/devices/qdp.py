"""The host side of QDP/1 over any byte transport with pyserial's interface (``read``, ``write``,
``in_waiting``, ``close``): the handshake (STOP, INFO, optional CONFIGURE, START), a reader
thread feeding the Rust pipeline, commands while streaming, and STOP on close."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from .. import _core
from ..errors import DeviceTimeout, ProtocolError, QitError
from ..protocol import COMMAND, REPLY, Command, FrameDecoder, Result, command_payload, encode_frame, parse_info
from ..stream import QrngStream
from ._registry import Options
from .sim import stream_class

__all__ = ["QdpLink"]


class QdpLink:
    """A QDP/1 device on ``port``."""

    def __init__(self, port: Any, options: Options, description: str) -> None:
        self.port = port
        self.options = options
        self.description = description
        self._tag = 0
        self._sequence = 0
        self._core: _core.Stream | None = None
        self._pump: threading.Thread | None = None
        self._stop = threading.Event()
        self._write_lock = threading.Lock()

    # -- commands ----------------------------------------------------------------------------

    def _send(self, code: int, args: bytes = b"") -> int:
        self._tag = (self._tag + 1) % 256
        frame = encode_frame(COMMAND, self._sequence, command_payload(code, self._tag, args))
        self._sequence = (self._sequence + 1) % 2**32
        with self._write_lock:
            self.port.write(frame)
            self.port.flush()
        return self._tag

    def _sync_command(self, code: int, args: bytes = b"") -> dict[str, Any]:
        """A command before streaming: reads the port itself until the reply comes."""
        tag = self._send(code, args)
        decoder = FrameDecoder()
        deadline = time.monotonic() + self.options.timeout
        while time.monotonic() < deadline:
            data = self.port.read(max(1, self.port.in_waiting))
            for event in decoder.feed(data):
                if event[0] == "frame" and event[1] == REPLY:
                    reply = _core.parse_reply(event[3])
                    if reply["code"] == code and reply["tag"] == tag:
                        return _checked(code, reply)
        raise DeviceTimeout(f"{self.description}: no reply to {Command(code).name} within {self.options.timeout} s")

    def command(self, code: int, args: bytes = b"") -> dict[str, Any]:
        """A command while streaming: the reply comes through the pipeline."""
        if self._core is None:
            return self._sync_command(code, args)
        tag = self._send(code, args)
        reply = self._core.reply(code, tag, self.options.timeout)
        if reply is None:
            raise DeviceTimeout(f"{self.description}: no reply to {Command(code).name} within {self.options.timeout} s")
        return _checked(code, reply)

    # -- streaming ---------------------------------------------------------------------------

    def open(self, raw: bool, format_args: bytes | None = None) -> QrngStream:
        """Handshake, then streaming. ``format_args``: a format descriptor to CONFIGURE first."""
        try:
            self._sync_command(Command.STOP)
            if format_args is not None:
                self._sync_command(Command.CONFIGURE, format_args)
            info = parse_info(self._sync_command(Command.INFO)["data"])
        except QitError:
            self.port.close()
            raise
        fmt = info["format"]
        claimed = info["claimed_min_entropy"] or None
        core = self.options.core_stream(
            fmt["bits_per_sample"], fmt["packing"], fmt["bitorder"], fmt["rate"], raw=raw, min_entropy=claimed
        )
        return self.start(core, info, raw, claimed)

    def start(self, core: _core.Stream, info: dict[str, Any], raw: bool, claimed: float | None) -> QrngStream:
        """Starts the reader thread, then (with ``info``) the device."""
        self._core = core
        fd = _descriptor(self.port)
        if fd is not None and hasattr(core, "attach_fd"):
            # A serial port or pty: a Rust thread reads its descriptor, no Python in the data path.
            core.attach_fd(fd)
        else:
            self._pump = threading.Thread(target=self._run, name=f"qitcore {self.description}", daemon=True)
            self._pump.start()
        if info.get("protocol_version"):
            try:
                self.command(Command.START)
            except QitError:
                self.close()
                raise
        h = None if raw else (self.options.min_entropy if self.options.min_entropy is not None else claimed)
        stream = stream_class(raw)(core, description=self.description, info=info, min_entropy=h, on_close=self.close)
        stream.device = self
        return stream

    def _run(self) -> None:
        core = self._core
        assert core is not None
        try:
            while not self._stop.is_set():
                # Up to 64 KiB a call (pyserial returns early on its 50 ms timeout): fewer,
                # larger pieces for the pipeline at high rates, bounded latency at low ones.
                data = self.port.read(1 << 16)
                if data:
                    core.feed(data)
        except QitError:
            return  # the stream failed or closed: the reader sees that
        except Exception as exc:  # a transport's own errors: serial.SerialException, OSError
            core.disconnect(f"{self.description}: {exc}")

    def close(self) -> None:
        """STOP (best effort), then the reader thread and the port. Safe to call twice."""
        if self._stop.is_set():
            return
        try:
            if self._core is not None and self._core.error() is None:
                self._send(Command.STOP)
        except Exception:
            pass
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


def _checked(code: int, reply: dict[str, Any]) -> dict[str, Any]:
    if reply["result"] != Result.OK:
        try:
            why = Result(reply["result"]).name
        except ValueError:
            why = f"result {reply['result']}"
        raise ProtocolError(f"device refused {Command(code).name}: {why}")
    return reply
