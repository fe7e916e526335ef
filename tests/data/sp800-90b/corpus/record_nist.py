"""Records NIST's answers on the corpus into nist-results.json (and NIST's outputs into nist-output/).

Usage: ``python record_nist.py RUN_DIR CORPUS_DIR [DATE]`` (DATE: the runs' date, default
2026-12-03). CORPUS_DIR holds ``python -m qitcore.corpus``'s files; RUN_DIR holds, for each source
NAME, NIST's ``ea_non_iid -vv FILE BITS`` output in ``NAME.non_iid.txt`` and ``ea_iid -vvv FILE
BITS`` output in ``NAME.iid.txt``, each beside the ``/usr/bin/time -v`` report of its run
(``NAME.non_iid.time``, ``NAME.iid.time``); a track not run yet (or still running) is left out.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOOL = {
    "name": "usnistgov/SP800-90B_EntropyAssessment",
    "version": "1.1.7",
    "commit": "68ed165fd7a3eeef26b87a546ba23f338e82a3f3",
    "build": "cpp/Makefile: g++ -std=c++11 -fopenmp -O2 -ffloat-store -msse2 -march=native",
}

_ESTIMATE = re.compile(r"^(Literal|Bitstring) (.+?) Estimate: (.+?) = (\S+)$")
_VALUE = re.compile(r"^(H_bitstring|H_bitstring Per Symbol|H_original|Assessed min entropy)\s*[:=]\s*(\S+)$")
_CHI = re.compile(r"^Chi square (independence|goodness of fit): (T|df|P-value) = (\S+)$")
_LRS = re.compile(r"^Literal Longest Repeated Substring results: (P_col|W|Pr\(X >= 1\)) = (\S+)$")
_UNPERMUTED = re.compile(r"^Permutation testing: Unpermuted result (\S+) = (\S+)$")
_COUNTS = re.compile(r"^\s*(\S+?)(\*?)\s+(\d+)\s+(\d+)\s+(\d+)\s*$")
_VERDICT = re.compile(r"^(Chi square tests|Length of longest repeated substring test|IID permutation tests): (\w+)$")


def _time(path: Path) -> dict[str, float]:
    text = path.read_text()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    assert wall, f"{path}: no wall time"
    seconds = 0.0
    for part in wall[1].split(":"):
        seconds = seconds * 60 + float(part)
    user = float(re.search(r"User time \(seconds\): (\S+)", text)[1])  # type: ignore[index]
    system = float(re.search(r"System time \(seconds\): (\S+)", text)[1])  # type: ignore[index]
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)[1])  # type: ignore[index]
    return {"wall_s": seconds, "cpu_s": round(user + system, 2), "max_rss_kib": rss}


def _summary(lines: list[str]) -> dict[str, float]:
    return {m[1]: float(m[2]) for line in lines if (m := _VALUE.match(line))}


def non_iid(text: str) -> dict[str, Any]:
    lines = text.splitlines()
    # "view: estimator: value's name" -> value, every line NIST prints, in its order.
    estimates = {f"{m[1].lower()}: {m[2]}: {m[3]}": float(m[4]) for line in lines if (m := _ESTIMATE.match(line))}
    return {"summary": _summary(lines), "estimates": estimates}


def iid(text: str) -> dict[str, Any]:
    lines = text.splitlines()
    chi: dict[str, dict[str, float]] = {}
    for line in lines:
        if m := _CHI.match(line):
            chi.setdefault(m[1], {})[m[2]] = float(m[3])
    lrs = {m[1]: float(m[2]) for line in lines if (m := _LRS.match(line))}
    unpermuted = {m[1]: float(m[2]) for line in lines if (m := _UNPERMUTED.match(line))}
    permutation = {}
    table = lines.index("(* denotes failed test)")
    for line in lines[table - len(unpermuted) : table]:
        m = _COUNTS.match(line)
        assert m and m[1] in unpermuted, line
        permutation[m[1]] = {"value": unpermuted[m[1]], "counts": [int(m[3]), int(m[4]), int(m[5])], "passed": not m[2]}
    verdicts = {m[1]: m[2] == "Passed" for line in lines if (m := _VERDICT.match(line))}
    return {
        "summary": _summary(lines),
        "chi_square": {"independence": chi["independence"], "goodness_of_fit": chi["goodness of fit"]},
        "lrs": lrs,
        "permutation": permutation,
        "chi_square_passed": verdicts["Chi square tests"],
        "lrs_passed": verdicts["Length of longest repeated substring test"],
        "permutation_passed": verdicts["IID permutation tests"],
        "passed": all(verdicts.values()),
    }


def main(run_dir: Path, corpus_dir: Path) -> None:
    manifest = json.loads((corpus_dir / "manifest.json").read_text())["sources"]
    raw = HERE / "nist-output"
    raw.mkdir(exist_ok=True)
    sources = {}
    for entry in manifest:
        name, bits = entry["name"], entry["bits_per_symbol"]
        record: dict[str, Any] = {"sha256": entry["sha256"], "bits_per_symbol": bits}
        for track, parse, flags in [("non_iid", non_iid, "-vv"), ("iid", iid, "-vvv")]:
            out = run_dir / f"{name}.{track}.txt"
            timing = run_dir / f"{name}.{track}.time"
            if not out.exists() or not timing.exists() or not timing.stat().st_size:
                continue  # not run yet, or still running
            text = out.read_text()
            assert entry["sha256"] in text.splitlines()[0], f"{out}: NIST read other bytes"
            record[track] = {
                "command": f"ea_{track} {flags} {name}.bin {bits}",
                **parse(text),
                **_time(timing),
            }
            shutil.copyfile(out, raw / f"{name}.{track}.txt")
        sources[name] = record
    results = {
        "tool": TOOL,
        "date": sys.argv[3] if len(sys.argv) > 3 else "2026-12-03",
        "generator": {"module": "qitcore.corpus", "seed": manifest[0]["seed"], "samples": manifest[0]["samples"]},
        "machine": "2 cores (Intel Xeon, AVX-512), shared with other jobs: times are indicative only",
        "sources": sources,
    }
    (HERE / "nist-results.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
