"""``qitcore extract``: through ``qitcore.cli.main`` against the in-memory extractor, and as a real
process stopped by SIGINT (exit 130) or SIGTERM (143) with no output left; special destinations,
inputs without a block and blocks past the memory bound."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from qitcore.cli import main
from qitcore.extract import Toeplitz, hash_condition, output_length

from .stalled_fifo import stalled_fifo, wait_for_temp


def test_extract_with_min_entropy_writes_what_the_in_memory_hash_gives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = os.urandom(100_000)
    (tmp_path / "in").write_bytes(data)
    out = tmp_path / "out"
    assert main(["extract", str(tmp_path / "in"), "-o", str(out), "--min-entropy", "7.5", "--eps", "1e-30"]) == 0
    seed = Path(f"{out}.seed").read_bytes()
    m = output_length(4096, 7.5 * 512, 1e-30, per="block") // 8 * 8
    blocks = len(data) * 8 // 4096
    assert out.read_bytes() == Toeplitz(4096, m, seed).hash(data[: blocks * 512])
    printed = capsys.readouterr()
    assert f"{blocks:,} blocks of 4096 -> {m} bits" in printed.out
    assert f"{len(data) * 8 - blocks * 4096} trailing bits" in printed.out
    assert "out.seed" in printed.err and "secret" in printed.err
    assert seed.hex() not in printed.out + printed.err


def test_extract_reads_a_seed_file_and_takes_the_other_methods_and_formats(tmp_path: Path) -> None:
    data = os.urandom(20_000)
    (tmp_path / "in").write_bytes(data)
    hasher = Toeplitz(1000, 600, bitorder="little")
    (tmp_path / "key").write_bytes(hasher.seed_bytes())
    args = ["extract", str(tmp_path / "in"), "-o", str(tmp_path / "a"), "--quiet", "--format", "bits"]
    assert main([*args, "-n", "1000", "-m", "600", "--bitorder", "little", "--seed-file", str(tmp_path / "key")]) == 0
    assert (tmp_path / "a").read_bytes() == hasher.hash(data[:20_000], nbits=160_000)
    assert not Path(f"{tmp_path / 'a'}.seed").exists()
    sha = ["extract", str(tmp_path / "in"), "-o", str(tmp_path / "b"), "--method", "sha3-256", "-n", "800", "--quiet"]
    assert main(sha) == 0
    assert (tmp_path / "b").read_bytes() == hash_condition(data, 100, function="sha3-256")


def test_extract_refuses_to_overwrite_a_seed_and_leaves_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").write_bytes(os.urandom(1000))
    (tmp_path / "mine.seed").write_bytes(b"precious")
    args = ["extract", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", "100"]
    assert main([*args, "--save-seed", str(tmp_path / "mine.seed")]) == 2
    assert "mine.seed" in capsys.readouterr().err
    assert (tmp_path / "mine.seed").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "mine.seed"]
    # -m and --min-entropy exclude each other; either is needed for Toeplitz.
    assert main([*args, "--min-entropy", "7"]) == 2
    assert main(args[:-2]) == 2
    assert "either m" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and SIGINT are POSIX")
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_leave_no_output(tmp_path: Path, signum: signal.Signals, status: int) -> None:
    # A FIFO whose writer sends some samples and then nothing: the command waits in read().
    fifo, out = tmp_path / "fifo", tmp_path / "out"
    with stalled_fifo(fifo):
        child = subprocess.Popen(
            [sys.executable, "-m", "qitcore", "extract", str(fifo), "-o", str(out), "--min-entropy", "7"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # The seed file and the temporary output exist once the extraction is under way.
            wait_for_temp(tmp_path)
            assert Path(f"{out}.seed").exists()
            time.sleep(0.2)
            child.send_signal(signum)
            _, err = child.communicate(timeout=30)
        finally:
            child.kill()
    assert child.returncode == status, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


def test_a_special_destination_is_written_in_place_never_replaced(tmp_path: Path, capsys: Any) -> None:
    src = tmp_path / "in"
    src.write_bytes(os.urandom(10_000))
    # /dev/null stays the device; the fresh seed needs a file of its own, named.
    assert main(["extract", str(src), "-o", "/dev/null", "-m", "1024", "--quiet"]) == 2
    assert "--save-seed: /dev/null is not a regular file" in capsys.readouterr().err
    args = ["extract", str(src), "-o", "/dev/null", "-m", "1024", "--save-seed", str(tmp_path / "s"), "--quiet"]
    assert main(args) == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and not os.path.exists("/dev/null.seed")
    # A FIFO's reader gets the bytes a file would hold.
    seeded = ["-m", "1024", "--seed-file", str(tmp_path / "s")]
    assert main(["extract", str(src), "-o", str(tmp_path / "file"), *seeded]) == 0
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    assert main(["extract", str(src), "-o", str(fifo), *seeded]) == 0
    reader.join(30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got == [(tmp_path / "file").read_bytes()]


def test_an_input_without_a_whole_block_is_an_error_and_leaves_nothing(tmp_path: Path, capsys: Any) -> None:
    for size in (0, 511):
        src = tmp_path / "in"
        src.write_bytes(os.urandom(size))
        assert main(["extract", str(src), "-o", str(tmp_path / "out"), "-m", "1024"]) == 2
        err = capsys.readouterr().err
        assert f"holds {size * 8} bits, fewer than one block of n = 4096 bits" in err, err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_blocks_too_large_for_the_memory_bound_are_refused_before_the_seed(tmp_path: Path, capsys: Any) -> None:
    src = tmp_path / "in"
    src.write_bytes(os.urandom(10_000))
    for extra in (["-n", str(1 << 32), "-m", "8"], ["-n", str((1 << 32) - 1), "-m", "8", "--bits-per-sample", "7"]):
        assert main(["extract", str(src), "-o", str(tmp_path / "out"), *extra]) == 2
        assert "MiB bound" in capsys.readouterr().err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_dash_writes_the_bytes_to_stdout_and_the_summary_to_stderr(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.write_bytes(os.urandom(100_000))
    seed = tmp_path / "s"
    assert main(["extract", str(src), "-o", str(tmp_path / "file"), "-m", "1024", "--save-seed", str(seed)]) == 0
    command = [sys.executable, "-m", "qitcore", "extract", str(src), "-o", "-", "-m", "1024"]
    piped = subprocess.run([*command, "--seed-file", str(seed)], capture_output=True, timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == (tmp_path / "file").read_bytes()
    assert b"stdout: 195 blocks" in piped.stderr
    # A fresh seed cannot go to stdout's name: it needs a file of its own.
    fresh = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert fresh.returncode == 2 and "give --save-seed FILE for the fresh seed" in fresh.stderr and not fresh.stdout


def test_in_as_a_dash_reads_stdin(tmp_path: Path) -> None:
    data = os.urandom(200_000)
    hasher = Toeplitz(4096, 2048)
    (tmp_path / "seed").write_bytes(hasher.seed_bytes())
    args = ["extract", "-", "-o", str(tmp_path / "out"), "-m", "2048", "--seed-file", str(tmp_path / "seed"), "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "qitcore", *args]
    done = subprocess.run(command, input=data, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    blocks = len(data) * 8 // 4096
    assert (tmp_path / "out").read_bytes() == hasher.hash(data[: blocks * 512])
