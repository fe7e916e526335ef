"""extract_file on a Dask cluster (client=): a real LocalCluster of two worker processes, each
reading its own ranges of the input and writing its output in place. The reference is the
single-process extract_file on the same input and seed file (itself checked against the in-memory
extractors in test_extract_file.py): the outputs must be equal byte for byte, whatever the ranges,
with a worker killed mid-run too; every failure leaves no output and no fresh seed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import distributed
import numpy as np
import pytest
from qitcore.archive import ClusterError
from qitcore.errors import InvalidArgumentError, InvalidLengthError, InvalidTypeError
from qitcore.extract_file import extract_file

from .dask_cluster import kill_a_worker_mid_run, local_cluster


@pytest.fixture(scope="module")
def client() -> Any:
    with local_cluster(secure=False) as c:  # reached by --scheduler with its address alone
        yield c


def _leftovers(folder: Path, *keep: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p not in keep)


@pytest.mark.parametrize(
    "options",
    [
        {"n": 4096, "m": 2048},
        {"n": 1000, "m": 333, "input_format": "bits"},  # blocks end inside bytes: ranges of 8 blocks
        {"bits_per_sample": 3, "min_entropy": 2.2},
        {"method": "modified-toeplitz", "n": 2048, "m": 1536, "bitorder": "little"},
        {"method": "sha256", "n": 512},
    ],
)
def test_the_output_is_the_single_process_run_s_byte_for_byte(
    client: distributed.Client, tmp_path: Path, options: dict[str, Any]
) -> None:
    bits = options.get("bits_per_sample", 8)
    rng = np.random.default_rng(5)
    # Not a whole number of blocks: the last range is short and its trailing bits dropped.
    src = tmp_path / "raw.bin"
    src.write_bytes(rng.integers(0, 1 << bits, 3_000_017, dtype=np.uint8).tobytes())
    sha = options.get("method") == "sha256"
    cluster = extract_file(src, tmp_path / "cluster.bin", client=client, task_bytes=200_000, **options)
    assert cluster.seed_written is (not sha)
    single = extract_file(
        src, tmp_path / "single.bin", seed_file=None if sha else tmp_path / "cluster.bin.seed", **options
    )
    assert (tmp_path / "cluster.bin").read_bytes() == (tmp_path / "single.bin").read_bytes()
    assert (cluster.blocks, cluster.bits_out, cluster.dropped_bits) == (
        single.blocks,
        single.bits_out,
        single.dropped_bits,
    )
    assert cluster.blocks > 8 and cluster.dropped_bits > 0


def test_a_seed_file_is_read_by_the_workers(client: distributed.Client, tmp_path: Path) -> None:
    src = tmp_path / "raw.bin"
    src.write_bytes(os.urandom(1 << 20))
    single = extract_file(src, tmp_path / "single.bin", n=4096, m=1024)
    assert single.seed_file is not None
    extract_file(
        src, tmp_path / "cluster.bin", n=4096, m=1024, seed_file=single.seed_file, client=client, task_bytes=1 << 16
    )
    assert (tmp_path / "cluster.bin").read_bytes() == (tmp_path / "single.bin").read_bytes()


def test_a_bad_sample_on_a_worker_is_its_error_and_nothing_is_left(client: distributed.Client, tmp_path: Path) -> None:
    src = tmp_path / "raw.bin"
    data = bytearray(np.random.default_rng(2).integers(0, 4, 1 << 20, dtype=np.uint8).tobytes())
    data[900_001] = 9  # in a late range
    src.write_bytes(bytes(data))
    with pytest.raises(InvalidArgumentError, match="offset 900001 is 9, wider than 2 bits"):
        extract_file(src, tmp_path / "out.bin", bits_per_sample=2, m=1024, client=client, task_bytes=100_000)
    assert _leftovers(tmp_path, src) == []


def test_bad_cluster_arguments_are_refused_before_any_output(client: distributed.Client, tmp_path: Path) -> None:
    src = tmp_path / "raw.bin"
    src.write_bytes(bytes(10_000))
    with pytest.raises(InvalidTypeError, match="^client: expected a distributed.Client"):
        extract_file(src, tmp_path / "out.bin", m=100, client="tcp://127.0.0.1:1")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="^task_bytes"):
        extract_file(src, tmp_path / "out.bin", m=100, client=client, task_bytes=0)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InvalidArgumentError, match="not a regular file"):
        # O_RDWR elsewhere would block no one: opening a FIFO for reading waits for a writer.
        fd = os.open(fifo, os.O_RDWR)
        try:
            extract_file(fifo, tmp_path / "out.bin", m=100, client=client)
        finally:
            os.close(fd)
    assert _leftovers(tmp_path, src, fifo) == []


def _extract_and_kill_a_worker(client: distributed.Client, src: Path, dst: Path, seed: Path | None) -> Any:
    """extract_file with its running range's worker killed. Returns the result or the exception."""

    def call() -> Any:
        return extract_file(src, dst, bits_per_sample=3, m=2048, seed_file=seed, client=client, task_bytes=4 << 20)

    return kill_a_worker_mid_run(client, call)


@pytest.fixture(scope="module")
def slow_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 3-bit samples go through numpy's bit unpacking: seconds of work to kill a worker in.
    src = tmp_path_factory.mktemp("slow") / "raw3.bin"
    src.write_bytes(np.random.default_rng(8).integers(0, 8, 48 << 20, dtype=np.uint8).tobytes())
    return src


def test_a_worker_killed_mid_run_costs_time_not_bytes(
    client: distributed.Client, slow_input: Path, tmp_path: Path
) -> None:
    reference = extract_file(slow_input, tmp_path / "single.bin", bits_per_sample=3, m=2048)
    outcome = _extract_and_kill_a_worker(client, slow_input, tmp_path / "cluster.bin", Path(str(reference.seed_file)))
    assert not isinstance(outcome, BaseException), outcome
    # Dask ran the killed worker's range again elsewhere; the rewrite put the same bytes in place.
    assert (tmp_path / "cluster.bin").read_bytes() == (tmp_path / "single.bin").read_bytes()
    client.wait_for_workers(2, timeout=30)


def test_a_worker_killed_past_the_scheduler_s_allowance_leaves_nothing(slow_input: Path, tmp_path: Path) -> None:
    with local_cluster(**{"distributed.scheduler.allowed-failures": 0}) as client:
        error = _extract_and_kill_a_worker(client, slow_input, tmp_path / "out.bin", None)
    assert isinstance(error, ClusterError), error
    assert "failed on the Dask cluster" in str(error) and "KilledWorker" in str(error)
    # Neither the output nor the fresh seed it would have needed.
    assert _leftovers(tmp_path) == []


def test_the_command_line_runs_on_a_scheduler(client: distributed.Client, tmp_path: Path, capsys: Any) -> None:
    from qitcore.cli import main

    src = tmp_path / "raw.bin"
    src.write_bytes(os.urandom(3 << 20))
    assert main(["extract", str(src), "-o", str(tmp_path / "single.bin"), "-m", "2048", "--quiet"]) == 0
    seed = str(tmp_path / "single.bin.seed")
    address = client.scheduler.address
    args = ["extract", str(src), "-o", str(tmp_path / "cluster.bin"), "-m", "2048", "--seed-file", seed]
    assert main([*args, "--scheduler", address]) == 0
    assert (tmp_path / "cluster.bin").read_bytes() == (tmp_path / "single.bin").read_bytes()
    capsys.readouterr()
    # No scheduler there: one error line, no output.
    assert main([*args[:3], str(tmp_path / "none.bin"), *args[4:], "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert capsys.readouterr().err.startswith("qitcore: error: scheduler tcp://127.0.0.1:9: cannot connect")
    assert not (tmp_path / "none.bin").exists()


def test_an_input_without_a_whole_block_is_an_error_on_the_cluster_too(
    client: distributed.Client, tmp_path: Path
) -> None:
    src = tmp_path / "raw.bin"
    for size in (0, 100):
        src.write_bytes(os.urandom(size))
        with pytest.raises(InvalidLengthError, match="fewer than one block"):
            extract_file(src, tmp_path / "out.bin", m=1024, client=client)
        assert _leftovers(tmp_path, src) == []
    src.write_bytes(os.urandom(10_000))
    with pytest.raises(InvalidArgumentError, match="not a regular file"):
        extract_file(src, "/dev/null", m=1024, save_seed=tmp_path / "s", client=client)
    assert _leftovers(tmp_path, src) == []


SHORT_WRITES = """
import os, resource, signal, sys
import distributed
from qitcore.extract_file import extract_file

if __name__ == "__main__":
    src, out, seed = sys.argv[1:]
    expected = 128_000  # 8,000 blocks of 4096 bits, 16 bytes out each
    # Past the limit a write fails with EFBIG (its signal ignored) or writes short: either must
    # be an error, never an output with a hole or a missing tail.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (expected - 100, resource.RLIM_INFINITY))
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            try:
                extract_file(src, out, n=4096, m=128, seed_file=seed, client=client, task_bytes=1 << 20)
            except Exception as exc:
                print("refused", type(exc).__name__, exc)
            else:
                print("written", os.path.getsize(out))
"""


def test_a_write_the_file_system_cuts_short_fails_the_run(tmp_path: Path) -> None:
    src = tmp_path / "raw.bin"
    src.write_bytes(os.urandom(8_000 * 4096 // 8))
    seed = tmp_path / "seed"
    extract_file(src, tmp_path / "ref.bin", n=4096, m=128, save_seed=seed)
    assert (tmp_path / "ref.bin").stat().st_size == 128_000  # the size the script's limit cuts
    script = tmp_path / "short.py"
    script.write_text(SHORT_WRITES)
    done = subprocess.run(
        [sys.executable, str(script), str(src), str(tmp_path / "out.bin"), str(seed)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.startswith("refused"), done.stdout + done.stderr
    assert not (tmp_path / "out.bin").exists()
