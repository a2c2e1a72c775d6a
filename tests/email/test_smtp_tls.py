"""Mail over TLS with a password: STARTTLS and implicit TLS against an aiosmtpd
server with a certificate from the test's CA (trusted through
outbound_tls_ca_file), which takes the mail only after checking the login."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.email.conftest import PUBLIC_BASE, SmtpSink, mail_link
from tests.fake_identity_server import CaFiles, server_tls

V3 = "/_matrix/client/v3"


def check_login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"matrix", b"s3cret")
    return AuthResult(success=ok)


@pytest.fixture
async def tls_sinks(ca: CaFiles) -> AsyncIterator[Callable[[bool], Any]]:
    """Start a sink: STARTTLS required (False) or implicit TLS (True)."""
    servers: list[asyncio.Server] = []
    loop = asyncio.get_running_loop()

    async def start(implicit: bool) -> SmtpSink:
        sink = SmtpSink()
        context = server_tls(ca)

        def protocol() -> SMTP:
            return SMTP(
                sink,
                hostname="localhost",
                tls_context=None if implicit else context,
                require_starttls=not implicit,
                auth_required=True,
                # aiosmtpd does not see implicit TLS as TLS (it is, on this socket).
                auth_require_tls=not implicit,
                authenticator=check_login,
            )

        server = await loop.create_server(
            protocol, "127.0.0.1", 0, ssl=context if implicit else None
        )
        servers.append(server)
        sink.port = server.sockets[0].getsockname()[1]
        return sink

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_mail_over_tls_with_a_login(server_factory, tls_sinks, ca, tmp_path, mode):
    sink = await tls_sinks(mode == "tls")
    password_file = tmp_path / "smtp_password"
    password_file.write_text("s3cret\n")
    hs = await server_factory(
        email=sink.config(tls=mode, smtp_user="matrix", smtp_password_path=str(password_file)),
        public_baseurl=PUBLIC_BASE,
        outbound_tls_ca_file=str(ca.ca_file),
    )
    body = {"client_secret": "s", "email": "tls@example.test", "send_attempt": 1}
    status, reply = await hs.request("POST", V3 + "/register/email/requestToken", json=body)
    assert status == 200, reply
    mail = await sink.next_mail()
    assert mail["To"] == "tls@example.test"
    assert mail_link(mail)
