"""extract_file's memory does not grow with its input: the peak resident set of a fresh
interpreter extracting a file several times larger than the bound, against the same
interpreter's peak before the extraction."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

#: What one extraction may add to the peak: the two read buffers and the output buffer of a chunk
#: (8 MiB each at most), the packed bits of a chunk of samples and the temporaries of packing a
#: slice of them, with room for the allocator (measured: 24 MiB for 8-bit samples, 9 for 3-bit).
BOUND = 48 << 20
#: The input: a sparse file (nothing on disk), more than five times the bound.
SIZE = 256 << 20

_PEAK = """
import resource, sys
from qitcore.extract_file import extract_file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
result = extract_file(sys.argv[1], sys.argv[2], m=int(sys.argv[4]), bits_per_sample=int(sys.argv[3]))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(before, after, result.blocks)
"""


@pytest.mark.parametrize(("bits", "m"), [(8, 3456), (3, 1000)])
def test_the_peak_memory_does_not_grow_with_the_input(tmp_path: Path, bits: int, m: int) -> None:
    src = tmp_path / "in"
    with open(src, "wb") as f:
        f.truncate(SIZE)
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, str(src), str(tmp_path / "out"), str(bits), str(m)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    before, after, blocks = map(int, out.stdout.split())
    n = 4096 if bits == 8 else 4104
    assert blocks == SIZE * bits // n  # the whole input was extracted
    assert after - before < BOUND, f"the extraction added {(after - before) >> 20} MiB to the peak"
