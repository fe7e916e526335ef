"""One self-contained HTML page comparing the assessments of many files: a table (samples, bits,
SHA-256, each track's min-entropy, the IID verdict, time or error) linking each file's own report,
and the min-entropy per file as a chart. No scripts, no external files besides the links."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

from .._core import __version__
from . import svg
from .html import _STYLE

if TYPE_CHECKING:
    from ..archive import FileAssessment

#: Past this many files the chart would be taller than anyone reads; the table still lists them all.
CHART_FILES = 200


def _h(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def _row(record: FileAssessment, link: str | None) -> str:
    name = escape(record.path)
    cell = f'<a href="{escape(link, quote=True)}">{name}</a>' if link else name
    if record.error is not None:
        return f'<tr><td>{cell}</td><td colspan="7" class="fail">error: {escape(record.error)}</td></tr>'
    sha = record.sha256 or ""
    verdict = "-"
    if record.iid is not None:
        verdict = '<span class="pass">passed</span>' if record.iid.passed else '<span class="fail">failed</span>'
    cells = [
        cell,
        f"{record.size:,}",
        str(record.bits_per_symbol),
        f'<code title="{escape(sha, quote=True)}">{escape(sha[:16])}…</code>',
        _h(None if record.non_iid is None else record.non_iid.h_assessed),
        _h(None if record.iid is None else record.iid.h_assessed),
        verdict,
        f"{record.seconds:.2f} s",
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _chart_value(record: FileAssessment) -> float | None:
    """The non-IID assessment (valid whatever the IID tests say), else the IID one."""
    if record.non_iid is not None:
        return record.non_iid.h_assessed
    return None if record.iid is None else record.iid.h_assessed


def comparison_report(records: Sequence[FileAssessment], links: Sequence[str | None], *, commandline: str = "") -> str:
    """The page for ``records`` (in the order given), each file's name linking to ``links[i]``
    (a URL relative to the page, or ``None`` for no link)."""
    assessed = [r for r in records if r.error is None]
    failed_iid = [r for r in assessed if r.iid is not None and not r.iid.passed]
    summary = f"{len(records)} files: {len(assessed)} assessed, {len(records) - len(assessed)} not assessed" + (
        f", {len(failed_iid)} failed the IID tests" if any(r.iid is not None for r in assessed) else ""
    )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Entropy assessment of {len(records)} files</title><style>{_STYLE}</style></head><body>",
        f"<h1>Entropy assessment (NIST SP 800-90B) of {len(records)} files</h1>",
        f"<p>{escape(summary)}.</p>",
    ]
    if commandline:
        parts.append(f"<p><code>{escape(commandline)}</code></p>")
    parts.append(
        "<table><tr><th>file</th><th>samples</th><th>bits</th><th>SHA-256</th><th>H non-IID</th><th>H IID</th>"
        "<th>IID tests</th><th>time</th></tr>"
        + "".join(_row(r, link) for r, link in zip(records, links, strict=True))
        + "</table>"
    )
    values = [_chart_value(r) for r in records]
    known = [v for v in values if v is not None]
    if known and len(records) <= CHART_FILES:
        lowest = min(known)
        parts.append("<h2>Min-entropy per file</h2>")
        parts.append(
            "<figure>"
            + svg.hbars(
                "Min-entropy per file",
                [r.path if len(r.path) <= 36 else "…" + r.path[-35:] for r in records],
                values,
                reference=lowest,
                unit="bits/sample",
                reference_label="lowest",
                missing="not assessed",
            )
            + "<figcaption>Each file's assessed min-entropy per sample (the non-IID track's where it ran); "
            "dashed: the lowest.</figcaption></figure>"
        )
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    parts.append(f"<p><small>qitcore {escape(__version__)}, {stamp}</small></p></body></html>")
    return "".join(parts)
