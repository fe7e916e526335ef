"""Detection records over QDP/1 (PROTOCOL.md §3a): the spec's example byte for byte, round trips
of simulated records, lost and damaged frames, and distillation from the decoded streams."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from qitcore import _core, qkd
from qitcore.errors import ProtocolError, SequenceGapError
from qitcore.qkd.device import DETECTIONS, detection_frames, read_detections

SPEC_EXAMPLE = bytes.fromhex("030000010500000000000000000002020102")


def test_the_specs_example_decodes_as_written() -> None:
    records = read_detections(_core.encode_frame(DETECTIONS, 0, SPEC_EXAMPLE))
    assert records.index.tolist() == [5, 6, 9] and records.intensity is None
    assert records.basis.tolist() == [0, 1, 0] and records.bit.tolist() == [1, 0, 1]
    receiver = qkd.Records(np.array([5, 6, 9]), np.array([0, 1, 0]), np.array([1, 0, 1]))
    assert detection_frames(receiver) == _core.encode_frame(DETECTIONS, 0, SPEC_EXAMPLE)


@pytest.fixture(scope="module")
def link() -> qkd.SimulatedLink:
    return qkd.LinkModel(distance_km=10).simulate(20_000_000, seed=8)


def test_records_survive_the_device_stream_and_distil(link: qkd.SimulatedLink) -> None:
    alice_stream = detection_frames(link.alice, first_sequence=0xFFFFFFF0)  # wraps around
    bob_stream = detection_frames(link.bob, per_frame=700)
    # Fed in odd-sized chunks, with other frame types interleaved, as read from a port.
    noise = _core.encode_frame(0x02, 0, b"\x00" * 16)
    chunks = [bob_stream[i : i + 4093] for i in range(0, len(bob_stream), 4093)]
    alice = read_detections(alice_stream)
    bob = read_detections(chunks)
    for got, want in ((alice, link.alice), (bob, link.bob)):
        for column in ("index", "basis", "bit", "intensity"):
            a, b = getattr(got, column), getattr(want, column)
            assert (a is None and b is None) or np.array_equal(a, b), column
    assert len(read_detections([noise, bob_stream[:0]])) == 0
    result = qkd.distill(alice, bob)
    assert result.alice_key == result.bob_key and result.report.key_bits > 0


def test_a_lost_or_corrupted_frame_is_an_error_by_default(link: qkd.SimulatedLink) -> None:
    small = qkd.Records(link.bob.index[:5000], link.bob.basis[:5000], link.bob.bit[:5000])
    stream = detection_frames(small, per_frame=1000)
    frames = []
    decoder = _core.FrameDecoder()
    for event in decoder.feed(stream):
        frames.append(_core.encode_frame(event[1], event[2], event[3]))
    dropped = b"".join(frames[:2] + frames[3:])
    with pytest.raises(SequenceGapError) as info:
        read_detections(dropped)
    assert info.value.lost == 1
    assert len(read_detections(dropped, gap_policy="count")) == 4000
    corrupted = bytearray(stream)
    corrupted[len(frames[0]) + 30] ^= 0x40
    with pytest.raises(SequenceGapError):
        read_detections(bytes(corrupted))


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\x01\x00", "shorter"),
        (bytes.fromhex("030000010500000000000000" + "800000" + "020102"), "2 pulse numbers for 3"),
        (bytes.fromhex("01000002" + "00" * 8 + "00" + "00"), "role 2"),
        (bytes.fromhex("01000001" + "00" * 8 + "00" + "10"), "reserved"),
        (bytes.fromhex("01000000" + "00" * 8 + "00" + "0c"), "intensity"),
    ],
)
def test_malformed_payloads_are_refused(payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        read_detections(_core.encode_frame(DETECTIONS, 0, payload))


def test_pulse_numbers_must_increase_across_frames() -> None:
    a = _core.encode_frame(DETECTIONS, 0, SPEC_EXAMPLE)
    with pytest.raises(ProtocolError, match="increasing"):
        read_detections(a + _core.encode_frame(DETECTIONS, 1, SPEC_EXAMPLE))


def test_an_endless_stream_without_frames_is_refused_not_read_forever() -> None:
    """/dev/zero, or any stream that never carries a frame, ends with a clear error once more bytes
    than a capture could hold before its first frame have been read (review F4)."""
    import itertools

    from qitcore.qkd.device import NO_FRAME_LIMIT

    read = 0

    def zeros() -> Iterator[bytes]:
        nonlocal read
        for _ in itertools.count():
            read += 1 << 20
            yield bytes(1 << 20)

    with pytest.raises(ProtocolError, match="no QDP/1 frame in the first 16 MiB"):
        read_detections(zeros())
    assert NO_FRAME_LIMIT < read <= NO_FRAME_LIMIT + (2 << 20)
    # From the command line (`--records /dev/zero`): tests/test_cli.py.
