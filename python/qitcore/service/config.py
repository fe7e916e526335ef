"""What ``qitcore serve`` runs: the devices of its pool and the front ends, from a TOML file
and/or the command line.

```toml
[pool]
buffer_bytes = 8388608        # extracted bytes held ready, shared out between the devices
backoff = [0.5, 30]           # seconds before reopening a failed device: first, doubling to longest
reopen_after_health_failure = true   # false: a device whose health test fired stays off until SIGHUP

[[device]]                    # one table per device; any option of qitcore.open besides url
url = "serial:///dev/ttyACM0"
min_entropy = 6.5             # bits per sample (default: the device's own claim)
epsilon = 1e-30
extractor_seed = "00112233…"  # hex; default: drawn from the OS CSPRNG at each opening

[socket]                      # the local Unix socket (defaults shown under ``qitcore serve --help``)
path = "/run/qitcore/qitcored.sock"
mode = 0o660
group = "qitcore"

[kernel]                      # feed the kernel's pool (needs CAP_SYS_ADMIN)
[metrics]                     # Prometheus text on an opt-in address
listen = "127.0.0.1:9464"
[https]                       # mutual-TLS endpoint; [https.clients.<CN>] sets per-client limits
```

Relative paths are taken from the file's folder. Every key is checked when the file is read, so
a misspelt key or a bad value stops ``qitcore serve`` (or a SIGHUP reload, which then keeps the
running configuration) with an error naming it; nothing is opened before that.
"""

from __future__ import annotations

import dataclasses
import grp
import hashlib
import os
import stat
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .._validate import integer, public_url
from ..devices import _registry
from ..errors import InvalidArgumentError, InvalidTypeError, QitError

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_BUFFER_BYTES",
    "MAX_BUFFER_BYTES",
    "DeviceSettings",
    "ServiceConfig",
    "build",
    "check_backoff",
    "check_devices",
    "check_flag",
    "load",
    "replay_key",
]

DEFAULT_BUFFER_BYTES = 8 << 20
"""Extracted bytes the pool holds ready by default, all devices together."""
MIN_BUFFER_BYTES = 1 << 16
MAX_BUFFER_BYTES = 1 << 32
"""The most ``buffer_bytes`` may be (the pool's and the configuration's bound)."""
DEFAULT_BACKOFF = (0.5, 30.0)
"""Seconds before reopening a failed device: the first wait, doubling up to the longest."""
# Options of qitcore.open that a TOML file cannot express (a pyusb backend object).
_NOT_IN_FILES = {"usb_backend"}
_OPTIONS = {f.name for f in dataclasses.fields(_registry.Options)} - _NOT_IN_FILES


# Query keys whose values are secret or identify a secret: hidden in status and logs.
@dataclass(frozen=True)
class DeviceSettings:
    """One device of the pool: its URL and the keyword options :func:`qitcore.open` gets.

    Raises:
        InvalidArgumentError: the URL names no backend, takes no such parameter, or a value is out
            of range; an option is unknown or out of range (checked as :func:`qitcore.open`
            would, without opening anything).
    """

    url: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url:
            raise InvalidArgumentError(f"url: expected a device URL such as 'sim://', got {self.url!r}")
        if not isinstance(self.options, Mapping):
            raise InvalidTypeError(f"options: expected a mapping, got {type(self.options).__name__}")
        unknown = sorted(set(self.options) - _OPTIONS)
        if unknown:
            raise InvalidArgumentError(
                f"{self.public_url}: unknown option(s) {', '.join(map(str, unknown))} "
                f"(known: url, {', '.join(sorted(_OPTIONS))})"
            )
        options = dict(self.options)
        seed = options.get("extractor_seed")
        if isinstance(seed, str):
            try:
                options["extractor_seed"] = bytes.fromhex(seed)
            except ValueError:
                raise InvalidArgumentError(f"{self.public_url}: extractor_seed must be hex digits") from None
        # A read-only copy: settings are compared on reload and shared between threads.
        object.__setattr__(self, "options", MappingProxyType(options))
        self._check()

    def _check(self) -> None:
        """The URL and options as :func:`qitcore.open` checks them, short of opening."""
        parsed = _registry.Url.parse(self.url)
        try:
            declared = _registry.backend_params(parsed.scheme)
        except QitError as exc:
            raise InvalidArgumentError(f"{self.public_url}: {exc}") from None
        passthrough = parsed.scheme not in _registry._PARAMS
        checked = _registry.checked(parsed, declared, passthrough)
        merged = _registry.Options().merged(checked, dict(self.options))
        # Where the URL says how wide a sample is, a min-entropy above it cannot open: refused now
        # rather than found by the device's thread (the daemon would run with nothing to serve).
        h = merged.min_entropy
        if parsed.scheme in ("sim", "sim+pty", "file") and isinstance(h, int | float):
            bits = int(parsed.get("bits", int, 8))
            if h > bits:
                raise InvalidArgumentError(
                    f"{self.public_url}: min_entropy: must lie in (0, {bits}] bits per sample for its "
                    f"{bits}-bit samples, got {h:g}"
                )

    @property
    def public_url(self) -> str:
        """The URL with the values of secret-looking query keys (``seed``, ``key``, ``password``,
        ``token``, ...) replaced by ``***``: what status and logs show."""
        return public_url(self.url)

    @property
    def epsilon(self) -> float:
        """The ε the device's extractor runs with: the option, else the URL's, else the default."""
        value = self.options.get("epsilon")
        if value is None:
            parsed = _registry.Url.parse(self.url)
            value = parsed.get("epsilon", float, _registry.Options.epsilon)
        return float(value)

    def __repr__(self) -> str:
        # Never a seed: the options are named, their values are not shown.
        return f"DeviceSettings({self.public_url!r}, options={sorted(self.options)})"


@dataclass(frozen=True)
class ServiceConfig:
    """Everything ``qitcore serve`` runs. ``https``, ``kernel`` and ``metrics`` are ``None`` when
    that front end is off; ``local`` (the Unix socket) is always on. ``path`` is the TOML file
    it was read from (what SIGHUP reads again), if any."""

    devices: tuple[DeviceSettings, ...]
    local: Any
    https: Any = None
    kernel: Any = None
    metrics: Any = None
    buffer_bytes: int = DEFAULT_BUFFER_BYTES
    path: str | None = None
    backoff: tuple[float, float] = DEFAULT_BACKOFF
    reopen_after_health_failure: bool = True

    def __post_init__(self) -> None:
        devices = check_devices(self.devices)
        object.__setattr__(self, "devices", devices)
        integer("buffer_bytes", self.buffer_bytes, minimum=MIN_BUFFER_BYTES, maximum=MAX_BUFFER_BYTES)
        object.__setattr__(self, "backoff", check_backoff(self.backoff))
        check_flag("reopen_after_health_failure", self.reopen_after_health_failure)


def check_devices(devices: Sequence[DeviceSettings]) -> tuple[DeviceSettings, ...]:
    """``devices`` as a tuple, checked: at least one, each a :class:`DeviceSettings`, no URL twice
    and no replaying source twice (:func:`replay_key`: one file under two URLs, one seeded
    simulator under two URLs would serve the same input twice).

    Raises:
        InvalidTypeError: not a sequence of DeviceSettings. InvalidArgumentError: empty, or a
            device given twice (named).
    """
    if isinstance(devices, str | bytes) or not isinstance(devices, Sequence):
        raise InvalidTypeError(f"devices: expected a sequence of DeviceSettings, got {type(devices).__name__}")
    devices = tuple(devices)
    if not devices:
        raise InvalidArgumentError("devices: a pool needs at least one device")
    for d in devices:
        if not isinstance(d, DeviceSettings):
            raise InvalidTypeError(f"devices: expected DeviceSettings, got {type(d).__name__}")
    urls = [d.url for d in devices]
    twice = sorted({public_url(u) for u in urls if urls.count(u) > 1})
    if twice:
        raise InvalidArgumentError(f"devices: {', '.join(twice)} given more than once (one process owns a device)")
    seen: dict[str, str] = {}
    for d in devices:
        key = replay_key(d)
        if key is None:
            continue
        if key in seen:
            raise InvalidArgumentError(
                f"devices: {seen[key]} and {d.public_url} read the same replayable input ({key}); "
                "served twice, its entropy would be spent twice: name it once"
            )
        seen[key] = d.public_url
    return devices


_DIGEST_KEY = os.urandom(32)


def replay_key(settings: DeviceSettings) -> str | None:
    """What names a source whose raw input is the same at every opening, or ``None`` for a source
    whose input is new each time: a ``file://`` on a regular file (``file:`` and its resolved
    path; a FIFO is not replayed) and a simulator with a fixed ``seed=`` (``sim:seed#`` and a
    digest of the seed, for ``sim://`` and ``sim+pty://`` alike, whose samples come from the same
    model). A fresh
    extractor seed at each opening would make the output differ, but the min-entropy spent
    would be the same samples' again."""
    parsed = _registry.Url.parse(settings.url)
    if parsed.scheme == "file":
        # As the file backend reads it (devices/file.py).
        path = parsed.path
        if parsed.location and parsed.location != "localhost":
            path = parsed.location + parsed.path
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = None  # not there yet: a regular file may appear; counted as one
        if mode is not None and not stat.S_ISREG(mode):
            return None
        return f"file:{os.path.realpath(path)}"
    if parsed.scheme in ("sim", "sim+pty") and parsed.query.get("seed"):
        # The seed itself is never shown (the key appears in messages): a digest keyed for this
        # process tells seeds apart, and cannot be reversed by trying small seeds.
        digest = hashlib.blake2b(str(parsed.get("seed", int)).encode(), key=_DIGEST_KEY, digest_size=6).hexdigest()
        return f"sim:seed#{digest}"
    return None


def check_backoff(value: Any) -> tuple[float, float]:
    """``(first, longest)`` seconds with ``0 < first <= longest <= 86400``, as floats.

    Raises:
        InvalidArgumentError: anything else, named.
    """
    if (
        not isinstance(value, tuple | list)
        or len(value) != 2
        or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in value)
        or not 0 < value[0] <= value[1] <= 86_400
    ):
        raise InvalidArgumentError(
            f"backoff: expected [first, longest] seconds with 0 < first <= longest <= 86400, got {value!r}"
        )
    return float(value[0]), float(value[1])


def check_flag(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``.

    Raises:
        InvalidTypeError: anything else, named.
    """
    if not isinstance(value, bool):
        raise InvalidTypeError(f"{name}: expected true or false, got {value!r}")
    return value


def load(path: str | os.PathLike[str]) -> ServiceConfig:
    """Reads and checks a TOML configuration (see the module's documentation).

    Raises:
        InvalidArgumentError: the file is missing or not TOML, a table or key is unknown, or a
            value is of the wrong kind or out of range; the message names the key.
    """
    return build(path)


def build(
    path: str | os.PathLike[str] | None = None,
    *,
    devices: Sequence[str] = (),
    socket: str | None = None,
    feed_kernel: bool = False,
    metrics: str | None = None,
    https: Mapping[str, Any] | None = None,
    buffer_bytes: int | None = None,
) -> ServiceConfig:
    """The configuration of ``path`` (if any) with the command line's on top: ``devices`` (URLs)
    are added to the file's, ``socket`` replaces its socket path, ``feed_kernel`` turns the kernel
    feed on, ``metrics`` (an address) and ``https`` (the HTTPS front end's settings) replace the
    file's.

    Raises:
        InvalidArgumentError: as :func:`load`, and when no device is configured at all.
    """
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        data = _read(path)
        base = Path(path).resolve().parent
    where = f"{os.fspath(path)}: " if path is not None else ""
    unknown = sorted(set(data) - {"pool", "device", "socket", "https", "kernel", "metrics"})
    if unknown:
        raise InvalidArgumentError(
            f"{where}unknown table(s) {', '.join(unknown)} (known: pool, device, socket, https, kernel, metrics)"
        )
    settings = [_device(table, i, where) for i, table in enumerate(_tables(data, "device", where))]
    settings += [_device_url(url) for url in devices]
    if not settings:
        raise InvalidArgumentError(
            f"{where}no device to serve from: give --device URL (repeatable) or [[device]] tables in --config "
            "(the simulator is served only when named, e.g. --device sim://)"
        )
    pool = _table(data, "pool", where)
    _keys(pool, {"buffer_bytes", "backoff", "reopen_after_health_failure"}, "pool", where)
    buffer = buffer_bytes if buffer_bytes is not None else pool.get("buffer_bytes", DEFAULT_BUFFER_BYTES)
    socket_table = _paths(_table(data, "socket", where), ("path",), base)
    if socket is not None:
        socket_table["path"] = socket
    local = _section("socket", socket_table, where)
    _check_group(local, where)
    kernel_table = _table(data, "kernel", where) if "kernel" in data else ({} if feed_kernel else None)
    metrics_table = _table(data, "metrics", where) if "metrics" in data else None
    if metrics is not None:
        metrics_table = {**(metrics_table or {}), "listen": metrics}
    https_table = _table(data, "https", where) if "https" in data else None
    if https_table is not None:
        https_table = _paths(https_table, ("cert", "key", "ca"), base)
    if https is not None:
        https_table = {**(https_table or {}), **https}
    kernel = None if kernel_table is None else _section("kernel", kernel_table, where)
    _check_credit(kernel, settings, where)
    metrics_settings = None if metrics_table is None else _section("metrics", metrics_table, where)
    https_settings = None if https_table is None else _section("https", https_table, where)
    try:
        return ServiceConfig(
            devices=tuple(settings),
            local=local,
            kernel=kernel,
            metrics=metrics_settings,
            https=https_settings,
            buffer_bytes=buffer,
            backoff=pool.get("backoff", DEFAULT_BACKOFF),
            reopen_after_health_failure=pool.get("reopen_after_health_failure", True),
            path=None if path is None else os.fspath(Path(path).resolve()),
        )
    except QitError as exc:
        raise InvalidArgumentError(f"{where}{exc}") from None


def _check_credit(kernel: Any, devices: Sequence[DeviceSettings], where: str) -> None:
    """With the kernel feed crediting entropy, every device must be one whose output is entropy
    (not the simulator, a file, a pass-through of another service, nor a hardware RNG the kernel
    already credits): checked with the file, so neither a start nor a SIGHUP gets that far."""
    if kernel is None or not getattr(kernel, "credit_cap", 0) > 0:
        return
    from .kernel import credit_refusal  # type: ignore[import-not-found,unused-ignore]

    for device in devices:
        refusal = credit_refusal(device.url)
        if refusal is not None:
            raise InvalidArgumentError(
                f"{where}{refusal.replace(device.url[:200], device.public_url)}; "
                "to feed the kernel without credit, set [kernel] credit_cap = 0"
            )


def _check_group(local: Any, where: str) -> None:
    """The socket's group exists: checked with the rest of the file, so that a SIGHUP naming a
    group that does not exist keeps the running configuration rather than failing half-way."""
    group = getattr(local, "group", None)
    if group is None:
        return
    try:
        grp.getgrnam(group)
    except KeyError:
        raise InvalidArgumentError(f"{where}[socket]: group: no group named {group!r} on this system") from None


def _settings_class(name: str) -> type:
    """The settings class of a front end, imported only when its table is used (the HTTPS and
    metrics front ends need the ``service`` extra)."""
    import importlib

    module, cls = {
        "socket": (".local", "LocalSettings"),
        "https": (".https", "HttpsSettings"),
        "kernel": (".kernel", "KernelSettings"),
        "metrics": (".metrics", "MetricsSettings"),
    }[name]
    found: type = getattr(importlib.import_module(module, __package__), cls)
    return found


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise InvalidArgumentError(f"config: {os.fspath(path)}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # A binary file is not UTF-8, which TOML is: the same error as any other non-TOML file.
        raise InvalidArgumentError(f"config: {os.fspath(path)} is not valid TOML: {exc}") from None


def _table(data: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise InvalidArgumentError(f"{where}[{name}] must be a table, got {type(table).__name__}")
    return dict(table)


def _tables(data: Mapping[str, Any], name: str, where: str) -> list[dict[str, Any]]:
    tables = data.get(name, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise InvalidArgumentError(f"{where}[[{name}]] must be an array of tables (write [[{name}]] before each)")
    return tables


def _keys(table: Mapping[str, Any], allowed: set[str], name: str, where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InvalidArgumentError(
            f"{where}[{name}]: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(allowed))})"
        )


def _device(table: dict[str, Any], index: int, where: str) -> DeviceSettings:
    url = table.get("url")
    if not isinstance(url, str) or not url:
        raise InvalidArgumentError(f"{where}[[device]] #{index + 1}: url must be a device URL such as 'sim://'")
    options = {k: v for k, v in table.items() if k != "url"}
    try:
        return DeviceSettings(url, options)
    except QitError as exc:
        raise InvalidArgumentError(f"{where}[[device]] #{index + 1}: {exc}") from None


def _device_url(url: str) -> DeviceSettings:
    """A device given by its URL alone (``devices``): its errors name the URL, since a URL's
    parameters share names with the service's own settings (``buffer_bytes``)."""
    try:
        return DeviceSettings(url, {})
    except QitError as exc:
        raise InvalidArgumentError(f"devices: {url}: {exc}") from None


def _paths(table: dict[str, Any], keys: Sequence[str], base: Path) -> dict[str, Any]:
    for key in keys:
        value = table.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            table[key] = str(base / value)
    return table


def _section(name: str, table: dict[str, Any], where: str) -> Any:
    """The settings object of ``[name]``: unknown keys and bad values refused, naming the key.
    A settings class with a ``from_table`` class method (nested tables, such as HTTPS clients)
    reads the table itself."""
    cls = _settings_class(name)
    try:
        from_table = getattr(cls, "from_table", None)
        if from_table is not None:
            return from_table(table)
        if dataclasses.is_dataclass(cls):
            _keys(table, {f.name for f in dataclasses.fields(cls) if f.init}, name, where)
        if name == "https":
            table = _https_clients(table, where)
        if "connections" in table:
            table = _connections(table, name, where)
        return cls(**table)
    except QitError as exc:
        if str(exc).startswith(where + "["):
            raise
        raise InvalidArgumentError(f"{where}[{name}]: {exc}") from None
    except TypeError as exc:
        # A value of the wrong kind that the settings class did not check itself.
        raise InvalidArgumentError(f"{where}[{name}]: {exc}") from None


def _https_clients(table: dict[str, Any], where: str) -> dict[str, Any]:
    """``[https.clients.<CN>]`` tables as the HTTPS front end's ``ClientLimits``."""
    from .https import ClientLimits  # type: ignore[import-not-found,unused-ignore]

    table = dict(table)
    clients = table.get("clients")
    if clients is not None:
        if not isinstance(clients, dict):
            raise InvalidArgumentError(f"{where}[https.clients] must be tables, one per certificate CN")
        made = {}
        for cn, limits in clients.items():
            if not isinstance(limits, dict):
                raise InvalidArgumentError(f"{where}[https.clients.{cn}] must be a table")
            allowed = {f.name for f in dataclasses.fields(ClientLimits)}
            _keys(limits, allowed, f"https.clients.{cn}", where)
            try:
                made[cn] = ClientLimits(**limits)
            except QitError as exc:
                raise InvalidArgumentError(f"{where}[https.clients.{cn}]: {exc}") from None
        table["clients"] = made
    return table


def _connections(table: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    """``[<name>.connections]``: bounds on a network front end's connections."""
    from ..kme.limits import ConnectionLimits

    table = dict(table)
    connections = table["connections"]
    if not isinstance(connections, dict):
        raise InvalidArgumentError(f"{where}[{name}.connections] must be a table")
    _keys(connections, {f.name for f in dataclasses.fields(ConnectionLimits)}, f"{name}.connections", where)
    try:
        table["connections"] = ConnectionLimits(**connections)
    except QitError as exc:
        raise InvalidArgumentError(f"{where}[{name}.connections]: {exc}") from None
    return table
