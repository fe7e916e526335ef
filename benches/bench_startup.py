"""Start-up: the wall time of ``qitcore --help`` and of ``import qitcore``, and of a whole
``qitcore assess`` (non-IID track) of a 1-bit file of 1,000,000 samples beside NIST's
``ea_non_iid FILE 1`` on the same file, each a fresh process, as a user runs them.

The commands run with their bytecode cached (``PYTHONPYCACHEPREFIX`` in a temporary folder, the
first, warm-up round writing it), as an installed package has it: with
``PYTHONDONTWRITEBYTECODE`` set, every run would compile qitcore's modules again.

NIST's tool is a peer only where it is installed: set ``QITCORE_NIST_EA`` to the folder holding
``ea_non_iid``. Its runs alternate with qitcore's (one before each of qitcore's rounds), so that a
shared machine's load moves both alike; the summary gives both medians and their ratio.
"""

from __future__ import annotations

import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from qitcore.entropy import assess_non_iid

NIST = os.environ.get("QITCORE_NIST_EA")
ROUNDS = 10
SAMPLES = 1_000_000

# The command as installed (the console script beside this interpreter), else `python -m qitcore`.
_SCRIPT = Path(sys.executable).with_name("qitcore")
QITCORE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "qitcore"]


@pytest.fixture(scope="module")
def one_bit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000,000 one-bit samples (one a byte) from a seeded generator: an ideal binary source."""
    generator = random.Random(2026)
    path = tmp_path_factory.mktemp("startup") / "one-bit.bin"
    path.write_bytes(bytes(byte & 1 for byte in generator.randbytes(SAMPLES)))
    return path


_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


@pytest.fixture(scope="module", autouse=True)
def _bytecode_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    _ENV["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))


def _run(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True, env=_ENV).stdout


def _wall(command: list[str], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        _run(command)
        times.append(time.perf_counter() - start)
    return times


def _summary(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1e3:.0f} ms (min {min(times) * 1e3:.0f}, max {max(times) * 1e3:.0f})"


def test_help(benchmark: Any, note: Any) -> None:
    out = benchmark.pedantic(_run, args=([*QITCORE, "--help"],), rounds=20, warmup_rounds=1)
    assert "usage: qitcore" in out
    interpreter = _wall([sys.executable, "-c", "pass"], 20)
    _run([sys.executable, "-c", "import qitcore"])  # its bytecode cached (the command's has been)
    imported = _wall([sys.executable, "-c", "import qitcore"], 20)
    note(f"qitcore --help: {_summary(list(benchmark.stats.stats.data))}, 20 runs ({' '.join(QITCORE)})")
    note(f"python -c 'import qitcore': {_summary(imported)}; python -c pass: {_summary(interpreter)}, 20 runs each")


def test_one_bit_assessment(benchmark: Any, record: Any, note: Any, one_bit_file: Path) -> None:
    nist_times: list[float] = []
    nist_out: list[str] = []

    def nist_round() -> None:
        # Untimed by pytest-benchmark (pedantic's setup), timed here: one NIST run per round.
        if NIST:
            start = time.perf_counter()
            nist_out.append(_run([str(Path(NIST) / "ea_non_iid"), str(one_bit_file), "1"]))
            nist_times.append(time.perf_counter() - start)

    out = benchmark.pedantic(
        _run, args=([*QITCORE, "assess", str(one_bit_file)],), setup=nist_round, rounds=ROUNDS, warmup_rounds=1
    )
    assessed = float(re.search(r"assessed\s+= (\S+) bits per sample", out)[1])  # type: ignore[index]
    ours = benchmark.stats.stats.median
    record("1-bit file, whole command", "qitcore assess", benchmark, SAMPLES)
    runs = list(benchmark.stats.stats.data)
    note(f"qitcore assess, 1-bit file of {SAMPLES:,} samples: {_summary(runs)}, {ROUNDS} runs")
    data = one_bit_file.read_bytes()
    compute = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        assert assess_non_iid(data).h_assessed == pytest.approx(assessed, abs=5e-7)
        compute.append(time.perf_counter() - start)
    note(f"  of which the assessment itself (assess_non_iid in this process): {_summary(compute)}")
    if NIST:
        theirs = float(re.search(r"H_original: (\S+)", nist_out[-1])[1])  # type: ignore[index]
        assert theirs == pytest.approx(assessed, abs=1e-6)
        nist_times = nist_times[1:]  # the first ran before qitcore's warm-up round
        nist = statistics.median(nist_times)
        note(
            f"NIST ea_non_iid FILE 1, same file, alternating with qitcore's runs: {_summary(nist_times)}, "
            f"{len(nist_times)} runs -> qitcore {nist / ours:.2f}x faster (medians); both assess {assessed:.6f}"
        )
    else:
        note("NIST ea_non_iid not installed (set QITCORE_NIST_EA to its folder to run it beside qitcore)")
