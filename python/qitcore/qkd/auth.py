"""Wegman–Carter authentication of the classical channel: information-theoretically secure.

The HMAC-SHA256 :class:`~qitcore.qkd.channel.Sealer` is secure only against an adversary who
cannot break SHA-256 (computational security); the finite-key bound the session relies on (Lim et
al. 2014) assumes a channel authenticated information-theoretically. :class:`WegmanCarterSealer`
gives that: each message is hashed with the polynomial hash of the core
(:func:`qitcore._core.wegman_carter_tag`, GF(2^64), ε = (L + 1)/2^64 for a message of L 8-byte
blocks) under a secret hash key, and the hash is one-time padded with 64 fresh bits of the
pre-shared :class:`~qitcore.qkd.keypool.KeyPool`.

Frame: ``header | payload | tag``; the header is the magic ``QW``, the kind, the sequence number,
the payload length and the **pool offset** of the tag's pad (8 bytes, little-endian); the tag is
8 bytes. The header is hashed with the payload, so the offset is authenticated too.

How a session uses the pool (Bob drives; every request has one reply), from ``s``, Bob's
:meth:`KeyPool.begin` (the pool's high-water mark):

- bytes ``[s, s+8)``: the session's hash key (kept for the whole session: every tag is padded,
  so the key is not revealed, Portmann 2014);
- round trip ``r``: Bob's pad at ``s + 8 + 16r``, Alice's reply pad at ``s + 16 + 16r``: the two
  directions never share a pad bit.

Before Bob seals a request he reserves (durably) both its pad and the reply's, so Alice's
high-water mark never passes his: Alice accepts a session's first frame at any offset at or above
her mark (bytes skipped are burned) and every later frame only at exactly the offset due; a frame
below the mark (a replay from an earlier session) or out of step is refused. A first frame is
checked before Alice spends anything (a forged or altered offset must not make her skip pool
bytes Bob has not, or the pools would leave lockstep), and so is every later frame: a frame that
does not authenticate ends the session (:class:`~qitcore.errors.AuthenticationError`) with no
sealed reply, since the only pad Alice may reply with is the one Bob reserved with a request he
really sent (:attr:`WegmanCarterSealer.can_reply`); the channel is closed instead.

Accounting: :attr:`WegmanCarterSealer.eps` sums the ε of every tag sealed or checked in the
session, failed checks of stray first frames included (each is one forgery attempt); both ends
report it as ``eps_auth``, which adds to the composable ε. A forger who swaps a message of L
blocks for one of L' succeeds with probability at most (max(L, L') + 1)/2^64, and the receiver
does not know L: so a checked tag is charged for the longest message the session accepts
(:meth:`WegmanCarterSealer.limit_frames`, set by the channel from the session's frame bound),
a sealed one for its own length. :meth:`consumed` is the pool bytes the
session used (reservations are whole :data:`~qitcore.qkd.keypool.RESERVE`-byte steps, the same at
both ends).

Measured (``pytest benches/bench_qkd_auth.py``, 2 shared cores): a session over 1.05·10^6
detections (20 km, QBER ~1 %, ~490 Cascade round trips) consumed 49,152–81,920 pool bits over 7
sessions (median session 63,488, all returned from its key), and took 85 ms median against 45 ms
with HMAC (the pool's fsyncs about 8 ms of the difference, the rest the per-frame work in
Python); a tag of a 64-byte message takes 0.7 µs (HMAC 3.2 µs then, through Python's ``hmac``;
0.33 µs since HMAC sealing moved into the core: ``timeit`` of ``_core.ChannelMac.seal``, best of
5). On a 10^6-bit block at 2 %,
ε_auth is 7·10^-11 with Cascade and 1.2·10^-12 with blind LDPC (checked tags charged for the
longest frame).
"""

from __future__ import annotations

import hmac
import struct

from .._core import wegman_carter_epsilon, wegman_carter_tag
from ..errors import AuthenticationError, InvalidArgumentError, InvalidTypeError, KeyPoolError
from .keypool import KeyPool

__all__ = ["HEADER", "OVERHEAD", "WegmanCarterSealer"]

MAGIC = b"QW"
HEADER = struct.Struct("<2sBQIQ")
TAG_BYTES = 8
OVERHEAD = HEADER.size + TAG_BYTES
KEY_BYTES = 8
ROUND_TRIP = 2 * TAG_BYTES


def _wipe(b: bytearray | None) -> None:
    if b is not None:
        b[:] = bytes(len(b))


def check_message(kind: object, payload: object) -> tuple[int, bytes]:
    """A message kind (one byte) and a bytes-like payload, refused before any pad is taken."""
    if not isinstance(kind, int) or isinstance(kind, bool) or not 0 <= kind <= 0xFF:
        raise InvalidArgumentError(f"kind: expected an integer from 0 to 255, got {kind!r}")
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise InvalidTypeError(f"payload: expected bytes, got {type(payload).__name__}")
    return kind, bytes(payload)


class WegmanCarterSealer:
    """Seals and opens one end's messages with Wegman–Carter tags from ``pool`` (the interface of
    :class:`~qitcore.qkd.channel.Sealer`)."""

    method = "wegman-carter"

    def __init__(self, pool: KeyPool, *, is_alice: bool) -> None:
        if not isinstance(pool, KeyPool):
            raise InvalidTypeError(f"auth_key: expected bytes or a KeyPool, got {type(pool).__name__}")
        self._pool = pool
        self._is_alice = is_alice
        self._sent = 0
        self._received = 0
        self._key: bytearray | None = None
        self.eps = 0.0
        """Sum of the ε of every tag sealed or checked."""
        # Bytes hashed in the longest frame the session accepts (0: none set, charge the frame's own).
        self._longest = 0
        self.start: int | None = None
        """Pool offset of the session's hash key (Bob: his mark when the session began; Alice:
        learnt from Bob's first frame)."""
        # The offset of the next pad each way; None for what is not known yet (Alice before the
        # first frame).
        self._next_out: int | None = None
        self._next_in: int | None = None
        if not is_alice:
            self.start = pool.begin()
            self._next_out = self.start + KEY_BYTES
        else:
            pool.begin()

    def __repr__(self) -> str:
        return f"WegmanCarterSealer(sent={self._sent}, received={self._received}, pool={self._pool!r})"

    @property
    def pool(self) -> KeyPool:
        return self._pool

    def consumed(self) -> int:
        """Pool bytes this session has used (reserved), from its hash key on."""
        return 0 if self.start is None else self._pool.used - self.start

    def limit_frames(self, nbytes: int) -> None:
        """The longest frame the session accepts (bytes, header and tag included): what each
        checked tag's ε is charged for."""
        self._longest = max(0, nbytes - TAG_BYTES)

    def _checked(self, frame: bytes) -> float:
        return float(wegman_carter_epsilon(max(len(frame) - TAG_BYTES, self._longest)))

    @property
    def can_reply(self) -> bool:
        """Whether a reply may be sealed now: Bob always; Alice only once a request has
        authenticated, whose reply pad Bob reserved (never a pad he may use for something else)."""
        return self._next_out is not None

    def close(self) -> None:
        """Wipes the session's hash key."""
        _wipe(self._key)
        self._key = None

    def _tag(self, key: bytearray, pad: bytearray, header: bytes | memoryview, body: bytes | memoryview) -> bytes:
        try:
            return wegman_carter_tag(key, pad, header, body)
        finally:
            _wipe(pad)

    def seal(self, kind: int, payload: bytes) -> bytes:
        """The frame of ``payload``, tagged with the next pad of this end's direction.

        Raises:
            KeyPoolExhausted: the pool holds too few bytes for this round trip (Bob reserves his
                pad and the reply's before sealing).
            AuthenticationError: Alice has no authenticated message to reply to.
        """
        kind, payload = check_message(kind, payload)
        offset = self._next_out
        if offset is None:
            raise AuthenticationError("no authenticated message yet: nothing to reply to")
        if self._key is None:  # Bob's first message: the session's hash key first
            assert self.start is not None
            self._pool.reserve(offset + ROUND_TRIP)
            self._key = self._pool.take(self.start, KEY_BYTES)
        if not self._is_alice:
            self._pool.reserve(offset + ROUND_TRIP)  # the reply's pad too: Alice's mark never passes Bob's
        pad = self._pool.take(offset, TAG_BYTES)
        header = HEADER.pack(MAGIC, kind, self._sent, len(payload), offset)
        tag = self._tag(self._key, pad, header, payload)
        self._sent += 1
        self.eps += wegman_carter_epsilon(len(header) + len(payload))
        self._next_out = None if self._is_alice else offset + ROUND_TRIP
        if not self._is_alice:
            self._next_in = offset + TAG_BYTES
        return b"".join((header, payload, tag))

    def _parse(self, frame: bytes) -> tuple[memoryview, memoryview, bytes, int, int, int, int]:
        view = memoryview(frame)
        header, body, tag = view[: HEADER.size], view[HEADER.size : -TAG_BYTES], frame[-TAG_BYTES:]
        magic, kind, seq, length, offset = HEADER.unpack(header)
        if magic != MAGIC or length != len(body):
            raise AuthenticationError("message with a malformed header")
        return header, body, tag, kind, seq, length, offset

    def _first_offset_ok(self, offset: int) -> bool:
        # Alice's first frame: the hash key just below its pad, both at or above her mark.
        return offset >= KEY_BYTES and offset - KEY_BYTES >= self._pool.handed_out

    def bind(self, context: bytes) -> bool:
        """Nothing to bind: every tag has a pad of its own, never used again, and a frame's pad
        offset must be past the last one seen; so no frame of another session authenticates.
        Returns False: what was sealed before stands (resealing would take new pads)."""
        return False

    def authentic(self, frame: bytes, context: bytes | None = None) -> bool:
        """Whether :meth:`open` would accept ``frame`` now (``context``, the session's nonces, is
        not needed: see :meth:`bind`); hands out no pool bytes (a stray peer's frame is refused
        without ending the session). A failed check of a well-formed frame counts in :attr:`eps`
        as one forgery attempt."""
        if not isinstance(frame, (bytes, bytearray)) or len(frame) < OVERHEAD:
            return False
        try:
            header, body, tag, _, seq, _, offset = self._parse(frame)
        except AuthenticationError:
            return False
        if seq != self._received:
            return False
        if self._key is None and not self._first_offset_ok(offset):
            return False
        if self._key is not None and offset != self._next_in:
            return False
        try:
            ok = self._pad_matches(header, body, tag, offset, self._key)
        except KeyPoolError:  # an offset past the pool's end: not a frame of this pool
            return False
        if not ok:  # a forgery attempt; an accepted frame is counted when it is opened
            self.eps += self._checked(frame)
        return ok

    def _no_reply(self) -> None:
        # Alice replies only with the pad Bob reserved with a request that authenticated.
        if self._is_alice:
            self._next_out = None

    def _pad_matches(
        self, header: memoryview, body: memoryview, tag: bytes, offset: int, key: bytearray | None
    ) -> bool:
        """Whether ``tag`` is the frame's tag under ``key`` (``None``: the key just below
        ``offset``, as for a session's first frame) and the pad at ``offset``, both read without
        being handed out.

        Raises:
            KeyPoolError: the bytes were handed out already, or lie past the pool's end.
        """
        peeked = pad = None
        try:
            if key is None:
                key = peeked = self._pool.peek(offset - KEY_BYTES, KEY_BYTES)
            pad = self._pool.peek(offset, TAG_BYTES)
            return hmac.compare_digest(tag, self._tag(key, pad, header, body))
        finally:
            _wipe(peeked)
            _wipe(pad)

    def open(self, frame: bytes) -> tuple[int, bytes]:
        """The kind and payload of ``frame`` once its tag checks out under the pad at its offset.

        Raises:
            AuthenticationError: a short or malformed frame, an offset below the pool's mark or
                out of step (replayed, reordered, dropped), a wrong tag, a sequence number out
                of order.
            KeyPoolExhausted: the offset is past the end of the pool.
        """
        if not isinstance(frame, (bytes, bytearray)):
            raise InvalidTypeError(f"frame: expected bytes, got {type(frame).__name__}")
        if len(frame) < OVERHEAD:
            raise AuthenticationError(f"message of {len(frame)} bytes is shorter than a header and tag")
        header, body, tag, kind, seq, _, offset = self._parse(frame)
        if self._key is None:
            if not self._is_alice:
                raise AuthenticationError("a reply before any request")
            if not self._first_offset_ok(offset):
                raise AuthenticationError(
                    f"first message at pool offset {offset}, below the mark {self._pool.handed_out}: "
                    "replayed from an earlier session"
                )
            # Checked before anything is consumed: a forged or altered offset must not make
            # Alice spend (and skip) pool bytes Bob has not, or the pools would leave lockstep.
            if not self.authentic(frame):
                raise AuthenticationError("first message failed authentication (forged, altered, or another key pool)")
            # Bob reserved the reply's pad as well.
            self._pool.reserve(offset + TAG_BYTES + TAG_BYTES)
            self._key = self._pool.take(offset - KEY_BYTES, KEY_BYTES)
            self.start = offset - KEY_BYTES
        elif offset != self._next_in:
            self._no_reply()
            raise AuthenticationError(
                f"message at pool offset {offset} where {self._next_in} was due: replayed, reordered or dropped"
            )
        else:
            self._no_reply()
            # Checked before anything is reserved: a forgery that arrives before Bob's request
            # must not move Alice's mark past his, nor let her reply with a pad he has not reserved.
            if not self._pad_matches(header, body, tag, offset, self._key):
                self.eps += self._checked(frame)
                raise AuthenticationError("message failed authentication (tampered, forged, or another key pool)")
            self._pool.reserve(offset + TAG_BYTES + (TAG_BYTES if self._is_alice else 0))
        if self._is_alice:
            # The reply (an ERROR one included) goes at the next pad, whatever this frame holds.
            self._next_out = offset + TAG_BYTES
            self._next_in = offset + ROUND_TRIP
        pad = self._pool.take(offset, TAG_BYTES)
        self.eps += self._checked(frame)
        if not hmac.compare_digest(tag, self._tag(self._key, pad, header, body)):
            raise AuthenticationError("message failed authentication (tampered, forged, or another key pool)")
        if seq != self._received:
            what = "dropped" if seq > self._received else "replayed or reordered"
            raise AuthenticationError(f"message number {seq} where {self._received} was due: a message was {what}")
        self._received += 1
        return kind, bytes(body)
