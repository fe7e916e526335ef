"""Assessing many files (qitcore.archive.assess_files): in process, on a real Dask LocalCluster of
two single-threaded worker processes, and on a local cluster the call starts itself. Every result
is checked against the in-process entropy.assess_* on the same samples (results compare by value,
every estimator's every field); a killed worker must not lose or corrupt a file's result."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import distributed
import numpy as np
import pytest
from qitcore import archive, corpus
from qitcore.archive import ClusterError, FileAssessment, assess_files
from qitcore.entropy import assess_iid, assess_non_iid
from qitcore.errors import InvalidArgumentError, InvalidTypeError

from .dask_cluster import kill_a_worker_mid_run, local_cluster

#: Small files and few permutations: the module's Dask tests take seconds, not minutes.
SAMPLES = 20_000
PERMUTATIONS = 60
SEED = 11
SOURCES = ("uniform-8", "gauss-4", "biased-1", "correlated-8")


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with local_cluster() as c:
        yield c


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("archive")
    paths = []
    for name in SOURCES:
        path = folder / f"{name}.bin"
        path.write_bytes(corpus.generate(name, samples=SAMPLES))
        paths.append(path)
    return paths


def check_against_in_process(record: FileAssessment, path: Path, track: str) -> None:
    data = path.read_bytes()
    assert record.error is None and record.path == str(path)
    assert record.size == len(data)
    import hashlib

    assert record.sha256 == hashlib.sha256(data).hexdigest()
    if track in ("non-iid", "both"):
        assert record.non_iid == assess_non_iid(data)
    else:
        assert record.non_iid is None
    if track in ("iid", "both"):
        assert record.iid == assess_iid(data, permutations=PERMUTATIONS, seed=SEED)
    else:
        assert record.iid is None


@pytest.mark.parametrize("track", ["non-iid", "iid", "both"])
def test_in_process_results_equal_the_entropy_module_s(files: list[Path], track: str) -> None:
    records = assess_files(files, track=track, permutations=PERMUTATIONS, seed=SEED)  # type: ignore[arg-type]
    assert [r.path for r in records] == [str(p) for p in files]
    for record, path in zip(records, files, strict=True):
        check_against_in_process(record, path, track)


def test_on_a_cluster_every_estimator_equals_the_in_process_run(client: distributed.Client, files: list[Path]) -> None:
    # Reversed and repeated: records come back in input order, whatever order the tasks finish in.
    paths = [*files[::-1], files[0]]
    done: list[tuple[int, int]] = []
    records = assess_files(
        paths, track="both", permutations=PERMUTATIONS, seed=SEED, client=client, progress=lambda *a: done.append(a)
    )
    assert [r.path for r in records] == [str(p) for p in paths]
    for record, path in zip(records, paths, strict=True):
        check_against_in_process(record, path, "both")
    assert done == [(i, len(paths)) for i in range(1, len(paths) + 1)]
    # Only results travelled back: the cluster keeps nothing of the call.
    assert not client.who_has()


def test_on_a_cluster_iid_results_equal_where_statistics_are_decided_within_a_batch(
    client: distributed.Client, files: list[Path]
) -> None:
    """The workers run the core on one thread, this process on all: rounds are batched by the
    thread count, and a statistic decided inside a batch once changed the rounds after it."""
    biased = files[SOURCES.index("biased-1")]
    [record] = assess_files([biased], track="iid", permutations=200, seed=1, client=client)
    assert record.iid == assess_iid(biased.read_bytes(), permutations=200, seed=1)


def test_a_block_of_each_file_is_assessed_as_that_block_is_here_and_on_a_cluster(
    client: distributed.Client, files: list[Path]
) -> None:
    here = assess_files(files[:2], track="both", permutations=PERMUTATIONS, seed=SEED, subset=(1, 8_000))
    there = assess_files(
        files[:2], track="both", permutations=PERMUTATIONS, seed=SEED, subset=(1, 8_000), client=client
    )
    for record, path in zip(here, files[:2], strict=True):
        block = path.read_bytes()[8_000:16_000]
        assert record.error is None and record.size == len(block)
        assert record.non_iid == assess_non_iid(block)
        assert record.iid == assess_iid(block, permutations=PERMUTATIONS, seed=SEED)
    assert [(r.size, r.sha256, r.non_iid, r.iid) for r in there] == [(r.size, r.sha256, r.non_iid, r.iid) for r in here]
    # A block that ends past a file's end is an error record of that file.
    records = assess_files(files[:2], track="iid", permutations=PERMUTATIONS, seed=SEED, subset=(2, 7_000))
    for record in records:
        assert record.error == "subset 2,7000: the block ends past the end of the file (20000 samples)"
        assert record.iid is None


def test_the_cluster_jobs_starts_refuses_a_client_without_its_credentials(client: distributed.Client) -> None:
    """Its ports are on the loopback, open to every local user: a client that does not hold the
    credentials made for the cluster (another user's process) cannot connect to submit work."""
    from distributed.security import Security

    address = client.scheduler.address
    assert address.startswith("tls://127.0.0.1:")
    # Plain TCP, and TLS with credentials of the intruder's own making.
    for attempt, security in ((address.replace("tls://", "tcp://"), None), (address, Security.temporary())):
        with pytest.raises(OSError):
            distributed.Client(attempt, security=security, timeout=3)
    assert client.submit(sum, [1, 2]).result() == 3  # the cluster's own client works


def test_a_bad_file_carries_its_error_and_the_others_are_kept(
    client: distributed.Client, files: list[Path], tmp_path: Path
) -> None:
    empty, missing, wide = tmp_path / "empty.bin", tmp_path / "missing.bin", tmp_path / "wide.bin"
    empty.write_bytes(b"")
    wide.write_bytes(bytes([0, 1, 2, 7, 1] * 100))
    paths = [files[0], empty, files[1], missing, wide]
    for where in ({"client": client}, {}):
        records = assess_files(paths, **where)
        assert [r.ok for r in records] == [True, False, True, False, True]
        assert records[1].error == "no samples" and records[1].sha256 is None and records[1].size == 0
        assert records[3].error is not None and "No such file" in records[3].error
        check_against_in_process(records[0], files[0], "non-iid")
        check_against_in_process(records[2], files[1], "non-iid")
    # A sample that does not fit bits_per_symbol is that file's error, with the offset NIST's tool gives.
    records = assess_files([wide, files[2]], bits_per_symbol=2, client=client)
    assert records[0].error is not None and "offset 3" in records[0].error and records[0].size == 500
    assert records[1].ok and records[1].non_iid == assess_non_iid(files[2].read_bytes(), bits_per_symbol=2)


def markov_file(path: Path, seed: int, n: int = 60_000) -> bytes:
    """A 1-bit Markov source that fails the compression statistic: every permutation runs, so a
    task lasts long enough (about a second) to kill its worker while it runs."""
    rng = np.random.default_rng(seed)
    data = (np.cumsum(rng.random(n) >= 0.7) % 2).astype(np.uint8).tobytes()
    path.write_bytes(data)
    return data


def run_and_kill_a_worker(client: distributed.Client, paths: list[Path], permutations: int) -> Any:
    """assess_files on ``paths``, its running task's worker killed 0.1 s into the permutations (each
    task runs about a second here). Returns the records, or the exception raised."""

    def call() -> Any:
        return assess_files(paths, track="iid", permutations=permutations, seed=SEED, client=client)

    return kill_a_worker_mid_run(client, call, after=0.1)


def test_a_worker_killed_mid_run_costs_time_not_results(client: distributed.Client, tmp_path: Path) -> None:
    paths = [tmp_path / f"markov-{seed}.bin" for seed in range(3)]
    expected = [assess_iid(markov_file(p, seed), permutations=250, seed=SEED) for seed, p in enumerate(paths)]
    records = run_and_kill_a_worker(client, paths, 250)
    # Dask's scheduler ran the killed task again on a live worker: complete and correct.
    assert isinstance(records, list), records
    assert [r.iid for r in records] == expected
    assert all(not r.iid.passed and r.iid.permutation_rounds == 250 for r in records if r.iid is not None)
    client.wait_for_workers(2, timeout=30)  # the nanny restarted the killed one


def test_a_worker_killed_past_the_scheduler_s_allowance_is_a_clear_error(tmp_path: Path) -> None:
    paths = [tmp_path / f"markov-{seed}.bin" for seed in range(2)]
    for seed, p in enumerate(paths):
        markov_file(p, seed)
    # No failure allowed: the killed worker's task is not run again, and the call must say so.
    # All 10,000 permutations: the kill lands mid-task on any machine, and the call ends with it
    # (the other task is cancelled), so the length costs nothing.
    with local_cluster(**{"distributed.scheduler.allowed-failures": 0}) as client:
        error = run_and_kill_a_worker(client, paths, 10_000)
    assert isinstance(error, ClusterError), error
    assert "its task failed on the Dask cluster" in str(error) and "KilledWorker" in str(error)
    assert any(str(error).startswith(f"{p}: ") for p in paths)


def test_jobs_starts_a_local_cluster_for_the_call_and_closes_it(files: list[Path]) -> None:
    import psutil

    def processes() -> set[int]:
        # multiprocessing's resource tracker stays for the life of this process, by design.
        return {
            p.pid for p in psutil.Process().children(recursive=True) if "resource_tracker" not in " ".join(p.cmdline())
        }

    before = processes()
    records = assess_files(files[:2], track="both", permutations=PERMUTATIONS, seed=SEED, jobs=2)
    for record, path in zip(records, files[:2], strict=True):
        check_against_in_process(record, path, "both")
    # The cluster's worker processes are gone once the call returns.
    assert processes() == before


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"paths": "one.bin"}, InvalidTypeError, "^paths: expected a sequence"),
        ({"paths": [1]}, InvalidTypeError, "^paths: expected a file path"),
        ({"paths": []}, InvalidArgumentError, "^paths: no file"),
        ({"track": "fast"}, InvalidArgumentError, "^track: expected one of"),
        ({"bits_per_symbol": 9}, InvalidArgumentError, "^bits_per_symbol"),
        ({"permutations": 0}, InvalidArgumentError, "^permutations"),
        ({"jobs": archive.max_jobs() + 1}, InvalidArgumentError, "^jobs: must be at most"),
        ({"subset": (0, 0)}, InvalidArgumentError, "^subset count"),
        ({"subset": (-1, 10)}, InvalidArgumentError, "^subset index"),
        ({"subset": (0, 2**26 + 1)}, InvalidArgumentError, "^subset count"),
        ({"subset": "0,10"}, InvalidArgumentError, "^subset: expected"),
        ({"seed": -1}, InvalidArgumentError, "^seed"),
        ({"jobs": 0}, InvalidArgumentError, "^jobs"),
        ({"progress": 3}, InvalidTypeError, "^progress: expected a callable"),
    ],
)
def test_arguments_are_checked_before_any_work(kwargs: dict[str, Any], error: type, message: str) -> None:
    args = {"paths": ["/nonexistent/a.bin"], **kwargs}
    with pytest.raises(error, match=message):
        assess_files(**args)


def test_a_client_must_be_a_dask_client_and_excludes_local_jobs(client: distributed.Client) -> None:
    with pytest.raises(InvalidTypeError, match="^client: expected a distributed.Client, got str"):
        assess_files(["/nonexistent/a.bin"], client="tcp://127.0.0.1:8786")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="^jobs: 2 local workers asked for with a client"):
        assess_files(["/nonexistent/a.bin"], client=client, jobs=2)


def test_without_dask_the_local_path_works_and_the_dask_options_say_what_to_install(files: list[Path]) -> None:
    # A fresh interpreter in which `import distributed` fails, as where the extra is not installed.
    code = f"""
import sys
sys.modules["distributed"] = None
from qitcore.archive import ClusterError, assess_files
records = assess_files([{str(files[0])!r}])
assert records[0].ok and "dask" not in sys.modules, sys.modules.keys()
# Two files: jobs=2 needs a cluster (one file would run here, jobs capped at the files).
for kwargs in ({{"jobs": 2}}, {{"client": object()}}):
    try:
        assess_files([{str(files[0])!r}, {str(files[1])!r}], **kwargs)
    except ClusterError as exc:
        assert "pip install 'qitcore[dask]'" in str(exc), exc
    else:
        raise AssertionError(kwargs)
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
