"""A simulated decoy-state BB84 link that produces both ends' detection records (see the core's
``qkd::sim`` for the physics: Poisson photon numbers, fibre loss, detector efficiency, dark counts,
misalignment, squashed double clicks)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .. import _core, _validate
from .records import Records

__all__ = ["MAX_PULSES", "LinkModel", "SimulatedLink"]

MAX_PULSES = 2**40
"""The most pulses one simulation sends (its records would take terabytes beyond)."""


@dataclass(frozen=True)
class LinkModel:
    """The link's physics and Alice's source settings; the defaults (below) are 20 km of standard
    fibre and a typical decoy-state source."""

    distance_km: float = 20.0
    attenuation_db_per_km: float = 0.2
    detector_efficiency: float = 0.25
    dark_count: float = 1e-6
    misalignment: float = 0.01
    mu: tuple[float, float, float] = (0.6, 0.2, 0.0002)
    p: tuple[float, float, float] = (0.5, 0.3, 0.2)
    key_basis_probability: float = 0.8

    def __post_init__(self) -> None:
        # Refused when made, not when simulated: a command prints what it will simulate first.
        _core.check_link(*self._arguments())

    def _arguments(self) -> tuple[float, float, float, float, float, list[float], list[float], float]:
        """The link's parameters as the core takes them, each checked to be a real number."""
        return (
            _validate.real("distance_km", self.distance_km),
            _validate.real("attenuation_db_per_km", self.attenuation_db_per_km),
            _validate.real("detector_efficiency", self.detector_efficiency),
            _validate.real("dark_count", self.dark_count),
            _validate.real("misalignment", self.misalignment),
            [_validate.real("mu", v) for v in self.mu],
            [_validate.real("p", v) for v in self.p],
            _validate.real("key_basis_probability", self.key_basis_probability),
        )

    def transmittance(self) -> float:
        """Probability that one photon sent is detected: fibre loss times detector efficiency."""
        return float(self.detector_efficiency * 10 ** (-self.attenuation_db_per_km * self.distance_km / 10))

    def pulses_for(self, sifted_key_bits: int) -> int:
        """Pulses to send for about ``sifted_key_bits`` key-basis bits after sifting: the
        expected detection probability per pulse is ``Σ p_k (1 − (1 − pd)² e^(−η μ_k))``."""
        eta, pd = self.transmittance(), self.dark_count
        detect = sum(p * (1 - (1 - pd) ** 2 * math.exp(-eta * mu)) for p, mu in zip(self.p, self.mu, strict=True))
        return max(1, math.ceil(sifted_key_bits / (detect * self.key_basis_probability**2)))

    def simulate(self, pulses: int, *, seed: int | None = None) -> SimulatedLink:
        """Sends ``pulses`` pulses; ``seed`` (default: from the OS) makes the run repeatable.

        Raises:
            InvalidArgumentError: a parameter is out of its range (the message names it).
        """
        pulses = _validate.integer("pulses", pulses, minimum=1, maximum=MAX_PULSES)
        seed = (
            int.from_bytes(os.urandom(8), "little")
            if seed is None
            else _validate.integer("seed", seed, minimum=0, maximum=2**64 - 1)
        )
        d = _core.simulate_bb84(pulses, seed, *self._arguments())
        index = np.frombuffer(d.index, dtype="<u8").astype(np.uint64)
        alice = Records(index, _u8(d.alice_basis), _u8(d.alice_bit), _u8(d.intensity))
        bob = Records(index, _u8(d.bob_basis), _u8(d.bob_bit))
        return SimulatedLink(alice, bob, _u8(d.photons), pulses, self.transmittance())


def _u8(column: bytes) -> npt.NDArray[np.uint8]:
    return np.frombuffer(column, dtype=np.uint8)


@dataclass(frozen=True)
class SimulatedLink:
    """Both ends' records of one run, with the photon numbers as ground truth."""

    alice: Records
    bob: Records
    photons: npt.NDArray[np.uint8]
    pulses: int
    transmittance: float
