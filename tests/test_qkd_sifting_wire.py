"""The sifting reply of session protocol ``qitcore-bb84/2`` and the refusal of other versions.

Alice's reply holds her bases for Bob's pulses, packed eight to a byte, then the intensity labels
of the pulses where the bases agree, two bits each, four to a byte, the first in the top bits.
The reference is a by-hand reading of that description with numpy; a reply that breaks it (a
label of 3, padding bits set, a byte too many or too few) is refused by Bob. An end that speaks
another protocol version is refused at HELLO with both versions named.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
from qitcore import qkd
from qitcore.errors import AuthenticationError
from qitcore.qkd.session import ERROR, HELLO, PROTOCOL, REPLY
from qitcore.qkd.stages import Sifting

from .handshake import bob_sealer

KEY = b"w" * 32


@pytest.fixture(scope="module")
def link() -> qkd.SimulatedLink:
    return qkd.LinkModel(distance_km=10).simulate(300_000, seed=11)


def _reference_reply(alice: qkd.Records, bob: qkd.Records) -> bytes:
    rows = np.searchsorted(alice.index, bob.index)
    assert (alice.index[rows] == bob.index).all()
    alice_bases = alice.basis[rows]
    assert alice.intensity is not None
    labels = alice.intensity[rows][alice_bases == bob.basis].astype(np.uint8)
    padded = np.zeros(-(-len(labels) // 4) * 4, np.uint8)
    padded[: len(labels)] = labels
    quads = padded.reshape(-1, 4)
    packed = (quads[:, 0] << 6) | (quads[:, 1] << 4) | (quads[:, 2] << 2) | quads[:, 3]
    return np.packbits(alice_bases).tobytes() + packed.astype(np.uint8).tobytes()


def test_the_reply_packs_labels_two_bits_each(link: qkd.SimulatedLink) -> None:
    reply, sifted, n = Sifting.answer(link.alice, Sifting.announce(link.bob))
    assert n == len(link.bob)
    assert reply == _reference_reply(link.alice, link.bob)
    matched = len(sifted.key) + len(sifted.test)
    assert len(reply) == -(-n // 8) + -(-matched // 4)
    bob = Sifting.conclude(link.bob, reply)
    assert (bob.key_intensity == sifted.key_intensity).all()
    assert (bob.test_intensity == sifted.test_intensity).all()


def test_a_reply_that_breaks_the_packing_is_refused(link: qkd.SimulatedLink) -> None:
    reply = bytearray(_reference_reply(link.alice, link.bob))
    bases = -(-len(link.bob) // 8)
    rows = np.searchsorted(link.alice.index, link.bob.index)
    matched = int((link.alice.basis[rows] == link.bob.basis).sum())
    assert matched % 4, "this link's last label byte has no padding to test"
    three = bytearray(reply)
    three[bases] |= 0b1100_0000  # the first label set to 3, which names no intensity
    padded = bytearray(reply)
    padded[-1] |= 1  # a padding bit of the last byte
    bad = [bytes(reply[:-1]), bytes(reply) + b"\0", bytes(three), bytes(padded)]
    for wrong in bad:
        with pytest.raises(AuthenticationError, match="malformed sifting reply"):
            Sifting.conclude(link.bob, wrong)


def test_an_end_speaking_another_version_is_refused_by_name(link: qkd.SimulatedLink) -> None:
    assert PROTOCOL == "qitcore-bb84/6"
    alice = qkd.AliceSession(link.alice, qkd.Params(), KEY)
    bob = bob_sealer(alice, KEY)
    old = json.dumps({"protocol": "qitcore-bb84/1", **asdict(qkd.Params())}, sort_keys=True).encode()
    kind, reply = bob.open(alice.handle_frame(bob.seal(HELLO, old)))
    assert kind == ERROR
    detail = json.loads(reply)
    assert detail["error"] == "QkdAbort"
    assert "protocol versions differ: Bob speaks qitcore-bb84/1, Alice qitcore-bb84/6" in detail["message"]
    assert alice.error is not None

    # Not JSON at all: named as unknown. The same parameters at the same version are accepted.
    alice = qkd.AliceSession(link.alice, qkd.Params(), KEY)
    bob = bob_sealer(alice, KEY)
    kind, reply = bob.open(alice.handle_frame(bob.seal(HELLO, b"\xff not json")))
    assert kind == ERROR and "Bob speaks unknown" in json.loads(reply)["message"]
    alice = qkd.AliceSession(link.alice, qkd.Params(), KEY)
    bob = bob_sealer(alice, KEY)
    assert bob.open(alice.handle_frame(bob.seal(HELLO, qkd.Params().to_json()))) == (REPLY | HELLO, b"")


def test_long_messages_sift_in_halves_and_bob_counts_his_key_first() -> None:
    """Enough detections for Alice to sift two halves on two threads: her reply and key are still
    the by-hand ones. Bob's count of his key bits from the bases alone (made before he sifts, to
    start Cascade's shuffles) is his sifted key's length; a reply too short for the bases is
    refused by it as by the sifting."""
    model = qkd.LinkModel(distance_km=20, misalignment=0.02)
    link = model.simulate(model.pulses_for(100_000), seed=12)
    assert len(link.bob) > 2 * 65_536
    reply, sifted, _ = Sifting.answer(link.alice, Sifting.announce(link.bob))
    assert reply == _reference_reply(link.alice, link.bob)
    rows = np.searchsorted(link.alice.index, link.bob.index)
    key_basis = (link.alice.basis[rows] == 0) & (link.bob.basis == 0)
    assert (sifted.key == link.alice.bit[rows][key_basis]).all()
    bob = Sifting.conclude(link.bob, reply)
    assert Sifting.key_count(link.bob, reply) == len(bob.key) == int(key_basis.sum())
    with pytest.raises(AuthenticationError, match="malformed sifting reply"):
        Sifting.key_count(link.bob, reply[: len(link.bob) // 8 - 1])
