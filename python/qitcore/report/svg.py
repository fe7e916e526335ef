"""Small, dependency-free SVG charts for the HTML report."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

_W, _H, _PAD = 640, 220, 40


def _frame(title: str, body: str, height: int = _H) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {height}" width="{_W}" height="{height}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<rect x="0" y="0" width="{_W}" height="{height}" fill="#fff"/>{body}</svg>'
    )


def _dashed(x1: float, x2: float, y1: float, y2: float) -> str:
    return f'<line x1="{x1:.2f}" x2="{x2:.2f}" y1="{y1:.2f}" y2="{y2:.2f}" stroke="#c0392b" stroke-dasharray="4 3"/>'


def _axis_label(x: float, y: float, text: str, anchor: str = "middle") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="11" text-anchor="{anchor}" fill="#333">{escape(text)}</text>'


def bars(title: str, values: Sequence[float], *, xlabel: str, ylabel: str, reference: float | None = None) -> str:
    """Vertical bars, one per value (e.g. a histogram), with an optional dashed reference level."""
    n = max(len(values), 1)
    top = max(max(values, default=0.0), reference or 0.0) or 1.0
    plot_w, plot_h = _W - 2 * _PAD, _H - 2 * _PAD
    width = plot_w / n
    parts = []
    for i, v in enumerate(values):
        h = plot_h * v / top
        parts.append(
            f'<rect x="{_PAD + i * width:.2f}" y="{_H - _PAD - h:.2f}" width="{max(width - 0.5, 0.5):.2f}" '
            f'height="{h:.2f}" fill="#3b6ea5"/>'
        )
    if reference is not None:
        y = _H - _PAD - plot_h * reference / top
        parts.append(_dashed(_PAD, _W - _PAD, y, y))
    parts.append(f'<line x1="{_PAD}" x2="{_W - _PAD}" y1="{_H - _PAD}" y2="{_H - _PAD}" stroke="#333"/>')
    parts.append(_axis_label(_W / 2, _H - 8, xlabel))
    parts.append(_axis_label(12, _PAD - 10, f"{ylabel} (max {top:.4g})", anchor="start"))
    return _frame(title, "".join(parts))


def stems(title: str, xs: Sequence[int], values: Sequence[float], *, band: float, xlabel: str) -> str:
    """Stems around zero (e.g. autocorrelation by lag) with a ±band of dashed lines."""
    limit = max([abs(v) for v in values] + [band * 1.5, 1e-12])
    plot_w, plot_h = _W - 2 * _PAD, _H - 2 * _PAD
    mid = _PAD + plot_h / 2
    step = plot_w / max(len(values), 1)
    parts = [f'<line x1="{_PAD}" x2="{_W - _PAD}" y1="{mid:.2f}" y2="{mid:.2f}" stroke="#333"/>']
    for sign in (1, -1):
        y = mid - sign * plot_h / 2 * band / limit
        parts.append(_dashed(_PAD, _W - _PAD, y, y))
    for i, v in enumerate(values):
        x = _PAD + (i + 0.5) * step
        y = mid - plot_h / 2 * v / limit
        color = "#c0392b" if abs(v) > band else "#3b6ea5"
        parts.append(f'<line x1="{x:.2f}" x2="{x:.2f}" y1="{mid:.2f}" y2="{y:.2f}" stroke="{color}" stroke-width="2"/>')
    parts.append(_axis_label(_PAD, _H - 8, f"{xlabel} {xs[0] if xs else ''}", anchor="start"))
    parts.append(_axis_label(_W - _PAD, _H - 8, str(xs[-1]) if xs else "", anchor="end"))
    parts.append(_axis_label(12, _PAD - 10, f"±{limit:.3g} (dashed: ±{band:.3g})", anchor="start"))
    return _frame(title, "".join(parts))


def hbars(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    reference: float,
    unit: str,
    reference_label: str = "assessed",
    missing: str = "not run",
) -> str:
    """Horizontal bars with labels (e.g. each estimator's entropy) and a reference line (the
    assessment, labelled ``reference_label``); missing values are marked ``missing``."""
    row = 18
    height = 2 * _PAD + row * max(len(labels), 1)
    left = 230
    top = max([v for v in values if v is not None] + [reference, 1e-12])
    plot_w = _W - left - 90
    parts = []
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = _PAD + i * row
        parts.append(_axis_label(left - 6, y + 12, label, anchor="end"))
        if v is None:
            parts.append(_axis_label(left + 4, y + 12, missing, anchor="start"))
            continue
        w = plot_w * v / top
        color = "#c0392b" if abs(v - reference) < 1e-12 else "#3b6ea5"
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{w:.2f}" height="{row - 6}" fill="{color}"/>')
        parts.append(_axis_label(left + w + 4, y + 12, f"{v:.4f}", anchor="start"))
    x = left + plot_w * reference / top
    parts.append(_dashed(x, x, _PAD - 6, height - _PAD + 6))
    parts.append(_axis_label(x, _PAD - 10, f"{reference_label} {reference:.4f} {unit}"))
    return _frame(title, "".join(parts), height)
