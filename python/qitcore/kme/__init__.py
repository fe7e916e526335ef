"""ETSI GS QKD 014 key delivery: a KME server (:class:`KMEServer`, keys in a persistent
:class:`KeyStore`) and a client for any conforming KME (:class:`KMEClient`), both over HTTPS
with mutual TLS."""

from __future__ import annotations

from .client import KMEClient
from .models import Key, KeyRequest, Status
from .server import KMEConfig, KMEServer
from .store import KeyStore

__all__ = ["KMEClient", "KMEConfig", "KMEServer", "Key", "KeyRequest", "KeyStore", "Status"]
