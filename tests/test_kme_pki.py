"""The certificates ``qitcore kme serve`` makes (``local_pki``): a strict verifier (OpenSSL's
X509_STRICT, Python 3.13's default, without partial chains) accepts them at both ends of the
mutual TLS; the extensions are the ones RFC 5280 expects; the folder and private keys are
owner-only whatever the umask. A certificate without an authority key identifier is refused
by the same verifier, which shows the strict flag is in force."""

from __future__ import annotations

import datetime
import http.client
import json
import os
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from qitcore.errors import InvalidArgumentError
from qitcore.kme import KeyStore, KMEClient, KMEConfig, KMEServer
from qitcore.kme.pki import local_pki

from .loopback import ipv6_loopback

STRICT = ssl.VERIFY_X509_STRICT


def _strict(context: ssl.SSLContext) -> ssl.SSLContext:
    context.verify_flags |= STRICT
    context.verify_flags &= ~ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    old = os.umask(0)
    try:
        return local_pki(tmp_path / "kme-local", ["SAE-A", "SAE-B"])
    finally:
        os.umask(old)


def test_files_are_owner_only(pki: dict[str, Path]) -> None:
    assert pki["ca"].parent.stat().st_mode & 0o777 == 0o700
    for name, path in pki.items():
        if name.endswith("key"):
            assert path.stat().st_mode & 0o777 == 0o600, name


def test_extensions_are_the_ones_a_strict_verifier_expects(pki: dict[str, Path]) -> None:
    load = x509.load_pem_x509_certificate
    ca, kme, sae = (load(pki[n].read_bytes()) for n in ("ca", "kme", "SAE-A"))
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.public_key())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    for leaf, purpose in ((kme, ExtendedKeyUsageOID.SERVER_AUTH), (sae, ExtendedKeyUsageOID.CLIENT_AUTH)):
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == ski.digest
        own = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert own == x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.digital_signature and not usage.key_cert_sign
        assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [purpose]
        leaf.verify_directly_issued_by(ca)
    names = kme.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]


def _server(pki: dict[str, Path], tmp_path: Path) -> tuple[KMEServer, KeyStore]:
    store = KeyStore(tmp_path / "store.sqlite")
    store.add(os.urandom(1024))
    config = KMEConfig(saes=frozenset({"SAE-A", "SAE-B"}))
    server = KMEServer(config, store, certfile=str(pki["kme"]), keyfile=str(pki["kme_key"]), cafile=str(pki["ca"]))
    _strict(server.context)  # the KME verifies the SAEs' certificates strictly too
    return server, store


def test_both_ends_verify_strictly(pki: dict[str, Path], tmp_path: Path) -> None:
    server, store = _server(pki, tmp_path)
    with server:
        host, port = server.address
        context = _strict(ssl.create_default_context(cafile=str(pki["ca"])))
        context.load_cert_chain(str(pki["SAE-A"]), str(pki["SAE-A_key"]))
        for name in ("127.0.0.1", "localhost"):
            conn = http.client.HTTPSConnection(name, port, context=context, timeout=5)
            conn.request("GET", "/api/v1/keys/SAE-B/status")
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read())["master_SAE_ID"] == "SAE-A"
            conn.close()
        client = KMEClient(f"https://{host}:{port}", str(pki["SAE-B"]), str(pki["SAE-B_key"]), str(pki["ca"]))
        _strict(client._context)
        with client:
            assert client.status("SAE-A").master_SAE_ID == "SAE-B"
    store.close()


def test_the_kme_serves_on_ipv6_loopback_verified_strictly(pki: dict[str, Path], tmp_path: Path) -> None:
    """A KME listening on ``::1`` (``--listen '[::1]:PORT'``) is reached at ``https://[::1]:PORT``,
    its certificate valid for that address; where the machine has no IPv6 loopback, the refusal
    to listen is an InvalidArgumentError naming the address in brackets."""
    store = KeyStore(tmp_path / "store.sqlite")
    store.add(os.urandom(1024))
    config = KMEConfig(saes=frozenset({"SAE-A", "SAE-B"}))
    try:
        server = KMEServer(
            config,
            store,
            certfile=str(pki["kme"]),
            keyfile=str(pki["kme_key"]),
            cafile=str(pki["ca"]),
            host="::1",
            port=0,
        )
    except InvalidArgumentError as exc:
        assert "cannot listen on [::1]:0" in str(exc)
        assert not socket.has_ipv6 or not ipv6_loopback()
        return
    with server:
        port = server.address[1]
        client = KMEClient(f"https://[::1]:{port}", str(pki["SAE-B"]), str(pki["SAE-B_key"]), str(pki["ca"]))
        _strict(client._context)
        with client:
            assert client.status("SAE-A").master_SAE_ID == "SAE-B"
        assert repr(client) == f"KMEClient(https://[::1]:{port})"
    store.close()


def test_a_certificate_without_key_identifiers_is_refused_by_the_same_verifier(
    pki: dict[str, Path], tmp_path: Path
) -> None:
    # A client certificate signed by the same CA, as the certificates were made before.
    ca_key = serialization.load_pem_private_key(pki["ca_key"].read_bytes(), None)
    ca = x509.load_pem_x509_certificate(pki["ca"].read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SAE-A")]))
        .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )  # fmt: skip
    (tmp_path / "old.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "old.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server, store = _server(pki, tmp_path)
    with server:
        context = _strict(ssl.create_default_context(cafile=str(pki["ca"])))
        context.load_cert_chain(str(tmp_path / "old.pem"), str(tmp_path / "old.key"))
        conn = http.client.HTTPSConnection("127.0.0.1", server.address[1], context=context, timeout=5)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            conn.request("GET", "/api/v1/keys/SAE-B/status")
            conn.getresponse().read()
        conn.close()
    store.close()
