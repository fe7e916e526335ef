"""Memory of the entropy assessments: bounded per sample, refused past the limit before anything
is read or allocated, and slices of large files read alone.

Peak memory is each run's own maximum resident set, measured in a fresh interpreter. The figure it
is held to comes from NIST's tools on the same kind of data (random samples, measured with
``/usr/bin/time -v``): ``ea_non_iid`` 106 bytes a sample for 8-bit samples (its suffix array and
LCP array of the bit string, 12 bytes a bit), ``ea_iid`` 23.5 bytes a sample with two threads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from qitcore import entropy
from qitcore.errors import InvalidLengthError, QitError

#: Bytes a sample that each track may add to the peak (measured: 9 and 11 with the two copies of the
#: samples the child holds): a fifth of NIST's ``ea_non_iid`` (106), two thirds of ``ea_iid`` at two
#: threads (23.5).
NON_IID_BYTES_PER_SAMPLE = 20
IID_BYTES_PER_SAMPLE = 16

#: A file past the limit costs nothing on disk: a sparse file of 3 GiB.
BIG = 3 << 30

_PEAK = """
import resource, sys
import numpy as np
from qitcore import entropy
track, n, bits = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = np.random.default_rng(5).integers(0, 1 << bits, n, dtype=np.uint8).tobytes()
if track == "non_iid":
    entropy.assess_non_iid(data)
else:
    entropy.assess_iid(data, permutations=40, seed=1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _env() -> dict[str, str]:
    # The IID track's memory grows with its worker threads: fix them, as NIST's figure was taken.
    return {**os.environ, "RAYON_NUM_THREADS": "2"}


def _peak(track: str, n: int, bits: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, track, str(n), str(bits)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        check=True,
    )
    return int(out.stdout.split()[-1])


def _cli_peak(*args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """Runs ``qitcore ARGS`` in a child of a fresh interpreter and returns it with its peak."""
    code = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run([sys.executable, '-m', 'qitcore', *sys.argv[1:]], capture_output=True, text=True)\n"
        "sys.stderr.write(p.stderr); sys.stdout.write(p.stdout)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
        "sys.exit(p.returncode)\n"
    )
    p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=_env())
    return p, int(p.stdout.split()[-1])


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(BIG)
    return path


@pytest.mark.parametrize(
    "command", [["assess"], ["assess", "--iid"], ["restart", "_", "4"], ["health", "--min-entropy", "4", "--fips"]]
)
def test_files_past_the_limit_are_refused_before_reading(big_file: Path, command: list[str]) -> None:
    args = [a if a != "_" else str(big_file) for a in command]
    if "_" not in command:
        args.insert(1, str(big_file))
    start = time.monotonic()
    p, peak = _cli_peak(*args)
    assert p.returncode == 2, p.stderr
    # One line, naming the file, its size, the limit and the option that reads a slice.
    line = p.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    limit = 1_000_000 if command[0] == "restart" else entropy.MAX_SAMPLES
    assert str(big_file) in line and str(BIG) in line and f"the {limit} " in line, line
    assert "--subset INDEX,COUNT" in line, line
    # Nothing of the file was read: far below its 3 GiB.
    assert peak < 200 << 20, peak
    assert time.monotonic() - start < 20


def test_the_health_tests_alone_scan_a_file_past_the_limit_in_chunks(tmp_path: Path) -> None:
    # Five times the in-memory limit, a pattern no test fires on: every sample is read and tested.
    path = tmp_path / "long.bin"
    pattern = bytes(range(256)) * 4096
    with open(path, "wb") as f:
        for _ in range(5 * entropy.MAX_SAMPLES // len(pattern) + 1):
            f.write(pattern)
    size = path.stat().st_size
    p, peak = _cli_peak("health", str(path), "--min-entropy", "7")
    assert p.returncode == 0, p.stderr
    assert f"{path}: {size} samples; cutoffs" in p.stdout and "no health test fired" in p.stdout, p.stdout
    assert peak < 200 << 20, peak


def test_read_samples_refuses_by_size_and_bounds_reads_of_pipes(big_file: Path) -> None:
    with pytest.raises(InvalidLengthError, match=f"{BIG} samples, more than the {entropy.MAX_SAMPLES} "):
        entropy.read_samples(big_file)
    # A device has no size: it is read one sample past the limit, then refused.
    with pytest.raises(InvalidLengthError, match="more than 1000 samples"):
        entropy.read_samples("/dev/zero", max_samples=1000)
    with pytest.raises(InvalidLengthError, match="subset count"):
        entropy.read_samples(big_file, subset=(0, entropy.MAX_SAMPLES + 1))
    with pytest.raises(QitError, match="past the file"):
        entropy.read_samples(big_file, subset=(BIG, 1))


def test_the_core_refuses_too_many_samples_before_allocating() -> None:
    # Zeroed pages are not resident until touched: the array costs nothing unless it is read.
    data = np.zeros(entropy.MAX_SAMPLES + 1, dtype=np.uint8)
    for assess in (entropy.assess_non_iid, entropy.assess_iid):
        with pytest.raises(InvalidLengthError, match=f"limit of {entropy.MAX_SAMPLES} samples"):
            assess(data)


def test_a_slice_of_a_large_file_is_read_alone(big_file: Path, tmp_path: Path) -> None:
    # Random samples 2 GiB into a sparse 3 GiB file; --subset names their block.
    count = 100_000
    index = (2 << 30) // count
    samples = np.random.default_rng(9).integers(0, 16, count, dtype=np.uint8).tobytes()
    with open(big_file, "r+b") as f:
        f.seek(index * count)
        f.write(samples)
    out = tmp_path / "slice.json"
    p, peak = _cli_peak("assess", str(big_file), "--subset", f"{index},{count}", "--quiet", "--json", str(out))
    assert p.returncode == 0, p.stderr
    assert peak < 400 << 20, peak
    text = out.read_text()
    json.loads(text)
    assert f'"hAssessed": {json.dumps(entropy.assess_non_iid(samples).h_assessed)}' in text, text
    assert entropy.read_samples(big_file, subset=(index, count)) == samples


@pytest.mark.parametrize(
    ("track", "bits", "bound"),
    [
        ("non_iid", 8, NON_IID_BYTES_PER_SAMPLE),
        ("non_iid", 1, NON_IID_BYTES_PER_SAMPLE),
        ("iid", 8, IID_BYTES_PER_SAMPLE),
    ],
)
def test_peak_memory_per_sample_is_bounded(track: str, bits: int, bound: int) -> None:
    # The growth from 200,000 to 2,000,000 samples, per sample: the fixed costs (dictionaries,
    # tables, the interpreter) cancel. The samples themselves are in it twice (numpy and bytes).
    small, large = 200_000, 2_000_000
    per_sample = (_peak(track, large, bits) - _peak(track, small, bits)) / (large - small)
    assert per_sample < bound, f"{track} {bits}-bit: {per_sample:.1f} bytes a sample"


_BROKEN = """
import resource, sys
import numpy as np
from qitcore import entropy
kind, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(5)
if kind == "periodic":  # a stuck source repeating 1000 samples
    data = np.tile(rng.integers(0, 256, 1000, dtype=np.uint8), n // 1000).tobytes()
else:  # a capture written twice: one repeat of half its length, every shorter tuple rare
    half = rng.integers(0, 256, n // 2, dtype=np.uint8).tobytes()
    data = half + half
entropy.assess_non_iid(data)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""

#: Bytes a sample the non-IID track may add on 8-bit data whose repeats are too long for the
#: bounded suffix sort (measured 79 and 53): the bit string, its suffix array and PLCP array (64),
#: the same for the samples (8), then the walks' arrays, which are counted from ``u`` on only.
#: Before the walks were split it was 142 on the periodic source.
BROKEN_BYTES_PER_SAMPLE = 90


@pytest.mark.parametrize("kind", ["periodic", "doubled"])
def test_peak_memory_on_a_broken_source_is_bounded(kind: str) -> None:
    def peak(n: int) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _BROKEN, kind, str(n)], capture_output=True, text=True, timeout=120, check=True
        )
        return int(out.stdout.split()[-1])

    small, large = 200_000, 2_000_000
    per_sample = (peak(large) - peak(small)) / (large - small)
    assert per_sample < BROKEN_BYTES_PER_SAMPLE, f"{kind}: {per_sample:.1f} bytes a sample"


_OUT_OF_MEMORY = """
import resource, sys, time
import numpy as np
from qitcore import entropy
from qitcore.errors import OutOfMemoryError
if sys.argv[1] == "stuck":
    data = np.tile(np.random.default_rng(5).integers(0, 256, 1000, dtype=np.uint8), 16_000).tobytes()
else:  # alternating bits: the walk's stack of open intervals holds half the symbols
    data = (np.arange(16_000_000) % 2).astype(np.uint8).tobytes()
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + (int(sys.argv[2]) << 20), resource.RLIM_INFINITY))
start = time.monotonic()
try:
    entropy.assess_non_iid(data)
    print("assessed")
except OutOfMemoryError as exc:
    print("refused", round(time.monotonic() - start, 1), exc)
print("next", entropy.assess_non_iid(data[:100_000]).h_assessed)
"""


@pytest.mark.parametrize(("source", "allowance"), [("stuck", 400), ("alternating", 330), ("alternating", 450)])
def test_an_assessment_that_cannot_get_its_memory_raises_and_stops_its_estimators(source: str, allowance: int) -> None:
    """16 million samples of a broken source under an address-space allowance (MiB): a stuck
    8-bit source's bit string needs about a GiB for its suffix sort; alternating bits need their
    suffix array, then a stack of open intervals growing to half the symbols (which aborted the
    process where it could not grow). The track raises OutOfMemoryError within seconds, its
    other estimators stopped, and the process assesses on."""
    out = subprocess.run(
        [sys.executable, "-c", _OUT_OF_MEMORY, source, str(allowance)],
        capture_output=True, text=True, timeout=120, env=_env(), check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    refused, after = out.stdout.splitlines()
    word, seconds, message = refused.split(" ", 2)
    assert word == "refused" and "could not allocate" in message, out.stdout
    assert float(seconds) < 15, out.stdout  # the whole track takes about 45 s on this data
    assert after == "next -0.0" or after == "next 0.0", after
