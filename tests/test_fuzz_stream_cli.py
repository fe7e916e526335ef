"""Fuzzing ``qitcore stream``'s command line through the in-process entry point ``main(argv)``:
random combinations of its options with good, bad and hostile values. Every run ends with a
documented exit status (0 done, 1 a health test failed, 2 an error shown on one line), never
with an exception out of ``main``; a run that succeeds writes exactly ``--bytes`` bytes, and no
run leaves a temporary file behind or a partial output file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qitcore import protocol
from qitcore.cli import main

from .fuzzing import examples

DEVICES = [
    "sim://",
    "sim://?seed=3",
    "sim://?seed=4&fault=stuck:5000",  # a health failure: exit 1
    "sim://?fault=disconnect:20000",  # a device error: exit 2
    "sim://?seed=5&fault=drop:0.2",
    "sim://?seed=-1",
    "sim://?rate=1e300",
    "sim://?fault=stuck:inf",
    "sim://?fault=disconnect:-5",
    "sim://?rat=1e6",
    "sim://?seed=99999999999999999999999",
    "sim://?bits=nan",
    "sim://?min_entropy=assess&frame=0",
    "file:///nonexistent/capture.qdp",
    "CAPTURE",  # a small capture in the test's folder (ends by itself)
    "nope://",
    "",
    "::::",
    "sim://?%00=1",
    "sim://[",
    "usb://99999:1",
]
COUNTS = [
    "1",
    "1000",
    "65536",
    "1e3",
    "2.5e4",
    "0",
    "-5",
    "-1e6",
    "1.5",
    "1e400",
    "nan",
    "inf",
    "",
    "x",
    "1_0",
    "\uff11",
]
REALS = ["7", "0.5", "6.5", "0", "-1", "9", "1e-30", "1e300", "nan", "inf", "x", ""]
OUTPUTS = ["FILE", "FILE", "FOLDER", "MISSING/x.bin", "/dev/null"]


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    argv = ["stream", "--quiet"]
    # Always a bound: a --bytes count (valid ones stay small) or a capture that ends.
    device = draw(st.sampled_from(DEVICES))
    argv += ["--device", device]
    if device != "CAPTURE" or draw(st.booleans()):
        argv += ["--bytes", draw(st.sampled_from(COUNTS) | st.integers(-(10**6), 100_000).map(str))]
    argv += ["-o", draw(st.sampled_from(OUTPUTS))]
    for option, values in [
        ("--min-entropy", REALS),
        ("--epsilon", REALS),
        ("--alpha", REALS),
        ("--gap-policy", ["count", "error", "ignore", ""]),
    ]:
        if draw(st.booleans()):
            argv += [option, draw(st.sampled_from(values))]
    for flag in ("--raw-samples", "--frobnicate", "--bytes"):
        if draw(st.integers(0, 4)) == 0:
            argv.append(flag)  # a flag, an unknown option, an option without its value
    return argv


def _capture(folder: Path) -> str:
    samples = bytes(range(256)) * 200
    stream = b""
    for i in range(0, len(samples), 1000):
        chunk = samples[i : i + 1000]
        stream += protocol.encode_frame(protocol.DATA, i // 1000, len(chunk).to_bytes(2, "little") + b"\0\0" + chunk)
    path = folder / "capture.qdp"
    path.write_bytes(stream)
    return f"file://{path}?min_entropy=6"


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=command_lines())
def test_fuzz_stream_command_lines_end_with_a_documented_status(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    for p in work.iterdir():
        p.unlink()
    capture = _capture(tmp_path)
    out = work / "out.bin"
    concrete = [
        capture
        if a == "CAPTURE"
        else str(out)
        if a == "FILE"
        else str(work)
        if a == "FOLDER"
        else str(work / a)
        if a.startswith("MISSING/")
        else a
        for a in argv
    ]
    status = main(concrete)  # an exception out of main fails the test
    captured = capsys.readouterr()
    assert status in (0, 1, 2), (concrete, status, captured.err)
    assert "Traceback" not in captured.err and captured.out == ""
    if status == 2:
        errors = [line for line in captured.err.splitlines() if line.startswith("qitcore: error: ")]
        assert len(errors) == 1, captured.err
    # Never a temporary file left; an output file only from a run that succeeded.
    left = sorted(p.name for p in work.iterdir())
    assert left == (["out.bin"] if status == 0 and str(out) in concrete else []), (concrete, status, left)
    if status == 0 and str(out) in concrete:
        given_bytes = [concrete[i + 1] for i, a in enumerate(concrete[:-1]) if a == "--bytes"]
        if given_bytes and "capture.qdp" not in " ".join(concrete):
            assert out.stat().st_size == int(float(given_bytes[-1]))
