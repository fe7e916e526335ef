"""Serial transports through pyserial: ``serial:///dev/ttyACM0`` (or a bare device path) and
pyserial's own URLs ``loop://``, ``socket://host:port`` and ``rfc2217://host:port``. The device
speaks QDP/1; ``?baud=`` sets the line speed (CDC devices ignore it). ``?handshake=none`` skips
the commands for a link that only carries DATA frames (the format then comes from ``bits``,
``packing``, ``bitorder`` in the query and ``min_entropy`` must be given); the stream's
``transport`` attribute is the pyserial object."""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlencode

from ..errors import DeviceError
from ..stream import QrngStream
from ._registry import Options, Url, register_backend
from .qdp import QdpLink

# Query keys qitcore reads; the rest are pyserial's.
_OURS = {
    "min_entropy", "epsilon", "alpha", "startup_samples", "block_bits", "gap_policy", "buffer_bytes",
    "timeout", "baud", "handshake", "bits", "packing", "bitorder",
}  # fmt: skip


def open_port(url: Url) -> Any:
    """The pyserial port the URL names, opened."""
    import serial  # pyserial: a dependency of qitcore's device support

    baud = url.get("baud", int, 115200)
    try:
        if url.scheme == "serial":
            port = serial.Serial(url.path or url.location, baudrate=baud, timeout=0.05)
        else:
            rest = {k: v for k, v in url.query.items() if k not in _OURS}
            query = ("?" + urlencode(rest, doseq=True)) if rest else ""
            port = serial.serial_for_url(f"{url.scheme}://{url.location}{url.path}{query}", baudrate=baud, timeout=0.05)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise DeviceError(f"{url.text}: {exc}") from exc
    # CDC devices stream while DTR is set (PROTOCOL.md §6); some transports have no DTR.
    with contextlib.suppress(AttributeError, OSError, NotImplementedError, ValueError):
        port.dtr = True
    return port


def _open_serial(url: Url, options: Options, raw: bool) -> QrngStream:
    port = open_port(url)
    link = QdpLink(port, options, url.text)
    if url.get("handshake", str, "qdp") == "none":
        bits = url.get("bits", int, 8)
        packing, order = url.get("packing", str, "aligned"), url.get("bitorder", str, "big")
        core = options.core_stream(bits, packing, order, 0, raw=raw, min_entropy=None)
        stream = link.start(core, {"bits_per_sample": bits}, raw, None)
    else:
        stream = link.open(raw)
    stream.transport = port  # type: ignore[attr-defined]
    return stream


for _scheme in ("serial", "loop", "socket", "rfc2217"):
    register_backend(_scheme, _open_serial)
