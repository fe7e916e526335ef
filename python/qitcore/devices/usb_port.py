"""USB devices through pyusb: a bulk IN/OUT endpoint pair behind pyserial's port interface
(``read`` returns what arrives within 50 ms, ``write``, ``close``), with the errors a user can
act on: absent (``DeviceNotFound``), claimed by another program (``DeviceBusy``), not permitted
(the udev rule to add), unplugged (the read fails: ``DeviceDisconnected`` on the stream).

- ``usb://1209:0001?serial=...``: a QDP/1 device on bulk endpoints (the first OUT and IN).
- ``chaoskey://?endpoint=cooked&serial=...``: altusmetrum ChaosKey (1d50:60c6): whitened bytes on
  endpoint 0x85 (claim 7.0 bits per byte), or ``endpoint=raw``: 12-bit noise samples in
  little-endian 16-bit words on 0x86, for ``open_raw`` (assessment) only. The kernel's chaoskey
  driver is detached while qitcore holds the device and reattached on closing.
"""

from __future__ import annotations

import contextlib
import errno
import re
from typing import Any

from ..errors import DeviceBusy, DeviceError, DeviceNotFound, InvalidArgumentError
from ..stream import QrngStream
from ._extras import device_packages
from ._params import choice, text
from ._registry import Options, Url, register_backend
from .catalog import by_ids, udev_rule
from .link import PortLink
from .qdp import QdpLink

__all__ = ["UsbPort", "find_usb"]


def _usb() -> Any:
    with device_packages("opening a USB device"):
        import usb.core
        import usb.util

    return usb


def find_usb(vid: int, pid: int, serial: str | None, backend: Any, description: str) -> Any:
    """The attached device with these IDs (and serial number), or ``DeviceNotFound``."""
    usb = _usb()
    try:
        devices = list(usb.core.find(find_all=True, idVendor=vid, idProduct=pid, backend=backend))
    except usb.core.NoBackendError as exc:
        raise DeviceError(f"{description}: no USB backend (install libusb-1.0)") from exc
    for dev in devices:
        if serial is None or _string(dev, "serial_number") == serial:
            return dev
    which = f" with serial number {serial}" if serial else ""
    raise DeviceNotFound(f"{description}: no USB device {vid:04x}:{pid:04x}{which} is attached")


def _string(dev: Any, name: str) -> str | None:
    with contextlib.suppress(Exception):
        return str(getattr(dev, name))
    return None


class UsbPort:
    """Bulk endpoints of interface 0 as a port."""

    def __init__(self, dev: Any, in_ep: int | None, out_ep: int | None, description: str) -> None:
        usb = _usb()
        self.dev, self.description = dev, description
        self.timeout = 0.05
        self._detached = False
        try:
            if dev.is_kernel_driver_active(0):
                dev.detach_kernel_driver(0)
                self._detached = True
            with contextlib.suppress(usb.core.USBError):
                if dev.get_active_configuration() is None:
                    dev.set_configuration()
            dev.set_configuration()
            usb.util.claim_interface(dev, 0)
        except usb.core.USBError as exc:
            self._fail(exc)
        endpoints = [ep.bEndpointAddress for ep in dev.get_active_configuration()[(0, 0)]]
        self.in_ep = in_ep if in_ep is not None else next(e for e in endpoints if e & 0x80)
        self.out_ep = out_ep if out_ep is not None else next((e for e in endpoints if not e & 0x80), None)
        if self.in_ep not in endpoints:
            raise DeviceError(f"{description}: no endpoint 0x{self.in_ep:02x}")

    def _fail(self, exc: Any) -> None:
        err = getattr(exc, "errno", None)
        driver = by_ids(self.dev.idVendor, self.dev.idProduct)
        if err == errno.EACCES:
            hint = f"; add a udev rule:\n{udev_rule(driver)}" if driver else ""
            raise DeviceError(f"{self.description}: no permission to open the device{hint}") from exc
        if err == errno.EBUSY:
            raise DeviceBusy(f"{self.description}: the device is claimed by another program") from exc
        if err == errno.ENODEV:
            raise DeviceNotFound(f"{self.description}: the device is gone") from exc
        raise DeviceError(f"{self.description}: {exc}") from exc

    def read(self, size: int) -> bytes:
        usb = _usb()
        try:
            return bytes(self.dev.read(self.in_ep, size, int(self.timeout * 1000)))
        except usb.core.USBTimeoutError:
            return b""

    def write(self, data: bytes) -> int:
        if self.out_ep is None:
            raise DeviceError(f"{self.description}: the device takes no commands")
        return int(self.dev.write(self.out_ep, data, 1000))

    def flush(self) -> None:
        pass

    def reset_input_buffer(self) -> None:
        pass

    @property
    def in_waiting(self) -> int:
        return 0

    def close(self) -> None:
        usb = _usb()
        with contextlib.suppress(Exception):
            usb.util.release_interface(self.dev, 0)
        if self._detached:
            with contextlib.suppress(Exception):
                self.dev.attach_kernel_driver(0)
        with contextlib.suppress(Exception):
            usb.util.dispose_resources(self.dev)


def _ids(url: Url, default: tuple[int, int]) -> tuple[int, int]:
    ids = url.location or url.path.strip("/")
    if not ids:
        return default
    # Four hexadecimal digits at most each: USB IDs are 16-bit.
    if not re.fullmatch(r"[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}", ids):
        raise InvalidArgumentError(f"{url.public}: expected usb://VID:PID in hexadecimal, e.g. usb://1209:0001")
    vid, pid = (int(part, 16) for part in ids.split(":"))
    return vid, pid


def _open_usb(url: Url, options: Options, raw: bool) -> QrngStream:
    vid, pid = _ids(url, (0x1209, 0x0001))
    dev = find_usb(vid, pid, url.get("serial", str, None), options.usb_backend, url.public)
    port = UsbPort(dev, None, None, url.public)
    return QdpLink(port, options, url.public).open(raw)


def _open_chaoskey(url: Url, options: Options, raw: bool) -> QrngStream:
    endpoint = url.get("endpoint", str, "cooked")
    if endpoint not in ("cooked", "raw"):
        raise InvalidArgumentError(f"endpoint: expected cooked or raw, got {endpoint!r}")
    if endpoint == "raw" and not raw:
        raise InvalidArgumentError(
            "endpoint: the raw endpoint's 12-bit samples are for qitcore.open_raw (assessment); random bytes come "
            "from the cooked endpoint"
        )
    bits = 8 if endpoint == "cooked" else 12
    claim = 7.0 if endpoint == "cooked" else None
    # The stream first: a refused option must not leave the device claimed.
    core = options.core_stream(bits, "aligned", "big", 0, raw=raw, min_entropy=claim)
    dev = find_usb(0x1D50, 0x60C6, url.get("serial", str, None), options.usb_backend, url.public)
    port = UsbPort(dev, 0x85 if endpoint == "cooked" else 0x86, None, url.public)
    info = {"model": "ChaosKey", "endpoint": endpoint, "serial": _string(dev, "serial_number"),
            "product": _string(dev, "product"), "bits_per_sample": bits, "claimed_min_entropy": claim}  # fmt: skip
    return PortLink(port, options, url.public, framed=False).start(core, info, raw, claim)


SERIAL = text("serial", "the device's USB serial number")
register_backend("usb", _open_usb, (SERIAL,))
register_backend("chaoskey", _open_chaoskey, (SERIAL, choice("endpoint", "cooked", "raw", help="which endpoint")))
