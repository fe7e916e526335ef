"""The two ends of a BB84 post-processing session over an authenticated channel.

Bob drives: he sends each message and Alice answers. The messages, in order:

1. ``HELLO``: Bob's parameters; Alice refuses parameters that differ from hers.
2. ``SIFT``: Bob's detected pulses and bases; Alice's bases and the intensity labels of the pulses
   where the bases agree, two bits each (:class:`Sifting`; the wire format is in the core's ``qkd::sift``).
3. ``ESTIMATE``: Bob's test-basis bits and a random sample of his key bits; Alice's error counts.
   Either end aborts when a QBER is above the threshold (:class:`Estimation`).
4. Reconciliation, by the method the parameters name (:class:`Reconciliation`):

   - Cascade: ``CASCADE_START`` with Bob's layout seed, then ``CASCADE`` parity queries, hundreds
     of round trips;
   - LDPC: ``LDPC`` with Bob's seed for the frame layout; Alice answers with the syndromes of every
     frame (one round trip) and Bob decodes; a frame he cannot decode is discarded by both ends;
   - blind LDPC: as LDPC, then up to two ``LDPC_REVEAL`` rounds in which Alice discloses some
     punctured symbols of the frames Bob could not yet decode (three round trips at most).

5. ``VERIFY``: two tag points and Bob's tags; Alice compares (:class:`Verification`). After LDPC,
   the points, the frames Bob could not decode and a 32-bit check of each other frame; Alice
   drops those and the frames whose check differs, answers with the latter and her tags of what
   remains, and Bob compares.
6. ``AMPLIFY``: Bob's count of disclosed bits; Alice checks it against hers, computes the secure
   length (:class:`FiniteKeyLength`) and sends it with a Toeplitz seed (:class:`PrivacyAmplification`).
7. ``DONE``: Bob confirms; only then does Alice release her key.

Alice's :class:`State` and :data:`TRANSITIONS` spell this order out: a message out of its turn
ends the session with :class:`~qitcore.errors.AuthenticationError`.

Any failure (a bad parameter, a QBER above threshold, a verification failure, a channel fault,
an exhausted key pool) ends the session on both ends with a :class:`~qitcore.errors.QkdError`; no
key is returned.

Authentication (``auth_key``): bytes select HMAC-SHA256 (computational security); a
:class:`~qitcore.qkd.keypool.KeyPool` selects Wegman–Carter (:mod:`qitcore.qkd.auth`,
information-theoretic). With Wegman–Carter each end, once the session has succeeded, returns to
its pool as many bytes as the session consumed, taken from the front of the distilled key before
the key is released: the key handed out is shorter by that much (``Report.pool_bits_returned``).
A distilled key shorter than the consumption is returned to the pool whole and no key is
released. ``Report.eps_auth`` (the sum of every tag's ε) adds to the composable ε
(``Report.eps_total``).
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
import os
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from .. import _core, _validate
from .._core import SecureLength
from ..errors import (
    AuthenticationError,
    ChannelClosed,
    ChannelError,
    InternalError,
    QitError,
    QkdAbort,
    QkdError,
    VerificationFailure,
)
from .channel import NONCE_BYTES, AuthKey, Channel, check_nonce, frame_limit, make_sealer
from .records import Records
from .stages import (
    Bits,
    Estimation,
    FiniteKeyLength,
    LdpcReconciliation,
    PrivacyAmplification,
    Reconciliation,
    Sifted,
    Sifting,
    Verification,
)

if TYPE_CHECKING:
    from .ldpc import LdpcEncoder

__all__ = ["AliceSession", "BobSession", "Params", "Report", "State"]

T = TypeVar("T")

HELLO, SIFT, ESTIMATE, CASCADE_START, CASCADE, VERIFY, AMPLIFY, DONE, LDPC, LDPC_REVEAL = range(1, 11)
ERROR = 0xEE
REPLY = 0x80
NAMES = {
    HELLO: "HELLO",
    SIFT: "SIFT",
    ESTIMATE: "ESTIMATE",
    CASCADE_START: "CASCADE_START",
    CASCADE: "CASCADE",
    VERIFY: "VERIFY",
    AMPLIFY: "AMPLIFY",
    DONE: "DONE",
    LDPC: "LDPC",
    LDPC_REVEAL: "LDPC_REVEAL",
}
RECONCILIATIONS = ("cascade", "ldpc", "blind")
"""``cascade``: interactive, hundreds of round trips, the lowest leak at long blocks; ``ldpc``:
one-way syndromes (one round trip), frames that fail are discarded; ``blind``: LDPC with up to two
rounds of disclosed punctured symbols for the frames that fail (at most three round trips)."""
MAX_REVEAL_ROUNDS = 2
PROTOCOL = "qitcore-bb84/6"
"""The session protocol, in HELLO's parameters. ``/6`` plans LDPC frames on the 320-column rate-0.9
code where the frame's lift fits it (``/5`` used the 160-column one at every lift). ``/5`` makes
blind LDPC plans at the sample's error rate plus one standard deviation, with blind steps that
reach three (``/4`` planned at two, with the schedule's steps), and Alice refuses a blind request
for other counts than the plan's. ``/4`` derives LDPC plans on frames of the length that leaves the
most key (40,960 to 163,840 bits) with a blind schedule per length (``/3`` planned every block on
40,960-bit frames). Versions that derive different plans from the same public values must not meet.
``/3`` seals every message under a key bound to both ends' fresh nonces, exchanged before the first
message (``/2`` numbered every session's messages from 0 under the pre-shared key itself, so a
recorded session could be replayed into a later one); ``/2`` packs the sifting reply's intensity
labels two bits each (``/1`` sent a byte each) and Cascade's range queries as varints (``/1``:
fixed fields of 14 bytes); an end speaking another version is refused by name, or fails the
handshake."""
# The errors an ERROR message may name; Bob raises the same class as Alice.
PEER_ERRORS: dict[str, type[QkdError]] = {
    cls.__name__: cls for cls in (QkdAbort, VerificationFailure, AuthenticationError, ChannelClosed, ChannelError)
}


@dataclass(frozen=True)
class Params:
    """What both ends must agree on (Bob sends his; Alice refuses any difference).

    Args:
        mu, p: Alice's intensities and their probabilities (``mu1 > mu2 + mu3``, ``mu2 > mu3 >= 0``).
        qber_threshold: abort when the estimated QBER of either basis is above this.
        sample_fraction, min_sample: the key-basis sample disclosed for the QBER estimate.
        eps_sec: secrecy parameter of the finite-key bound; also the failure probability of the
            reported QBER upper bounds.
        eps_cor: the largest correctness parameter accepted; the verification tags give
            ``((L + 1)/2^64)^2``, which must not exceed it.
        cascade: ``"modified"`` (default) or ``"original"``.
        reconciliation: ``"cascade"`` (default), ``"ldpc"`` or ``"blind"`` (see
            :data:`RECONCILIATIONS`); ``cascade`` applies to the first only.
    """

    mu: tuple[float, float, float] = (0.6, 0.2, 0.0002)
    p: tuple[float, float, float] = (0.5, 0.3, 0.2)
    qber_threshold: float = 0.11
    sample_fraction: float = 0.01
    min_sample: int = 1000
    eps_sec: float = 1e-10
    eps_cor: float = 1e-15
    cascade: str = _core.DEFAULT_CASCADE
    reconciliation: str = "cascade"

    def __post_init__(self) -> None:
        for name in ("qber_threshold", "sample_fraction", "eps_sec", "eps_cor"):
            value = _validate.real(name, getattr(self, name))
            top = 0.5 if name == "qber_threshold" else 1
            if not 0 < value < top:
                raise _validate.InvalidArgumentError(
                    f"{name}: expected a number strictly between 0 and {top}, got {value}"
                )
        _validate.integer("min_sample", self.min_sample, minimum=1)
        _validate.choice("cascade", self.cascade, _core.CASCADE_VARIANTS)  # early: used late in a run
        _validate.choice("reconciliation", self.reconciliation, RECONCILIATIONS)
        for name in ("mu", "p"):
            values = tuple(_validate.real(name, v) for v in getattr(self, name))
            if len(values) != 3:
                raise _validate.InvalidArgumentError(f"{name}: expected three values, got {len(values)}")
            object.__setattr__(self, name, values)
        _core.check_decoys(list(self.mu), list(self.p))

    def to_json(self) -> bytes:
        return json.dumps({"protocol": PROTOCOL, **asdict(self)}, sort_keys=True).encode()


@dataclass
class Report:
    """What a session did, with every figure the secure length depends on."""

    detections: int = 0
    sifted_key: int = 0
    sifted_test: int = 0
    sample_size: int = 0
    sample_errors: int = 0
    qber_key: float = 0.0
    qber_key_upper: float = 1.0
    qber_test: float = 0.0
    qber_test_upper: float = 1.0
    reconciled_bits: int = 0
    corrected_bits: int | None = None
    """Bits Bob changed (Bob's report only: Alice never learns it)."""
    leaked_ec: int = 0
    leaked_verification: int = Verification.DISCLOSED_BITS
    reconciliation: str = "cascade"
    round_trips: int = 0
    """Round trips of reconciliation, whatever the method (each costs a network round trip)."""
    cascade_rounds: int = 0
    """Cascade's round trips (0 for LDPC)."""
    frames: int = 0
    """LDPC frames the key was cut into (0 for Cascade)."""
    discarded_frames: int = 0
    """LDPC frames discarded by both ends: those Bob could not decode and the miscorrected ones."""
    miscorrected_frames: int = 0
    """LDPC frames Bob decoded to another word with the same syndrome, found by their checks."""
    discarded_bits: int = 0
    """Key bits left out of reconciliation: those of discarded frames (also subtracted from the
    secure length, since which frames fail depends on their errors) and the remainder after the
    last frame."""
    efficiency: float | None = None
    eps_sec: float = 0.0
    eps_cor: float = 0.0
    key_counts: list[int] = field(default_factory=list)
    test_counts: list[int] = field(default_factory=list)
    test_errors: list[int] = field(default_factory=list)
    finite_key: SecureLength | None = None
    """Every term of the finite-key bound, once the secure length is computed."""
    secure_length: int = 0
    key_bits: int = 0
    """Bits of key released (Wegman–Carter: after the pool's share was returned)."""
    auth: str = "hmac-sha256"
    """``"hmac-sha256"`` (computational security) or ``"wegman-carter"`` (information-theoretic)."""
    pool_bits_consumed: int = 0
    """Key-pool bits the session's tags used (Wegman–Carter)."""
    pool_bits_returned: int = 0
    """Bits of distilled key returned to the pool (Wegman–Carter)."""
    pool_bits_before: int = 0
    """Bits in the pool never used when the session began (Wegman–Carter)."""
    pool_bits_after: int = 0
    """Bits in the pool never used once the session ended and returned its share (Wegman–Carter)."""
    eps_auth: float = 0.0
    """Sum of the ε of every tag sealed or checked, a checked one charged for the longest message the
    session accepts (Wegman–Carter; 0 for HMAC, whose security is computational)."""
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def eps_total(self) -> float:
        """The composable ε of the key: ``eps_sec + eps_cor + eps_auth``."""
        return self.eps_sec + self.eps_cor + self.eps_auth

    def text(self) -> str:
        """The report as aligned lines for a terminal."""
        fk = self.finite_key
        f = "n/a" if self.efficiency is None else f"{self.efficiency:.4f}"
        s1, s0, phase = (0.0, 0.0, 0.5) if fk is None else (fk.s1, fk.s0, fk.phase_error)
        sample = f"sample of {self.sample_size:,}; upper {self.qber_key_upper:.4%}"
        corrected = "" if self.corrected_bits is None else f"{self.corrected_bits:,} corrected in "
        rounds = f"{corrected}{self.round_trips} round trips ({self.reconciliation})"
        if self.discarded_bits:
            rounds += f"; {self.discarded_bits:,} bits discarded ({self.discarded_frames} failed frames)"
        lines = [
            f"detections            {self.detections:,}",
            f"sifted (key / test)   {self.sifted_key:,} / {self.sifted_test:,}",
            f"QBER key basis        {self.qber_key:.4%} ({sample})",
            f"QBER test basis       {self.qber_test:.4%} (upper {self.qber_test_upper:.4%})",
            f"reconciled            {self.reconciled_bits:,} bits, {rounds}",
            f"leaked                {self.leaked_ec:,} parity bits + {self.leaked_verification} tag bits (f = {f})",
            f"single photons (key)  {s1:,.0f} (vacuum {s0:,.0f}); phase error <= {phase:.4%}",
            f"secure length         {self.secure_length:,} bits (eps_sec {self.eps_sec:g}, eps_cor {self.eps_cor:.3g})",
            f"authentication        {self.auth}"
            + (
                f": pool {self.pool_bits_before:,} -> {self.pool_bits_after:,} bits, "
                f"{self.pool_bits_consumed:,} consumed, {self.pool_bits_returned:,} returned "
                f"(eps_auth {self.eps_auth:.3g}, total eps {self.eps_total:.3g})"
                if self.auth == "wegman-carter"
                else " (computational)"
            ),
            f"key                   {self.key_bits:,} bits",
        ]
        if self.seconds:  # Bob's end times the stages; Alice's has nothing to show
            lines.append("seconds               " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in self.seconds.items()))
        return "\n".join(lines)

    def no_key_reason(self) -> str:
        """Why no key was released, in one sentence (empty when a key was)."""
        if self.key_bits:
            return ""
        if self.secure_length == 0:
            fk = self.finite_key
            phase = "" if fk is None else f", phase error bound {fk.phase_error:.2%} over {fk.s1:,.0f} single photons"
            return (
                f"the finite-key bound leaves no secure key from {self.sifted_key:,} sifted bits{phase} "
                "(a longer block, or a lower error rate, gives one)"
            )
        return (
            f"the distilled key ({self.secure_length:,} bits) was no longer than the {self.pool_bits_consumed:,} "
            "key-pool bits the session consumed, so it all went back to the pool (a longer block gives key)"
        )


def _protocol_of(hello: bytes) -> str:
    """The protocol a HELLO payload names (``"unknown"`` when it names none)."""
    try:
        value = json.loads(hello).get("protocol")
    except (ValueError, AttributeError):
        return "unknown"
    return value if isinstance(value, str) else "unknown"


def _differences(bob: bytes, alice: bytes) -> str:
    """The parameters two HELLOs disagree on, ``name: Bob x, Alice y`` each (both whole when Bob's
    is not a JSON object)."""
    try:
        theirs, ours = json.loads(bob), json.loads(alice)
        names = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    except (ValueError, AttributeError):
        return f"Bob {bob[:200].decode(errors='replace')}, Alice {alice.decode()}"
    return "; ".join(f"{k}: Bob {json.dumps(theirs.get(k))}, Alice {json.dumps(ours.get(k))}" for k in names)


def _u64s(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}Q", *values)


def _read_u64s(payload: bytes, count: int, what: str, *, more: bool = False) -> tuple[int, ...]:
    """``count`` little-endian u64 values: the whole payload, or its head when ``more`` follows."""
    if len(payload) < 8 * count or (not more and len(payload) != 8 * count):
        raise AuthenticationError(f"malformed {what} message")
    return struct.unpack_from(f"<{count}Q", payload)


_NO_BITS: Bits = np.frombuffer(b"", np.uint8)  # read-only, so sessions can share it


class _Shared:
    """What both ends compute the same way from the public messages."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.report = Report(eps_sec=params.eps_sec, reconciliation=params.reconciliation)
        # Empty until sifting and estimation fill them in, which both ends do before using them.
        self.sifted = Sifted(_NO_BITS, _NO_BITS, _NO_BITS, _NO_BITS)
        self.keep: np.ndarray[Any, np.dtype[np.bool_]] = np.zeros(0, bool)
        self.sample: np.ndarray[Any, np.dtype[np.uint32]] = np.zeros(0, np.uint32)
        # Sifted key positions that reconciliation left out (LDPC's failed frames and remainder),
        # those of the remainder alone, and the bits of the failure pattern made public.
        self.dropped: np.ndarray[Any, np.dtype[np.intp]] = np.zeros(0, np.intp)
        self.unreconciled: np.ndarray[Any, np.dtype[np.intp]] = np.zeros(0, np.intp)
        self.pattern_bits = 0
        self.test_errors: list[int] = [0, 0, 0]

    def estimate(
        self, sample: np.ndarray[Any, np.dtype[np.uint32]], sample_errors: int, test_errors: list[int]
    ) -> None:
        """Records the disclosed sample (removed from the key) and the error counts; aborts
        above the threshold."""
        r, p = self.report, self.params
        self.sample, sample_size = sample, len(sample)
        self.keep = np.ones(len(self.sifted.key), bool)
        self.keep[sample] = False
        n_test = len(self.sifted.test)
        r.sample_size, r.sample_errors = sample_size, sample_errors
        r.qber_key = sample_errors / sample_size if sample_size else 0.0
        r.qber_key_upper = Estimation.upper(sample_errors, sample_size, p.eps_sec)
        r.qber_test = sum(test_errors) / n_test if n_test else 0.0
        r.qber_test_upper = Estimation.upper(sum(test_errors), n_test, p.eps_sec)
        self.test_errors = test_errors
        if sample_size == 0 or n_test == 0:
            raise QkdAbort(f"too few sifted bits to estimate the QBER ({len(self.sifted.key)} key, {n_test} test)")
        for basis, qber in (("key", r.qber_key), ("test", r.qber_test)):
            if qber > p.qber_threshold:
                raise QkdAbort(f"QBER of the {basis} basis {qber:.2%} is above the threshold {p.qber_threshold:.2%}")

    def drop_frames(
        self, plan: Any, failed: list[int], wrong: list[int], checked: int
    ) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Drops LDPC's ``failed`` frames and the ``wrong`` ones (decoded, but their check
        differs), ``checked`` frames having been checked; returns which bits of the
        reconciliation's input (the key without the sample) remain."""
        kept = LdpcReconciliation.kept(plan, sorted(failed + wrong))
        positions = np.flatnonzero(self.keep)
        self.dropped = positions[~kept]
        self.unreconciled = positions[plan.used_bits :]
        # Public patterns, a bit a frame each: which frames failed, which checks differed.
        self.pattern_bits = 2 * plan.frames
        r = self.report
        r.frames, r.miscorrected_frames = plan.frames, len(wrong)
        r.discarded_frames, r.discarded_bits = len(failed) + len(wrong), len(self.dropped)
        r.leaked_verification = Verification.DISCLOSED_BITS + 8 * LdpcReconciliation.HASH.itemsize * checked
        return kept

    @property
    def failed_bits(self) -> int:
        """Key bits in LDPC's failed frames."""
        return len(self.dropped) - len(self.unreconciled)

    def secure_length(self, leaked_ec: int) -> int:
        """The secure length, rounded down to bytes.

        LDPC's failed (and miscorrected) frames are chosen by their errors, which an eavesdropper can correlate with
        phase errors; so they are not cut from the counts the bound is computed on (the test
        basis's phase-error estimate covers the key only as a whole). The bound is taken over the
        key with them, and their bits are then subtracted (H_min(K_kept|E) >= H_min(K|E) - |K_dropped|),
        with two bits a frame for the public failure and check patterns counted in the leak. The
        remainder past the last frame depends on its position only and simply leaves the counts.
        """
        r, p = self.report, self.params
        r.reconciled_bits = len(self.keep) - len(self.sample) - len(self.dropped)
        r.eps_cor = Verification.eps_cor(r.reconciled_bits)
        r.leaked_ec = leaked_ec
        removed = np.concatenate([self.sample.astype(np.intp), self.unreconciled])
        counts = (self.sifted.key_counts(removed), self.sifted.test_counts(), self.test_errors)
        r.key_counts, r.test_counts, r.test_errors = counts
        r.finite_key = FiniteKeyLength.compute(
            p.mu,
            p.p,
            counts,
            leaked_ec + r.leaked_verification + self.pattern_bits,
            p.eps_sec,
            r.eps_cor,
        )
        failed_bits = self.failed_bits
        r.secure_length = max(0, min(r.finite_key.length - failed_bits, r.reconciled_bits))
        r.key_bits = r.secure_length - r.secure_length % 8
        return r.key_bits


def _pool_before(sealer: Any, report: Report) -> None:
    report.auth = sealer.method
    if report.auth == "wegman-carter":
        report.pool_bits_before = report.pool_bits_after = 8 * sealer.pool.available


def _recycle(sealer: Any, final: bytes, report: Report) -> bytes:
    """The key to release once a session succeeded: with Wegman–Carter, the bytes the session
    took from the pool go back to it from the front of ``final`` first (all of ``final``, and no
    key released, when it is shorter)."""
    report.auth = sealer.method
    if report.auth != "wegman-carter":
        return final
    consumed = sealer.consumed()
    returned = final[:consumed]
    sealer.pool.replenish(returned)
    report.pool_bits_after = 8 * sealer.pool.available
    released = final[consumed:] if len(final) >= consumed else b""
    report.pool_bits_consumed, report.pool_bits_returned = 8 * consumed, 8 * len(returned)
    report.key_bits = 8 * len(released)
    return released


def _in_background(function: Callable[..., T], *args: Any) -> Future[T]:
    """Runs ``function(*args)`` on a thread; the future's ``result()`` waits for it and re-raises
    its exception."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


def _done(value: T) -> Future[T]:
    """A future that already holds ``value``."""
    future: Future[T] = Future()
    future.set_result(value)
    return future


class State(enum.Enum):
    """Where Alice's session stands: the message it waits for (its value names it), or its end."""

    HELLO = "HELLO"
    SIFT = "SIFT"
    ESTIMATE = "ESTIMATE"
    CASCADE_START = "CASCADE_START or LDPC"
    RECONCILING = "CASCADE or VERIFY"
    LDPC_ROUNDS = "LDPC_REVEAL or VERIFY"
    AMPLIFY = "AMPLIFY"
    DONE = "DONE"
    FINISHED = "finished"
    FAILED = "failed"


TRANSITIONS: dict[State, dict[int, State]] = {
    State.HELLO: {HELLO: State.SIFT},
    State.SIFT: {SIFT: State.ESTIMATE},
    State.ESTIMATE: {ESTIMATE: State.CASCADE_START},
    # Which of the two the parameters allow is checked by the handler.
    State.CASCADE_START: {CASCADE_START: State.RECONCILING, LDPC: State.LDPC_ROUNDS},
    # Cascade's queries come any number of times between CASCADE_START and VERIFY.
    State.RECONCILING: {CASCADE: State.RECONCILING, VERIFY: State.AMPLIFY},
    # Blind rounds: at most MAX_REVEAL_ROUNDS, counted by the encoder.
    State.LDPC_ROUNDS: {LDPC_REVEAL: State.LDPC_ROUNDS, VERIFY: State.AMPLIFY},
    State.AMPLIFY: {AMPLIFY: State.DONE},
    State.DONE: {DONE: State.FINISHED},
}
"""The messages Alice accepts in each state and the state each leads to; any other message ends
the session with :class:`~qitcore.errors.AuthenticationError`. FINISHED and FAILED accept none."""


def check_records(records: object, end: str) -> Records:
    """``records`` if they are ``end``'s (``"alice"`` or ``"bob"``): Alice's carry intensity
    labels, Bob's none. Bob never learns which intensity was sent, so records that say are
    Alice's, and a key distilled from them at both ends would be known to whoever holds her file.
    Callers that connect before making a session (the command line) check first with this.

    Raises:
        InvalidTypeError: not :class:`Records`.
        InvalidArgumentError: the other end's records.
    """
    if not isinstance(records, Records):
        raise _validate.InvalidTypeError(f"records: expected Records, got {type(records).__name__}")
    if end == "alice" and records.intensity is None:
        raise _validate.InvalidArgumentError("records: these are Bob's (no intensity labels); Alice needs hers")
    if end == "bob" and records.intensity is not None:
        raise _validate.InvalidArgumentError("records: these are Alice's (they carry intensity labels); Bob needs his")
    return records


class AliceSession:
    """Alice's end: answers Bob's messages (:meth:`handle_frame`) and, once Bob confirms, holds
    the key (:meth:`result`)."""

    def __init__(self, records: Records, params: Params, auth_key: AuthKey) -> None:
        self._records = check_records(records, "alice")
        self._shared = _Shared(params)
        self._sealer = make_sealer(auth_key, is_alice=True)
        self._sealer.limit_frames(self.frame_limit())
        _pool_before(self._sealer, self._shared.report)
        self._state = State.HELLO
        # The messages the state accepts (TRANSITIONS[state]; empty once over), kept with it:
        # hashing an enum member costs a Python call, three of them a Cascade round trip.
        self._next: dict[int, State] = TRANSITIONS[State.HELLO]
        self._handlers: dict[int, Callable[[bytes], bytes]] = {
            HELLO: self._hello,
            SIFT: self._sift,
            ESTIMATE: self._estimate,
            CASCADE_START: self._cascade_start,
            CASCADE: self._cascade,
            LDPC: self._ldpc,
            LDPC_REVEAL: self._ldpc_reveal,
            VERIFY: self._verify,
            AMPLIFY: self._amplify,
            DONE: self._done,
        }
        # Filled in as the session goes; the state table guarantees each is set before it is used.
        self._key: Bits = _NO_BITS
        self._responder: Future[_core.CascadeResponder] = Future()
        self._encoder: LdpcEncoder | None = None  # an LDPC session's, from its LDPC message
        self._final: Future[bytes] = Future()
        self._released = b""
        self._error: QkdError | None = None
        self._bound = False

    def __repr__(self) -> str:
        live = self._state in TRANSITIONS
        return f"AliceSession({'expecting ' if live else ''}{self._state.value})"

    @property
    def state(self) -> State:
        """Where the session stands."""
        return self._state

    @property
    def finished(self) -> bool:
        """Whether Bob confirmed the end of the session (Alice's key is then ready)."""
        return self._state is State.FINISHED

    @property
    def error(self) -> QkdError | None:
        """Why the session failed; ``None`` while it has not."""
        return self._error

    def challenge(self, bob_nonce: bytes) -> bytes:
        """Binds the session to Bob's nonce and a fresh one of Alice's, which is returned: the
        handshake of a channel that calls Alice directly (:func:`~qitcore.qkd.channel.serve_tcp`
        does it on the wire). Every message is then sealed under a key bound to both nonces, so
        no message recorded from another session is accepted.

        Raises:
            AuthenticationError: the session is already bound, or ``bob_nonce`` is malformed.
        """
        alice_nonce = os.urandom(NONCE_BYTES)
        self.bind(alice_nonce + check_nonce(bob_nonce))
        return alice_nonce

    def bind(self, context: bytes) -> None:
        """Binds the session to ``context``, both ends' nonces (Alice's first): see :meth:`challenge`.

        Raises:
            AuthenticationError: the session is already bound, or ``context`` is malformed.
        """
        if self._bound:
            raise AuthenticationError("the session is already bound to a handshake")
        if not isinstance(context, bytes) or len(context) != 2 * NONCE_BYTES:
            raise AuthenticationError("malformed session handshake")
        self._sealer.bind(context)
        self._bound = True

    def authentic(self, frame: bytes, context: bytes | None = None) -> bool:
        """Whether ``frame`` is the next message of this session, sealed under its key (or, with
        ``context``, the first message of the session that handshake would bind); changes
        nothing, so a stray peer's frame can be turned away without ending the session."""
        return bool(self._next) and self._sealer.authentic(frame, context)

    def frame_limit(self) -> int:
        """The largest frame Bob may send in this session (bytes): see :func:`~qitcore.qkd.channel.frame_limit`."""
        return frame_limit(len(self._records))

    def handle_frame(self, frame: bytes) -> bytes:
        """Alice's sealed reply to Bob's sealed message; a failure is sealed as an ERROR reply
        and ends the session.

        Raises:
            QkdError: the session is already over (why it failed, or that it finished).
            ChannelClosed: the session failed where no reply may be sealed: with Wegman–Carter,
                a frame that did not authenticate (Bob reserved no pad for a reply to it), or
                Alice's pool ran out. :attr:`error` says why; the channel is to be closed.
        """
        if not self._next:
            raise self._error or QkdAbort("the session is over")
        if not self._bound:
            raise AuthenticationError("a message before the session's handshake (see AliceSession.challenge)")
        try:
            kind, payload = self._sealer.open(frame)
            return self._sealer.seal(REPLY | kind, self._handle(kind, payload))
        except QitError as exc:
            error = self._fail(exc)
            if not self._sealer.can_reply:
                raise ChannelClosed(f"Alice closed the channel: {error}") from None
            detail = {"error": type(error).__name__, "message": str(error)}
            return self._sealer.seal(ERROR, json.dumps(detail).encode())
        finally:
            if not self._next:
                self._sealer.close()

    def _fail(self, exc: QitError) -> QkdError:
        error = exc if isinstance(exc, QkdError) else QkdAbort(str(exc))
        error.__cause__ = exc if exc is not error else None
        self._state, self._next, self._error = State.FAILED, {}, error
        # No key material outlives a failure.
        self._key, self._responder, self._final, self._released = _NO_BITS, Future(), Future(), b""
        self._encoder = None
        return error

    def _handle(self, kind: int, payload: bytes) -> bytes:
        if kind == ERROR:
            raise QkdAbort(f"Bob aborted: {payload.decode(errors='replace')}")
        after = self._next.get(kind)
        if after is None:
            raise AuthenticationError(f"{NAMES.get(kind, kind)} message where {self._state.value} was due")
        reply = self._handlers[kind](payload)
        self._state, self._next = after, TRANSITIONS.get(after, {})
        return reply

    def _hello(self, payload: bytes) -> bytes:
        expected = self._shared.params.to_json()
        if payload != expected:
            theirs = _protocol_of(payload)
            if theirs != PROTOCOL:
                raise QkdAbort(
                    f"protocol versions differ: Bob speaks {theirs}, Alice {PROTOCOL}; "
                    "both ends need the same qitcore release"
                )
            raise QkdAbort(f"parameters differ: {_differences(payload, expected)}")
        return b""

    def _sift(self, payload: bytes) -> bytes:
        s, r = self._shared, self._shared.report
        reply, s.sifted, r.detections = Sifting.answer(self._records, payload)
        r.sifted_key, r.sifted_test = len(s.sifted.key), len(s.sifted.test)
        return reply

    def _estimate(self, payload: bytes) -> bytes:
        sample, errors, test_errors = Estimation.compare(self._shared.sifted, payload)
        self._shared.estimate(sample, errors, test_errors)
        return _u64s(errors, *test_errors)

    def _method(self, kind: int, *methods: str) -> None:
        if self._shared.params.reconciliation not in methods:
            raise AuthenticationError(f"{NAMES[kind]} message in a {self._shared.params.reconciliation} session")

    def _cascade_start(self, payload: bytes) -> bytes:
        self._method(CASCADE_START, "cascade")
        s, r = self._shared, self._shared.report
        (seed,) = _read_u64s(payload, 1, "CASCADE_START")
        self._key = s.sifted.key[s.keep]
        qber = Estimation.cascade_qber(r.sample_errors, r.sample_size)
        # The core builds Alice's side on a thread of its own while Bob builds his: the first
        # query waits for it.
        self._responder = _done(Reconciliation.responder(self._key, qber, seed, s.params.cascade))
        return b""

    def _cascade(self, payload: bytes) -> bytes:
        r = self._shared.report
        r.cascade_rounds += 1
        r.round_trips = r.cascade_rounds
        return self._responder.result().answer(payload)

    def _ldpc(self, payload: bytes) -> bytes:
        from .ldpc import LdpcEncoder

        self._method(LDPC, "ldpc", "blind")
        s, r = self._shared, self._shared.report
        (seed,) = _read_u64s(payload, 1, "LDPC")
        self._key = s.sifted.key[s.keep]
        plan = LdpcReconciliation.plan(len(self._key), r.sample_errors, r.sample_size, seed, s.params.reconciliation)
        self._encoder = encoder = LdpcEncoder(plan, self._key)
        r.round_trips = 1
        return encoder.syndromes()

    def _ldpc_reveal(self, payload: bytes) -> bytes:
        self._method(LDPC_REVEAL, "blind")
        if self._encoder is None:  # the state table lets LDPC_REVEAL follow the LDPC message only
            raise InternalError("LDPC_REVEAL before LDPC")
        self._shared.report.round_trips += 1
        return self._encoder.reveal(payload)

    def _verify(self, payload: bytes) -> bytes:
        if self._encoder is not None:
            return self._verify_frames(self._encoder.plan, payload)
        values = _read_u64s(payload, 2 * Verification.TAGS, "VERIFY")
        points, tags = list(values[: Verification.TAGS]), list(values[Verification.TAGS :])
        if Verification.tags(self._key, points) != tags:
            raise VerificationFailure("the reconciled keys differ (verification tags disagree); both are discarded")
        return b""

    def _verify_frames(self, plan: Any, payload: bytes) -> bytes:
        """After LDPC: Bob names the frames that failed and sends a check of each other one;
        Alice drops the failed frames and those whose check differs (decoded to another word
        with the same syndrome), and answers with the latter and her verification tags of what
        remains, which Bob compares."""
        ldpc = LdpcReconciliation
        points = list(_read_u64s(payload, Verification.TAGS, "VERIFY", more=True))
        failed, rest = ldpc.read_failed(payload[8 * Verification.TAGS :], plan.frames)
        decoded = sorted(set(range(plan.frames)) - set(failed))
        if len(rest) != 8 + ldpc.HASH.itemsize * len(decoded):
            raise AuthenticationError("malformed VERIFY message")
        (point,) = struct.unpack_from("<Q", rest)
        theirs = np.frombuffer(rest, ldpc.HASH, offset=8)
        mine = ldpc.frame_hashes(self._key, plan, decoded, point)
        wrong = [f for f, a, b in zip(decoded, mine, theirs, strict=True) if a != b]
        self._key = self._key[self._shared.drop_frames(plan, failed, wrong, len(decoded))]
        return LdpcReconciliation.failed_message(wrong) + _u64s(*Verification.tags(self._key, points))

    def _amplify(self, payload: bytes) -> bytes:
        (bob_leaked,) = _read_u64s(payload, 1, "AMPLIFY")
        disclosed = self._encoder.disclosed if self._encoder is not None else self._responder.result().disclosed
        if bob_leaked != disclosed:
            raise QkdAbort(f"Bob counts {bob_leaked} disclosed parity bits, Alice {disclosed}")
        m = self._shared.secure_length(disclosed)
        pa_seed = PrivacyAmplification.seed(len(self._key), m) if m else b""
        # Hashed on a thread while Bob hashes his (the core releases the GIL).
        self._final = _in_background(PrivacyAmplification.apply, self._key, m, pa_seed) if m else _in_background(bytes)
        return _u64s(m) + pa_seed

    def _done(self, payload: bytes) -> bytes:
        self._released = _recycle(self._sealer, self._final.result(), self._shared.report)
        return b""

    def result(self) -> tuple[bytes, Report]:
        """Alice's key and report once Bob confirmed.

        Raises:
            QkdError: the session failed or is not finished; no key is returned.
        """
        if self._error is not None:
            raise self._error
        if self._state is not State.FINISHED:
            raise QkdAbort("the session did not finish")
        self._shared.report.eps_auth = self._sealer.eps  # the DONE reply's tag included
        return self._released, self._shared.report


class BobSession:
    """Bob's end: drives the session over ``channel`` and returns his key and the report."""

    def __init__(self, records: Records, params: Params, channel: Channel) -> None:
        self._records = check_records(records, "bob")
        self._shared = _Shared(params)
        self._channel = channel
        _pool_before(channel.sealer, self._shared.report)
        # Set when Alice's ERROR reply is raised: she has ended already and needs no telling.
        self._alice_failed = False
        # Set when the channel itself failed (lost, late or unauthentic frames, a closed
        # connection): an ERROR would not reach her, and waiting for its reply would only delay
        # Bob's own error. A malformed message that arrived authentic leaves the channel working,
        # so Alice is told of it rather than left waiting for Bob's next message.
        self._channel_failed = False
        # Alice's replies are bounded by what Bob's records can need, like his messages.
        channel.limit_frames(frame_limit(len(records)))

    def _call(self, kind: int, payload: bytes) -> bytes:
        try:
            reply_kind, reply = self._channel.request(kind, payload)
        except QitError:
            self._channel_failed = True
            raise
        if reply_kind == ERROR:
            # An ERROR reply, readable or not, means Alice has ended.
            self._alice_failed = True
            try:
                detail = json.loads(reply)
                message, error = str(detail["message"]), PEER_ERRORS.get(detail["error"], QkdAbort)
            except (ValueError, KeyError, TypeError):
                raise AuthenticationError("malformed ERROR message") from None
            raise error(f"Alice: {message}")
        if reply_kind != REPLY | kind:
            raise AuthenticationError(f"reply of kind {reply_kind} to {NAMES[kind]}")
        return reply

    def _abort(self, exc: QitError) -> None:
        # Best effort: tell Alice why, so that she stops too.
        with contextlib.suppress(QitError):
            self._channel.request(ERROR, str(exc).encode())

    def run(self) -> tuple[bytes, Report]:
        """Runs the whole session.

        Raises:
            QkdAbort: a QBER above threshold, parameters that differ, too few bits, Alice aborted.
            VerificationFailure: the reconciled keys differ.
            ChannelError: the channel failed (lost, tampered, reordered messages; disconnection).
        """
        try:
            return self._run()
        except QitError as exc:
            # Any failure of Bob's own (his reconciliation out of memory, a malformed reply from
            # Alice) ends her session too, at once rather than at her timeout.
            if not self._alice_failed and not self._channel_failed:
                self._abort(exc)
            raise
        finally:
            self._channel.sealer.close()

    def _run(self) -> tuple[bytes, Report]:
        s, r, p = self._shared, self._shared.report, self._shared.params
        clock = time.perf_counter
        t = clock()
        self._call(HELLO, p.to_json())
        reply = self._call(SIFT, Sifting.announce(self._records))
        # The reconciliation's seed is drawn now (it leaves only with CASCADE_START or LDPC): Cascade's
        # shuffles depend on the length of the key and the seed alone, and the core draws them on a
        # thread of its own while Bob sifts and the estimate's round trip runs.
        seed = int.from_bytes(os.urandom(8), "little")
        n_key = Sifting.key_count(self._records, reply)
        n_key -= Estimation.sample_size(n_key, p.sample_fraction, p.min_sample)
        prepared = Reconciliation.prepare(n_key, seed, p.cascade) if p.reconciliation == "cascade" and n_key else None
        s.sifted = Sifting.conclude(self._records, reply)
        r.detections, r.sifted_key, r.sifted_test = len(self._records), len(s.sifted.key), len(s.sifted.test)
        r.seconds["sifting"] = clock() - t

        t = clock()
        sample = Estimation.sample(len(s.sifted.key), p.sample_fraction, p.min_sample)
        counts = _read_u64s(self._call(ESTIMATE, Estimation.disclose(s.sifted, sample)), 4, "ESTIMATE reply")
        s.estimate(sample, counts[0], list(counts[1:]))
        r.seconds["estimation"] = clock() - t

        t = clock()
        if p.reconciliation == "cascade":
            self._call(CASCADE_START, _u64s(seed))
            qber = Estimation.cascade_qber(r.sample_errors, r.sample_size)
            corrected_key, leaked, rounds, corrected = Reconciliation.correct(
                s.sifted.key[s.keep], qber, seed, lambda q: self._call(CASCADE, q), p.cascade
            )
            key = np.frombuffer(corrected_key, np.uint8)
            r.cascade_rounds = rounds
            del prepared  # the layout holds what it uses of the shuffles
        else:
            ours, decoded, plan, failed, leaked, rounds = self._ldpc(seed)
        r.leaked_ec, r.round_trips = leaked, rounds
        r.seconds["reconciliation"] = clock() - t

        t = clock()
        points = Verification.points()
        if p.reconciliation == "cascade":
            self._call(VERIFY, _u64s(*points, *Verification.tags(key, points)))
        else:
            key, corrected = self._verify_frames(ours, decoded, plan, failed, points)
        r.corrected_bits = corrected
        r.efficiency = Reconciliation.efficiency(leaked, len(key), corrected, len(key) + s.failed_bits)
        r.seconds["verification"] = clock() - t

        t = clock()
        m = s.secure_length(leaked)
        reply = self._call(AMPLIFY, _u64s(leaked))
        (alice_m,) = _read_u64s(reply, 1, "AMPLIFY reply", more=True)
        if alice_m != m:
            raise QkdAbort(f"secure lengths differ: Alice {alice_m}, Bob {m}")
        seed_bytes = reply[8:]
        if len(seed_bytes) != (math.ceil((len(key) + m - 1) / 8) if m else 0):
            raise AuthenticationError("malformed AMPLIFY reply")
        final = PrivacyAmplification.apply(key, m, seed_bytes) if m else b""
        r.seconds["amplification"] = clock() - t
        self._call(DONE, b"")
        sealer = self._channel.sealer
        final = _recycle(sealer, final, r)
        r.eps_auth = sealer.eps
        return final, r

    def _ldpc(self, seed: int) -> tuple[Bits, Bits, Any, list[int], int, int]:
        """LDPC reconciliation: Bob's key before and after decoding (the whole plan's key, failed
        frames left as they were), the plan, the failed frames, the bits disclosed and the round
        trips."""
        from .ldpc import LdpcDecoder

        s, r, p = self._shared, self._shared.report, self._shared.params
        ours = s.sifted.key[s.keep]
        plan = LdpcReconciliation.plan(len(ours), r.sample_errors, r.sample_size, seed, p.reconciliation)
        decoder = LdpcDecoder(plan, ours)
        request = decoder.decode(self._call(LDPC, _u64s(seed)))
        # One-way LDPC discards what fails at once; blind asks Alice for punctured values first.
        while request is not None and p.reconciliation == "blind":
            request = decoder.apply(self._call(LDPC_REVEAL, request))
        failed = decoder.failed_frames
        decoded = ours.copy()
        decoded[LdpcReconciliation.kept(plan, failed)] = decoder.key
        return ours, decoded, plan, failed, decoder.disclosed, decoder.rounds

    def _verify_frames(
        self, ours: Bits, decoded: Bits, plan: Any, failed: list[int], points: list[int]
    ) -> tuple[Bits, int]:
        """Bob's side of :meth:`AliceSession._verify_frames`: the verified key and the bits
        corrected in it.

        Raises:
            VerificationFailure: Alice's tags of what remains differ from Bob's.
        """
        ldpc = LdpcReconciliation
        checked = sorted(set(range(plan.frames)) - set(failed))
        point = int.from_bytes(os.urandom(8), "little")
        hashes = ldpc.frame_hashes(decoded, plan, checked, point).tobytes()
        reply = self._call(VERIFY, _u64s(*points) + ldpc.failed_message(failed) + _u64s(point) + hashes)
        wrong, rest = ldpc.read_failed(reply, plan.frames, "VERIFY reply")
        if not set(wrong) <= set(checked):
            raise AuthenticationError("malformed VERIFY reply")
        tags = list(_read_u64s(rest, Verification.TAGS, "VERIFY reply"))
        kept = self._shared.drop_frames(plan, failed, wrong, len(checked))
        key = decoded[kept]
        if Verification.tags(key, points) != tags:
            raise VerificationFailure("the reconciled keys differ (verification tags disagree); both are discarded")
        return key, int(np.count_nonzero(key != ours[kept]))
