"""Both ends over TCP on 127.0.0.1: in threads, and as two ``qitcore qkd`` processes; Alice's
listener against stray and hostile clients (bounded memory, bounded time, the real Bob served)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from qitcore import qkd
from qitcore.errors import ChannelClosed, ChannelError, QkdAbort, QkdError
from qitcore.qkd.channel import (
    FIRST_FRAME_LIMIT,
    MAX_PENDING,
    NONCE_BYTES,
    OVERHEAD,
    Sealer,
    frame_limit,
    recv_exact,
    recv_frame,
    send_frame,
)
from qitcore.qkd.session import HELLO

KEY = b"tcp-test-key-0123456789abcdef!!"
OTHER_KEY = b"not-the-key-0123456789abcdef!!!"


@pytest.fixture(scope="module")
def link() -> qkd.SimulatedLink:
    return qkd.LinkModel(distance_km=15).simulate(20_000_000, seed=21)


class _Alice:
    """Alice's listener on a thread; ``error`` holds what serve_tcp raised."""

    def __init__(self, link: qkd.SimulatedLink, **options: float) -> None:
        self.session = qkd.AliceSession(link.alice, qkd.Params(), KEY)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.error: BaseException | None = None
        self.peers: list[str] = []
        self._thread = threading.Thread(target=self._run, args=(options,), daemon=True)
        self._thread.start()

    def _run(self, options: dict[str, float]) -> None:
        try:
            qkd.serve_tcp(self.session, self.server, on_connect=self.peers.append, **{"timeout": 20, **options})
        except BaseException as exc:
            self.error = exc

    def join(self) -> None:
        self._thread.join(30)
        assert not self._thread.is_alive()
        self.server.close()


def _bob(link: qkd.SimulatedLink, port: int) -> tuple[bytes, qkd.Report]:
    with qkd.TcpChannel(KEY, "127.0.0.1", port, timeout=20) as channel:
        return qkd.BobSession(link.bob, qkd.Params(), channel).run()


def test_both_ends_over_tcp_get_the_same_key(link: qkd.SimulatedLink) -> None:
    alice = _Alice(link)
    bob_key, report = _bob(link, alice.port)
    alice.join()
    assert alice.error is None and len(alice.peers) == 1
    alice_key, alice_report = alice.session.result()
    assert alice_key == bob_key and report.key_bits > 0
    # Alice counts on her own what the bound depends on, and agrees with Bob.
    for field in ("cascade_rounds", "leaked_ec", "secure_length", "key_counts", "test_errors", "sifted_key"):
        assert getattr(alice_report, field) == getattr(report, field), field
    assert alice_report.corrected_bits is None


def _answer(sock: socket.socket) -> bytes:
    """Everything Alice sends back before closing. She may have reset the connection already (then
    even the shutdown fails, with ENOTCONN): what arrived before the reset is still her answer."""
    got = bytearray()
    try:
        sock.shutdown(socket.SHUT_WR)
        while chunk := sock.recv(4096):
            got += chunk
    except TimeoutError:
        raise  # Alice neither answered nor hung up
    except OSError:
        pass  # ConnectionResetError, ENOTCONN
    return bytes(got)


Stray = bytes | Iterable[bytes] | Callable[[bytes], bytes]


def _stray(port: int, data: Stray) -> bytes:
    """Connects, reads Alice's challenge, sends ``data`` (or what it makes of the challenge;
    stopping when Alice hangs up) and returns what else she sends."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        challenge = recv_exact(sock, NONCE_BYTES)
        if callable(data):
            data = data(challenge)
        try:
            for chunk in [data] if isinstance(data, bytes) else data:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return b""
        return _answer(sock)


def _hello(key: bytes, challenge: bytes, nonce: bytes = bytes(NONCE_BYTES)) -> bytes:
    """Bob's nonce and first frame as a peer holding ``key`` would send them after ``challenge``,
    length prefix included."""
    sealer = Sealer(key, is_alice=False)
    sealer.bind(challenge + nonce)
    frame = sealer.seal(HELLO, qkd.Params().to_json())
    return nonce + struct.pack("<I", len(frame)) + frame


def test_stray_clients_before_bob_get_nothing_and_cost_alice_little_memory(link: qkd.SimulatedLink) -> None:
    alice = _Alice(link)
    silent = [socket.create_connection(("127.0.0.1", alice.port)) for _ in range(3)]  # held to the end
    block = bytes(range(256)) * 256  # 64 KiB, sent again and again: the strays allocate nothing new

    def flipped(challenge: bytes) -> bytes:
        frame = bytearray(_hello(KEY, challenge))
        frame[NONCE_BYTES + 20] ^= 0x10
        return bytes(frame)

    recorded = _hello(KEY, bytes(NONCE_BYTES))  # a HELLO recorded on another connection
    tracemalloc.start()
    try:
        strays: dict[str, Stray] = {
            "garbage": os.urandom(10_000),
            "4 GiB length, then 16 MiB": (b"\xff\xff\xff\xff", *[block] * 256),
            "a frame just over the first-frame bound": struct.pack("<I", FIRST_FRAME_LIMIT + 1) + block,
            "a whole frame of garbage": struct.pack("<I", FIRST_FRAME_LIMIT) + block[:FIRST_FRAME_LIMIT],
            "shorter than a header": struct.pack("<I", OVERHEAD - 1) + block[: OVERHEAD - 1],
            "a HELLO under another key": lambda challenge: _hello(OTHER_KEY, challenge),
            "Bob's HELLO with a bit flipped": flipped,
            "half of Bob's HELLO": lambda challenge: _hello(KEY, challenge)[:100],
            "a HELLO recorded on another connection (replayed)": recorded,
            "connect and close": b"",
        }
        for what, data in strays.items():
            assert _stray(alice.port, data) == b"", what
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Over 16 MiB were offered; Alice read at most a first frame per connection.
    assert peak < 1 << 20, peak
    bob_key, report = _bob(link, alice.port)
    alice.join()
    for sock in silent:
        assert len(_answer(sock)) == NONCE_BYTES  # the challenge alone: closed unanswered once Bob was in
        sock.close()
    assert alice.error is None and len(alice.peers) == 1
    assert alice.session.result()[0] == bob_key and report.key_bits > 0


def test_a_recorded_session_replayed_to_a_new_alice_gets_nothing(link: qkd.SimulatedLink) -> None:
    """Everything Bob sent in one session, his nonce and every frame, replayed in order to Alice's
    next session over the same records: her fresh challenge makes none of it authenticate; she
    answers nothing, keeps listening, and serves the real Bob."""
    sent: list[bytes] = []
    bob_nonce: list[bytes] = []

    class Recorded:
        """Alice's endpoint, keeping Bob's nonce and frames as they arrive."""

        def __init__(self, alice: qkd.AliceSession) -> None:
            self.alice = alice

        def challenge(self, nonce: bytes) -> bytes:
            bob_nonce.append(nonce)
            return self.alice.challenge(nonce)

        def handle_frame(self, frame: bytes) -> bytes:
            sent.append(frame)
            return self.alice.handle_frame(frame)

    first = qkd.AliceSession(link.alice, qkd.Params(), KEY)
    qkd.BobSession(link.bob, qkd.Params(), qkd.InProcessChannel(KEY, Recorded(first))).run()
    assert first.finished and len(sent) > 10 and len(bob_nonce) == 1
    alice = _Alice(link)
    stream = [struct.pack("<I", len(f)) + f for f in sent]
    assert _stray(alice.port, [bob_nonce[0], *stream]) == b""
    bob_key, _ = _bob(link, alice.port)
    alice.join()
    assert alice.error is None and alice.session.result()[0] == bob_key
    # In one process: the same, through a new session's own challenge.
    again = qkd.AliceSession(link.alice, qkd.Params(), KEY)
    again.challenge(bob_nonce[0])
    reply = again.handle_frame(sent[0])
    with pytest.raises(QkdError, match="failed authentication"):
        again.result()
    assert reply and not again.finished


def test_a_flood_of_silent_clients_does_not_keep_bob_out(link: qkd.SimulatedLink) -> None:
    alice = _Alice(link)
    flood = [socket.create_connection(("127.0.0.1", alice.port)) for _ in range(MAX_PENDING + 8)]
    try:
        time.sleep(0.2)  # all of them accepted and waiting before Bob comes
        bob_key, _ = _bob(link, alice.port)
        alice.join()
    finally:
        for sock in flood:
            sock.close()
    assert alice.error is None and alice.session.result()[0] == bob_key


def test_a_failed_session_ends_alice_with_its_own_error(link: qkd.SimulatedLink) -> None:
    alice = _Alice(link)
    with (
        qkd.TcpChannel(KEY, "127.0.0.1", alice.port, timeout=20) as channel,
        pytest.raises(QkdAbort, match="Alice: parameters differ"),
    ):
        qkd.BobSession(link.bob, qkd.Params(qber_threshold=0.05), channel).run()
    alice.join()
    assert alice.error is None  # serve_tcp returned: the session, not the channel, failed
    with pytest.raises(QkdAbort, match="parameters differ"):
        alice.session.result()


def test_a_silent_client_is_dropped_after_the_first_frame_deadline(link: qkd.SimulatedLink) -> None:
    alice = _Alice(link, timeout=1.5, first_frame_timeout=0.3)
    with socket.create_connection(("127.0.0.1", alice.port), timeout=5) as sock:
        start = time.monotonic()
        assert len(recv_exact(sock, NONCE_BYTES)) == NONCE_BYTES  # the challenge, then nothing
        assert sock.recv(1) == b""
        assert time.monotonic() - start < 1.2
    alice.join()
    assert isinstance(alice.error, ChannelError)
    assert "no authenticated Bob connected within 1.5 s (1 unauthenticated connections dropped)" in str(alice.error)
    with pytest.raises(QkdError):
        alice.session.result()


@contextlib.contextmanager
def _hostile_alice(reply: Callable[[socket.socket], None]) -> Iterator[int]:
    """A listener (its port) that does Alice's handshake, reads Bob's first frame and then does
    ``reply`` on the connection instead of answering."""
    with socket.create_server(("127.0.0.1", 0)) as server:

        def hostile() -> None:
            conn, _ = server.accept()
            with conn, contextlib.suppress(OSError):
                conn.sendall(bytes(NONCE_BYTES))
                recv_exact(conn, NONCE_BYTES)
                recv_frame(conn, limit=FIRST_FRAME_LIMIT)
                reply(conn)

        thread = threading.Thread(target=hostile, daemon=True)
        thread.start()
        yield server.getsockname()[1]
    thread.join(60)


def _oversized(conn: socket.socket) -> None:
    conn.sendall(struct.pack("<I", 1 << 31))  # past any session's bound
    time.sleep(2)


def _drip(conn: socket.socket) -> None:
    for byte in struct.pack("<I", 200) + bytes(200):
        conn.sendall(bytes([byte]))
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("reply", "timeout", "match", "within"),
    [
        # A frame announced past Bob's bound: he stops at the length, before reading it.
        (_oversized, 5, "larger than the session allows", 1.5),
        # A reply a byte at a time, each within the timeout: given up once the timeout has
        # passed for the frame as a whole.
        (_drip, 1, "timed out", 2.0),
    ],
    ids=["oversized", "dripping"],
)
def test_a_hostile_alice_is_given_up_in_bounded_time(
    link: qkd.SimulatedLink, reply: Callable[[socket.socket], None], timeout: float, match: str, within: float
) -> None:
    with _hostile_alice(reply) as port, qkd.TcpChannel(KEY, "127.0.0.1", port, timeout=timeout) as channel:
        start = time.monotonic()
        with pytest.raises(ChannelError, match=match):
            qkd.BobSession(link.bob, qkd.Params(), channel).run()
        assert time.monotonic() - start < within


def test_the_frame_bound_holds_every_message_of_a_noisy_session() -> None:
    """At a QBER near the threshold (the most Cascade traffic), no frame in either direction
    comes near the bound derived from the records."""
    sim = qkd.LinkModel(distance_km=5, misalignment=0.09).simulate(5_000_000, seed=3)
    largest = {"to_alice": 0, "to_bob": 0}

    def measure(direction: str, frame: bytes) -> bytes:
        largest[direction] = max(largest[direction], len(frame))
        return frame

    alice = qkd.AliceSession(sim.alice, qkd.Params(), KEY)
    channel = qkd.InProcessChannel(KEY, alice, tamper=measure)
    qkd.BobSession(sim.bob, qkd.Params(), channel).run()
    assert alice.finished
    assert largest["to_alice"] <= frame_limit(len(sim.alice)) and largest["to_bob"] <= frame_limit(len(sim.bob))
    assert len(_hello(KEY, bytes(NONCE_BYTES))) - NONCE_BYTES - 4 <= FIRST_FRAME_LIMIT


@pytest.mark.parametrize("frames", [0, 3, 6])
def test_a_peer_that_hangs_up_mid_session_leaves_no_key(link: qkd.SimulatedLink, frames: int) -> None:
    alice = qkd.AliceSession(link.alice, qkd.Params(), KEY)
    with socket.create_server(("127.0.0.1", 0)) as server:

        def serve() -> None:
            conn, _ = server.accept()
            with conn, contextlib.suppress(QkdError):
                challenge = os.urandom(NONCE_BYTES)
                conn.sendall(challenge)
                alice.bind(challenge + recv_exact(conn, NONCE_BYTES))
                for _ in range(frames):
                    send_frame(conn, alice.handle_frame(recv_frame(conn)))

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with qkd.TcpChannel(KEY, "127.0.0.1", server.getsockname()[1]) as channel, pytest.raises(ChannelClosed):
            qkd.BobSession(link.bob, qkd.Params(), channel).run()
        thread.join(10)
    with pytest.raises(QkdError):
        alice.result()


def test_alice_says_bob_hung_up_mid_session_and_that_no_key_was_released(link: qkd.SimulatedLink) -> None:
    alice = _Alice(link)
    with socket.create_connection(("127.0.0.1", alice.port)) as bob:
        bob.sendall(_hello(KEY, recv_exact(bob, NONCE_BYTES)))
        recv_frame(bob)  # Alice answered: the session is under way; Bob goes
    alice.join()
    assert isinstance(alice.error, ChannelClosed)
    assert str(alice.error) == (
        "the peer closed the connection mid-session (Bob's own error says why); no key released"
    )
    with pytest.raises(QkdError):
        alice.session.result()


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as server:
        return int(server.getsockname()[1])


def test_nobody_listening_is_a_clear_error() -> None:
    port = _free_port()
    with pytest.raises(ChannelClosed, match="cannot connect"):
        qkd.TcpChannel(KEY, "127.0.0.1", port, timeout=2)
    start = time.monotonic()
    with pytest.raises(ChannelClosed, match=r"cannot connect.*tried for (0\.[5-9]|[1-9]\d*\.\d) s"):
        qkd.TcpChannel(KEY, "127.0.0.1", port, timeout=2, retry=0.5)
    assert 0.45 < time.monotonic() - start < 2


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
        port = int(line.strip().rsplit(":", 1)[1])
        # A stray client first: Alice turns it away and waits for the real Bob.
        assert _stray(port, lambda challenge: _hello(OTHER_KEY, challenge)) == b""
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


def test_bob_started_first_waits_for_alice(tmp_path: Path, link: qkd.SimulatedLink) -> None:
    link.alice.save(tmp_path / "alice.npz")
    link.bob.save(tmp_path / "bob.npz")
    auth = tmp_path / "auth.key"
    auth.write_bytes(KEY)
    port = _free_port()
    common = ["--auth-key-file", str(auth), "--timeout", "10"]
    bob = subprocess.Popen(
        _qitcore("qkd", "bob", "--connect", f"127.0.0.1:{port}", "--records", str(tmp_path / "bob.npz"), *common),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # Bob is refused for a second before Alice listens
        alice = subprocess.run(
            _qitcore("qkd", "alice", "--listen", f"127.0.0.1:{port}", "--records", str(tmp_path / "alice.npz"),
                     *common),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        out, err = bob.communicate(timeout=60)
    finally:
        bob.kill()
    assert bob.returncode == 0, err
    assert alice.returncode == 0, alice.stderr
    assert "secure length" in out


def test_alice_with_nobody_coming_says_so_in_one_line(tmp_path: Path, link: qkd.SimulatedLink) -> None:
    link.alice.save(tmp_path / "alice.npz")
    auth = tmp_path / "auth.key"
    auth.write_bytes(KEY)
    args = ["--listen", "127.0.0.1:0", "--records", str(tmp_path / "alice.npz"), "--auth-key-file", str(auth)]
    result = subprocess.run(
        _qitcore("qkd", "alice", *args, "--timeout", "0.5"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == "qitcore: error: no authenticated Bob connected within 0.5 s"


def test_the_cli_reports_a_missing_key_file_clearly(tmp_path: Path) -> None:
    args = ["--connect", "127.0.0.1:9", "--records", "x.npz", "--auth-key-file", str(tmp_path / "no")]
    result = subprocess.run(_qitcore("qkd", "bob", *args), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "auth-key-file" in result.stderr


def _closing_then_alice(link: qkd.SimulatedLink, server: socket.socket, closes: int, alice: list[object]) -> None:
    """Accepts and closes ``closes`` connections (a proxy whose Alice is not up yet), then serves
    a real Alice on the same listening socket."""
    for _ in range(closes):
        conn, _ = server.accept()
        conn.close()
    session = qkd.AliceSession(link.alice, qkd.Params(), KEY)
    try:
        qkd.serve_tcp(session, server, timeout=20)
        alice.append(session.result())
    except BaseException as exc:
        alice.append(exc)


def test_bob_retries_a_connection_closed_before_alice_answered(link: qkd.SimulatedLink) -> None:
    """Behind a proxy, Bob's connection is accepted and closed while Alice is not listening yet:
    he sends his first frame again until she answers (the README's "either end may be started
    first"), and the session completes with equal keys."""
    server = socket.create_server(("127.0.0.1", 0))
    alice: list[object] = []
    thread = threading.Thread(target=_closing_then_alice, args=(link, server, 3, alice), daemon=True)
    thread.start()
    try:
        with qkd.TcpChannel(KEY, "127.0.0.1", server.getsockname()[1], timeout=20, retry=20) as channel:
            bob_key, _ = qkd.BobSession(link.bob, qkd.Params(), channel).run()
        thread.join(30)
    finally:
        server.close()
    assert isinstance(alice[0], tuple), alice
    assert alice[0][0] == bob_key and len(bob_key) > 1000


def test_bob_gives_up_on_connections_closed_before_any_answer_in_time(link: qkd.SimulatedLink) -> None:
    """Connections that are always closed unanswered end Bob's session once ``retry`` has passed,
    with a message that says so."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def close_all() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                server.accept()[0].close()

    thread = threading.Thread(target=close_all, daemon=True)
    thread.start()
    try:
        start = time.monotonic()
        closing = qkd.TcpChannel(KEY, "127.0.0.1", server.getsockname()[1], timeout=5, retry=1)
        with (
            closing,
            pytest.raises(
                ChannelClosed,
                match=r"before Alice answered: is she running, with the same .* \(tried for [1-9]\d*\.\d s\)",
            ),
        ):
            qkd.BobSession(link.bob, qkd.Params(), closing).run()
        assert 1 <= time.monotonic() - start < 5
    finally:
        stop.set()
        thread.join(5)
        server.close()


def test_bob_gives_up_with_the_most_telling_reason_seen(link: qkd.SimulatedLink) -> None:
    """An Alice holding another key closes Bob's connections unanswered, then stops listening:
    Bob's last try is refused, and his message still says what the earlier ones showed."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def close_some_then_stop() -> None:
        server.settimeout(0.2)
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            with contextlib.suppress(OSError):
                server.accept()[0].close()
        server.close()

    thread = threading.Thread(target=close_some_then_stop, daemon=True)
    thread.start()
    try:
        with pytest.raises(ChannelClosed) as failure:
            closing = qkd.TcpChannel(KEY, "127.0.0.1", port, timeout=5, retry=2)
            with closing:
                qkd.BobSession(link.bob, qkd.Params(), closing).run()
    finally:
        thread.join(5)
        server.close()
    assert re.fullmatch(
        # The closing shows as a close or as a reset, as the send and the close meet.
        rf"cannot connect to 127\.0\.0\.1:{port}: .*refused \(tried for \d+\.\d s\); before that, .* "
        r"before Alice answered: is she running, with the same pre-shared key \(or key pool\) as Bob\?",
        str(failure.value),
    ), failure.value


def test_a_bob_accepted_but_never_answered_is_told_why() -> None:
    """A listener that accepts and stays silent (Alice busy with another Bob) times Bob out with a
    message that says what it saw."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        held: list[socket.socket] = []

        def accept_and_hold() -> None:
            held.append(server.accept()[0])

        thread = threading.Thread(target=accept_and_hold, daemon=True)
        thread.start()
        channel = qkd.TcpChannel(KEY, "127.0.0.1", server.getsockname()[1], timeout=0.5)
        with channel, pytest.raises(ChannelError) as failure:
            qkd.BobSession(qkd.LinkModel().simulate(100_000, seed=3).bob, qkd.Params(), channel).run()
        thread.join(5)
        for s in held:
            s.close()
    assert str(failure.value) == (
        "timed out waiting for the peer: Alice accepted but did not answer (is she serving another Bob?)"
    )
