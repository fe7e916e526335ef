"""Serial transports through pyserial: ``serial:///dev/ttyACM0`` (or a bare device path) and
pyserial's own URLs ``loop://``, ``socket://host:port`` and ``rfc2217://host:port``. The device
speaks QDP/1; ``?baud=`` sets the line speed (CDC devices ignore it). ``?handshake=none`` skips
the commands for a link that only carries DATA frames (the format then comes from ``bits``,
``packing``, ``bitorder`` in the query and ``min_entropy`` must be given); the stream's
``transport`` attribute is the pyserial object."""

from __future__ import annotations

import contextlib
import errno
from typing import Any
from urllib.parse import urlencode

from ..errors import DeviceBusy, DeviceError, DeviceNotFound, os_reason
from ..stream import QrngStream
from ._extras import device_packages
from ._params import choice, integer, text
from ._registry import OPTION_PARAMS, Options, Url, register_backend
from .qdp import QdpLink

BAUD = integer("baud", 1, 2**31 - 1, "line speed, bits per second")
FORMAT_PARAMS = (
    integer("bits", 1, 16, "bits per sample"),
    choice("packing", "aligned", "packed", help="how samples sit in a payload"),
    choice("bitorder", "big", "little", help="bit order of packed samples"),
)
"""The sample format of a stream that does not say it (files, links without the handshake)."""
SERIAL_PARAMS = (
    BAUD,
    choice("handshake", "qdp", "none", help="none: the link carries DATA frames only"),
    *FORMAT_PARAMS,
)

# pyserial's own options of its URL handlers, passed on to them.
_PYSERIAL = {
    "serial": (),
    "loop": (text("logging", "pyserial's logging level"),),
    "socket": (text("logging", "pyserial's logging level"),),
    "rfc2217": (
        text("logging", "pyserial's logging level"),
        text("ign_set_control", "pyserial: do not wait for SET_CONTROL replies"),
        text("poll_modem", "pyserial: poll the modem state"),
    ),
}

# Query keys qitcore reads; the rest are pyserial's.
_OURS = {*OPTION_PARAMS, *(p.name for p in SERIAL_PARAMS)}


def open_serial(spec: str, baud: int, description: str) -> Any:
    """Opens a serial device path or pyserial URL (exclusively, for paths), mapping failures to
    qitcore's errors: absent, busy, not permitted."""
    with device_packages(f"opening {spec}"):
        import serial

    try:
        if "://" in spec:
            port = serial.serial_for_url(spec, baudrate=baud, timeout=0.05)
        else:
            port = serial.Serial(spec, baudrate=baud, timeout=0.05, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        text = str(exc)
        err = getattr(exc, "errno", None)
        if err == errno.ENOENT or "No such file" in text or ("could not open port" in text and "[Errno 2]" in text):
            raise DeviceNotFound(f"{description}: no such device: {spec}") from exc
        if err == errno.EBUSY or "exclusively lock" in text or "[Errno 16]" in text:
            raise DeviceBusy(f"{description}: {spec} is in use by another program") from exc
        if err == errno.EACCES or "[Errno 13]" in text:
            raise DeviceError(
                f"{description}: no permission to open {spec}; add yourself to its group (ls -l {spec}) or add a udev "
                "rule (qitcore devices prints one)"
            ) from exc
        raise DeviceError(f"{description}: {os_reason(exc)}") from exc
    # CDC devices stream while DTR is set (PROTOCOL.md §6); some transports have no DTR.
    with contextlib.suppress(AttributeError, OSError, NotImplementedError, ValueError):
        port.dtr = True
    return port


def open_port(url: Url) -> Any:
    """The pyserial port the URL names, opened."""
    baud = BAUD.check(url.get("baud", int, 115200))
    if url.scheme == "serial":
        return open_serial(url.path or url.location, baud, url.public)
    rest = {k: v for k, v in url.query.items() if k not in _OURS}
    query = ("?" + urlencode(rest, doseq=True)) if rest else ""
    return open_serial(f"{url.scheme}://{url.location}{url.path}{query}", baud, url.public)


def _open_serial(url: Url, options: Options, raw: bool) -> QrngStream:
    if url.get("handshake", str, "qdp") == "none":
        bits = url.get("bits", int, 8)
        packing, order = url.get("packing", str, "aligned"), url.get("bitorder", str, "big")
        # The stream first: a refused option must not leave the port open.
        core = options.core_stream(bits, packing, order, 0, raw=raw, min_entropy=None)
        return QdpLink(open_port(url), options, url.public).start(core, {"bits_per_sample": bits}, raw, None)
    return QdpLink(open_port(url), options, url.public).open(raw)


for _scheme, _theirs in _PYSERIAL.items():
    register_backend(_scheme, _open_serial, (*SERIAL_PARAMS, *_theirs))
