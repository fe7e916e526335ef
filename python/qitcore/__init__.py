"""qitcore: quantum random number generation and QKD key processing, with a Rust core.

- :mod:`qitcore.extract`: randomness extraction and privacy amplification (Toeplitz hashing and
  its relatives), with the output lengths the leftover hash lemma allows;
- :mod:`qitcore.entropy`: entropy assessment after NIST SP 800-90B;
- :mod:`qitcore.health`: continuous health tests (SP 800-90B) and block tests (FIPS 140-2, AIS 31);
- :mod:`qitcore.devices`: :func:`open` a QRNG by URL (simulator, serial, files) and read
  health-tested, extracted bytes; :func:`open_raw` for raw samples to assess;
- :mod:`qitcore.randomness`: :class:`QuantumBitGenerator` for numpy, :class:`QuantumRandom`,
  :func:`randbytes`;
- :mod:`qitcore.protocol`: QDP/1, the device protocol;
- :mod:`qitcore.qkd`: QKD key distillation for decoy-state BB84 (sifting, estimation, Cascade,
  verification, finite-key length, privacy amplification) over an authenticated channel;
- :mod:`qitcore.bits`: packing 0/1 arrays to bytes and back;
- :mod:`qitcore.errors`: the exception tree rooted at :class:`QitError`.
"""

from __future__ import annotations

from . import bits, devices, entropy, errors, extract, health, protocol, qkd, randomness
from ._core import __version__
from ._records import as_dict
from .devices import open, open_raw
from .errors import QitError
from .randomness import QuantumBitGenerator, QuantumRandom, randbytes
from .stream import QrngStream, RawSampleStream

__all__ = [
    "QitError",
    "QrngStream",
    "QuantumBitGenerator",
    "QuantumRandom",
    "RawSampleStream",
    "__version__",
    "as_dict",
    "bits",
    "devices",
    "entropy",
    "errors",
    "extract",
    "health",
    "open",
    "open_raw",
    "protocol",
    "qkd",
    "randbytes",
    "randomness",
]
