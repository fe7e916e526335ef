"""The hardware drivers against emulations of their devices (pyserial URL handlers for the serial
ones, an emulated pyusb backend for the USB ones), through the same pipeline as everything else."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import qitcore
import qitcore.testing
from qitcore.cli import main
from qitcore.devices.discover import discover
from qitcore.devices.serial_port import open_serial
from qitcore.errors import (
    DeviceBusy,
    DeviceDisconnected,
    DeviceError,
    DeviceNotFound,
    InvalidArgumentError,
    ProtocolError,
)
from qitcore.testing.usb import ChaosKey, EmulatedBackend, QdpUsbDevice


def drain(stream: qitcore.QrngStream, n: int = 200_000) -> bytes:
    data = stream.read(n, timeout=20)
    assert len(data) == n
    return data


def test_truerng_streams_while_dtr_is_set() -> None:
    with qitcore.open("truerng://?port=emu://truerng") as s:
        device = s.transport.emulated()
        assert device.dtr and s.min_entropy == 7.0
        drain(s)
        stats = s.stats()
        assert stats["crc_errors"] == stats["gaps"] == 0 and stats["samples_healthy"] > 0
    # Without DTR the device is silent: the driver's setting of it is what makes it stream.
    port = open_serial("emu://truerng", 9600, "test")
    port.dtr = False
    assert port.read(100) == b""


@pytest.mark.parametrize(
    ("mode", "version", "baud", "claim"),
    [
        ("normal", "1", 300, 7.0),
        ("rng1", "1", 4800, 7.0),
        ("raw-binary", "1", 19200, 2.0),
        ("unwhitened", "2", 57600, 2.0),
    ],
)
def test_truerngpro_modes_by_baud_knock(mode: str, version: str, baud: int, claim: float) -> None:
    with qitcore.open(f"truerngpro://?port=emu://truerngpro?version={version}&mode={mode}") as s:
        device = s.transport.emulated()
        assert device.baud_history[-4:] == [110, 300, 110, baud]
        assert device.mode == mode and s.min_entropy == claim
        drain(s, 50_000)
    with pytest.raises(InvalidArgumentError, match="^mode: "):
        qitcore.open("truerngpro://?port=emu://truerngpro&mode=debug-ps")


def test_onerng_commands_and_sources() -> None:
    with qitcore.open("onerng://?port=emu://onerng") as s:
        device = s.transport.emulated()
        assert (device.mask, device.running, device.rts) == (0, True, True)
        drain(s)
    assert not device.running  # paused on closing (cmdo)
    with qitcore.open("onerng://?port=emu://onerng&source=rf&whiten=0") as s:
        assert s.transport.emulated().mask == 0b111 and s.min_entropy == 2.0
        drain(s, 20_000)
    with qitcore.open_raw("onerng://?port=emu://onerng&whiten=0") as raw:
        samples = raw.read_samples(100_000, timeout=20)
        # Whitening off: the raw noise (Gaussian ADC codes), far from uniform.
        assert max(samples.count(bytes([v])) for v in range(256)) > 2 * len(samples) / 256


def test_chaoskey_cooked_and_raw_endpoints() -> None:
    key = ChaosKey()
    backend = EmulatedBackend([key])
    with qitcore.open("chaoskey://", usb_backend=backend) as s:
        assert not key.kernel_driver and key.claimed  # the kernel's driver let go
        drain(s)
        assert s.info["serial"] == "0010000000000000"
    assert key.kernel_driver and not key.claimed  # and got the device back
    with qitcore.open_raw("chaoskey://?endpoint=raw", usb_backend=backend) as raw:
        words = raw.read(20_000, timeout=20)
        values = [int.from_bytes(words[i : i + 2], "little") for i in range(0, len(words), 2)]
        assert max(values) < 4096 and len(set(values)) > 500
    with pytest.raises(InvalidArgumentError, match="^endpoint: "):
        qitcore.open("chaoskey://?endpoint=raw", usb_backend=backend)


def test_qdp_over_usb_runs_the_reference_firmware() -> None:
    device = QdpUsbDevice()
    with qitcore.open("usb://1209:0001", usb_backend=EmulatedBackend([device])) as s:
        assert s.info["model"] == "QDP reference on USB" and s.info["protocol_version"] == 1
        assert s.min_entropy == s.info["claimed_min_entropy"]
        drain(s, 1_000_000)
        status = qitcore.protocol.parse_status(s.device.command(qitcore.protocol.Command.STATUS)["data"])
        assert status["state"] == "running" and status["samples_dropped"] == 0
        assert s.stats()["crc_errors"] == 0


def test_hwrng_with_its_sysfs(tmp_path: Path) -> None:
    dev = tmp_path / "hwrng"
    dev.write_bytes(os.urandom(300_000))
    sysfs = tmp_path / "hw_random"
    sysfs.mkdir()
    (sysfs / "rng_current").write_text("tpm-rng-0\n")
    (sysfs / "rng_available").write_text("tpm-rng-0 \n")
    (sysfs / "rng_quality").write_text("700\n")
    with qitcore.open(f"hwrng://?path={dev}&sysfs={sysfs}") as s:
        assert s.min_entropy == 700 / 128 and s.info["rng_current"] == "tpm-rng-0"
        out = s.read(10**7)
        assert 0 < len(out) < 300_000 and s.read(1) == b""
    (sysfs / "rng_current").write_text("none\n")
    with pytest.raises(DeviceNotFound, match="no current hardware RNG"):
        qitcore.open(f"hwrng://?path={dev}&sysfs={sysfs}")
    with pytest.raises(DeviceNotFound):
        qitcore.open(f"hwrng://?path={tmp_path / 'absent'}")


def test_generic_cdc_needs_a_claim() -> None:
    with pytest.raises(InvalidArgumentError, match="^min_entropy: "):
        qitcore.open("cdc://?port=emu://cdc")
    with qitcore.open("cdc://?port=emu://cdc", min_entropy=6.0) as s:
        drain(s, 50_000)


def test_absent_busy_and_forbidden_devices() -> None:
    with pytest.raises(DeviceNotFound, match="1d50:60c6"):
        qitcore.open("chaoskey://", usb_backend=EmulatedBackend([]))
    with pytest.raises(DeviceNotFound):
        qitcore.open("chaoskey://?serial=nope", usb_backend=EmulatedBackend([ChaosKey()]))
    busy = ChaosKey()
    busy.busy = True
    with pytest.raises(DeviceBusy):
        qitcore.open("chaoskey://", usb_backend=EmulatedBackend([busy]))
    forbidden = ChaosKey()
    forbidden.permitted = False
    with pytest.raises(DeviceError, match='udev rule:\nSUBSYSTEM=="usb", ATTRS{idVendor}=="1d50"'):
        qitcore.open("chaoskey://", usb_backend=EmulatedBackend([forbidden]))
    with pytest.raises(DeviceNotFound):
        qitcore.open("truerng:///dev/does-not-exist")
    master, slave = os.openpty()
    path = os.ttyname(slave)
    first = open_serial(path, 9600, "first")
    with pytest.raises(DeviceBusy):
        open_serial(path, 9600, "second")
    first.close()
    os.close(master)
    os.close(slave)


def test_unplugged_mid_stream_keeps_what_was_delivered() -> None:
    key = ChaosKey()
    s = qitcore.open("chaoskey://", usb_backend=EmulatedBackend([key]))
    got = len(drain(s, 100_000))
    key.unplug()
    with pytest.raises(DeviceDisconnected):
        while True:
            got += len(s.read(10_000, timeout=20))
    assert got == s.stats()["bytes_delivered"]
    s.close()
    with qitcore.open("truerng://?port=emu://truerng?unplug_after=500000") as t, pytest.raises(DeviceDisconnected):
        while True:
            t.read(50_000, timeout=20)


def test_garbage_instead_of_replies_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not QDP/1 frames"):
        qitcore.open("emu://cdc", timeout=1)


def test_discovery_and_permissions(capsys: pytest.CaptureFixture[str]) -> None:
    ports = [SimpleNamespace(device="/dev/null", vid=0x04D8, pid=0xF5FE, serial_number="TR1"),
             SimpleNamespace(device="/dev/ttyS0", vid=None, pid=None, serial_number=None)]  # fmt: skip
    forbidden = ChaosKey()
    forbidden.permitted = False
    found = discover(serial_ports=ports, usb_backend=EmulatedBackend([forbidden, QdpUsbDevice()]), hwrng="/nonexistent")
    by_driver = {f.driver: f for f in found}
    assert set(by_driver) == {"truerng", "chaoskey", "usb"}
    assert by_driver["truerng"].url == "truerng:///dev/null" and by_driver["truerng"].accessible
    assert not by_driver["chaoskey"].accessible and 'ATTRS{idVendor}=="1d50"' in by_driver["chaoskey"].hint
    assert by_driver["usb"].url == "usb://1209:0001?serial=USB-0001"
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("driver ") or out.startswith("no supported device")
