"""QKD key distillation for decoy-state BB84: sifting, QBER estimation, reconciliation (Cascade, or
one-way and blind LDPC), verification, the finite-key secure length (Lim et al. 2014) and privacy
amplification, over an authenticated classical channel.

- :func:`distill` runs both ends in one process and returns both keys and the report;
- the channel is authenticated with HMAC-SHA256 (pre-shared key bytes; computational) or
  Wegman–Carter (a pre-shared :class:`KeyPool` at each end, :mod:`qitcore.qkd.auth`;
  information-theoretic, the pools replenished from each session's key);
- :class:`AliceSession` and :class:`BobSession` are the two ends, for separate programs over
  :class:`TcpChannel` / :func:`serve_tcp` (see ``qitcore qkd alice`` and ``qitcore qkd bob``);
- :class:`LinkModel` simulates a link (the core's :class:`Detections`) and produces both ends'
  :class:`Records`;
  :func:`read_detections` reads them from a device's QDP/1 stream (DETECTIONS frames);
- the stages are in :mod:`qitcore.qkd.stages`; a report's finite-key terms are a
  :class:`SecureLength`; reconciliation is Cascade or LDPC (:mod:`qitcore.qkd.ldpc`, chosen by
  ``Params(reconciliation=...)``);
- :func:`delayed` (a channel factory for :func:`distill`) and :class:`DelayProxy` (a TCP proxy)
  add a link's latency, to measure what round trips cost.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._core import Detections, SecureLength
from ..errors import InvalidArgumentError, InvalidTypeError
from .auth import WegmanCarterSealer
from .channel import AuthKey, Channel, Endpoint, InProcessChannel, Sealer, TcpChannel, serve_tcp
from .delay import Delay, DelayedChannel, delayed
from .device import detection_frames, read_detections
from .keypool import KeyPool
from .link import LinkModel, SimulatedLink
from .records import Records
from .session import AliceSession, BobSession, Params, Report
from .stages import (
    Estimation,
    FiniteKeyLength,
    LdpcReconciliation,
    PrivacyAmplification,
    Reconciliation,
    Sifting,
    Verification,
)

if TYPE_CHECKING:
    from .proxy import DelayProxy

__all__ = [
    "AliceSession",
    "BobSession",
    "Channel",
    "Delay",
    "DelayProxy",
    "DelayedChannel",
    "Detections",
    "Distilled",
    "Estimation",
    "FiniteKeyLength",
    "InProcessChannel",
    "KeyPool",
    "LdpcReconciliation",
    "LinkModel",
    "Params",
    "PrivacyAmplification",
    "Reconciliation",
    "Records",
    "Report",
    "Sealer",
    "SecureLength",
    "Sifting",
    "SimulatedLink",
    "TcpChannel",
    "Verification",
    "WegmanCarterSealer",
    "delayed",
    "detection_frames",
    "distill",
    "read_detections",
    "serve_tcp",
]


# Submodules served as attributes on first use (``qitcore.qkd.ldpc.plan`` after ``import
# qitcore``), as the documentation names them; those the package imports are attributes already.
_SUBMODULES = frozenset(
    {"auth", "channel", "delay", "device", "keypool", "ldpc", "link", "proxy", "records", "session", "stages"}
)


def __getattr__(name: str) -> Any:
    # The proxy needs asyncio, which a session without it need not import.
    if name == "DelayProxy":
        from .proxy import DelayProxy

        return DelayProxy
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public names (DelayProxy, served on first use, included) and the submodules loaded,
    # not the helpers this module imports (os, dataclass, typing's names).
    submodules = {k for k, v in globals().items() if getattr(v, "__name__", "").startswith(f"{__name__}.")}
    return sorted(set(__all__) | {k for k in submodules if not k.startswith("_")})


@dataclass(frozen=True, repr=False)
class Distilled:
    """Both ends' keys (equal, ``report.key_bits`` bits each) and the report."""

    alice_key: bytes
    bob_key: bytes
    report: Report

    def __repr__(self) -> str:
        return f"Distilled(key_bits={self.report.key_bits}, keys=<hidden>)"


ChannelFactory = Callable[[AuthKey, Endpoint], Channel]


def distill(
    alice_records: Records,
    bob_records: Records,
    channel: ChannelFactory = InProcessChannel,
    *,
    params: Params | None = None,
    auth_key: bytes | tuple[KeyPool, KeyPool] | None = None,
) -> Distilled:
    """Distills a key from both ends' records, both ends in this process.

    Args:
        alice_records: Alice's records (with intensity labels).
        bob_records: Bob's records.
        channel: makes Bob's channel from the authentication key and Alice's endpoint; the
            default hands frames directly to Alice (``functools.partial(InProcessChannel,
            tamper=...)`` injects faults).
        params: the session's parameters (defaults: :class:`Params`).
        auth_key: the pre-shared authentication key for HMAC-SHA256 (default: 32 fresh bytes
            from the OS), or Alice's and Bob's key pools ``(alice_pool, bob_pool)`` for
            Wegman–Carter (two files of identical content; the session consumes from both and
            replenishes both from the key, see :mod:`qitcore.qkd.session`).

    Returns:
        :class:`Distilled`. A secure length of 0 gives empty keys and a report saying why.

    Raises:
        InvalidArgumentError, InvalidLengthError: bad records or parameters.
        QkdError: the session failed (see :meth:`BobSession.run`); no key material is returned.
    """
    params = Params() if params is None else params
    if not isinstance(params, Params):
        raise InvalidTypeError(f"params: expected Params, got {type(params).__name__}")
    auth_key = os.urandom(32) if auth_key is None else auth_key
    alice_auth: AuthKey
    bob_auth: AuthKey
    if isinstance(auth_key, KeyPool):
        raise InvalidArgumentError("auth_key: one KeyPool for both ends; pass (alice_pool, bob_pool)")
    if isinstance(auth_key, tuple):
        if len(auth_key) != 2 or not all(isinstance(p, KeyPool) for p in auth_key):
            raise InvalidArgumentError("auth_key: expected bytes or a pair (alice_pool, bob_pool) of KeyPool")
        if auth_key[0] is auth_key[1]:
            raise InvalidArgumentError("auth_key: Alice and Bob need a pool each, not the same one")
        alice_auth, bob_auth = auth_key
    else:
        alice_auth = bob_auth = auth_key
    alice = AliceSession(alice_records, params, alice_auth)
    with channel(bob_auth, alice) as bob_channel:
        bob_key, report = BobSession(bob_records, params, bob_channel).run()
    alice_key, _ = alice.result()
    return Distilled(alice_key, bob_key, report)
