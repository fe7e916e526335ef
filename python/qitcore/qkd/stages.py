"""The stages of BB84 post-processing, one object each, shared by both ends.

Each stage turns public messages and one end's private data into that end's next state; the
session (:mod:`qitcore.qkd.session`) carries the messages. Keys are numpy arrays of 0/1 bytes.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from .. import _core
from .._core import SecureLength
from ..errors import AuthenticationError, ChannelError, InvalidArgumentError, QkdAbort
from ..extract import Toeplitz
from .records import INTENSITIES, Records

__all__ = [
    "Estimation",
    "FiniteKeyLength",
    "LdpcReconciliation",
    "PrivacyAmplification",
    "Reconciliation",
    "Sifted",
    "Sifting",
    "Verification",
]

Bits = npt.NDArray[np.uint8]


def _malformed(what: str) -> AuthenticationError:
    # Only authenticated messages reach the stages, so a malformed one is a peer bug or attack.
    return AuthenticationError(f"malformed {what} message")


@dataclass(frozen=True)
class Sifted:
    """One end's sifted data: key-basis and test-basis bits with their intensity labels."""

    key: Bits
    key_intensity: npt.NDArray[np.uint8]
    test: Bits
    test_intensity: npt.NDArray[np.uint8]

    def key_counts(self, removed: npt.NDArray[np.uint32] | None = None) -> list[int]:
        """Key-basis events per intensity, without the positions in ``removed``."""
        counts = _counts(self.key_intensity)
        if removed is not None:
            counts = [a - b for a, b in zip(counts, _counts(self.key_intensity[removed]), strict=True)]
        return counts

    def test_counts(self) -> list[int]:
        return _counts(self.test_intensity)

    def __repr__(self) -> str:
        # Key bits never reach a repr (a log line, a traceback); their counts do.
        return f"Sifted(key=<{len(self.key)} bits hidden>, test=<{len(self.test)} bits>)"


def _counts(labels: npt.NDArray[np.uint8]) -> list[int]:
    # Comparisons, not bincount: bincount first widens a million uint8 labels to intp.
    return [int(np.count_nonzero(labels == k)) for k in range(INTENSITIES)]


class Sifting:
    """Bob announces which pulses he detected and in which basis; Alice answers with her bases
    and the intensity labels of the pulses where the bases agree. Bits are never announced. The
    wire format is documented in the core's ``qkd::sift``."""

    @staticmethod
    def announce(bob: Records) -> bytes:
        """Bob's message."""
        return bytes(_core.sift_announce(_u64_bytes(bob.index), bob.basis))

    @staticmethod
    def answer(alice: Records, message: bytes) -> tuple[bytes, Sifted, int]:
        """Alice's reply, her sifted data, and the number of pulses Bob detected."""
        if alice.intensity is None:
            raise QkdAbort("Alice's records need intensity labels")
        try:
            reply, sifted, n = _core.sift_answer(
                _u64_bytes(alice.index), alice.basis, alice.bit, alice.intensity, message
            )
        except ChannelError as exc:
            raise QkdAbort(str(exc)) from None
        return bytes(reply), Sifting._wrap(sifted), n

    @staticmethod
    def conclude(bob: Records, reply: bytes) -> Sifted:
        """Bob's sifted data from Alice's reply."""
        try:
            return Sifting._wrap(_core.sift_conclude(bob.basis, bob.bit, reply))
        except ChannelError:
            raise _malformed("sifting reply") from None

    @staticmethod
    def key_count(bob: Records, reply: bytes) -> int:
        """How many key-basis bits Bob's sifting keeps (:meth:`conclude`'s key length), from the
        bases alone, so that what depends on the length alone can start before sifting."""
        try:
            return int(_core.sift_key_count(bob.basis, reply))
        except ChannelError:
            raise _malformed("sifting reply") from None

    @staticmethod
    def _wrap(columns: tuple[bytes, bytes, bytes, bytes]) -> Sifted:
        key, key_intensity, test, test_intensity = (np.frombuffer(c, np.uint8) for c in columns)
        return Sifted(key, key_intensity, test, test_intensity)


def _u64_bytes(index: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray(index, dtype="<u8").view(np.uint8)


class Estimation:
    """QBER of each basis: the test basis is disclosed in full, the key basis on a random sample
    (removed from the key). Upper bounds are Hoeffding's at failure probability ``eps``:
    ``e + sqrt(ln(1/eps) / (2k))`` for ``k`` disclosed bits."""

    @staticmethod
    def sample_size(n_key: int, fraction: float, minimum: int) -> int:
        """Key bits disclosed: the ``fraction``, at least ``minimum``, at most half of them."""
        return min(max(minimum, math.ceil(fraction * n_key)), n_key // 2)

    @staticmethod
    def sample(n_key: int, fraction: float, minimum: int) -> npt.NDArray[np.uint32]:
        """A uniformly random sample of key positions (sorted), from the OS CSPRNG."""
        k = Estimation.sample_size(n_key, fraction, minimum)
        rng = np.random.default_rng(int.from_bytes(os.urandom(16), "little"))
        return np.sort(rng.choice(n_key, size=k, replace=False)).astype(np.uint32)

    @staticmethod
    def disclose(sifted: Sifted, sample: npt.NDArray[np.uint32]) -> bytes:
        head = struct.pack("<Q", len(sample))
        return (
            head
            + sample.astype("<u4").tobytes()
            + np.packbits(sifted.key[sample]).tobytes()
            + np.packbits(sifted.test).tobytes()
        )

    @staticmethod
    def compare(sifted: Sifted, message: bytes) -> tuple[npt.NDArray[np.uint32], int, list[int]]:
        """Alice's side: the sample and the errors in it and in each intensity of the test basis."""
        try:
            (k,) = struct.unpack_from("<Q", message)
            n_test = len(sifted.test)
            if len(message) != 8 + 4 * k + (k + 7) // 8 + (n_test + 7) // 8:
                raise ValueError
            sample = np.frombuffer(message, "<u4", k, 8).astype(np.uint32)
            if k and (sample[-1] >= len(sifted.key) or (k > 1 and (np.diff(sample.astype(np.int64)) <= 0).any())):
                raise ValueError
            at = 8 + 4 * k
            bob_sample = np.unpackbits(np.frombuffer(message, np.uint8, (k + 7) // 8, at))[:k]
            bob_test = np.unpackbits(np.frombuffer(message, np.uint8, offset=at + (k + 7) // 8))[:n_test]
        except (ValueError, struct.error):
            raise _malformed("estimation") from None
        sample_errors = int((sifted.key[sample] != bob_sample).sum())
        wrong = sifted.test != bob_test
        test_errors = np.bincount(sifted.test_intensity[wrong], minlength=INTENSITIES).tolist()
        return sample, sample_errors, test_errors

    @staticmethod
    def upper(errors: int, k: int, eps: float) -> float:
        return min(1.0, errors / k + math.sqrt(math.log(1 / eps) / (2 * k))) if k else 1.0

    @staticmethod
    def cascade_qber(errors: int, k: int) -> float:
        """The error rate Cascade's block sizes are chosen for: the sample's, at least 0.1 %."""
        return min(0.25, max(errors / k if k else 0.0, 1e-3))


class Reconciliation:
    """Cascade: Alice answers parity queries (:class:`qitcore._core.CascadeResponder`), Bob
    corrects his key by asking them (:func:`qitcore._core.cascade_correct`), with the shuffles
    he prepared while the error rate was estimated (:class:`qitcore._core.CascadePreparation`)."""

    prepare = _core.CascadePreparation
    responder = _core.CascadeResponder
    correct = staticmethod(_core.cascade_correct)

    @staticmethod
    def efficiency(leaked: int, n: int, errors: int, covered: int | None = None) -> float | None:
        """``f = leaked / (covered · h(e))`` for the actual error rate ``e = errors / n`` of the
        ``n`` bits corrected, over the ``covered`` bits the disclosure was about (default ``n``;
        with LDPC, failed frames too, whose syndromes count in ``leaked``)."""
        e = errors / n if n else 0.0
        if e <= 0 or e >= 1:
            return None
        covered = n if covered is None else covered
        return leaked / (covered * _h2(e))


def _h2(q: float) -> float:
    """The binary entropy of ``q`` in (0, 1), in bits."""
    return -q * math.log2(q) - (1 - q) * math.log2(1 - q)


class LdpcReconciliation:
    """LDPC reconciliation (:mod:`qitcore.qkd.ldpc`) within a session: the public plan both ends
    derive from Bob's seed and the sample's error rate, and the frames Bob could not decode,
    which he sends with his verification tags and both ends discard."""

    FAILED = struct.Struct("<I")
    PLAN_MARGIN: ClassVar[Mapping[str, float]] = MappingProxyType({"ldpc": 1.0, "blind": 1.0})
    """Standard deviations of the sample's error rate added to it for the QBER a plan is made at."""
    BLIND_REACH = 3.0
    """Standard deviations of the sample's error rate above it that a blind plan's last attempt
    still decodes at: the blind step is sized to it (:meth:`plan`)."""

    @staticmethod
    def plan(n_key: int, sample_errors: int, sample_size: int, seed: int, method: str) -> Any:
        """The plan both ends derive from the sample's error rate ``e`` and its standard deviation
        ``σ``: for ``method`` ``"ldpc"`` (one-way) at ``e + σ`` and a rate that needs no blind
        round; for ``"blind"`` at ``e + σ`` too, its first attempt at the efficiency the schedule
        gives the longest frames there (1.12 up to QBER 1 %, 1.10 at 2 %, 1.09 from 3 %) and each
        of the two blind rounds adding the larger of 0.04 and what brings the last attempt to that
        efficiency plus 0.08 at ``e + 3σ`` (:data:`BLIND_REACH`; rounded to 10^-6, so that both
        ends' floating point agree on it). With the efficiency and step given, the frames' length
        is the one whose frames disclose the least per key bit with the block cut into them (the
        schedule weighs in the measured f of each length instead): shorter frames than the
        schedule's, often.

        Why: the sample's error rate is uncertain, and a frame that fails costs the secure length
        its whole length (up to about 162,000 key bits). One-way reconciliation can only plan for
        a worse rate; blind rounds can cover it, so a blind plan starts near the estimate and
        spends the disclosure only where the rate is worse. Measured (20 km links, blocks of
        ``LinkModel.pulses_for(10**6)`` pulses, 2026-12-06): on 12 links at each of QBER 1 % and
        2 %, three runs, median key 204,404–207,364 and 69,912–73,796 against 198,388–205,792 and
        64,684–71,136 with ``qitcore-bb84/4``'s plan at ``e + 2σ`` and the schedule's steps; no
        frame lost there, on 120 more links at each QBER, nor in 30 sessions on a 15 km link with
        a sample of 5,589 bits. Reaching only ``e + 2σ``, or the first attempt at ``e``, lost a
        frame in 36 to 72 sessions at QBER 1 % (the larger step punctures more, so fewer symbols
        are shortened and the last attempt, every punctured value revealed, is
        weaker)."""
        from . import ldpc  # here: only an LDPC session loads it

        if n_key == 0:
            raise QkdAbort("no key bits left to reconcile")
        e = Estimation.cascade_qber(sample_errors, sample_size)
        sigma = math.sqrt(e * (1 - e) / max(1, sample_size))
        qber = min(0.25, e + LdpcReconciliation.PLAN_MARGIN[method] * sigma)
        if method == "ldpc":
            plan = ldpc.plan(n_key, qber, seed, one_way=True)
        else:
            reach = min(0.25, e + LdpcReconciliation.BLIND_REACH * sigma)
            start = _core.ldpc_start_efficiency(qber)
            # The longest frames' schedule: steps of 0.04, the last attempt at start + 0.08.
            least = _core.LDPC_BLIND_STEP
            step = round(max(least, ((start + 2 * least) * _h2(reach) / _h2(qber) - start) / 2), 6)
            try:
                plan = ldpc.plan(n_key, qber, seed, efficiency=start, step=min(1.0, step))
            except InvalidArgumentError as exc:
                if "syndrome bits" not in str(exc):
                    raise
                # The step would puncture more symbols than the syndrome has bits (a tiny sample):
                # the schedule at the rate to reach instead.
                plan = ldpc.plan(n_key, reach, seed)
        # A block shorter than most of a frame is mostly shortened: its syndromes alone would
        # disclose as much as it holds, so no bound could leave key. Stop before disclosing any.
        if plan.base_disclosed >= n_key:
            raise QkdAbort(
                f"{n_key} sifted key bits are too few for LDPC reconciliation: its syndromes would disclose "
                f"{plan.base_disclosed} bits at an error rate of {qber:.3f}; use a longer block or Cascade"
            )
        return plan

    @staticmethod
    def kept(plan: Any, failed: list[int]) -> npt.NDArray[np.bool_]:
        """Which of the ``plan.n_key`` key bits remain: those of the frames that decoded (frames are
        consecutive runs of the key; bits past ``plan.used_bits`` are never reconciled)."""
        mask = np.zeros(plan.n_key, bool)
        mask[: plan.used_bits] = True
        for frame in failed:
            start = frame * plan.key_per_frame
            mask[start : start + (plan.last_frame_key if frame == plan.frames - 1 else plan.key_per_frame)] = False
        return mask

    @staticmethod
    def failed_message(failed: list[int]) -> bytes:
        return LdpcReconciliation.FAILED.pack(len(failed)) + np.asarray(failed, "<u4").tobytes()

    @staticmethod
    def read_failed(payload: bytes, frames: int, what: str = "VERIFY") -> tuple[list[int], bytes]:
        """A list of frames (strictly increasing indices below ``frames``) at the head of
        ``payload``, and the bytes after it."""
        try:
            (count,) = LdpcReconciliation.FAILED.unpack_from(payload)
            if len(payload) < 4 + 4 * count or count > frames:
                raise ValueError
            failed = np.frombuffer(payload, "<u4", count, 4).astype(np.int64)
            if count and (failed[-1] >= frames or (np.diff(failed) <= 0).any()):
                raise ValueError
        except (ValueError, struct.error):
            raise _malformed(what) from None
        return [int(f) for f in failed], payload[4 + 4 * count :]

    HASH = np.dtype("<u4")
    """Each decoded frame's check (32 bits): a polynomial tag over GF(2^64) at a random point,
    truncated. A frame decoded to another word with the same syndrome passes it with probability
    about 2^-32; the whole key's verification tags then still catch it."""

    @staticmethod
    def frame_hashes(key: Bits, plan: Any, frames: list[int], point: int) -> npt.NDArray[np.uint32]:
        """The checks of ``frames`` of ``key`` (the plan's whole key, one byte a bit)."""
        out = np.empty(len(frames), LdpcReconciliation.HASH)
        for i, frame in enumerate(frames):
            start = frame * plan.key_per_frame
            end = start + (plan.last_frame_key if frame == plan.frames - 1 else plan.key_per_frame)
            out[i] = Verification.tags(key[start:end], [point])[0] & 0xFFFFFFFF
        return out


class Verification:
    """Two polynomial tags over GF(2^64) at independent random points: keys that differ pass
    with probability at most ``((L + 1) / 2^64)^2`` for ``L`` 64-bit words (ε_cor)."""

    TAGS = 2
    DISCLOSED_BITS = 64 * TAGS

    @staticmethod
    def points() -> list[int]:
        return [int.from_bytes(os.urandom(8), "little") for _ in range(Verification.TAGS)]

    @staticmethod
    def tags(key: Bits, points: list[int]) -> list[int]:
        return list(_core.verification_tags(key, points))

    @staticmethod
    def eps_cor(n: int) -> float:
        return float(_core.verification_collision_bound(n)) ** Verification.TAGS


class FiniteKeyLength:
    """The secure length of Lim et al. (PRA 89, 022307, 2014); see the core's ``finite_key``."""

    @staticmethod
    def compute(
        mu: Any, p: Any, counts: tuple[list[int], list[int], list[int]], leaked: int, eps_sec: float, eps_cor: float
    ) -> SecureLength:
        """Every term of the bound; ``counts`` are key-basis events, test-basis events and
        test-basis errors, per intensity."""
        return _core.finite_key_length(list(mu), list(p), *counts, leaked, eps_sec, eps_cor)


class PrivacyAmplification:
    """Toeplitz hashing of the reconciled key to the secure length; Alice draws the seed from
    the OS CSPRNG and sends it."""

    @staticmethod
    def seed(n: int, m: int) -> bytes:
        return os.urandom((n + m - 1 + 7) // 8)

    @staticmethod
    def apply(key: Bits, m: int, seed: bytes) -> bytes:
        n = len(key)
        return bytes(Toeplitz(n, m, seed).hash(np.packbits(key).tobytes(), nbits=n))
