"""``qitcore run`` and ``qitcore stream``."""

from __future__ import annotations

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
