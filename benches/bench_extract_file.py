"""Extracting a file larger than one wants in memory: ``qitcore extract`` (a fresh process, start-up
included) and ``extract_file`` on a Dask LocalCluster of two worker processes, against
``Toeplitz.hash`` of the same bytes already in memory, on a 4 GiB file of random bytes that the
benchmark writes (n = 4096, m = 2048, one seed). Every output is checked against the in-memory
hash's; the command's peak resident set is noted (target: under 256 MiB, within 20 % of the
in-memory time). The input is read from the page cache; the command runs twice, writing a file
(synced to disk before it is renamed into place, so the disk's write speed counts; compared with
the in-memory hash followed by writing and syncing its output) and writing /dev/null (the
extraction alone).

``QITCORE_BENCH_EXTRACT_BYTES`` sets the file's size (smaller for a quick run).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qitcore.extract import Toeplitz
from qitcore.extract_file import extract_file

from .bench_archive import cluster

SIZE = int(os.environ.get("QITCORE_BENCH_EXTRACT_BYTES", 4 << 30))
N, M = 4096, 2048
CASE = f"extract {SIZE / (1 << 30):g} GiB n={N} m={M}"
_EXPECTED: dict[str, str] = {}
# The command's peak resident set, as the kernel reports it to the process that waits for it. A
# child forked from this process would start with this process's pages (gigabytes, here) counted
# in its peak; one forked from a small launcher starts with the launcher's few MiB.
_LAUNCHER = (
    "import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:]); _, status, usage = os.wait4(p.pid, 0); "
    "print(usage.ru_maxrss); sys.exit(os.waitstatus_to_exitcode(status))"
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("extract")
    src, seed = folder / "raw.bin", folder / "seed.bin"
    rng = np.random.default_rng(20261204)
    with open(src, "wb") as f:
        for start in range(0, SIZE, 64 << 20):
            f.write(rng.integers(0, 256, min(64 << 20, SIZE - start), dtype=np.uint8).tobytes())
    t = Toeplitz(N, M)
    seed.write_bytes(t.seed_bytes())
    seed.chmod(0o600)
    yield src, seed
    for path in folder.iterdir():
        path.unlink()


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(64 << 20):
            h.update(chunk)
    return h.hexdigest()


def _expected(src: Path, seed: Path) -> str:
    if not _EXPECTED:
        data = np.fromfile(src, dtype=np.uint8)
        _EXPECTED["sha256"] = hashlib.sha256(Toeplitz(N, M, seed.read_bytes()).hash(data)).hexdigest()
    return _EXPECTED["sha256"]


def test_in_memory(benchmark: Any, record: Any, source: tuple[Path, Path]) -> None:
    src, seed = source
    data = np.fromfile(src, dtype=np.uint8)
    t = Toeplitz(N, M, seed.read_bytes())
    out = benchmark.pedantic(t.hash, args=(data,), rounds=3, warmup_rounds=1)
    _EXPECTED["sha256"] = hashlib.sha256(out).hexdigest()
    record(CASE, "Toeplitz.hash in memory", benchmark, SIZE * 8)


def test_in_memory_then_written_and_synced(
    benchmark: Any, record: Any, source: tuple[Path, Path], tmp_path: Path
) -> None:
    """The like-for-like reference for the command writing a file: the in-memory hash, then its
    output written and synced as the command's is (the disk's write speed counts in both)."""
    src, seed = source
    data = np.fromfile(src, dtype=np.uint8)
    t = Toeplitz(N, M, seed.read_bytes())
    out = tmp_path / "out.bin"

    def run() -> None:
        result = t.hash(data)
        with open(out, "wb") as f:
            f.write(result)
            f.flush()
            os.fsync(f.fileno())

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert _digest(out) == _expected(src, seed)
    out.unlink()
    record(CASE, "Toeplitz.hash in memory, written and synced", benchmark, SIZE * 8)


@pytest.mark.parametrize("destination", ["file", "/dev/null"])
def test_command(
    benchmark: Any, record: Any, note: Any, source: tuple[Path, Path], tmp_path: Path, destination: str
) -> None:
    """To a file (synced to disk before the rename: the disk's write speed counts) and to
    /dev/null (written in place: the extraction alone, reading included)."""
    src, seed = source
    out = tmp_path / "out.bin" if destination == "file" else Path(destination)
    command = [sys.executable, "-m", "qitcore", "extract", str(src), "-o", str(out), "-m", str(M), "-n", str(N)]
    command += ["--seed-file", str(seed), "--quiet"]
    peaks: list[int] = []

    def run() -> None:
        if destination == "file":
            out.unlink(missing_ok=True)
        done = subprocess.run([sys.executable, "-c", _LAUNCHER, *command], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        peaks.append(int(done.stdout) * 1024)

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    if destination == "file":
        assert _digest(out) == _expected(src, seed), "qitcore extract disagrees with Toeplitz.hash"
    impl = f"qitcore extract -o {'FILE' if destination == 'file' else destination} (process)"
    record(CASE, impl, benchmark, SIZE * 8)
    note(f"{CASE}: {impl} peak resident set {max(peaks) / (1 << 20):.0f} MiB (largest of {len(peaks)} runs)")


def test_on_two_dask_workers(benchmark: Any, record: Any, source: tuple[Path, Path], tmp_path: Path) -> None:
    src, seed = source
    out = tmp_path / "out.bin"

    with cluster(2) as client:

        def run() -> None:
            out.unlink(missing_ok=True)
            extract_file(src, out, n=N, m=M, seed_file=seed, client=client)

        benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert _digest(out) == _expected(src, seed), "extract_file on Dask disagrees with Toeplitz.hash"
    record(CASE, "extract_file on 2 Dask workers", benchmark, SIZE * 8)
