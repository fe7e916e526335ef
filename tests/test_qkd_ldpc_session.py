"""LDPC and blind reconciliation inside a BB84 session: both ends agree on the key, on what was
disclosed and on the frames discarded, within three round trips; the bits left out leave the
finite-key counts; Alice refuses the other method's messages, blind rounds in a one-way session,
and a malformed list of failed frames."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
from qitcore import qkd
from qitcore.errors import AuthenticationError, InvalidArgumentError, QkdAbort, QkdError
from qitcore.qkd import ldpc
from qitcore.qkd.channel import InProcessChannel
from qitcore.qkd.session import CASCADE_START, ERROR, LDPC, LDPC_REVEAL, REPLY, VERIFY, State
from qitcore.qkd.stages import FiniteKeyLength, LdpcReconciliation, Verification

from .handshake import bob_sealer
from .recording_channel import Message, RecordingChannel

KEY = b"l" * 32


@pytest.fixture(scope="module")
def link() -> qkd.SimulatedLink:
    model = qkd.LinkModel(distance_km=20, misalignment=0.02)
    return model.simulate(model.pulses_for(300_000), seed=11)


@pytest.mark.parametrize("method", ["ldpc", "blind"])
def test_a_session_reconciles_with_ldpc_and_both_ends_agree(link: qkd.SimulatedLink, method: str) -> None:
    params = qkd.Params(reconciliation=method)
    alice = qkd.AliceSession(link.alice, params, KEY)
    with InProcessChannel(KEY, alice) as channel:
        bob_key, bob = qkd.BobSession(link.bob, params, channel).run()
    alice_key, mine = alice.result()
    assert alice_key == bob_key
    assert bob.reconciliation == mine.reconciliation == method
    assert 1 <= bob.round_trips == mine.round_trips <= (1 if method == "ldpc" else 3)
    assert bob.cascade_rounds == 0
    # The same disclosure and the same discarded bits at both ends, and every sifted key bit is
    # either sampled, discarded or reconciled.
    for name in ("leaked_ec", "discarded_frames", "discarded_bits", "reconciled_bits", "key_counts", "secure_length"):
        assert getattr(bob, name) == getattr(mine, name), name
    assert bob.sample_size + bob.discarded_bits + bob.reconciled_bits == bob.sifted_key
    assert bob.leaked_ec > 0 and bob.reconciled_bits > 0
    _holds_the_rule_for_failed_frames(bob)


def _holds_the_rule_for_failed_frames(r: qkd.Report) -> None:
    """The secure length is the bound over the key with its failed frames (which fail because of
    their errors, so they stay in the counts), less their bits, with two bits a frame leaked (the
    failure and check patterns); only the remainder past the last frame leaves the counts."""
    n_key = r.sifted_key - r.sample_size
    remainder = n_key - sum(r.key_counts)
    failed_bits = r.discarded_bits - remainder
    assert 0 <= remainder < n_key // max(1, r.frames) and failed_bits >= 0
    assert (failed_bits > 0) == (r.discarded_frames > 0)
    bound = FiniteKeyLength.compute(
        qkd.Params().mu,
        qkd.Params().p,
        (r.key_counts, r.test_counts, r.test_errors),
        r.leaked_ec + r.leaked_verification + 2 * r.frames,
        r.eps_sec,
        r.eps_cor,
    )
    assert r.secure_length == max(0, min(bound.length - failed_bits, r.reconciled_bits))


def test_the_kept_bits_are_those_ldpc_keeps() -> None:
    rng = np.random.default_rng(3)
    for n_key in (50_000, 123_457):
        key = rng.integers(0, 2, n_key, dtype=np.uint8)
        plan = ldpc.plan(n_key, 0.03, 99)
        for failed in ([], [0], [plan.frames - 1], sorted(rng.choice(plan.frames, plan.frames // 2, replace=False))):
            failed = [int(f) for f in failed]
            assert np.array_equal(key[LdpcReconciliation.kept(plan, failed)], ldpc.keep(plan, key, failed))


def test_an_unknown_method_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="reconciliation"):
        qkd.Params(reconciliation="turbo")


@pytest.fixture(scope="module")
def recorded(link: qkd.SimulatedLink) -> dict[str, list[Message]]:
    """Bob's messages in a legal run of each method."""
    runs = {}
    for method in ("cascade", "ldpc", "blind"):
        params = qkd.Params(reconciliation=method)
        channel = RecordingChannel(KEY, qkd.AliceSession(link.alice, params, KEY))
        with channel:
            qkd.BobSession(link.bob, params, channel).run()
        runs[method] = channel.sent
    return runs


def _alice_after(link: qkd.SimulatedLink, method: str, messages: list[Message], last: int) -> tuple[Any, Any]:
    """A fresh Alice of ``method`` fed Bob's messages up to (not including) the first of kind
    ``last``, and Bob's sealer to talk to her."""
    alice = qkd.AliceSession(link.alice, qkd.Params(reconciliation=method), KEY)
    sealer = bob_sealer(alice, KEY)
    for kind, payload in messages[: [k for k, _ in messages].index(last)]:
        assert sealer.open(alice.handle_frame(sealer.seal(kind, payload)))[0] == REPLY | kind
    return alice, sealer


@pytest.mark.parametrize(
    "method, kind, payload, message",
    [
        ("ldpc", CASCADE_START, bytes(8), "CASCADE_START message in a ldpc session"),
        ("cascade", LDPC, bytes(8), "LDPC message in a cascade session"),
        ("blind", CASCADE_START, bytes(8), "CASCADE_START message in a blind session"),
    ],
)
def test_the_other_methods_messages_are_refused(
    link: qkd.SimulatedLink, recorded: dict[str, list[Message]], method: str, kind: int, payload: bytes, message: str
) -> None:
    start = LDPC if method != "cascade" else CASCADE_START
    alice, sealer = _alice_after(link, method, recorded[method], start)
    reply_kind, reply = sealer.open(alice.handle_frame(sealer.seal(kind, payload)))
    assert reply_kind == ERROR and json.loads(reply) == {"error": "AuthenticationError", "message": message}
    assert alice.state is State.FAILED


def test_a_blind_round_is_refused_in_a_one_way_session(
    link: qkd.SimulatedLink, recorded: dict[str, list[Message]]
) -> None:
    alice, sealer = _alice_after(link, "ldpc", recorded["ldpc"], VERIFY)
    reply_kind, reply = sealer.open(alice.handle_frame(sealer.seal(LDPC_REVEAL, bytes(8))))
    assert json.loads(reply)["message"] == "LDPC_REVEAL message in a ldpc session"
    assert reply_kind == ERROR and alice.state is State.FAILED


def _failed_list(*frames: int, count: int | None = None) -> bytes:
    return np.array([len(frames) if count is None else count, *frames], "<u4").tobytes()


def _verify_parts(recorded: dict[str, list[Message]]) -> tuple[bytes, int]:
    """The head (the tag points) of Bob's VERIFY message after LDPC, and the plan's frames."""
    verify = next(payload for kind, payload in recorded["ldpc"] if kind == VERIFY)
    head, (count,) = verify[: 8 * Verification.TAGS], struct.unpack_from("<I", verify, 8 * Verification.TAGS)
    checks = len(verify) - len(head) - 4 - 4 * count - 8
    return head, count + checks // 4


@pytest.mark.parametrize(
    "make",
    [
        lambda n: b"",  # no list at all
        lambda n: _failed_list(3, 3) + bytes(8 + 4 * (n - 2)),  # a frame twice
        lambda n: _failed_list(5, 2) + bytes(8 + 4 * (n - 2)),  # not increasing
        lambda n: _failed_list(10_000) + bytes(8 + 4 * (n - 1)),  # no such frame
        lambda n: _failed_list(1, count=2),  # shorter than its count
        lambda n: _failed_list() + bytes(8 + 4 * (n - 1)),  # a frame's check missing
        lambda n: _failed_list() + bytes(8 + 4 * n + 1),  # a byte too many
    ],
)
def test_a_malformed_verify_message_is_refused(
    link: qkd.SimulatedLink, recorded: dict[str, list[Message]], make: Any
) -> None:
    alice, sealer = _alice_after(link, "ldpc", recorded["ldpc"], VERIFY)
    head, frames = _verify_parts(recorded)
    reply_kind, reply = sealer.open(alice.handle_frame(sealer.seal(VERIFY, head + make(frames))))
    assert reply_kind == ERROR and json.loads(reply)["message"] == "malformed VERIFY message"
    with pytest.raises(AuthenticationError):
        alice.result()


@pytest.mark.parametrize("method", ["ldpc", "blind"])
def test_a_frame_decoded_to_another_word_is_found_and_dropped_not_the_block(
    link: qkd.SimulatedLink, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """A frame that meets its syndrome but is not Alice's word (rare, and not something a test
    can provoke on demand): here Bob's decoder is made to return one flipped bit in the second
    frame. Its check differs, both ends drop it, and the rest of the key is kept and equal."""
    real = ldpc.LdpcDecoder.key

    def miscorrected(self: ldpc.LdpcDecoder) -> Any:
        key = real.fget(self).copy()  # type: ignore[attr-defined]
        key[self.plan.key_per_frame + 7] ^= 1  # the second kept frame
        return key

    monkeypatch.setattr(ldpc.LdpcDecoder, "key", property(miscorrected))
    result = qkd.distill(link.alice, link.bob, params=qkd.Params(reconciliation=method))
    r = result.report
    assert result.alice_key == result.bob_key
    assert r.miscorrected_frames == 1 and r.discarded_frames >= 1 and r.reconciled_bits > 0
    _holds_the_rule_for_failed_frames(r)


@pytest.mark.parametrize("method", ["ldpc", "blind"])
def test_a_block_too_short_for_ldpc_stops_before_disclosing_anything(method: str) -> None:
    """A block shorter than most of a frame would disclose more in syndromes than it holds (review
    N7): the session stops with a clear abort at both ends, before any syndrome is sent."""
    model = qkd.LinkModel(distance_km=20, misalignment=0.02)
    short = model.simulate(model.pulses_for(2_000), seed=5)
    params = qkd.Params(reconciliation=method)
    alice = qkd.AliceSession(short.alice, params, KEY)
    with RecordingChannel(KEY, alice) as channel:
        with pytest.raises(QkdAbort, match="too few for LDPC reconciliation: its syndromes would disclose"):
            qkd.BobSession(short.bob, params, channel).run()
        kinds = [kind for kind, _ in channel.sent]
    assert LDPC not in kinds and LDPC_REVEAL not in kinds
    with pytest.raises(QkdError):
        alice.result()
    # The rule is the plan's own disclosure against the block, so a block of a few frames passes it.
    plan = ldpc.plan(30_000, 0.05, 1)
    assert plan.base_disclosed < 30_000
