"""The loopback simulator through the same stack as hardware: the C reference firmware behind a
pseudo-terminal, opened by pyserial, the QDP/1 handshake for real."""

from __future__ import annotations

import pytest
import qitcore
from qitcore import protocol
from qitcore.errors import DeviceDisconnected, HealthTestFailure, ProtocolError


def test_handshake_info_and_streaming() -> None:
    with qitcore.open("sim+pty://?seed=2") as s:
        assert s.info["model"] == "QDP reference on a pty" and s.info["protocol_version"] == 1
        # The host takes the device's claim (rounded down to 1/256 bit) as its min-entropy.
        assert s.min_entropy == s.info["claimed_min_entropy"] <= s.info["min_entropy"]
        assert len(s.read(2_000_000)) == 2_000_000
        stats = s.stats()
        assert stats["crc_errors"] == stats["gaps"] == stats["garbage_bytes"] == 0
        status = stats.device_status
        assert status is not None and status["state"] == "running" and status["samples_dropped"] == 0


def test_commands_while_streaming() -> None:
    with qitcore.open_raw("sim+pty://?seed=3") as raw:
        raw.read(10_000)
        status = protocol.parse_status(raw.device.command(protocol.Command.STATUS)["data"])
        assert status["state"] == "running" and status["samples_produced"] >= 10_000
        port = raw.transport
        # A command sent by hand gets its reply through the pipeline, DATA frames meanwhile.
        port.write(protocol.encode_frame(protocol.COMMAND, 1000, protocol.command_payload(protocol.Command.STATUS, 99)))
        reply = raw._core.reply(protocol.Command.STATUS, 99, 5.0)
        assert reply is not None and reply["result"] == protocol.Result.OK
        assert protocol.parse_status(reply["data"])["state"] == "running"


def test_the_devices_own_health_test_stops_the_stream() -> None:
    with qitcore.open("sim+pty://?seed=4&fault=stuck:200000") as s, pytest.raises(HealthTestFailure) as info:
        while True:
            s.read(1 << 16)
    # Whichever side noticed first, the device reports its failure.
    assert "health" in str(info.value).lower() or "Repetition" in str(info.value)


def test_link_faults_through_the_pty() -> None:
    with qitcore.open("sim+pty://?seed=5&fault=drop:0.01,corrupt:2e-5,garbage:0.01") as s:
        s.read(3_000_000)
        stats = s.stats()
    assert stats["crc_errors"] > 0 and stats["gaps"] > 0 and stats["frames_lost"] > 0
    assert stats["garbage_bytes"] > 0


def test_disconnection_and_reopening() -> None:
    url = "sim+pty://?seed=6&fault=disconnect:3000000"
    s = qitcore.open(url)
    got = 0
    with pytest.raises(DeviceDisconnected):
        while True:
            got += len(s.read(100_000, timeout=20))
    assert got == s.stats()["bytes_out"] > 0
    s.close()
    with qitcore.open("sim+pty://?seed=7") as again:
        assert len(again.read(100_000)) == 100_000


def test_a_refused_configuration_is_a_protocol_error() -> None:
    with qitcore.open_raw("sim+pty://?seed=8") as raw:
        with pytest.raises(ProtocolError, match="CONFIGURE: NOT_NOW"):
            raw.device.command(protocol.Command.CONFIGURE, protocol.format_descriptor(1, "packed"))
        reply = raw.device.command(protocol.Command.SELF_TEST)
        assert reply["data"] == b"\x00"
