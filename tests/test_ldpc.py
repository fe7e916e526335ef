"""LDPC reconciliation through the Python API: plans, both ends over a simulated BSC, exact
disclosure, refused inputs and messages."""

from __future__ import annotations

import dataclasses
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from qitcore import _core
from qitcore.errors import (
    AuthenticationError,
    ChannelError,
    InvalidArgumentError,
    InvalidTypeError,
    ProtocolError,
    QitError,
)
from qitcore.qkd import ldpc

from .sigint import interrupted


def bsc(rng: np.random.Generator, n: int, q: float) -> tuple[np.ndarray, np.ndarray]:
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    flips = (rng.random(n) < q).astype(np.uint8)
    return alice, alice ^ flips


def h(q: float) -> float:
    return float(-q * np.log2(q) - (1 - q) * np.log2(1 - q))


def test_plan_is_deterministic_and_public() -> None:
    a = ldpc.plan(100_000, 0.03, 7)
    assert a == ldpc.plan(100_000, 0.03, 7)
    assert a.frames * a.key_per_frame >= a.used_bits > 100_000 - a.key_per_frame
    assert a.syndrome_bytes == a.frames * a.syndrome_bits // 8
    # The adapted rate's leak per frame sits near the Shannon limit times the design efficiency.
    f = (a.syndrome_bits - a.punctured) / (a.key_per_frame * h(0.03))
    assert 1.0 < f < 1.3


@pytest.mark.parametrize("q", [0.01, 0.03, 0.05, 0.08])
def test_reconcile_recovers_alices_key_on_every_kept_frame(q: float) -> None:
    rng = np.random.default_rng(int(q * 1000))
    p = ldpc.plan(1, q, 3)
    alice, bob = bsc(rng, 12 * p.key_per_frame, q)
    out = ldpc.reconcile(alice, bob, q, seed=3)
    assert np.array_equal(out.alice, out.bob)
    assert out.round_trips <= 3
    # Frames hold key_per_frame bits, the last last_frame_key (the block's length picks the lift).
    plan = out.plan
    spans = [(f * plan.key_per_frame, plan.key_per_frame) for f in range(plan.frames - 1)]
    spans.append(((plan.frames - 1) * plan.key_per_frame, plan.last_frame_key))
    kept_spans = [spans[f] for f in range(plan.frames) if f not in out.failed_frames]
    assert out.alice.size == sum(n for _, n in kept_spans)
    # Independent count of the disclosure: the base syndrome bits less punctured, plus at most the
    # punctured values of each frame.
    base = out.plan.base_disclosed
    assert base <= out.disclosed <= base + out.plan.frames * out.plan.punctured
    # Kept frames hold Alice's bits where Bob's differed: errors were corrected.
    bob_kept = np.concatenate([bob[at : at + n] for at, n in kept_spans]) if kept_spans else bob[:0]
    assert np.array_equal(out.alice, np.concatenate([alice[at : at + n] for at, n in kept_spans]))
    assert (bob_kept != out.alice).any()
    # And the decoder decodes: the soak measures a frame error rate of at most 3 % after the blind
    # rounds (at 1 %); more than 2 failed frames of 12 here (p < 0.01 at 3 %) is a broken decoder.
    assert len(out.failed_frames) <= 2, out.failed_frames


@pytest.mark.parametrize("q", [0.01, 0.02, 0.05])
def test_one_way_reconciliation_decodes_almost_every_frame_without_a_round(q: float) -> None:
    rng = np.random.default_rng(int(q * 1000) + 1)
    alice, bob = bsc(rng, 40 * ldpc.plan(1, q, 3, one_way=True).key_per_frame, q)
    out = ldpc.reconcile(alice, bob, q, seed=3, one_way=True)
    assert out.round_trips == 1 and out.plan.efficiency == ldpc.ONE_WAY_EFFICIENCY
    assert np.array_equal(out.alice, out.bob) and len(out.failed_frames) <= 2, out.failed_frames
    # No symbol is punctured for blind rounds that never come (punctured symbols make the first
    # attempt fail more often): only what the rate itself needs, a small part of a blind plan's.
    blind = ldpc.plan(out.plan.n_key, q, 3)
    assert out.plan.step == 0 and blind.step >= _core.LDPC_BLIND_STEP > 0
    # As shares of the frame: the two plans may cut the block into frames of different lengths.
    share = [p.punctured / (p.key_per_frame + p.punctured + p.shortened) for p in (out.plan, blind)]
    assert share[0] * 4 < share[1], (out.plan, blind)


def test_both_ends_count_the_same_disclosure_through_blind_rounds() -> None:
    rng = np.random.default_rng(5)
    p = ldpc.plan(6 * 9000, 0.03, 1)
    # The true QBER above the estimate makes frames fail and blind rounds reveal values.
    alice, bob = bsc(rng, p.n_key, 0.036)
    enc, dec = ldpc.LdpcEncoder(p, alice), ldpc.LdpcDecoder(p, bob)
    assert enc.disclosed == dec.disclosed == p.base_disclosed
    request = dec.decode(enc.syndromes())
    revealed = 0
    while request is not None:
        revealed += sum(struct.unpack_from("<I", request, at + 4)[0] for at in range(0, len(request), 8))
        request = dec.apply(enc.reveal(request))
    assert enc.disclosed == dec.disclosed == p.base_disclosed + revealed
    assert revealed > 0
    assert dec.rounds <= 3
    assert np.array_equal(dec.key, ldpc.keep(p, alice, dec.failed_frames))


def test_a_block_is_cut_into_frames_it_fills() -> None:
    # The frames' length is chosen for the block (rust adapt::lift; the remainder rule is tested
    # there on fixed lifts): whatever the length, the frames hold the bits used, a remainder left
    # out is under half a frame, and blocks of 10^6 bits are used almost whole.
    for n_key in (1, 30_000, 77_777, 250_001, 1_000_000, 2_345_678):
        p = ldpc.plan(n_key, 0.02, 1)
        n = p.key_per_frame + p.punctured + p.shortened
        assert p.code == f"qc160x{p.syndrome_bits // (n // 160)}z{n // 160}" and n % (160 * 64) == 0
        assert p.used_bits == (p.frames - 1) * p.key_per_frame + p.last_frame_key <= n_key
        assert n_key - p.used_bits < p.key_per_frame / 2 and p.last_frame_key <= p.key_per_frame
        assert n_key < 10**6 or p.used_bits >= 0.98 * n_key, p
    q = ldpc.plan(250_001, 0.02, 1)
    rng = np.random.default_rng(2)
    alice, bob = bsc(rng, q.n_key, 0.02)
    out = ldpc.reconcile(alice, bob, 0.02, 1)
    assert np.array_equal(out.alice, out.bob)


def test_bad_arguments_are_refused() -> None:
    p = ldpc.plan(20_000, 0.03, 1)
    key = np.zeros(p.n_key, np.uint8)
    for qber in (0.0, 0.5, -1.0, float("nan")):
        with pytest.raises(InvalidArgumentError):
            ldpc.plan(1000, qber, 1)
    with pytest.raises(InvalidArgumentError):
        ldpc.plan(0, 0.03, 1)
    with pytest.raises(InvalidArgumentError):
        ldpc.plan(1000, 0.03, -1)
    for step in (-0.1, 1.5, float("nan")):  # the core's own entry points, which the plan passes through
        with pytest.raises(InvalidArgumentError, match="^step: "):
            _core.ldpc_plan(1000, 0.03, 1, 1.2, step)
        with pytest.raises(InvalidArgumentError, match="^step: "):
            _core.LdpcEncoder(p.n_key, 0.03, 1, key, step=step)
    # A step that would puncture more symbols than the syndrome has bits.
    with pytest.raises(InvalidArgumentError, match="syndrome bits"):
        _core.ldpc_plan(1000, 0.03, 1, 2.0, 1.0)
    for lift in (0, 255, 300, 1088, -64):
        with pytest.raises(InvalidArgumentError, match="^lift: "):
            _core.ldpc_plan(1000, 0.03, 1, None, None, lift)
        with pytest.raises(InvalidArgumentError, match="^lift: "):
            _core.LdpcDecoder(p.n_key, 0.03, 1, key, 0.03, lift=lift)
    for efficiency in (0.99, 2.5, float("nan")):
        with pytest.raises(InvalidArgumentError, match="^efficiency: "):
            _core.ldpc_plan(1000, 0.03, 1, efficiency, 0.04)
    with pytest.raises(InvalidArgumentError):
        ldpc.LdpcEncoder(p, key[1:])
    with pytest.raises(InvalidArgumentError):
        ldpc.LdpcEncoder(p, key.astype(np.int64))
    bad = key.copy()
    bad[5] = 2
    with pytest.raises(InvalidArgumentError, match="0 or 1"):
        ldpc.LdpcDecoder(p, bad)
    with pytest.raises(InvalidArgumentError):
        ldpc.LdpcDecoder(p, key, qber=0.6)
    with pytest.raises(InvalidArgumentError):
        ldpc.keep(p, key, [p.frames])
    with pytest.raises(QitError):
        ldpc.keep(p, key, [-1])


def test_malformed_messages_raise_authentication_errors() -> None:
    p = ldpc.plan(20_000, 0.03, 1)
    rng = np.random.default_rng(3)
    alice, bob = bsc(rng, p.n_key, 0.03)
    enc, dec = ldpc.LdpcEncoder(p, alice), ldpc.LdpcDecoder(p, bob)
    syndromes = enc.syndromes()
    assert len(syndromes) == p.syndrome_bytes
    for request in (
        b"",
        b"\0" * 7,
        struct.pack("<II", p.frames, 1),
        struct.pack("<II", 0, 0),
        struct.pack("<II", 0, p.punctured + 1),
        struct.pack("<IIII", 1, 1, 0, 1),
        # Counts other than the plan's for the round: Alice discloses what the plan says, no more.
        struct.pack("<II", 0, p.reveal_steps[0] - 1),
        struct.pack("<II", 0, p.reveal_steps[0] + 1),
        struct.pack("<II", 0, p.punctured),
    ):
        with pytest.raises(AuthenticationError):
            enc.reveal(request)
    with pytest.raises(AuthenticationError):
        dec.decode(syndromes[:-1])
    with pytest.raises(AuthenticationError):
        dec.apply(b"\0")
    with pytest.raises(InvalidTypeError):
        dec.decode("text")  # type: ignore[arg-type]
    dec.decode(syndromes)
    with pytest.raises(AuthenticationError):
        dec.decode(syndromes)


def _run_blind(plan: ldpc.LdpcPlan, alice: np.ndarray, bob: np.ndarray) -> ldpc.LdpcDecoder:
    enc, dec = ldpc.LdpcEncoder(plan, alice), ldpc.LdpcDecoder(plan, bob)
    request = dec.decode(enc.syndromes())
    while request is not None:
        request = dec.apply(enc.reveal(request))
    assert np.array_equal(dec.key, ldpc.keep(plan, alice, dec.failed_frames))
    return dec


def test_a_sessions_blind_plan_covers_a_qber_well_above_its_sample() -> None:
    # A session plans from its sample: 100 errors in 10,000 bits (1 %, σ ≈ 0.1 %). The block's
    # true QBER, 1.25 %, is 2.5σ above it: the blind rounds are sized to reach there and every
    # frame decodes; the schedule's steps from the same QBER reach only f 1.20 there (1.08 at
    # 1.25 %, below the codes' threshold) and lose frames.
    from qitcore.qkd.stages import LdpcReconciliation

    rng = np.random.default_rng(12)
    plan = LdpcReconciliation.plan(500_000, 100, 10_000, 5, "blind")
    assert plan.qber == pytest.approx(0.01 + (0.01 * 0.99 / 10_000) ** 0.5)
    alice, bob = bsc(rng, plan.n_key, 0.0125)
    dec = _run_blind(plan, alice, bob)
    assert dec.failed_frames == [] and dec.rounds > 1
    scheduled = ldpc.plan(plan.n_key, plan.qber, plan.seed)
    assert scheduled.step < plan.step
    assert len(_run_blind(scheduled, alice, bob).failed_frames) > 0


def test_plans_whose_fields_are_not_their_values_plan_are_refused() -> None:
    # The core remakes a plan from (n_key, qber, seed, efficiency, step, lift); the other fields
    # (frames, syndrome sizes, ...) are what the session and keep rely on, so they must agree.
    p = ldpc.plan(100_000, 0.03, 1)
    key = np.zeros(p.n_key, np.uint8)
    assert ldpc.LdpcEncoder(p, key).plan is p
    other_lift = 256 if p.lift != 256 else 320
    for bad, names in (
        (dataclasses.replace(p, lift=other_lift), "frames"),
        (dataclasses.replace(p, frames=p.frames + 1), "frames"),
        (dataclasses.replace(p, syndrome_bytes=p.syndrome_bytes - 1), "syndrome_bytes"),
        (dataclasses.replace(p, efficiency=None, step=None, lift=None), "efficiency, step, lift"),
    ):
        for make in (ldpc.LdpcEncoder, ldpc.LdpcDecoder, lambda plan, key: ldpc.keep(plan, key, [])):
            with pytest.raises(InvalidArgumentError, match=f"^plan: .*{names}"):
                make(bad, key)
    # A plan made again by hand from the same values is the same plan, and accepted.
    assert ldpc.LdpcDecoder(dataclasses.replace(p), key).plan == p


def test_plans_are_kept_by_type_as_well_as_value() -> None:
    # Plans made lately are kept, but 1000.0 and True (equal to 1000 and 1) stay refused as the
    # core refuses them, whatever was made before; arrays (unhashable) are made, not kept.
    ldpc.plan(1000, 0.03, 1)
    for args in ((1000.0, 0.03, 1), (1000, 0.03, True)):
        with pytest.raises(InvalidTypeError):
            ldpc.plan(*args)  # type: ignore[arg-type]
    assert ldpc.plan(np.array(1000), 0.03, 1).frames == ldpc.plan(1000, 0.03, 1).frames  # type: ignore[arg-type]


def test_the_cores_peer_errors_are_channel_errors_not_device_ones() -> None:
    # What a QKD peer sends and the core refuses (sifting, Cascade, LDPC) is the classical
    # channel's failure (ChannelError, a QkdError), never the device protocol's.
    p = ldpc.plan(20_000, 0.03, 1)
    key = np.zeros(p.n_key, np.uint8)
    enc = _core.LdpcEncoder(p.n_key, p.qber, p.seed, key, p.efficiency, p.step, p.lift)
    dec = _core.LdpcDecoder(p.n_key, p.qber, p.seed, key, 0.03, efficiency=p.efficiency, step=p.step, lift=p.lift)
    bases = np.zeros(64, np.uint8)
    refused = (
        lambda: enc.reveal(b""),
        lambda: dec.decode(b""),
        lambda: dec.apply(b"\0"),
        lambda: _core.sift_conclude(bases, bases, b""),
        lambda: _core.CascadeResponder(np.zeros(4096, np.uint8), 0.03, 1).answer(b"\xff" * 9),
    )
    for call in refused:
        with pytest.raises(ChannelError) as info:
            call()
        assert not isinstance(info.value, ProtocolError)
        assert "device" not in str(info.value), str(info.value)


def _block(n_key: int, qber: float, seed: int) -> tuple[ldpc.LdpcPlan, np.ndarray, bytes]:
    """A plan at QBER 3 %, Bob's key over a BSC of crossover ``qber``, and Alice's syndromes."""
    p = ldpc.plan(n_key, 0.03, seed)
    alice, bob = bsc(np.random.default_rng(seed), p.n_key, qber)
    return p, bob, ldpc.LdpcEncoder(p, alice).syndromes()


def test_a_long_plan_answers_ctrl_c() -> None:
    # The largest puncturing the arguments allow (rate-0.5 frames of 163,840 bits, 57,344
    # independent punctured columns) takes seconds; SIGINT stops it at once.
    assert interrupted(lambda: _core.ldpc_plan(1, 0.45, 1, 1.0, 1.0, 1024), 0.3) < 2.0


def test_ctrl_c_stops_a_decode_and_leaves_the_decoder_as_it_was() -> None:
    # A large block decodes for a second or more; SIGINT stops it within a frame's decoding, and
    # the decoder then decodes from the start as one never stopped does.
    p, bob, syndromes = _block(20_000_000, 0.032, 3)
    dec = ldpc.LdpcDecoder(p, bob)
    stopped_after = interrupted(lambda: dec.decode(syndromes), 0.2)
    assert (dec.rounds, dec.disclosed, len(dec.failed_frames)) == (0, p.base_disclosed, p.frames)
    started = time.monotonic()
    request = dec.decode(syndromes)
    whole = time.monotonic() - started
    assert stopped_after < whole, (stopped_after, whole)
    fresh = ldpc.LdpcDecoder(p, bob)
    assert fresh.decode(syndromes) == request
    assert fresh.failed_frames == dec.failed_frames and np.array_equal(fresh.key, dec.key)


def test_a_plan_beyond_the_memory_allowed_is_an_out_of_memory_error() -> None:
    # Under an address-space limit the puncturing's basis cannot be allocated: OutOfMemoryError,
    # not an abort of the interpreter.
    code = (
        "import resource, sys\n"
        "from qitcore import _core\n"
        "from qitcore.errors import OutOfMemoryError\n"
        "_core.ldpc_plan(1, 0.03, 1)\n"  # the module and its code tables first
        "resource.setrlimit(resource.RLIMIT_AS, (260 << 20, 260 << 20))\n"
        "try:\n"
        "    _core.ldpc_plan(1, 0.45, 1, 1.0, 1.0, 1024)\n"
        "except OutOfMemoryError as e:\n"
        "    print('refused:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused: LDPC puncturing: could not allocate"), out.stdout


def test_waiting_for_a_decoder_lets_other_threads_run() -> None:
    # A getter waits for a decode in progress without the GIL: a thread counting meanwhile
    # keeps counting (with the GIL held it would stop until the decode ended).
    p, bob, syndromes = _block(8_000_000, 0.03, 2)
    dec = ldpc.LdpcDecoder(p, bob)
    counted = [0]
    done = threading.Event()

    def count() -> None:
        while not done.is_set():
            counted[0] += 1

    decoding = threading.Thread(target=dec.decode, args=(syndromes,))
    counter = threading.Thread(target=count)
    decoding.start()
    time.sleep(0.01)
    counter.start()
    before = counted[0]
    started = time.monotonic()
    assert dec.rounds == 1  # waits for the decode
    waited = time.monotonic() - started
    during = counted[0] - before
    done.set()
    decoding.join()
    counter.join()
    assert waited > 0.05, f"the decode ended {waited:.3f} s into the getter's wait: a larger block is needed"
    assert during > 1000, f"{during} counts in {waited:.2f} s of waiting"


def test_reprs_hide_the_keys() -> None:
    p = ldpc.plan(20_000, 0.03, 1)
    key = np.ones(p.n_key, np.uint8)
    assert "1, 1" not in repr(ldpc.LdpcEncoder(p, key))
    assert "disclosed" in repr(ldpc.LdpcDecoder(p, key))
