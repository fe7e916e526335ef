"""Randomness extraction and privacy amplification by two-universal hashing.

All extractors take packed bits (bytes, bytearray, memoryview or a numpy uint8 array, read without
copying) in bit order ``"big"`` (numpy's default: the first bit is the most significant bit of the
first byte) or ``"little"``, and return bytes or, with ``output="numpy"``, a numpy uint8 array.
The work runs in Rust with the GIL released, on all cores for large inputs.
:func:`extract_file` runs them over files of any size (from :mod:`qitcore.extract_file`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from . import _core, _validate
from .bits import pack_bits, unpack_bits
from .errors import InvalidArgumentError, InvalidLengthError, InvalidTypeError

if TYPE_CHECKING:
    from .extract_file import ExtractResult, extract_file

__all__ = [
    "ExtractResult",
    "ModifiedToeplitz",
    "Toeplitz",
    "conditioned_entropy",
    "extract_file",
    "hash_condition",
    "output_entropy",
    "output_length",
    "von_neumann",
]

OutputKind = Literal["bytes", "numpy"]
_MAX_BITS = 1 << 32


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


class _BlockHash:
    """What every seeded block hash shares: sizes, seed handling, and ``hash``."""

    __slots__ = ("_core",)
    _core_class: Any = None
    _seed_formula = ""

    @staticmethod
    def _seed_length(n: int, m: int) -> int:
        raise NotImplementedError

    def __init__(self, n: int, m: int, seed: Any = None, *, bitorder: _validate.BitOrder = "big") -> None:
        n = _size("n", n)
        m = _size("m", m)
        self._core = self._core_class(n, m, seed, bitorder)  # the core checks the choice

    @classmethod
    def from_bits(cls, n: int, m: int, seed_bits: Any) -> Any:
        """A hash function whose seed is a 0/1 array (randextract's form), in big bit order."""
        bits = _validate.bit_array("seed_bits", seed_bits)
        n, m = _size("n", n), _size("m", m)
        expected = cls._seed_length(n, m)
        if bits.size != expected:
            raise InvalidLengthError(f"seed_bits: expected {expected} bits ({cls._seed_formula}), got {bits.size}")
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
        """Seed length in bits."""
        return int(self._core.seed_bits)

    @property
    def bitorder(self) -> _validate.BitOrder:
        """Bit order of the seed, input and output."""
        order: _validate.BitOrder = self._core.bitorder
        return order

    def seed_bytes(self) -> bytes:
        """The seed, packed in :attr:`bitorder`. Treat it as a secret."""
        return bytes(self._core.seed_bytes())

    def output_bytes(self, blocks: int) -> int:
        """Bytes of output for ``blocks`` blocks: ``ceil(blocks * m / 8)``."""
        return int(self._core.output_bytes(_validate.integer("blocks", blocks, minimum=0)))

    def hash(self, data: Any, *, nbits: int | None = None, out: Any = None, output: OutputKind = "bytes") -> Any:
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
        return _emit(lambda target: self._core.hash(data, nbits, target), self._output_size(data, nbits), out, output)

    def hash_bits(self, bits: Any) -> npt.NDArray[np.uint8]:
        """Hashes 0/1 arrays (one element per bit, as randextract takes them): ``bits`` holds a whole
        number of ``n``-bit blocks; the result holds ``m`` output bits per block."""
        array = _validate.bit_array("bits", bits)
        if array.size % self.n:
            raise InvalidLengthError(f"bits: expected a whole number of {self.n}-bit blocks, got {array.size} bits")
        packed = np.packbits(array, bitorder=self.bitorder)
        result = self._core.hash(packed, array.size, None)
        return unpack_bits(result, (array.size // self.n) * self.m, bitorder=self.bitorder)

    def _output_size(self, data: Any, nbits: int | None) -> int:
        try:
            available = 8 * memoryview(data).nbytes
        except TypeError:
            return 0  # the core names the wrong type
        if nbits is None:
            nbits = available
        elif not isinstance(nbits, int) or isinstance(nbits, bool) or not 0 <= nbits <= available:
            return 0  # the core names what is wrong with it, before any output is allocated
        return self.output_bytes(nbits // self.n)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, m={self.m}, bitorder={self.bitorder!r}, seed=<hidden>)"

    def __reduce__(self) -> tuple[Any, tuple[Any, int, int, bytes, str]]:
        # The seed travels in the pickle: that is what makes the copy the same hash function.
        return (_restore_hash, (type(self), self.n, self.m, self.seed_bytes(), self.bitorder))


def _restore_hash(cls: Any, n: int, m: int, seed: bytes, bitorder: _validate.BitOrder) -> Any:
    """The hash function a pickle holds (what ``__reduce__`` gave); checked as a new one is."""
    if not (isinstance(cls, type) and issubclass(cls, _BlockHash) and cls is not _BlockHash):
        raise InvalidTypeError(f"state: not a qitcore block hash class: {cls!r}")
    if not isinstance(seed, bytes):
        # __reduce__ always writes the seed: without it the copy would draw a fresh one, a
        # different hash function passing for the same.
        raise InvalidTypeError(f"state: the seed must be bytes, got {type(seed).__name__}")
    return cls(n, m, seed, bitorder=bitorder)


class Toeplitz(_BlockHash):
    """Toeplitz hashing from ``n`` to ``m`` bits: ``y = T·x`` over GF(2).

    ``T`` is the ``m × n`` Toeplitz matrix ``T[i, j] = seed[(i - j) mod (n + m - 1)]`` (the layout
    of randextract's default mode and of cryptomite), so outputs agree bit for bit with theirs.
    The family is two-universal: with a uniform seed it extracts ``m`` bits ε-close to uniform from
    any source with enough min-entropy (see :func:`output_length`).

    A Toeplitz hash pickles (and copies) with its seed, so that a Dask worker or another process
    hashes identically: **a pickle of it is the seed**, a secret to keep as you keep the seed.

    Args:
        n: input bits per block, ``1 <= n <= 2**32``.
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

    __slots__ = ()
    _core_class = _core.Toeplitz
    _seed_formula = "n + m - 1"

    @staticmethod
    def _seed_length(n: int, m: int) -> int:
        return n + m - 1


class ModifiedToeplitz(_BlockHash):
    """Modified Toeplitz hashing (Hayashi & Tsurumaru 2016): ``y = T·x[:n-m] ⊕ x[n-m:]``.

    ``T`` is the ``m × (n - m)`` Toeplitz matrix ``T[i, j] = seed[(i - j) mod (n - 1)]``, the layout
    of randextract's ``ModifiedToeplitzHashing``. Still two-universal, with a seed of ``n - 1`` bits
    (none when ``m == n``, where the hash is the identity). Arguments and errors as
    :class:`Toeplitz`, with a seed of ``ceil((n - 1) / 8)`` bytes. Like :class:`Toeplitz`, it
    pickles with its seed: treat a pickle of it as the seed.
    """

    __slots__ = ()
    _core_class = _core.ModifiedToeplitz
    _seed_formula = "n - 1, or 0 when m == n"

    @staticmethod
    def _seed_length(n: int, m: int) -> int:
        return 0 if m == n else n - 1


def von_neumann(
    data: Any, *, nbits: int | None = None, bitorder: _validate.BitOrder = "big", output: OutputKind = "bytes"
) -> tuple[Any, int]:
    """Von Neumann debiasing: bit pairs ``01 → 0``, ``10 → 1``; ``00`` and ``11`` are dropped.

    For independent bits of any fixed bias ``p`` the output is exactly uniform, at ``p(1 - p)``
    output bits per input bit (a quarter at best). Correlated bits are not made uniform.

    Args:
        data: packed bits (bytes-like).
        nbits: how many bits of ``data`` to use (default all); an odd last bit is dropped.
        bitorder: bit order of input and output.
        output: ``"bytes"`` or ``"numpy"``.

    Returns:
        ``(packed output, number of output bits)``; pad bits of the last byte are zero.

    Raises:
        InvalidTypeError: ``data`` is not bytes-like.
        InvalidArgumentError: ``nbits`` is negative or exceeds the data.
    """
    kind = _validate.choice("output", output, ("bytes", "numpy"))
    if nbits is not None:
        nbits = _validate.integer("nbits", nbits, minimum=0)
    packed, count = _core.von_neumann(data, nbits, bitorder)
    return (np.frombuffer(packed, dtype=np.uint8).copy() if kind == "numpy" else packed), int(count)


HashName = Literal["sha256", "sha3-256"]


def hash_condition(
    data: Any,
    block_bytes: int,
    *,
    function: HashName = "sha256",
    out: Any = None,
    output: OutputKind = "bytes",
) -> Any:
    """Conditions with a vetted hash function (NIST SP 800-90B §3.1.5.1.1): every
    ``block_bytes``-byte block of ``data`` becomes its 32-byte SHA-256 or SHA3-256 digest.

    The entropy to credit the output with is :func:`conditioned_entropy` with ``vetted=True``.

    Raises:
        InvalidTypeError: ``data`` is not bytes-like, or ``out`` not a writable buffer.
        InvalidArgumentError: ``block_bytes`` is not positive or ``function`` is unknown.
        InvalidLengthError: ``data`` is not a whole number of blocks, or ``out`` has the wrong size.
    """
    block_bytes = _validate.integer("block_bytes", block_bytes, minimum=1)
    try:
        nbytes = memoryview(data).nbytes // block_bytes * 32
    except TypeError:
        nbytes = 0  # the core names the wrong type
    return _emit(lambda target: _core.hash_condition(function, data, block_bytes, target), nbytes, out, output)


def output_length(
    n: int,
    min_entropy: float,
    eps: float,
    *,
    per: Literal["bit", "block"] = "bit",
    side_information: Literal["classical", "quantum"] = "quantum",
    convention: Literal["tssr", "cryptomite"] = "tssr",
) -> int:
    """The number of bits two-universal hashing may extract from ``n`` input bits (leftover hash lemma).

    With ``k`` the min-entropy of the block in bits (``min_entropy · n`` when ``per="bit"``, else
    ``min_entropy``), the output is ``ℓ = ⌊k − 2·log2(1/ε) + 2⌋``, capped at ``⌊k⌋`` and at least 0
    (Tomamichel, Schaffner, Smith, Renner, IEEE Trans. Inf. Theory 57(8), 2011, arXiv:1002.2436,
    Eq. (1); randextract's ``calculate_length``). ``convention="cryptomite"`` gives cryptomite's
    ``⌊k + 2·log2 ε⌋``, two bits fewer.

    **ε** is the distance of the output from uniform and independent of the adversary, in trace
    distance ``½‖ρ_YSE − ω_Y ⊗ ρ_SE‖₁`` (statistical distance for classical side information),
    seed ``S`` included; it composes additively across blocks.

    **Side information.** The bound has the same form for classical and for quantum side
    information (a quantum-proof extractor); what changes is ``k``: against quantum side
    information it must be the conditional min-entropy ``H_min(X|E)`` of the classical-quantum
    state, as QKD security proofs provide. ``side_information`` records which one you supply.

    Raises:
        InvalidTypeError: an argument has the wrong type.
        InvalidArgumentError: ``n < 1``, ``min_entropy`` outside ``(0, 1]`` per bit or ``(0, n]`` per
            block, ``eps`` outside ``(0, 1)``, or an unknown option.
    """
    n = _size("n", n)
    h = _validate.real("min_entropy", min_entropy)
    e = _validate.real("eps", eps)
    unit = _validate.choice("per", per, ("bit", "block"))
    _validate.choice("side_information", side_information, ("classical", "quantum"))
    if unit == "bit":
        if not 0 < h <= 1:
            raise InvalidArgumentError(f"min_entropy: must lie in (0, 1] bits per bit, got {h}")
        h *= n
    return int(_core.output_length(n, h, e, convention))  # the core checks the choice


def output_entropy(n_in: int, n_out: int, nw: int, h_in: float) -> float:
    """NIST SP 800-90B §3.1.5.1.2 ``Output_Entropy(n_in, n_out, nw, h_in)`` in bits.

    ``P_high = 2^-h_in``, ``P_low = (1 - P_high)/(2^n_in - 1)``, ``n = min(n_out, nw)``,
    ``ψ = 2^(n_in - n)·P_low + P_high``, ``U = 2^(n_in - n) + sqrt(2n·2^(n_in - n)·ln 2)``,
    ``ω = U·P_low``; the result is ``-log2 max(ψ, ω)``. Computed in the log domain, so thousands of
    input bits are fine. ``nw`` is the narrowest internal width of the conditioning function.

    Raises:
        InvalidArgumentError: a size below 1, or ``h_in`` outside ``[0, n_in]``.
    """
    n_in, n_out, nw = (_size(name, v) for name, v in (("n_in", n_in), ("n_out", n_out), ("nw", nw)))
    return float(_core.output_entropy(n_in, n_out, nw, _validate.real("h_in", h_in)))


def conditioned_entropy(
    n_in: int, n_out: int, nw: int, h_in: float, *, vetted: bool, h_prime: float | None = None
) -> float:
    """Entropy (bits) credited to an ``n_out``-bit conditioned output, NIST SP 800-90B §3.1.5.1.2.

    Vetted conditioning (:func:`hash_condition`): ``min(Output_Entropy, 0.999·n_out)``. Non-vetted
    (Toeplitz hashing is not on the vetted list): ``min(Output_Entropy, 0.999·n_out, h′·n_out)``,
    with ``h_prime`` the per-bit entropy assessed on the conditioned output.

    Raises:
        InvalidArgumentError: as :func:`output_entropy`, or ``h_prime`` missing (non-vetted) or
            outside ``[0, 1]``.
    """
    n_in, n_out, nw = (_size(name, v) for name, v in (("n_in", n_in), ("n_out", n_out), ("nw", nw)))
    hp = None if h_prime is None else _validate.real("h_prime", h_prime)
    if not isinstance(vetted, bool):
        raise InvalidTypeError(f"vetted: expected a bool, got {type(vetted).__name__}")
    return float(_core.conditioned_entropy(n_in, n_out, nw, _validate.real("h_in", h_in), vetted, hp))


def __getattr__(name: str) -> Any:
    # The file extractor builds on this module, so it is imported on first use, not here.
    if name in ("extract_file", "ExtractResult"):
        from . import extract_file as module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"extract_file", "ExtractResult"})
