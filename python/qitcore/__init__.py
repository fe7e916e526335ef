"""qitcore: quantum random number generation and QKD key processing, with a Rust core.

- :mod:`qitcore.extract`: randomness extraction and privacy amplification (Toeplitz hashing and
  its relatives), with the output lengths the leftover hash lemma allows;
- :mod:`qitcore.entropy`: entropy assessment after NIST SP 800-90B;
- :mod:`qitcore.health`: continuous health tests (SP 800-90B) and block tests (FIPS 140-2, AIS 31);
- :mod:`qitcore.bits`: packing 0/1 arrays to bytes and back;
- :mod:`qitcore.errors`: the exception tree rooted at :class:`QitError`.
"""

from __future__ import annotations

from . import bits, entropy, errors, extract, health
from ._core import __version__
from .errors import QitError

__all__ = ["QitError", "__version__", "bits", "entropy", "errors", "extract", "health"]
