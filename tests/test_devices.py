"""Streams from devices: the in-process simulator through the whole pipeline (output equals the
Toeplitz hash of the healthy raw samples), faults detected and reported, files, FIFOs and
pyserial's loop://, and the errors of bad URLs."""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

import pytest
import qitcore
from qitcore import protocol
from qitcore.errors import (
    AdaptiveProportionFailure,
    DeviceDisconnected,
    DeviceError,
    HealthTestFailure,
    InvalidArgumentError,
    RepetitionCountFailure,
    SequenceGapError,
    StreamClosedError,
)
from qitcore.extract import Toeplitz


def data_frames(samples: bytes, per_frame: int = 1000, first: int = 0) -> bytes:
    out = b""
    for i in range(0, len(samples), per_frame):
        chunk = samples[i : i + per_frame]
        payload = len(chunk).to_bytes(2, "little") + b"\0\0" + chunk
        out += protocol.encode_frame(protocol.DATA, first + i // per_frame, payload)
    return out


def test_output_is_the_toeplitz_hash_of_the_healthy_raw_samples() -> None:
    with qitcore.open_raw("sim://?seed=5") as raw:
        assert isinstance(raw, qitcore.RawSampleStream)
        samples = raw.read_samples(400_000)
    with qitcore.open("sim://?seed=5", extractor_seed=None) as probe:
        n, m = probe.block_shape
    toeplitz = Toeplitz(n, m)
    with qitcore.open("sim://?seed=5", extractor_seed=toeplitz.seed_bytes()) as s:
        h = s.min_entropy
        # The leftover hash lemma's length for the block, in whole bytes (TSSR, eps = 2^-64).
        assert m == math.floor(h * n / 8 - 2 * 64 + 2) // 8 * 8
        out = s.read(100_000)
        stats = s.stats()
    assert stats["samples_startup"] == 1024 and stats["crc_errors"] == 0
    blocks = len(out) * 8 // m  # whole blocks in what was read
    expect = toeplitz.hash(samples[1024 : 1024 + blocks * n // 8])
    assert blocks > 200 and out[: len(expect)] == expect


def test_reads_iteration_and_closing() -> None:
    s = qitcore.open("sim://")
    assert len(s.read(0)) == 0 and len(s.read(12345)) == 12345
    buf = bytearray(1000)
    assert s.readinto(buf) == 1000 and any(buf)
    chunk = next(iter(s))
    assert len(chunk) == 1 << 16
    s.close()
    s.close()
    assert s.closed
    with pytest.raises(StreamClosedError):
        s.read(1)
    with qitcore.open("sim://") as t:
        assert len(t.read(10)) == 10
    assert t.closed
    with pytest.raises(InvalidArgumentError, match="^n: "):
        qitcore.open("sim://").read(-1)


def test_a_stuck_source_stops_output_within_the_rct_cutoff() -> None:
    stuck = 300_000
    with qitcore.open("sim://?seed=3&fault=stuck:300000") as s:
        rct = s.cutoffs[0]
        got = 0
        with pytest.raises(RepetitionCountFailure) as info:
            while True:
                chunk = s.read(50_000)
                got += len(chunk)
        failure = info.value
        # Output sticks at sample 299,999's value: the run reaches the cutoff rct - 1 later.
        assert failure.index == stuck + rct - 2 and failure.cutoff == rct
        stats = s.stats()
        # Nothing from the failing window: every healthy sample precedes the stuck run.
        assert stats["samples_healthy"] + stats["samples_startup"] <= stuck
        assert stats["bytes_delivered"] == got
        with pytest.raises(RepetitionCountFailure):
            s.read(1)


def test_bias_drift_is_caught() -> None:
    with qitcore.open("sim://?seed=4&fault=drift:2e-5") as s, pytest.raises(HealthTestFailure) as info:
        while True:
            s.read(1 << 16)
    assert isinstance(info.value, RepetitionCountFailure | AdaptiveProportionFailure)


def test_link_faults_are_detected_and_counted() -> None:
    url = "sim://?seed=6&fault=drop:0.01,corrupt:1e-5,garbage:0.01"
    with qitcore.open(url) as s:
        s.read(4_000_000)
        stats = s.stats()
        sim = s._core.sim_counters()
    assert sim["frames_dropped"] > 10 and sim["bytes_corrupted"] > 10 and sim["garbage_bytes"] > 100
    assert stats["crc_errors"] > 0 and stats["gaps"] > 0 and stats["garbage_bytes"] > sim["garbage_bytes"]
    # Every frame the device dropped or the link corrupted is reported lost (up to the frames
    # still in flight when the statistics were taken).
    assert stats["frames_lost"] >= sim["frames_dropped"] - 5
    assert stats["frames"] + stats["frames_lost"] <= sim["frames"] + sim["frames_dropped"]


def test_gaps_raise_under_the_error_policy() -> None:
    with qitcore.open("sim://?fault=drop:0.05", gap_policy="error") as s, pytest.raises(SequenceGapError) as info:
        while True:
            s.read(1 << 16)
    assert info.value.lost >= 1 and info.value.received != info.value.expected


def test_disconnection_keeps_delivered_bytes_and_reopening_works() -> None:
    url = "sim://?fault=disconnect:5000000"
    s = qitcore.open(url)
    got = 0
    with pytest.raises(DeviceDisconnected):
        while True:
            got += len(s.read(300_000))
    assert got == s.stats()["bytes_out"] > 0
    s.close()
    with qitcore.open(url) as again:
        assert len(again.read(100_000)) == 100_000


def test_files_and_fifos(tmp_path: Path) -> None:
    samples = os.urandom(300_000)
    path = tmp_path / "capture.qdp"
    path.write_bytes(data_frames(samples))
    with qitcore.open_raw(f"file://{path}") as raw:
        assert b"".join(raw) == samples
    with qitcore.open(f"file://{path}", min_entropy=7.0) as s:
        out = s.read(10**9)
        assert 0 < len(out) < len(samples)
        assert s.read(10) == b""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(data_frames(samples)))
    writer.start()
    with qitcore.open_raw(f"file://{fifo}") as raw:
        assert b"".join(raw) == samples
    writer.join()


def test_pyserial_loop_url() -> None:
    samples = os.urandom(50_000)
    with qitcore.open_raw("loop://?handshake=none&bits=8") as raw:
        raw.transport.write(data_frames(samples, first=7))
        assert raw.read_samples(len(samples), timeout=10) == samples
        assert raw.stats()["frames"] == 50


def test_bad_urls_and_options() -> None:
    with pytest.raises(DeviceError, match="no backend for 'nope://'"):
        qitcore.open("nope://x")
    with pytest.raises(InvalidArgumentError, match="^fault: unknown fault 'melt'"):
        qitcore.open("sim://?fault=melt:1")
    with pytest.raises(InvalidArgumentError, match="^open: unknown option"):
        qitcore.open("sim://", colour="red")
    with pytest.raises(InvalidArgumentError, match="^epsilon: "):
        qitcore.open("sim://?epsilon=2")
    with pytest.raises(InvalidArgumentError, match="^min_entropy: "):
        qitcore.open("sim://?min_entropy=9")
    with pytest.raises(DeviceError, match="no such file"):
        qitcore.open("file:///nonexistent/capture.qdp", min_entropy=1)
    with pytest.raises(DeviceError):
        qitcore.open("/dev/does-not-exist")
    with pytest.raises(InvalidArgumentError, match="^bits: "):
        qitcore.open("sim://?bits=0")
    with pytest.raises(InvalidArgumentError, match="^url: "):
        qitcore.open("")


def test_backends_are_listed() -> None:
    assert {"sim", "serial", "loop", "socket", "rfc2217", "file"} <= set(qitcore.devices.backends())


def test_pyserial_socket_url() -> None:
    import socket

    samples = os.urandom(40_000)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            # pyserial's socket transport discards what arrives while it opens: start after it.
            time.sleep(0.3)
            conn.sendall(data_frames(samples))
            conn.recv(1)  # hold the connection until the client closes

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with qitcore.open_raw(f"socket://127.0.0.1:{port}?handshake=none&bits=8") as raw:
        assert raw.read_samples(len(samples), timeout=10) == samples
    t.join(timeout=5)
    server.close()


def test_min_entropy_can_be_assessed_first() -> None:
    with qitcore.open("sim://?seed=9", min_entropy="assess") as s:
        model_h = s.info["min_entropy_without_side_information"]
        # NIST's non-IID estimators are conservative on Gaussian ADC codes (4.5 of 6.3 bits
        # here): below the model's own entropy, and still a usable rate.
        assert 0.5 * model_h < s.min_entropy < model_h
        assert len(s.read(10_000)) == 10_000
    with pytest.raises(InvalidArgumentError, match="^min_entropy: "):
        qitcore.open("sim://", min_entropy="lots")


# pyserial's RFC 2217 client still calls threading's old setDaemon/setName.
@pytest.mark.filterwarnings(r"ignore:set(Daemon|Name)\(\) is deprecated:DeprecationWarning")
def test_pyserial_rfc2217_url() -> None:
    """An RFC 2217 (telnet COM-port) server in a thread, built on pyserial's own PortManager over
    a loop:// port into which the test writes frames."""
    import socket

    import serial
    import serial.rfc2217

    samples = os.urandom(30_000)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    backing = serial.serial_for_url("loop://", timeout=0.05)
    done = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        conn.settimeout(0.05)

        class Connection:  # PortManager writes its telnet replies through .write
            write = conn.sendall

        manager = serial.rfc2217.PortManager(backing, Connection())
        pending = data_frames(samples)
        with conn:
            while not done.is_set():
                try:
                    data = conn.recv(4096)
                    if not data:
                        break
                    backing.write(b"".join(manager.filter(data)))
                except TimeoutError:
                    pass
                # The "device" streams once the client has settled (it purges on opening), a
                # little at a time: loop:// holds 4 KiB.
                if pending and time.monotonic() - start > 0.5:
                    backing.write(pending[:1024])
                    pending = pending[1024:]
                out = backing.read(backing.in_waiting or 1)
                if out:
                    conn.sendall(b"".join(manager.escape(out)))

    start = time.monotonic()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with qitcore.open_raw(f"rfc2217://127.0.0.1:{port}?handshake=none&bits=8") as raw:
            assert raw.read_samples(len(samples), timeout=20) == samples
    finally:
        done.set()
        t.join(timeout=5)
        server.close()
