"""Benchmark plumbing: every benchmark records its input size, and the session ends with a table
of input throughput (Mbit/s, from the median time) per case and implementation, with the ratio of
qitcore to each peer; benchmarks over a corpus of inputs also compare qitcore with a peer per input,
and the summary lists those ratios per group, the smallest first (the figure a README quotes)."""

from __future__ import annotations

import os
import platform
from collections import defaultdict
from typing import Any

import pytest
from qitcore import _core

_RESULTS: dict[str, dict[str, tuple[float, int]]] = defaultdict(dict)
_NOTES: list[str] = []
_RATIOS: dict[str, list[dict[str, Any]]] = defaultdict(list)


@pytest.fixture
def record() -> Any:
    """``record(case, impl, benchmark, input_bits)`` after ``benchmark.pedantic`` has run."""

    def _record(case: str, impl: str, benchmark: Any, input_bits: int) -> None:
        median = float(benchmark.stats.stats.median)
        benchmark.extra_info["input_Mbit_per_s"] = input_bits / median / 1e6
        _RESULTS[case][impl] = (median, input_bits)

    return _record


@pytest.fixture
def note() -> Any:
    """Adds a line to the summary (e.g. peak memory)."""
    return _NOTES.append


@pytest.fixture
def compare() -> Any:
    """``compare(group, input_name, qitcore_seconds, peer_seconds, detail, cpu=(ours, peer),
    equal_work=ratio)``: one input's ratio of medians, of CPU time, and at equal work when the two
    did different amounts of it (e.g. permutations)."""

    def _compare(
        group: str,
        name: str,
        ours: float,
        peer: float,
        detail: str,
        cpu: tuple[float, float] | None = None,
        equal_work: float | None = None,
    ) -> None:
        _RATIOS[group].append(
            {"name": name, "ours": ours, "peer": peer, "detail": detail, "cpu": cpu, "equal_work": equal_work}
        )

    return _compare


def _write_ratios(write: Any) -> None:
    for group, rows in _RATIOS.items():
        # The figure to quote is the worst case: at equal work where measured, else of medians.
        def key(row: dict[str, Any]) -> float:
            return float(row["equal_work"] if row["equal_work"] is not None else row["peer"] / row["ours"])

        rows.sort(key=key)
        write("")
        write(f"{group}: qitcore against the peer per input, smallest ratio first (minimum {key(rows[0]):.1f}x)")
        write(
            f"{'input':<18} {'qitcore':>9} {'peer':>9} {'ratio':>7} {'CPU q.':>8} {'CPU peer':>9} {'CPU ratio':>9}"
            f" {'equal work':>10}  detail"
        )
        for r in rows:
            cpu = r["cpu"] or (float("nan"), float("nan"))
            equal = f"{r['equal_work']:.1f}x" if r["equal_work"] is not None else "-"
            write(
                f"{r['name']:<18} {r['ours']:>8.2f}s {r['peer']:>8.2f}s {r['peer'] / r['ours']:>6.1f}x "
                f"{cpu[0]:>7.2f}s {cpu[1]:>8.2f}s {cpu[1] / cpu[0]:>8.1f}x {equal:>10}  {r['detail']}"
            )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RESULTS:
        return
    write = terminalreporter.write_line
    cpu = platform.processor() or platform.machine()
    write("")
    write(f"qitcore benchmark summary ({os.cpu_count()} CPUs, {cpu}, clmul backend {_core.clmul_backend()})")
    write(f"{'case':<34} {'implementation':<24} {'median':>12} {'Mbit/s':>10} {'qitcore ×':>10}")
    for case, impls in _RESULTS.items():
        ours = [v for k, v in impls.items() if k.startswith("qitcore")]
        best_ours = min((t / bits for t, bits in ours), default=None)
        for impl, (median, bits) in impls.items():
            rate = bits / median / 1e6
            ratio = "" if impl.startswith("qitcore") or best_ours is None else f"{(median / bits) / best_ours:,.0f}"
            write(f"{case:<34} {impl:<24} {median * 1e3:>10.3f}ms {rate:>10.1f} {ratio:>10}")
    for line in _NOTES:
        write(line)
    _write_ratios(write)
