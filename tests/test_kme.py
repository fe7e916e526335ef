"""ETSI GS QKD 014 KME and client over HTTPS with mutual TLS on 127.0.0.1, driven by qitcore's
client and by a third-party client (the PyPI package etsi-qkd-014-client); certificates made by
trustme. Every refusal is checked to change nothing in the store."""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from etsi_qkd_014_client import QKD014Client
from qitcore.errors import ChannelClosed, InvalidArgumentError, KMEBadRequest, KMEUnauthorized, KMEUnavailable
from qitcore.kme import KeyStore, KMEClient, KMEConfig, KMEServer

SAES = frozenset({"SAE-A", "SAE-B", "SAE-C"})


class Pki:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = trustme.CA()
        self.ca_file = str(root / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.server_cert, self.server_key = str(root / "kme.pem"), str(root / "kme.key")
        server.cert_chain_pems[0].write_to_path(self.server_cert)
        server.private_key_pem.write_to_path(self.server_key)

    def sae(self, name: str, ca: trustme.CA | None = None, **kwargs: object) -> tuple[str, str]:
        leaf = (ca or self.ca).issue_cert(f"{name.lower()}.example", common_name=name, **kwargs)
        cert, key = str(self.root / f"{name}-{id(leaf)}.pem"), str(self.root / f"{name}-{id(leaf)}.key")
        leaf.cert_chain_pems[0].write_to_path(cert)
        leaf.private_key_pem.write_to_path(key)
        return cert, key


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def kme(pki: Pki, tmp_path: Path) -> Iterator[KMEServer]:
    store = KeyStore(tmp_path / "store.sqlite")
    store.add(bytes(range(256)) * 64)  # 16 KiB of key material
    config = KMEConfig(kme_id="KME-1", target_kme_id="KME-1", saes=SAES, max_key_per_request=16)
    with KMEServer(config, store, certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca_file) as server:
        yield server
    store.close()


def _client(pki: Pki, kme: KMEServer, sae: str) -> KMEClient:
    cert, key = pki.sae(sae)
    host, port = kme.address
    return KMEClient(f"https://{host}:{port}", cert, key, pki.ca_file)


def _state(kme: KMEServer) -> tuple[int, int]:
    return kme.store.pool_bytes(), kme.store.waiting()


def test_status_reports_the_configuration(pki: Pki, kme: KMEServer) -> None:
    with _client(pki, kme, "SAE-A") as a:
        s = a.status("SAE-B")
    assert (s.source_KME_ID, s.master_SAE_ID, s.slave_SAE_ID, s.key_size) == ("KME-1", "SAE-A", "SAE-B", 256)
    assert s.stored_key_count == 16 * 1024 // 32 and s.max_key_per_request == 16 and s.min_key_size == 64


def test_master_and_slave_get_the_same_keys_once(pki: Pki, kme: KMEServer) -> None:
    with _client(pki, kme, "SAE-A") as a, _client(pki, kme, "SAE-B") as b, _client(pki, kme, "SAE-C") as c:
        sent = a.get_keys("SAE-B", number=3, size=512) + a.get_keys("SAE-B", number=2, post=True)
        assert [len(k.key) for k in sent] == [64] * 3 + [32] * 2
        assert len({k.key_ID for k in sent}) == 5 and len({k.key for k in sent}) == 5
        # Keys come from the pool in order, each byte once.
        assert b"".join(k.key for k in sent) == (bytes(range(256)) * 64)[: 3 * 64 + 2 * 32]
        ids = [k.key_ID for k in sent]
        with pytest.raises(KMEUnauthorized):
            c.get_keys_with_ids("SAE-A", ids[:1])  # another SAE's key
        got = b.get_keys_with_ids("SAE-A", ids[:3]) + b.get_keys_with_ids("SAE-A", ids[3:], post=False)
        assert [(k.key_ID, k.key) for k in got] == [(k.key_ID, k.key) for k in sent]
        before = _state(kme)
        with pytest.raises(KMEBadRequest, match="no such key"):
            b.get_keys_with_ids("SAE-A", ids[:1])  # replayed
        assert _state(kme) == before and kme.store.waiting() == 0
    counters = {"material_bytes": 16384, "pool_bytes": 16384 - 256, "taken": 256, "issued": 5, "delivered": 5}
    assert kme.store.counters() == counters
    assert "hidden" in repr(sent[0]) and sent[0].key.hex() not in repr(sent[0])


def test_additional_slaves_each_get_the_key_once(pki: Pki, kme: KMEServer) -> None:
    with _client(pki, kme, "SAE-A") as a, _client(pki, kme, "SAE-B") as b, _client(pki, kme, "SAE-C") as c:
        (key,) = a.get_keys("SAE-B", additional_slave_sae_ids=["SAE-C"])
        assert b.get_keys_with_ids("SAE-A", [key.key_ID])[0].key == key.key
        with pytest.raises(KMEBadRequest, match="already delivered"):
            b.get_keys_with_ids("SAE-A", [key.key_ID])
        assert c.get_keys_with_ids("SAE-A", [key.key_ID])[0].key == key.key
        assert kme.store.waiting() == 0


@pytest.mark.parametrize(
    "request_args, message",
    [
        ({"number": 1, "size": 100}, "not a multiple of 8"),
        ({"number": 1, "size": 16}, "must be 64 to 8192"),
        ({"number": 10**9}, "max_key_per_request"),
        ({"number": 0}, "max_key_per_request"),
        ({"number": 1, "additional_slave_sae_ids": ["SAE-X"]}, "unknown slave"),
        ({"number": 1, "additional_slave_sae_ids": ["SAE-A"]}, "not the master"),
    ],
)
def test_requests_outside_the_limits_are_refused(pki: Pki, kme: KMEServer, request_args: dict, message: str) -> None:
    before = _state(kme)
    with _client(pki, kme, "SAE-A") as a, pytest.raises(KMEBadRequest, match=message):
        a.get_keys("SAE-B", post=True, **request_args)
    assert _state(kme) == before


def test_not_enough_material_is_503_and_takes_nothing(pki: Pki, kme: KMEServer) -> None:
    with _client(pki, kme, "SAE-A") as a:
        a.get_keys("SAE-B", number=16, size=8192)
        before = _state(kme)
        with pytest.raises(KMEUnavailable, match="not enough key material"):
            a.get_keys("SAE-B", number=1, size=8192)
        assert _state(kme) == before


def test_an_sae_the_kme_does_not_know_is_401(pki: Pki, kme: KMEServer) -> None:
    with _client(pki, kme, "intruder") as x, pytest.raises(KMEUnauthorized):
        x.get_keys("SAE-B")
    assert kme.store.counters().get("issued", 0) == 0


@pytest.mark.parametrize("how", ["another CA", "expired", "none"])
def test_a_bad_client_certificate_ends_the_handshake(pki: Pki, kme: KMEServer, how: str) -> None:
    host, port = kme.address
    if how == "none":
        context = ssl.create_default_context(cafile=pki.ca_file)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            conn = http.client.HTTPSConnection(host, port, context=context, timeout=5)
            conn.request("GET", "/api/v1/keys/SAE-B/status")
            conn.getresponse()
        return
    if how == "another CA":
        cert, key = pki.sae("SAE-A", ca=trustme.CA())
    else:
        past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
        cert, key = pki.sae("SAE-A", not_before=past, not_after=past + datetime.timedelta(days=1))
    with KMEClient(f"https://{host}:{port}", cert, key, pki.ca_file) as a, pytest.raises(ChannelClosed):
        a.status("SAE-B")
    assert kme.store.counters().get("issued", 0) == 0


def _raw(pki: Pki, kme: KMEServer, method: str, path: str, body: bytes = b"") -> tuple[int, dict]:
    cert, key = pki.sae("SAE-A")
    context = ssl.create_default_context(cafile=pki.ca_file)
    context.load_cert_chain(cert, key)
    conn = http.client.HTTPSConnection(*kme.address, context=context, timeout=5)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    out = response.status, json.loads(response.read())
    conn.close()
    return out


@pytest.mark.parametrize(
    "method, path, body, message",
    [
        ("POST", "/api/v1/keys/SAE-B/enc_keys", b"{not json", "not JSON"),
        ("POST", "/api/v1/keys/SAE-B/enc_keys", b"[1, 2]", "JSON object"),
        ("POST", "/api/v1/keys/SAE-B/enc_keys", b'{"number": "two"}', "integer"),
        ("POST", "/api/v1/keys/SAE-B/enc_keys", b'{"count": 2}', "unknown field"),
        ("POST", "/api/v1/keys/SAE-B/enc_keys", b'{"extension_mandatory": [{"x-route": 1}]}', "extension_mandatory"),
        ("GET", "/api/v1/keys/SAE-B/enc_keys?number=1&size=abc", b"", "integer"),
        ("GET", "/api/v1/keys/SAE-B/enc_keys?colour=red", b"", "unknown query"),
        ("POST", "/api/v1/keys/SAE-B/dec_keys", b'{"key_IDs": []}', "non-empty"),
        ("GET", "/api/v1/keys/SAE-B/teapot", b"", "no such resource"),
        ("GET", "/api/v1/keys/SAE-Z/status", b"", "unknown SAE"),
    ],
)
def test_malformed_requests_get_the_error_object(
    pki: Pki, kme: KMEServer, method: str, path: str, body: bytes, message: str
) -> None:
    before = _state(kme)
    status, payload = _raw(pki, kme, method, path, body)
    assert status == 400 and message in payload["message"]
    assert _state(kme) == before
    if "extension_mandatory" in message:
        assert payload["details"] == [{"extension_mandatory_unsupported": ["x-route"]}]


def test_the_third_party_client_agrees(pki: Pki, kme: KMEServer) -> None:
    port = kme.address[1]
    ca = pki.ca_file
    master = QKD014Client(f"localhost:{port}", *pki.sae("SAE-A"), ca)
    slave = QKD014Client(f"localhost:{port}", *pki.sae("SAE-B"), ca)
    code, status = master.get_status("SAE-B")
    assert code == 200 and status.master_sae_id == "SAE-A" and status.key_size == 256
    code, keys = master.get_key("SAE-B", number=2, size=128)
    assert code == 200 and len(keys.keys) == 2
    code, got = slave.get_key_with_key_IDs("SAE-A", [k.key_id for k in keys.keys])
    assert code == 200 and [k.key for k in got.keys] == [k.key for k in keys.keys]
    assert all(len(base64.b64decode(k.key)) == 16 for k in got.keys)
    code, error = slave.get_key_with_key_IDs("SAE-A", [keys.keys[0].key_id])
    assert code == 400 and "no such key" in error.message
    code, error = master.get_key("SAE-B", number=1, size=12)
    assert code == 400 and "multiple of 8" in error.message
    code, _ = master.get_key("SAE-B")  # the plain GET with the defaults
    assert code == 200


def test_the_store_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = KeyStore(path)
    store.add(b"\x01" * 100)
    taken = store.take("SAE-A", ["SAE-B"], 2, 32)
    store.close()
    again = KeyStore(path)
    assert again.pool_bytes() == 36 and again.waiting() == 2
    assert again.deliver("SAE-B", "SAE-A", [taken[0][0]]) == [taken[0]]
    again.close()
    third = KeyStore(path)
    with pytest.raises(KMEBadRequest):
        third.deliver("SAE-B", "SAE-A", [taken[0][0]])
    assert third.deliver("SAE-B", "SAE-A", [taken[1][0]]) == [taken[1]]
    with pytest.raises(KMEBadRequest, match="repeated"):
        third.deliver("SAE-B", "SAE-A", ["x", "x"])
    third.close()


def test_two_stores_stay_identical_through_sessions_and_takes(tmp_path: Path) -> None:
    """The two KMEs' bookkeeping in process: a session committed on both, a take by each issuer
    applied at the other (twice: idempotent), out-of-order and diverging records refused."""
    a, b = KeyStore(tmp_path / "a.sqlite"), KeyStore(tmp_path / "b.sqlite")
    pools = ("alice", "bob")
    material = bytes(range(200))
    b.add_tentative(1, material)  # the driving KME holds it until the other has committed
    assert b.tentative() == [1] and b.pool_bytes("alice") == 0
    assert a.commit_session(1, pools, material) and b.commit_session(1, pools)
    assert a.commit_session(1, pools, material)  # a repeated commit is harmless
    assert not a.commit_session(3, pools, material)  # a gap is refused
    assert b.tentative() == [] and a.last_session() == b.last_session() == 1
    assert a.pool_bytes("alice") == b.pool_bytes("alice") == 100
    keys = a.take("SAE-A", ["SAE-B"], 2, 16, pool="alice", outbox=True)
    (record,) = a.outbox()
    b.apply(record)
    b.apply(record)
    a.confirmed("alice", record["offset"])
    assert a.outbox() == []
    assert b.deliver("SAE-B", "SAE-A", [k for k, _ in keys]) == keys
    assert keys[0][1] == material[:16]
    mine = b.take("SAE-B", ["SAE-A"], 1, 8, pool="bob", outbox=True)
    a.apply(b.outbox()[0])
    assert a.deliver("SAE-A", "SAE-B", [mine[0][0]]) == mine and mine[0][1] == material[100:108]
    ahead = dict(record, offset=64, ids=["x"])
    with pytest.raises(KMEUnavailable, match="offset 64"):
        b.apply(ahead)
    with pytest.raises(KMEBadRequest, match="other key IDs"):
        b.apply(dict(record, ids=["y", "z"]))
    a.close()
    b.close()


def test_plain_http_is_not_offered(pki: Pki, kme: KMEServer) -> None:
    with pytest.raises(InvalidArgumentError, match="plain HTTP"):
        KMEClient(f"http://127.0.0.1:{kme.address[1]}", *pki.sae("SAE-A"), pki.ca_file)
    conn = http.client.HTTPConnection(*kme.address, timeout=5)
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("GET", "/api/v1/keys/SAE-B/status")
        conn.getresponse().read()
    conn.close()
    assert kme.store.counters().get("issued", 0) == 0


def test_bad_arguments_are_refused_by_name_before_any_request(pki: Pki, kme: KMEServer, tmp_path: Path) -> None:
    """Every argument of the client, the server and the QKD channel is checked before it is used:
    a QitError naming it, never a TypeError from deep inside ssl or urllib; a refused client call
    sends nothing (no connection is opened) and takes no key."""
    from qitcore.errors import InvalidTypeError, QitError
    from qitcore.qkd.channel import TcpChannel

    cert, key = pki.sae("SAE-A")
    host, port = kme.address
    url = f"https://{host}:{port}"
    constructors: list[tuple[Any, str]] = [
        (lambda: KMEClient(5, cert, key, pki.ca_file), "url"),  # type: ignore[arg-type]
        (lambda: KMEClient(url, 5, key, pki.ca_file), "cert"),  # type: ignore[arg-type]
        (lambda: KMEClient(url, cert, None, pki.ca_file), "key"),  # type: ignore[arg-type]
        (lambda: KMEClient(url, cert, key, 3.5), "ca"),  # type: ignore[arg-type]
        (lambda: TcpChannel(bytes(32), 5, 7000), "host"),  # type: ignore[arg-type]
    ]
    store = KeyStore(tmp_path / "other.sqlite")
    config = KMEConfig(kme_id="KME-1", target_kme_id="KME-1", saes=SAES)
    files = {"certfile": pki.server_cert, "keyfile": pki.server_key, "cafile": pki.ca_file}
    for name, value in [
        ("certfile", 5), ("keyfile", None), ("cafile", 1.5), ("host", 5), ("port", "80"), ("port", 70000),
        ("pool", 5), ("limits", 5),
    ]:  # fmt: skip
        constructors.append((lambda name=name, value=value: KMEServer(config, store, **{**files, name: value}), name))
    constructors.append((lambda: KMEServer(None, store, **files), "config"))  # type: ignore[arg-type]
    constructors.append((lambda: KMEServer(config, "store.sqlite", **files), "store"))  # type: ignore[arg-type]
    for make, name in constructors:
        with pytest.raises((InvalidTypeError, InvalidArgumentError), match=f"^{name}: "):
            make()
    store.close()
    before = kme.store.pool_bytes()
    with KMEClient(url, cert, key, pki.ca_file) as client:
        calls: list[tuple[Any, str]] = [
            (lambda: client.status(5), "slave_sae_id"),
            (lambda: client.status(""), "slave_sae_id"),
            (lambda: client.get_keys(b"SAE-B"), "slave_sae_id"),
            (lambda: client.get_keys("SAE-B", number="2"), "number"),
            (lambda: client.get_keys("SAE-B", size=8.0), "size"),
            (lambda: client.get_keys("SAE-B", additional_slave_sae_ids="SAE-C"), "additional_slave_sae_ids"),
            (lambda: client.get_keys("SAE-B", additional_slave_sae_ids=["SAE-C", 3]), r"additional_slave_sae_ids\[1\]"),
            (lambda: client.get_keys("SAE-B", post="yes"), "post"),
            (lambda: client.get_keys_with_ids(None, ["x"]), "master_sae_id"),
            (lambda: client.get_keys_with_ids("SAE-A", "abc"), "key_ids"),
            (lambda: client.get_keys_with_ids("SAE-A", [b"id"]), r"key_ids\[0\]"),
        ]
        for call, name in calls:
            with pytest.raises(QitError, match=f"^{name}: "):
                call()
        assert client._conn is None  # nothing was sent
    assert kme.store.pool_bytes() == before
