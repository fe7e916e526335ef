"""Emulations of QRNG hardware, for tests and for trying qitcore without devices:

- :mod:`qitcore.testing.serial_handlers`: pyserial URL handlers, ``emu://truerng``,
  ``emu://truerngpro``, ``emu://onerng``, ``emu://cdc``, with DTR, RTS and baud-rate behaviour as
  the devices' public documentation describes it (registered on import of this package);
- :mod:`qitcore.testing.usb`: a pyusb backend that emulates USB devices (descriptors,
  configuration, interfaces, bulk endpoints, string descriptors, kernel drivers): the ChaosKey and
  a QDP/1 device running the C reference firmware.
"""

from __future__ import annotations

from ..devices._extras import device_packages

with device_packages("qitcore.testing"):
    import serial

_HANDLERS = "qitcore.testing.serial_handlers"
if _HANDLERS not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append(_HANDLERS)
