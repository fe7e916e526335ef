"""Assessing many files (qitcore.archive.assess_files, ``qitcore assess FILE...``): 16 corpus files
(qitcore.corpus, the ten sources cycled over seeds, 1,000,000 samples each) on the non-IID track,
in process and on a Dask LocalCluster of 1 and of 2 single-threaded worker processes (the core's
threads shared out among them), every result checked against the in-process run; then what the
Dask path costs besides the work: per task (64 files of 1,000 samples, where the assessment itself
is a millisecond) and for starting and closing the local cluster that ``jobs=2`` starts per call.

``QITCORE_BENCH_ARCHIVE_SAMPLES`` sets the samples per file (smaller for a quick run).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import distributed
import pytest
from qitcore import corpus
from qitcore.archive import FileAssessment, assess_files, local_cluster

FILES = 16
SAMPLES = int(os.environ.get("QITCORE_BENCH_ARCHIVE_SAMPLES", corpus.DEFAULT_SAMPLES))
TINY_FILES, TINY_SAMPLES = 64, 1_000
CASE = f"assess {FILES} files x {SAMPLES:,} samples (non-IID)"

#: The in-process run's records and median time, which the Dask runs are checked and compared against.
_LOCAL: dict[str, Any] = {}


def _write(folder: Path, count: int, samples: int) -> list[Path]:
    paths = []
    for i in range(count):
        source = corpus.SOURCES[i % len(corpus.SOURCES)]
        path = folder / f"{i:02d}-{source.name}.bin"
        path.write_bytes(corpus.generate(source.name, samples, seed=corpus.DEFAULT_SEED + i // len(corpus.SOURCES)))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return _write(tmp_path_factory.mktemp("archive"), FILES, SAMPLES)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return _write(tmp_path_factory.mktemp("tiny"), TINY_FILES, TINY_SAMPLES)


@contextlib.contextmanager
def cluster(workers: int) -> Iterator[distributed.Client]:
    """As ``assess_files(jobs=N)`` starts one, but kept across the benchmark's rounds."""
    with (
        local_cluster(workers) as local,
        distributed.Client(local) as client,
    ):
        client.wait_for_workers(workers, timeout=60)
        yield client


def _results(records: list[FileAssessment]) -> list[tuple[str, str | None, Any]]:
    return [(r.path, r.sha256, r.non_iid) for r in records]


def _local(files: list[Path]) -> list[FileAssessment]:
    if "records" not in _LOCAL:
        start = time.perf_counter()
        _LOCAL["records"] = assess_files(files)
        _LOCAL.setdefault("seconds", time.perf_counter() - start)
    records: list[FileAssessment] = _LOCAL["records"]
    return records


def test_in_process(benchmark: Any, record: Any, note: Any, files: list[Path]) -> None:
    records = benchmark.pedantic(assess_files, args=(files,), rounds=3, warmup_rounds=0)
    assert all(r.ok for r in records)
    _LOCAL["records"] = records
    _LOCAL["seconds"] = float(benchmark.stats.stats.median)
    record(CASE, "in process", benchmark, FILES * SAMPLES * 8)
    cpu = sum(r.seconds for r in records)
    note(f"{CASE}, in process: median {_LOCAL['seconds']:.2f} s ({cpu / FILES:.2f} s a file, last round)")


@pytest.mark.parametrize("workers", [1, 2])
def test_on_a_local_dask_cluster(benchmark: Any, record: Any, note: Any, files: list[Path], workers: int) -> None:
    local = _local(files)
    with cluster(workers) as client:
        # The warm-up round imports qitcore in the workers, as a long-lived cluster has done already.
        records = benchmark.pedantic(
            lambda: assess_files(files, client=client), rounds=3 if workers == 2 else 2, warmup_rounds=1
        )
    assert _results(records) == _results(local)
    record(CASE, f"Dask, {workers} worker{'s' * (workers > 1)}", benchmark, FILES * SAMPLES * 8)
    median = float(benchmark.stats.stats.median)
    ours = _LOCAL["seconds"]
    note(
        f"{CASE}, Dask LocalCluster of {workers} worker process{'es' * (workers > 1)} (one task at a time each, "
        f"the core's threads: {max(1, (os.cpu_count() or 1) // workers)} each): median {median:.2f} s, "
        f"{ours / median:.2f}x the in-process run ({ours:.2f} s); results identical"
    )


def test_dask_overhead_per_task(benchmark: Any, note: Any, tiny_files: list[Path]) -> None:
    start = time.perf_counter()
    local = assess_files(tiny_files)
    here = time.perf_counter() - start
    with cluster(2) as client:
        records = benchmark.pedantic(lambda: assess_files(tiny_files, client=client), rounds=5, warmup_rounds=1)
    assert _results(records) == _results(local)
    median = float(benchmark.stats.stats.median)
    note(
        f"Dask per task: {TINY_FILES} files of {TINY_SAMPLES:,} samples on 2 workers in {median * 1e3:.0f} ms "
        f"(in process {here * 1e3:.0f} ms): {(median - here / 2) / TINY_FILES * 1e3:.1f} ms a file beyond the work"
    )


def test_local_cluster_start_and_close(benchmark: Any, note: Any, tiny_files: list[Path]) -> None:
    # Two files: jobs are capped at the files, and one file would run here without a cluster.
    two = tiny_files[:2]
    start = time.perf_counter()
    assess_files(two)
    here = time.perf_counter() - start
    benchmark.pedantic(lambda: assess_files(two, jobs=2), rounds=3, warmup_rounds=0)
    median = float(benchmark.stats.stats.median)
    note(
        f"assess_files(jobs=2) on two tiny files: median {median:.2f} s, of which the cluster's start and close "
        f"{median - here:.2f} s"
    )
