"""QKD distillation end to end: keys agree, every figure of the report matches an independent
computation, and every fault ends the session with a clear error and no key."""

from __future__ import annotations

import hmac
import json
from pathlib import Path

import numpy as np
import pytest
from qitcore import _core, qkd
from qitcore.cli import main
from qitcore.errors import (
    AuthenticationError,
    ChannelClosed,
    InvalidArgumentError,
    InvalidLengthError,
    QkdAbort,
    QkdError,
    UnsupportedOperationError,
    VerificationFailure,
)
from qitcore.qkd.channel import InProcessChannel

from .qkd_reference import h2, lim_length, poly_tag
from .reference import toeplitz_naive


@pytest.fixture(scope="module")
def link() -> qkd.SimulatedLink:
    return qkd.LinkModel(distance_km=20).simulate(30_000_000, seed=11)


@pytest.fixture(scope="module")
def small() -> qkd.SimulatedLink:
    return qkd.LinkModel(distance_km=10).simulate(1_000_000, seed=5)


def _sifted(link: qkd.SimulatedLink) -> tuple[np.ndarray, np.ndarray]:
    """Alice's and Bob's key-basis bits, sifted by hand."""
    a, b = link.alice, link.bob
    keep = (a.basis == 0) & (b.basis == 0)
    return a.bit[keep], b.bit[keep]


def test_both_ends_get_the_same_key_and_the_report_adds_up(link: qkd.SimulatedLink) -> None:
    result = qkd.distill(link.alice, link.bob)
    r = result.report
    assert result.alice_key == result.bob_key
    assert r.key_bits > 10_000 and len(result.alice_key) * 8 == r.key_bits
    # Sifting against a by-hand sift; QBER against the simulator's truth.
    alice_key, bob_key = _sifted(link)
    assert r.sifted_key == len(alice_key) and r.detections == len(link.bob)
    errors = int((alice_key != bob_key).sum())
    assert r.reconciled_bits == r.sifted_key - r.sample_size
    assert abs(r.qber_key - errors / len(alice_key)) < 0.01 and r.qber_key <= r.qber_key_upper
    # Cascade corrected the errors outside the sample (the count may exceed them by a few when
    # a bit is flipped twice, never fall short) and leaked within the target efficiency.
    assert r.corrected_bits is not None and errors - r.sample_errors <= r.corrected_bits <= errors + 50
    assert r.efficiency is not None and 1.0 < r.efficiency <= 1.10
    assert r.efficiency == pytest.approx(r.leaked_ec / (r.reconciled_bits * h2(r.corrected_bits / r.reconciled_bits)))
    # The counts per intensity against the simulator's records, and the finite-key length
    # against the paper's formula computed independently.
    both = link.alice.basis == link.bob.basis
    key_rows, test_rows = both & (link.alice.basis == 0), both & (link.alice.basis == 1)
    intensity = link.alice.intensity
    assert intensity is not None
    nz = np.bincount(intensity[test_rows], minlength=3).tolist()
    mz = np.bincount(intensity[test_rows & (link.alice.bit != link.bob.bit)], minlength=3).tolist()
    nx = np.bincount(intensity[key_rows], minlength=3)
    assert r.test_counts == nz and r.test_errors == mz
    assert sum(r.key_counts) == r.reconciled_bits and all(0 <= c <= t for c, t in zip(r.key_counts, nx, strict=True))
    params = qkd.Params()
    leaked = r.leaked_ec + r.leaked_verification
    ref = lim_length(list(params.mu), list(params.p), r.key_counts, nz, mz, leaked, r.eps_sec, r.eps_cor)
    assert r.finite_key is not None
    for term in ("s0", "s1", "phase_error"):
        assert getattr(r.finite_key, term) == pytest.approx(ref[term], rel=1e-9, abs=1e-9)
    assert r.secure_length == ref["length"] == r.finite_key.length


def test_the_single_photon_bound_is_below_the_true_count(link: qkd.SimulatedLink) -> None:
    # The simulator knows each pulse's photon number: the decoy bound s1 must not exceed the
    # single-photon events among the key bits, and is not far below with these intensities.
    r = qkd.distill(link.alice, link.bob).report
    key_rows = (link.alice.basis == 0) & (link.bob.basis == 0)
    true_s1 = int((link.photons[key_rows] == 1).sum()) * r.reconciled_bits / r.sifted_key
    assert r.finite_key is not None and 0.7 * true_s1 < r.finite_key.s1 < true_s1


def test_the_secure_length_is_the_cores_result_read_by_attribute_or_by_key() -> None:
    params = qkd.Params()
    counts = ([356_179, 74_016, 61], [22_570, 4_707, 2], [212, 52, 0])
    r = qkd.FiniteKeyLength.compute(params.mu, params.p, counts, 35_900, 1e-10, 1e-15)
    assert isinstance(r, qkd.SecureLength) and r.length > 0
    # Reports once held these terms as a dictionary: reading them by key still works.
    assert r["length"] == r.length and r["s1"] == r.s1
    with pytest.raises(KeyError):
        r["key"]
    assert repr(r).startswith(f"SecureLength(length={r.length}, penalty=")
    with pytest.raises(UnsupportedOperationError):
        qkd.SecureLength()


def test_the_simulators_columns_arrive_as_bytes_for_numpy(small: qkd.SimulatedLink) -> None:
    m = qkd.LinkModel(distance_km=10)
    physics = (m.distance_km, m.attenuation_db_per_km, m.detector_efficiency, m.dark_count, m.misalignment)
    d = _core.simulate_bb84(1_000_000, 5, *physics, list(m.mu), list(m.p), m.key_basis_probability)
    assert isinstance(d, qkd.Detections) and repr(d) == f"Detections(detected={len(small.bob)})"
    assert np.array_equal(np.frombuffer(d.index, "<u8"), small.bob.index)
    assert (d.bob_bit, d.photons) == (small.bob.bit.tobytes(), small.photons.tobytes())
    assert small.transmittance == m.transmittance()


def test_the_json_report_holds_every_term_of_the_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    assert main(["qkd", "simulate", "--pulses", "1e7", "--distance-km", "5", "--seed", "3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    doc = json.loads(out.read_text())
    bound = doc["finite_key"]
    assert sorted(bound) == ["length", "penalty", "phase_error", "s0", "s1", "s1_test", "v1_test"]
    assert 0 < doc["key_bits"] <= doc["secure_length"] == min(bound["length"], doc["reconciled_bits"])
    assert f"secure length         {doc['secure_length']:,} bits" in printed


def test_no_key_writes_no_key_file_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A session that releases no key leaves ``--key-out`` alone (an empty file would read as a key
    and replace what was there), exits 1 and says why in one line."""
    out = tmp_path / "k"
    out.write_bytes(b"precious")
    assert main(["qkd", "simulate", "--pulses", "1e5", "--seed", "3", "--key-out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "key                   0 bits" in captured.out and "seconds" in captured.out
    last = captured.err.splitlines()[-1]
    assert last.startswith("qitcore: no key: the finite-key bound leaves no secure key from ")
    assert last.endswith(f"; {out} not written")
    assert out.read_bytes() == b"precious"
    # A key the pool's share took whole names the pool instead.
    r = qkd.Report(secure_length=1500, key_bits=0, auth="wegman-carter", pool_bits_consumed=2048)
    assert "no longer than the 2,048 key-pool bits the session consumed" in r.no_key_reason()
    assert "seconds" not in r.text()  # Alice's end has no stage times to show
    assert qkd.Report(key_bits=8).no_key_reason() == ""


def test_cascade_on_its_own_matches_alices_key_and_counts_every_parity(rng: np.random.Generator) -> None:
    for variant, limit in (("modified", 1.10), ("original", 1.35)):
        alice = rng.integers(0, 2, 200_000, dtype=np.uint8)
        bob = alice ^ (rng.random(alice.size) < 0.03).astype(np.uint8)
        responder = _core.CascadeResponder(alice, 0.03, 99, variant)
        sent = []

        def ask(q: bytes, responder: _core.CascadeResponder = responder, sent: list[int] = sent) -> bytes:
            reply = responder.answer(q)
            sent.append(len(reply))
            return reply

        fixed, leaked, rounds, corrected = _core.cascade_correct(bob, 0.03, 99, ask, variant)
        errors = int((alice != bob).sum())
        assert np.array_equal(np.frombuffer(fixed, np.uint8), alice)
        assert leaked == responder.disclosed and rounds == len(sent) and corrected >= errors
        assert leaked / (alice.size * h2(errors / alice.size)) < limit


def test_privacy_amplification_is_the_toeplitz_product(rng: np.random.Generator) -> None:
    key = rng.integers(0, 2, 300, dtype=np.uint8)
    seed = qkd.PrivacyAmplification.seed(300, 100)
    out = qkd.PrivacyAmplification.apply(key, 100, seed)
    seed_bits = np.unpackbits(np.frombuffer(seed, np.uint8))[:399]
    assert np.array_equal(np.unpackbits(np.frombuffer(out, np.uint8))[:100], toeplitz_naive(seed_bits, key, 100))


def test_verification_tags_match_the_polynomial(rng: np.random.Generator) -> None:
    for n in (1, 64, 65, 1000):
        key = rng.integers(0, 2, n, dtype=np.uint8)
        points = [int(x) for x in rng.integers(0, 2**63, 3)]
        assert qkd.Verification.tags(key, points) == [poly_tag(key.tolist(), p) for p in points]


def test_keys_that_differ_after_cascade_are_discarded(
    small: qkd.SimulatedLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lying(key: np.ndarray, *args: object) -> _core.CascadeResponder:
        """Alice's responder answering for a key one bit off hers: Bob converges to that key."""
        other = key.copy()
        other[len(other) // 2] ^= 1
        return _core.CascadeResponder(other, *args)

    monkeypatch.setattr(qkd.Reconciliation, "responder", lying)
    key = b"v" * 32
    alice = qkd.AliceSession(small.alice, qkd.Params(), key)
    with InProcessChannel(key, alice) as channel, pytest.raises(VerificationFailure, match="differ"):
        qkd.BobSession(small.bob, qkd.Params(), channel).run()
    with pytest.raises(VerificationFailure):
        alice.result()


def _records_with(records: qkd.Records, **changes: np.ndarray) -> dict[str, np.ndarray | None]:
    columns = {"index": records.index, "basis": records.basis, "bit": records.bit, "intensity": records.intensity}
    columns.update(changes)
    return columns


def test_bad_records_are_refused_with_the_column_named(small: qkd.SimulatedLink) -> None:
    a = small.alice
    with pytest.raises(InvalidLengthError, match="differ in length"):
        qkd.Records(**_records_with(a, bit=a.bit[:-1]))
    bad = a.basis.copy()
    bad[7] = 2
    with pytest.raises(InvalidArgumentError, match="basis: unknown label 2 at record 7"):
        qkd.Records(**_records_with(a, basis=bad))
    bad = a.intensity.copy() if a.intensity is not None else None
    assert bad is not None
    bad[3] = 5
    with pytest.raises(InvalidArgumentError, match="intensity"):
        qkd.Records(**_records_with(a, intensity=bad))
    with pytest.raises(InvalidArgumentError, match="strictly increasing"):
        qkd.Records(**_records_with(a, index=a.index[::-1].copy()))
    with pytest.raises(InvalidArgumentError, match="intensity labels"):
        qkd.distill(small.bob, small.bob)


def test_a_pulse_alice_never_sent_aborts(small: qkd.SimulatedLink) -> None:
    b = small.bob
    index = b.index.copy()
    index[-1] += 10**9
    with pytest.raises(QkdAbort, match="no record"):
        qkd.distill(small.alice, qkd.Records(index, b.basis, b.bit))


def test_qber_above_the_threshold_aborts() -> None:
    noisy = qkd.LinkModel(distance_km=5, misalignment=0.15).simulate(1_000_000, seed=2)
    with pytest.raises(QkdAbort, match="above the threshold"):
        qkd.distill(noisy.alice, noisy.bob)


def test_parameters_that_differ_abort(small: qkd.SimulatedLink) -> None:
    key = b"k" * 32
    alice = qkd.AliceSession(small.alice, qkd.Params(eps_sec=1e-9), key)
    # The message names what differs, not the whole of each end's parameters.
    differ = r"^Alice: parameters differ: eps_sec: Bob 1e-10, Alice 1e-09$"
    with InProcessChannel(key, alice) as channel, pytest.raises(QkdAbort, match=differ):
        qkd.BobSession(small.bob, qkd.Params(), channel).run()
    with pytest.raises(QkdError):
        alice.result()


def test_bob_refuses_alices_records(small: qkd.SimulatedLink) -> None:
    """A key distilled from Alice's records at both ends would be known to whoever holds her file."""
    key = b"k" * 32
    alice = qkd.AliceSession(small.alice, qkd.Params(), key)
    with (
        InProcessChannel(key, alice) as channel,
        pytest.raises(InvalidArgumentError, match="records: these are Alice's"),
    ):
        qkd.BobSession(small.alice, qkd.Params(), channel)


def _faulty(kind: str, at: int) -> object:
    state = {"n": 0, "previous": b""}

    def tamper(direction: str, frame: bytes) -> bytes | None:
        state["n"] += 1
        previous, state["previous"] = state["previous"], frame
        if state["n"] != at:
            return frame
        if kind == "drop":
            return None
        if kind == "flip":
            return frame[:20] + bytes([frame[20] ^ 1]) + frame[21:]
        return previous  # replay the previous frame in place of this one

    return tamper


@pytest.mark.parametrize(
    "kind, error", [("drop", ChannelClosed), ("flip", AuthenticationError), ("replay", AuthenticationError)]
)
@pytest.mark.parametrize("at", [1, 2, 9, 14])
def test_channel_faults_end_the_session_without_a_key(
    small: qkd.SimulatedLink, kind: str, error: type, at: int
) -> None:
    key = b"s" * 32
    alice = qkd.AliceSession(small.alice, qkd.Params(), key)
    with InProcessChannel(key, alice, tamper=_faulty(kind, at)) as channel, pytest.raises(error):  # type: ignore[arg-type]
        qkd.BobSession(small.bob, qkd.Params(), channel).run()
    with pytest.raises(QkdError):
        alice.result()


def test_another_authentication_key_is_refused(small: qkd.SimulatedLink) -> None:
    alice = qkd.AliceSession(small.alice, qkd.Params(), b"a" * 32)
    with InProcessChannel(b"b" * 32, alice) as channel, pytest.raises(AuthenticationError):
        qkd.BobSession(small.bob, qkd.Params(), channel).run()
    with pytest.raises(QkdError):
        alice.result()


def test_a_short_authentication_key_is_refused(small: qkd.SimulatedLink) -> None:
    with pytest.raises(InvalidArgumentError, match="auth_key"):
        qkd.distill(small.alice, small.bob, auth_key=b"short")
    with pytest.raises(InvalidArgumentError, match="params|cascade"):
        qkd.distill(small.alice, small.bob, params=qkd.Params(cascade="fast"))
    with pytest.raises(InvalidArgumentError, match="mu1 > mu2 \\+ mu3"):
        qkd.Params(mu=(0.3, 0.2, 0.15))
    with pytest.raises(InvalidArgumentError, match="probabilities"):
        qkd.Params(p=(0.5, 0.5, 0.5))


def test_reports_and_reprs_hide_keys(link: qkd.SimulatedLink) -> None:
    result = qkd.distill(link.alice, link.bob, auth_key=b"x" * 32)
    assert "keys=<hidden>" in repr(result)
    sealer = qkd.Sealer(b"x" * 32, is_alice=True)
    assert "key=<hidden>" in repr(sealer) and "78787878" not in repr(sealer)
    assert result.alice_key and result.alice_key.hex()[:16] not in repr(result) + repr(result.report)


@pytest.mark.parametrize("key_bytes", [16, 32, 64, 65, 200])
def test_seals_carry_the_hmac_of_rfc_2104(key_bytes: int) -> None:
    # The reference is the standard library's one-shot HMAC-SHA256 of the direction byte, the
    # header and the payload; keys longer than SHA-256's block are hashed first.
    key = bytes(range(key_bytes))
    bob = qkd.Sealer(key, is_alice=False)
    for payload in (b"", b"parities", bytes(5000)):
        frame = bob.seal(5, payload)
        header = frame[: len(frame) - len(payload) - 32]
        assert frame[-32:] == hmac.digest(key, b"A" + header + payload, "sha256")
    bob, alice = qkd.Sealer(key, is_alice=False), qkd.Sealer(key, is_alice=True)
    assert [alice.open(bob.seal(7, b"x" * n)) for n in (0, 3)] == [(7, b""), (7, b"xxx")]
    reply = alice.seal(9, b"answers")
    assert reply[-32:] == hmac.digest(key, b"B" + reply[:-32], "sha256")
    # Bound to a session, the tags are keyed with HMAC(key, label ‖ nonces), derived in the core.
    from qitcore.qkd.channel import SESSION_LABEL

    context = bytes(range(100, 132))
    bob.bind(context)
    session_key = hmac.digest(key, SESSION_LABEL + context, "sha256")
    frame = bob.seal(3, b"sifting")
    assert frame[-32:] == hmac.digest(session_key, b"A" + frame[:-32], "sha256")
    # No Python object of the sealer keeps the pre-shared key (bytes cannot be wiped).
    assert not any(isinstance(v, (bytes, bytearray)) and key in v for v in vars(bob).values())


@pytest.mark.parametrize("at", [0, 255, 256, 300, 999])
def test_keys_with_a_byte_other_than_0_or_1_are_refused_where_it_is(at: int) -> None:
    key = np.zeros(1000, np.uint8)
    key[at] = 2
    with pytest.raises(InvalidArgumentError, match=f"found 2 at {at}$"):
        _core.CascadeResponder(key, 0.02, 1)
    key[at] = 1
    assert _core.CascadeResponder(key, 0.02, 1).n == 1000


def test_every_qkd_submodule_is_an_attribute_after_import_qitcore() -> None:
    # The documentation names them as attributes (qitcore.qkd.ldpc.plan, help(qitcore.qkd.auth)):
    # each is served on first use, in a fresh interpreter, and the list served is every one there is.
    import pkgutil
    import subprocess
    import sys

    import qitcore.qkd

    public = {m.name for m in pkgutil.iter_modules(qitcore.qkd.__path__) if not m.name.startswith("_")}
    assert public == qitcore.qkd._SUBMODULES
    code = (
        "import sys, types, qitcore\n"
        f"for name in {sorted(public)!r}:\n"
        "    module = getattr(qitcore.qkd, name)\n"
        "    assert isinstance(module, types.ModuleType) and sys.modules['qitcore.qkd.' + name] is module, name\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout == "ok\n", out.stderr
