"""A benchmark and test corpus of realistic QRNG sources, generated deterministically from a seed.

Each source is 1,000,000 samples by default, one sample per byte: uniform bytes; Gaussian ADC
samples (homodyne QRNGs) at 4, 6 and 8 bits with different gains, one of them clipping; biased
and correlated (Markov) bits; a slowly drifting 8-bit source; an 8-bit source with short-range
correlation. The bytes are the same on every platform and NumPy version, because NIST's results
recorded on them (``tests/data/sp800-90b/corpus``) must stay valid: uniform 64-bit integers come
from splitmix64 over a counter in NumPy's wrapping uint64 arithmetic (not from NumPy's
generators, whose streams may change), and every discrete distribution is drawn by comparing them
with integer thresholds computed from its CDF in exact decimal arithmetic (not libm's ``erf``).

``python -m qitcore.corpus OUTDIR`` writes one ``NAME.bin`` per source and ``manifest.json``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ._validate import integer
from .errors import InvalidArgumentError, os_reason

__all__ = ["DEFAULT_SAMPLES", "DEFAULT_SEED", "SOURCES", "Source", "generate", "source", "write"]

DEFAULT_SAMPLES = 1_000_000
DEFAULT_SEED = 2026

_U64 = npt.NDArray[np.uint64]
_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(z: int) -> int:
    """splitmix64's finaliser on a Python int (for keys)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _uniform(seed: int, stream: int, n: int) -> _U64:
    """``n`` uniform 64-bit integers: splitmix64 of the counter 1..n on a key made of (seed, stream),
    so every source draws from its own stream and a source's first samples do not depend on ``n``."""
    key = _mix((_mix(seed & _MASK) + stream * _GOLDEN) & _MASK)
    # uint64 array arithmetic wraps modulo 2^64 (no overflow check on arrays), which splitmix64 needs.
    z = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(_GOLDEN) + np.uint64(key)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


# pi to 60 digits: Decimal has no pi, and a float pi would limit the CDF to double precision.
_PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494")


def normal_cdf(x: Decimal) -> Decimal:
    """Φ(x) to about 10^-55 absolute, by Φ(x) = 1/2 + φ(x)·Σ x^(2k+1)/(2k+1)!!, whose terms all
    have the sign of x (no cancellation inside the sum; for x < 0 the final 1/2 − … cancels, which
    the 60 digits absorb: the thresholds need 2^-64); decimal's ``exp`` and ``sqrt`` are correctly
    rounded, so the value is the same everywhere."""
    if abs(x) > 20:  # Φ(±20) is within 10^-88 of 1 or 0: below any threshold's resolution
        return Decimal(1) if x > 0 else Decimal(0)
    with localcontext() as ctx:
        ctx.prec = 60
        term = x
        total = x
        k = 0
        while abs(term) > total.copy_abs() * Decimal("1e-58") or k < 2:
            k += 1
            term = term * x * x / (2 * k + 1)
            total += term
        density = (-x * x / 2).exp() / (2 * _PI).sqrt()
        return Decimal("0.5") + density * total


def _thresholds(cdf: Sequence[Decimal]) -> _U64:
    """Integer thresholds 2^64·F, clamped to fit uint64, for drawing by comparison."""
    return np.array([min(int(c * (1 << 64)), _MASK) for c in cdf], dtype=np.uint64)


def _draw(thresholds: _U64, u: _U64) -> npt.NDArray[np.int64]:
    """Index k such that thresholds[k-1] <= u < thresholds[k]: the discrete distribution whose CDF
    gave the thresholds, from uniform 64-bit integers."""
    return np.searchsorted(thresholds, u, side="right").astype(np.int64)


def gaussian_adc(bits: int, mean: float, sigma: float, u: _U64) -> npt.NDArray[np.int64]:
    """An ADC of ``bits`` bits sampling Gaussian noise: code k for x in [k, k+1) (x in LSB), codes 0
    and 2^bits − 1 taking the tails (clipping)."""
    mu, s = Decimal(repr(mean)), Decimal(repr(sigma))
    return _draw(_thresholds([normal_cdf((k - mu) / s) for k in range(1, 1 << bits)]), u)


def _bernoulli(p_numerator: int, p_denominator: int, u: _U64) -> npt.NDArray[np.uint8]:
    """1 with probability p (a fraction, exactly) for each uniform integer."""
    return (u < np.uint64((p_numerator << 64) // p_denominator)).astype(np.uint8)


@dataclass(frozen=True)
class Source:
    """One source of the corpus: its name, bits per symbol, whether its samples are meant to be IID
    (independent and identically distributed), and what it models."""

    name: str
    bits_per_symbol: int
    iid: bool
    description: str
    _make: Callable[[int, tuple[int, int]], npt.NDArray[np.integer]] = field(repr=False)
    _stream: int = field(repr=False)

    def generate(self, samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> bytes:
        """``samples`` samples (one per byte), the same for the same ``seed`` on every platform.

        Raises:
            InvalidTypeError: ``samples`` or ``seed`` is not an int.
            InvalidArgumentError: ``samples`` is below 1 or above 2^31, or ``seed`` is negative or
                above 2^64 − 1.
        """
        n = integer("samples", samples, minimum=1, maximum=1 << 31)
        s = integer("seed", seed, minimum=0, maximum=_MASK)
        data = self._make(n, (s, self._stream))
        return np.asarray(data, dtype=np.uint8).tobytes()


def _uniform_bytes(n: int, key: tuple[int, int]) -> npt.NDArray[np.integer]:
    return _uniform(*key, n) >> np.uint64(56)


def _adc_samples(bits: int, sigma: float, n: int, key: tuple[int, int]) -> npt.NDArray[np.integer]:
    # Centred between the two middle codes, so the histogram is symmetric.
    return gaussian_adc(bits, float(1 << (bits - 1)), sigma, _uniform(*key, n))


def _adc(bits: int, sigma: float) -> Callable[[int, tuple[int, int]], npt.NDArray[np.integer]]:
    # A partial of a module function, not a lambda, so that a Source pickles.
    return functools.partial(_adc_samples, bits, sigma)


def _biased_bits(n: int, key: tuple[int, int]) -> npt.NDArray[np.integer]:
    return _bernoulli(55, 100, _uniform(*key, n))


def _markov_bits(n: int, key: tuple[int, int]) -> npt.NDArray[np.integer]:
    # A bit repeats the previous one with probability 0.7 (flips with 0.3): lag-1 correlation 0.4.
    # The chain is the running XOR of the flips, starting from a fair first bit.
    u = _uniform(*key, n + 1)
    flips = _bernoulli(3, 10, u[1:])
    first = int(u[0] >> np.uint64(63))
    return ((np.cumsum(flips, dtype=np.int64) + first) & 1).astype(np.uint8)


#: The drifting source's offset: a triangle wave of ±DRIFT_AMPLITUDE LSB, one period per
#: DRIFT_PERIOD samples, in whole LSB steps (integer arithmetic, so exactly reproducible).
DRIFT_AMPLITUDE = 12
DRIFT_PERIOD = 400_000


def drift_offset(n: int) -> npt.NDArray[np.int64]:
    """The drifting source's offset (LSB) at samples 0..n−1."""
    a = DRIFT_AMPLITUDE
    phase = (np.arange(n, dtype=np.int64) * (4 * a) // DRIFT_PERIOD) % (4 * a)
    return a - np.abs(phase - 2 * a)


def _drifting(n: int, key: tuple[int, int]) -> npt.NDArray[np.integer]:
    noise = gaussian_adc(8, 128.0, 20.0, _uniform(*key, n))
    return (noise + drift_offset(n)).clip(0, 255)


def _correlated(n: int, key: tuple[int, int]) -> npt.NDArray[np.integer]:
    # Gaussian noise through a short filter, y_i = e_i + (2·e_(i−1) + e_(i−2)) / 4 (floored), as an
    # ADC behind an amplifier with too little bandwidth: lag-1 correlation about 10/21, lag-2 4/21.
    e = gaussian_adc(8, 128.0, 16.0, _uniform(*key, n + 2)) - 128
    y = 128 + e[2:] + (2 * e[1:-1] + e[:-2]) // 4
    return y.clip(0, 255)


SOURCES: tuple[Source, ...] = (
    Source("uniform-8", 8, True, "uniform bytes (an ideal 8-bit source)", _uniform_bytes, 1),
    Source("gauss-4", 4, True, "4-bit ADC of Gaussian noise, sigma 2 LSB (a few clipped samples)", _adc(4, 2.0), 2),
    Source("gauss-6", 6, True, "6-bit ADC of Gaussian noise, sigma 7.7 LSB", _adc(6, 7.7), 3),
    Source("gauss-8-narrow", 8, True, "8-bit ADC of Gaussian noise, low gain: sigma 10 LSB", _adc(8, 10.0), 4),
    Source("gauss-8-wide", 8, True, "8-bit ADC of Gaussian noise, high gain: sigma 40 LSB", _adc(8, 40.0), 5),
    Source(
        "gauss-8-clipped",
        8,
        True,
        "8-bit ADC of Gaussian noise, sigma 100 LSB: 10% clips at each end",
        _adc(8, 100.0),
        6,
    ),
    Source("biased-1", 1, True, "independent bits with P(1) = 0.55", _biased_bits, 7),
    Source("markov-1", 1, False, "bits repeating the previous one with probability 0.7 (Markov)", _markov_bits, 8),
    Source(
        "drift-8",
        8,
        False,
        f"8-bit Gaussian ADC, sigma 20 LSB, mean drifting ±{DRIFT_AMPLITUDE} LSB over {DRIFT_PERIOD:,} samples",
        _drifting,
        9,
    ),
    Source(
        "correlated-8",
        8,
        False,
        "8-bit Gaussian noise through a 3-tap filter: short-range correlation (lag 1 about 0.48)",
        _correlated,
        10,
    ),
)

_BY_NAME = {s.name: s for s in SOURCES}


def source(name: str) -> Source:
    """The source called ``name``.

    Raises:
        InvalidArgumentError: no source has that name (the message lists them).
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise InvalidArgumentError(f"name: no corpus source {name!r}; sources: {', '.join(_BY_NAME)}") from None


def generate(name: str, samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> bytes:
    """The samples of source ``name`` (one per byte); see :meth:`Source.generate`.

    Raises:
        InvalidArgumentError: unknown name, or ``samples``/``seed`` out of range.
        InvalidTypeError: ``samples`` or ``seed`` is not an int.
    """
    return source(name).generate(samples, seed)


def write(outdir: str | Path, samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> Path:
    """Writes ``NAME.bin`` for every source and ``manifest.json`` (name, file, bits per symbol, IID
    or not, description, samples, seed, SHA-256) into ``outdir`` (created if needed); returns the
    manifest's path.

    Raises:
        InvalidArgumentError, InvalidTypeError: as :func:`generate`.
        OSError: the folder or a file cannot be written.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for s in SOURCES:
        data = s.generate(samples, seed)
        (out / f"{s.name}.bin").write_bytes(data)
        entries.append(
            {
                "name": s.name,
                "file": f"{s.name}.bin",
                "bits_per_symbol": s.bits_per_symbol,
                "iid": s.iid,
                "description": s.description,
                "samples": len(data),
                "seed": seed,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    manifest = out / "manifest.json"
    manifest.write_text(json.dumps({"sources": entries}, indent=2, ensure_ascii=False) + "\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qitcore.corpus",
        description="Writes the benchmark corpus: NAME.bin per source and manifest.json.",
    )
    parser.add_argument("outdir", help="folder for NAME.bin files and manifest.json")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="samples per source (default 10^6)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed (default {DEFAULT_SEED})")
    args = parser.parse_args(argv)
    try:
        manifest = write(args.outdir, args.samples, args.seed)
    except (InvalidArgumentError, OSError) as e:
        print(f"error: {os_reason(e)}", file=sys.stderr)
        return 2
    print(manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
