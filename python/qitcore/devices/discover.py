"""What is attached: serial ports (pyserial's list_ports) and USB devices (pyusb) that qitcore
has a driver for, and the kernel's hardware RNG, with whether this user may open each."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ._extras import device_packages
from .catalog import DRIVERS, Driver, by_ids, udev_rule
from .hwrng import SYSFS, kernel_rng

__all__ = ["Found", "discover"]


@dataclass(frozen=True)
class Found:
    driver: str
    name: str
    ids: str
    location: str
    serial: str | None
    accessible: bool
    url: str
    hint: str | None = None
    """How to get permission, when missing."""


def _serial(ports: Iterable[Any]) -> list[Found]:
    out = []
    for port in ports:
        driver = by_ids(getattr(port, "vid", None), getattr(port, "pid", None))
        if driver is None or driver.transport != "serial":
            continue
        accessible = os.access(port.device, os.R_OK | os.W_OK)
        out.append(
            Found(driver.scheme, driver.name, driver.ids, port.device, getattr(port, "serial_number", None),
                  accessible, f"{driver.scheme}://{port.device}", None if accessible else udev_rule(driver))
        )  # fmt: skip
    return out


def _usb_accessible(dev: Any) -> tuple[bool, str | None]:
    """Whether the device opens, and its serial number when it does."""
    import usb.core

    try:
        # pyusb hides an open failure behind a ValueError when reading strings: open first.
        dev._ctx.managed_open()
    except usb.core.USBError as exc:
        return getattr(exc, "errno", None) != 13, None
    except AttributeError:
        pass
    try:
        return True, str(dev.serial_number)
    except (usb.core.USBError, ValueError, NotImplementedError):
        return True, None


def _usb(backend: Any) -> list[Found]:
    try:
        import usb.core
    except ImportError:
        return []
    out = []
    wanted = [d for d in DRIVERS if d.transport == "usb"]
    try:
        devices = list(usb.core.find(find_all=True, backend=backend))
    except usb.core.NoBackendError:
        return []
    for dev in devices:
        driver: Driver | None = next((d for d in wanted if (d.vid, d.pid) == (dev.idVendor, dev.idProduct)), None)
        if driver is None:
            continue
        accessible, serial = _usb_accessible(dev)
        where = f"bus {dev.bus} address {dev.address}"
        url = f"{driver.scheme}://" + (f"{driver.ids}" if driver.scheme == "usb" else "")
        if serial:
            url += "?" + urlencode({"serial": serial})  # a serial number may hold '&' or '=
        out.append(Found(driver.scheme, driver.name, driver.ids, where, serial, accessible, url,
                         None if accessible else udev_rule(driver)))  # fmt: skip
    return out


def _hwrng(path: str, sysfs: str) -> list[Found]:
    if not os.path.exists(path):
        return []
    info = kernel_rng(sysfs)
    current = info.get("rng_current", "unknown")
    accessible = os.access(path, os.R_OK)
    hint = None if accessible else f'KERNEL=="hwrng", MODE="0640", GROUP="plugdev"  # {path} (kernel hardware RNG)'
    return [Found("hwrng", f"kernel hardware RNG ({current})", "-", path, None, accessible, "hwrng://", hint)]


def discover(
    *, serial_ports: Iterable[Any] | None = None, usb_backend: Any = None, hwrng: str = "/dev/hwrng", sysfs: str = SYSFS
) -> list[Found]:
    """Every attached device qitcore can drive. ``serial_ports`` defaults to pyserial's
    ``list_ports.comports()``; ``usb_backend`` to libusb."""
    if serial_ports is None:
        with device_packages("listing serial ports"):
            from serial.tools import list_ports

        serial_ports = list_ports.comports()
    found = _serial(serial_ports)
    with contextlib.suppress(Exception):  # no libusb: USB devices are simply not listed
        found += _usb(usb_backend)
    return found + _hwrng(hwrng, sysfs)
