"""Every entry point that takes a file path refuses what is not one by name, with a QitError:
wrong types (an int is never taken for a file descriptor, which reading would then close),
NUL characters, text the file system cannot encode, an empty string."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from qitcore import archive, entropy, health
from qitcore.errors import InvalidArgumentError, InvalidTypeError
from qitcore.extract_file import extract_file
from qitcore.kme import KeyStore
from qitcore.qkd.keypool import KeyPool

BAD_TYPES: list[Any] = [None, 0, 1, True, 2.5, b"file", ["file"]]
BAD_TEXT = ["a\0b", "\ud800", ""]


def _entry_points(tmp_path: Path) -> dict[str, Callable[[Any], object]]:
    real = tmp_path / "samples.bin"
    real.write_bytes(bytes(range(256)) * 8)
    out = str(tmp_path / "out.bin")
    return {
        "read_samples": lambda p: entropy.read_samples(p),
        "scan_file": lambda p: health.scan_file(p, 3.0),
        "extract_file src": lambda p: extract_file(p, out, m=64),
        "extract_file dst": lambda p: extract_file(str(real), p, m=64),
        "extract_file seed_file": lambda p: extract_file(str(real), out, m=64, seed_file=p),
        "extract_file save_seed": lambda p: extract_file(str(real), out, m=64, save_seed=p),
        "assess_files": lambda p: archive.assess_files([p]),
        "KeyPool": lambda p: KeyPool(p),
        "KeyPool.create": lambda p: KeyPool.create(p, b"k" * 64),
        "KeyStore": lambda p: KeyStore(p),
    }


@pytest.mark.parametrize("bad", BAD_TYPES + BAD_TEXT, ids=repr)
def test_what_is_not_a_path_is_refused_by_name(tmp_path: Path, bad: Any) -> None:
    for name, call in _entry_points(tmp_path).items():
        if bad is None and name.endswith(("seed_file", "save_seed")):
            continue  # None is these options' default: not given
        error = InvalidArgumentError if isinstance(bad, str) else InvalidTypeError
        with pytest.raises(error, match="path|src|dst|seed"):
            call(bad)
    # Standard input and output are still open: no int was taken for a descriptor.
    os.fstat(0)
    os.fstat(1)
    assert not (tmp_path / "out.bin").exists()


def test_assess_files_wants_a_sequence_of_paths(tmp_path: Path) -> None:
    with pytest.raises(InvalidTypeError, match="paths"):
        archive.assess_files(5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="subset"):
        archive.assess_files([str(tmp_path / "x")], subset=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="subset"):
        entropy.read_samples(str(tmp_path / "x"), subset=5)  # type: ignore[arg-type]
