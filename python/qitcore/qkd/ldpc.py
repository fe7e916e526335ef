"""One-way, rate-adaptive LDPC reconciliation with blind rounds (at most three round trips).

Both ends compute the same public :func:`plan` from ``(n_key, qber, seed)``: a quasi-cyclic
mother code lifted to frames of 40,960 to 163,840 bits (the length that leaves the block the most
key, which depends on how the block divides into frames: long blocks mostly take the longest),
punctured and shortened to the rate that the estimated QBER needs, and the key cut into frames. The exchange:

1. Alice: ``enc = LdpcEncoder(plan, key)``; sends ``enc.syndromes()`` (one message, all frames).
2. Bob: ``dec = LdpcDecoder(plan, key, qber)``; ``request = dec.decode(syndromes)``.
3. While ``request`` is not None (at most twice): Alice sends ``enc.reveal(request)``, Bob
   ``request = dec.apply(reveal)``.
4. Bob tells Alice ``dec.failed_frames``; Bob keeps ``dec.key``, Alice
   ``keep(plan, key, failed_frames)``. Frames that failed are dropped at both ends.

``enc.disclosed == dec.disclosed``: per frame, syndrome bits − punctured symbols (their columns are
linearly independent, so that is the syndrome bits less the rank of the punctured columns) + every
punctured value revealed in a blind round, summed over all frames, failed ones included. This is
λ_EC. Malformed messages raise :class:`~qitcore.errors.AuthenticationError` (only authenticated
messages reach reconciliation, so a malformed one is a peer bug or an attack).

Key bits beyond ``plan.used_bits`` (a remainder under half a frame) are not reconciled and must be
discarded by both ends; a larger remainder is a last frame with its missing key positions shortened.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from .. import _core
from ..errors import AuthenticationError, ChannelError, InternalError, InvalidArgumentError, InvalidTypeError

__all__ = ["LdpcDecoder", "LdpcEncoder", "LdpcPlan", "Reconciled", "keep", "plan", "reconcile"]

Bits = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class LdpcPlan:
    """The public reconciliation plan, identical at both ends.

    ``frames`` frames of the mother code ``code`` (n bits each), each carrying ``key_per_frame``
    key bits (the last ``last_frame_key``), ``punctured`` and ``shortened`` symbols; ``used_bits``
    key bits are reconciled; the syndromes take ``syndrome_bytes`` bytes; blind rounds reveal
    ``reveal_steps`` punctured values per failed frame.
    """

    n_key: int
    qber: float
    seed: int
    code: str
    frames: int
    key_per_frame: int
    last_frame_key: int
    punctured: int
    shortened: int
    used_bits: int
    syndrome_bytes: int
    syndrome_bits: int
    reveal_steps: tuple[int, int]
    efficiency: float
    """The efficiency f the first attempt aims at (blind rounds then raise it). A blind plan made
    without one takes its lift's schedule: on the longest frames
    ``_core.ldpc_start_efficiency(qber)`` (1.12 up to QBER 1 %, 1.10 at 2 %, 1.09 from 3 %), on
    shorter ones more, up to 1.14 (a session's blind plan gives its own: see
    :meth:`~qitcore.qkd.stages.LdpcReconciliation.plan`)."""
    step: float
    """What each blind round adds to f: by the schedule, 0.04 on the longest frames, up to 0.08 on
    the shortest; a session's blind plan sizes it to the sample's uncertainty; 0 for one way
    (nothing is punctured for rounds that never come)."""
    lift: int
    """The frames' lift z: frames of n = 160·z bits, z from 256 to 1024 in steps of 64 (the
    length that leaves the most key). The circulants are z on the 160-column codes and z/2 on the
    320-column rate-0.9 code (named in :attr:`code`), which the plan takes where z/2 is a multiple
    of 64."""

    @property
    def base_disclosed(self) -> int:
        """Bits disclosed before any blind round: frames × (syndrome bits − punctured)."""
        return self.frames * (self.syndrome_bits - self.punctured)


ONE_WAY_EFFICIENCY = 1.4
"""The efficiency one-way reconciliation aims at: with no blind round to fall back on, its rate
must decode nearly every frame the first time (a one-way plan punctures nothing for blind rounds).
In sessions on 24 simulated links at QBER 2 %, planned at the sample's QBER (40,960-bit frames):
at 1.4 no frame failed; at 1.35 one session lost two frames, at 1.3 three sessions lost ten, and
each failed frame costs its whole length of key. Longer frames fail less at the same efficiency,
so 1.4 keeps its room (no frame lost in 12 sessions each at QBER 1 % and 2 % with them)."""


def plan(
    n_key: int,
    qber: float,
    seed: int,
    *,
    one_way: bool = False,
    efficiency: float | None = None,
    step: float | None = None,
) -> LdpcPlan:
    """The public plan for ``n_key`` key bits at estimated QBER ``qber`` (in (0, 0.5)); positions of
    punctured and shortened symbols drawn from ``seed``. ``one_way``: no blind rounds will follow,
    so the first attempt aims at :data:`ONE_WAY_EFFICIENCY`. Otherwise the first attempt aims at
    ``efficiency`` (in [1, 2]) and each blind round adds ``step`` (in [0, 1]) where given, and
    the lift's schedule sets those not given. Raises InvalidArgumentError."""
    if one_way:
        if efficiency is not None or step is not None:
            raise InvalidArgumentError("one_way: a one-way plan takes no efficiency or step")
        efficiency, step = ONE_WAY_EFFICIENCY, 0.0
    return _made(n_key, qber, seed, efficiency, step, None)


# The plans made lately, by the arguments they were made from (their own efficiency, step and
# lift included): a plan handed to the encoder, the decoder or keep is checked against the plan
# its public values make, and the plans `plan` returned are checked without making them again.
_MADE: OrderedDict[tuple[object, ...], LdpcPlan] = OrderedDict()
_MADE_LOCK = threading.Lock()
_MADE_KEPT = 16


def _made(
    n_key: int, qber: float, seed: int, efficiency: float | None, step: float | None, lift: int | None
) -> LdpcPlan:
    # Keyed by type as well: 1, 1.0 and True are equal in Python, but the core takes only some of
    # them, and a plan keeps the values it was made from.
    def key(*values: object) -> tuple[object, ...]:
        return tuple((type(v), v) for v in values)

    def make() -> LdpcPlan:
        fields_, (efficiency_, step_, lift_) = _core.ldpc_plan(n_key, qber, seed, efficiency, step, lift)
        return LdpcPlan(n_key, float(qber), seed, *fields_, efficiency=efficiency_, step=step_, lift=lift_)

    asked = key(n_key, qber, seed, efficiency, step, lift)
    try:
        hash(asked)
    except TypeError:  # an argument of no value semantics (an array): made, not kept
        return make()
    with _MADE_LOCK:
        if (made := _MADE.get(asked)) is not None:
            _MADE.move_to_end(asked)
            return made
    made = make()
    with _MADE_LOCK:
        own = key(n_key, qber, seed, made.efficiency, made.step, made.lift)
        for key_ in (asked, own):
            _MADE[key_] = made
            _MADE.move_to_end(key_)
        while len(_MADE) > _MADE_KEPT:
            _MADE.popitem(last=False)
    return made


def _plan(value: object) -> LdpcPlan:
    """``value`` when it is the plan its public values (n_key, qber, seed, efficiency, step, lift)
    make, which is what the core rebuilds at either end; InvalidArgumentError naming the fields that
    differ otherwise (a plan built by hand, or with fields replaced)."""
    if not isinstance(value, LdpcPlan):
        raise InvalidTypeError(f"plan: expected an LdpcPlan, got {type(value).__name__}")
    made = _made(value.n_key, value.qber, value.seed, value.efficiency, value.step, value.lift)
    differ = [f.name for f in fields(LdpcPlan) if getattr(made, f.name) != getattr(value, f.name)]
    if differ:
        raise InvalidArgumentError(
            f"plan: {', '.join(differ)} differ from the plan its n_key, qber, seed, efficiency, step "
            "and lift make (make plans with ldpc.plan and leave their fields as they are)"
        )
    return value


def _bits(name: str, key: npt.ArrayLike, n: int) -> Bits:
    array = np.asarray(key)
    if array.dtype != np.uint8 or array.ndim != 1:
        raise InvalidArgumentError(
            f"{name}: expected a 1-D uint8 array of 0/1, got {array.dtype} of shape {array.shape}"
        )
    if array.size != n:
        raise InvalidArgumentError(f"{name}: expected {n} bits, got {array.size}")
    return np.ascontiguousarray(array)


def _malformed(what: str, err: ChannelError) -> AuthenticationError:
    return AuthenticationError(f"malformed {what} message: {err}")


class LdpcEncoder:
    """Alice's side. Her punctured values come from the OS CSPRNG and stay in the Rust core
    (zeroized when dropped)."""

    def __init__(self, plan: LdpcPlan, key: npt.ArrayLike) -> None:
        self.plan = plan = _plan(plan)
        bits = _bits("key", key, plan.n_key)
        self._inner = _core.LdpcEncoder(
            plan.n_key, plan.qber, plan.seed, bits, efficiency=plan.efficiency, step=plan.step, lift=plan.lift
        )

    def __repr__(self) -> str:
        return f"LdpcEncoder(frames={self.plan.frames}, disclosed={self.disclosed})"

    def syndromes(self) -> bytes:
        """Every frame's packed syndrome: ``plan.syndrome_bytes`` bytes."""
        return self._inner.syndromes()

    def reveal(self, request: bytes) -> bytes:
        """The punctured values a blind request asks for, packed. Raises AuthenticationError when
        the request is malformed, names a frame out of range or twice, asks for another count than
        the plan's for the round (``reveal_steps``, as far as the frame's punctured values go), or
        comes after the last blind round."""
        try:
            return self._inner.reveal(request)
        except ChannelError as err:
            raise _malformed("blind request", err) from None

    @property
    def disclosed(self) -> int:
        """Bits disclosed so far (exact; equal to Bob's count)."""
        return self._inner.disclosed


class LdpcDecoder:
    """Bob's side: decodes his key against Alice's syndromes on all cores (the GIL released)."""

    def __init__(self, plan: LdpcPlan, key: npt.ArrayLike, qber: float | None = None) -> None:
        self.plan = plan = _plan(plan)
        bits = _bits("key", key, plan.n_key)
        channel = plan.qber if qber is None else qber
        self._inner = _core.LdpcDecoder(
            plan.n_key, plan.qber, plan.seed, bits, channel, efficiency=plan.efficiency, step=plan.step, lift=plan.lift
        )

    def __repr__(self) -> str:
        return f"LdpcDecoder(frames={self.plan.frames}, rounds={self.rounds}, disclosed={self.disclosed})"

    def decode(self, syndromes: bytes) -> bytes | None:
        """Decodes every frame; the blind request for the frames that failed, or None. Raises
        AuthenticationError for syndromes of the wrong size or a second call."""
        try:
            return self._inner.decode(syndromes)
        except ChannelError as err:
            raise _malformed("syndrome", err) from None

    def apply(self, reveal: bytes) -> bytes | None:
        """Takes Alice's reveal, decodes the failed frames again; the next request, or None (no
        round left or every frame decoded). Raises AuthenticationError for a reveal of the wrong
        size or one not asked for."""
        try:
            return self._inner.apply(reveal)
        except ChannelError as err:
            raise _malformed("blind reveal", err) from None

    @property
    def key(self) -> Bits:
        """The corrected key of the frames that decoded, failed frames left out (0/1 bytes)."""
        return np.frombuffer(self._inner.key(), np.uint8)

    @property
    def failed_frames(self) -> list[int]:
        """Indices of the frames that did not decode: both ends drop them."""
        return self._inner.failed_frames

    @property
    def disclosed(self) -> int:
        """Bits disclosed so far (exact; equal to Alice's count)."""
        return self._inner.disclosed

    @property
    def rounds(self) -> int:
        """Round trips so far: the syndrome message and each blind round (at most 3)."""
        return self._inner.rounds


def keep(plan: LdpcPlan, key: npt.ArrayLike, failed_frames: list[int]) -> Bits:
    """Alice's key with the bits of ``failed_frames`` and past ``plan.used_bits`` removed, so that it
    lines up with Bob's :attr:`LdpcDecoder.key`. Raises InvalidArgumentError."""
    plan = _plan(plan)
    bits = _bits("key", key, plan.n_key)
    kept = _core.ldpc_keep(
        plan.n_key,
        plan.qber,
        plan.seed,
        bits,
        failed_frames,
        efficiency=plan.efficiency,
        step=plan.step,
        lift=plan.lift,
    )
    return np.frombuffer(kept, np.uint8)


@dataclass(frozen=True)
class Reconciled:
    """What :func:`reconcile` returns: both ends' kept keys, the bits disclosed, the failed frames
    and the round trips."""

    alice: Bits
    bob: Bits
    disclosed: int
    failed_frames: list[int]
    round_trips: int
    plan: LdpcPlan


def reconcile(alice: npt.ArrayLike, bob: npt.ArrayLike, qber: float, seed: int, *, one_way: bool = False) -> Reconciled:
    """Both ends in one process (tests and benchmarks): reconciles ``bob`` to ``alice``, blind
    (up to two rounds after the first) or ``one_way``."""
    a = np.asarray(alice)
    p = plan(a.size, qber, seed, one_way=one_way)
    enc = LdpcEncoder(p, a)
    dec = LdpcDecoder(p, bob)
    request = dec.decode(enc.syndromes())
    while request is not None and not one_way:
        request = dec.apply(enc.reveal(request))
    if enc.disclosed != dec.disclosed:
        raise InternalError("the two ends counted different disclosures")
    failed = dec.failed_frames
    return Reconciled(keep(p, a, failed), dec.key, dec.disclosed, failed, dec.rounds, p)
