"""A small identity server for tests: HTTPS on loopback with a certificate
from a CA made for the test, the v2 endpoints a homeserver calls, and the
/3pid/onbind call an identity server makes when an invited address is bound."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from signedjson.key import generate_signing_key
from signedjson.sign import sign_json
from signedjson.types import SigningKey
from unpaddedbase64 import encode_base64

ACCESS_TOKEN = "id-token"
PEPPER = "pepper"


@attrs.frozen
class CaFiles:
    """A CA's certificate file, and a certificate it issued for 127.0.0.1."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_ca(directory: Path) -> CaFiles:
    """Write a fresh CA and a server certificate for 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return CaFiles(ca_file, cert_file, key_file)


def server_tls(ca: CaFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(ca.cert_file, ca.key_file)
    return context


class FakeIdentityServer:
    """Bindings, validated sessions and stored invites in memory; the
    requests it received are kept for the test to look at."""

    def __init__(self) -> None:
        self.key: SigningKey = generate_signing_key("0")
        self.valid_keys: set[str] = {self.public_key}
        self.bindings: dict[tuple[str, str], str] = {}
        self.sessions: dict[str, tuple[str, str]] = {}
        self.invites: list[dict[str, Any]] = []
        self.received: list[tuple[str, Any, dict[str, str]]] = []
        self.name = ""
        self._runner: web.AppRunner | None = None

    @property
    def public_key(self) -> str:
        return encode_base64(self.key.verify_key.encode())

    async def start(self, ca: CaFiles) -> None:
        app = web.Application()
        v2 = "/_matrix/identity/v2"
        app.router.add_get(v2 + "/hash_details", self._hash_details)
        app.router.add_post(v2 + "/lookup", self._lookup)
        app.router.add_post(v2 + "/3pid/bind", self._bind)
        app.router.add_post(v2 + "/3pid/unbind", self._unbind)
        app.router.add_post(v2 + "/store-invite", self._store_invite)
        app.router.add_get(v2 + "/pubkey/isvalid", self._is_valid)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_tls(ca))
        await site.start()
        assert site._server is not None
        self.name = f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def validate(self, sid: str, medium: str, address: str) -> None:
        """A session in which the user proved they own the address."""
        self.sessions[sid] = (medium, address)

    async def _authorised(self, request: web.Request) -> Any:
        body = await request.json() if request.can_read_body else None
        self.received.append((request.path, body, dict(request.headers)))
        if request.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
            raise web.HTTPUnauthorized(
                text='{"errcode":"M_UNAUTHORIZED","error":"bad token"}',
                content_type="application/json",
            )
        return body

    async def _hash_details(self, request: web.Request) -> web.Response:
        await self._authorised(request)
        return web.json_response({"algorithms": ["none", "sha256"], "lookup_pepper": PEPPER})

    async def _lookup(self, request: web.Request) -> web.Response:
        body = await self._authorised(request)
        assert body["algorithm"] == "sha256" and body["pepper"] == PEPPER
        by_hash = {
            encode_base64(
                hashlib.sha256(f"{address} {medium} {PEPPER}".encode()).digest(), urlsafe=True
            ): mxid
            for (medium, address), mxid in self.bindings.items()
        }
        return web.json_response(
            {"mappings": {h: by_hash[h] for h in body["addresses"] if h in by_hash}}
        )

    async def _bind(self, request: web.Request) -> web.Response:
        body = await self._authorised(request)
        medium, address = self.sessions[body["sid"]]
        self.bindings[(medium, address)] = body["mxid"]
        return web.json_response(
            sign_json(
                {"medium": medium, "address": address, "mxid": body["mxid"]},
                self.name,
                self.key,
            )
        )

    async def _unbind(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append((request.path, body, dict(request.headers)))
        threepid = (body["threepid"]["medium"], body["threepid"]["address"])
        if self.bindings.get(threepid) != body["mxid"]:
            return web.json_response({"errcode": "M_NOT_FOUND", "error": "no"}, status=404)
        del self.bindings[threepid]
        return web.json_response({})

    async def _store_invite(self, request: web.Request) -> web.Response:
        body = await self._authorised(request)
        token = f"token{len(self.invites)}"
        self.invites.append({**body, "token": token})
        return web.json_response(
            {
                "token": token,
                "display_name": "b...@example.org",
                "public_keys": [
                    {
                        "public_key": self.public_key,
                        "key_validity_url": f"https://{self.name}/_matrix/identity/v2/pubkey/isvalid",
                    }
                ],
            }
        )

    async def _is_valid(self, request: web.Request) -> web.Response:
        return web.json_response({"valid": request.query.get("public_key") in self.valid_keys})

    def onbind_body(self, medium: str, address: str, mxid: str, key: SigningKey) -> dict:
        """What an identity server sends to /3pid/onbind once `address` is
        bound: every invite stored for it, signed with `key`."""
        invites = []
        for invite in self.invites:
            if (invite["medium"], invite["address"]) != (medium, address):
                continue
            signed = sign_json({"mxid": mxid, "token": invite["token"]}, self.name, key)
            invites.append({**invite, "mxid": mxid, "signed": signed})
        return sign_json(
            {"medium": medium, "address": address, "mxid": mxid, "invites": invites},
            self.name,
            self.key,
        )


async def post_onbind(url: str, body: dict, method: str = "POST") -> int:
    """The identity server's call: POST as Sydent makes it, PUT as the spec says."""
    async with aiohttp.ClientSession() as http:
        path = url + "/_matrix/federation/v1/3pid/onbind"
        async with http.request(method, path, json=body) as resp:
            return resp.status


@pytest.fixture
def ca(tmp_path: Path) -> CaFiles:
    """A CA made for the test; the homeserver trusts it with outbound_tls_ca_file."""
    directory = tmp_path / "ca"
    directory.mkdir()
    return make_ca(directory)


@pytest.fixture
async def idserver(ca: CaFiles) -> AsyncIterator[FakeIdentityServer]:
    server = FakeIdentityServer()
    await server.start(ca)
    yield server
    await server.stop()
