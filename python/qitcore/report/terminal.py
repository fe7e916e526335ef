"""Readable tables of results for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..entropy import Estimate, IidResult, NonIidResult

if TYPE_CHECKING:
    from ..archive import FileAssessment

_KEYS = {
    "Most Common Value": ("p-hat", "p_u"),
    "Collision": ("X-bar'", "p"),
    "Markov": ("p-hat_max",),
    "Compression": ("X-bar'", "p"),
    "t-Tuple": ("t", "p_u"),
    "LRS": ("u", "v", "p_u"),
    "MultiMCW Prediction": ("P_global'", "P_local"),
    "Lag Prediction": ("P_global'", "P_local"),
    "MultiMMC Prediction": ("P_global'", "P_local"),
    "LZ78Y Prediction": ("P_global'", "P_local"),
}


def _detail(e: Estimate | None) -> str:
    if e is None:
        return ""
    if e.min_entropy is None:
        return f"not run: {e.note}" if e.note else "not run"
    parts = []
    for key in _KEYS.get(e.name, ()):
        if key in e.fields:
            v = e.fields[key]
            parts.append(f"{key}={v:.6g}" if isinstance(v, float) else f"{key}={v}")
    return ", ".join(parts)


def _h(e: Estimate | None) -> str:
    return "-" if e is None or e.min_entropy is None else f"{e.min_entropy:.6f}"


def non_iid_table(result: NonIidResult) -> str:
    """Each estimator's literal and bit-string results, then the assessment."""
    names = [name for name in _KEYS if any(e.name == name for e in result.literal + result.bitstring)]
    lines = [f"{'estimator':<22} {'H literal':>11} {'H bitstring':>12}  details"]
    lines.append("-" * 78)
    for name in names:
        lit = next((e for e in result.literal if e.name == name), None)
        bit = next((e for e in result.bitstring if e.name == name), None)
        lines.append(f"{name:<22} {_h(lit):>11} {_h(bit):>12}  {_detail(lit) or _detail(bit)}")
    lines.append("-" * 78)
    lines.append(f"H_original  = {result.h_original:.6f} bits per sample")
    if result.h_bitstring is not None:
        lines.append(f"H_bitstring = {result.h_bitstring:.6f} bits per bit")
        lines.append(
            f"min(H_original, {result.bits_per_symbol} x H_bitstring) = {result.h_assessed:.6f} bits per sample"
        )
    else:
        lines.append(f"assessed    = {result.h_assessed:.6f} bits per sample")
    return "\n".join(lines)


def iid_table(result: IidResult) -> str:
    """The IID tests' outcomes and the most common value estimate."""
    ok = {True: "passed", False: "FAILED"}
    lines = [
        f"Chi-square independence: T = {result.independence.score:.4f}, df = {result.independence.df}, "
        f"p = {result.independence.p_value:.4g}  {ok[result.independence.passed]}",
        f"Chi-square goodness of fit: T = {result.goodness_of_fit.score:.4f}, df = {result.goodness_of_fit.df}, "
        f"p = {result.goodness_of_fit.p_value:.4g}  {ok[result.goodness_of_fit.passed]}",
        f"Longest repeated substring: W = {result.lrs.length}, Pr(X >= 1) = {result.lrs.probability:.4g}  "
        f"{ok[result.lrs.passed]}",
        f"Permutation tests ({result.permutation_rounds} permutations):",
        f"  {'statistic':<24} {'value':>16} {'C0':>6} {'C1':>6} {'C2':>6}",
    ]
    for s in result.permutation:
        c0, c1, c2 = s.counts
        mark = "" if s.passed else "  FAILED"
        lines.append(f"  {s.name:<24} {s.value:>16.6g} {c0:>6} {c1:>6} {c2:>6}{mark}")
    lines.append(f"H_original = {result.h_original:.6f} bits per sample (most common value)")
    if result.h_bitstring is not None:
        lines.append(f"H_bitstring = {result.h_bitstring:.6f} bits per bit")
    verdict = "IID tests passed" if result.passed else "IID tests FAILED: use the non-IID track"
    lines.append(f"assessed = {result.h_assessed:.6f} bits per sample; {verdict}")
    return "\n".join(lines)


def files_table(records: Sequence[FileAssessment]) -> str:
    """One row per file: samples, bits per sample, each track's assessment (bits per sample), the
    IID tests' verdict and the time taken; a file not assessed shows its error instead."""
    width = max([len("file"), *(len(r.path) for r in records)])
    lines = [
        f"{'file':<{width}} {'samples':>11} {'bits':>4} {'H non-IID':>10} {'H IID':>10} {'IID tests':>9} {'time':>9}"
    ]
    lines.append("-" * len(lines[0]))
    for r in records:
        if r.error is not None:
            lines.append(f"{r.path:<{width}} error: {r.error}")
            continue
        h_non_iid = "-" if r.non_iid is None else f"{r.non_iid.h_assessed:.6f}"
        h_iid = "-" if r.iid is None else f"{r.iid.h_assessed:.6f}"
        verdict = "-" if r.iid is None else ("passed" if r.iid.passed else "FAILED")
        lines.append(
            f"{r.path:<{width}} {r.size:>11,} {r.bits_per_symbol:>4} {h_non_iid:>10} {h_iid:>10} {verdict:>9}"
            f" {r.seconds:>8.2f}s"
        )
    return "\n".join(lines)
