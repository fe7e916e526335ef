"""Both ends over TCP on 127.0.0.1: in threads, and as two ``qitcore qkd`` processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from qitcore import qkd
from qitcore.errors import ChannelClosed, QkdError
from qitcore.qkd.channel import recv_frame, send_frame

KEY = b"tcp-test-key-0123456789abcdef!!"


@pytest.fixture(scope="module")
def link() -> qkd.SimulatedLink:
    return qkd.LinkModel(distance_km=15).simulate(20_000_000, seed=21)


def _serve(alice: qkd.AliceSession, server: socket.socket, *, frames: int | None = None) -> None:
    """Serves one Bob: the whole session, or only ``frames`` messages before hanging up."""
    conn, _ = server.accept()
    with conn:
        try:
            if frames is None:
                qkd.serve_tcp(alice, conn, done=lambda: alice.finished, timeout=10)
            else:
                for _ in range(frames):
                    send_frame(conn, alice.handle_frame(recv_frame(conn)))
        except QkdError:
            pass


def test_both_ends_over_tcp_get_the_same_key(link: qkd.SimulatedLink) -> None:
    alice = qkd.AliceSession(link.alice, qkd.Params(), KEY)
    with socket.create_server(("127.0.0.1", 0)) as server:
        thread = threading.Thread(target=_serve, args=(alice, server), daemon=True)
        thread.start()
        with qkd.TcpChannel(KEY, "127.0.0.1", server.getsockname()[1]) as channel:
            bob_key, report = qkd.BobSession(link.bob, qkd.Params(), channel).run()
        thread.join(10)
    alice_key, alice_report = alice.result()
    assert alice_key == bob_key and report.key_bits > 0
    # Alice counts on her own what the bound depends on, and agrees with Bob.
    for field in ("cascade_rounds", "leaked_ec", "secure_length", "key_counts", "test_errors", "sifted_key"):
        assert getattr(alice_report, field) == getattr(report, field), field
    assert alice_report.corrected_bits is None


@pytest.mark.parametrize("frames", [0, 3, 6])
def test_a_peer_that_hangs_up_mid_session_leaves_no_key(link: qkd.SimulatedLink, frames: int) -> None:
    alice = qkd.AliceSession(link.alice, qkd.Params(), KEY)
    with socket.create_server(("127.0.0.1", 0)) as server:
        thread = threading.Thread(target=_serve, args=(alice, server), kwargs={"frames": frames}, daemon=True)
        thread.start()
        with qkd.TcpChannel(KEY, "127.0.0.1", server.getsockname()[1]) as channel, pytest.raises(ChannelClosed):
            qkd.BobSession(link.bob, qkd.Params(), channel).run()
        thread.join(10)
    with pytest.raises(QkdError):
        alice.result()


def test_nobody_listening_is_a_clear_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    with pytest.raises(ChannelClosed, match="cannot connect"):
        qkd.TcpChannel(KEY, "127.0.0.1", port, timeout=2)


def _qitcore(*args: str) -> list[str]:
    return [sys.executable, "-m", "qitcore", *args]


def test_alice_and_bob_as_two_programs(tmp_path: Path) -> None:
    prefix = tmp_path / "link"
    sim = subprocess.run(
        _qitcore("qkd", "simulate", "--pulses", "2e7", "--seed", "4", "--save-records", str(prefix)),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr
    # Bob's records as his device would stream them: a QDP/1 capture of DETECTIONS frames.
    (tmp_path / "bob.qdp").write_bytes(qkd.detection_frames(qkd.Records.load(f"{prefix}-bob.npz")))
    auth = tmp_path / "auth.key"
    auth.write_bytes(KEY)
    common = ["--auth-key-file", str(auth), "--timeout", "30"]
    alice = subprocess.Popen(
        _qitcore("qkd", "alice", "--listen", "127.0.0.1:0", "--records", f"{prefix}-alice.npz", *common,
                 "--key-out", str(tmp_path / "alice.key")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert alice.stderr is not None
        line = alice.stderr.readline()
        assert "listening on" in line, line
        port = line.strip().rsplit(":", 1)[1]
        bob = subprocess.run(
            _qitcore("qkd", "bob", "--connect", f"127.0.0.1:{port}", "--records", str(tmp_path / "bob.qdp"), *common,
                     "--key-out", str(tmp_path / "bob.key")),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        out, err = alice.communicate(timeout=60)
    finally:
        alice.kill()
    assert bob.returncode == 0, bob.stderr
    assert alice.returncode == 0, err
    assert "secure length" in bob.stdout and "secure length" in out
    alice_key, bob_key = (tmp_path / "alice.key").read_bytes(), (tmp_path / "bob.key").read_bytes()
    assert alice_key == bob_key and len(alice_key) > 1000
    assert (tmp_path / "bob.key").stat().st_mode & 0o077 == 0


def test_the_cli_reports_a_missing_key_file_clearly(tmp_path: Path) -> None:
    args = ["--connect", "127.0.0.1:9", "--records", "x.npz", "--auth-key-file", str(tmp_path / "no")]
    result = subprocess.run(_qitcore("qkd", "bob", *args), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "auth-key-file" in result.stderr
