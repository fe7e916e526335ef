"""numpy, random and randbytes on top of streams: values are in range and uniform (chi-square),
nothing is drawn from a failed stream, and raw samples are refused."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import qitcore
from qitcore import randomness
from qitcore.errors import InvalidArgumentError, RepetitionCountFailure

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
        with pytest.raises(NotImplementedError):
            r.getstate()


def test_randbytes_uses_the_default_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(randomness, "_default", None)
    monkeypatch.setenv("QITCORE_DEVICE", "sim://?seed=14")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = qitcore.randbytes(1000)
    assert len(data) == 1000 and qitcore.randbytes(0) == b""
    randomness._default.close()
    monkeypatch.setattr(randomness, "_default", None)
    monkeypatch.delenv("QITCORE_DEVICE")
    with pytest.warns(RuntimeWarning, match="not a physical entropy source"):
        assert len(qitcore.randbytes(10)) == 10
    randomness._default.close()
    with pytest.raises(InvalidArgumentError):
        qitcore.randbytes(-1)
