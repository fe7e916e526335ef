"""numpy, random and randbytes on top of streams: values are in range and uniform (chi-square),
nothing is drawn from a failed stream, and raw samples are refused."""

from __future__ import annotations

import os
import pickle
import random
import warnings

import numpy as np
import pytest
import qitcore
from qitcore import randomness
from qitcore.errors import (
    DeviceNotFound,
    InvalidArgumentError,
    InvalidTypeError,
    RepetitionCountFailure,
    StreamClosedError,
    UnsupportedOperationError,
)
from qitcore.randomness import QuantumRandom

# Chi-square critical value at p = 1e-6 with 9 degrees of freedom: a false failure once in a
# million runs.
CHI2_9_1E6 = 45.0


def chi2(counts: np.ndarray) -> float:
    expect = counts.sum() / len(counts)
    return float(((counts - expect) ** 2 / expect).sum())


def test_numpy_generator_draws_uniformly_from_the_stream() -> None:
    with qitcore.open("sim://?seed=11") as s:
        g = np.random.Generator(qitcore.QuantumBitGenerator(s))
        digits = g.integers(0, 10, size=200_000)
        assert chi2(np.bincount(digits, minlength=10)) < CHI2_9_1E6
        u = g.random(100_000)
        assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
        assert abs(g.normal(size=100_000).std() - 1) < 0.02
        raw = qitcore.QuantumBitGenerator(s).random_raw(4)
        assert raw.dtype == np.uint64 and raw.shape == (4,)
        with pytest.raises(TypeError):
            qitcore.QuantumBitGenerator(s).state = {}


def test_numpy_generator_raises_when_the_stream_fails() -> None:
    with qitcore.open("sim://?seed=12&fault=stuck:50000") as s:
        g = np.random.Generator(qitcore.QuantumBitGenerator(s))
        with pytest.raises(BaseException) as info:
            for _ in range(1000):
                g.random(10_000)
        # The failure is the cause, whichever wrapper numpy puts round it.
        chain = [info.value, info.value.__cause__, info.value.__context__]
        assert any(isinstance(e, RepetitionCountFailure) for e in chain)


def test_raw_streams_are_refused_as_randomness() -> None:
    with qitcore.open_raw("sim://") as raw, pytest.raises(InvalidArgumentError):
        qitcore.QuantumBitGenerator(raw)


def test_quantum_random_is_a_random_random() -> None:
    with qitcore.open("sim://?seed=13") as s:
        r = qitcore.QuantumRandom(s)
        assert isinstance(r, random.Random)
        rolls = np.array([r.randint(1, 6) for _ in range(60_000)])
        counts = np.bincount(rolls, minlength=7)[1:]
        assert chi2(counts) < 40  # 5 degrees of freedom, p ~ 1e-7
        assert 0 <= r.random() < 1
        assert r.getrandbits(0) == 0 and r.getrandbits(200) < 2**200
        assert len(r.randbytes(33)) == 33
        deck = list(range(52))
        r.shuffle(deck)
        assert sorted(deck) == list(range(52))
        r.seed(1)  # ignored, as SystemRandom does
        with pytest.raises(UnsupportedOperationError):  # a NotImplementedError too
            r.getstate()
        # Bad counts are QitErrors that are also the ValueError/TypeError random.Random raises.
        for bad in (-1, 8 * 2**32 + 1):
            with pytest.raises(InvalidArgumentError):
                r.getrandbits(bad)
        with pytest.raises(InvalidTypeError):
            r.getrandbits("8")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="at most 4294967296"):
            r.randbytes(2**63)
        with pytest.raises(InvalidArgumentError, match="at most 4294967296"):
            s.read(2**32 + 1)


def test_randbytes_uses_the_default_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(randomness, "_default", None)
    monkeypatch.setenv("QITCORE_DEVICE", "sim://?seed=14")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = qitcore.randbytes(1000)
    assert len(data) == 1000 and qitcore.randbytes(0) == b""
    assert randomness._default is not None
    randomness._default.close()
    with pytest.raises(InvalidArgumentError):
        qitcore.randbytes(-1)


def test_randbytes_without_a_device_raises_and_never_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(randomness, "_default", None)
    monkeypatch.delenv("QITCORE_DEVICE", raising=False)
    with pytest.raises(DeviceNotFound, match=r"QITCORE_DEVICE=sim://") as info:
        qitcore.randbytes(10)
    assert isinstance(info.value, FileNotFoundError)
    assert randomness._default is None  # nothing was opened, the simulator least of all


def test_numpy_calls_raise_the_stream_exception_itself() -> None:
    with qitcore.open("sim://?seed=15&fault=stuck:50000") as s:
        g = np.random.Generator(qitcore.QuantumBitGenerator(s))
        with pytest.raises(RepetitionCountFailure):
            for _ in range(1000):
                g.random(10_000)
        # Later calls raise too (the stream stays failed), for every kind of draw.
        for draw in (lambda: g.integers(0, 10, size=5), lambda: g.normal(size=3), lambda: g.bytes(16)):
            with pytest.raises(RepetitionCountFailure):
                draw()
        # Small integers take half a word each: only a half of a word read before the failure may
        # still come out (once); never half of the filler that lets numpy's loops end.
        outcomes = []
        for _ in range(8):
            try:
                outcomes.append(int(g.integers(10)))
            except RepetitionCountFailure:
                outcomes.append(None)
        assert outcomes[1:] == [None] * 7, outcomes


def test_what_a_device_cannot_do_raises_a_clear_error() -> None:
    with qitcore.open("sim://?seed=16") as s:
        bg = qitcore.QuantumBitGenerator(s)
        for name in ("ctypes", "cffi", "seed_seq"):
            with pytest.raises(UnsupportedOperationError, match=name):
                getattr(bg, name)
        with pytest.raises(UnsupportedOperationError, match="spawn"):
            bg.spawn(2)
        with pytest.raises(UnsupportedOperationError):
            np.random.Generator(bg).spawn(2)
        with pytest.raises(UnsupportedOperationError):
            pickle.dumps(bg)
        with pytest.raises(InvalidTypeError):
            bg.state = {}
        with pytest.raises(InvalidArgumentError):
            bg.random_raw(-1)
        # The generator still works after all that.
        assert np.random.Generator(bg).integers(0, 2**63, size=3).shape == (3,)


class _Ending(qitcore.stream.QrngStream):
    """A stream that has only `left` bytes, as a file that ends."""

    def __init__(self, left: int) -> None:
        super().__init__(qitcore._core.Stream(8, raw=True), description="ending", info={}, min_entropy=None)
        self.left = left

    def read(self, n: int, timeout: float | None = None) -> bytes:
        give = min(n, self.left)
        self.left -= give
        return bytes(give)


def test_quantum_random_refuses_raw_streams_and_short_reads() -> None:
    with qitcore.open_raw("sim://") as raw, pytest.raises(InvalidArgumentError, match="raw samples"):
        qitcore.QuantumRandom(raw)
    with pytest.raises(InvalidArgumentError):
        qitcore.QuantumRandom(b"not a stream")  # type: ignore[arg-type]
    r = qitcore.QuantumRandom(_Ending(10))
    assert r.getrandbits(64) == 0
    with pytest.raises(StreamClosedError, match="2 of 7 bytes"):
        r.random()
    with pytest.raises(StreamClosedError):
        r.randbytes(1)
    with pytest.raises(StreamClosedError):
        qitcore.QuantumBitGenerator(_Ending(12)).random_raw(2)


def _in_child(work: object) -> str:
    """Runs ``work()`` in a forked child; its result (or its exception as ``Name: message``) as
    text. The child ends with os._exit, so nothing of the parent's runs there at exit."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        try:
            text = str(work())  # type: ignore[operator]
        except BaseException as exc:
            text = f"{type(exc).__name__}: {exc}"
        os.write(write_end, text.encode())
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return b"".join(chunks).decode()


def test_a_forked_child_never_reads_its_parents_stream() -> None:
    with qitcore.open("sim://") as stream:
        g = np.random.Generator(qitcore.QuantumBitGenerator(stream))
        stream.read(16)  # the queue holds the parent's next bytes now
        g.integers(0, 6, size=4)
        for work in (
            lambda: stream.read(64).hex(),
            lambda: bytearray(stream.readinto(bytearray(64))),
            lambda: next(iter(stream)).hex(),
            lambda: g.integers(0, 1 << 62, size=8),  # numpy's draws, through the core's capsule
            lambda: g.random(),
            lambda: g.bytes(16).hex(),
            lambda: QuantumRandom(stream).random(),
        ):
            told = _in_child(work)
            assert told.startswith("StreamClosedError: sim://: this stream was opened in process")
            assert f"process {os.getpid()}; open it again after fork" in told
        assert _in_child(lambda: stream.closed) == "True"

        # The child's close marks its copy only: the parent's stream reads on.
        def close_then_closed() -> bool:
            stream.close()
            return stream.closed

        assert _in_child(close_then_closed) == "True"
        assert not stream.closed
        assert len(stream.read(64)) == 64
        assert g.integers(0, 6, size=4).max() <= 5


def test_a_forked_child_opens_its_own_default_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QITCORE_DEVICE", "sim://")
    monkeypatch.setattr(randomness, "_default", None)
    try:
        qitcore.randbytes(1)  # the parent's default stream, its queue filled
        parent_stream = randomness.default_stream()
        child = _in_child(lambda: qitcore.randbytes(64).hex() + " " + str(randomness.default_stream() is parent_stream))
        parent = qitcore.randbytes(64).hex()
        child_bytes, same = child.split()
        assert same == "False"  # the child opened its own stream
        assert len(bytes.fromhex(child_bytes)) == 64 and child_bytes != parent
        assert randomness.default_stream() is parent_stream and not parent_stream.closed
    finally:
        if randomness._default is not None:
            randomness._default.close()
