"""``qitcore assess FILE...``: the summary table, JSON Lines, the comparison report linking a report
per file, exit statuses, the same records in process, on a local cluster (--jobs) and on a
scheduler (--scheduler), and no output left behind by a run that did not finish."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import distributed
import numpy as np
import psutil
import pytest
from qitcore import archive, corpus, entropy
from qitcore.cli import main
from qitcore.entropy import assess_iid, assess_non_iid

from .dask_cluster import local_cluster

PERMUTATIONS = 60
SEED = 11


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("cli-archive")
    paths = []
    for name in ("uniform-8", "gauss-6", "biased-1"):
        path = folder / f"{name}.bin"
        path.write_bytes(corpus.generate(name, samples=20_000))
        paths.append(path)
    return paths


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def check_record(doc: dict[str, Any], path: Path) -> None:
    """A JSONL record against the in-process assessment of the same file (both tracks, seeded)."""
    data = path.read_bytes()
    assert doc["path"] == str(path) and doc["error"] is None and doc["size"] == len(data)
    assert doc["sha256"] == hashlib.sha256(data).hexdigest()
    non_iid, iid = assess_non_iid(data), assess_iid(data, permutations=PERMUTATIONS, seed=SEED)
    overall = {c["testCaseDesc"]: c for c in doc["nonIid"]["testCases"]}["Overall"]
    assert overall["hAssessed"] == non_iid.h_assessed and overall["hOriginal"] == non_iid.h_original
    assert doc["nonIid"]["IID"] is False and doc["nonIid"]["filename"] == str(path)
    assert doc["nonIid"]["qitcore"]["literal"][0]["min_entropy"] == non_iid.literal[0].min_entropy
    case = doc["iid"]["testCases"][0]
    assert case["hAssessed"] == iid.h_assessed
    assert case["passedIidPermutationTests"] == all(s.passed for s in iid.permutation)
    assert doc["iid"]["qitcore"]["permutation_seed"] == SEED and doc["iid"]["IID"] is True


def comparable(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without what differs from run to run (time taken, time stamps)."""
    out = []
    for doc in docs:
        doc = {k: v for k, v in doc.items() if k != "seconds"}
        for track in ("nonIid", "iid"):
            if doc[track] is not None:
                doc[track] = {k: v for k, v in doc[track].items() if k not in ("dateTimeStamp", "commandline")}
        out.append(doc)
    return out


def test_several_files_give_a_table_jsonl_and_a_comparison_linking_each_report(
    files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    out, page = tmp_path / "all.jsonl", tmp_path / "all.html"
    paths = [str(files[0]), str(empty), str(files[1]), str(files[2])]
    args = ["--both", "--permutations", str(PERMUTATIONS), "--seed", str(SEED), "--jsonl", str(out)]
    status = main(["assess", *paths, *args, "--report", str(page)])
    captured = capsys.readouterr()
    # The empty file is an error (exit 2, named on stderr); the others are assessed all the same.
    assert status == 2
    assert captured.err.splitlines()[-1] == f"qitcore: error: {empty}: no samples"
    docs = read_jsonl(out)
    assert [d["path"] for d in docs] == paths
    for doc, path in zip([docs[0], docs[2], docs[3]], [files[0], files[1], files[2]], strict=True):
        check_record(doc, path)
    assert docs[1]["error"] == "no samples" and docs[1]["nonIid"] is None and docs[1]["iid"] is None
    # The summary table: one row per file, in input order.
    rows = [line for line in captured.out.splitlines() if line.startswith(tuple(paths))]
    assert [row.split()[0] for row in rows] == paths
    h = assess_non_iid(files[1].read_bytes()).h_assessed
    assert f"{h:.6f}" in rows[2] and "20,000" in rows[2] and rows[1].endswith("error: no samples")
    # The comparison page links one report per assessed file, written beside it.
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html and html.count("<tr>") == 5
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', html)
    assert [name for _, name in links] == [paths[0], paths[2], paths[3]]
    for link, name in links:
        report = (tmp_path / link).read_text()
        assert report.startswith("<!DOCTYPE html>") and f"Entropy assessment (NIST SP 800-90B) of {name}" in report
        assert hashlib.sha256(Path(name).read_bytes()).hexdigest() in report
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["all.html", "all.jsonl", "empty.bin"] + [link for link, _ in links]
    )


def test_exit_status_is_1_when_a_file_fails_the_iid_tests(files: list[Path], tmp_path: Path) -> None:
    markov = tmp_path / "markov.bin"
    rng = np.random.default_rng(3)
    markov.write_bytes((np.cumsum(rng.random(20_000) >= 0.7) % 2).astype(np.uint8).tobytes())
    args = ["--iid", "--permutations", "100", "--seed", "1", "--quiet"]
    assert main(["assess", str(files[0]), str(markov), *args]) == 1
    assert main(["assess", str(files[0]), str(files[1]), "--quiet"]) == 0


@pytest.fixture(scope="module")
def scheduler() -> Iterator[distributed.Client]:
    with local_cluster(secure=False) as client:
        yield client


def test_jobs_and_scheduler_write_the_records_of_the_in_process_run(
    files: list[Path], tmp_path: Path, scheduler: distributed.Client
) -> None:
    common = ["--both", "--permutations", str(PERMUTATIONS), "--seed", str(SEED), "--quiet"]
    runs = {
        "here": [],
        "jobs": ["--jobs", "2"],
        "scheduler": ["--scheduler", scheduler.scheduler.address],
    }
    # At 60 permutations some statistics stay undecided, which fails the IID tests: exit 1.
    rejected = any(not assess_iid(p.read_bytes(), permutations=PERMUTATIONS, seed=SEED).passed for p in files)
    records = {}
    for name, extra in runs.items():
        out = tmp_path / f"{name}.jsonl"
        assert main(["assess", *map(str, files), *common, *extra, "--jsonl", str(out)]) == int(rejected)
        records[name] = comparable(read_jsonl(out))
    assert records["jobs"] == records["here"] and records["scheduler"] == records["here"]
    for doc, path in zip(read_jsonl(tmp_path / "scheduler.jsonl"), files, strict=True):
        check_record(doc, path)


def test_an_unreachable_scheduler_is_one_error_line(
    files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dask retries a refused connection until the timeout: a short one keeps the test short.
    monkeypatch.setattr(archive, "connect", functools.partial(archive.connect, timeout=1.0))
    out = tmp_path / "out.jsonl"
    # Port 9 (discard) on the loopback: nothing listens there.
    status = main(["assess", str(files[0]), "--scheduler", "tcp://127.0.0.1:9", "--jsonl", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and err[-1].startswith("qitcore: error: scheduler tcp://127.0.0.1:9: cannot connect")
    assert not out.exists()


def test_a_run_that_does_not_finish_leaves_no_output(
    files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = archive._assess_one
    seen: list[str] = []

    def interrupted(path: str, shown: str, options: Any) -> Any:
        seen.append(shown)
        if len(seen) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third file
        return real(path, shown, options)

    monkeypatch.setattr(archive, "_assess_one", interrupted)
    out, page = tmp_path / "out.jsonl", tmp_path / "out.html"
    status = main(["assess", *map(str, files), "--jsonl", str(out), "--report", str(page), "--quiet"])
    # Two files' reports had been written when Ctrl-C came: they are removed with the rest.
    assert status == 130 and len(seen) == 3
    assert list(tmp_path.iterdir()) == []


def test_a_capture_past_one_assessment_is_assessed_by_block_among_others(
    files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A capture of more than the 2^26 samples one assessment takes is refused whole, naming
    --subset; with it, block INDEX of every file is read alone and assessed, and a file that ends
    before the block does is named."""
    big = tmp_path / "big.bin"
    block = files[0].read_bytes()[:5_000]
    with big.open("wb") as f:
        f.truncate(entropy.MAX_SAMPLES + 1)  # sparse: only the block is written
        f.seek(3 * len(block))
        f.write(block)
    small = tmp_path / "small.bin"
    small.write_bytes(files[0].read_bytes()[:17_000])
    assert main(["assess", str(big), str(files[1]), "--quiet"]) == 2
    assert "read a slice of them with subset=(index, count) (--subset INDEX,COUNT" in capsys.readouterr().err
    out = tmp_path / "out.jsonl"
    argv = ["assess", str(big), str(files[1]), str(small), "--subset", "3,5000", "--jsonl", str(out), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"qitcore: error: {small}: subset 3,5000: the block ends past the end of the file (17000 samples)"]
    [on_big, on_other, on_small] = read_jsonl(out)
    for doc, data in ((on_big, block), (on_other, files[1].read_bytes()[15_000:20_000])):
        assert doc["error"] is None and doc["size"] == 5_000 and doc["subset"] == [3, 5_000]
        assert doc["sha256"] == hashlib.sha256(data).hexdigest()
        overall = {c["testCaseDesc"]: c for c in doc["nonIid"]["testCases"]}["Overall"]
        assert overall["hAssessed"] == assess_non_iid(data).h_assessed
    assert on_small["error"] is not None and on_small["size"] == 0 and on_small["subset"] == [3, 5_000]
    assert main(["assess", str(files[1]), "--jsonl", str(out), "--quiet"]) == 0
    assert read_jsonl(out)[0]["subset"] is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--json", "OUT"], "--json writes one file's result; use --jsonl"),
        (["--jsonl", "/nonexistent/dir/out.jsonl"], "--jsonl: /nonexistent/dir/out.jsonl: no such folder"),
        (["--jobs", "2", "--scheduler", "tcp://127.0.0.1:9"], "not allowed with argument"),
        (["--iid", "--both"], "not allowed with argument"),
    ],
)
def test_options_of_one_file_or_one_place_are_refused_before_any_work(
    files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    extra = [str(tmp_path / "out.json") if e == "OUT" else e for e in extra]
    assert main(["assess", str(files[0]), str(files[1]), *extra]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("qitcore: error: ") and message in err[0], err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("when", "presses"), [("while the workers start", 1), ("while they work", 1), ("while the workers start", 3)]
)
def test_ctrl_c_on_a_local_cluster_stops_its_workers_and_leaves_no_output(
    tmp_path: Path, when: str, presses: int
) -> None:
    # 1-bit Markov sources that fail the compression statistic: all 10,000 permutations run, minutes
    # of work, so an exit within seconds of Ctrl-C cannot be the run's own end. Interrupted while
    # the cluster starts, Dask left it half made and printed an AssertionError at exit.
    paths = []
    for seed in range(2):
        rng = np.random.default_rng(seed)
        path = tmp_path / f"markov-{seed}.bin"
        path.write_bytes((np.cumsum(rng.random(200_000) >= 0.7) % 2).astype(np.uint8).tobytes())
        paths.append(str(path))
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "qitcore", "assess", *paths, "--iid", "--jobs", "2", "--jsonl", str(out)]
    # A process group of its own, interrupted as a terminal's Ctrl-C does: every process in it,
    # the starting workers too (whose start then fails: the interrupt must still be what is said).
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        me = psutil.Process(proc.pid)
        deadline = time.monotonic() + 30
        workers: list[psutil.Process] = []
        wanted = 1 if when == "while the workers start" else 2
        while len(workers) < wanted and time.monotonic() < deadline and proc.poll() is None:
            workers = [p for p in me.children(recursive=True) if "resource_tracker" not in " ".join(p.cmdline())]
            time.sleep(0.02)
        assert len(workers) >= wanted, "the local cluster's workers did not start within 30 s"
        if when == "while they work":
            time.sleep(2.0)  # the workers import qitcore and take their tasks
        workers = me.children(recursive=True)  # every process the cluster has started so far
        # Pressed again and again, as an impatient user does: the later presses land while the
        # cluster closes, first in qitcore's own close and then in Dask's at exit, whose interrupted
        # wait printed a traceback.
        for press in range(presses):
            if press:
                time.sleep(0.15)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and err.splitlines()[-1] == "qitcore: interrupted", err
    # The workers never see the terminal's Ctrl-C (they were spawned with it blocked): no worker
    # interrupted mid-import prints its traceback.
    assert "AssertionError" not in err and "Traceback" not in err and "Warning" not in err, err
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, alive
    assert sorted(p.name for p in tmp_path.iterdir()) == ["markov-0.bin", "markov-1.bin"]


def test_a_scheduler_without_workers_is_one_error_line(
    files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "connect", functools.partial(archive.connect, timeout=1.0))
    with distributed.LocalCluster(
        n_workers=0, host="127.0.0.1", dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}
    ) as empty:
        out = tmp_path / "out.jsonl"
        status = main(["assess", str(files[0]), "--scheduler", empty.scheduler_address, "--jsonl", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and err[-1].endswith("no worker joined it within 1 s"), err
    assert not out.exists()


def test_outputs_may_not_be_inputs_or_each_other_and_special_files_stay(
    files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy.bin"
    copy.write_bytes(files[0].read_bytes())
    assert main(["assess", str(copy), str(files[1]), "--jsonl", str(copy), "--quiet"]) == 2
    assert f"--jsonl: {copy} is an input" in capsys.readouterr().err
    assert copy.read_bytes() == files[0].read_bytes()
    out = tmp_path / "x.out"
    assert main(["assess", str(copy), str(files[1]), "--jsonl", str(out), "--report", str(out), "--quiet"]) == 2
    assert "--report" in capsys.readouterr().err and not out.exists()
    # A device is written in place, never replaced by a regular file.
    assert main(["assess", str(copy), str(files[1]), "--jsonl", "/dev/null", "--quiet"]) == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_jobs_are_capped_at_the_files(files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []

    def cluster(**kwargs: Any) -> Any:
        started.append(kwargs["n_workers"])
        raise OSError("not started in this test")

    monkeypatch.setattr(distributed, "LocalCluster", cluster)
    with pytest.raises(archive.ClusterError, match="cannot start a local Dask cluster of 2 workers"):
        archive.assess_files(files[:2], jobs=8)
    assert started == [2]
    # One file: no cluster at all.
    assert archive.assess_files(files[:1], jobs=8)[0].ok and started == [2]
