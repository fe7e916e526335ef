"""``kme.toml``: what ``qitcore kme serve`` runs. Relative paths are taken from the file's folder.

```toml
[kme]
id = "KME-1"                 # source_KME_ID
target_id = "KME-1"          # target_KME_ID (the KME itself when it serves both SAEs of a link)
listen = "127.0.0.1:8443"
store = "store.sqlite"
saes = ["SAE-A", "SAE-B"]    # the client certificates' common names

[tls]                        # PEM files; the CA signs the SAEs' client certificates
cert = "kme.pem"
key = "kme.key"
ca = "ca.pem"

[limits]                     # reported in Status and enforced (defaults shown)
key_size = 256
max_key_count = 100000
max_key_per_request = 128
max_key_size = 8192
min_key_size = 64
max_SAE_ID_count = 2

[connections]                # bounds on the SAEs' HTTPS connections (defaults shown; seconds, bytes)
max_connections = 512        # open at once; more wait in the listen backlog
max_per_address = 64         # open at once from one address; more are closed
backlog = 1024
handshake_timeout = 10       # TLS handshake
header_timeout = 10          # from a request's first byte to the end of its headers
body_timeout = 10            # from the headers to the end of the body
write_timeout = 10           # from the start of a response to its last byte sent (a client that does not read)
idle_timeout = 30            # a connection with no request in progress is closed
max_body = 1048576

[source]                     # where key material comes from: a simulated QKD link
distance_km = 20
pulses = 100000000           # per distillation run
low_water = 1000             # runs start while fewer keys of key_size are stored
reconciliation = "cascade"   # or "blind" / "ldpc": the sessions' reconciliation (qkd.Params)

[peer]                       # optional: the KME at the other end of the QKD link
role = "alice"               # or "bob": Bob's KME drives the QKD sessions
address = "127.0.0.1:9102"   # the other KME's peer port
listen = "127.0.0.1:9101"    # this KME's peer port
auth_key_file = "peer.key"   # pre-shared key authenticating the KMEs to each other (16+ bytes)
saes = ["SAE-B"]             # the SAEs attached to the other KME
link_seed = 1                # both KMEs simulate session i's records from it
```

Without ``[peer]`` the KME serves both SAEs of a link itself from a simulated link in-process.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .. import _validate
from .._validate import host_port, show_host_port
from ..errors import InvalidArgumentError, InvalidTypeError, os_reason
from ..qkd.channel import read_auth_key
from ..qkd.session import RECONCILIATIONS, Params
from .limits import ConnectionLimits
from .peer import PeerSettings
from .server import KMEConfig

__all__ = ["ServeSettings", "load"]


@dataclass(frozen=True)
class SourceSettings:
    distance_km: float = 20.0
    pulses: int = 100_000_000
    low_water: int = 1000
    reconciliation: str = "cascade"

    def __post_init__(self) -> None:
        _validate.real("distance_km", self.distance_km)
        _validate.integer("pulses", self.pulses, minimum=1, maximum=2**40)
        _validate.integer("low_water", self.low_water, minimum=1)
        _validate.choice("reconciliation", self.reconciliation, RECONCILIATIONS)

    def params(self) -> Params:
        """The QKD sessions' parameters: the defaults, with this reconciliation."""
        return Params(reconciliation=self.reconciliation)


@dataclass(frozen=True)
class ServeSettings:
    kme: KMEConfig
    host: str = "127.0.0.1"
    port: int = 8443
    store: Path = Path("store.sqlite")
    cert: Path = Path("kme.pem")
    key: Path = Path("kme.key")
    ca: Path = Path("ca.pem")
    source: SourceSettings = field(default_factory=SourceSettings)
    peer: PeerSettings | None = None
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)


def _table(data: dict[str, Any], name: str, allowed: set[str]) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise InvalidArgumentError(f"kme.toml: [{name}] must be a table")
    unknown = set(table) - allowed
    if unknown:
        raise InvalidArgumentError(f"kme.toml: unknown key(s) in [{name}]: {sorted(unknown)}")
    return table


def load(path: str | os.PathLike[str]) -> ServeSettings:
    """Reads and checks ``kme.toml``.

    Raises:
        InvalidArgumentError: the file is missing, not TOML, or a key is unknown or of the wrong kind.
    """
    base = Path(path).resolve().parent
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise InvalidArgumentError(f"config: {os_reason(exc)}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # A binary file is not UTF-8, which TOML is: the same error as any other non-TOML file.
        raise InvalidArgumentError(f"config: {path} is not valid TOML: {exc}") from None
    unknown = set(data) - {"kme", "tls", "limits", "connections", "source", "peer"}
    if unknown:
        raise InvalidArgumentError(f"kme.toml: unknown table(s) {sorted(unknown)}")
    kme = _table(data, "kme", {"id", "target_id", "listen", "store", "saes"})
    tls = _table(data, "tls", {"cert", "key", "ca"})
    limit_names = {f.name for f in fields(KMEConfig)} - {"kme_id", "target_kme_id", "saes"}
    limits = _table(data, "limits", limit_names)
    source = _table(data, "source", {f.name for f in fields(SourceSettings)})
    saes = kme.get("saes", [])
    if not isinstance(saes, list) or not saes or not all(isinstance(s, str) and s for s in saes):
        raise InvalidArgumentError("kme.toml: [kme] saes must list the SAE IDs (client certificate common names)")
    numbers = {k: v for k, v in source.items() if k != "reconciliation"}
    for name, value in {**limits, **numbers}.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise InvalidArgumentError(f"kme.toml: {name} must be a positive number, got {value!r}")
    try:
        sources = SourceSettings(**source)
    except (InvalidArgumentError, InvalidTypeError) as exc:
        raise InvalidArgumentError(f"kme.toml: [source] {exc}") from None
    try:
        connections = ConnectionLimits(**_table(data, "connections", {f.name for f in fields(ConnectionLimits)}))
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"kme.toml: [connections] {exc}") from None
    peer = _peer(
        _table(data, "peer", {"role", "address", "listen", "auth_key_file", "saes", "link_seed"}), base, sources
    )
    kme_id = str(kme.get("id", "KME-1"))
    try:
        config = KMEConfig(
            kme_id=kme_id, target_kme_id=str(kme.get("target_id", kme_id)), saes=frozenset(saes),
            peer_saes=peer.saes if peer else frozenset(), **limits,
        )  # fmt: skip
    except (InvalidArgumentError, InvalidTypeError) as exc:
        table = "[kme]" if str(exc).startswith(("kme_id", "target_kme_id", "saes", "peer_saes")) else "[limits]"
        raise InvalidArgumentError(f"kme.toml: {table} {exc}") from None
    if config.key_size % 8 or config.min_key_size % 8 or config.max_key_size % 8:
        raise InvalidArgumentError("kme.toml: key sizes must be multiples of 8 bits")
    host, port = host_port("kme.toml: [kme] listen", kme.get("listen", "127.0.0.1:8443"))
    return ServeSettings(
        kme=config, host=host, port=port, store=base / kme.get("store", "store.sqlite"),
        cert=base / tls.get("cert", "kme.pem"), key=base / tls.get("key", "kme.key"), ca=base / tls.get("ca", "ca.pem"),
        source=sources, peer=peer, connections=connections,
    )  # fmt: skip


def _peer(table: dict[str, Any], base: Path, source: SourceSettings) -> PeerSettings | None:
    if not table:
        return None
    role = table.get("role")
    if role not in ("alice", "bob"):
        raise InvalidArgumentError(f'kme.toml: [peer] role must be "alice" or "bob", got {role!r}')
    saes = table.get("saes", [])
    if not isinstance(saes, list) or not saes or not all(isinstance(x, str) and x for x in saes):
        raise InvalidArgumentError("kme.toml: [peer] saes must list the SAE IDs attached to the other KME")
    auth_key = read_auth_key(base / str(table.get("auth_key_file", "peer.key")), "kme.toml: [peer] auth_key_file")
    seed = table.get("link_seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgumentError("kme.toml: [peer] link_seed must be an integer")
    peer_host, peer_port = host_port("kme.toml: [peer] address", table.get("address", ""))
    host, port = host_port("kme.toml: [peer] listen", table.get("listen", ""))
    return PeerSettings(
        role=role, peer_host=peer_host, peer_port=peer_port, listen_host=host, listen_port=port, auth_key=auth_key,
        saes=frozenset(saes), link_seed=seed, distance_km=source.distance_km, pulses=source.pulses,
    )  # fmt: skip


def local_config(host: str, port: int) -> str:
    """The text of a ``kme.toml`` for the local set-up that ``qitcore kme serve`` makes."""
    return (
        f'[kme]\nid = "KME-1"\nlisten = "{show_host_port(host, port)}"\nstore = "store.sqlite"\n'
        'saes = ["SAE-A", "SAE-B"]\n\n'
        '[tls]\ncert = "kme.pem"\nkey = "kme.key"\nca = "ca.pem"\n\n[source]\ndistance_km = 20\npulses = 100000000\n'
    )
