"""The benchmark corpus (qitcore.corpus): the same bytes everywhere (pinned digests, a pure-Python
splitmix64, the CDF against SciPy), and each source has the statistics it claims, computed here
independently (SciPy's normal CDF and chi-square, NumPy correlations)."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from qitcore import corpus
from qitcore.errors import InvalidArgumentError, InvalidTypeError
from scipy import special, stats

# SHA-256 of every source at the default size and seed. NIST's results in
# tests/data/sp800-90b/corpus were recorded on exactly these bytes: a change here invalidates them.
DIGESTS = {
    "uniform-8": "0843952294f44a4779bc6166c022ca869a8842c2aa602929997d44f4a75da146",
    "gauss-4": "ab5ced66f1f2dff932a558a93a5397215b8622d943bd74e3c21660a96eea4b5a",
    "gauss-6": "7930fa212dc321cf56c98320ee91cdce3aef9c66af0bd6b1221a8c1806f3f086",
    "gauss-8-narrow": "a007ab15e3a422260e16204b83cd94b073a177a8790f9b1a26029be9faf1f111",
    "gauss-8-wide": "1ab80d4d87a4c5ca3bb19cb8d6e968cb088e5e622b6cc6c8ccc47138f8029065",
    "gauss-8-clipped": "06cfbd118bb7f7e3008ade0b9b4fca8f03e3d0f38b0b6a4b9383510354e543ea",
    "biased-1": "4f96bcbd251030b807444affa5401a658b1b64f5c460804304a13ba2050ac62d",
    "markov-1": "b076331b29245dd840c564703d54cfdf796c7f7fe18be044fdbb1f361c7ef750",
    "drift-8": "aae11188fea414cf98c074541a6522fea6e46d20fd3e92e2552831932656802f",
    "correlated-8": "fb8d37cedddbdaf7ca9ec0253521373dbdf67801f7056b921ece984c4c3190ca",
}

# (sigma in LSB) of each Gaussian ADC source; the mean is mid-scale, 2^(bits-1).
GAUSSIAN = {"gauss-4": 2.0, "gauss-6": 7.7, "gauss-8-narrow": 10.0, "gauss-8-wide": 40.0, "gauss-8-clipped": 100.0}

_cache: dict[str, npt.NDArray[np.int64]] = {}


def _samples(name: str) -> npt.NDArray[np.int64]:
    if name not in _cache:
        _cache[name] = np.frombuffer(corpus.generate(name), dtype=np.uint8).astype(np.int64)
    return _cache[name]


def _lag_correlation(x: npt.NDArray[np.int64], lag: int) -> float:
    return float(np.corrcoef(x[:-lag], x[lag:])[0, 1])


def test_every_source_is_pinned_by_its_digest() -> None:
    assert [s.name for s in corpus.SOURCES] == list(DIGESTS)
    for s in corpus.SOURCES:
        data = s.generate()
        assert len(data) == corpus.DEFAULT_SAMPLES
        assert hashlib.sha256(data).hexdigest() == DIGESTS[s.name], f"{s.name}: bytes changed"
        assert max(data) < 1 << s.bits_per_symbol


def test_sources_describe_themselves() -> None:
    iid = {s.name for s in corpus.SOURCES if s.iid}
    assert iid == {"uniform-8", *GAUSSIAN, "biased-1"}
    for s in corpus.SOURCES:
        assert s.description and "\n" not in s.description
        assert corpus.source(s.name) is s
        copy = pickle.loads(pickle.dumps(s))
        assert (copy.name, copy.generate(100)) == (s.name, s.generate(100))


def _splitmix64(state: int) -> int:
    """The published splitmix64 step (Steele, Lea, Flood 2014) in Python integers."""
    mask = (1 << 64) - 1
    z = (state + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_the_uniform_stream_is_splitmix64() -> None:
    # The NumPy version must equal the scalar algorithm, whatever NumPy does with uint64 overflow.
    mask = (1 << 64) - 1
    seed, stream = 7, 3
    ours = corpus._uniform(seed, stream, 1000)
    # The key: seed and stream through splitmix64's finaliser (one step from state s - golden).
    key = _splitmix64(
        (_splitmix64((seed - 0x9E3779B97F4A7C15) & mask) + stream * 0x9E3779B97F4A7C15 - 0x9E3779B97F4A7C15) & mask
    )
    expected, state = [], key
    for _ in range(1000):
        expected.append(_splitmix64(state))
        state = (state + 0x9E3779B97F4A7C15) & mask
    assert [int(v) for v in ours] == expected


@pytest.mark.parametrize("x", [-19.5, -12.8, -5.0, -1.27, -0.3, 0.0, 0.05, 1.0, 3.7, 8.0, 12.8])
def test_normal_cdf_agrees_with_scipy(x: float) -> None:
    # Thresholds are 2^64·Φ: an absolute error far below 2^-64 is what they need; in the far lower
    # tail the series' 1/2 + (−1/2 + ε) leaves about 10^-59 absolute, and SciPy's double-precision
    # tail is good to a few 10^-14 relative (at −12.8 it is 3·10^-14 off the continued fraction).
    ours = float(corpus.normal_cdf(Decimal(repr(x))))
    assert ours == pytest.approx(float(special.ndtr(x)), rel=1e-13, abs=1e-55)


def test_prefixes_and_seeds() -> None:
    for s in corpus.SOURCES:
        long = s.generate(5000)
        # Bits and the two filtered sources read ahead; every other sample is one draw.
        assert s.generate(1000) == long[:1000], s.name
        assert s.generate(5000, seed=1) != long, s.name
        assert s.generate(5000) == long


def _gaussian_adc_probabilities(bits: int, sigma: float) -> npt.NDArray[np.float64]:
    """P(code k) for an ADC taking floor(x), x ~ N(2^(bits-1), sigma), clipped to the codes."""
    edges = np.arange(1, 1 << bits) - (1 << (bits - 1))
    cdf = np.concatenate(([0.0], stats.norm.cdf(edges / sigma), [1.0]))
    return np.diff(cdf)


def _chi_square_p(counts: npt.NDArray[np.int64], probabilities: npt.NDArray[np.float64]) -> float:
    expected = probabilities * counts.sum()
    keep = expected >= 5  # the usual validity rule; the rare codes are pooled into one bin
    observed = np.append(counts[keep], counts[~keep].sum())
    expected = np.append(expected[keep], expected[~keep].sum())
    if expected[-1] < 5:
        observed, expected = observed[:-1], expected[:-1]
        expected = expected * observed.sum() / expected.sum()
    return float(stats.chisquare(observed, expected).pvalue)


@pytest.mark.parametrize("name", sorted(GAUSSIAN))
def test_gaussian_adc_histogram_is_the_quantised_gaussian(name: str) -> None:
    bits = corpus.source(name).bits_per_symbol
    counts = np.bincount(_samples(name), minlength=1 << bits)
    p = _chi_square_p(counts, _gaussian_adc_probabilities(bits, GAUSSIAN[name]))
    assert p > 1e-3, f"{name}: histogram differs from the quantised Gaussian (p = {p:.2e})"
    # IID as meant: no correlation at lags 1 and 2 (1e6 samples: standard error 0.001).
    x = _samples(name)
    assert abs(_lag_correlation(x, 1)) < 0.005 and abs(_lag_correlation(x, 2)) < 0.005


def test_the_clipped_source_clips_a_tenth_at_each_end() -> None:
    x = _samples("gauss-8-clipped")
    tail = stats.norm.cdf(-127 / 100)  # P(x < 1) = P(x >= 255) for mean 128
    for code in (0, 255):
        assert np.mean(x == code) == pytest.approx(tail, abs=0.002)


def test_uniform_bytes_are_uniform() -> None:
    counts = np.bincount(_samples("uniform-8"), minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-3
    assert abs(_lag_correlation(_samples("uniform-8"), 1)) < 0.005


def test_biased_bits() -> None:
    x = _samples("biased-1")
    assert set(np.unique(x)) == {0, 1}
    assert x.mean() == pytest.approx(0.55, abs=4 * np.sqrt(0.55 * 0.45 / x.size))
    assert abs(_lag_correlation(x, 1)) < 0.005


def test_markov_bits_repeat_with_probability_seven_tenths() -> None:
    x = _samples("markov-1")
    repeats = float(np.mean(x[1:] == x[:-1]))
    assert repeats == pytest.approx(0.7, abs=4 * np.sqrt(0.21 / x.size))
    # A symmetric two-state chain that stays with probability s has lag-k correlation (2s - 1)^k.
    assert _lag_correlation(x, 1) == pytest.approx(0.4, abs=0.005)
    assert _lag_correlation(x, 2) == pytest.approx(0.16, abs=0.005)
    assert x.mean() == pytest.approx(0.5, abs=0.005)


def test_the_drifting_source_follows_its_triangle_wave() -> None:
    x = _samples("drift-8")
    n = x.size
    # The offset is the triangle wave from -a (phase 0) to +a (half a period) and back, in whole
    # LSB steps: within 1 LSB of the continuous wave, one step at a time, periodic.
    a, period = corpus.DRIFT_AMPLITUDE, corpus.DRIFT_PERIOD
    phase = (np.arange(n) % period) / period
    wave = -a + 4 * a * np.minimum(phase, 1 - phase)
    offset = corpus.drift_offset(n)
    assert np.max(np.abs(offset - wave)) < 1 and offset.min() == -a and offset.max() == a
    assert np.max(np.abs(np.diff(offset))) == 1
    assert np.array_equal(offset[period:], offset[:-period])
    # What remains is the 8-bit Gaussian ADC at sigma 20 (no clipping at this offset range).
    counts = np.bincount(x - offset, minlength=256)[:256]
    assert _chi_square_p(counts, _gaussian_adc_probabilities(8, 20.0)) > 1e-3
    # Block means follow the drift: 10,000-sample blocks, standard error 0.2 LSB.
    blocks = x[: n // 10_000 * 10_000].reshape(-1, 10_000).mean(axis=1)
    drift = offset[: n // 10_000 * 10_000].reshape(-1, 10_000).mean(axis=1)
    assert np.max(np.abs(blocks - 127.5 - drift)) < 1.0


def test_the_correlated_source_has_its_filters_correlations() -> None:
    x = _samples("correlated-8")
    # y_i = e_i + (2 e_(i-1) + e_(i-2)) / 4: autocovariances (1 + 4/16 + 1/16, 2/4 + 2/16, 1/4) var(e).
    var = 1 + 4 / 16 + 1 / 16
    assert _lag_correlation(x, 1) == pytest.approx((2 / 4 + 2 / 16) / var, abs=0.005)
    assert _lag_correlation(x, 2) == pytest.approx((1 / 4) / var, abs=0.005)
    assert abs(_lag_correlation(x, 3)) < 0.005
    assert x.std() == pytest.approx(16 * np.sqrt(var), rel=0.01)


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="^name: no corpus source 'nope'; sources: uniform-8"):
        corpus.generate("nope")
    with pytest.raises(InvalidArgumentError, match="^samples: must be at least 1"):
        corpus.generate("uniform-8", 0)
    with pytest.raises(InvalidArgumentError, match="^seed: must be at least 0"):
        corpus.generate("uniform-8", 10, -1)
    with pytest.raises(InvalidArgumentError, match="^seed: must be at most"):
        corpus.generate("uniform-8", 10, 1 << 64)
    with pytest.raises(InvalidTypeError, match="^samples: expected an int"):
        corpus.generate("uniform-8", 10.0)  # type: ignore[arg-type]


def test_the_command_writes_every_source_and_a_manifest(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "qitcore.corpus", str(tmp_path / "out"), "--samples", "2000", "--seed", "5"],
        capture_output=True,
        text=True,
        check=True,
    )
    manifest = json.loads(Path(run.stdout.strip()).read_text())
    assert [e["name"] for e in manifest["sources"]] == list(DIGESTS)
    for entry in manifest["sources"]:
        data = (tmp_path / "out" / entry["file"]).read_bytes()
        assert data == corpus.generate(entry["name"], 2000, 5)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert (entry["samples"], entry["seed"]) == (2000, 5)
        s = corpus.source(entry["name"])
        described = (entry["bits_per_symbol"], entry["iid"], entry["description"])
        assert described == (s.bits_per_symbol, s.iid, s.description)
    bad = subprocess.run(
        [sys.executable, "-m", "qitcore.corpus", str(tmp_path / "x"), "--samples", "0"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "samples: must be at least 1" in bad.stderr


def test_importing_qitcore_does_not_import_the_corpus() -> None:
    code = "import sys, qitcore; print('qitcore.corpus' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
