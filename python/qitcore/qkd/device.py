"""Detection records from QKD hardware over QDP/1 (``firmware_interface/PROTOCOL.md``, §3a).

A QKD transmitter or receiver streams its records in DETECTIONS frames (type ``0x04``) beside the
protocol's other frames; :func:`read_detections` turns such a byte stream into :class:`Records`,
and :func:`detection_frames` writes records as a device would (for simulators and tests).
A lost or corrupted frame is a gap in the sequence numbers: by default it is an error, since a
missing record would make the two ends' records disagree.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _core
from ..errors import ProtocolError, ReplayedFrameError, SequenceGapError
from .records import Records

__all__ = ["DETECTIONS", "detection_frames", "read_detections"]

DETECTIONS = 0x04
HEADER = struct.Struct("<HBBQ")
TRANSMITTER, RECEIVER = 0, 1
MAX_PAYLOAD = 8192


def _payload(records: Records, lo: int, hi: int, role: int) -> bytes:
    index = records.index[lo:hi]
    first = int(index[0])
    gaps = _core.encode_pulse_numbers((index - np.uint64(first)).astype("<u8").view(np.uint8))
    labels = records.basis[lo:hi] | records.bit[lo:hi] << 1
    if role == TRANSMITTER and records.intensity is not None:
        labels = labels | records.intensity[lo:hi] << 2
    return HEADER.pack(hi - lo, 0, role, first) + gaps + labels.astype(np.uint8).tobytes()


def detection_frames(records: Records, *, first_sequence: int = 0, per_frame: int = 1000) -> bytes:
    """``records`` as a device's stream of DETECTIONS frames (the transmitter's form when the
    records carry intensities), numbered from ``first_sequence``."""
    role = TRANSMITTER if records.intensity is not None else RECEIVER
    frames, sequence = [], first_sequence
    for lo in range(0, len(records), per_frame):
        payload = _payload(records, lo, min(lo + per_frame, len(records)), role)
        if len(payload) > MAX_PAYLOAD:
            raise ProtocolError(f"per_frame={per_frame}: a frame of {len(payload)} bytes exceeds 8192")
        frames.append(_core.encode_frame(DETECTIONS, sequence & 0xFFFFFFFF, payload))
        sequence += 1
    return b"".join(frames)


def _parse(payload: bytes) -> tuple[int, np.ndarray, np.ndarray]:
    try:
        n, flags, role, first = HEADER.unpack_from(payload)
    except struct.error:
        raise ProtocolError("DETECTIONS payload shorter than its header") from None
    if role not in (TRANSMITTER, RECEIVER) or flags & ~0x02:
        raise ProtocolError(f"DETECTIONS header with role {role}, flags {flags:#x}")
    if len(payload) < HEADER.size + 2 * n:
        raise ProtocolError(f"DETECTIONS payload of {len(payload)} bytes for {n} records")
    labels = np.frombuffer(payload, np.uint8, n, len(payload) - n)
    offsets = np.frombuffer(_core.decode_pulse_numbers(payload[HEADER.size : len(payload) - n]), "<u8")
    if len(offsets) != n:
        raise ProtocolError(f"DETECTIONS payload: {len(offsets)} pulse numbers for {n} records")
    reserved = 0xF0 if role == TRANSMITTER else 0xFC
    if (labels & reserved).any() or (role == TRANSMITTER and ((labels >> 2) & 3).max(initial=0) > 2):
        raise ProtocolError("DETECTIONS record with reserved label bits set or an unknown intensity")
    return role, np.uint64(first) + offsets.astype(np.uint64), labels


NO_FRAME_LIMIT = 16 << 20
"""Bytes :func:`read_detections` reads without finding a frame before it gives up (a capture starts
with a frame; /dev/zero or a wrong file never gives one)."""


def read_detections(stream: bytes | Iterable[bytes], *, gap_policy: str = "error") -> Records:
    """The records carried by the DETECTIONS frames of a QDP/1 byte stream (other frames are
    skipped).

    Args:
        stream: the bytes, or an iterable of chunks as read from a port.
        gap_policy: ``"error"`` raises :class:`SequenceGapError` at the first lost frame;
            ``"count"`` keeps what arrived.

    Raises:
        SequenceGapError: frames were lost or corrupted (``gap_policy="error"``).
        ProtocolError: a malformed DETECTIONS payload, another protocol version, records of both
            roles, or pulse numbers that do not increase across frames.
    """
    if gap_policy not in ("error", "count"):
        raise ProtocolError(f'gap_policy: expected "error" or "count", got {gap_policy!r}')
    decoder = _core.FrameDecoder()
    chunks = [stream] if isinstance(stream, (bytes, bytearray, memoryview)) else stream
    roles, index, labels = set(), [], []
    unframed = 0  # bytes read before the first frame: an endless stream of noise must end
    for chunk in chunks:
        events = decoder.feed(chunk)
        if unframed >= 0:
            unframed = -1 if events else unframed + len(chunk)
            if unframed > NO_FRAME_LIMIT:
                raise ProtocolError(f"no QDP/1 frame in the first {NO_FRAME_LIMIT >> 20} MiB: not a device capture")
        for event in events:
            if event[0] == "version":
                raise ProtocolError(f"the device speaks QDP version {event[1]}, not 1")
            if event[0] == "gap":
                if gap_policy == "error":
                    _, expected, received, lost = event
                    raise SequenceGapError(f"{lost} frame(s) lost before frame {received}", expected, received, lost)
                continue
            if event[0] == "replay":  # a frame that does not advance: its records are never used
                if gap_policy == "error":
                    _, last, received = event
                    raise ReplayedFrameError(f"frame {received} replayed after frame {last}", last, received)
                continue
            if event[1] == DETECTIONS:
                role, numbers, marks = _parse(event[3])
                roles.add(role)
                index.append(numbers)
                labels.append(marks)
    if len(roles) > 1:
        raise ProtocolError("the stream mixes transmitter and receiver records")
    all_labels = np.concatenate(labels) if labels else np.zeros(0, np.uint8)
    all_index = np.concatenate(index) if index else np.zeros(0, np.uint64)

    def column(shift: int, mask: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
        return ((all_labels >> shift) & mask).astype(np.uint8, copy=False)

    intensity = column(2, 3) if roles == {TRANSMITTER} else None
    try:
        return Records(all_index, column(0, 1), column(1, 1), intensity)
    except ValueError as exc:
        raise ProtocolError(f"DETECTIONS records: {exc}") from None
