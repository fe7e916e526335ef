"""A pyusb backend (``usb.backend.IBackend``) emulating USB devices, so that ``usb.core.find``
and the drivers' real code paths (configuration, interface claiming, kernel-driver detaching,
string descriptors, bulk transfers with timeouts) run without hardware::

    backend = EmulatedBackend([ChaosKey(), QdpUsbDevice()])
    qitcore.open("chaoskey://", usb_backend=backend)

Faults: ``device.unplug()`` (transfers then fail with ENODEV), ``device.busy = True`` (claiming
fails with EBUSY), ``device.permitted = False`` (opening fails with EACCES),
``device.kernel_driver = True`` (a kernel driver holds interface 0 until detached).
"""

from __future__ import annotations

import array
import ctypes
import errno
import os
import threading
from collections import deque
from types import SimpleNamespace
from typing import Any

import numpy as np

from .. import _core
from ..devices._extras import device_packages

with device_packages("qitcore.testing.usb"):
    import usb.backend
    from usb.core import USBError, USBTimeoutError

__all__ = ["ChaosKey", "EmulatedBackend", "EmulatedDevice", "QdpUsbDevice"]

BULK = 2


class EmulatedDevice:
    """A USB device with one configuration and one interface of bulk endpoints. Subclasses say
    what the IN endpoints return (``bulk_in``) and do with OUT data (``bulk_out``)."""

    vid = 0
    pid = 0
    manufacturer = ""
    product = ""
    serial = ""
    endpoints: tuple[tuple[int, int], ...] = ()  # (address, max packet size)

    def __init__(self, serial: str | None = None, bus: int = 1, address: int = 2) -> None:
        if serial is not None:
            self.serial = serial
        self.bus, self.address = bus, address
        self.present = True
        self.busy = False
        self.permitted = True
        self.kernel_driver = False
        self.claimed = False
        self.configuration = 0

    def unplug(self) -> None:
        self.present = False

    def check(self) -> None:
        if not self.present:
            raise USBError("No such device (it may have been disconnected)", -4, errno.ENODEV)

    def bulk_in(self, ep: int, size: int, timeout_ms: int) -> bytes:
        raise USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)

    def bulk_out(self, ep: int, data: bytes) -> int:
        return len(data)

    def strings(self) -> list[str]:
        return ["", self.manufacturer, self.product, self.serial]


class ChaosKey(EmulatedDevice):
    """altusmetrum ChaosKey: cooked (whitened) bytes on 0x85, raw 12-bit noise samples in
    little-endian 16-bit words on 0x86, 64-byte full-speed packets; bound to the kernel's
    chaoskey driver until detached."""

    vid, pid = 0x1D50, 0x60C6
    manufacturer = "altusmetrum.org"
    product = "ChaosKey-hw-1.0-sw-1.6.6"
    serial = "0010000000000000"
    endpoints = ((0x85, 64), (0x86, 64))

    def __init__(self, serial: str | None = None, **kw: Any) -> None:
        super().__init__(serial, **kw)
        self.kernel_driver = True
        self.noise = _core.NoiseModel(bits=12, seed=3)

    def bulk_in(self, ep: int, size: int, timeout_ms: int) -> bytes:
        size -= size % 64
        if ep == 0x85:
            return os.urandom(size)
        return self.noise.read(size // 2)


class _Format(ctypes.Structure):
    _fields_ = [("bits", ctypes.c_uint8), ("packing", ctypes.c_uint8), ("order", ctypes.c_uint8),
                ("rate", ctypes.c_uint32)]  # fmt: skip


_WRITE = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)


class _Config(ctypes.Structure):
    _fields_ = [
        ("device_class", ctypes.c_uint8),
        ("default_format", _Format),
        ("claimed_entropy", ctypes.c_uint16),
        ("rct_cutoff", ctypes.c_uint16),
        ("apt_cutoff", ctypes.c_uint16),
        ("apt_window", ctypes.c_uint16),
        ("samples_per_frame", ctypes.c_uint16),
        ("vendor", ctypes.c_char_p),
        ("model", ctypes.c_char_p),
        ("serial", ctypes.c_char_p),
        ("firmware", ctypes.c_char_p),
        ("format_supported", ctypes.c_void_p),
    ]


def _firmware_library() -> ctypes.CDLL:
    """The C reference firmware as a shared library, built once per source version."""
    from ..devices.firmware import build_firmware

    lib = build_firmware("libqdp.so", ("qdp.c", "qdp_device.c"), ("-shared", "-fPIC"))
    return ctypes.CDLL(str(lib))


class QdpUsbDevice(EmulatedDevice):
    """A QDP/1 device on a bulk endpoint pair (OUT 0x01, IN 0x81, 512-byte high-speed
    packets), running the C reference firmware (loaded with ctypes) fed by the noise model."""

    vid, pid = 0x1209, 0x0001
    manufacturer = "qitcore"
    product = "QDP reference on USB"
    serial = "USB-0001"
    endpoints = ((0x01, 512), (0x81, 512))

    def __init__(self, serial: str | None = None, claimed_entropy: float | None = None, **kw: Any) -> None:
        super().__init__(serial, **kw)
        self.noise = _core.NoiseModel(seed=4)
        h = self.noise.min_entropy if claimed_entropy is None else claimed_entropy
        self._lib = _firmware_library()
        self._out: deque[bytes] = deque()
        self._lock = threading.Lock()

        def write(ctx: Any, data: Any, n: int) -> bool:
            self._out.append(ctypes.string_at(data, n))
            return True

        self._write = _WRITE(write)  # kept alive as long as the device
        self._config = _Config(1, _Format(8, 1, 0, 0), int(h * 256), 8, 32, 512, 1024, b"qitcore",
                               b"QDP reference on USB", self.serial.encode(), b"1.0.0", None)  # fmt: skip
        self._device = ctypes.create_string_buffer(1 << 16)  # more than sizeof(qdp_device)
        self._lib.qdp_device_init(self._device, ctypes.byref(self._config), self._write, None)

    def bulk_out(self, ep: int, data: bytes) -> int:
        with self._lock:
            self._lib.qdp_device_receive(self._device, data, ctypes.c_size_t(len(data)))
        return len(data)

    def bulk_in(self, ep: int, size: int, timeout_ms: int) -> bytes:
        with self._lock:
            if not self._out:
                # The firmware takes samples only while running; otherwise this makes no frames.
                wide = np.frombuffer(self.noise.read(65536), dtype=np.uint8).astype("<u2")
                self._lib.qdp_device_push(self._device, wide.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(65536))
            out = bytearray()
            while self._out and len(out) + len(self._out[0]) <= size:
                out += self._out.popleft()
            if not out and self._out:
                first = self._out.popleft()
                out += first[:size]
                self._out.appendleft(first[size:])
        if not out:
            raise USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)
        return bytes(out)


class EmulatedBackend(usb.backend.IBackend):
    """The pyusb backend over a list of emulated devices."""

    def __init__(self, devices: list[EmulatedDevice]) -> None:
        super().__init__()
        self.devices = devices

    def enumerate_devices(self) -> Any:
        return iter([d for d in self.devices if d.present])

    def get_device_descriptor(self, dev: EmulatedDevice) -> Any:
        return SimpleNamespace(
            bLength=18, bDescriptorType=1, bcdUSB=0x0200, bDeviceClass=0, bDeviceSubClass=0, bDeviceProtocol=0,
            bMaxPacketSize0=64, idVendor=dev.vid, idProduct=dev.pid, bcdDevice=0x0100, iManufacturer=1,
            iProduct=2, iSerialNumber=3, bNumConfigurations=1, address=dev.address, bus=dev.bus, port_number=1,
            port_numbers=(1,), speed=3,
        )  # fmt: skip

    def get_configuration_descriptor(self, dev: EmulatedDevice, config: int) -> Any:
        return SimpleNamespace(
            bLength=9, bDescriptorType=2, wTotalLength=9 + 9 + 7 * len(dev.endpoints), bNumInterfaces=1,
            bConfigurationValue=1, iConfiguration=0, bmAttributes=0x80, bMaxPower=50, extra_descriptors=[],
        )  # fmt: skip

    def get_interface_descriptor(self, dev: EmulatedDevice, intf: int, alt: int, config: int) -> Any:
        if intf != 0 or alt != 0:
            raise IndexError("no such interface")
        return SimpleNamespace(
            bLength=9, bDescriptorType=4, bInterfaceNumber=0, bAlternateSetting=0,
            bNumEndpoints=len(dev.endpoints), bInterfaceClass=0xFF, bInterfaceSubClass=0, bInterfaceProtocol=0,
            iInterface=0, extra_descriptors=[],
        )  # fmt: skip

    def get_endpoint_descriptor(self, dev: EmulatedDevice, ep: int, intf: int, alt: int, config: int) -> Any:
        address, packet = dev.endpoints[ep]
        return SimpleNamespace(
            bLength=7, bDescriptorType=5, bEndpointAddress=address, bmAttributes=BULK, wMaxPacketSize=packet,
            bInterval=0, bRefresh=0, bSynchAddress=0, extra_descriptors=[],
        )  # fmt: skip

    def open_device(self, dev: EmulatedDevice) -> EmulatedDevice:
        dev.check()
        if not dev.permitted:
            raise USBError("Access denied (insufficient permissions)", -3, errno.EACCES)
        return dev

    def close_device(self, handle: EmulatedDevice) -> None:
        handle.claimed = False

    def set_configuration(self, handle: EmulatedDevice, value: int) -> None:
        handle.check()
        handle.configuration = value

    def get_configuration(self, handle: EmulatedDevice) -> int:
        handle.check()
        return handle.configuration

    def claim_interface(self, handle: EmulatedDevice, intf: int) -> None:
        handle.check()
        if handle.busy or handle.kernel_driver:
            raise USBError("Resource busy", -6, errno.EBUSY)
        handle.claimed = True

    def release_interface(self, handle: EmulatedDevice, intf: int) -> None:
        handle.claimed = False

    def is_kernel_driver_active(self, handle: EmulatedDevice, intf: int) -> bool:
        return handle.kernel_driver

    def detach_kernel_driver(self, handle: EmulatedDevice, intf: int) -> None:
        handle.kernel_driver = False

    def attach_kernel_driver(self, handle: EmulatedDevice, intf: int) -> None:
        handle.kernel_driver = True

    def bulk_read(self, handle: EmulatedDevice, ep: int, intf: int, buff: array.array[int], timeout: int) -> int:
        handle.check()
        if not handle.claimed:
            raise USBError("Interface not claimed", -6, errno.EBUSY)
        data = handle.bulk_in(ep, len(buff), timeout)
        buff[: len(data)] = array.array("B", data)
        return len(data)

    def bulk_write(self, handle: EmulatedDevice, ep: int, intf: int, data: array.array[int], timeout: int) -> int:
        handle.check()
        if not handle.claimed:
            raise USBError("Interface not claimed", -6, errno.EBUSY)
        return handle.bulk_out(ep, data.tobytes())

    def clear_halt(self, handle: EmulatedDevice, ep: int) -> None:
        handle.check()

    def ctrl_transfer(
        self, handle: EmulatedDevice, bmRequestType: int, bRequest: int, wValue: int, wIndex: int,  # noqa: N803
        data: array.array[int], timeout: int,
    ) -> int:  # fmt: skip
        handle.check()
        if bRequest != 6 or wValue >> 8 != 3:  # GET_DESCRIPTOR (string) is all the drivers ask
            raise USBError("Pipe error", -9, errno.EPIPE)
        index = wValue & 0xFF
        if index == 0:
            payload = bytes([4, 3, 0x09, 0x04])  # LANGID en-US
        else:
            text = handle.strings()[index].encode("utf-16-le")
            payload = bytes([2 + len(text), 3]) + text
        payload = payload[: len(data)]
        data[: len(payload)] = array.array("B", payload)
        return len(payload)
