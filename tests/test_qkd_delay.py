"""Latency on the classical channel: the in-process delay (:func:`qitcore.qkd.delay.delayed`) and
the delaying TCP proxy (:class:`qitcore.qkd.proxy.DelayProxy`, ``qitcore qkd proxy``).

A delay must change nothing but the time: the keys are those of an undelayed session run on the
same randomness, and the proxy passes every byte, in order. The time obeys a law that needs no
reference implementation: a message cannot arrive before its one-way delay has passed, so a
session of R round trips takes at least R * 2 * one_way seconds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qitcore import qkd
from qitcore.errors import ChannelError, InvalidArgumentError, InvalidTypeError
from qitcore.qkd.delay import MAX_DELAY, Delay, delayed
from qitcore.qkd.proxy import DelayProxy

from .loopback import ipv6_loopback

KEY = b"delay-test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def link() -> qkd.SimulatedLink:
    return qkd.LinkModel(distance_km=15).simulate(20_000_000, seed=21)


def _repeatable_urandom(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """Makes the session's draws from the OS (sample, Cascade layout, tag points, Toeplitz seed)
    a fixed stream, so that two runs of one session can be compared bit for bit."""
    rng = random.Random(seed)
    monkeypatch.setattr(os, "urandom", rng.randbytes)


def test_a_delayed_session_gives_the_undelayed_keys_and_takes_its_round_trips_in_delay(
    link: qkd.SimulatedLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    _repeatable_urandom(monkeypatch, 7)
    plain = qkd.distill(link.alice, link.bob, auth_key=KEY)
    one_way = 0.0005
    factory = delayed(one_way, jitter_s=0.0005, seed=3)
    _repeatable_urandom(monkeypatch, 7)
    start = time.perf_counter()
    slow = qkd.distill(link.alice, link.bob, channel=factory, auth_key=KEY)
    wall = time.perf_counter() - start
    assert slow.report.key_bits > 0
    assert slow.alice_key == slow.bob_key == plain.alice_key == plain.bob_key
    assert slow.report.cascade_rounds == plain.report.cascade_rounds > 100
    # Every Cascade round trip is a request and a reply, each held at least one_way.
    assert wall >= slow.report.cascade_rounds * 2 * one_way
    # Every message went through the delay, in pairs, and the delay imposed is all in the wall time.
    delay = factory.delay
    assert delay.messages % 2 == 0 and delay.messages >= 2 * slow.report.cascade_rounds
    assert delay.messages * one_way <= delay.seconds <= delay.messages * (one_way + 0.0005)
    assert wall >= delay.seconds


def test_delay_draws_lie_between_the_one_way_delay_and_the_jitter_above_it() -> None:
    d = Delay(0.002, 0.003, seed=1)
    draws = [d.draw() for _ in range(10_000)]
    assert all(0.002 <= x <= 0.005 for x in draws)
    # Uniform over the jitter: its mean is the middle of the interval (5 sigma of 10^4 draws).
    assert abs(sum(draws) / len(draws) - 0.0035) < 5 * 0.003 / 12**0.5 / 100
    again = Delay(0.002, 0.003, seed=1)
    assert draws == [again.draw() for _ in range(10_000)]
    assert {Delay(0.004).draw() for _ in range(10)} == {0.004}


def test_a_delayed_session_still_refuses_a_tampered_message(link: qkd.SimulatedLink) -> None:
    def flip(direction: str, frame: bytes) -> bytes:
        return frame[:-1] + bytes([frame[-1] ^ 1]) if direction == "to_bob" else frame

    with pytest.raises(ChannelError, match="failed authentication"):
        qkd.distill(link.alice, link.bob, channel=delayed(0.0001, tamper=flip), auth_key=KEY)


def test_ctrl_c_interrupts_a_delay(link: qkd.SimulatedLink) -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            qkd.distill(link.alice, link.bob, channel=delayed(MAX_DELAY), auth_key=KEY)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # The first message alone would have waited 10 s.
    assert time.monotonic() - start < MAX_DELAY / 2


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((-0.001,), InvalidArgumentError),
        ((float("nan"),), InvalidArgumentError),
        ((float("inf"),), InvalidArgumentError),
        ((MAX_DELAY * 1.01,), InvalidArgumentError),
        ((0.0, -1e-9), InvalidArgumentError),
        ((0.0, float("inf")), InvalidArgumentError),
        ((0.0, MAX_DELAY + 1), InvalidArgumentError),
        (("0.01",), InvalidTypeError),
        ((None,), InvalidTypeError),
        ((True,), InvalidTypeError),
    ],
)
def test_bad_delays_are_refused_naming_the_argument(args: tuple[object, ...], error: type[Exception]) -> None:
    name = "one_way_s" if len(args) == 1 else "jitter_s"
    with pytest.raises(error, match=name):
        delayed(*args)  # type: ignore[arg-type]
    name = name.removesuffix("_s")
    with pytest.raises(error, match=name):
        Delay(*args)  # type: ignore[arg-type]
    with pytest.raises(error, match=name):
        DelayProxy(("127.0.0.1", 9), *args)  # type: ignore[arg-type]


def test_other_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="seed"):
        delayed(0.001, seed=-1)
    with pytest.raises(InvalidTypeError, match="tamper"):
        delayed(0.001, tamper="drop")  # type: ignore[arg-type]
    target = ("127.0.0.1", 9)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"target": ("127.0.0.1", 0)}, "target port"),
        ({"target": ("127.0.0.1", 65536)}, "target port"),
        ({"target": "127.0.0.1:9"}, "target"),
        ({"target": ("", 9)}, "target"),
        ({"listen": ("127.0.0.1", -1)}, "listen port"),
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": 1025}, "max_connections"),
        ({"buffer_bytes": 1000}, "buffer_bytes"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"idle_timeout": -1}, "idle_timeout"),
        ({"idle_timeout": float("nan")}, "idle_timeout"),
        ({"seed": -2}, "seed"),
    ]
    for kwargs, name in bad:
        with pytest.raises(InvalidArgumentError, match=name):
            DelayProxy(**{"target": target, "one_way": 0.001, **kwargs})


class _Server:
    """A TCP server on a thread: ``serve(conn)`` handles each connection."""

    def __init__(self, serve: object) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self._serve = serve
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(20)
            try:
                self._serve(conn)  # type: ignore[operator]
            except BaseException as exc:
                self.errors.append(exc)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[_Server]:
    def serve(conn: socket.socket) -> None:
        while data := conn.recv(1 << 16):
            conn.sendall(data)

    server = _Server(serve)
    yield server
    server.close()
    assert server.errors == []


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=20)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        chunk = sock.recv(min(n - len(got), 1 << 20))
        assert chunk, f"closed after {len(got)} of {n} bytes"
        got += chunk
    return bytes(got)


@pytest.mark.parametrize(("one_way", "jitter"), [(0.0, 0.0), (0.001, 0.0), (0.001, 0.005)])
def test_the_proxy_passes_every_byte_both_ways_in_order(one_way: float, jitter: float) -> None:
    """Both ends send at once, random payloads of random sizes in random pieces, more than the
    proxy may hold per direction (so its bounded buffer has to make the senders wait)."""
    rng = random.Random(5)
    up = rng.randbytes(3_000_000)
    down = rng.randbytes(2_500_000)

    def send(sock: socket.socket, data: bytes, seed: int) -> None:
        pieces, at = random.Random(seed), 0
        while at < len(data):
            n = pieces.choice([1, 7, 1000, 65_536, 300_000])
            sock.sendall(data[at : at + n])
            at += n

    received: dict[str, bytes] = {}

    def serve(conn: socket.socket) -> None:
        sender = threading.Thread(target=send, args=(conn, down, 2))
        sender.start()
        received["up"] = _recv_exactly(conn, len(up))
        sender.join()
        assert conn.recv(1) == b""  # the client's end of stream, passed on

    server = _Server(serve)
    with (
        DelayProxy(server.address, one_way, jitter, buffer_bytes=256 << 10, seed=1) as proxy,
        _connect(proxy.address) as sock,
    ):
        sender = threading.Thread(target=send, args=(sock, up, 1))
        sender.start()
        received["down"] = _recv_exactly(sock, len(down))
        sender.join()
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b""  # the server closed: the proxy closed this side too
    server.close()
    assert server.errors == []
    assert received["up"] == up and received["down"] == down


def test_the_proxy_holds_each_direction_for_the_one_way_delay() -> None:
    """The server notes when each message arrives and when it answers; the client when it sent
    and when the answer came. One clock (one process): each direction's time is at least one_way."""
    one_way = 0.02
    arrived: list[float] = []
    answered: list[float] = []

    def serve(conn: socket.socket) -> None:
        while conn.recv(1):
            arrived.append(time.monotonic())
            answered.append(time.monotonic())
            conn.sendall(b"r")

    server = _Server(serve)
    sent, back = [], []
    with DelayProxy(server.address, one_way) as proxy, _connect(proxy.address) as sock:
        for _ in range(10):
            sent.append(time.monotonic())
            sock.sendall(b"q")
            assert sock.recv(1) == b"r"
            back.append(time.monotonic())
    server.close()
    assert server.errors == [] and len(arrived) == 10
    for s, a, r, b in zip(sent, arrived, answered, back, strict=True):
        assert a - s >= one_way and b - r >= one_way


def test_the_proxy_delays_a_burst_once_not_once_per_chunk(echo: _Server) -> None:
    """100 messages sent 1 ms apart: a proxy that held each for one_way after the previous one
    left would take 100 * one_way per direction; this one takes about one_way plus the burst."""
    one_way = 0.02
    with DelayProxy(echo.address, one_way) as proxy, _connect(proxy.address) as sock:
        start = time.monotonic()
        for i in range(100):
            sock.sendall(bytes([i]) * 10)
            time.sleep(0.001)
        assert _recv_exactly(sock, 1000) == b"".join(bytes([i]) * 10 for i in range(100))
        elapsed = time.monotonic() - start
    assert 2 * one_way <= elapsed < 100 * one_way / 2


def test_the_proxy_holds_at_most_its_buffer_when_the_receiver_does_not_read() -> None:
    """16 MiB offered to a receiver that reads nothing for a while: the proxy stops reading at its
    bound (TCP's flow control holds the sender), so its memory stays near ``buffer_bytes``."""
    payload = os.urandom(16 << 20)
    buffer_bytes = 256 << 10
    digest: list[bytes] = []

    def serve(conn: socket.socket) -> None:
        time.sleep(1.0)  # everything in flight piles up meanwhile
        into, h = bytearray(1 << 16), hashlib.sha256()
        view, left = memoryview(into), len(payload)
        while left:
            n = conn.recv_into(view)
            assert n
            h.update(view[:n])
            left -= n
        digest.append(h.digest())

    server = _Server(serve)
    tracemalloc.start()
    try:
        with DelayProxy(server.address, 0.001, buffer_bytes=buffer_bytes) as proxy, _connect(proxy.address) as sock:
            sock.sendall(payload)
            deadline = time.monotonic() + 20
            while not digest and time.monotonic() < deadline:
                time.sleep(0.01)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    server.close()
    assert server.errors == [] and digest == [hashlib.sha256(payload).digest()]
    assert peak < 4 * buffer_bytes + (2 << 20), peak  # unbounded, it would hold most of the 16 MiB


def test_the_proxy_bounds_its_connections(echo: _Server) -> None:
    with DelayProxy(echo.address, 0.001, max_connections=1) as proxy, _connect(proxy.address) as first:
        first.sendall(b"x")
        assert first.recv(1) == b"x"  # forwarded: it holds the one slot
        with _connect(proxy.address) as second:
            assert second.recv(1) == b""  # closed at once
        assert proxy.refused == 1 and proxy.accepted == 1
        first.sendall(b"y")
        assert first.recv(1) == b"y"


def test_the_proxy_closes_an_idle_connection_both_sides() -> None:
    closed = threading.Event()

    def serve(conn: socket.socket) -> None:
        assert conn.recv(1) == b""
        closed.set()

    server = _Server(serve)
    with DelayProxy(server.address, 0.001, idle_timeout=0.3) as proxy, _connect(proxy.address) as sock:
        start = time.monotonic()
        assert sock.recv(1) == b""
        assert 0.3 <= time.monotonic() - start < 5
        assert closed.wait(5)
    server.close()
    assert server.errors == []


def test_a_silent_client_whose_target_hung_up_frees_its_slot_soon() -> None:
    """The target closes at once (as Alice does to a client that sends nothing): the client's
    slot is freed after half_closed_idle, long before idle_timeout, so silent clients cannot fill
    the proxy."""

    def serve(conn: socket.socket) -> None:
        conn.close()

    server = _Server(serve)
    with DelayProxy(server.address, 0.001, max_connections=1, idle_timeout=60, half_closed_idle=0.5) as proxy:
        with _connect(proxy.address) as silent:
            assert silent.recv(1) == b""  # the target's end of stream, passed on
            start = time.monotonic()
            while proxy.accepted == 1 and "connections=1" in repr(proxy):
                assert time.monotonic() - start < 10, "the slot was not freed"
                time.sleep(0.05)
            assert time.monotonic() - start >= 0.4
        with _connect(proxy.address) as second:  # the slot is free again: not refused
            assert second.recv(1) == b"" and proxy.refused == 0
    server.close()


def test_closing_the_proxy_closes_its_connections_both_sides(caplog: pytest.LogCaptureFixture) -> None:
    """Closing the proxy with a connection open ends it at both sides, quietly: asyncio reports no
    error (a cancelled connection once printed a traceback on Ctrl-C)."""
    closed = threading.Event()

    def serve(conn: socket.socket) -> None:
        conn.sendall(b"hello")
        assert conn.recv(1) == b""
        closed.set()

    server = _Server(serve)
    proxy = DelayProxy(server.address, 0.001).start()
    with _connect(proxy.address) as sock:
        assert _recv_exactly(sock, 5) == b"hello"
        proxy.close()
        assert sock.recv(1) == b""
        assert closed.wait(5)
    proxy.close()  # twice is harmless
    server.close()
    assert server.errors == []
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR] == []
    with pytest.raises(ChannelError, match="not running"):
        proxy.address  # noqa: B018


def test_a_target_nobody_listens_on_closes_the_client() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    with DelayProxy(("127.0.0.1", port), 0.001) as proxy, _connect(proxy.address) as sock:
        assert sock.recv(1) == b""


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.create_server((host, 0), family=socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        return int(s.getsockname()[1])


def test_a_target_that_leads_back_to_the_proxy_is_caught_however_written(caplog: pytest.LogCaptureFixture) -> None:
    """The listening address written otherwise (a name, a wildcard, an IPv4-mapped address)
    still reaches the proxy: the connection it makes arrives back at it. That one is closed at
    once, so the client's connection ends instead of being forwarded again and again."""
    cases = [("127.0.0.1", "localhost"), ("0.0.0.0", "127.0.0.1"), ("127.0.0.1", "0.0.0.0")]
    if ipv6_loopback():
        cases += [("::", "::1"), ("::1", "::"), ("127.0.0.1", "::ffff:127.0.0.1")]
    for listen, target in cases:
        port = _free_port(listen)  # free on the very address the proxy binds
        caplog.clear()
        with DelayProxy((target, port), 0.001, listen=(listen, port)) as proxy:
            with _connect(("::1" if ":" in listen else "127.0.0.1", port)) as sock:
                sock.settimeout(10)
                assert sock.recv(1) == b"", (listen, target)
            time.sleep(0.2)  # nothing more arrives: the loop ended at its first turn
            assert (proxy.accepted, proxy.forwarded, proxy.looped) == (1, 1, 1), (listen, target)
        assert any("is this proxy itself" in r.getMessage() for r in caplog.records), (listen, target)


def test_an_address_in_use_is_a_clear_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        address = taken.getsockname()[:2]
        with pytest.raises(ChannelError, match="cannot listen"):
            DelayProxy(("127.0.0.1", 9), 0.001, listen=address).start()


def test_both_ends_over_tcp_through_the_proxy_get_the_same_key(link: qkd.SimulatedLink) -> None:
    one_way = 0.001
    alice = qkd.AliceSession(link.alice, qkd.Params(), KEY)
    server = socket.create_server(("127.0.0.1", 0))
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            qkd.serve_tcp(alice, server, timeout=30)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with DelayProxy(server.getsockname()[:2], one_way, 0.0005) as proxy:
        start = time.perf_counter()
        with qkd.TcpChannel(KEY, *proxy.address, timeout=30) as channel:
            bob_key, report = qkd.BobSession(link.bob, qkd.Params(), channel).run()
        wall = time.perf_counter() - start
        thread.join(30)
    server.close()
    assert not thread.is_alive() and failure == []
    alice_key, _ = alice.result()
    assert alice_key == bob_key and report.key_bits > 0
    assert wall >= report.cascade_rounds * 2 * one_way


def _qitcore(*args: str) -> list[str]:
    return [sys.executable, "-m", "qitcore", *args]


def _port_from(process: subprocess.Popen[str], what: str) -> int:
    assert process.stderr is not None
    line = process.stderr.readline()
    assert what in line, line
    return int(line.split("listening on ", 1)[1].split(",")[0].strip().rsplit(":", 1)[1])


@pytest.mark.parametrize("how", ["cascade+hmac", "blind+wegman-carter"])
def test_alice_proxy_and_bob_as_three_programs(tmp_path: Path, link: qkd.SimulatedLink, how: str) -> None:
    """The issue's deployment: two programs over TCP through a delaying proxy, with LDPC and
    Wegman-Carter as with Cascade and HMAC; equal keys, and with pools, equal pools after."""
    link.alice.save(tmp_path / "alice.npz")
    link.bob.save(tmp_path / "bob.npz")
    auth = tmp_path / "auth.key"
    method, authentication = how.split("+")
    if authentication == "hmac":
        auth.write_bytes(KEY)
        ends = {"alice": ["--auth-key-file", str(auth)], "bob": ["--auth-key-file", str(auth)]}
    else:
        auth.write_bytes(os.urandom(1 << 16))
        for end in ("alice", "bob"):
            create = _qitcore("qkd", "pool-create", str(tmp_path / f"{end}.pool"), "--key-file", str(auth))
            made = subprocess.run(create, capture_output=True, text=True, timeout=60)
            assert made.returncode == 0, made.stderr
        ends = {end: ["--auth-pool", str(tmp_path / f"{end}.pool")] for end in ("alice", "bob")}
    common = ["--timeout", "30", "--reconciliation", method]
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        p = subprocess.Popen(_qitcore(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        processes.append(p)
        return p

    try:
        alice = start("qkd", "alice", "--listen", "127.0.0.1:0", "--records", str(tmp_path / "alice.npz"), *common,
                      *ends["alice"], "--key-out", str(tmp_path / "alice.key"))  # fmt: skip
        alice_port = _port_from(alice, "alice: listening on")
        proxy = start("qkd", "proxy", "--listen", "127.0.0.1:0", "--to", f"127.0.0.1:{alice_port}", "--delay-ms", "1")
        proxy_port = _port_from(proxy, "proxy: listening on")
        bob = subprocess.run(
            _qitcore("qkd", "bob", "--connect", f"127.0.0.1:{proxy_port}", "--records", str(tmp_path / "bob.npz"),
                     *common, *ends["bob"], "--key-out", str(tmp_path / "bob.key")),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        _, alice_err = alice.communicate(timeout=60)
        proxy.send_signal(signal.SIGTERM)
        _, proxy_err = proxy.communicate(timeout=30)
    finally:
        for p in processes:
            p.kill()
            p.wait()
    assert bob.returncode == 0, bob.stderr
    assert alice.returncode == 0, alice_err
    assert proxy.returncode == 0 and "proxy: stopped (1 connection: 1 forwarded)" in proxy_err, proxy_err
    alice_key, bob_key = (tmp_path / "alice.key").read_bytes(), (tmp_path / "bob.key").read_bytes()
    assert alice_key == bob_key and len(alice_key) > 1000
    if authentication == "wegman-carter":
        # Both pools consumed and replenished alike: the same bytes from here on.
        pools = [(tmp_path / f"{end}.pool").read_bytes() for end in ("alice", "bob")]
        assert pools[0] == pools[1] and len(pools[0]) > (1 << 16)


def test_the_proxy_command_refuses_a_delay_given_in_the_wrong_unit() -> None:
    result = subprocess.run(
        _qitcore("qkd", "proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--delay-ms", "20000"),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "qitcore: error: --delay-ms: expected 0 to 10000 ms, got 20000 ms"


def test_the_proxy_counts_what_it_did_with_each_connection() -> None:
    """A connection whose target cannot be reached is not counted as forwarded."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        nobody = s.getsockname()[:2]
    with DelayProxy(nobody, 0.001, max_connections=1) as proxy:
        with _connect(proxy.address) as sock:
            assert sock.recv(1) == b""
        deadline = time.monotonic() + 10
        while proxy.accepted < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (proxy.accepted, proxy.forwarded, proxy.refused) == (1, 0, 0)


def test_the_proxy_refuses_to_forward_to_itself() -> None:
    with pytest.raises(InvalidArgumentError, match=r"listen: the same address as the target \(127\.0\.0\.1:7000\)"):
        DelayProxy(("127.0.0.1", 7000), 0.001, listen=("127.0.0.1", 7000))


def test_ipv6_addresses_are_written_in_brackets() -> None:
    from qitcore import _validate

    assert _validate.host_port("address", "[::1]:7000") == ("::1", 7000)
    assert _validate.host_port("address", "[fe80::1%eth0]:0") == ("fe80::1%eth0", 0)
    assert _validate.show_host_port("::1", 7000) == "[::1]:7000"
    assert _validate.show_host_port("127.0.0.1", 7000) == "127.0.0.1:7000"
    for bad in ("[::1]", "[::1:7000", "::1]:7000", "[]:7000", "[[::1]]:7000", "fe80::1", "::1:7000", "a:b:7", "h:²"):
        with pytest.raises(InvalidArgumentError, match="HOST:PORT"):
            _validate.host_port("address", bad)


def test_alice_listens_and_bob_connects_on_ipv6(tmp_path: Path, link: qkd.SimulatedLink) -> None:
    """``[::1]:PORT`` reaches the socket layer without its brackets, both ends; where the machine
    has no IPv6 loopback, Alice's refusal is one clear line."""
    link.alice.save(tmp_path / "alice.npz")
    link.bob.save(tmp_path / "bob.npz")
    (tmp_path / "auth.key").write_bytes(KEY)
    auth = ["--auth-key-file", str(tmp_path / "auth.key")]
    alice = subprocess.Popen(
        _qitcore("qkd", "alice", "--listen", "[::1]:0", "--records", str(tmp_path / "alice.npz"), *auth,
                 "--timeout", "30"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        if not ipv6_loopback():
            _, err = alice.communicate(timeout=60)
            assert alice.returncode == 2 and err.startswith("qitcore: error: --listen [::1]:0: "), err
            return
        assert alice.stderr is not None
        line = alice.stderr.readline()
        assert line.startswith("alice: listening on [::1]:"), line
        port = int(line.rsplit(":", 1)[1])
        bob = subprocess.run(
            _qitcore("qkd", "bob", "--connect", f"[::1]:{port}", "--records", str(tmp_path / "bob.npz"), *auth,
                     "--timeout", "30"),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        _, alice_err = alice.communicate(timeout=60)
    finally:
        alice.kill()
        alice.wait()
    assert bob.returncode == 0, bob.stderr
    assert alice.returncode == 0 and "alice: Bob connected from [::1]:" in alice_err, alice_err
