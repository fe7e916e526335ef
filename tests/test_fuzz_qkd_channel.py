"""Fuzzing the QKD channel's TCP framing against live sockets on 127.0.0.1.

Alice's listener gets random bytes, random length prefixes, oversized and truncated frames and
Bob's real HELLO with one bit flipped: every connection is closed unanswered, Alice's memory stays
bounded, nothing hangs, and the real Bob is served afterwards. Bob's channel gets the same from a
hostile Alice: every outcome is a QitError subclass, within the socket timeout.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qitcore import qkd
from qitcore.errors import AuthenticationError, ChannelError, QitError
from qitcore.qkd.channel import FIRST_FRAME_LIMIT, NONCE_BYTES, OVERHEAD, Sealer, recv_exact, recv_frame
from qitcore.qkd.session import HELLO

from .fuzzing import examples

KEY = b"fuzz-channel-key-0123456789abcdef"
HELLO_FRAME = Sealer(KEY, is_alice=False).seal(HELLO, qkd.Params().to_json())
BIG = bytes(1 << 20)  # sent whole when an example asks for a body past every bound

_u32 = st.integers(0, 2**32 - 1)
_bounds = st.sampled_from(
    [0, 1, OVERHEAD - 1, OVERHEAD, len(HELLO_FRAME), FIRST_FRAME_LIMIT, FIRST_FRAME_LIMIT + 1, 2**31, 2**32 - 1]
)


@st.composite
def hostile_streams(draw: st.DrawFn) -> list[bytes]:
    """What a stray or hostile client sends, as the chunks it writes."""
    kind = draw(st.sampled_from(["raw", "length", "flipped", "truncated", "replayed", "big"]))
    if kind == "raw":
        return [draw(st.binary(max_size=6000))]
    if kind == "length":
        length = draw(st.one_of(_u32, _bounds))
        return [struct.pack("<I", length) + draw(st.binary(max_size=min(length, 6000)))]
    # Bob's nonce, then a HELLO sealed without this connection's challenge (one recorded elsewhere).
    framed = bytearray(bytes(NONCE_BYTES) + struct.pack("<I", len(HELLO_FRAME)) + HELLO_FRAME)
    if kind == "replayed":
        return [bytes(framed)]
    if kind == "flipped":
        # Any single bit: in the length (a frame that never completes, or one cut short), the
        # header, the parameters or the tag.
        bit = draw(st.integers(0, 8 * len(framed) - 1))
        framed[bit // 8] ^= 1 << (bit % 8)
        return [bytes(framed)]
    if kind == "truncated":
        return [bytes(framed[: draw(st.integers(0, len(framed) - 1))])]
    return [struct.pack("<I", draw(st.integers(FIRST_FRAME_LIMIT + 1, 2**32 - 1))), BIG]


def _send(port: int, chunks: list[bytes]) -> bytes:
    """Reads Alice's challenge, sends the chunks (until Alice hangs up) and returns what else
    Alice sent before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        assert len(recv_exact(sock, NONCE_BYTES)) == NONCE_BYTES
        try:
            for chunk in chunks:
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
        except TimeoutError:
            raise
        except OSError:
            pass  # Alice hung up before all of it was sent (a reset, a broken pipe, not connected)
        got = bytearray()
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(4096):  # a hang raises TimeoutError after 5 s
                got += chunk
        return bytes(got)


@pytest.fixture(scope="module")
def link() -> qkd.SimulatedLink:
    return qkd.LinkModel(distance_km=5).simulate(5_000_000, seed=8)


def test_fuzz_alice_turns_away_every_unauthenticated_first_frame(link: qkd.SimulatedLink) -> None:
    alice = qkd.AliceSession(link.alice, qkd.Params(), KEY)
    failure: list[BaseException] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def serve() -> None:
            try:
                qkd.serve_tcp(alice, server, timeout=600, first_frame_timeout=2)
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()

        @settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(hostile_streams())
        def check(chunks: list[bytes]) -> None:
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            assert _send(port, chunks) == b""
            # What this connection cost (Alice's reads and the client's): an announced length,
            # up to 4 GiB, is never allocated for, nor is the megabyte that follows it.
            assert tracemalloc.get_traced_memory()[1] - before < 256 << 10
            assert thread.is_alive(), failure

        tracemalloc.start()
        try:
            check()
        finally:
            tracemalloc.stop()
        # Still listening: the real Bob is served.
        with qkd.TcpChannel(KEY, "127.0.0.1", port, timeout=20) as channel:
            bob_key, _ = qkd.BobSession(link.bob, qkd.Params(), channel).run()
        thread.join(30)
    assert not failure and alice.result()[0] == bob_key


@contextlib.contextmanager
def _hostile_alice(replies: list[list[bytes]]) -> Iterator[int]:
    """A server that reads one frame per connection and answers with the next reply's chunks."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)

        def serve() -> None:
            while replies:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn, contextlib.suppress(OSError, QitError):
                    conn.sendall(bytes(NONCE_BYTES))
                    recv_exact(conn, NONCE_BYTES)
                    recv_frame(conn, limit=FIRST_FRAME_LIMIT)
                    for chunk in replies.pop(0):
                        conn.sendall(chunk)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield server.getsockname()[1]
    thread.join(10)


@settings(max_examples=examples(25), deadline=None)
@given(st.lists(hostile_streams(), min_size=1, max_size=5))
def test_fuzz_bob_meets_a_hostile_alice_with_named_errors(replies: list[list[bytes]]) -> None:
    with _hostile_alice(list(replies)) as port:
        for _ in replies:
            with qkd.TcpChannel(KEY, "127.0.0.1", port, timeout=5) as channel:
                channel.limit_frames(FIRST_FRAME_LIMIT)
                with pytest.raises((AuthenticationError, ChannelError)):
                    channel.request(HELLO, qkd.Params().to_json())


@settings(max_examples=examples(200), deadline=None)
@given(st.binary(max_size=2000))
def test_fuzz_sealer_refuses_every_forged_frame(frame: bytes) -> None:
    alice = Sealer(KEY, is_alice=True)
    assert not alice.authentic(frame)
    with pytest.raises(AuthenticationError):
        alice.open(frame)
    assert alice.authentic(HELLO_FRAME)  # nothing was consumed by the refusals
