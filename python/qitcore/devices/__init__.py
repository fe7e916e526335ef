"""Devices: :func:`open` a device by URL and read random bytes from it.

Backends (schemes): ``sim`` (the in-process simulator), ``sim+pty`` (the C reference firmware on
a pseudo-terminal, through pyserial), ``serial`` and pyserial's ``loop``, ``socket``,
``rfc2217`` (and any other pyserial URL handler), ``file`` (files and FIFOs of QDP/1 frames),
``usb`` (QDP/1 on bulk endpoints), and the hardware drivers ``truerng``, ``truerngpro``,
``onerng``, ``chaoskey``, ``cdc``, ``hwrng``; and a running ``qitcore serve``: ``qitcored`` (on
its Unix socket) and ``https`` (its HTTPS endpoint, ``https://HOST:PORT?cert=&key=&ca=``). Other
packages add backends through the ``qitcore.devices`` entry-point group or
:func:`register_backend`, declaring the URL parameters they read (:class:`Param`); :func:`open`
refuses any other parameter, and values out of range, by name before a backend runs.
:func:`backend_params` lists what a scheme takes.
"""

from __future__ import annotations

from . import daemon, file, https_client, hwrng, pty_sim, serial_drivers, serial_port, sim, usb_port  # noqa: F401 - each registers
from ._params import Param
from ._registry import OPTION_PARAMS, Options, Url, backend_params, backends, open, open_raw, register_backend

__all__ = [
    "OPTION_PARAMS",
    "Options",
    "Param",
    "Url",
    "backend_params",
    "backends",
    "open",
    "open_raw",
    "register_backend",
]
