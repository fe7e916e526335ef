"""``file://``: a file or FIFO of QDP/1 frames (a capture of a device, or a pipe from one),
read by a Rust thread. The sample format is not in the frames: give it in the query,
``?bits=8&packing=aligned&bitorder=big`` (those are the defaults). A file ends; a FIFO ends when
its writer closes it."""

from __future__ import annotations

import os

from ..errors import DeviceError
from ..stream import QrngStream
from ._registry import Options, Url, register_backend
from .serial_port import FORMAT_PARAMS
from .sim import stream_class


def _open_file(url: Url, options: Options, raw: bool) -> QrngStream:
    path = url.location + url.path if url.location and not url.path.startswith("/") else url.path
    if url.location and url.location != "localhost":
        path = url.location + url.path
    if not os.path.exists(path):
        raise DeviceError(f"{url.public}: no such file or FIFO: {path}")
    bits = url.get("bits", int, 8)
    core = options.core_stream(
        bits, url.get("packing", str, "aligned"), url.get("bitorder", str, "big"), 0, raw=raw, min_entropy=None
    )
    core.attach_file(path)
    info = {"path": path, "bits_per_sample": bits}
    return stream_class(raw)(
        core, description=url.public, info=info, min_entropy=None if raw else options.entropy(None)
    )


register_backend("file", _open_file, FORMAT_PARAMS)
