"""A local SMTP sink (aiosmtpd) on the test's event loop, and servers that
send their mail to it."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

# The public base URL the servers of these tests announce; the mails' links
# start with it and the tests follow them to the server's real address.
PUBLIC_BASE = "https://chat.example.test/"
LINK = re.compile(r"https://chat\.example\.test/\S+")


class SmtpSink:
    """Keeps every mail it receives, in order."""

    def __init__(self) -> None:
        self.port = 0
        self.server: asyncio.Server | None = None
        self.mails: asyncio.Queue[EmailMessage] = asyncio.Queue()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.mails.put_nowait(message)
        return "250 OK"

    async def next_mail(self) -> EmailMessage:
        return await asyncio.wait_for(self.mails.get(), timeout=5)

    def close(self) -> None:
        """Stop listening (the SMTP server goes down)."""
        assert self.server is not None
        self.server.close()

    def config(self, **extra: Any) -> dict[str, Any]:
        return {
            "from_address": "Example Chat <noreply@example.test>",
            "smtp_host": "127.0.0.1",
            "smtp_port": self.port,
            "tls": "none",
            "app_name": "Example Chat",
            **extra,
        }


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink, hostname="localhost"), "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]
    sink.server = server
    yield sink
    server.close()
    await server.wait_closed()


def mail_link(mail: EmailMessage) -> str:
    """The validation link of a mail (the same in its text and HTML parts)."""
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    links = LINK.findall(text.get_content())
    assert len(links) == 1, text.get_content()
    # Escaped in HTML (&amp; between the parameters).
    assert escape(links[0]) in html.get_content()
    return links[0]


def link_params(link: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}


async def open_link(hs: Any, link: str) -> tuple[int, str, dict[str, str]]:
    """Open the link at the server's real address and press Confirm on its
    page, as a person does: the final status, body and headers."""
    parts = urlsplit(link)
    async with hs.http.get(f"{hs.url}{parts.path}?{parts.query}") as resp:
        page = await resp.text()
        if resp.status != 200:
            return resp.status, page, dict(resp.headers)
    assert "method=post" in page and "Confirm" in page
    form = link_params(link)
    for key, value in form.items():
        assert f'name={key} value="{escape(value)}"' in page
    async with hs.http.post(f"{hs.url}{parts.path}", data=form, allow_redirects=False) as resp:
        return resp.status, await resp.text(), dict(resp.headers)
