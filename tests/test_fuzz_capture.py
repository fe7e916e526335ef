"""Fuzzing ``file://`` captures: valid QDP/1 frames mixed with garbage, truncated frames, flipped
bits, replays, reorderings, frames of another version and headers with huge length fields, read
through ``qitcore.open_raw`` and ``qitcore.open``.

The reference is a plain Python reading of PROTOCOL.md §1.3-1.4 (scan for the magic, check the
length, then the CRC, discard one byte on any failure; the window rule for sequence numbers),
with the CRC-32C and the frame layout of the golden vectors' own generator. Every outcome must
be bytes or a ``QitError``; raw samples are exactly those of the frames the reference accepts, in
order, so nothing of a corrupted or replayed frame is ever used; extracted output equals that of
a clean capture of the accepted frames alone."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path
from typing import Any

import qitcore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qitcore.errors import ProtocolError, QitError, ReplayedFrameError, SequenceGapError
from qitcore.extract import Toeplitz

from .fuzzing import examples

ROOT = Path(__file__).resolve().parents[1] / "firmware_interface"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("make_golden_vectors", ROOT / "make_golden_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GOLDEN = _generator()
MAGIC = b"\xa5\x51"
DATA = 0x01


def data_frame(sequence: int, samples: bytes, version: int = 1) -> bytes:
    payload = struct.pack("<HBB", len(samples), 0, 0) + samples
    frame = GOLDEN.frame(DATA, sequence % 2**32, payload)
    if version != 1:
        body = bytes([version]) + frame[3:-4]
        frame = MAGIC + body + struct.pack("<I", GOLDEN.crc32c(body))
    return bytes(frame)


def reference(stream: bytes) -> list[tuple[str, Any]]:
    """The events a host must see in ``stream``: ("samples", bytes), ("gap", lost), ("replay",
    None), ("version", v), in order."""
    events: list[tuple[str, Any]] = []
    at, expected = 0, None
    while at < len(stream):
        if stream[at] != 0xA5:
            at += 1
            continue
        if at + 2 > len(stream):
            break  # a magic byte at the very end: could begin a frame
        if stream[at + 1] != 0x51:
            at += 1
            continue
        if at + 10 > len(stream):
            break
        length = stream[at + 8] | stream[at + 9] << 8
        if length > 8192:
            at += 1
            continue
        total = 14 + length
        if at + total > len(stream):
            break  # waits for bytes that never come
        frame = stream[at : at + total]
        if GOLDEN.crc32c(frame[2:-4]) != int.from_bytes(frame[-4:], "little"):
            at += 1
            continue
        at += total
        if frame[2] != 1:
            events.append(("version", frame[2]))
            continue
        sequence = int.from_bytes(frame[4:8], "little")
        if expected is not None:
            ahead = (sequence - expected) % 2**32
            if ahead >= 2**31:
                events.append(("replay", None))
                continue
            if ahead:
                events.append(("gap", ahead))
        expected = (sequence + 1) % 2**32
        count = int.from_bytes(frame[10:12], "little")
        events.append(("samples", frame[14 : 14 + count]))
    return events


@st.composite
def captures(draw: st.DrawFn) -> bytes:
    """Frames in order, then damaged: garbage, replays, swaps, truncations, another version,
    huge or lying length fields, bit flips."""
    first = draw(st.integers(0, 2**32 - 1))
    payloads = draw(st.lists(st.binary(min_size=0, max_size=120), min_size=1, max_size=10))
    pieces = [data_frame(first + i, p) for i, p in enumerate(payloads)]
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["garbage", "replay", "swap", "truncate", "version", "huge", "liar"]))
        at = draw(st.integers(0, len(pieces)))
        if op == "garbage":
            junk = draw(st.binary(max_size=40)) + draw(st.sampled_from([b"", MAGIC, b"\xa5", MAGIC + b"\x01\x01"]))
            pieces.insert(at, junk)
        elif op == "replay" and at > 0:
            pieces.insert(at, pieces[draw(st.integers(0, at - 1))])
        elif op == "swap" and at + 1 < len(pieces):
            pieces[at], pieces[at + 1] = pieces[at + 1], pieces[at]
        elif op == "truncate" and at < len(pieces) and pieces[at]:
            pieces[at] = pieces[at][: draw(st.integers(0, len(pieces[at]) - 1))]
        elif op == "version":
            pieces.insert(at, data_frame(first + at, draw(st.binary(max_size=20)), draw(st.integers(2, 255))))
        elif op == "huge":  # a header whose length field is past the protocol's limit
            length = draw(st.integers(8193, 65535))
            pieces.insert(
                at, MAGIC + struct.pack("<BBIH", 1, DATA, (first + at) % 2**32, length) + draw(st.binary(max_size=30))
            )
        elif op == "liar":  # a length within the limit, with far fewer bytes behind it
            length = draw(st.integers(0, 8192))
            pieces.insert(at, MAGIC + struct.pack("<BBIH", 1, DATA, (first + at) % 2**32, length))
    stream = bytearray(b"".join(pieces))
    for _ in range(draw(st.integers(0, 3))):
        if stream:
            i = draw(st.integers(0, len(stream) - 1))
            stream[i] ^= draw(st.integers(1, 255))
    return bytes(stream)


def _drain(stream: Any) -> tuple[bytes, type[BaseException] | None]:
    """Everything the stream gives, then the failure that ended it (None at a clean end)."""
    with stream as s:
        try:
            data = s.read(10**9, timeout=30)
        except QitError as exc:  # failed before any byte
            return b"", type(exc)
        try:
            tail = s.read(1, timeout=30)
        except QitError as exc:
            return data, type(exc)
        assert tail == b""
        return data, None


def _read_raw(url: str, **options: Any) -> tuple[bytes, type[BaseException] | None]:
    """All raw samples (one a byte), then the failure that ended them."""
    return _drain(qitcore.open_raw(url, **options))


def _read(url: str, **options: Any) -> tuple[bytes, type[BaseException] | None]:
    """All extracted bytes, then the failure that ended them."""
    return _drain(qitcore.open(url, **options))


def _write(folder: Path, name: str, data: bytes) -> str:
    path = folder / name
    path.write_bytes(data)
    return f"file://{path}"


FUZZ = settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(stream=captures())
def test_fuzz_raw_samples_are_exactly_those_of_the_accepted_frames(tmp_path: Path, stream: bytes) -> None:
    url = _write(tmp_path, "capture.qdp", stream)
    events = reference(stream)
    # Counted gaps and replays: the samples of every accepted frame, up to another version.
    expect, failure = b"", None
    for kind, value in events:
        if kind == "version":
            failure = ProtocolError
            break
        if kind == "samples":
            expect += value
    data, error = _read_raw(url)
    assert data == expect
    assert error is failure or (failure is not None and error is not None and issubclass(error, failure))
    # Gaps and replays as errors: everything before the first.
    expect, failure = b"", None
    for kind, value in events:
        if kind != "samples":
            failure = {"version": ProtocolError, "gap": SequenceGapError, "replay": ReplayedFrameError}[kind]
            break
        expect += value
    data, error = _read_raw(url, gap_policy="error")
    assert data == expect
    if failure is None:
        assert error is None
    else:
        assert error is not None and issubclass(error, failure)
        assert failure is not SequenceGapError or error is SequenceGapError  # a gap is not called a replay


@FUZZ
@given(stream=captures())
def test_fuzz_extracted_output_is_that_of_the_accepted_frames_alone(tmp_path: Path, stream: bytes) -> None:
    # A small block and no start-up period, so that a few frames already give output.
    options = dict(min_entropy=4.0, block_bits=256, epsilon=2.0**-8, startup_samples=0, extractor_seed=SEED)
    messy = _read(_write(tmp_path, "capture.qdp", stream), **options)
    # The clean capture: the accepted frames (and any other version's, where they stood),
    # renumbered in order with the same gaps.
    clean, number = [], 0
    for kind, value in reference(stream):
        if kind == "samples":
            clean.append(data_frame(number, value))
            number += 1
        elif kind == "gap":
            number += value
        elif kind == "version":
            clean.append(data_frame(number, b"", value))
    assert messy == _read(_write(tmp_path, "clean.qdp", b"".join(clean)), **options)
    _, error = messy
    assert error is None or issubclass(error, QitError)


def _seed() -> bytes:
    with qitcore.open("sim://", min_entropy=4.0, block_bits=256, epsilon=2.0**-8) as probe:
        n, m = probe.block_shape
    return Toeplitz(n, m).seed_bytes()


SEED = _seed()
