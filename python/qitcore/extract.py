"""Randomness extraction and privacy amplification by two-universal hashing.

All extractors take packed bits (bytes, bytearray, memoryview or a numpy uint8 array, read without
copying) in bit order ``"big"`` (numpy's default: the first bit is the most significant bit of the
first byte) or ``"little"``, and return bytes or, with ``output="numpy"``, a numpy uint8 array.
The work runs in Rust with the GIL released, on all cores for large inputs.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _core, _validate
from .bits import pack_bits, unpack_bits

__all__ = ["Toeplitz"]

OutputKind = Literal["bytes", "numpy"]
_MAX_BITS = 1 << 36


def _size(name: str, value: Any) -> int:
    return _validate.integer(name, value, minimum=1, maximum=_MAX_BITS)


def _emit(compute: Any, nbytes: int, out: Any, output: str) -> Any:
    """Runs ``compute(out)`` into the caller's buffer, a new numpy array, or new bytes."""
    kind = _validate.choice("output", output, ("bytes", "numpy"))
    if out is not None:
        return compute(out)
    if kind == "numpy":
        array = np.empty(nbytes, dtype=np.uint8)
        compute(array)
        return array
    return compute(None)


class Toeplitz:
    """Toeplitz hashing from ``n`` to ``m`` bits: ``y = T·x`` over GF(2).

    ``T`` is the ``m × n`` Toeplitz matrix ``T[i, j] = seed[(i - j) mod (n + m - 1)]`` (the layout
    of randextract's default mode and of cryptomite), so outputs agree bit for bit with theirs.
    The family is two-universal: with a uniform seed it extracts ``m`` bits ε-close to uniform from
    any source with enough min-entropy (see :func:`qitcore.extract.output_length`).

    Args:
        n: input bits per block, ``1 <= n <= 2**36``.
        m: output bits per block, ``1 <= m <= n``.
        seed: ``n + m - 1`` seed bits packed in ``ceil((n + m - 1) / 8)`` bytes in ``bitorder``
            (pad bits of the last byte are ignored). ``None`` (the default) draws it from the
            operating system's CSPRNG. The seed never appears in ``repr``; :meth:`seed_bytes`
            returns it when the other party needs it.
        bitorder: bit order of the seed, the input and the output.

    Raises:
        InvalidTypeError: a size is not an int, or ``seed`` is not bytes-like.
        InvalidArgumentError: a size is out of range or ``m > n``.
        InvalidLengthError: ``seed`` has the wrong number of bytes.
    """

    __slots__ = ("_core",)

    def __init__(self, n: int, m: int, seed: Any = None, *, bitorder: _validate.BitOrder = "big") -> None:
        n = _size("n", n)
        m = _size("m", m)
        self._core = _core.Toeplitz(n, m, seed, _validate.bitorder(bitorder))

    @classmethod
    def from_bits(cls, n: int, m: int, seed_bits: Any) -> Toeplitz:
        """A hash function whose seed is a 0/1 array of ``n + m - 1`` elements (randextract's form)."""
        bits = _validate.bit_array("seed_bits", seed_bits)
        n, m = _size("n", n), _size("m", m)
        if bits.size != n + m - 1:
            raise _validate.InvalidArgumentError(
                f"seed_bits: expected {n + m - 1} bits (n + m - 1), got {bits.size}"
            )
        return cls(n, m, pack_bits(bits), bitorder="big")

    @property
    def n(self) -> int:
        """Input bits per block."""
        return int(self._core.n)

    @property
    def m(self) -> int:
        """Output bits per block."""
        return int(self._core.m)

    @property
    def seed_bits(self) -> int:
        """Seed length in bits, ``n + m - 1``."""
        return int(self._core.seed_bits)

    @property
    def bitorder(self) -> _validate.BitOrder:
        """Bit order of the seed, input and output."""
        return _validate.bitorder(self._core.bitorder)

    def seed_bytes(self) -> bytes:
        """The seed, packed in :attr:`bitorder`. Treat it as a secret."""
        return bytes(self._core.seed_bytes())

    def output_bytes(self, blocks: int) -> int:
        """Bytes of output for ``blocks`` blocks: ``ceil(blocks * m / 8)``."""
        return int(self._core.output_bytes(_validate.integer("blocks", blocks, minimum=0)))

    def hash(
        self, data: Any, *, nbits: int | None = None, out: Any = None, output: OutputKind = "bytes"
    ) -> Any:
        """Hashes every ``n``-bit block of ``data`` and packs the ``m``-bit outputs one after another.

        Args:
            data: a whole number of blocks of packed bits (bytes-like, read without copying).
            nbits: how many bits of ``data`` to use when its last byte is partly padding; the
                default is all of them.
            out: a writable C-contiguous buffer of exactly ``output_bytes(blocks)`` bytes to write
                into; it is returned.
            output: ``"bytes"`` or ``"numpy"`` (a new uint8 array), when ``out`` is not given.

        Raises:
            InvalidTypeError: ``data`` is not bytes-like (e.g. ``str``), or ``out`` is read-only or
                strided.
            InvalidLengthError: ``data`` is not a whole number of blocks, or ``out`` has the wrong size.
        """
        if nbits is not None:
            nbits = _validate.integer("nbits", nbits, minimum=0)
        return _emit(
            lambda target: self._core.hash(data, nbits, target), self._output_size(data, nbits), out, output
        )

    def hash_bits(self, bits: Any) -> npt.NDArray[np.uint8]:
        """Hashes 0/1 arrays (one element per bit, as randextract takes them): ``bits`` holds a whole
        number of ``n``-bit blocks; the result holds ``m`` output bits per block."""
        array = _validate.bit_array("bits", bits)
        if array.size % self.n:
            raise _validate.InvalidLengthError(
                f"bits: expected a whole number of {self.n}-bit blocks, got {array.size} bits"
            )
        packed = np.packbits(array, bitorder=self.bitorder)
        result = self._core.hash(packed, array.size, None)
        return unpack_bits(result, (array.size // self.n) * self.m, bitorder=self.bitorder)

    def _output_size(self, data: Any, nbits: int | None) -> int:
        if nbits is None:
            try:
                nbits = 8 * memoryview(data).nbytes
            except TypeError:
                return 0  # the core names the wrong type
        return self.output_bytes(nbits // self.n)

    def __repr__(self) -> str:
        return f"Toeplitz(n={self.n}, m={self.m}, bitorder={self.bitorder!r}, seed=<hidden>)"
