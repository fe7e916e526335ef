"""The devices qitcore has drivers for, by USB vendor and product ID: what ``qitcore devices``
lists and how drivers find an attached device. Claims are min-entropy per sample (bits) that a
driver assumes unless told otherwise; they are conservative defaults to be checked with
``qitcore assess`` on raw data (``qitcore.open_raw``), not measurements."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DRIVERS", "Driver", "by_ids", "udev_rule"]


@dataclass(frozen=True)
class Driver:
    scheme: str
    name: str
    vid: int
    pid: int
    transport: str  # "serial" or "usb"
    note: str

    @property
    def ids(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"


DRIVERS = (
    Driver("truerng", "TrueRNG v1-v3", 0x04D8, 0xF5FE, "serial", "whitened bytes while DTR is set"),
    Driver("truerngpro", "TrueRNGpro", 0x16D0, 0x0AA0, "serial", "modes by baud-rate knock"),
    Driver("truerngpro", "TrueRNGpro V2", 0x04D8, 0xEBB5, "serial", "modes by baud-rate knock, unwhitened mode"),
    Driver("onerng", "OneRNG", 0x1D50, 0x6086, "serial", "text commands, avalanche and RF sources"),
    Driver("chaoskey", "altusmetrum ChaosKey", 0x1D50, 0x60C6, "usb", "cooked and raw bulk endpoints"),
    Driver("usb", "QDP/1 device on USB", 0x1209, 0x0001, "usb", "the qitcore device protocol"),
)


def by_ids(vid: int | None, pid: int | None) -> Driver | None:
    return next((d for d in DRIVERS if d.vid == vid and d.pid == pid), None)


def udev_rule(driver: Driver) -> str:
    """The udev rule that lets members of ``plugdev`` open the device."""
    subsystem = "tty" if driver.transport == "serial" else "usb"
    return (
        f'SUBSYSTEM=="{subsystem}", ATTRS{{idVendor}}=="{driver.vid:04x}", ATTRS{{idProduct}}=="{driver.pid:04x}", '
        f'MODE="0660", GROUP="plugdev"  # {driver.name}: put in /etc/udev/rules.d/60-qitcore.rules, then '
        "udevadm control --reload && udevadm trigger"
    )
