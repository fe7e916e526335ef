"""pyserial and pyusb come with qitcore's ``devices`` extra (``pip install 'qitcore[devices]'``):
the core (extraction, entropy assessment, health tests, QKD, the KME, ``sim://``, ``file://``)
runs without them. Every import of either goes through :func:`device_packages`, so a missing one
is a :class:`~qitcore.errors.DeviceError` that says what to install rather than a bare
``ModuleNotFoundError``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..errors import DeviceError

__all__ = ["INSTALL", "device_packages"]

INSTALL = "pip install 'qitcore[devices]'"
# Import name -> the distribution that provides it.
PACKAGES = {"serial": "pyserial", "usb": "pyusb"}


@contextlib.contextmanager
def device_packages(what: str) -> Iterator[None]:
    """Imports of pyserial or pyusb made inside; ``what`` (a URL, a feature) names what needs them.

    Raises:
        DeviceError: pyserial or pyusb is not installed.
    """
    try:
        yield
    except ImportError as exc:
        top = (exc.name or "").partition(".")[0]
        if top not in PACKAGES:
            raise
        raise DeviceError(f"{what} needs {PACKAGES[top]}, part of qitcore's devices extra: {INSTALL}") from exc
