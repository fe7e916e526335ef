"""The command line end to end: outputs, NIST-shaped JSON, the HTML report, exit codes, and no
partial files on errors."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import numpy as np
import pytest
from qitcore.cli import main

from .sp800_90b import DATA, reference


def test_assess_writes_nist_json_and_a_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, page = tmp_path / "r.json", tmp_path / "r.html"
    assert main(["assess", str(DATA / "rand4_short.bin"), "--json", str(out), "--report", str(page)]) == 0
    printed = capsys.readouterr().out
    assert "t-Tuple" in printed and "min(H_original, 4 x H_bitstring)" in printed
    doc = json.loads(out.read_text())
    assert doc["IID"] is False and doc["errorLevel"] == 0
    cases = {c["testCaseDesc"]: c for c in doc["testCases"]}
    ref = reference("rand4_short")
    assert cases["Overall"]["hAssessed"] == pytest.approx(ref[("", "Assessed min entropy", "")], rel=1e-9)
    assert cases["T-Tuple Test"]["tTupleRes"] == pytest.approx(ref[("literal", "t-Tuple", "min entropy")], rel=1e-9)
    assert cases["LRS Test"]["binLrsRes"] == pytest.approx(ref[("bitstring", "LRS", "min entropy")], rel=1e-9)
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 5 and "<script" not in html


def test_iid_track_exit_code_and_json(tmp_path: Path) -> None:
    out = tmp_path / "iid.json"
    # rand4_short fails NIST's IID permutation tests (periodicity(1), as NIST's ea_iid reports).
    # Its periodicity(1) ranks near 6 in 10,000, so the outcome depends on the permutations drawn:
    # seed 2 draws a failing set (seed 1 passes).
    status = main(["assess", str(DATA / "rand4_short.bin"), "--iid", "--seed", "2", "--json", str(out), "--quiet"])
    doc = json.loads(out.read_text())
    case = doc["testCases"][0]
    assert status == 1 and doc["IID"] is True
    assert case["passedIidPermutationTests"] is False and case["passedChiSquareTests"] is True
    assert {it["iteration"] for it in case["permutationTestResults"]} == {0, 1, 2}


def test_subset_and_truncation_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assess", str(DATA / "truerand_8bit.bin"), "--subset", "1,20000", "--quiet"]) == 0
    assert main(["assess", str(DATA / "rand8_short.bin"), "--truncate"]) == 0
    assert "less than 1000000 samples" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["assess", "/nonexistent/file.bin"], "No such file"),
        (["assess", "EMPTY"], "no samples"),
        (["assess", "WIDE", "--bits-per-symbol", "2"], "offset 3"),
        (["assess", "WIDE", "--subset", "x"], "--subset"),
        (["health", "WIDE", "--min-entropy", "0"], "--min-entropy"),
        (["health", "WIDE", "--min-entropy", "9"], "--min-entropy: must lie in (0, 8]"),
        (["assess", "WIDE", "--subset", "0,100000000000"], "ends past the end of"),
        (["assess", "WIDE", "--subset", "1,-2"], "--subset"),
        (["assess", "WIDE", "--json", "/nonexistent/dir/out.json"], "no such folder /nonexistent/dir"),
    ],
)
def test_bad_input_exits_2_and_leaves_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "EMPTY").write_bytes(b"")
    (tmp_path / "WIDE").write_bytes(bytes([0, 1, 2, 7, 1]))
    args = [str(tmp_path / a) if a in ("EMPTY", "WIDE") else a for a in args]
    out = tmp_path / "out.json"
    assert main([*args, *(["--json", str(out)] if args[0] == "assess" and "--json" not in args else [])]) == 2
    err = capsys.readouterr().err.splitlines()
    # Progress lines may come first; the error is one line, the last, and never a traceback.
    errors = [line for line in err if line.startswith("qitcore: error: ")]
    assert errors == err[-1:] and message in errors[0] and "Traceback" not in err, err
    assert not out.exists() and not list(tmp_path.glob(".qitcore-*"))


def test_health_reports_where_a_capture_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = bytearray(np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    data[20_000:20_010] = b"\x00" * 10
    path = tmp_path / "capture.bin"
    path.write_bytes(bytes(data))
    assert main(["health", str(path), "--min-entropy", "7", "--alpha", str(2.0**-40), "--fips"]) == 1
    printed = capsys.readouterr().out
    assert "sample 20006: Repetition Count Test fired" in printed
    assert "FIPS 140-2: 20 blocks" in printed


def test_restart_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["restart", str(DATA / "truerand_8bit.bin"), "7.0", "--bits-per-symbol", "8"]) == 0
    printed = capsys.readouterr().out
    assert "cutoff 27" in printed and "validation passed" in printed


def _poker(block: np.ndarray) -> float:
    """FIPS 140-2's poker statistic of 20,000 bits, from its definition."""
    nibbles = block.reshape(5000, 4) @ np.array([8, 4, 2, 1])
    f = np.bincount(nibbles, minlength=16)
    return float(16 / 5000 * (f.astype(np.int64) ** 2).sum() - 5000)


def test_failed_block_tests_read_as_a_statistic_and_its_passing_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bits = (np.random.default_rng(5).random(20_000 * 3) < 0.6).astype(np.uint8)  # biased: 60 % ones
    path = tmp_path / "biased.bin"
    path.write_bytes(np.packbits(bits).tobytes())
    assert main(["health", str(path), "--min-entropy", "0.5", "--fips"]) == 1
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    poker = next(line for line in lines if line.startswith("block 0: poker"))
    # FIPS 140-2 (2001), 4.9.1: the poker test passes when 2.16 < X < 46.17.
    prefix, value, rest = poker.partition("statistic ")[0], *poker.partition("statistic ")[2].split(", ", 1)
    assert prefix == "block 0: poker failed: " and rest == "passes when 2.16 < statistic < 46.17"
    assert len(value) <= 8 and float(value) == pytest.approx(_poker(bits[:20_000]), rel=1e-5)
    monobit = next(line for line in lines if line.startswith("block 0: monobit"))
    ones = int(bits[:20_000].sum())
    assert monobit == f"block 0: monobit failed: statistic {ones}, passes when 9725 < statistic < 10275"


def test_qkd_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qitcore import qkd

    link = qkd.LinkModel(distance_km=5).simulate(200_000, seed=1)
    link.alice.save(tmp_path / "alice.npz")
    link.bob.save(tmp_path / "bob.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "short.key").write_bytes(bytes(15))
    (tmp_path / "auth.key").write_bytes(bytes(range(32)))
    (tmp_path / "garbage").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "restarts").write_bytes(bytes(range(250)) * 4000)  # 1000 restarts x 1000 samples
    auth = ["--auth-key-file", str(tmp_path / "auth.key")]
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        cases = [
            (["qkd", "bob", "--connect", "127.0.0.1:9", "--records", str(tmp_path / "alice.npz"),
              "--auth-key-file", "/dev/zero"], "more than 65536 bytes"),
            (["qkd", "bob", "--connect", "127.0.0.1:9", "--records", str(tmp_path / "garbage"), *auth],
             "no detection records"),
            (["qkd", "simulate", "--pulses", "1e5", "--key-out", str(tmp_path / "no" / "k")], "no such folder"),
            (["qkd", "alice", "--listen", f"127.0.0.1:{port}", "--records", str(tmp_path / "alice.npz"), *auth],
             f"--listen 127.0.0.1:{port}: Address already in use"),
            (["qkd", "bob", "--connect", "127.0.0.1:9", "--records", str(tmp_path / "alice.npz"), *auth,
              "--key-out", str(tmp_path)], f"--key-out: {tmp_path} is a folder"),
            (["qkd", "alice", "--listen", "127.0.0.1:0", "--records", "/dev/zero", *auth],
             "no QDP/1 frame in the first 16 MiB"),
            (["qkd", "pool-create", str(tmp_path / "p"), "--key-file", str(tmp_path / "auth.key")],
             f"--key-file {tmp_path / 'auth.key'}: 32 bytes, fewer than the 256 a session needs at least"),
            (["qkd", "pool-create", str(tmp_path / "p"), "--key-file", str(tmp_path / "none")],
             f"--key-file {tmp_path / 'none'}: No such file or directory"),
            # The API's range errors name the option that was given, with the range, before any
            # work is announced (the one-line check: nothing else on stderr).
            (["qkd", "simulate", "--eps-sec", "0"], "--eps-sec: expected a number strictly between 0 and 1, got 0.0"),
            (["qkd", "simulate", "--qber-threshold", "0.6"],
             "--qber-threshold: expected a number strictly between 0 and 0.5"),
            (["qkd", "simulate", "--distance-km", "-1"],
             "--distance-km: expected a number at least 0 (finite), got -1"),
            (["qkd", "simulate", "--attenuation", "-1"],
             "--attenuation: expected a number at least 0 (finite), got -1"),
            (["qkd", "simulate", "--misalignment", "0.5"],
             "--misalignment: expected a number at least 0 and below 0.5, got 0.5"),
            (["qkd", "simulate", "--seed", "-1"], "--seed: expected a whole number >= 0, got '-1'"),
            (["qkd", "simulate", "--eps-sec", "1e-400"], "argument --eps-sec: '1e-400' is too small to be told from 0"),
            (["qkd", "simulate", "--pulses", "1e30"], "'1e30' is too large (at most 1,099,511,627,776)"),
            (["qkd", "proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--delay-ms", "1",
              "--max-connections", "2000"], "--max-connections: must be at most 1024"),
            (["qkd", "proxy", "--listen", "127.0.0.1:7000", "--to", "127.0.0.1:7000", "--delay-ms", "1"],
             "--listen: the same address as the target (127.0.0.1:7000): the proxy would forward to itself"),
            (["qkd", "proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:0", "--delay-ms", "1"],
             "argument --to: expected a port from 1 to 65535 to connect to"),
            (["qkd", "bob", "--connect", "fe80::1", "--records", "x", *auth], "an IPv6 host in brackets"),
            # A file whose name is also an option's is named as the file, not as the option; and a
            # value from a configuration file is not blamed on an option that was not typed.
            (["assess", "seed"], "qitcore: error: seed: "),
            (["qkd", "alice", "--listen", "127.0.0.1:0", "--records", "timeout", *auth, "--timeout", "1"],
             "qitcore: error: timeout: "),
            (["restart", str(tmp_path / "restarts"), "9"], "qitcore: error: H_I: must lie in [0, 8]"),
            # An end's records are its own; its outputs never replace its inputs; timeouts the
            # socket layer can keep; and the messages name the options typed.
            (["qkd", "bob", "--connect", "127.0.0.1:9", "--records", str(tmp_path / "alice.npz"), *auth],
             "qitcore: error: --records: these are Alice's (they carry intensity labels); Bob needs his"),
            (["qkd", "alice", "--listen", "127.0.0.1:0", "--records", str(tmp_path / "bob.npz"), *auth],
             "qitcore: error: --records: these are Bob's (no intensity labels); Alice needs hers"),
            (["qkd", "alice", "--listen", "127.0.0.1:0", "--records", str(tmp_path / "empty.npz"), *auth],
             f"{tmp_path / 'empty.npz'}: not a records file"),
            (["qkd", "alice", "--listen", "127.0.0.1:0", "--records", str(tmp_path / "alice.npz"), *auth,
              "--key-out", str(tmp_path / "auth.key")], f"--key-out: {tmp_path / 'auth.key'} is an input"),
            (["qkd", "alice", "--listen", "127.0.0.1:0", "--records", str(tmp_path / "alice.npz"), *auth,
              "--json", str(tmp_path / "alice.npz")], f"--json: {tmp_path / 'alice.npz'} is an input"),
            (["qkd", "bob", "--connect", "127.0.0.1:9", "--records", str(tmp_path / "bob.npz"), *auth,
              "--timeout", "1e9"], "argument --timeout: expected a number of seconds above 0 and at most 1e+06"),
            (["qkd", "bob", "--connect", "127.0.0.1:9", "--records", str(tmp_path / "bob.npz"),
              "--auth-key-file", str(tmp_path / "short.key")], "qitcore: error: --auth-key-file: "),
            (["qkd", "simulate", "--mu", "0.2,0.6,0.0002"], "qitcore: error: --mu: need mu1 > mu2 + mu3"),
            (["qkd", "simulate", "--p", "0.5,0.3,0.3"], "qitcore: error: --p: need three probabilities"),
        ]  # fmt: skip
        for argv, message in cases:
            assert main(argv) == 2, argv
            err = capsys.readouterr().err.splitlines()
            assert len(err) == 1 and err[0].startswith("qitcore: error: ") and message in err[0], err
    # Nobody listens on the port now: Bob retries until --timeout and says how long he tried.
    assert main(["qkd", "bob", "--connect", f"127.0.0.1:{port}", "--records", str(tmp_path / "bob.npz"), *auth,
                 "--timeout", "0.3"]) == 2  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    tried = re.fullmatch(
        rf"qitcore: error: cannot connect to 127\.0\.0\.1:{port}: .*refused \(tried for (\d+\.\d) s\)", err[0]
    )
    assert len(err) == 1 and tried and float(tried[1]) >= 0.3, err
