"""Temporary output files that a killed process leaves: the next writer into the folder removes
those of this host whose process has ended, and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from qitcore.cli import main
from qitcore.extract import Toeplitz
from qitcore.report.files import _host, atomic_file, make_temp, sweep_stale

from .stalled_fifo import stalled_fifo, wait_for_temp


def _ended_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_sweep_removes_only_this_hosts_files_of_ended_processes(tmp_path: Path) -> None:
    dead, host = _ended_pid(), _host()
    names = {
        f".qitcore-{host}-{dead}-abcd_123.tmp": False,  # this host, process gone: removed
        f".qitcore-{host}-{os.getpid()}-abcd_123.tmp": True,  # this process: alive
        f".qitcore-{host}-1-abcd_123.tmp": True,  # init: alive (or not ours to judge)
        f".qitcore-other.host-{dead}-abcd_123.tmp": True,  # another host on a shared folder
        ".qitcore-abcd_123.tmp": True,  # the old name says nothing of its writer
        f".qitcore-{host}-{dead}-abcd_123.tmp.keep": True,
        f"qitcore-{host}-{dead}-abcd_123.tmp": True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    removed = sweep_stale(str(tmp_path))
    assert removed == [str(tmp_path / f".qitcore-{host}-{dead}-abcd_123.tmp")]
    assert {p.name for p in tmp_path.iterdir()} == {n for n, kept in names.items() if kept}


def test_a_new_temporary_file_is_named_for_its_writer_and_private(tmp_path: Path) -> None:
    fd, path = make_temp(str(tmp_path))
    os.close(fd)
    assert Path(path).name.startswith(f".qitcore-{_host()}-{os.getpid()}-")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert sweep_stale(str(tmp_path)) == []  # its writer is alive


def test_sweep_of_a_missing_folder_is_quiet(tmp_path: Path) -> None:
    assert sweep_stale(str(tmp_path / "absent")) == []


def test_any_atomic_write_sweeps_the_folder(tmp_path: Path) -> None:
    stale = tmp_path / f".qitcore-{_host()}-{_ended_pid()}-zzzzzzzz.tmp"
    stale.write_bytes(b"partial")
    with atomic_file(tmp_path / "out") as f:
        f.write(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and SIGKILL are POSIX")
def test_a_killed_extract_leaves_a_file_that_the_next_run_removes(tmp_path: Path) -> None:
    fifo, out, key = tmp_path / "fifo", tmp_path / "out", tmp_path / "key"
    hasher = Toeplitz(4096, 2048)
    key.write_bytes(hasher.seed_bytes())
    args = ["extract", str(fifo), "-o", str(out), "-m", "2048", "--seed-file", str(key), "--quiet"]
    with stalled_fifo(fifo):
        child = subprocess.Popen([sys.executable, "-m", "qitcore", *args], stderr=subprocess.PIPE)
        try:
            wait_for_temp(tmp_path)
            child.send_signal(signal.SIGKILL)
            child.wait(30)
        finally:
            child.kill()
    (left,) = tmp_path.glob(".qitcore-*.tmp")
    assert f"-{child.pid}-" in left.name
    data = os.urandom(8192)
    (tmp_path / "in").write_bytes(data)
    assert main([*args[:1], str(tmp_path / "in"), *args[2:]]) == 0
    assert out.read_bytes() == hasher.hash(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "in", "key", "out"]


@pytest.mark.skipif(not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK), reason="no /dev/shm here")
def test_ordinary_files_in_dev_shm_are_written_whole_or_not_at_all() -> None:
    """/dev/shm holds ordinary files: a failed write leaves none there, and an existing one is
    not truncated (only devices and pipes under /dev are written in place)."""
    from qitcore.report.files import atomic_output, is_special

    path = Path("/dev/shm") / f"qitcore-test-{os.getpid()}.bin"
    assert not is_special(path) and is_special("/dev/null") and is_special("/dev/stdout")
    try:
        path.write_bytes(b"kept")
        with pytest.raises(RuntimeError), atomic_output(path) as (out, temp):
            assert temp is not None  # a temporary file beside it
            out.write(b"partial")
            raise RuntimeError("the run fails")
        assert path.read_bytes() == b"kept"
        path.unlink()
        with pytest.raises(RuntimeError), atomic_output(path) as (out, _):
            out.write(b"partial")
            raise RuntimeError("the run fails")
        assert not path.exists()
    finally:
        path.unlink(missing_ok=True)
