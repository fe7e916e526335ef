"""Detection records: what each end of a BB84 link holds after the quantum phase.

Bases are ``0`` (the key basis) and ``1`` (the test basis); bits are ``0`` or ``1``. Alice's
records carry the intensity label of each pulse (``0`` signal, ``1`` decoy, ``2`` weak decoy);
Bob's do not. Indices are pulse numbers, strictly increasing; Alice's records must cover every
pulse Bob reports (she may hold more).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgumentError, InvalidLengthError, InvalidTypeError, SampleFileError
from ..report.files import atomic_file

__all__ = ["Records"]

INTENSITIES = 3


def _column(name: str, values: Any, dtype: type) -> npt.NDArray[Any]:
    try:
        array = np.asarray(values)
    except Exception as exc:
        raise InvalidTypeError(f"{name}: expected a 1-D array of integers ({exc})") from None
    if array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
        raise InvalidTypeError(f"{name}: expected a 1-D array of integers, got {array.dtype} of shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() > np.iinfo(dtype).max):
        raise InvalidArgumentError(f"{name}: values must lie in 0..{np.iinfo(dtype).max}")
    return np.ascontiguousarray(array, dtype=dtype)


@dataclass(frozen=True, repr=False)
class Records:
    """One end's detection records, column by column (numpy arrays of equal length).

    Args:
        index: pulse numbers, strictly increasing (uint64).
        basis: ``0`` key basis, ``1`` test basis.
        bit: ``0`` or ``1``.
        intensity: Alice's intensity labels ``0``, ``1``, ``2``; ``None`` for Bob.

    Raises:
        InvalidLengthError: the columns differ in length.
        InvalidArgumentError: a basis, bit or intensity label is unknown, or the indices are not
            strictly increasing. The message names the column and the first bad position.
    """

    index: npt.NDArray[np.uint64]
    basis: npt.NDArray[np.uint8]
    bit: npt.NDArray[np.uint8]
    intensity: npt.NDArray[np.uint8] | None = None

    def __post_init__(self) -> None:
        columns = {
            "index": _column("index", self.index, np.uint64),
            "basis": _column("basis", self.basis, np.uint8),
            "bit": _column("bit", self.bit, np.uint8),
        }
        if self.intensity is not None:
            columns["intensity"] = _column("intensity", self.intensity, np.uint8)
        lengths = {name: len(col) for name, col in columns.items()}
        if len(set(lengths.values())) != 1:
            raise InvalidLengthError(f"records: columns differ in length: {lengths}")
        for name, limit in (("basis", 2), ("bit", 2), ("intensity", INTENSITIES)):
            col = columns.get(name)
            if col is not None and col.size and col.max() >= limit:
                at = int(np.argmax(col >= limit))
                raise InvalidArgumentError(
                    f"{name}: unknown label {int(col[at])} at record {at} (expected 0..{limit - 1})"
                )
        index = columns["index"]
        if index.size > 1:
            bad = np.flatnonzero(index[1:] <= index[:-1])
            if bad.size:
                raise InvalidArgumentError(f"index: not strictly increasing at record {int(bad[0]) + 1}")
        for name, col in columns.items():
            object.__setattr__(self, name, col)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the records to ``path`` as a numpy ``.npz`` file (whole or not at all)."""
        with atomic_file(path, private=True) as out:
            if self.intensity is None:
                np.savez(out, index=self.index, basis=self.basis, bit=self.bit)
            else:
                np.savez(out, index=self.index, basis=self.basis, bit=self.bit, intensity=self.intensity)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Records:
        """Reads records written by :meth:`save`.

        Raises:
            SampleFileError: the file is missing, unreadable or not a records file.
        """
        try:
            with np.load(path, allow_pickle=False) as f:
                return cls(f["index"], f["basis"], f["bit"], f["intensity"] if "intensity" in f.files else None)
        except (OSError, ValueError, KeyError, EOFError) as exc:
            # EOFError: an empty file; numpy's messages name its own parameters, so they are not passed on.
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a records file"
            raise SampleFileError(f"{path}: {why}") from None

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        side = "Alice" if self.intensity is not None else "Bob"
        return f"Records({side}, {len(self)} detections)"
