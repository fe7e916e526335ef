"""The C reference firmware (``firmware_interface/c``) built for this machine: once per source
version, into a cache folder, for the pty simulator (a program) and the emulated USB device (a
shared library)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import DeviceError

__all__ = ["build_firmware", "firmware_sources"]

HEADERS = ("qdp.h", "qdp_device.h")


def firmware_sources() -> Path:
    """``firmware_interface/c`` of this checkout (``QITCORE_FIRMWARE`` overrides)."""
    env = os.environ.get("QITCORE_FIRMWARE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "firmware_interface" / "c"


def build_firmware(name: str, sources: tuple[str, ...], flags: tuple[str, ...] = ()) -> Path:
    """``sources`` (C files of the firmware folder) compiled with ``flags`` into ``name``, cached
    under a digest of the sources, the headers and the flags.

    Raises:
        DeviceError: the sources are missing, there is no C compiler, or the build failed.
    """
    src = firmware_sources()
    files = [src / n for n in (*sources, *HEADERS)]
    if not all(f.exists() for f in files):
        raise DeviceError(f"the C reference firmware is not at {src} (set QITCORE_FIRMWARE)")
    command = ["-std=c99", "-O2", "-DQDP_CRC_TABLE", *flags]
    digest = hashlib.sha256(" ".join(command).encode() + b"".join(f.read_bytes() for f in files)).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qitcore"
    stem, dot, suffix = name.partition(".")
    target = cache / f"{stem}-{digest}{dot}{suffix}"
    if target.exists():
        return target
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise DeviceError("no C compiler (gcc) to build the reference firmware")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        out = Path(tmp) / name
        result = subprocess.run(
            [gcc, *command, "-o", str(out), *(str(src / n) for n in sources)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise DeviceError(f"building the reference firmware failed:\n{result.stderr}")
        os.replace(out, target)
    return target
