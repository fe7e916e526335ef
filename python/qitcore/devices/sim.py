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

The model's min-entropy against classical side information is the default ``min_entropy``.
"""

from __future__ import annotations

from typing import Any

from .. import _core
from ..errors import InvalidArgumentError
from ..stream import QrngStream, RawSampleStream
from ._registry import Options, Url, register_backend

__all__ = ["model_from_url", "model_with_faults", "parse_faults"]


def model_from_url(url: Url) -> _core.NoiseModel:
    """The noise model the URL's query describes."""
    return _core.NoiseModel(
        bits=url.get("bits", int, 8),
        rate=url.get("rate", float, 0.0),
        sigma_quantum=url.get("sigma_quantum", float, 0.24),
        sigma_classical=url.get("sigma_classical", float, 0.048),
        gain=url.get("gain", float, 1.0),
        offset=url.get("offset", float, 0.0),
        bandwidth=url.get("bandwidth", float, float("inf")),
        range=url.get("range", float, 1.0),
        seed=url.get("seed", int, None),
    )


def model_with_faults(url: Url) -> tuple[_core.NoiseModel, dict[str, float]]:
    """The URL's model with its sample faults (stuck, drift) applied, and every fault."""
    model = model_from_url(url)
    faults = parse_faults(url)
    if "stuck" in faults:
        model.stick_after(int(faults["stuck"]))
    if "drift" in faults:
        model.drift(faults["drift"])
    return model, faults


def parse_faults(url: Url) -> dict[str, float]:
    """``fault=`` values as a dictionary: stuck, drift, drop, corrupt, garbage, disconnect."""
    faults: dict[str, float] = {}
    for item in url.all("fault"):
        name, _, value = item.partition(":")
        if name not in ("stuck", "drift", "drop", "corrupt", "garbage", "disconnect"):
            raise InvalidArgumentError(
                f"fault: unknown fault {name!r}; known: stuck:N, drift:X, drop:P, corrupt:P, garbage:P, disconnect:N"
            )
        try:
            faults[name] = float(value)
        except ValueError:
            raise InvalidArgumentError(f"fault: {item!r} needs a number after the colon") from None
    return faults


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
        samples_per_frame=url.get("frame", int, 1024),
        drop=faults.get("drop", 0.0),
        corrupt=faults.get("corrupt", 0.0),
        garbage=faults.get("garbage", 0.0),
        disconnect_after=int(faults["disconnect"]) if "disconnect" in faults else None,
        seed=url.get("seed", int, 0),
    )
    h = None if raw else (options.min_entropy if options.min_entropy is not None else model.min_entropy)
    return stream_class(raw)(core, description=url.text, info=describe(model), min_entropy=h)


register_backend("sim", _open_sim)
