"""The JSON objects of ETSI GS QKD 014 v1.1.1 (§6): Status, Key request, Key container, Key IDs
and Error, with the field names of the specification, parsed strictly and written exactly."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import KMEBadRequest

__all__ = ["Key", "KeyRequest", "Status", "error_body", "parse_key_ids", "parse_key_request"]


@dataclass(frozen=True)
class Status:
    """The Status object (§6.1)."""

    source_KME_ID: str  # noqa: N815 - the specification's field names
    target_KME_ID: str  # noqa: N815
    master_SAE_ID: str  # noqa: N815
    slave_SAE_ID: str  # noqa: N815
    key_size: int
    stored_key_count: int
    max_key_count: int
    max_key_per_request: int
    max_key_size: int
    min_key_size: int
    max_SAE_ID_count: int  # noqa: N815
    status_extension: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "status_extension"}
        if self.status_extension is not None:
            out["status_extension"] = self.status_extension
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Status:
        try:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except TypeError as exc:
            raise KMEBadRequest(f"malformed Status object: {exc}") from None


@dataclass(frozen=True)
class KeyRequest:
    """The Key request object (§6.2), with the KME's defaults applied."""

    number: int = 1
    size: int | None = None
    additional_slave_SAE_IDs: tuple[str, ...] = ()  # noqa: N815
    extension_mandatory: tuple[dict[str, Any], ...] = ()
    extension_optional: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"number": self.number}
        if self.size is not None:
            out["size"] = self.size
        if self.additional_slave_SAE_IDs:
            out["additional_slave_SAE_IDs"] = list(self.additional_slave_SAE_IDs)
        if self.extension_mandatory:
            out["extension_mandatory"] = list(self.extension_mandatory)
        if self.extension_optional:
            out["extension_optional"] = list(self.extension_optional)
        return out


@dataclass(frozen=True, repr=False)
class Key:
    """One key of a Key container (§6.3): its ID and its bytes (never shown in ``repr``)."""

    key_ID: str  # noqa: N815
    key: bytes
    key_ID_extension: dict[str, Any] | None = None  # noqa: N815
    key_extension: dict[str, Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Key(key_ID={self.key_ID!r}, bits={len(self.key) * 8}, key=<hidden>)"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key_ID": self.key_ID, "key": base64.b64encode(self.key).decode()}
        if self.key_ID_extension is not None:
            out["key_ID_extension"] = self.key_ID_extension
        if self.key_extension is not None:
            out["key_extension"] = self.key_extension
        return out


def container(keys: list[Key]) -> dict[str, Any]:
    """The Key container object (§6.3)."""
    return {"keys": [k.to_json() for k in keys]}


def parse_container(data: Any) -> list[Key]:
    try:
        return [Key(str(k["key_ID"]), base64.b64decode(k["key"], validate=True)) for k in data["keys"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise KMEBadRequest(f"malformed Key container: {exc}") from None


def error_body(message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The Error object (§6.5)."""
    out: dict[str, Any] = {"message": message}
    if details:
        out["details"] = details
    return out


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise KMEBadRequest(f"{what}: the body is not JSON") from None
    except RecursionError:  # the parser's own bound: nothing of the specification nests like this
        raise KMEBadRequest(f"{what}: the JSON is nested too deeply") from None
    if not isinstance(data, dict):
        raise KMEBadRequest(f"{what}: expected a JSON object")
    return data


def _integer(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise KMEBadRequest(f"{name}: expected an integer, got {json.dumps(value)[:40]}")
    return value


def _objects(data: dict[str, Any], name: str) -> tuple[dict[str, Any], ...]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise KMEBadRequest(f"{name}: expected an array of objects")
    return tuple(value)


def parse_key_request(body: bytes) -> KeyRequest:
    """A Key request from a POST body; unknown fields are refused."""
    data = _json_object(body, "Key request")
    unknown = set(data) - set(KeyRequest.__dataclass_fields__)
    if unknown:
        raise KMEBadRequest(f"Key request: unknown field(s) {sorted(unknown)}")
    slaves = data.get("additional_slave_SAE_IDs", [])
    if not isinstance(slaves, list) or not all(isinstance(s, str) for s in slaves):
        raise KMEBadRequest("additional_slave_SAE_IDs: expected an array of strings")
    number = _integer(data, "number")
    mandatory = _objects(data, "extension_mandatory")
    for i, extension in enumerate(mandatory):
        if not extension:
            raise KMEBadRequest(f"extension_mandatory: entry {i} is an empty object (it must name a parameter)")
    return KeyRequest(
        number=1 if number is None else number,
        size=_integer(data, "size"),
        additional_slave_SAE_IDs=tuple(slaves),
        extension_mandatory=mandatory,
        extension_optional=_objects(data, "extension_optional"),
    )


def parse_key_ids(body: bytes) -> list[str]:
    """The key IDs of a Key IDs object (§6.4) from a POST body."""
    data = _json_object(body, "Key IDs")
    ids = data.get("key_IDs")
    if not isinstance(ids, list) or not ids:
        raise KMEBadRequest("key_IDs: expected a non-empty array")
    out = []
    for entry in ids:
        if not isinstance(entry, dict) or not isinstance(entry.get("key_ID"), str):
            raise KMEBadRequest("key_IDs: each entry needs a key_ID string")
        out.append(entry["key_ID"])
    return out
