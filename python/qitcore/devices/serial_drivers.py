"""Drivers for serial (USB CDC) QRNGs that stream plain bytes, written from their public
documentation. Each finds its device by USB ID unless given a path (``truerng:///dev/ttyACM0``)
or a pyserial URL (``?port=emu://truerng``, as the tests do), and declares its sample format
(bytes) and a conservative default min-entropy claim per byte.

- ``truerng://``: TrueRNG v1-v3 (04d8:f5fe): whitened bytes while DTR is set. Claim 7.0.
- ``truerngpro://?mode=normal``: TrueRNGpro (16d0:0aa0) and ProV2 (04d8:ebb5). The mode is
  selected by the baud-rate "knock": open at 110 baud, switch to 300, back to 110, then to the
  mode's rate: ``normal`` 300, ``rng1`` 4800, ``rng2`` 9600, ``raw-binary`` 19200, and on the V2
  ``unwhitened`` 57600. Whitened modes claim 7.0, raw ones 2.0. The debug and ASCII modes print
  text and are refused.
- ``onerng://?source=avalanche&whiten=1``: OneRNG (1d50:6086): ``cmd`` + a mask digit (bit 0
  whitening off, bit 1 RF source on, bit 2 avalanche off), ``cmdO`` to run, ``cmdo`` to pause on
  closing, ``cmdw`` to flush; data while RTS is set. Whitened 7.0, raw (``whiten=0``) 2.0.
- ``cdc:///dev/ttyACM0?baud=115200``: any device that streams random bytes; no claim, so
  ``min_entropy`` must be given.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import DeviceNotFound, InvalidArgumentError
from ..stream import QrngStream
from ._extras import device_packages
from ._params import choice, integer, text
from ._registry import Options, Url, register_backend
from .catalog import DRIVERS
from .link import PortLink
from .serial_port import BAUD, open_serial

WHITENED, RAW = 7.0, 2.0
PRO_MODES = {"normal": (300, WHITENED), "rng1": (4800, WHITENED), "rng2": (9600, WHITENED),
             "raw-binary": (19200, RAW), "unwhitened": (57600, RAW)}  # fmt: skip
KNOCK = (110, 300, 110)


def find_port(url: Url, scheme: str) -> str:
    """The port to open: ``?port=``, the URL's path, or the first attached device of the kind."""
    explicit = url.get("port", str, None) or url.path or url.location
    if explicit:
        return str(explicit)
    with device_packages(f"opening {scheme}://"):
        from serial.tools import list_ports

    wanted = {(d.vid, d.pid) for d in DRIVERS if d.scheme == scheme}
    for info in list_ports.comports():
        if (info.vid, info.pid) in wanted:
            return str(info.device)
    ids = ", ".join(f"{v:04x}:{p:04x}" for v, p in sorted(wanted))
    raise DeviceNotFound(
        f"{url.public}: no device attached with USB ID {ids}; give its path, e.g. {scheme}:///dev/ttyACM0"
    )


def _bytes_stream(
    url: Url, options: Options, raw: bool, port: Any, claim: float | None, info: dict[str, Any]
) -> QrngStream:
    link = PortLink(port, options, url.public, framed=False)
    try:
        core = options.core_stream(8, "aligned", "big", 0, raw=raw, min_entropy=claim)
    except BaseException:
        link.close()  # a refused option leaves no port open
        raise
    return link.start(core, {"bits_per_sample": 8, "claimed_min_entropy": claim, **info}, raw, claim)


def _truerng(url: Url, options: Options, raw: bool) -> QrngStream:
    spec = find_port(url, "truerng")
    port = open_serial(spec, 115200, url.public)  # DTR is set on opening: the device streams
    return _bytes_stream(url, options, raw, port, WHITENED, {"device": spec, "model": "TrueRNG"})


def _truerngpro(url: Url, options: Options, raw: bool) -> QrngStream:
    mode = url.get("mode", str, "normal")
    if mode not in PRO_MODES:
        raise InvalidArgumentError(
            f"mode: {mode!r} is not a sample mode; known: {', '.join(PRO_MODES)} (the debug and ASCII modes print text)"
        )
    baud, claim = PRO_MODES[mode]
    spec = find_port(url, "truerngpro")
    port = open_serial(spec, KNOCK[0], url.public)
    port.dtr = False
    for rate in (*KNOCK[1:], baud):  # the knock, then the mode's rate
        time.sleep(0.01)
        port.baudrate = rate
    port.reset_input_buffer()
    port.dtr = True
    return _bytes_stream(url, options, raw, port, claim, {"device": spec, "model": "TrueRNGpro", "mode": mode})


def _onerng(url: Url, options: Options, raw: bool) -> QrngStream:
    source = url.get("source", str, "avalanche")
    whiten = url.get("whiten", int, 1)
    masks = {"avalanche": 0, "rf": 2 | 4, "both": 2}
    if source not in masks:
        raise InvalidArgumentError(f"source: expected avalanche, rf or both, got {source!r}")
    mask = masks[source] | (0 if whiten else 1)
    spec = find_port(url, "onerng")
    port = open_serial(spec, 115200, url.public)
    port.rts = True
    for command in (b"cmdo", b"cmd%x" % mask, b"cmdw", b"cmdO"):  # pause, mode, flush, run
        port.write(command)
        port.flush()
        time.sleep(0.01)
    port.reset_input_buffer()
    link_info = {"device": spec, "model": "OneRNG", "source": source, "whitened": bool(whiten)}
    stream = _bytes_stream(url, options, raw, port, WHITENED if whiten else RAW, link_info)
    stream.device.before_close.append(lambda: port.write(b"cmdo"))
    return stream


def _cdc(url: Url, options: Options, raw: bool) -> QrngStream:
    spec = url.get("port", str, None) or url.path
    if not spec:
        raise InvalidArgumentError(f"{url.public}: give the device, e.g. cdc:///dev/ttyACM0")
    port = open_serial(spec, url.get("baud", int, 115200), url.public)
    return _bytes_stream(url, options, raw, port, None, {"device": spec, "model": "CDC byte stream"})


PORT = text("port", "the device's path or a pyserial URL")
register_backend("truerng", _truerng, (PORT,))
register_backend("truerngpro", _truerngpro, (PORT, choice("mode", *PRO_MODES, help="the sample mode")))
register_backend(
    "onerng",
    _onerng,
    (PORT, choice("source", "avalanche", "rf", "both", help="noise source"), integer("whiten", 0, 1, "1: whitened")),
)
register_backend("cdc", _cdc, (PORT, BAUD))
