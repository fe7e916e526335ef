"""Bob's sealer for driving an Alice session by hand: bound to a fresh handshake with her, as
every channel binds its own (see ``AliceSession.challenge``)."""

from __future__ import annotations

import os

from qitcore import qkd
from qitcore.qkd.channel import NONCE_BYTES


def bob_sealer(alice: qkd.AliceSession, key: bytes) -> qkd.Sealer:
    """An HMAC sealer of Bob's whose session ``alice`` has bound with her challenge."""
    sealer = qkd.Sealer(key, is_alice=False)
    nonce = os.urandom(NONCE_BYTES)
    sealer.bind(alice.challenge(nonce) + nonce)
    return sealer
