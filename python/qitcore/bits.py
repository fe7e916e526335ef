"""Packing 0/1 arrays into bytes and back, in either bit order.

qitcore's extractors take packed bits; peer libraries such as randextract take one 0/1 element per
bit. These helpers move between the two.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _validate

__all__ = ["pack_bits", "unpack_bits"]


def pack_bits(bits: Any, *, bitorder: _validate.BitOrder = "big") -> bytes:
    """Packs a one-dimensional array of 0/1 values into bytes (the last byte padded with zeros).

    Raises:
        InvalidTypeError: ``bits`` is not of a bool or integer dtype.
        InvalidArgumentError: ``bits`` is not one-dimensional or holds values other than 0 and 1.
    """
    array = _validate.bit_array("bits", bits)
    return np.packbits(array, bitorder=_validate.bitorder(bitorder)).tobytes()


def unpack_bits(data: Any, nbits: int | None = None, *, bitorder: _validate.BitOrder = "big") -> npt.NDArray[np.uint8]:
    """Unpacks bytes into a uint8 array of 0/1 values, the first ``nbits`` bits (all by default).

    Raises:
        InvalidTypeError: ``data`` is not a bytes-like object.
        InvalidArgumentError: ``nbits`` is negative or exceeds the data.
    """
    order = _validate.bitorder(bitorder)
    if isinstance(data, str):
        raise _validate.InvalidTypeError("data: expected a bytes-like object, got str")
    try:
        view = memoryview(data)
    except TypeError as exc:
        raise _validate.InvalidTypeError(f"data: expected a bytes-like object, got {type(data).__name__}") from exc
    if view.itemsize != 1:
        # Refused as the core refuses them: the bytes of wider values are not bits of the data.
        raise _validate.InvalidTypeError(f"data: expected bytes (items of one byte), got items of {view.itemsize}")
    try:
        array = np.frombuffer(view.cast("B"), dtype=np.uint8)
    except TypeError as exc:  # a strided view
        raise _validate.InvalidTypeError(f"data: expected a contiguous bytes-like object ({exc})") from None
    total = 8 * array.size
    count = total if nbits is None else _validate.integer("nbits", nbits, minimum=0, maximum=total)
    return np.unpackbits(array, count=count, bitorder=order)
