"""Requests at the edges of HTTP and of ETSI GS QKD 014, sent as raw bytes over mutual TLS: every
refusal is an Error object (``{"message": ..., "details": [...]}``) with its status and changes
nothing in the store; HTTP/0.9 gets no answer; chunked bodies are read."""

from __future__ import annotations

import base64
import json
import socket
import ssl
from collections.abc import Iterator

import pytest
from qitcore.kme import KeyStore, KMEConfig, KMEServer

from .test_kme import SAES, Pki

POOL = bytes(range(256)) * 64


@pytest.fixture(scope="module")
def kme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KMEServer, ssl.SSLContext]]:
    tmp_path = tmp_path_factory.mktemp("kme")
    pki = Pki(tmp_path)
    store = KeyStore(tmp_path / "store.sqlite")
    store.add(POOL)
    config = KMEConfig(saes=SAES, max_key_per_request=16)
    context = ssl.create_default_context(cafile=pki.ca_file)
    context.load_cert_chain(*pki.sae("SAE-A"))
    with KMEServer(config, store, certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca_file) as server:
        yield server, context
    store.close()


def exchange(
    kme: KMEServer, context: ssl.SSLContext, data: bytes, *, timeout: float = 5.0, quiet_ok: bool = False
) -> bytes:
    """Sends ``data`` on a new connection and returns everything the KME sends until it closes
    (or, when ``quiet_ok``, until ``timeout`` seconds pass without a byte)."""
    with context.wrap_socket(
        socket.create_connection(kme.address, timeout=timeout), server_hostname="127.0.0.1"
    ) as tls:
        tls.sendall(data)
        out = b""
        try:
            while chunk := tls.recv(65536):
                out += chunk
        except (ConnectionError, ssl.SSLError):
            pass
        except TimeoutError:
            if not quiet_ok:
                raise
    return out


def parse(response: bytes) -> tuple[int, dict[str, str], object]:
    """Status, headers and JSON body of an HTTP/1.x response (after any 100 Continue)."""
    while response.startswith(b"HTTP/1.1 100"):
        response = response.split(b"\r\n\r\n", 1)[1]
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split(" ")[:2]
    assert version in ("HTTP/1.0", "HTTP/1.1"), lines[0]
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    assert len(body) == int(headers["content-length"])
    return int(status), headers, json.loads(body) if body else None


def assert_error(payload: object) -> str:
    """``payload`` is an ETSI Error object; returns its message."""
    assert isinstance(payload, dict) and set(payload) <= {"message", "details"}
    assert isinstance(payload["message"], str) and payload["message"]
    assert isinstance(payload.get("details", []), list)
    assert all(isinstance(d, dict) for d in payload.get("details", []))
    return payload["message"]


def _state(kme: KMEServer) -> tuple[int, int, dict[str, int]]:
    return kme.store.pool_bytes(), kme.store.waiting(), kme.store.counters()


def request(method: str, target: str, body: bytes = b"", headers: str = "") -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    return f"{method} {target} HTTP/1.1\r\nHost: kme\r\n{headers}{length}Connection: close\r\n\r\n".encode() + body


ENC = "/api/v1/keys/SAE-B/enc_keys"


@pytest.mark.parametrize(
    "data, status, message",
    [
        pytest.param(request("GET", ENC + "?number=1_0"), 400, "ASCII digits", id="1-400"),
        pytest.param(request("GET", ENC + "?number=%EF%BC%92"), 400, "ASCII digits", id="2-400"),  # a full-width 2
        pytest.param(request("GET", ENC + "?number=%D9%A3"), 400, "ASCII digits", id="3-400"),  # an Arabic-Indic 3
        pytest.param(request("GET", ENC + "?number=+2"), 400, "ASCII digits", id="4-400"),
        pytest.param(request("GET", ENC + "?number=%202"), 400, "ASCII digits", id="5-400"),
        pytest.param(request("GET", ENC + "?size=-8"), 400, "ASCII digits", id="6-400"),
        pytest.param(request("GET", ENC + "?number=1&number=2"), 400, "one integer", id="7-400"),
        pytest.param(request("GET", ENC + "?number=" + "9" * 30), 400, "ASCII digits", id="8-400"),
        pytest.param(request("POST", ENC, b"[" * 100_000 + b"]" * 100_000), 400, "nested too deeply", id="9-400"),
        pytest.param(
            request("POST", ENC, b'{"extension_mandatory": [{}]}'), 400, "entry 0 is an empty object", id="10-400"
        ),
        pytest.param(request("POST", ENC, b'{"extension_mandatory": [{"a": 1}, {}]}'), 400, "entry 1", id="11-400"),
        pytest.param(request("GET", "/api/v1/keys/SAE-A/status"), 400, "names itself", id="12-400"),
        pytest.param(request("GET", "/api/v1/keys/SAE-A/enc_keys"), 400, "names itself", id="13-400"),
        pytest.param(request("GET", "/api/v1/keys/SAE-A/dec_keys?key_ID=x"), 400, "names itself", id="14-400"),
        pytest.param(request("GET", "/api/v1/keys/SAE%FF/status"), 400, "not UTF-8", id="15-400"),
        pytest.param(request("DELETE", ENC), 405, "GET or POST", id="16-405"),
        pytest.param(request("PUT", ENC, b"{}"), 405, "GET or POST", id="17-405"),
        pytest.param(request("OPTIONS", "*"), 405, "GET or POST", id="18-405"),
        # A token that is no registered method is not HTTP to the parser: 400, not 405.
        pytest.param(request("BREW", ENC), 400, "malformed HTTP request", id="19-400"),
        pytest.param(b"CONNECT kme:443 HTTP/1.1\r\nHost: kme:443\r\n\r\n", 405, "GET or POST", id="20-405"),
        pytest.param(
            request("POST", ENC, b"{}", "Transfer-Encoding: chunked\r\n"), 400, "malformed HTTP request", id="21-400"
        ),
        pytest.param(
            request("POST", ENC, headers="Transfer-Encoding: gzip\r\n"), 400, "malformed HTTP request", id="22-400"
        ),
        pytest.param(request("POST", ENC, headers="Content-Length: 99999999999\r\n"), 413, "larger than", id="23-413"),
        pytest.param(request("POST", ENC, b"{}", "Content-Encoding: gzip\r\n"), 415, "identity", id="24-415"),
        pytest.param(request("POST", ENC, b"{}", "Expect: 200-ok\r\n"), 417, "not supported", id="25-417"),
        pytest.param(b"\x16\x03\x01 not a request\r\n\r\n", 400, "malformed HTTP request", id="26-400"),
        pytest.param(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n", 400, "malformed HTTP request", id="27-400"),
        pytest.param(
            request("GET", ENC, headers="".join(f"X-{i}: {i}\r\n" for i in range(100))),
            400,
            "malformed HTTP request",
            id="28-400",
        ),
    ],
)
def test_refusals_are_error_objects_and_change_nothing(
    kme: tuple[KMEServer, ssl.SSLContext], data: bytes, status: int, message: str
) -> None:
    server, context = kme
    before = _state(server)
    raw = exchange(server, context, data)
    got, headers, payload = parse(raw)
    assert got == status, raw
    assert got == status and headers["content-type"] == "application/json"
    assert message in assert_error(payload)
    if status == 405:
        assert headers["allow"] == "GET, POST"
    assert _state(server) == before


def test_http_0_9_gets_no_answer(kme: tuple[KMEServer, ssl.SSLContext]) -> None:
    server, context = kme
    before = _state(server)
    assert exchange(server, context, b"GET /api/v1/keys/SAE-B/status\r\n", timeout=1, quiet_ok=True) == b""
    assert exchange(server, context, b"GET /api/v1/keys/SAE-B/enc_keys\r\n\r\n") == b""
    assert _state(server) == before


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out, i = b"", 0
    for n in sizes:
        out += f"{n:x}\r\n".encode() + body[i : i + n] + b"\r\n"
        i += n
    return out + f"{len(body) - i:x}\r\n".encode() + body[i:] + b"\r\n0\r\n\r\n"


@pytest.mark.parametrize("sizes", [[], [1], [3, 5, 7], [1] * 20])
def test_chunked_bodies_are_read(kme: tuple[KMEServer, ssl.SSLContext], sizes: list[int]) -> None:
    server, context = kme
    body = json.dumps({"number": 3, "size": 128}).encode()
    data = request("POST", ENC, headers="Transfer-Encoding: chunked\r\n") + _chunked(body, sizes)
    taken = server.store.counters().get("taken", 0)
    status, _, payload = parse(exchange(server, context, data))
    assert status == 200 and isinstance(payload, dict)
    keys = b"".join(base64.b64decode(k["key"]) for k in payload["keys"])
    assert keys == POOL[taken : taken + 3 * 16]  # three keys of 128 bits: the pool's next 48 bytes


def test_a_broken_chunked_body_is_refused(kme: tuple[KMEServer, ssl.SSLContext]) -> None:
    server, context = kme
    before = _state(server)
    data = request("POST", ENC, headers="Transfer-Encoding: chunked\r\n") + b"zz\r\n{}\r\n0\r\n\r\n"
    status, _, payload = parse(exchange(server, context, data))
    assert status == 400 and assert_error(payload)
    assert _state(server) == before


def test_expect_100_continue_and_http_1_0(kme: tuple[KMEServer, ssl.SSLContext]) -> None:
    server, context = kme
    data = request("POST", ENC, b'{"number": 1}', "Expect: 100-continue\r\n")
    raw = exchange(server, context, data)
    assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    status, _, payload = parse(raw)
    assert status == 200 and isinstance(payload, dict) and len(payload["keys"]) == 1
    raw = exchange(server, context, b"GET /api/v1/keys/SAE-B/status HTTP/1.0\r\n\r\n")
    status, _, payload = parse(raw)
    assert status == 200 and isinstance(payload, dict) and payload["slave_SAE_ID"] == "SAE-B"


def test_unknown_fields_are_still_refused_and_named(kme: tuple[KMEServer, ssl.SSLContext]) -> None:
    server, context = kme
    status, _, payload = parse(exchange(server, context, request("POST", ENC, b'{"number": 1, "colour": 2}')))
    assert status == 400 and "colour" in assert_error(payload)
