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

from ..errors import DeviceBusy, DeviceError, DeviceNotFound
from ..stream import QrngStream
from ._extras import device_packages
from ._registry import Options, Url, register_backend
from .qdp import QdpLink

# Query keys qitcore reads; the rest are pyserial's.
_OURS = {
    "min_entropy", "epsilon", "alpha", "startup_samples", "block_bits", "gap_policy", "buffer_bytes",
    "timeout", "baud", "handshake", "bits", "packing", "bitorder",
}  # fmt: skip


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
        raise DeviceError(f"{description}: {exc}") from exc
    # CDC devices stream while DTR is set (PROTOCOL.md §6); some transports have no DTR.
    with contextlib.suppress(AttributeError, OSError, NotImplementedError, ValueError):
        port.dtr = True
    return port


def open_port(url: Url) -> Any:
    """The pyserial port the URL names, opened."""
    baud = url.get("baud", int, 115200)
    if url.scheme == "serial":
        return open_serial(url.path or url.location, baud, url.text)
    rest = {k: v for k, v in url.query.items() if k not in _OURS}
    query = ("?" + urlencode(rest, doseq=True)) if rest else ""
    return open_serial(f"{url.scheme}://{url.location}{url.path}{query}", baud, url.text)


def _open_serial(url: Url, options: Options, raw: bool) -> QrngStream:
    port = open_port(url)
    if url.get("handshake", str, "qdp") == "none":
        bits = url.get("bits", int, 8)
        packing, order = url.get("packing", str, "aligned"), url.get("bitorder", str, "big")
        core = options.core_stream(bits, packing, order, 0, raw=raw, min_entropy=None)
        return QdpLink(port, options, url.text).start(core, {"bits_per_sample": bits}, raw, None)
    return QdpLink(port, options, url.text).open(raw)


for _scheme in ("serial", "loop", "socket", "rfc2217"):
    register_backend(_scheme, _open_serial)
