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

import importlib

# Cheap to import (no numpy, no network or device libraries), so loaded with the package.
from ._core import __version__
from .errors import QitError

# typing.TYPE_CHECKING without importing typing (a few milliseconds of every `import qitcore`);
# type checkers treat a constant of this name the same way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from . import bits, devices, entropy, errors, extract, health, protocol, qkd, randomness
    from ._records import as_dict
    from .devices import open, open_raw
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

# Everything else is imported on first use (PEP 562), so that a command or a script that needs only
# one part does not pay for numpy, the device backends and the network stack: `qitcore --help`
# and an assessment start in a fraction of the time.
_SUBMODULES = frozenset(
    {
        "bits",
        "cli",
        "corpus",
        "devices",
        "entropy",
        "errors",
        "extract",
        "health",
        "kme",
        "protocol",
        "qkd",
        "randomness",
        "report",
        "service",
        "stream",
        "testing",
    }
)
_FROM_SUBMODULE = {
    "as_dict": "_records",
    "open": "devices",
    "open_raw": "devices",
    "QuantumBitGenerator": "randomness",
    "QuantumRandom": "randomness",
    "randbytes": "randomness",
    "QrngStream": "stream",
    "RawSampleStream": "stream",
}


# What dir() lists besides what is loaded: the public names and the subpackages `import qitcore`
# used to load. Not the ones that need an extra (kme, service, testing) or are internal (cli,
# report, corpus): pydoc and inspect.getmembers read every name dir() gives, and would import them.
_LISTED = frozenset(__all__) | {"stream"}

# Hidden from type checkers, which then see only the names imported above and still report a
# misspelt attribute.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name in _SUBMODULES:
            # Importing a submodule also binds it here, so this runs once per name.
            return importlib.import_module(f"{__name__}.{name}")
        if name in _FROM_SUBMODULE:
            value = getattr(importlib.import_module(f"{__name__}.{_FROM_SUBMODULE[name]}"), name)
            globals()[name] = value
            return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    loaded = {k for k in globals() if not k.startswith("_")} - {"importlib", "TYPE_CHECKING"}
    return sorted(loaded | _LISTED | {"__version__"})
