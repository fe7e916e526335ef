"""Arguments of the Python entry points that the core never sees, refused by name with a
QitError before any work: choices and flags given arrays (whose truth is ambiguous), callables
that are not, sizes that would be allocated before they were checked, wider items taken for
bytes, and a digest taken over rows instead of the whole buffer."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qitcore import archive, bits, entropy
from qitcore.errors import InvalidArgumentError, InvalidTypeError, QitError
from qitcore.extract import Toeplitz
from qitcore.extract_file import extract_file


def _refusals(tmp_path: Path) -> dict[str, tuple[Callable[[], object], type[QitError], str]]:
    src = tmp_path / "in.bin"
    src.write_bytes(bytes(range(256)) * 64)
    array = np.zeros(2)
    return {
        "bitorder array": (lambda: bits.unpack_bits(b"x", bitorder=array), InvalidArgumentError, "bitorder"),  # type: ignore[arg-type]
        "track array": (lambda: archive.assess_files([src], track=array), InvalidTypeError, "track"),  # type: ignore[arg-type]
        "truncate array": (
            lambda: entropy.assess_non_iid(b"ab" * 100, truncate_bitstring=array),  # type: ignore[arg-type]
            InvalidTypeError,
            "truncate_bitstring",
        ),
        "files truncate array": (
            lambda: archive.assess_files([src], truncate_bitstring=array),  # type: ignore[arg-type]
            InvalidTypeError,
            "truncate_bitstring",
        ),
        "progress not callable": (
            lambda: extract_file(src, tmp_path / "out.bin", m=64, progress=5),  # type: ignore[arg-type]
            InvalidTypeError,
            "progress",
        ),
        "nbits past the data, numpy out": (
            lambda: Toeplitz(8, 8, b"\x01\x02").hash(b"x", nbits=2**62, output="numpy"),
            InvalidArgumentError,
            "nbits",
        ),
        "max_samples past the largest": (
            lambda: entropy.read_samples("/dev/zero", max_samples=2**62),
            InvalidArgumentError,
            "max_samples",
        ),
        "float64 items as bits": (lambda: bits.unpack_bits(np.zeros(2)), InvalidTypeError, "items of 8"),
        "digest of None": (lambda: entropy.sha256_hex(None), InvalidTypeError, "data"),
    }


def test_bad_arguments_are_refused_by_name_before_any_work(tmp_path: Path) -> None:
    for name, (call, error, named) in _refusals(tmp_path).items():
        with pytest.raises(error, match=named):
            call()
        assert not (tmp_path / "out.bin").exists(), name


def test_a_subset_past_any_offset_is_a_sample_file_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(QitError, match="subset"):
        entropy.read_samples(empty, subset=(2**62, 10))


@pytest.mark.parametrize("shape", [(16,), (4, 4), (2, 2, 4)])
def test_the_digest_covers_the_whole_buffer_whatever_its_shape(shape: Any) -> None:
    data = np.arange(16, dtype=np.uint8).reshape(shape)
    assert entropy.sha256_hex(data) == hashlib.sha256(data.tobytes()).hexdigest()
