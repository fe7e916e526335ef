"""``qitcore run`` and ``qitcore stream``."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from qitcore.cli import main


def test_run_streams_through_the_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--megabytes", "2"]) == 0
    out = capsys.readouterr().out
    assert "health: RCT cutoff" in out and "extractor: Toeplitz 4096 ->" in out
    assert "read 2.0 MB" in out and "CRC errors 0" in out


def test_stream_writes_exactly_the_bytes_asked_for(tmp_path: Path) -> None:
    out = tmp_path / "random.bin"
    assert main(["stream", "--device", "sim://?seed=1", "--bytes", "1234567", "-o", str(out), "--quiet"]) == 0
    data = out.read_bytes()
    assert len(data) == 1234567 and len(set(data)) == 256


def test_a_health_failure_leaves_no_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "random.bin"
    argv = ["stream", "--device", "sim://?fault=stuck:100000", "--bytes", "100000000", "-o", str(out)]
    assert main(argv) == 1
    assert not out.exists() and not list(tmp_path.iterdir())
    assert "Repetition Count Test failed" in capsys.readouterr().err


def test_raw_samples_and_device_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "samples.bin"
    assert main(["stream", "--device", "sim://", "--raw-samples", "--bytes", "5000", "-o", str(out), "--quiet"]) == 0
    assert len(out.read_bytes()) == 5000
    assert main(["stream", "--device", "nope://", "--bytes", "1", "-o", str(out)]) == 2
    assert "no backend" in capsys.readouterr().err


# -- stopping, sizes and special outputs ---------------------------------------------------------

SLOW = "sim://?seed=2&rate=1e6"  # about a megabyte of output a second: a stream that is stopped


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "qitcore", "stream", *args]


def _wait_for(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _temp_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob(".qitcore-*.tmp"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_keeps_the_healthy_bytes_delivered(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "random.bin"
    out.write_bytes(b"the previous contents")
    proc = subprocess.Popen(_command("--device", SLOW, "-o", str(out), "--quiet"), stderr=subprocess.PIPE, text=True)
    try:
        # Some output is on its way into the hidden temporary file; the old file is untouched.
        _wait_for(lambda: _temp_size(tmp_path) > 0)
        assert out.read_bytes() == b"the previous contents"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig
    kept = int(re.search(r"kept the ([0-9,]+) healthy bytes", err)[1].replace(",", ""))  # type: ignore[index]
    data = out.read_bytes()
    assert len(data) == kept > 0 and len(set(data)) == 256
    assert f"stopped by {sig.name}" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random.bin"]  # no .qitcore-*.tmp left


def test_a_stop_before_any_output_leaves_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "random.bin"
    out.write_bytes(b"old")
    # A very slow device: nothing is delivered before the signal.
    proc = subprocess.Popen(
        _command("--device", "sim://?rate=1", "-o", str(out), "--quiet"), stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(lambda: any(tmp_path.glob(".qitcore-*.tmp")))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert "before any byte was delivered" in err
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["random.bin"]


def test_a_stop_into_stdout_keeps_what_was_written(tmp_path: Path) -> None:
    # Unbuffered here, so that communicate() below sees every byte not read yet.
    proc = subprocess.Popen(
        _command("--device", SLOW, "--quiet"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
    )
    try:
        assert proc.stdout is not None
        first = b""
        while len(first) < 100_000:  # output is flowing
            chunk = proc.stdout.read(100_000 - len(first))
            assert chunk, "the stream ended early"
            first += chunk
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    kept = int(re.search(rb"kept the ([0-9,]+) healthy bytes", err)[1].replace(b",", b""))  # type: ignore[index]
    assert len(first) + len(rest) == kept and b"in stdout" in err


@pytest.mark.parametrize("size", ["0", "-5", "-1e6", "1.5", "nan", "1_0", "", "x"])
def test_non_positive_or_odd_sizes_are_refused_in_one_line(
    size: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.bin"
    assert main(["stream", "--bytes", size, "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qitcore: error: ") and err.count("\n") == 1 and "--bytes" in err
    assert list(tmp_path.iterdir()) == []
    assert main(["run", "--megabytes", size]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_sizes_with_exponents(tmp_path: Path) -> None:
    out = tmp_path / "x.bin"
    assert main(["stream", "--device", "sim://?seed=3", "--bytes", "1e6", "-o", str(out), "--quiet"]) == 0
    assert len(out.read_bytes()) == 1_000_000


def _stream_into_a_fifo(fifo: Path, *args: str) -> tuple[int, bytes]:
    """``qitcore stream ARGS -o FIFO`` with a reader on the other end: the exit status and what it read."""
    os.mkfifo(fifo)
    got = bytearray()
    reader = threading.Thread(target=lambda: got.extend(fifo.read_bytes()))
    reader.start()
    try:
        status = main(["stream", *args, "-o", str(fifo), "--quiet"])
    finally:
        reader.join(timeout=30)
    return status, bytes(got)


def test_a_fifo_is_written_into_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    status, got = _stream_into_a_fifo(fifo, "--device", "sim://?seed=4", "--bytes", "300000")
    assert status == 0 and len(got) == 300_000 and stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


def test_stdout_and_dev_stdout_are_written_directly(tmp_path: Path) -> None:
    for target in ("-", "/dev/stdout"):
        result = subprocess.run(
            _command("--device", "sim://?seed=5", "--bytes", "123456", "-o", target, "--quiet"),
            capture_output=True,
            timeout=120,
        )
        assert result.returncode == 0 and len(result.stdout) == 123456, result.stderr
    # Appending through /dev/stdout appends (the shell's '>>'), rather than truncating.
    log = tmp_path / "log.bin"
    log.write_bytes(b"header")
    with log.open("ab") as sink:
        subprocess.run(
            _command("--device", "sim://?seed=5", "--bytes", "1000", "-o", "/dev/stdout", "--quiet"),
            stdout=sink,
            timeout=120,
            check=True,
        )
    data = log.read_bytes()
    assert data.startswith(b"header") and len(data) == 1006


def test_a_character_device_is_written_directly(tmp_path: Path) -> None:
    assert main(["stream", "--device", "sim://", "--bytes", "5000", "-o", "/dev/null", "--quiet"]) == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_symbolic_link_keeps_pointing_at_the_replaced_file(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    assert main(["stream", "--device", "sim://?seed=6", "--bytes", "777", "-o", str(link), "--quiet"]) == 0
    assert link.is_symlink() and len(target.read_bytes()) == 777


def test_bad_outputs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for target in (str(tmp_path), str(tmp_path / "missing" / "x.bin")):
        assert main(["stream", "--device", "sim://", "--bytes", "10", "-o", target, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("qitcore: error: ") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_a_health_failure_into_a_fifo_stops_with_status_1(tmp_path: Path) -> None:
    status, got = _stream_into_a_fifo(tmp_path / "fifo", "--device", "sim://?seed=7&fault=stuck:200000")
    # What was delivered before the failure went through; nothing from the failing window.
    assert status == 1 and 0 < len(got) < 200_000
