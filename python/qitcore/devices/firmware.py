"""The C reference firmware built for this machine, for the pty simulator (a program) and the
emulated USB device (a shared library).

The sources ship inside the package (``qitcore/_firmware``; in a checkout those are links to
``firmware_interface/c``, their one copy), so an installed wheel has them too. They are compiled
with the system C compiler on first use, once per source version, compiler and flags, into a cache
folder of the user's own (``$XDG_CACHE_HOME/qitcore/firmware``, else ``~/.cache/...``), never
inside the installed package.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shlex
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from ..errors import DeviceError, os_reason

__all__ = ["build_firmware", "firmware_cache", "firmware_sources"]

log = logging.getLogger("qitcore.devices.firmware")

HEADERS = ("qdp.h", "qdp_device.h")
COMPILE_TIMEOUT_S = 300.0
NO_COMPILER = (
    "sim+pty:// and the emulated USB device compile the C reference firmware on first use and need a C "
    "compiler; none was found (looked for $CC, cc, gcc, clang): install one (Debian/Ubuntu: apt-get install gcc; "
    "Fedora: dnf install gcc; Alpine: apk add gcc musl-dev) or set CC"
)


def firmware_sources() -> Path:
    """The folder of the firmware's C sources: ``qitcore/_firmware`` (``QITCORE_FIRMWARE`` overrides)."""
    env = os.environ.get("QITCORE_FIRMWARE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "_firmware"


def firmware_cache() -> Path:
    """The per-user folder the compiled firmware is kept in (created owner-only on first build)."""
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "qitcore" / "firmware"


def _compiler() -> list[str]:
    """The C compiler's command: ``$CC`` (which may carry arguments, ``ccache gcc``), else the
    first of cc, gcc, clang on the PATH."""
    cc = shlex.split(os.environ.get("CC", ""))
    if cc and shutil.which(cc[0]):
        return cc
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    raise DeviceError(NO_COMPILER)


def _private_folder(folder: Path) -> Path:
    """``folder``, created if missing, checked to be ours and closed to everyone else: a library
    loaded from here runs in this process, so no other user may be able to replace it."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid():
        raise DeviceError(f"the firmware cache {folder} belongs to another user; set XDG_CACHE_HOME to one of yours")
    if stat.S_IMODE(info.st_mode) & 0o077:
        folder.chmod(0o700)
    return folder


def build_firmware(name: str, sources: tuple[str, ...], flags: tuple[str, ...] = ()) -> Path:
    """``sources`` (C files of the firmware folder) compiled with ``flags`` into ``name``, kept in
    :func:`firmware_cache` under a digest of the sources, the headers, the compiler, the flags and
    the machine, so a change to any of them builds anew.

    Raises:
        DeviceError: the sources are missing, there is no C compiler, or the build failed.
    """
    src = firmware_sources()
    files = [src / n for n in (*sources, *HEADERS)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise DeviceError(f"the C reference firmware is not complete at {src} (missing {', '.join(missing)})")
    cc = _compiler()
    command = ["-std=c99", "-O2", "-DQDP_CRC_TABLE", *flags]
    key = "\0".join([*cc, *command, platform.machine(), platform.system()]).encode()
    digest = hashlib.sha256(key + b"".join(f.read_bytes() for f in files)).hexdigest()[:16]
    cache = _private_folder(firmware_cache())
    stem, dot, suffix = name.partition(".")
    target = cache / f"{stem}-{digest}{dot}{suffix}"
    if target.is_file():
        return target
    log.info("compiling the C reference firmware (%s) with %s into %s", name, cc[0], cache)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        out = Path(tmp) / name
        try:
            result = subprocess.run(
                [*cc, *command, "-o", str(out), *(str(src / n) for n in sources)],
                capture_output=True,
                text=True,
                timeout=COMPILE_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            limit = f"{COMPILE_TIMEOUT_S:.0f} s"
            raise DeviceError(f"compiling the reference firmware with {cc[0]} took over {limit}") from None
        except OSError as exc:
            raise DeviceError(f"could not run the C compiler {cc[0]}: {os_reason(exc)}") from None
        if result.returncode != 0:
            raise DeviceError(f"compiling the reference firmware with {cc[0]} failed:\n{result.stderr}")
        os.replace(out, target)  # atomic: a concurrent build of the same digest writes the same bytes
    return target
