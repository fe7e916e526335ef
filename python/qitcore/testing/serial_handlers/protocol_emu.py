"""``emu://DEVICE?options``: serial QRNGs emulated from their public documentation, behind
pyserial's own port interface, so the drivers' real code (open, baud rates, DTR, RTS, commands,
reads with timeouts) runs unchanged.

Devices:
- ``truerng``: TrueRNG v1-v3, whitened bytes while DTR is set.
- ``truerngpro`` (``?version=2`` for the ProV2): the mode is chosen by the baud-rate "knock":
  110, 300, 110, then the mode's rate (300 normal, 1200 and 2400 debug text, 4800 RNG1, 9600
  RNG2, 19200 raw binary, 38400 raw ASCII; the V2 also 57600 unwhitened); streams while DTR is
  set. Whitened modes give uniform bytes, raw ones the homodyne noise model's 8-bit samples
  standing in for the device's own raw data.
- ``onerng``: text commands ``cmd`` + one character: ``0``-``f`` set the mask (bit 0 whitening
  off, bit 1 RF source on, bit 2 avalanche source off), ``O`` run, ``o`` pause, ``w`` flush,
  ``v`` version; data while RTS is set and running; with no source enabled the output is stuck.
- ``cdc``: a generic byte stream, always on.

Options for every device: ``unplug_after=N`` (the port fails after N bytes read, as when the
device is pulled out), ``garbage=1`` (commands are answered with garbage, streams are garbage).
"""

from __future__ import annotations

import os
import threading
import time
from urllib.parse import parse_qs, urlsplit

from serial import SerialBase, SerialException

from ... import _core

__all__ = ["Serial"]

KNOCK = [110, 300, 110]
PRO_MODES = {300: "normal", 1200: "debug-ps", 2400: "debug-rng", 4800: "rng1", 9600: "rng2", 19200: "raw-binary",
             38400: "raw-ascii"}  # fmt: skip
PRO_V2_MODES = {**PRO_MODES, 57600: "unwhitened", 115200: "normal-ascii", 230400: "normal-ascii"}


class Emulated:
    """A device's behaviour: what it says when asked to read ``n`` bytes, and how it reacts."""

    def __init__(self, options: dict[str, str]) -> None:
        self.garbage = options.get("garbage") == "1"
        self.dtr = self.rts = False
        self.baud_history: list[int] = []
        self.pending = bytearray()  # replies to commands, read before any data
        self.noise = _core.NoiseModel(seed=int(options.get("seed", "1")))

    def streaming(self) -> bool:
        return False

    def produce(self, n: int) -> bytes:
        return os.urandom(n) if not self.garbage else bytes(n)

    def read(self, n: int) -> bytes:
        if self.pending:
            out = bytes(self.pending[:n])
            del self.pending[:n]
            return out
        return self.produce(n) if self.streaming() else b""

    def write(self, data: bytes) -> None:
        pass

    def on_baud(self, baud: int) -> None:
        self.baud_history.append(baud)


class TrueRng(Emulated):
    def streaming(self) -> bool:
        return self.dtr


class TrueRngPro(Emulated):
    def __init__(self, options: dict[str, str]) -> None:
        super().__init__(options)
        self.modes = PRO_V2_MODES if options.get("version") == "2" else PRO_MODES
        self.mode = "normal"

    def on_baud(self, baud: int) -> None:
        super().on_baud(baud)
        if self.baud_history[-4:-1] == KNOCK and baud in self.modes:
            self.mode = self.modes[baud]

    def streaming(self) -> bool:
        return self.dtr

    def produce(self, n: int) -> bytes:
        if self.garbage:
            return bytes(n)
        if self.mode in ("raw-binary", "unwhitened"):
            return self.noise.read(n)
        if self.mode.endswith("ascii") or self.mode.startswith("debug"):
            return (b"%d\r\n" % int.from_bytes(os.urandom(2), "big") * n)[:n]
        return os.urandom(n)


class OneRng(Emulated):
    def __init__(self, options: dict[str, str]) -> None:
        super().__init__(options)
        self.mask = 0
        self.running = False
        self._command = bytearray()

    def write(self, data: bytes) -> None:
        self._command += data
        while b"cmd" in self._command and self._command.index(b"cmd") + 3 < len(self._command):
            at = self._command.index(b"cmd")
            op = chr(self._command[at + 3])
            del self._command[: at + 4]
            if self.garbage:
                self.pending += os.urandom(7)
            elif op in "0123456789abcdef":
                self.mask = int(op, 16)
            elif op == "O":
                self.running = True
            elif op == "o":
                self.running = False
            elif op == "w":
                self.pending.clear()
            elif op == "v":
                self.pending += b"Version 3\n"

    def streaming(self) -> bool:
        return self.rts and self.running

    def produce(self, n: int) -> bytes:
        avalanche, rf = not (self.mask & 4), bool(self.mask & 2)
        if self.garbage:
            return bytes(n)
        if not (avalanche or rf):
            return bytes([0x55]) * n  # no source: the output sticks
        if self.mask & 1:
            return self.noise.read(n)  # whitening off: the raw noise
        return os.urandom(n)


class Cdc(Emulated):
    def streaming(self) -> bool:
        return True


DEVICES = {"truerng": TrueRng, "truerngpro": TrueRngPro, "onerng": OneRng, "cdc": Cdc}


class Serial(SerialBase):
    """pyserial's port interface over an emulated device."""

    is_open: bool

    def open(self) -> None:
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        parts = urlsplit(self.portstr)
        name = parts.netloc or parts.path.strip("/")
        if name not in DEVICES:
            raise SerialException(f"emu://: no emulated device {name!r}; known: {', '.join(sorted(DEVICES))}")
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self._device = DEVICES[name](options)
        self._unplug_after = int(options["unplug_after"]) if "unplug_after" in options else None
        self._delivered = 0
        self._lock = threading.Lock()
        self.is_open = True
        self._reconfigure_port()
        self._update_dtr_state()
        self._update_rts_state()

    def _reconfigure_port(self) -> None:
        if self.is_open:
            self._device.on_baud(self._baudrate)

    def _update_dtr_state(self) -> None:
        self._device.dtr = bool(self._dtr_state)

    def _update_rts_state(self) -> None:
        self._device.rts = bool(self._rts_state)

    def close(self) -> None:
        self.is_open = False

    @property
    def in_waiting(self) -> int:
        return len(self._device.pending) or (4096 if self._device.streaming() else 0)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise SerialException("read from a closed port")
        with self._lock:
            if self._unplug_after is not None and self._delivered >= self._unplug_after:
                raise SerialException("device reports readiness to read but returned no data (device disconnected?)")
            n = size if self._unplug_after is None else min(size, self._unplug_after - self._delivered)
            data = self._device.read(n)
            self._delivered += len(data)
        if not data and self._timeout:
            time.sleep(min(self._timeout, 0.05))  # nothing to say: the read times out
        return data

    def write(self, data: bytes) -> int:
        if not self.is_open:
            raise SerialException("write to a closed port")
        self._device.write(bytes(data))
        return len(data)

    def reset_input_buffer(self) -> None:
        pass

    def reset_output_buffer(self) -> None:
        pass

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True

    def emulated(self) -> Emulated:
        """The emulated device, for tests to inspect."""
        return self._device
