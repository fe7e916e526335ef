"""An in-process channel that keeps every message Bob sends, to replay them to another Alice."""

from __future__ import annotations

from qitcore import qkd
from qitcore.qkd.channel import AuthKey, InProcessChannel, Tamper

Message = tuple[int, bytes]


class RecordingChannel(InProcessChannel):
    """:class:`InProcessChannel` that keeps Bob's messages (kind and payload) in :attr:`sent`."""

    def __init__(self, auth_key: AuthKey, endpoint: qkd.AliceSession, *, tamper: Tamper | None = None) -> None:
        super().__init__(auth_key, endpoint, tamper=tamper)
        self.sent: list[Message] = []

    def request(self, kind: int, payload: bytes) -> tuple[int, bytes]:
        self.sent.append((kind, payload))
        return super().request(kind, payload)
