"""The registry of device backends and :func:`open`, in the style of python-can's interfaces: a
URL's scheme picks the backend; backends register themselves by scheme, or from other packages
through the ``qitcore.devices`` entry-point group.

Each backend declares the query parameters it reads (:class:`~qitcore.devices._params.Param`:
kind and range). :func:`open` checks the URL against them, and against the stream options every
URL takes (:data:`OPTION_PARAMS`), before the backend runs: an unknown parameter is refused by
name (a misspelt ``rat=1e6`` must not run unthrottled), and so is a value out of range, with
:class:`~qitcore.errors.InvalidArgumentError`, so nothing hostile reaches a device or the Rust
core.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .. import _core
from .._validate import public_url
from ..errors import DeviceError, DeviceNotFound, InvalidArgumentError
from ..stream import QrngStream, RawSampleStream
from ._params import Param, choice, integer, number

__all__ = ["OPTION_PARAMS", "Options", "Url", "backend_params", "backends", "open", "open_raw", "register_backend"]


@dataclass(frozen=True)
class Url:
    """A parsed device URL: ``scheme://location/path?key=value&...``."""

    text: str
    scheme: str
    location: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    """The query's values checked against the backend's parameters (by :func:`open`)."""

    @property
    def public(self) -> str:
        """The URL as shown (:func:`public_url`): a stream's description, a message's."""
        return public_url(self.text)

    @classmethod
    def parse(cls, text: str) -> Url:
        if not isinstance(text, str) or not text:
            raise InvalidArgumentError(f"url: expected a device URL such as 'sim://', got {text!r}")
        if "://" not in text:
            # A bare path names a serial device, as pyserial's do.
            return cls(text, "serial", "", text)
        try:
            parts = urlsplit(text)
        except ValueError as exc:  # an unbalanced [ or ] (IPv6 brackets)
            raise InvalidArgumentError(f"url: {text!r} is not a valid URL ({exc})") from None
        query = parse_qs(parts.query, keep_blank_values=True)
        return cls(text, parts.scheme.lower(), parts.netloc, parts.path, query)

    def get(self, key: str, kind: Callable[[str], Any], default: Any = None) -> Any:
        """The value of ``key`` (as checked against its declaration, else converted by ``kind``),
        or ``default``."""
        if key in self.values:
            return self.values[key]
        values = self.query.get(key)
        if not values:
            return default
        try:
            return kind(values[-1])
        except ValueError as exc:
            raise InvalidArgumentError(f"{self.text}: {key}={values[-1]!r} is not valid ({exc})") from None

    def all(self, key: str) -> list[str]:
        """Every value of ``key``, comma-separated lists split."""
        return [part for value in self.query.get(key, []) for part in value.split(",") if part]


@dataclass(frozen=True)
class Options:
    """How a stream conditions its device's samples. Every field may also be given in the URL's
    query (``?min_entropy=6.5&epsilon=1e-30``); keyword arguments to :func:`open` win."""

    min_entropy: float | str | None = None
    """Min-entropy per sample (bits). Default: the device's claim (QDP INFO) or the simulator's
    model; a device that claims nothing needs it given. ``"assess"`` first reads 1,000,000 raw
    samples and takes the SP 800-90B non-IID assessment of them."""
    epsilon: float = _core.Stream.DEFAULT_EPSILON
    """Distance from uniform of each extracted block (leftover hash lemma, TSSR normalisation)."""
    alpha: float = _core.Stream.DEFAULT_ALPHA
    """False-positive rate of each health test. SP 800-90B allows 2^-20 to 2^-40; at the 10^8
    samples per second of a fast device, 2^-20 would raise a false alarm every few seconds, so
    streams default to 2^-40 (one in about 10^12 windows)."""
    startup_samples: int = _core.Stream.DEFAULT_STARTUP_SAMPLES
    """Samples health-tested (and discarded) before any output."""
    block_bits: int = _core.Stream.DEFAULT_BLOCK_BITS
    """Toeplitz input block, rounded up to whole samples and bytes."""
    gap_policy: str = _core.Stream.DEFAULT_GAP_POLICY
    """``"count"``: missing frames are counted in the statistics; ``"error"``: they raise
    ``SequenceGapError``."""
    buffer_bytes: int = _core.Stream.DEFAULT_CAPACITY
    """Output queue; a full queue stops reading the device (backpressure)."""
    extractor_seed: bytes | None = None
    """Toeplitz seed; by default drawn from the OS CSPRNG. Never logged."""
    timeout: float = 5.0
    """Seconds to wait for a device's replies when opening."""
    frame_timeout: float = _core.Stream.DEFAULT_FRAME_TIMEOUT
    """Seconds a stream may go without a valid frame (from its first read) before it fails with
    :class:`~qitcore.errors.NoValidFrames`: a device that sends nothing, or only garbage, is an
    error rather than a wait for ever. ``inf`` waits for ever (a very slow device)."""
    usb_backend: Any = None
    """The pyusb backend for USB devices (default: libusb); tests pass
    :class:`qitcore.testing.usb.EmulatedBackend`."""

    def merged(self, url: Url, overrides: dict[str, Any]) -> Options:
        """These options with the URL's (checked by :func:`open`) and the keyword arguments'."""
        values = {k: url.get(k, str) for k in OPTION_PARAMS if k in url.query}
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise InvalidArgumentError(f"open: unknown option(s) {', '.join(sorted(unknown))}")
        for k, v in overrides.items():
            if v is not None:
                values[k] = OPTION_PARAMS[k].check(v) if k in OPTION_PARAMS else v
        opts = replace(self, **values)
        if opts.gap_policy not in ("count", "error"):
            raise InvalidArgumentError(f"gap_policy: expected 'count' or 'error', got {opts.gap_policy!r}")
        if not (0 < opts.epsilon < 1):
            raise InvalidArgumentError(f"epsilon: must lie in (0, 1), got {opts.epsilon}")
        if not (0 < opts.alpha < 1):
            raise InvalidArgumentError(f"alpha: must lie in (0, 1), got {opts.alpha}")
        if not (opts.timeout > 0 and math.isfinite(opts.timeout)):
            raise InvalidArgumentError(f"timeout: must be a positive number of seconds, got {opts.timeout}")
        return opts

    def entropy(self, default: float | None) -> float | None:
        """The min-entropy per sample to use: the option (a number once :func:`open` has resolved
        ``"assess"``), else ``default`` (the device's claim)."""
        if isinstance(self.min_entropy, str):
            raise InvalidArgumentError(f"min_entropy: expected bits per sample, got {self.min_entropy!r}")
        return default if self.min_entropy is None else float(self.min_entropy)

    def passed_through(self, url: Url, server: str) -> None:
        """For a backend whose bytes another process conditioned (``qitcored://``, ``https://``):
        the options that condition samples are refused by name rather than silently ignored; only
        the queue's size and the timeout apply to such a stream."""
        defaults = Options()
        given = [
            f.name
            for f in fields(self)
            if f.name not in _PASSED_THROUGH and getattr(self, f.name) != getattr(defaults, f.name)
        ]
        if given:
            raise InvalidArgumentError(
                f"{url.public}: {', '.join(given)}: the {server} conditions its devices' samples; "
                "set these in its configuration ([[device]] tables), not in the client's URL"
            )

    def core_stream(
        self, bits: int, packing: str, bitorder: str, rate: int, *, raw: bool, min_entropy: float | None
    ) -> _core.Stream:
        """The Rust stream for samples in this format."""
        h = float(self.min_entropy) if self.min_entropy is not None else min_entropy
        if not raw and h is None:
            raise InvalidArgumentError(
                "min_entropy: the device claims no min-entropy; give min_entropy= (bits per sample), "
                "for instance from qitcore.entropy.assess_non_iid on samples from qitcore.open_raw"
            )
        return _core.Stream(
            bits,
            packing,
            bitorder,
            rate,
            min_entropy=h,
            alpha=self.alpha,
            startup_samples=self.startup_samples,
            block_bits=self.block_bits,
            epsilon=self.epsilon,
            gap_policy=self.gap_policy,
            raw=raw,
            capacity=self.buffer_bytes,
            seed=self.extractor_seed,
            frame_timeout=self.frame_timeout,
        )


_PASSED_THROUGH = {"buffer_bytes", "timeout", "usb_backend"}
"""The options a stream of bytes conditioned elsewhere still uses."""

OPTION_PARAMS: dict[str, Param] = {
    p.name: p
    for p in (
        number("min_entropy", 0, 16, "bits per sample", open_low=True, words=("assess",)),
        number("epsilon", 0, 1, "distance from uniform per block", open_low=True, open_high=True),
        number("alpha", 0, 1, "health tests' false-positive rate", open_low=True, open_high=True),
        integer("startup_samples", 0, 2**53, "samples tested before any output"),
        integer("block_bits", 1, 2**20, "Toeplitz input block"),
        choice("gap_policy", "count", "error", help="what lost or replayed frames do"),
        integer("buffer_bytes", 1, 2**30, "output queue"),
        number("timeout", 0, 86_400, "seconds to wait for a reply", open_low=True),
        number(
            "frame_timeout", 0, 86_400, "seconds without a valid frame before failing", open_low=True, infinite=True
        ),
    )
}
"""Parameters every device URL takes: the fields of :class:`Options`."""

Factory = Callable[[Url, Options, bool], QrngStream]
_BACKENDS: dict[str, Factory] = {}
_PARAMS: dict[str, dict[str, Param]] = {}


def register_backend(scheme: str, factory: Factory, params: Iterable[Param] | None = None) -> None:
    """Makes ``scheme://`` URLs open through ``factory(url, options, raw)``. ``params``: the query
    parameters the backend reads, besides :data:`OPTION_PARAMS` (default: the factory's
    ``url_params`` attribute, else none); :func:`open` refuses any other, and values out of their
    declared range, before calling the factory."""
    declared = list(params if params is not None else getattr(factory, "url_params", ()))
    clash = [p.name for p in declared if p.name in OPTION_PARAMS]
    if clash:
        raise InvalidArgumentError(f"params: {', '.join(clash)} are stream options every URL takes")
    _BACKENDS[scheme.lower()] = factory
    _PARAMS[scheme.lower()] = {p.name: p for p in declared}


def backends() -> list[str]:
    """The schemes :func:`open` knows, including those of installed plug-ins."""
    return sorted(set(_BACKENDS) | {ep.name for ep in entry_points(group="qitcore.devices")})


def backend_params(scheme: str) -> dict[str, Param]:
    """The query parameters ``scheme://`` URLs take: the backend's own, then :data:`OPTION_PARAMS`."""
    _factory(scheme.lower())  # loads a plug-in's declaration
    return {**_PARAMS.get(scheme.lower(), {}), **OPTION_PARAMS}


def checked(url: Url, declared: Mapping[str, Param], passthrough: bool = False) -> Url:
    """``url`` with its query's values checked against ``declared``. ``passthrough``: keys not
    declared are left for the transport (pyserial's own URL handlers refuse what they do not
    know).

    Raises:
        InvalidArgumentError: an unknown parameter, one given twice, or a value out of range,
            naming the parameter.
    """
    values: dict[str, Any] = {}
    for key, texts in url.query.items():
        param = declared.get(key)
        if param is None:
            if passthrough:
                continue
            known = ", ".join(sorted(declared))
            raise InvalidArgumentError(
                f"{key or repr(key)}: not a parameter of {url.scheme}:// URLs (they take {known})"
            )
        if len(texts) > 1 and not param.many:
            raise InvalidArgumentError(f"{key}: given {len(texts)} times; give it once")
        values[key] = [item for t in texts for item in param.parse(t)] if param.many else param.parse(texts[0])
    return replace(url, values=values)


def _factory(scheme: str) -> Factory:
    if scheme in _BACKENDS:
        return _BACKENDS[scheme]
    for ep in entry_points(group="qitcore.devices"):
        if ep.name == scheme:
            factory: Factory = ep.load()
            register_backend(scheme, factory)
            return factory
    if _pyserial_handles(scheme):
        return _BACKENDS["loop"]  # any pyserial URL handler: a QDP/1 device behind pyserial
    raise DeviceNotFound(f"no backend for '{scheme}://' URLs; known: {', '.join(backends())}")


ASSESS_SAMPLES = 1_000_000


def _pyserial_handles(scheme: str) -> bool:
    """Whether one of pyserial's URL handler packages has ``protocol_<scheme>``."""
    import importlib.util

    try:
        import serial
    except ImportError:
        return False
    for package in serial.protocol_handler_packages:
        try:
            if importlib.util.find_spec(f"{package}.protocol_{scheme}") is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def _open(url: str, raw: bool, overrides: dict[str, Any]) -> QrngStream:
    parsed = Url.parse(url)
    factory = _factory(parsed.scheme)
    # A scheme served by one of pyserial's own URL handlers: the keys qitcore does not know are
    # that handler's, and it refuses those it does not know either.
    passthrough = parsed.scheme not in _PARAMS
    parsed = checked(parsed, {**_PARAMS.get(parsed.scheme, _PARAMS.get("loop", {})), **OPTION_PARAMS}, passthrough)
    options = Options().merged(parsed, overrides)
    if options.min_entropy == "assess":
        options = replace(options, min_entropy=None if raw else _assess(parsed, options))
    elif options.min_entropy is not None and not isinstance(options.min_entropy, int | float):
        raise InvalidArgumentError(f"min_entropy: expected bits per sample or 'assess', got {options.min_entropy!r}")
    return factory(parsed, options, raw)


def _assess(url: Url, options: Options) -> float:
    """The SP 800-90B non-IID assessment of the device's first 1,000,000 raw samples."""
    from ..entropy import assess_non_iid

    with _factory(url.scheme)(url, replace(options, min_entropy=None), True) as raw:
        samples = raw.read(ASSESS_SAMPLES)
    if len(samples) < ASSESS_SAMPLES:
        raise DeviceError(
            f"{url.public}: the device ended after {len(samples):,} of the {ASSESS_SAMPLES:,} samples to assess"
        )
    return float(assess_non_iid(samples).h_assessed)


def open(url: str, **options: Any) -> QrngStream:
    """Opens a device and streams health-tested, extracted random bytes from it.

    ``url`` picks the backend: ``sim://?rate=1e6&fault=stuck:100000`` (the in-process
    simulator), ``sim+pty://`` (the C reference firmware on a pseudo-terminal), ``serial:///dev/ttyACM0``
    or a bare path, pyserial's ``loop://``, ``socket://host:port`` and ``rfc2217://host:port``,
    ``file:///path/capture.qdp`` (a file or FIFO of QDP/1 frames). ``options`` are the fields of
    :class:`Options`.
    """
    stream = _open(url, False, options)
    assert not isinstance(stream, RawSampleStream)
    return stream


def open_raw(url: str, **options: Any) -> RawSampleStream:
    """Opens a device for its **raw samples**, untested and unextracted, for entropy
    assessment. Never use them as random numbers."""
    stream = _open(url, True, options)
    assert isinstance(stream, RawSampleStream)
    return stream
