"""NIST's SP 800-90B sample files and NIST's own results on them, kept in ``tests/data/sp800-90b``
(public domain; see the README there)."""

from __future__ import annotations

import re
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "sp800-90b"

FILES = [
    "biased-random-bits",
    "biased-random-bytes",
    "data.pi",
    "normal",
    "rand1_short",
    "rand4_short",
    "rand8_short",
    "ringOsc-nist",
    "truerand_1bit",
    "truerand_4bit",
    "truerand_8bit",
]

_LINE = re.compile(r"^(Literal|Bitstring) (.+?) Estimate: (.+?) = (\S+)$")
_SUMMARY = re.compile(r"^(H_bitstring|H_original|Assessed min entropy)\s*[:=]\s*(\S+)$")


def samples(name: str) -> bytes:
    path = DATA / f"{name}.bin"
    assert path.exists(), f"NIST's sample data is missing: {path}"
    return path.read_bytes()


def reference(name: str) -> dict[tuple[str, str, str], float]:
    """Every numeric line of NIST's ``ea_non_iid -vv`` output: (view, estimator, key) -> value, and
    ("", summary, "") for H_bitstring, H_original and the assessed value."""
    values: dict[tuple[str, str, str], float] = {}
    for line in (DATA / "refdata" / f"{name}.res").read_text().splitlines():
        if m := _LINE.match(line):
            values[(m[1].lower(), m[2], m[3])] = float(m[4])
        elif m := _SUMMARY.match(line):
            values[("", m[1], "")] = float(m[2])
    return values
