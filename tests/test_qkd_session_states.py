"""Alice's session follows its state table: Bob's messages of a legal run, replayed, finish it;
a message out of its turn ends it with AuthenticationError, sealed back to Bob as an ERROR reply
(never an AssertionError); once over, it refuses every frame. Bob tells Alice why he aborts, but
not when the failure was hers, nor over a channel that failed."""

from __future__ import annotations

import json

import pytest
from qitcore import qkd
from qitcore.errors import AuthenticationError, ChannelClosed, QkdAbort
from qitcore.qkd.session import (
    AMPLIFY,
    CASCADE,
    CASCADE_START,
    DONE,
    ERROR,
    ESTIMATE,
    HELLO,
    REPLY,
    SIFT,
    VERIFY,
    State,
)

from .handshake import bob_sealer
from .recording_channel import Message, RecordingChannel

KEY = b"q" * 32


class _Bob:
    """Bob's end by hand: seals each message for a fresh Alice and opens her reply."""

    def __init__(self, link: qkd.SimulatedLink) -> None:
        self.alice = qkd.AliceSession(link.alice, qkd.Params(), KEY)
        self._sealer = bob_sealer(self.alice, KEY)

    def frame(self, kind: int, payload: bytes = b"") -> bytes:
        return self._sealer.seal(kind, payload)

    def send(self, kind: int, payload: bytes = b"") -> Message:
        return self._sealer.open(self.alice.handle_frame(self.frame(kind, payload)))

    def replay(self, messages: list[Message]) -> None:
        for kind, payload in messages:
            assert self.send(kind, payload)[0] == REPLY | kind


@pytest.fixture(scope="module")
def link() -> qkd.SimulatedLink:
    return qkd.LinkModel(distance_km=10).simulate(1_000_000, seed=5)


@pytest.fixture(scope="module")
def recorded(link: qkd.SimulatedLink) -> tuple[list[Message], bytes]:
    """Bob's messages in a legal run, and his key."""
    alice = qkd.AliceSession(link.alice, qkd.Params(), KEY)
    channel = RecordingChannel(KEY, alice)
    with channel:
        bob_key, _ = qkd.BobSession(link.bob, qkd.Params(), channel).run()
    return channel.sent, bob_key


def _through(messages: list[Message], last: int | None) -> list[Message]:
    """The messages up to the first of kind ``last`` (none when ``last`` is None)."""
    if last is None:
        return []
    return messages[: [kind for kind, _ in messages].index(last) + 1]


def test_a_legal_run_replayed_finishes_with_bobs_key(
    link: qkd.SimulatedLink, recorded: tuple[list[Message], bytes]
) -> None:
    messages, bob_key = recorded
    assert [k for k, _ in messages if k != CASCADE] == [HELLO, SIFT, ESTIMATE, CASCADE_START, VERIFY, AMPLIFY, DONE]
    bob = _Bob(link)
    assert repr(bob.alice) == "AliceSession(expecting HELLO)"
    bob.replay(messages)
    assert bob.alice.state is State.FINISHED and bob.alice.finished and bob.alice.error is None
    assert bob.alice.result()[0] == bob_key


@pytest.mark.parametrize(
    "after, kind, message",
    [
        (None, SIFT, "SIFT message where HELLO was due"),
        (None, 0x42, "66 message where HELLO was due"),
        (HELLO, HELLO, "HELLO message where SIFT was due"),
        (HELLO, ESTIMATE, "ESTIMATE message where SIFT was due"),
        (SIFT, CASCADE, "CASCADE message where ESTIMATE was due"),
        (ESTIMATE, VERIFY, "VERIFY message where CASCADE_START or LDPC was due"),
        (CASCADE_START, AMPLIFY, "AMPLIFY message where CASCADE or VERIFY was due"),
        (CASCADE, DONE, "DONE message where CASCADE or VERIFY was due"),
        (VERIFY, CASCADE, "CASCADE message where AMPLIFY was due"),
        (AMPLIFY, VERIFY, "VERIFY message where DONE was due"),
    ],
)
def test_a_message_out_of_turn_ends_alices_session(
    link: qkd.SimulatedLink, recorded: tuple[list[Message], bytes], after: int | None, kind: int, message: str
) -> None:
    bob = _Bob(link)
    done = _through(recorded[0], after)
    bob.replay(done)
    reply_kind, reply = bob.send(kind)
    assert reply_kind == ERROR and json.loads(reply) == {"error": "AuthenticationError", "message": message}
    alice = bob.alice
    assert alice.state is State.FAILED and repr(alice) == "AliceSession(failed)"
    assert isinstance(alice.error, AuthenticationError) and str(alice.error) == message
    with pytest.raises(AuthenticationError, match=message):
        alice.result()
    # Over: every later frame is refused with the same error, the next legal message too.
    following = bob.frame(*recorded[0][len(done)])
    assert not alice.authentic(following)
    with pytest.raises(AuthenticationError, match=message):
        alice.handle_frame(following)


def test_a_finished_session_refuses_more_messages_and_keeps_its_key(
    link: qkd.SimulatedLink, recorded: tuple[list[Message], bytes]
) -> None:
    messages, bob_key = recorded
    bob = _Bob(link)
    bob.replay(messages)
    for kind in (DONE, HELLO, ERROR):
        with pytest.raises(QkdAbort, match="the session is over"):
            bob.alice.handle_frame(bob.frame(kind))
    assert bob.alice.finished and bob.alice.result()[0] == bob_key


def test_bobs_error_message_ends_alices_session_in_any_state(
    link: qkd.SimulatedLink, recorded: tuple[list[Message], bytes]
) -> None:
    for last in (None, SIFT, CASCADE, AMPLIFY):
        bob = _Bob(link)
        bob.replay(_through(recorded[0], last))
        reply_kind, reply = bob.send(ERROR, b"out of paper")
        assert reply_kind == ERROR and json.loads(reply)["message"] == "Bob aborted: out of paper"
        with pytest.raises(QkdAbort, match="Bob aborted: out of paper"):
            bob.alice.result()


def test_bob_tells_alice_of_his_failures_only(link: qkd.SimulatedLink, monkeypatch: pytest.MonkeyPatch) -> None:
    # Alice refuses Bob's parameters: she has ended already, so Bob sends nothing more.
    alice = qkd.AliceSession(link.alice, qkd.Params(eps_sec=1e-9), KEY)
    channel = RecordingChannel(KEY, alice)
    with channel, pytest.raises(QkdAbort, match="Alice: parameters differ"):
        qkd.BobSession(link.bob, qkd.Params(), channel).run()
    assert [kind for kind, _ in channel.sent] == [HELLO]

    # Bob fails on his own: he tells Alice why, and she ends too.
    def failing(*args: object) -> object:
        raise QkdAbort("Bob's Cascade broke")

    monkeypatch.setattr(qkd.Reconciliation, "correct", failing)
    alice = qkd.AliceSession(link.alice, qkd.Params(), KEY)
    channel = RecordingChannel(KEY, alice)
    with channel, pytest.raises(QkdAbort, match="^Bob's Cascade broke$"):
        qkd.BobSession(link.bob, qkd.Params(), channel).run()
    assert channel.sent[-1] == (ERROR, b"Bob's Cascade broke")
    with pytest.raises(QkdAbort, match="Bob aborted: Bob's Cascade broke"):
        alice.result()


def test_bob_tells_alice_of_her_malformed_replies_but_not_of_a_failed_channel(link: qkd.SimulatedLink) -> None:
    """A reply that arrived authentic but malformed leaves the channel working: Bob tells Alice
    (she would otherwise wait for his next message until her timeout). A channel that failed
    (a reply lost) gets no ERROR: it would not arrive, and its wait would delay Bob's error."""
    alice = qkd.AliceSession(link.alice, qkd.Params(), KEY)
    alice._handlers[SIFT] = lambda payload: b"\x00"  # her sifting reply, cut short
    channel = RecordingChannel(KEY, alice)
    with channel, pytest.raises(AuthenticationError, match="^malformed sifting reply message"):
        qkd.BobSession(link.bob, qkd.Params(), channel).run()
    assert [kind for kind, _ in channel.sent] == [HELLO, SIFT, ERROR]
    with pytest.raises(QkdAbort, match="^Bob aborted: malformed sifting reply message"):
        alice.result()

    def lose_the_sifting_reply(direction: str, frame: bytes) -> bytes | None:
        return None if direction == "to_bob" and len(channel.sent) == 2 else frame

    alice = qkd.AliceSession(link.alice, qkd.Params(), KEY)
    channel = RecordingChannel(KEY, alice, tamper=lose_the_sifting_reply)
    with channel, pytest.raises(ChannelClosed, match="message to bob lost"):
        qkd.BobSession(link.bob, qkd.Params(), channel).run()
    assert [kind for kind, _ in channel.sent] == [HELLO, SIFT]


def test_sifted_data_never_shows_its_key_bits() -> None:
    import numpy as np
    from qitcore.qkd.stages import Sifted

    key = np.array([1, 0, 1, 1, 0, 0, 1, 0] * 4, dtype=np.uint8)
    s = Sifted(key, np.zeros(32, np.uint8), key[:8], np.zeros(8, np.uint8))
    assert repr(s) == "Sifted(key=<32 bits hidden>, test=<8 bits>)"
    assert "1, 0" not in repr(s) and "1 0" not in repr(s)
