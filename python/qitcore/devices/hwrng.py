"""``hwrng://``: the Linux kernel's hardware RNG, ``/dev/hwrng``, with what sysfs says of it
(``rng_current``, ``rng_available``, ``rng_quality``: entropy per 1024 bits). The claim is
``rng_quality / 128`` bits per byte when the driver states a quality, else 4.0.
``?path=`` and ``?sysfs=`` point elsewhere (tests)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..errors import DeviceError, DeviceNotFound
from ..stream import QrngStream
from ._params import text
from ._registry import Options, Url, register_backend
from .sim import stream_class

SYSFS = "/sys/class/misc/hw_random"


def kernel_rng(sysfs: str = SYSFS) -> dict[str, str]:
    """rng_current, rng_available and rng_quality, where sysfs has them."""
    out = {}
    for name in ("rng_current", "rng_available", "rng_quality"):
        with contextlib.suppress(OSError):
            out[name] = (Path(sysfs) / name).read_text().strip()
    return out


def _open_hwrng(url: Url, options: Options, raw: bool) -> QrngStream:
    path = url.get("path", str, None) or url.path or "/dev/hwrng"
    if not os.path.exists(path):
        raise DeviceNotFound(f"{url.public}: {path} does not exist (no hardware RNG driver loaded)")
    if not os.access(path, os.R_OK):
        raise DeviceError(f"{url.public}: no permission to read {path} (it is usually root-only; add a udev rule)")
    info: dict[str, object] = {"device": path, **kernel_rng(url.get("sysfs", str, SYSFS))}
    if info.get("rng_current") in ("none", ""):
        raise DeviceNotFound(f"{url.public}: the kernel has no current hardware RNG (rng_current is none)")
    quality = _quality(str(info.get("rng_quality", "")))
    claim = quality / 128 if quality > 0 else 4.0
    info["claimed_min_entropy"] = claim
    core = options.core_stream(8, "aligned", "big", 0, raw=raw, min_entropy=claim)
    core.attach_file(path, framed=False)
    h = None if raw else options.entropy(claim)
    return stream_class(raw)(core, description=url.public, info=info, min_entropy=h)


def _quality(value: str) -> int:
    """``rng_quality``: entropy per 1024 bits, 0 to 1024; anything else (absent, not a number, out
    of range, as a broken or hostile driver might report) counts as no statement."""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 4 and int(value) <= 1024 else 0


register_backend("hwrng", _open_hwrng, (text("path", "the device (/dev/hwrng)"), text("sysfs", "its sysfs folder")))
