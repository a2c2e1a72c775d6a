"""The requestToken endpoints (registration, password reset, adding an
email) and the validation link their mails carry.

Phone numbers (msisdn) are not validated here: their endpoints check their
parameters and then answer as Synapse does without an SMS provider.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from homeserver.api.http import ClientRequest, endpoint
from homeserver.api.params import opt_str, req_str
from homeserver.api.sso_pages import page, redirect
from homeserver.email.validation import EmailValidation, Purpose, ValidationFailed
from homeserver.errors import MatrixError, invalid_param, missing_param

# Where the mails' links point, under Synapse's path for registration mails
# (it serves the same page for every purpose here). A client may also POST
# the token there as the spec's `submit_url`.
SUBMIT_PATH = "/_matrix/client/unstable/registration/email/submit_token"
_LINK_FIELDS = ("sid", "client_secret", "token")


def _send_attempt(body: dict[str, Any]) -> int:
    if "send_attempt" not in body:
        raise missing_param("'send_attempt' is required")
    value = body["send_attempt"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_param("'send_attempt' must be an integer")
    return value


def _not_configured() -> MatrixError:
    # As Synapse without email: a plain 400, no more specific code fits.
    return MatrixError(400, "M_UNKNOWN", "Email addresses are not validated on this server")


class EmailValidationApi:
    def __init__(self, emails: EmailValidation | None, submit_url: str) -> None:
        self._emails = emails
        self._submit_url = submit_url

    @endpoint("POST", "/register/email/requestToken", auth=False)
    async def register_token(self, req: ClientRequest) -> dict[str, Any]:
        return await self._request(req, Purpose.REGISTER)

    @endpoint("POST", "/account/password/email/requestToken", auth=False)
    async def password_token(self, req: ClientRequest) -> dict[str, Any]:
        return await self._request(req, Purpose.PASSWORD_RESET)

    @endpoint("POST", "/account/3pid/email/requestToken", auth=False)
    async def add_token(self, req: ClientRequest) -> dict[str, Any]:
        return await self._request(req, Purpose.ADD)

    async def _request(self, req: ClientRequest, purpose: Purpose) -> dict[str, Any]:
        body = req.json()
        client_secret = req_str(body, "client_secret")
        email = req_str(body, "email")
        send_attempt = _send_attempt(body)
        next_link = opt_str(body, "next_link")
        # `id_server` and `id_access_token` (delegating to an identity server)
        # are ignored, as by Synapse since 1.4x: this server sends the mail.
        if self._emails is None:
            raise _not_configured()
        sid = await self._emails.request_token(
            purpose, client_secret, email, send_attempt, next_link, ip=req.ip
        )
        return {"sid": sid, "submit_url": self._submit_url}

    @endpoint("POST", "/register/msisdn/requestToken", auth=False)
    async def register_msisdn(self, req: ClientRequest) -> dict[str, Any]:
        self._check_msisdn(req)
        raise MatrixError(400, "M_UNKNOWN", "Registration by phone number is not supported")

    @endpoint("POST", "/account/password/msisdn/requestToken", auth=False)
    async def password_msisdn(self, req: ClientRequest) -> dict[str, Any]:
        self._check_msisdn(req)
        raise MatrixError(400, "M_UNKNOWN", "Password reset by phone number is not supported")

    @endpoint("POST", "/account/3pid/msisdn/requestToken", auth=False)
    async def add_msisdn(self, req: ClientRequest) -> dict[str, Any]:
        self._check_msisdn(req)
        raise MatrixError(400, "M_UNKNOWN", "Adding phone numbers is not supported")

    @staticmethod
    def _check_msisdn(req: ClientRequest) -> None:
        body = req.json()
        for key in ("client_secret", "country", "phone_number"):
            req_str(body, key)
        _send_attempt(body)

    @endpoint("GET", SUBMIT_PATH, auth=False, prefixes=("",))
    async def submit_link(self, req: ClientRequest) -> web.StreamResponse:
        """The link of the mail, opened in a browser: a page asking to confirm.

        Opening the link alone validates nothing: mail scanners open links,
        and a validated password-reset session is a reset for whoever asked
        for it (as Synapse's confirmation page for password resets).
        """
        if self._emails is None:
            return page(400, "Not available", "<p>Email addresses are not validated here.</p>")
        values = [req.query.get(key) for key in _LINK_FIELDS]
        if not all(values):
            return page(400, "The link did not work", "<p>The link is incomplete.</p>")
        hidden = "".join(
            f'<input type=hidden name={key} value="{html.escape(str(value))}">'
            for key, value in zip(_LINK_FIELDS, values, strict=True)
        )
        return page(
            200,
            "Confirm your email address",
            "<p>Confirm that this email address is yours, if you asked for it just now.</p>"
            # Posted back to this address, wherever public_baseurl puts it.
            f"<form method=post>{hidden}"
            "<button type=submit>Confirm</button></form>",
        )

    @endpoint("POST", SUBMIT_PATH, auth=False, prefixes=("",))
    async def submit(self, req: ClientRequest) -> Any:
        """The confirmation page's form, or the spec's submit_url (JSON: the
        token typed into the client)."""
        content_type = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            return await self._submit_form(req)
        if self._emails is None:
            raise _not_configured()
        body = req.json()
        sid, client_secret, token = (req_str(body, key) for key in _LINK_FIELDS)
        try:
            await self._emails.submit_token(sid, client_secret, token)
        except ValidationFailed:
            return {"success": False}
        return {"success": True}

    async def _submit_form(self, req: ClientRequest) -> web.StreamResponse:
        """The person confirmed: a page, or the client's next_link."""
        if self._emails is None:
            return page(400, "Not available", "<p>Email addresses are not validated here.</p>")
        form = parse_qs(req.body.decode(errors="replace"), max_num_fields=10)
        values = [form.get(key, [""])[0] for key in _LINK_FIELDS]
        if not all(values):
            return page(400, "The link did not work", "<p>The link is incomplete.</p>")
        sid, client_secret, token = values
        try:
            next_link = await self._emails.submit_token(sid, client_secret, token)
        except ValidationFailed as e:
            return page(400, "The link did not work", f"<p>{html.escape(str(e))}</p>")
        if next_link is not None:
            return redirect(next_link)
        return page(
            200, "Your email address is confirmed", "<p>Go back to your app to continue.</p>"
        )
