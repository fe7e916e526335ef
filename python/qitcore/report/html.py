"""A self-contained HTML report of an entropy assessment: the summary, every estimator's result,
and the plots a person assessing a source looks at (histogram, autocorrelation by lag, bit-level
bias, each estimator against the final assessment). No scripts, no external files."""

from __future__ import annotations

import datetime
from html import escape

import numpy as np

from .._core import __version__
from ..entropy import IidResult, NonIidResult
from . import svg
from .terminal import iid_table, non_iid_table

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; } td, th { padding: 0.2em 0.8em; text-align: left; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.pass { color: #1e7b34; font-weight: bold; } .fail { color: #c0392b; font-weight: bold; }
figure { margin: 1em 0; } figcaption { font-size: 0.9em; color: #555; }
"""


#: Samples turned to floating point at a time, so that the report's memory does not grow with them.
_CHUNK = 1 << 20


def _autocorrelation(raw: np.ndarray, lags: int) -> list[float]:
    mean = float(raw.mean())
    n = raw.size
    denom = 0.0
    sums = np.zeros(lags)
    for start in range(0, n, _CHUNK):
        # This chunk and the `lags` samples after it, centred.
        x = raw[start : start + _CHUNK + lags].astype(np.float64) - mean
        size = min(_CHUNK, n - start)
        denom += float(np.dot(x[:size], x[:size]))
        for d in range(1, lags + 1):
            pairs = min(size, n - d - start)
            if pairs > 0:
                sums[d - 1] += float(np.dot(x[:pairs], x[d : d + pairs]))
    denom = denom or 1.0
    return [float(v / denom) for v in sums]


def _figure(svg_text: str, caption: str) -> str:
    return f"<figure>{svg_text}<figcaption>{escape(caption)}</figcaption></figure>"


def html_report(
    data: bytes,
    bits_per_symbol: int,
    *,
    non_iid: NonIidResult | None = None,
    iid: IidResult | None = None,
    filename: str = "",
    sha256: str = "",
) -> str:
    """The report for samples ``data`` (one per byte) and the results computed on them."""
    raw = np.frombuffer(data, dtype=np.uint8)
    n = raw.size
    counts = np.bincount(raw, minlength=1 << bits_per_symbol)[: 1 << bits_per_symbol]
    expected = n / (1 << bits_per_symbol)
    lags = min(64, max(n - 1, 1))
    acf = _autocorrelation(raw, lags) if n > 2 else []
    # Ones in each bit position, from the histogram (no per-sample temporaries).
    symbols = np.arange(counts.size)
    bias = [
        float(counts[(symbols >> (bits_per_symbol - 1 - j)) & 1 == 1].sum() / max(n, 1)) for j in range(bits_per_symbol)
    ]
    assessed = non_iid.h_assessed if non_iid else (iid.h_assessed if iid else float("nan"))
    rows = [
        ("file", filename),
        ("SHA-256", sha256),
        ("samples", f"{n}"),
        ("bits per symbol", f"{bits_per_symbol}"),
        ("assessed min-entropy", f"{assessed:.6f} bits per sample"),
    ]
    if iid is not None:
        verdict = "passed" if iid.passed else "failed"
        rows.append(("IID tests", f'<span class="{"pass" if iid.passed else "fail"}">{verdict}</span>'))
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Entropy assessment of {escape(filename or 'samples')}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Entropy assessment (NIST SP 800-90B) of {escape(filename or 'samples')}</h1>",
        "<table>"
        + "".join(f"<tr><th>{escape(k)}</th><td>{v if k == 'IID tests' else escape(v)}</td></tr>" for k, v in rows)
        + "</table>",
    ]
    if non_iid is not None:
        labels: list[str] = []
        values: list[float | None] = []
        for e in non_iid.literal:
            labels.append(f"{e.name} (samples)")
            values.append(e.min_entropy)
        for e in non_iid.bitstring:
            labels.append(f"{e.name} (bits) × {bits_per_symbol}")
            values.append(None if e.min_entropy is None else e.min_entropy * bits_per_symbol)
        parts.append("<h2>Estimators (non-IID track)</h2>")
        parts.append(
            _figure(
                svg.hbars("Estimates per sample", labels, values, reference=non_iid.h_assessed, unit="bits/sample"),
                "Each estimator's min-entropy per sample (bit-string estimates scaled by the bits per symbol); "
                "the lowest sets the assessment (dashed line).",
            )
        )
        parts.append(f"<pre>{escape(non_iid_table(non_iid))}</pre>")
        if non_iid.warnings:
            parts.append("<ul>" + "".join(f"<li>{escape(w)}</li>" for w in non_iid.warnings) + "</ul>")
    if iid is not None:
        parts.append("<h2>IID track</h2>")
        parts.append(f"<pre>{escape(iid_table(iid))}</pre>")
    parts.append("<h2>Samples</h2>")
    parts.append(
        _figure(
            svg.bars("Histogram", counts.tolist(), xlabel="sample value", ylabel="count", reference=expected),
            f"Counts of each of the {1 << bits_per_symbol} values; dashed: the uniform expectation {expected:.1f}.",
        )
    )
    if n and expected > 0:
        z = ((counts - expected) / np.sqrt(expected)).tolist()
        parts.append(
            _figure(
                svg.stems("Histogram deviation", list(range(len(z))), z, band=3.0, xlabel="sample value"),
                "Each value's count minus the uniform expectation, in standard deviations (√expected); dashed: ±3.",
            )
        )
    if acf:
        band = 2.0 / np.sqrt(n)
        parts.append(
            _figure(
                svg.stems("Autocorrelation", list(range(1, lags + 1)), acf, band=float(band), xlabel="lag"),
                f"Autocorrelation of the sample values at lags 1 to {lags}; dashed: ±2/√n, where 95 % of the "
                "lags of an independent source fall.",
            )
        )
    parts.append(
        _figure(
            svg.bars(
                "Bit-level bias",
                bias,
                xlabel="bit position (most significant first)",
                ylabel="P(bit = 1)",
                reference=0.5,
            ),
            "Fraction of ones at each bit position of the samples; dashed: 1/2.",
        )
    )
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    parts.append(f"<p><small>qitcore {escape(__version__)}, {stamp}</small></p></body></html>")
    return "".join(parts)
