"""Certificates for trying a KME on one machine: a private CA, the KME's server certificate (for
127.0.0.1 and localhost) and one client certificate per SAE (the SAE ID as common name). For
local testing only: a deployment uses its organisation's CA. Needs the ``cryptography`` package
(``pip install qitcore[kme]``)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError, os_reason
from ..report.files import atomic_file

__all__ = ["local_pki"]


def _modules() -> Any:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise InvalidArgumentError(
            "generating certificates needs the cryptography package (pip install cryptography)"
        ) from None
    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def _write(path: Path, data: bytes, *, private: bool) -> None:
    with atomic_file(path, private=private) as out:
        out.write(data)


def local_pki(folder: str | os.PathLike[str], saes: list[str], *, days: int = 365) -> dict[str, Path]:
    """Writes ``ca.pem``, ``kme.pem``/``kme.key`` and ``<SAE>.pem``/``<SAE>.key`` for each SAE
    into ``folder`` (created readable by its owner only; keys always are); returns the paths by
    name. Existing files are kept, so a restarted KME keeps its identity.

    The certificates carry what a strict verifier (OpenSSL's ``X509_V_FLAG_X509_STRICT``, the
    default of Python 3.13) asks for: subject and authority key identifiers, key usage, basic
    constraints, extended key usage (server or client authentication) and, for the KME, its
    names (``localhost``, ``127.0.0.1``).

    Raises:
        InvalidArgumentError: ``folder`` cannot be created or written, or ``cryptography`` is missing.
    """
    x509, hashes, serialization, ec, eku, name_oid = _modules()
    root = Path(folder)
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return _write_pki(root, saes, days, x509, hashes, serialization, ec, eku, name_oid)
    except OSError as exc:
        raise InvalidArgumentError(f"certificates: cannot write into {root}: {os_reason(exc)}") from None


def _write_pki(
    root: Path, saes: list[str], days: int, x509: Any, hashes: Any, serialization: Any, ec: Any, eku: Any, name_oid: Any
) -> dict[str, Path]:
    paths = {"ca": root / "ca.pem", "ca_key": root / "ca.key", "kme": root / "kme.pem", "kme_key": root / "kme.key"}
    for sae in saes:
        paths[sae] = root / f"{sae}.pem"
        paths[f"{sae}_key"] = root / f"{sae}.key"
    if all(p.exists() for p in paths.values()):
        return paths
    now = datetime.datetime.now(datetime.UTC)
    pem = serialization.Encoding.PEM
    plain = serialization.NoEncryption()

    def name(cn: str) -> Any:
        return x509.Name([x509.NameAttribute(name_oid.COMMON_NAME, cn)])

    def save_key(key: Any, path: Path) -> None:
        _write(path, key.private_bytes(pem, serialization.PrivateFormat.PKCS8, plain), private=True)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder().subject_name(name("qitcore local KME CA")).issuer_name(name("qitcore local KME CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(x509, signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    save_key(ca_key, paths["ca_key"])
    _write(paths["ca"], ca_cert.public_bytes(pem), private=False)

    def leaf(cn: str, usage: Any, san: list[Any]) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(x509, signs_certificates=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )  # fmt: skip
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    loopback = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
    san = [x509.DNSName("localhost"), *(x509.IPAddress(a) for a in loopback)]
    for label, cn, usage, names in [("kme", "kme", eku.SERVER_AUTH, san)] + [(s, s, eku.CLIENT_AUTH, []) for s in saes]:
        key, cert = leaf(cn, usage, names)
        save_key(key, paths[f"{label}_key"])
        _write(paths[label], cert.public_bytes(pem), private=False)
    return paths


def _usage(x509: Any, *, signs_certificates: bool) -> Any:
    """Key usage: a CA signs certificates (and revocation lists); a TLS end signs its handshake
    (ECDSA keys: ECDHE needs nothing more)."""
    return x509.KeyUsage(
        digital_signature=not signs_certificates, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=signs_certificates, crl_sign=signs_certificates,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
