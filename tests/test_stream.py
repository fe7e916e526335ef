"""Streams as the binding makes them: defaults from the core (what qitcore.open applies), counters
read by attribute or by name, plain sample bytes framed in the core, choices refused by name."""

from __future__ import annotations

import pytest
import qitcore
from qitcore import _core
from qitcore._records import as_dict
from qitcore.devices import Options, Url
from qitcore.devices.sim import model_from_url
from qitcore.errors import InvalidArgumentError, InvalidTypeError
from qitcore.extract import output_length
from qitcore.health import HealthMonitor


def test_open_applies_the_cores_defaults_alpha_two_to_the_minus_40_and_epsilon_two_to_the_minus_64() -> None:
    assert (Options().alpha, _core.Stream.DEFAULT_ALPHA) == (2.0**-40, 2.0**-40)
    assert (Options().epsilon, _core.Stream.DEFAULT_EPSILON) == (2.0**-64, 2.0**-64)
    with qitcore.open("sim://?seed=3") as s:
        h, cutoffs, shape = s.min_entropy, s.cutoffs, s.block_shape
    assert h is not None and cutoffs is not None and shape is not None
    at_40 = HealthMonitor(h, bits_per_sample=8, alpha=2.0**-40)
    at_20 = HealthMonitor(h, bits_per_sample=8, alpha=2.0**-20)
    assert (
        cutoffs
        == (at_40.rct_cutoff, at_40.apt_cutoff, at_40.window)
        != (at_20.rct_cutoff, at_20.apt_cutoff, at_20.window)
    )
    n = shape[0]
    assert shape == (n, output_length(n, h * n / 8, 2.0**-64, per="block") // 8 * 8)


def test_a_direct_stream_takes_the_same_defaults_as_open() -> None:
    h = 7.0
    direct = _core.Stream(8, min_entropy=h)
    opened = Options().core_stream(8, "aligned", "big", 0, raw=False, min_entropy=h)
    assert (direct.cutoffs, direct.block_shape) == (opened.cutoffs, opened.block_shape)
    direct.close()
    opened.close()


def test_the_simulators_model_defaults_are_the_cores() -> None:
    model = model_from_url(Url.parse("sim://?seed=1"))
    default = _core.NoiseModel(seed=1)
    assert (model.bits, model.rate, model.min_entropy) == (default.bits, default.rate, default.min_entropy)
    assert (default.bits, default.rate) == (8, 0.0)
    assert model_from_url(Url.parse("sim://?bits=12&seed=1")).bits == 12


def test_the_noise_models_reads_are_one_sequence_and_answer_ctrl_c() -> None:
    """A read is made a slice at a time: reads of any sizes give the same samples as one read
    (12-bit samples as two little-endian bytes), and a read of billions answers Ctrl-C."""
    import os
    import signal
    import threading
    import time

    for bits in (8, 12):
        whole = _core.NoiseModel(bits=bits, seed=5).read(200_001)
        model = _core.NoiseModel(bits=bits, seed=5)
        assert model.read(65_537) + model.read(1) + model.read(134_463) == whole
        assert len(whole) == 200_001 * (2 if bits > 8 else 1)
    # Reads from two threads at once are each an unbroken run of the sequence.
    whole = _core.NoiseModel(seed=6).read(400_000)
    shared = _core.NoiseModel(seed=6)
    got: list[bytes] = []
    readers = [threading.Thread(target=lambda: got.append(shared.read(200_000))) for _ in range(2)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    assert sorted(got) == sorted([whole[:200_000], whole[200_000:]])
    sent: list[float] = []

    def send() -> None:
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Timer(0.5, send).start()
    with pytest.raises(KeyboardInterrupt):
        _core.NoiseModel(seed=1).read(1_000_000_000)  # about 10 s of work here
    assert time.monotonic() - sent[0] < 5.0


def test_counters_read_by_attribute_or_by_name() -> None:
    with qitcore.open("sim://?seed=4") as s:
        s.read(10_000)
        stats = s.stats()
    c = stats.counters
    assert isinstance(c, qitcore.stream.StreamCounters)
    assert c["frames"] == c.frames == stats["frames"] > 0
    assert c["bytes_delivered"] == 10_000 and c.malformed_frames == 0
    plain = as_dict(c)
    assert plain["bytes_out"] == c.bytes_out and all(isinstance(v, int) for v in plain.values())
    with pytest.raises(KeyError):
        c["frame"]
    with pytest.raises(KeyError):
        c["__class__"]


def test_sample_bytes_fed_in_pieces_that_split_samples_are_framed_in_order() -> None:
    s = _core.Stream(12, raw=True)
    samples = b"".join((i * 37 % 4096).to_bytes(2, "little") for i in range(5000))
    for at in range(0, len(samples), 333):
        s.feed_samples(samples[at : at + 333])
    s.end()
    assert s.read(len(samples) + 1) == samples
    c = s.stats()
    assert (c.samples_in, c.gaps, c.crc_errors) == (5000, 0, 0)


def test_choices_are_refused_naming_the_argument_and_the_choices() -> None:
    with pytest.raises(InvalidArgumentError, match=r'gap_policy: .*"count", "error"'):
        _core.Stream(8, raw=True, gap_policy="ignore")
    with pytest.raises(InvalidArgumentError, match=r'packing: .*"packed", "aligned"'):
        _core.Stream(8, "tight", raw=True)
    with pytest.raises(InvalidTypeError):
        _core.Stream(8, raw=True, alpha=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["sim://?seed=3", "sim+pty://?seed=3&rate=2000000"])
def test_a_reader_that_idles_longer_than_the_frame_timeout_reads_on(url: str) -> None:
    # The device is not read while the queue is full: that wait is not its silence, and must not
    # fail the stream with NoValidFrames (a daemon's device idles whenever its clients do).
    import time

    with qitcore.open(url, frame_timeout=0.5, buffer_bytes=1 << 12) as stream:
        assert len(stream.read(100, timeout=10)) == 100
        time.sleep(1.5)
        for _ in range(20):
            assert len(stream.read(1 << 12, timeout=10)) == 1 << 12
        assert stream._core.error() is None
