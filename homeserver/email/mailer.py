"""Sending one mail over SMTP, with a plain-text and an HTML part.

aiosmtplib speaks SMTP on the event loop; the mails are rendered from the
Jinja2 templates next to this module (autoescaped for the HTML part).
"""

from __future__ import annotations

import logging
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib
import jinja2

from homeserver.config import EmailConfig
from homeserver.errors import MatrixError

log = logging.getLogger(__name__)
_TIMEOUT_S = 20.0


class Mailer:
    def __init__(
        self, config: EmailConfig, smtp_password: str | None, tls_context: ssl.SSLContext
    ) -> None:
        self._config = config
        self._password = smtp_password
        # The server's outbound trust: system CAs plus outbound_tls_ca_file.
        self._tls_context = tls_context
        self._templates = jinja2.Environment(
            loader=jinja2.PackageLoader("homeserver.email", "templates"),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,
        )

    @property
    def app_name(self) -> str:
        return self._config.app_name

    async def send(self, to: str, template: str, subject: str, **context: Any) -> None:
        """Mail `template` (its .txt and .html) to `to`; 500 if the SMTP server refused."""
        context = {"app_name": self._config.app_name, **context}
        message = EmailMessage()
        message["From"] = self._config.from_address
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid()
        message.set_content(self._templates.get_template(f"{template}.txt").render(context))
        html = self._templates.get_template(f"{template}.html").render(context)
        message.add_alternative(html, subtype="html")
        config = self._config
        try:
            await aiosmtplib.send(
                message,
                hostname=config.smtp_host,
                port=config.smtp_port,
                username=config.smtp_user,
                password=self._password,
                use_tls=config.tls == "tls",
                start_tls=True if config.tls == "starttls" else False,
                tls_context=self._tls_context,
                timeout=_TIMEOUT_S,
            )
        except (aiosmtplib.SMTPException, OSError) as e:
            log.warning("Could not send mail to the SMTP server: %s", e)
            raise MatrixError(500, "M_UNKNOWN", "The email could not be sent") from None
