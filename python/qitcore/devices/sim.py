"""``sim://``: the loopback simulator in process — the homodyne noise model framed as QDP/1 by a
simulated device in Rust, with link faults on request. Query parameters:

- the model: ``bits`` (8), ``rate`` (samples/s, 0 = as fast as possible), ``sigma_quantum``
  (0.24), ``sigma_classical`` (0.048), ``gain`` (1), ``offset`` (0), ``bandwidth`` (Hz, inf),
  ``range`` (1; voltages are in units of the ADC half range), ``seed``;
- the device: ``frame`` (samples per frame, 1024);
- faults (``fault=`` repeated or comma-separated): ``stuck:N`` (output sticks after N samples),
  ``drift:X`` (offset grows X per sample), ``drop:P`` (frames dropped), ``corrupt:P`` (bytes
  corrupted), ``garbage:P`` (bursts of garbage between frames), ``disconnect:N`` (link down after
  N bytes).

Each is checked against its range (:data:`SIM_PARAMS`) before anything starts. The model's
min-entropy against classical side information is the default ``min_entropy``.
"""

from __future__ import annotations

from typing import Any

from .. import _core
from .._core import SimCounters
from ..errors import InvalidArgumentError
from ..stream import QrngStream, RawSampleStream
from ._params import faults, integer, number
from ._registry import Options, Url, register_backend

__all__ = [
    "MODEL_PARAMS",
    "SIM_PARAMS",
    "SimCounters",
    "frame_samples",
    "model_from_url",
    "model_with_faults",
    "parse_faults",
]

MAX_RATE = 2**32 - 1
"""Samples per second: the sample format states rates in 32 bits."""
MAX_VOLTAGE = 1e12
"""Largest magnitude of a voltage in the model (the Rust model's own bound)."""
MAX_FRAME = 8188 * 8
"""Samples in the largest frame of the narrowest format (1-bit samples, packed)."""

FAULT = faults(
    "fault",
    {
        "stuck": integer("stuck", 0, 2**62, "the output sticks after this many samples"),
        "drift": number("drift", -1.0, 1.0, "offset added per sample (units of the ADC half range)"),
        "drop": number("drop", 0.0, 1.0, "probability that a frame is dropped"),
        "corrupt": number("corrupt", 0.0, 1.0, "probability that a byte is corrupted"),
        "garbage": number("garbage", 0.0, 1.0, "probability of a burst of garbage before a frame"),
        "disconnect": integer("disconnect", 1, 2**62, "the link goes down after this many bytes"),
    },
    "link and source faults, e.g. stuck:100000,drop:0.01",
)

SIM_PARAMS = (
    integer("bits", 1, 16, "ADC resolution"),
    number("rate", 1, MAX_RATE, "samples per second (0: as fast as possible)", zero=True),
    number("sigma_quantum", 0, MAX_VOLTAGE, "vacuum noise", open_low=True),
    number("sigma_classical", 0, MAX_VOLTAGE, "classical electronic noise"),
    number("gain", 0, MAX_VOLTAGE, "amplifier gain", open_low=True),
    number("offset", -MAX_VOLTAGE, MAX_VOLTAGE, "DC offset at the ADC"),
    number("bandwidth", 0, None, "detection bandwidth in Hz", open_low=True, infinite=True),
    number("range", 0, MAX_VOLTAGE, "ADC half range", open_low=True),
    integer("seed", 0, 2**64 - 1, "seed of the model and of the link faults"),
    integer("frame", 1, MAX_FRAME, "samples per frame"),
    FAULT,
)
"""The parameters of ``sim://`` and ``sim+pty://`` URLs."""


MODEL_PARAMS: tuple[tuple[str, type], ...] = tuple(
    (p.name, int if p.kind == "int" else float) for p in SIM_PARAMS if p.name not in ("frame", "fault")
)
"""The model's parameters a URL may give; the model's own defaults (the core's) fill the rest."""


def model_from_url(url: Url) -> _core.NoiseModel:
    """The noise model the URL's query describes."""
    given = {name: url.get(name, kind) for name, kind in MODEL_PARAMS}
    return _core.NoiseModel(**{name: value for name, value in given.items() if value is not None})


def frame_samples(url: Url) -> int:
    """Samples per frame: the URL's ``frame``, else the simulated device's default."""
    return int(url.get("frame", int, _core.Stream.DEFAULT_SAMPLES_PER_FRAME))


def model_with_faults(url: Url) -> tuple[_core.NoiseModel, dict[str, float]]:
    """The URL's model with its sample faults (stuck, drift) applied, and every fault. The frame
    size is checked against the model's sample width here, for both simulators.

    Raises:
        InvalidArgumentError: a parameter out of range, named.
    """
    faults = parse_faults(url)
    model = model_from_url(url)
    frame = frame_samples(url)
    bits = model.bits
    payload = (frame * bits + 7) // 8 if bits == 1 else frame * ((bits + 7) // 8)
    if 4 + payload > 8192:
        raise InvalidArgumentError(f"frame: {frame} samples of {bits} bits do not fit a frame's 8192 payload bytes")
    if "stuck" in faults:
        model.stick_after(int(faults["stuck"]))
    if "drift" in faults:
        model.drift(faults["drift"])
    return model, faults


def parse_faults(url: Url) -> dict[str, float]:
    """``fault=`` values as a dictionary: stuck, drift, drop, corrupt, garbage, disconnect (each
    checked against its range).

    Raises:
        InvalidArgumentError: an unknown fault or a value out of range, named.
    """
    items = url.values.get("fault")
    if items is None:  # a URL not checked by open()
        items = [item for text in url.query.get("fault", []) for item in FAULT.parse(text)]
    return {name: value for name, value in items}


def describe(model: _core.NoiseModel) -> dict[str, Any]:
    return {
        "vendor": "qitcore",
        "model": "homodyne QRNG simulator",
        "serial": "SIM",
        "firmware": _core.__version__,
        "bits_per_sample": model.bits,
        "rate": model.rate,
        "min_entropy": model.min_entropy,
        "min_entropy_without_side_information": model.min_entropy_without_side_information,
        "correlation": model.correlation,
    }


def stream_class(raw: bool) -> type[QrngStream]:
    return RawSampleStream if raw else QrngStream


def _open_sim(url: Url, options: Options, raw: bool) -> QrngStream:
    model, faults = model_with_faults(url)
    bits = model.bits
    core = options.core_stream(
        bits, "packed" if bits == 1 else "aligned", "big", int(model.rate), raw=raw, min_entropy=model.min_entropy
    )
    core.attach_sim(
        model,
        samples_per_frame=frame_samples(url),
        drop=faults.get("drop", 0.0),
        corrupt=faults.get("corrupt", 0.0),
        garbage=faults.get("garbage", 0.0),
        disconnect_after=int(faults["disconnect"]) if "disconnect" in faults else None,
        seed=url.get("seed", int, 0),
    )
    h = None if raw else options.entropy(model.min_entropy)
    return stream_class(raw)(core, description=url.public, info=describe(model), min_entropy=h)


register_backend("sim", _open_sim, SIM_PARAMS)
