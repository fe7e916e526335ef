"""Replayed frames (PROTOCOL.md §1.3a) through ``file://`` captures: a frame whose sequence number
does not advance never delivers its samples, so a capture with frames repeated, replayed from the
past or reordered gives exactly the output of the capture the host should have accepted. The
reference for "should have accepted" is a plain Python reading of the window rule."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import qitcore
from qitcore import protocol
from qitcore.errors import ReplayedFrameError, SequenceGapError
from qitcore.extract import Toeplitz

PER_FRAME = 1000


def frame(sequence: int, samples: bytes) -> bytes:
    payload = len(samples).to_bytes(2, "little") + b"\0\0" + samples
    return protocol.encode_frame(protocol.DATA, sequence % 2**32, payload)


def accepted(sequences: list[int]) -> list[int]:
    """Positions of the frames the window rule accepts, written out plainly: the first frame
    sets the expectation; a number in the half of the circle from the expected one on is
    accepted (a gap if it skips any), one in the other half is a replay and changes nothing."""
    keep, expected = [], None
    for i, s in enumerate(sequences):
        if expected is None or (s - expected) % 2**32 < 2**31:
            keep.append(i)
            expected = (s + 1) % 2**32
    return keep


def capture(tmp_path: Path, name: str, frames: list[bytes]) -> str:
    path = tmp_path / name
    path.write_bytes(b"".join(frames))
    return f"file://{path}"


def output(url: str, seed: bytes, **options: object) -> tuple[bytes, dict[str, int]]:
    with qitcore.open(url, min_entropy=7.0, extractor_seed=seed, **options) as s:
        data = s.read(10**9)
        return data, s.stats().counters


@pytest.fixture(scope="module")
def seed() -> bytes:
    with qitcore.open("sim://", min_entropy=7.0) as probe:
        n, m = probe.block_shape
    return Toeplitz(n, m).seed_bytes()


def test_a_frame_repeated_300_times_is_used_once(tmp_path: Path, seed: bytes) -> None:
    samples = os.urandom(60 * PER_FRAME)
    frames = [frame(i, samples[i * PER_FRAME : (i + 1) * PER_FRAME]) for i in range(60)]
    clean, clean_stats = output(capture(tmp_path, "clean.qdp", frames), seed)
    replayed = [*frames[:20], *[frames[20]] * 300, *frames[21:]]
    out, stats = output(capture(tmp_path, "replayed.qdp", replayed), seed)
    assert len(clean) > 40_000 and out == clean
    assert stats["replays"] == 299 and stats["frames"] == 60 and stats["gaps"] == 0
    assert stats["samples_in"] == clean_stats["samples_in"] == len(samples)
    # Raw samples too: each sample once, in order.
    with qitcore.open_raw(capture(tmp_path, "replayed2.qdp", replayed)) as raw:
        assert raw.read_samples(10**9) == samples


@pytest.mark.parametrize("first", [0, 2**32 - 25])
def test_random_replays_and_reorders_give_the_output_of_the_frames_accepted(
    tmp_path: Path, seed: bytes, first: int
) -> None:
    rng = random.Random(first + 13)
    count = 50
    samples = os.urandom(count * PER_FRAME)
    sent = [(first + i, samples[i * PER_FRAME : (i + 1) * PER_FRAME]) for i in range(count)]
    # Replays of earlier frames at random points, then a few neighbours swapped.
    order = list(range(count))
    for _ in range(120):
        at = rng.randrange(1, len(order) + 1)
        order.insert(at, order[rng.randrange(at)])
    for _ in range(4):
        i = rng.randrange(len(order) - 1)
        order[i], order[i + 1] = order[i + 1], order[i]
    frames = [frame(*sent[i]) for i in order]
    keep = accepted([sent[i][0] % 2**32 for i in order])
    reference = [frames[k] for k in keep]
    # No frame is used twice, and the ones used keep their order.
    used = [order[k] for k in keep]
    assert used == sorted(set(used))
    out, stats = output(capture(tmp_path, "messy.qdp", frames), seed)
    expect, expect_stats = output(capture(tmp_path, "reference.qdp", reference), seed)
    assert out == expect and len(out) > 20_000
    assert stats["replays"] == len(frames) - len(keep) > 100
    assert (stats["frames"], stats["gaps"], stats["frames_lost"]) == (
        expect_stats["frames"],
        expect_stats["gaps"],
        expect_stats["frames_lost"],
    )
    with qitcore.open_raw(capture(tmp_path, "messy2.qdp", frames)) as raw:
        assert raw.read_samples(10**9) == b"".join(sent[i][1] for i in used)


def test_a_replay_raises_under_the_error_policy(tmp_path: Path, seed: bytes) -> None:
    samples = os.urandom(10 * PER_FRAME)
    frames = [frame(100 + i, samples[i * PER_FRAME : (i + 1) * PER_FRAME]) for i in range(10)]
    url = capture(tmp_path, "replayed.qdp", [*frames[:6], frames[3], *frames[6:]])
    with qitcore.open_raw(url, gap_policy="error") as raw:
        before = raw.read_samples(10**9)
        with pytest.raises(ReplayedFrameError) as info:
            raw.read_samples(1)
    # Everything before the replay came through; nothing of the replay or after it.
    assert before == samples[: 6 * PER_FRAME]
    e = info.value
    assert isinstance(e, SequenceGapError)
    assert (e.last, e.received, e.expected, e.lost) == (105, 103, 106, 0)
    assert "replayed" in str(e)
    # Counted, not raised, by default.
    with qitcore.open_raw(url) as raw:
        assert raw.read_samples(10**9) == samples
        assert raw.stats()["replays"] == 1


def test_a_replayed_frame_after_a_gap_is_still_a_replay(tmp_path: Path) -> None:
    """A frame re-sent after later ones (a reordering) is refused even when the frames between
    were lost: numbers behind the last accepted one never go back into the output."""
    samples = os.urandom(5 * PER_FRAME)
    chunks = [samples[i * PER_FRAME : (i + 1) * PER_FRAME] for i in range(5)]
    frames = [frame(0, chunks[0]), frame(3, chunks[3]), frame(1, chunks[1]), frame(4, chunks[4]), frame(2, chunks[2])]
    with qitcore.open_raw(capture(tmp_path, "late.qdp", frames)) as raw:
        assert raw.read_samples(10**9) == chunks[0] + chunks[3] + chunks[4]
        stats = raw.stats().counters
    assert (stats["replays"], stats["gaps"], stats["frames_lost"]) == (2, 1, 2)


def test_replayed_detection_frames_are_not_read_twice() -> None:
    """QKD detection records (PROTOCOL.md §3a) follow the same rule: a replayed DETECTIONS frame
    never adds its records again."""
    import numpy as np
    from qitcore import _core
    from qitcore.qkd.device import DETECTIONS, detection_frames, read_detections
    from qitcore.qkd.records import Records

    n = 3000
    index = np.cumsum(np.arange(1, n + 1, dtype=np.uint64) % 7 + 1).astype(np.uint64)
    rng = np.random.default_rng(1)
    records = Records(index, rng.integers(0, 2, n, dtype=np.uint8), rng.integers(0, 2, n, dtype=np.uint8))
    stream = detection_frames(records, first_sequence=2**32 - 2, per_frame=1000)  # across the wrap
    frames = []
    decoder = protocol.FrameDecoder()
    for _, kind, sequence, payload in decoder.feed(stream):
        assert kind == DETECTIONS
        frames.append(_core.encode_frame(kind, sequence, payload))
    replayed = b"".join([frames[0], frames[1], frames[0], frames[2], frames[1]])
    got = read_detections(replayed, gap_policy="count")
    assert np.array_equal(got.index, records.index) and np.array_equal(got.bit, records.bit)
    with pytest.raises(ReplayedFrameError):
        read_detections(replayed)  # the default policy: an error
