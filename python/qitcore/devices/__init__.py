"""Devices: :func:`open` a device by URL and read random bytes from it.

Backends (schemes): ``sim`` (the in-process simulator), ``sim+pty`` (the C reference firmware on
a pseudo-terminal, through pyserial), ``serial`` and pyserial's ``loop``, ``socket``,
``rfc2217``, and ``file`` (files and FIFOs of QDP/1 frames). Other packages add backends through
the ``qitcore.devices`` entry-point group or :func:`register_backend`.
"""

from __future__ import annotations

from . import file, pty_sim, serial_port, sim  # noqa: F401 - each registers its schemes
from ._registry import Options, Url, backends, open, open_raw, register_backend

__all__ = ["Options", "Url", "backends", "open", "open_raw", "register_backend"]
