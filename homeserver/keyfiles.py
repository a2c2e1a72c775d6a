"""The server's key files: its ed25519 signing key and its TLS certificate."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from pathlib import Path

from signedjson.key import generate_signing_key, read_signing_keys, write_signing_keys
from signedjson.types import SigningKey


def ensure_signing_key(path: Path) -> None:
    """Create a signing key in Synapse's file format if there is none yet."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_signing_key("a_" + secrets.token_hex(2))
    with path.open("w") as f:
        write_signing_keys(f, [key])
    path.chmod(0o600)


def load_signing_key(path: Path) -> SigningKey:
    with path.open() as f:
        keys = read_signing_keys(f)
    if not keys:
        raise ValueError(f"{path} holds no signing key")
    return keys[0]


def ensure_self_signed_certificate(cert_path: Path, key_path: Path, server_name: str) -> None:
    """A self-signed certificate for the federation listener, for local use.

    Real deployments put a certificate from a CA here (or a reverse proxy in
    front); other servers verify federation certificates.
    """
    if cert_path.exists() and key_path.exists():
        return
    # Imported here: only a first start needs it, and `cryptography` would
    # otherwise stay resident in every server process (about 10 MB).
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    host = server_name.rsplit(":", 1)[0].strip("[]") if server_name.count(":") <= 1 else server_name
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        if host != "localhost":
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
