"""Wegman–Carter authentication of the QKD channel: tags against a naive evaluation of the hash,
every tampered, replayed, reordered or forged frame refused, the pools consumed in lockstep and
never twice, exhaustion ending the session without a key, over the in-process channel and TCP."""

from __future__ import annotations

import itertools
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qitcore import _core, qkd
from qitcore.errors import (
    AuthenticationError,
    ChannelClosed,
    InvalidArgumentError,
    InvalidTypeError,
    KeyPoolExhausted,
    QitError,
    QkdError,
)
from qitcore.qkd import auth
from qitcore.qkd.channel import NONCE_BYTES, InProcessChannel, frame_limit, recv_exact
from qitcore.qkd.keypool import HEADER, RESERVE, KeyPool

from .fuzzing import examples

# --- the hash, against a naive evaluation -------------------------------------------------------


def _gf_mul(a: int, b: int) -> int:
    """Product in GF(2)[t]/(t^64 + t^4 + t^3 + t + 1): schoolbook carry-less product, then the
    remainder by long division."""
    p = 0
    for i in range(64):
        if b >> i & 1:
            p ^= a << i
    modulus = (1 << 64) | 0x1B
    for i in range(127, 63, -1):
        if p >> i & 1:
            p ^= modulus << (i - 64)
    return p


def _naive_tag(key: bytes, pad: bytes, message: bytes) -> bytes:
    """Σ m_i·k^(L+2-i) + n·k, each power computed on its own, XOR the pad."""
    k = int.from_bytes(key, "little")
    blocks = [int.from_bytes(message[i : i + 8].ljust(8, b"\0"), "little") for i in range(0, len(message), 8)]
    coefficients = [*blocks, len(message)]
    total = 0
    for i, c in enumerate(coefficients):
        power = 1
        for _ in range(len(coefficients) - i):
            power = _gf_mul(power, k)
        total ^= _gf_mul(c, power)
    return (total ^ int.from_bytes(pad, "little")).to_bytes(8, "little")


def test_gf_multiplication_reference_reduces_t64() -> None:
    assert _gf_mul(2, 1 << 63) == 0x1B  # t·t^63 = t^64 ≡ t^4 + t^3 + t + 1
    assert _gf_mul(0xDEADBEEF, 1) == 0xDEADBEEF


def test_tags_equal_the_naive_polynomial() -> None:
    rng = random.Random(18)
    for n in [*range(0, 34), 100, 1000]:
        key, pad = rng.randbytes(8), rng.randbytes(8)
        message = rng.randbytes(n)
        cut = rng.randrange(n + 1)
        expected = _naive_tag(key, pad, message)
        assert _core.wegman_carter_tag(key, pad, message[:cut], message[cut:]) == expected
        assert _core.wegman_carter_tag(bytearray(key), memoryview(pad), b"", message) == expected
        assert _core.wegman_carter_epsilon(n) == (-(-n // 8) + 1) / 2**64


def test_the_binding_refuses_keys_and_pads_of_other_sizes() -> None:
    with pytest.raises(InvalidArgumentError, match="key"):
        _core.wegman_carter_tag(bytes(7), bytes(8), b"", b"")
    with pytest.raises(InvalidArgumentError, match="pad"):
        _core.wegman_carter_tag(bytes(8), bytes(16), b"", b"")


# --- sealers on two pools ----------------------------------------------------------------------

KEY = random.Random(99).randbytes(16 * RESERVE)


def _pools(tmp_path: Path, key: bytes = KEY) -> tuple[KeyPool, KeyPool]:
    return KeyPool.create(tmp_path / "alice.pool", key), KeyPool.create(tmp_path / "bob.pool", key)


def test_frames_carry_the_tag_of_header_and_payload_under_the_pool_key(tmp_path: Path) -> None:
    alice_pool, bob_pool = _pools(tmp_path)
    bob = auth.WegmanCarterSealer(bob_pool, is_alice=False)
    alice = auth.WegmanCarterSealer(alice_pool, is_alice=True)
    for r, payload in enumerate((b"hello", b"", bytes(range(200)))):
        frame = bob.seal(3, payload)
        offset = 8 + 16 * r  # hash key at 0, then Bob's pad and Alice's reply pad each round trip
        assert struct.unpack_from("<Q", frame, auth.HEADER.size - 8)[0] == offset
        assert frame[-8:] == _naive_tag(KEY[:8], KEY[offset : offset + 8], frame[:-8])
        assert alice.open(frame) == (3, payload)
        reply = alice.seal(0x83, payload[::-1])
        assert reply[-8:] == _naive_tag(KEY[:8], KEY[offset + 8 : offset + 16], reply[:-8])
        assert bob.open(reply) == (0x83, payload[::-1])
    # Each tag counted once at each end: the ε of the six frames.
    assert bob.eps == alice.eps > 0
    assert "hidden" in repr(bob) and KEY[:8].hex() not in repr(bob)


def _session_pair(tmp_path: Path) -> tuple[auth.WegmanCarterSealer, auth.WegmanCarterSealer]:
    alice_pool, bob_pool = _pools(tmp_path)
    return auth.WegmanCarterSealer(alice_pool, is_alice=True), auth.WegmanCarterSealer(bob_pool, is_alice=False)


def test_every_flipped_bit_of_a_frame_is_refused(tmp_path: Path) -> None:
    for i, bit in itertools.product(range(0, 40), (0, 7)):
        directory = tmp_path / f"{i}-{bit}"
        directory.mkdir()
        alice, bob = _session_pair(directory)
        frame = bytearray(bob.seal(5, b"parity queries"))
        frame[i % len(frame)] ^= 1 << bit
        with pytest.raises(AuthenticationError):
            alice.open(bytes(frame))
        alice.pool.close()
        bob.pool.close()


def test_replayed_reordered_dropped_and_forged_frames_are_refused(tmp_path: Path) -> None:
    alice, bob = _session_pair(tmp_path)
    first = bob.seal(1, b"one")
    alice.open(first)
    bob.open(alice.seal(0x81, b""))
    second, third = bob.seal(2, b"two"), bob.seal(3, b"three")
    with pytest.raises(AuthenticationError, match="replayed|reordered|dropped"):
        alice.open(first)  # replayed
    with pytest.raises(AuthenticationError, match="replayed|reordered|dropped"):
        alice.open(third)  # before second: out of step
    # Alice may not reply to a frame out of step: Bob reserved no pad for that reply.
    assert not alice.can_reply
    with pytest.raises(AuthenticationError, match="nothing to reply to"):
        alice.seal(0xEE, b"error")
    # A forged tag on the frame due is refused before Alice reserves or spends anything, and she
    # may not reply to it (the pad due may not be reserved by Bob yet); the session, not the
    # sealer, ends on it, so the genuine frame still opens here.
    handed, used = alice.pool.handed_out, alice.pool.used
    with pytest.raises(AuthenticationError, match="failed authentication"):
        alice.open(second[:-8] + bytes(8))
    assert (alice.pool.handed_out, alice.pool.used) == (handed, used) and not alice.can_reply
    assert alice.open(second) == (2, b"two") and alice.can_reply


def test_a_first_frame_from_an_earlier_session_is_refused(tmp_path: Path) -> None:
    alice_pool, bob_pool = _pools(tmp_path)
    bob = auth.WegmanCarterSealer(bob_pool, is_alice=False)
    alice = auth.WegmanCarterSealer(alice_pool, is_alice=True)
    old = bob.seal(1, b"HELLO")
    alice.open(old)
    bob.open(alice.seal(0x81, b""))
    # A new session at each end: the recorded HELLO lies below Alice's mark.
    alice2 = auth.WegmanCarterSealer(alice_pool, is_alice=True)
    assert not alice2.authentic(old)
    with pytest.raises(AuthenticationError, match="below the mark"):
        alice2.open(old)
    bob2 = auth.WegmanCarterSealer(bob_pool, is_alice=False)
    assert alice2.open(bob2.seal(1, b"HELLO")) == (1, b"HELLO")


def test_stray_first_frames_change_nothing_but_count_as_attempts(tmp_path: Path) -> None:
    alice, bob = _session_pair(tmp_path)
    mark = alice.pool.handed_out
    for offset in (8, 1000, 1 << 40):
        forged = auth.HEADER.pack(auth.MAGIC, 1, 0, 5, offset) + b"HELLO" + os.urandom(8)
        assert not alice.authentic(forged)
    assert alice.pool.handed_out == mark and alice.eps > 0
    genuine = bob.seal(1, b"HELLO")
    assert alice.authentic(genuine) and alice.pool.handed_out == mark
    assert alice.open(genuine) == (1, b"HELLO")


def test_a_forged_first_frame_spends_nothing(tmp_path: Path) -> None:
    alice, bob = _session_pair(tmp_path)
    for offset in (8, 4096, 16 * RESERVE - 8):
        forged = auth.HEADER.pack(auth.MAGIC, 1, 0, 5, offset) + b"HELLO" + os.urandom(8)
        with pytest.raises(AuthenticationError, match="failed authentication"):
            alice.open(forged)
        # Alice's mark stays below Bob's: his HELLO is still good.
        assert alice.pool.handed_out == 0 and alice.pool.used == 0
    assert alice.open(bob.seal(1, b"HELLO")) == (1, b"HELLO")


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=6),
    target=st.integers(0, 100),
    bit=st.integers(0, 8 * 400),
    to_alice=st.booleans(),
)
def test_any_flipped_bit_of_any_frame_ends_the_session(
    tmp_path: Path, payloads: list[bytes], target: int, bit: int, to_alice: bool
) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        alice_pool, bob_pool = _pools(Path(d))
        alice = auth.WegmanCarterSealer(alice_pool, is_alice=True)
        bob = auth.WegmanCarterSealer(bob_pool, is_alice=False)
        target %= len(payloads)
        for i, payload in enumerate(payloads):
            frame = bob.seal(4, payload)
            if i == target and to_alice:
                frame = _flip(frame, bit)
                with pytest.raises(AuthenticationError):
                    alice.open(frame)
                break
            assert alice.open(frame) == (4, payload)
            reply = alice.seal(0x84, payload[::-1])
            if i == target:
                with pytest.raises(AuthenticationError):
                    bob.open(_flip(reply, bit))
                break
            assert bob.open(reply) == (0x84, payload[::-1])
        alice_pool.close()
        bob_pool.close()


def _flip(frame: bytes, bit: int) -> bytes:
    bit %= 8 * len(frame)
    out = bytearray(frame)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=200))
def test_garbage_is_refused_with_a_qit_error(tmp_path: Path, garbage: bytes) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        alice_pool, bob_pool = _pools(Path(d))
        alice = auth.WegmanCarterSealer(alice_pool, is_alice=True)
        assert not alice.authentic(garbage)
        with pytest.raises(QitError):
            alice.open(garbage)
        assert alice_pool.handed_out == 0
        alice_pool.close()
        bob_pool.close()


# --- whole sessions ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def link() -> qkd.SimulatedLink:
    return qkd.LinkModel(distance_km=20).simulate(30_000_000, seed=11)


class _Recorder:
    """Wraps KeyPool.take to record every (path, offset, length) handed out."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.taken: list[tuple[str, int, int]] = []
        original = KeyPool.take

        def take(pool: KeyPool, offset: int, nbytes: int) -> bytearray:
            out = original(pool, offset, nbytes)
            self.taken.append((pool.path, offset, nbytes))
            return out

        monkeypatch.setattr(KeyPool, "take", take)

    def assert_disjoint(self) -> None:
        for path in {p for p, _, _ in self.taken}:
            spans = sorted((o, o + n) for p, o, n in self.taken if p == path)
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), path


def _same_files(tmp_path: Path) -> None:
    assert (tmp_path / "alice.pool").read_bytes() == (tmp_path / "bob.pool").read_bytes()


def test_sessions_in_process_give_equal_keys_and_keep_the_pools_equal(
    link: qkd.SimulatedLink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = _Recorder(monkeypatch)
    alice_pool, bob_pool = _pools(tmp_path, os.urandom(1 << 16))
    for restart in range(3):
        if restart:
            alice_pool.close()
            bob_pool.close()
            alice_pool, bob_pool = KeyPool(tmp_path / "alice.pool"), KeyPool(tmp_path / "bob.pool")
        start, size = bob_pool.used, bob_pool.size
        result = qkd.distill(link.alice, link.bob, auth_key=(alice_pool, bob_pool))
        r = result.report
        assert result.alice_key == result.bob_key and r.auth == "wegman-carter"
        # Consumed: the hash key and two pads per round trip (sessions, sifting, estimation,
        # Cascade, verification, amplification, done), rounded up to the reservation grid.
        round_trips = r.cascade_rounds + 7
        assert r.pool_bits_consumed == 8 * (bob_pool.used - start) == 8 * (alice_pool.used - start)
        assert 8 * (8 + 16 * round_trips) <= r.pool_bits_consumed < 8 * (8 + 16 * round_trips + RESERVE)
        # Returned from the key, which is that much shorter than the secure length.
        distilled = r.secure_length - r.secure_length % 8
        assert r.pool_bits_returned == min(r.pool_bits_consumed, distilled)
        assert bob_pool.size == size + r.pool_bits_returned // 8
        # The pool before and after: what was never used, less what was consumed, plus what came back.
        assert r.pool_bits_before == 8 * (size - start)
        assert r.pool_bits_after == r.pool_bits_before - r.pool_bits_consumed + r.pool_bits_returned
        assert r.pool_bits_after == 8 * bob_pool.available
        assert r.key_bits == 8 * len(result.bob_key) == distilled - r.pool_bits_returned
        # Every reply Bob checked is charged (longest accepted + 1)/2^64 blocks (a forger may
        # swap in a message of any length the session accepts), every request he sealed its own.
        longest = frame_limit(len(link.bob)) - 8
        checked = round_trips * (-(-longest // 8) + 1) / 2.0**64
        assert checked <= r.eps_auth <= 2 * checked
        assert r.eps_total == r.eps_sec + r.eps_cor + r.eps_auth
        _same_files(tmp_path)
    recorder.assert_disjoint()
    assert len(recorder.taken) > 6 * 400


def _tamper_at(n: int, kind: str) -> Callable[[str, bytes], bytes | None]:
    state = {"n": 0, "previous": b""}

    def tamper(direction: str, frame: bytes) -> bytes | None:
        state["n"] += 1
        previous, state["previous"] = state["previous"], frame
        if state["n"] != n:
            return frame
        if kind == "drop":
            return None
        if kind == "flip":
            return frame[:-3] + bytes([frame[-3] ^ 4]) + frame[-2:]
        if kind == "forge":
            return frame[:-8] + os.urandom(8)
        return previous  # replay the previous frame in place of this one

    return tamper


@pytest.mark.parametrize("kind", ["drop", "flip", "forge", "replay"])
@pytest.mark.parametrize("at", [1, 2, 9, 14])
def test_channel_faults_end_the_session_without_a_key_and_the_next_one_works(
    link: qkd.SimulatedLink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, at: int
) -> None:
    # Frames alternate, Bob's first. Alice answers a frame that does not authenticate by closing
    # the channel, not with a sealed ERROR: Bob reserved no pad for that reply.
    error = ChannelClosed if kind == "drop" or at % 2 == 1 else AuthenticationError
    recorder = _Recorder(monkeypatch)
    alice_pool, bob_pool = _pools(tmp_path, os.urandom(1 << 15))
    alice = qkd.AliceSession(link.alice, qkd.Params(), alice_pool)
    with InProcessChannel(bob_pool, alice, tamper=_tamper_at(at, kind)) as channel, pytest.raises(error):
        qkd.BobSession(link.bob, qkd.Params(), channel).run()
    with pytest.raises(QkdError):
        alice.result()
    assert alice_pool.used <= bob_pool.used  # Alice's mark never passes Bob's
    # The failed session's bytes are lost; the next session starts past them at both ends.
    result = qkd.distill(link.alice, link.bob, auth_key=(alice_pool, bob_pool))
    # (A long Cascade run may consume more than the key holds: then no key, all of it returned.)
    assert result.alice_key == result.bob_key and result.report.pool_bits_returned > 0
    recorder.assert_disjoint()


@pytest.mark.parametrize("lost_reply", [14, 15, 16])
def test_alice_spends_no_pool_bytes_on_a_frame_of_another_session(
    link: qkd.SimulatedLink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lost_reply: int
) -> None:
    """A reply lost mid-session: Bob gives up and starts again at his mark, and a man in the
    middle hands his new first frame to the old Alice. Her answer must not use pool bytes, which
    may be Bob's new hash key (at the 16th round trip the mark falls exactly on her reply pad)."""
    recorder = _Recorder(monkeypatch)
    alice_pool, bob_pool = _pools(tmp_path, os.urandom(1 << 15))
    alice = qkd.AliceSession(link.alice, qkd.Params(), alice_pool)
    replies = itertools.count(1)

    def lose(direction: str, frame: bytes) -> bytes | None:
        return None if direction == "to_bob" and next(replies) == lost_reply else frame

    with InProcessChannel(bob_pool, alice, tamper=lose) as channel, pytest.raises(ChannelClosed):
        qkd.BobSession(link.bob, qkd.Params(), channel).run()
    before = len(recorder.taken)
    new_bob = auth.WegmanCarterSealer(bob_pool, is_alice=False)
    with pytest.raises(ChannelClosed, match="Alice closed the channel"):
        alice.handle_frame(new_bob.seal(1, qkd.Params().to_json()))
    assert [t for t in recorder.taken[before:] if t[0] == alice_pool.path] == []
    assert isinstance(alice.error, AuthenticationError) and alice_pool.used <= bob_pool.used


def test_alice_out_of_pool_closes_the_channel_and_says_why(link: qkd.SimulatedLink, tmp_path: Path) -> None:
    key = os.urandom(1 << 15)
    alice_pool = KeyPool.create(tmp_path / "alice.pool", key[:RESERVE])  # Alice's copy cut short
    bob_pool = KeyPool.create(tmp_path / "bob.pool", key)
    alice = qkd.AliceSession(link.alice, qkd.Params(), alice_pool)
    with InProcessChannel(bob_pool, alice) as channel, pytest.raises(ChannelClosed, match="Alice closed"):
        qkd.BobSession(link.bob, qkd.Params(), channel).run()
    assert isinstance(alice.error, KeyPoolExhausted)
    with pytest.raises(KeyPoolExhausted):
        alice.result()


def test_exhaustion_mid_session_releases_no_key_at_either_end(
    link: qkd.SimulatedLink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = _Recorder(monkeypatch)
    key = os.urandom(4 * RESERVE)  # a few hundred round trips short of a Cascade session
    alice_pool, bob_pool = _pools(tmp_path, key)
    alice = qkd.AliceSession(link.alice, qkd.Params(), alice_pool)
    with InProcessChannel(bob_pool, alice) as channel, pytest.raises(KeyPoolExhausted):
        qkd.BobSession(link.bob, qkd.Params(), channel).run()
    with pytest.raises(QkdError):
        alice.result()
    assert alice.state.name not in ("DONE", "FINISHED")
    assert bob_pool.used <= bob_pool.size and alice_pool.used <= bob_pool.used
    recorder.assert_disjoint()
    # Replenished at both ends with the same new key, the pools work again.
    fresh = os.urandom(1 << 16)
    alice_pool.replenish(fresh)
    bob_pool.replenish(fresh)
    result = qkd.distill(link.alice, link.bob, auth_key=(alice_pool, bob_pool))
    assert result.alice_key == result.bob_key
    recorder.assert_disjoint()


def test_a_key_shorter_than_what_the_session_consumed_is_all_returned(tmp_path: Path) -> None:
    small = qkd.LinkModel(distance_km=20).simulate(14_000_000, seed=4)
    alice_pool, bob_pool = _pools(tmp_path, os.urandom(1 << 15))
    size = bob_pool.size
    result = qkd.distill(small.alice, small.bob, auth_key=(alice_pool, bob_pool))
    r = result.report
    distilled = r.secure_length - r.secure_length % 8
    assert 0 < distilled < r.pool_bits_consumed, "the link must give less key than a session consumes"
    assert result.alice_key == result.bob_key == b"" and r.key_bits == 0
    assert r.pool_bits_returned == distilled and bob_pool.size == size + distilled // 8
    _same_files(tmp_path)


def test_a_crash_between_reserving_and_using_loses_bits_and_reuses_none(
    link: qkd.SimulatedLink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = _Recorder(monkeypatch)
    alice_pool, bob_pool = _pools(tmp_path, os.urandom(1 << 15))

    def interrupt(direction: str, frame: bytes) -> bytes:
        if len(recorder.taken) > 40:
            raise KeyboardInterrupt  # Ctrl-C after pads were reserved and taken, before use
        return frame

    alice = qkd.AliceSession(link.alice, qkd.Params(), alice_pool)
    with InProcessChannel(bob_pool, alice, tamper=interrupt) as channel, pytest.raises(KeyboardInterrupt):
        qkd.BobSession(link.bob, qkd.Params(), channel).run()
    # The processes die: the files are all that is left.
    alice_pool.close()
    bob_pool.close()
    alice_pool, bob_pool = KeyPool(tmp_path / "alice.pool"), KeyPool(tmp_path / "bob.pool")
    before = len(recorder.taken)
    result = qkd.distill(link.alice, link.bob, auth_key=(alice_pool, bob_pool))
    assert result.alice_key == result.bob_key and result.report.pool_bits_returned > 0
    first_new = min(o for _, o, _ in recorder.taken[before:])
    assert first_new >= max(o + n for _, o, n in recorder.taken[:before])
    recorder.assert_disjoint()


def test_hmac_stays_the_default_and_reports_itself_computational(link: qkd.SimulatedLink) -> None:
    r = qkd.distill(link.alice, link.bob).report
    assert r.auth == "hmac-sha256" and r.eps_auth == 0 and r.pool_bits_consumed == 0
    assert "hmac-sha256 (computational)" in r.text() and r.eps_total == r.eps_sec + r.eps_cor


def test_one_pool_for_both_ends_is_refused(link: qkd.SimulatedLink, tmp_path: Path) -> None:
    alice_pool, _ = _pools(tmp_path)
    with pytest.raises(InvalidArgumentError, match="pool each|pair"):
        qkd.distill(link.alice, link.bob, auth_key=(alice_pool, alice_pool))
    with pytest.raises(InvalidArgumentError, match="one KeyPool for both ends"):
        qkd.distill(link.alice, link.bob, auth_key=alice_pool)  # type: ignore[arg-type]


def test_both_ends_over_tcp_with_wegman_carter(link: qkd.SimulatedLink, tmp_path: Path) -> None:
    alice_pool, bob_pool = _pools(tmp_path, os.urandom(1 << 15))
    session = qkd.AliceSession(link.alice, qkd.Params(), alice_pool)
    server = socket.create_server(("127.0.0.1", 0))
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            qkd.serve_tcp(session, server, timeout=30)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    # A stray client's forged HELLO first: refused, the real Bob served after it.
    with socket.create_connection(server.getsockname()[:2]) as stray:
        forged = auth.HEADER.pack(auth.MAGIC, 1, 0, 5, 8) + b"HELLO" + os.urandom(8)
        assert len(recv_exact(stray, NONCE_BYTES)) == NONCE_BYTES  # Alice's challenge
        stray.sendall(bytes(NONCE_BYTES) + struct.pack("<I", len(forged)) + forged)
        assert stray.recv(1) == b""
    with qkd.TcpChannel(bob_pool, "127.0.0.1", server.getsockname()[1], timeout=30) as channel:
        bob_key, report = qkd.BobSession(link.bob, qkd.Params(), channel).run()
    thread.join(30)
    server.close()
    assert not errors
    alice_key, alice_report = session.result()
    assert alice_key == bob_key and report.key_bits == 8 * len(bob_key) and report.pool_bits_returned > 0
    assert alice_report.pool_bits_consumed == report.pool_bits_consumed
    # Alice's ε includes the stray client's attempt.
    assert alice_report.eps_auth > report.eps_auth > 0
    _same_files(tmp_path)


def test_pool_files_are_wiped_where_used(link: qkd.SimulatedLink, tmp_path: Path) -> None:
    alice_pool, bob_pool = _pools(tmp_path, os.urandom(1 << 15))
    qkd.distill(link.alice, link.bob, auth_key=(alice_pool, bob_pool))
    data = (tmp_path / "bob.pool").read_bytes()[HEADER.size :]
    assert data[: bob_pool.used] == bytes(bob_pool.used)


def _qitcore(*args: str) -> list[str]:
    return [sys.executable, "-m", "qitcore", *args]


def test_alice_and_bob_as_two_programs_on_key_pools(tmp_path: Path, link: qkd.SimulatedLink) -> None:
    link.alice.save(tmp_path / "alice.npz")
    link.bob.save(tmp_path / "bob.npz")
    (tmp_path / "shared.key").write_bytes(os.urandom(1 << 15))
    for end in ("alice", "bob"):
        made = subprocess.run(
            _qitcore("qkd", "pool-create", str(tmp_path / f"{end}.pool"), "--key-file", str(tmp_path / "shared.key")),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert made.returncode == 0 and "262,144 bits" in made.stdout, made.stderr
    alice = subprocess.Popen(
        _qitcore("qkd", "alice", "--listen", "127.0.0.1:0", "--records", str(tmp_path / "alice.npz"),
                 "--auth-pool", str(tmp_path / "alice.pool"), "--key-out", str(tmp_path / "alice.key")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert alice.stderr is not None
        line = alice.stderr.readline()
        port = int(line.strip().rsplit(":", 1)[1])
        # A second user of Alice's pool is refused while her session holds it.
        busy = subprocess.run(
            _qitcore("qkd", "bob", "--connect", f"127.0.0.1:{port}", "--records", str(tmp_path / "bob.npz"),
                     "--auth-pool", str(tmp_path / "alice.pool")),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert busy.returncode == 2 and "in use by another process" in busy.stderr
        bob = subprocess.run(
            _qitcore("qkd", "bob", "--connect", f"127.0.0.1:{port}", "--records", str(tmp_path / "bob.npz"),
                     "--auth-pool", str(tmp_path / "bob.pool"), "--key-out", str(tmp_path / "bob.key")),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        out, err = alice.communicate(timeout=60)
    finally:
        alice.kill()
    assert bob.returncode in (0, 1) and alice.returncode == bob.returncode, bob.stderr + err
    assert "wegman-carter: pool" in bob.stdout and "wegman-carter: pool" in out
    if bob.returncode == 0:
        assert (tmp_path / "alice.key").read_bytes() == (tmp_path / "bob.key").read_bytes()
    else:  # no key (the pool's share took it all): said at both ends, and no key file written
        assert "qitcore: no key: " in bob.stderr and "qitcore: no key: " in err
        assert not (tmp_path / "alice.key").exists() and not (tmp_path / "bob.key").exists()
    _same_files(tmp_path)


@pytest.mark.parametrize("sealer_kind", ["hmac", "wegman-carter"])
def test_bad_arguments_are_refused_before_a_pad_is_spent(tmp_path: Path, sealer_kind: str) -> None:
    if sealer_kind == "hmac":
        bob: Any = qkd.Sealer(KEY, is_alice=False)
    else:
        bob = auth.WegmanCarterSealer(_pools(tmp_path)[1], is_alice=False)
    for kind, payload, error in ((300, b"", InvalidArgumentError), (-1, b"", InvalidArgumentError),
                                 (True, b"", InvalidArgumentError), (1, "text", InvalidTypeError),
                                 (1, None, InvalidTypeError)):  # fmt: skip
        with pytest.raises(error):
            bob.seal(kind, payload)
    for frame in (None, "x" * 64, 5):
        with pytest.raises(InvalidTypeError):
            bob.open(frame)
        assert bob.authentic(frame) is False
    # Nothing was spent: the next message is sealed as the first would have been.
    frame = bob.seal(1, b"HELLO")
    assert struct.unpack_from("<Q", frame, 3)[0] == 0  # sequence number
    if sealer_kind == "wegman-carter":
        assert struct.unpack_from("<Q", frame, auth.HEADER.size - 8)[0] == 8  # the first pad, after the hash key
