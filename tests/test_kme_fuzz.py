"""Hypothesis against a live KME (mutual TLS on 127.0.0.1): random methods, paths, query strings,
headers, JSON and binary bodies, chunked or not, and raw bytes after the handshake. Whatever
comes, the answer is a success or an ETSI Error object with a status of the specification or of
HTTP (never 500, never a page of HTML), a refusal changes nothing in the store, and the KME goes
on serving. The request handler is also fuzzed directly, where many more cases fit in the time."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qitcore.errors import KMEError
from qitcore.kme import KeyStore, KMEClient, KMEConfig, KMEServer
from qitcore.kme.limits import ConnectionLimits

from .fuzzing import examples
from .test_kme import SAES, Pki

STATUSES = {200, 400, 401, 405, 408, 413, 415, 417, 503}


class Live:
    def __init__(self, root: Path) -> None:
        self.pki = Pki(root)
        self.store = KeyStore(root / "store.sqlite")
        self.store.add(bytes(range(256)) * 4096)  # 1 MiB
        limits = ConnectionLimits(header_timeout=0.3, body_timeout=0.3, idle_timeout=1.0, max_body=1 << 16)
        config = KMEConfig(saes=SAES, max_key_per_request=16)
        self.server = KMEServer(
            config, self.store, certfile=self.pki.server_cert, keyfile=self.pki.server_key, cafile=self.pki.ca_file,
            limits=limits,
        ).start()  # fmt: skip
        self.context = ssl.create_default_context(cafile=self.pki.ca_file)
        self.context.load_cert_chain(*self.pki.sae("SAE-A"))

    def state(self) -> tuple[int, int, dict[str, int]]:
        return self.store.pool_bytes(), self.store.waiting(), self.store.counters()

    def exchange(self, data: bytes) -> bytes:
        sock = socket.create_connection(self.server.address, timeout=5)
        with self.context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            out = b""
            try:
                tls.sendall(data)
                while chunk := tls.recv(65536):
                    out += chunk
            except (ConnectionError, ssl.SSLError):
                pass  # the KME closed first (a refusal before all was sent)
        return out


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    kme = Live(tmp_path_factory.mktemp("kme-fuzz"))
    yield kme
    host, port = kme.server.address
    with KMEClient(f"https://{host}:{port}", *kme.pki.sae("SAE-A"), kme.pki.ca_file) as a:
        assert a.status("SAE-B").slave_SAE_ID == "SAE-B"  # still serving after all of it
    kme.server.stop()
    kme.store.close()


def check_response(raw: bytes, head_request: bool) -> tuple[int, Any]:
    """The status and JSON payload of one HTTP/1.x response, checked for form."""
    while raw.startswith(b"HTTP/1.1 100 "):
        raw = raw.split(b"\r\n\r\n", 1)[1]
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, raw[:200]
    lines = head.decode("latin-1").split("\r\n")
    version, status_text = lines[0].split(" ")[:2]
    status = int(status_text)
    assert version in ("HTTP/1.0", "HTTP/1.1") and status in STATUSES, lines[0]
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    assert headers["content-type"] == "application/json"
    if head_request:
        return status, None
    assert len(body) == int(headers["content-length"])
    payload = json.loads(body)
    assert isinstance(payload, dict)
    if status != 200:
        assert set(payload) <= {"message", "details"} and isinstance(payload["message"], str) and payload["message"]
        assert all(isinstance(d, dict) for d in payload.get("details", []))
        if status == 503:
            assert "not enough key material" in payload["message"], payload
    return status, payload


saes = st.sampled_from(["SAE-A", "SAE-B", "SAE-C", "SAE-Z", "", "SAE-B/x"]) | st.text(max_size=12)
resources = st.sampled_from(["status", "enc_keys", "dec_keys", "", "teapot"])
paths = st.one_of(
    st.builds(lambda s, r: f"/api/v1/keys/{quote(s, safe='')}/{r}", saes, resources),
    st.builds(lambda s: "/" + quote(s, safe="/"), st.text(max_size=30)),
    st.sampled_from(
        [
            "*",
            "/",
            "//api/v1/keys/SAE-B/status",
            "https://kme/api/v1/keys/SAE-B/status",
            "/api/v1/keys/SAE%FF/status",
            "/api/v1/keys/%/status",
            "/api/v1/keys/SAE%2DB/status",
        ]
    ),
)
query_values = st.one_of(
    st.integers(-5, 300).map(str), st.text(max_size=8), st.sampled_from(["1_0", "２", "+3", " 4", "0x10", "1e2"])
)
queries = st.lists(
    st.tuples(st.sampled_from(["number", "size", "key_ID"]) | st.text(max_size=6), query_values), max_size=4
).map(lambda q: "?" + urlencode(q) if q else "")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
key_requests = st.dictionaries(
    st.sampled_from(["number", "size", "additional_slave_SAE_IDs", "extension_mandatory", "extension_optional",
                     "key_IDs", "key_ID"]) | st.text(max_size=8),
    json_values | st.integers(0, 20) | st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=2)),
    max_size=4,
)  # fmt: skip
bodies = st.one_of(
    st.just(b""),
    key_requests.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)
extra_headers = st.lists(
    st.sampled_from([
        "Content-Type: text/plain", "Content-Encoding: gzip", "Content-Encoding: identity", "Expect: 100-continue",
        "Expect: nothing", "Transfer-Encoding: gzip, chunked", "Connection: keep-alive", "Upgrade: websocket",
        "Content-Length: 3", "Host: a", "X-Forwarded-For: 10.0.0.1", "Accept: text/html",
    ]),
    max_size=3, unique=True,
)  # fmt: skip
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT"])


def _chunks(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=methods, path=paths, query=queries, headers=extra_headers, body=bodies, chunk=st.integers(0, 40))
def test_fuzz_http_requests(
    live: Live, method: str, path: str, query: str, headers: list[str], body: bytes, chunk: int
) -> None:
    before = live.state()
    head = [f"{method} {path}{query} HTTP/1.1", "Host: kme", *headers]
    if chunk and body:
        head.append("Transfer-Encoding: chunked")
        payload = _chunks(body, chunk)
    else:
        head.append(f"Content-Length: {len(body)}")
        payload = body
    raw = live.exchange(("\r\n".join([*head, "Connection: close"]) + "\r\n\r\n").encode("utf-8") + payload)
    status, _ = check_response(raw, method == "HEAD")
    if status != 200:
        assert live.state() == before


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b + b"\r\n\r\n"),
                      st.binary(max_size=100).map(lambda b: b"GET /api/v1/keys/SAE-B/status" + b)))  # fmt: skip
def test_fuzz_raw_bytes_after_the_handshake(live: Live, data: bytes) -> None:
    before = live.state()
    raw = live.exchange(data)
    if raw:  # an answer, or none (HTTP/0.9, or nothing the parser could take as a request)
        status, _ = check_response(raw, data.startswith(b"HEAD"))
        assert status in (200, 400, 405, 408, 413, 415, 417)
    assert live.state() == before


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=methods, path=paths, query=queries, body=bodies,
    caller=st.sampled_from(["SAE-A", "SAE-B", "SAE-C", "intruder", ""]),
)  # fmt: skip
def test_fuzz_the_request_handler(live: Live, method: str, path: str, query: str, body: bytes, caller: str) -> None:
    before = live.state()
    try:
        answer = live.server.handle(method, path + query, body, caller)
    except KMEError as exc:
        assert exc.status in STATUSES - {200} and exc.message
        if exc.status == 503:
            assert "not enough key material" in exc.message
        assert live.state() == before
        return
    assert isinstance(answer, dict) and ("keys" in answer or "key_size" in answer)
    json.dumps(answer)
