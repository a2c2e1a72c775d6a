"""The email requestToken flows over real HTTP, with a real SMTP sink: the
test reads each mail, follows its link, and completes registration, password
reset, adding an email and logging in with it."""

from __future__ import annotations

from typing import Any

from tests.email.conftest import PUBLIC_BASE, SmtpSink, link_params, mail_link, open_link

V3 = "/_matrix/client/v3"
SUBMIT = "_matrix/client/unstable/registration/email/submit_token"


async def email_server(server_factory: Any, smtp: SmtpSink, **email: Any) -> Any:
    return await server_factory(email=smtp.config(**email), public_baseurl=PUBLIC_BASE)


async def request_token(
    hs: Any, kind: str, address: str, secret: str = "secret1", attempt: int = 1, **extra: Any
) -> tuple[int, Any]:
    path = {
        "register": "/register/email/requestToken",
        "password": "/account/password/email/requestToken",
        "add": "/account/3pid/email/requestToken",
    }[kind]
    body = {"client_secret": secret, "email": address, "send_attempt": attempt, **extra}
    return await hs.request("POST", V3 + path, json=body)


async def validate(hs: Any, smtp: SmtpSink, to: str) -> dict[str, str]:
    """Read the next mail, check it is for `to`, open its link; its parameters."""
    mail = await smtp.next_mail()
    # Sent to the canonical (lower-case) address, as Synapse.
    assert mail["To"] == to.lower()
    assert mail["From"] == "Example Chat <noreply@example.test>"
    link = mail_link(mail)
    assert link.startswith(PUBLIC_BASE + SUBMIT + "?")
    status, page, _ = await open_link(hs, link)
    assert status == 200, page
    assert "confirmed" in page
    return link_params(link)


async def register_with_email(hs: Any, smtp: SmtpSink, name: str, address: str) -> dict:
    status, body = await request_token(hs, "register", address, secret=f"s-{name}")
    assert status == 200, body
    sid = body["sid"]
    creds = {"sid": sid, "client_secret": f"s-{name}"}
    first = {"username": name, "password": "old password"}
    status, challenge = await hs.request("POST", V3 + "/register", json=first)
    assert status == 401
    # Not validated yet: the stage fails, and says so.
    auth = {"type": "m.login.email.identity", "threepid_creds": creds}
    status, body = await hs.request(
        "POST", V3 + "/register", json={"auth": {**auth, "session": challenge["session"]}}
    )
    assert status == 401 and body["errcode"] == "M_THREEPID_AUTH_FAILED", body
    assert body["completed"] == []
    params = await validate(hs, smtp, address)
    assert params["sid"] == sid
    status, body = await hs.request(
        "POST", V3 + "/register", json={"auth": {**auth, "session": challenge["session"]}}
    )
    assert status == 200, body
    return body


async def test_registration_requires_a_validated_email(server_factory, smtp):
    hs = await email_server(server_factory, smtp, registration_requires_email=True)
    status, body = await hs.request("POST", V3 + "/register", json={"username": "x"})
    assert status == 401
    assert body["flows"] == [{"stages": ["m.login.email.identity"]}]
    # The dummy stage is no way around it.
    status, body = await hs.request(
        "POST",
        V3 + "/register",
        json={"username": "x", "password": "p", "auth": {"type": "m.login.dummy"}},
    )
    assert status == 401 and body["errcode"] == "M_UNRECOGNIZED"

    registered = await register_with_email(hs, smtp, "alice", "Alice@Example.TEST")
    assert registered["user_id"] == "@alice:localhost"
    status, body = await hs.request("GET", V3 + "/account/3pid", token=registered["access_token"])
    assert status == 200
    [threepid] = body["threepids"]
    assert threepid["medium"] == "email"
    assert threepid["address"] == "alice@example.test"
    assert threepid["validated_at"] <= threepid["added_at"]

    # Log in with the address (m.id.thirdparty), in any case.
    status, body = await hs.request(
        "POST",
        V3 + "/login",
        json={
            "type": "m.login.password",
            "identifier": {
                "type": "m.id.thirdparty",
                "medium": "email",
                "address": "ALICE@example.test",
            },
            "password": "old password",
        },
    )
    assert status == 200, body
    assert body["user_id"] == "@alice:localhost"
    # A wrong password or an unknown address: the same answer.
    for address, password in (("alice@example.test", "wrong"), ("nobody@example.test", "x")):
        status, body = await hs.request(
            "POST",
            V3 + "/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": address},
                "password": password,
            },
        )
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    # The address is taken now.
    status, body = await request_token(hs, "register", "alice@example.test", secret="other")
    assert (status, body["errcode"]) == (400, "M_THREEPID_IN_USE")
    assert smtp.mails.empty()

    # The password stage of UIA names the account by its address too; a
    # deactivated account gives its addresses up.
    by_address = {
        "type": "m.login.password",
        "identifier": {
            "type": "m.id.thirdparty",
            "medium": "email",
            "address": "alice@example.test",
        },
        "password": "old password",
    }
    status, body = await hs.request(
        "POST",
        V3 + "/account/deactivate",
        token=registered["access_token"],
        json={"auth": by_address},
    )
    assert status == 200, body
    status, body = await request_token(hs, "register", "alice@example.test", secret="other")
    assert status == 200, body


async def test_email_is_offered_beside_the_dummy_flow(server_factory, smtp):
    hs = await email_server(server_factory, smtp)
    status, body = await hs.request("POST", V3 + "/register", json={})
    assert status == 401
    assert body["flows"] == [
        {"stages": ["m.login.dummy"]},
        {"stages": ["m.login.email.identity"]},
    ]


async def test_send_attempt_and_the_submit_url(server_factory, smtp):
    hs = await email_server(server_factory, smtp)
    status, first = await request_token(hs, "register", "bob@example.test", attempt=1)
    assert status == 200
    assert first["submit_url"] == PUBLIC_BASE + SUBMIT
    first_link = mail_link(await smtp.next_mail())
    # The same attempt again (a retry): the same session, no second mail.
    status, again = await request_token(hs, "register", "bob@example.test", attempt=1)
    assert again["sid"] == first["sid"]
    assert smtp.mails.empty()
    # A new attempt: a new mail for the same session; only its token works.
    status, second = await request_token(hs, "register", "bob@example.test", attempt=2)
    assert second["sid"] == first["sid"]
    new_link = mail_link(await smtp.next_mail())
    status, page, _ = await open_link(hs, first_link)
    assert status == 400 and "did not work" in page
    # The token typed into the client, posted to submit_url.
    params = link_params(new_link)
    status, body = await hs.request(
        "POST", "/" + SUBMIT, json={**params, "token": params["token"] + "x"}
    )
    assert (status, body) == (200, {"success": False})
    status, body = await hs.request("POST", "/" + SUBMIT, json=params)
    assert (status, body) == (200, {"success": True})


async def test_bad_requests_send_nothing(server_factory, smtp):
    hs = await email_server(server_factory, smtp, allowed_domains=["example.test"])
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"client_secret": "no spaces", "email": "a@example.test"}, 400, "M_INVALID_PARAM"),
        ({"client_secret": "", "email": "a@example.test"}, 400, "M_INVALID_PARAM"),
        ({"client_secret": "s", "email": "not an address"}, 400, "M_INVALID_PARAM"),
        ({"client_secret": "s", "email": "a@"}, 400, "M_INVALID_PARAM"),
        ({"client_secret": "s", "email": "a@example.test", "send_attempt": "1"}, 400, "M_INVALID_PARAM"),
        ({"client_secret": "s", "email": "a@example.test", "send_attempt": None}, 400, "M_INVALID_PARAM"),
        ({"client_secret": "s", "email": "a@example.test", "next_link": "javascript:alert(1)"}, 400, "M_INVALID_PARAM"),
        ({"client_secret": "s", "email": "a@elsewhere.test"}, 403, "M_THREEPID_DENIED"),
        ({"email": "a@example.test"}, 400, "M_MISSING_PARAM"),
        ({"client_secret": "s"}, 400, "M_MISSING_PARAM"),
    ]  # fmt: skip
    for body, status, errcode in cases:
        body = {"send_attempt": 1, **body}
        for path in ("/register/email/requestToken", "/account/3pid/email/requestToken"):
            got_status, got = await hs.request("POST", V3 + path, json=body)
            assert (got_status, got["errcode"]) == (status, errcode), (path, body, got)
    body = {"client_secret": "s", "send_attempt": 1}
    status, got = await hs.request("POST", V3 + "/register/email/requestToken", json=body)
    assert (status, got["errcode"]) == (400, "M_MISSING_PARAM")
    missing = {"client_secret": "s", "email": "a@example.test"}
    status, got = await hs.request("POST", V3 + "/register/email/requestToken", json=missing)
    assert (status, got["errcode"]) == (400, "M_MISSING_PARAM")
    # Password reset for an address no account has.
    status, got = await request_token(hs, "password", "nobody@example.test")
    assert (status, got["errcode"]) == (400, "M_THREEPID_NOT_FOUND")
    # Broken links change nothing.
    async with hs.http.get(f"{hs.url}/{SUBMIT}") as resp:
        assert resp.status == 400
    status, page, _ = await open_link(hs, f"{PUBLIC_BASE}{SUBMIT}?sid=x&client_secret=y&token=z")
    assert status == 400 and "did not work" in page
    assert smtp.mails.empty()


async def test_password_reset_by_email(server_factory, smtp):
    hs = await email_server(server_factory, smtp)
    registered = await register_with_email(hs, smtp, "carol", "carol@example.test")
    next_link = "https://app.example.test/#/reset-done"
    status, body = await request_token(
        hs, "password", "carol@example.test", secret="reset", next_link=next_link
    )
    assert status == 200, body
    creds = {"sid": body["sid"], "client_secret": "reset"}
    mail = await smtp.next_mail()
    assert "reset the password" in mail.get_body(("plain",)).get_content()
    # A mail scanner opening the link validates nothing: the page asks to confirm.
    async with hs.http.get(mail_link(mail).replace(PUBLIC_BASE, hs.url + "/")) as resp:
        assert resp.status == 200 and "Confirm" in await resp.text()
    # The new password before the confirmation: refused, nothing changed.
    auth = {"type": "m.login.email.identity", "threepid_creds": creds}
    reset = {"new_password": "new password", "auth": auth}
    status, body = await hs.request("POST", V3 + "/account/password", json=reset)
    assert status == 401 and body["errcode"] == "M_THREEPID_AUTH_FAILED"
    # The link redirects to the client's next_link.
    status, _, headers = await open_link(hs, mail_link(mail))
    assert status == 302 and headers["Location"] == next_link
    status, body = await hs.request(
        "POST",
        V3 + "/account/password",
        json={**reset, "auth": {**auth, "session": body["session"]}},
    )
    assert status == 200, body
    # Logged out everywhere; the new password works, the old one not.
    status, body = await hs.request("GET", V3 + "/account/whoami", token=registered["access_token"])
    assert status == 401
    for password, expected in (("old password", 403), ("new password", 200)):
        status, _ = await hs.request(
            "POST",
            V3 + "/login",
            json={"type": "m.login.password", "user": "carol", "password": password},
        )
        assert status == expected


async def test_hidden_unknown_addresses(server_factory, smtp):
    hs = await email_server(server_factory, smtp, hide_unknown_addresses=True)
    status, body = await request_token(hs, "password", "nobody@example.test")
    assert status == 200 and body["sid"]
    assert smtp.mails.empty()
    # Its session never validates.
    auth = {
        "type": "m.login.email.identity",
        "threepid_creds": {"sid": body["sid"], "client_secret": "secret1"},
    }
    status, body = await hs.request(
        "POST", V3 + "/account/password", json={"new_password": "x", "auth": auth}
    )
    assert status == 401 and body["errcode"] == "M_THREEPID_AUTH_FAILED"


async def test_add_and_delete_an_email(server_factory, smtp):
    hs = await email_server(server_factory, smtp)
    user = await hs.register("dave", "pw")
    token = user["access_token"]
    status, body = await request_token(hs, "add", "dave@example.test", secret="add")
    assert status == 200
    sid = body["sid"]
    add = {"sid": sid, "client_secret": "add"}
    # Before the link: the password stage passes, the unvalidated session not.
    status, challenge = await hs.request("POST", V3 + "/account/3pid/add", token=token, json=add)
    assert status == 401 and challenge["flows"] == [{"stages": ["m.login.password"]}]
    password_auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "dave"},
        "password": "pw",
    }
    status, body = await hs.request(
        "POST",
        V3 + "/account/3pid/add",
        token=token,
        json={**add, "auth": {**password_auth, "session": challenge["session"]}},
    )
    assert (status, body["errcode"]) == (400, "M_THREEPID_AUTH_FAILED")
    await validate(hs, smtp, "dave@example.test")
    status, body = await hs.request(
        "POST", V3 + "/account/3pid/add", token=token, json={**add, "auth": password_auth}
    )
    assert status == 200, body
    status, body = await hs.request("GET", V3 + "/account/3pid", token=token)
    assert [t["address"] for t in body["threepids"]] == ["dave@example.test"]
    # Someone else cannot take it (the requestToken already refuses).
    status, body = await request_token(hs, "add", "dave@example.test", secret="other")
    assert (status, body["errcode"]) == (400, "M_THREEPID_IN_USE")

    status, body = await hs.request(
        "POST",
        V3 + "/account/3pid/delete",
        token=token,
        json={"medium": "email", "address": "dave@example.test"},
    )
    assert status == 200
    assert body["id_server_unbind_result"] == "no-support"
    status, body = await hs.request("GET", V3 + "/account/3pid", token=token)
    assert body["threepids"] == []


async def test_rate_limited_per_address(server_factory, smtp):
    hs = await server_factory(
        email=smtp.config(rate_limit={"per_second": 0.001, "burst_count": 2}),
        public_baseurl=PUBLIC_BASE,
        rate_limits={"enabled": True},
    )
    for attempt in (1, 2):
        status, _ = await request_token(hs, "register", "eve@example.test", attempt=attempt)
        assert status == 200
        await smtp.next_mail()
    status, body = await request_token(hs, "register", "eve@example.test", attempt=3)
    assert status == 429 and body["errcode"] == "M_LIMIT_EXCEEDED"
    assert smtp.mails.empty()


async def test_phone_numbers_are_not_supported(server_factory, smtp):
    hs = await email_server(server_factory, smtp)
    body = {"client_secret": "s", "country": "GB", "phone_number": "07700900001", "send_attempt": 1}
    for path in (
        "/register/msisdn/requestToken",
        "/account/password/msisdn/requestToken",
        "/account/3pid/msisdn/requestToken",
    ):
        status, got = await hs.request("POST", V3 + path, json=body)
        assert (status, got["errcode"]) == (400, "M_UNKNOWN"), path
        status, got = await hs.request("POST", V3 + path, json={"client_secret": "s"})
        assert (status, got["errcode"]) == (400, "M_MISSING_PARAM"), path


async def test_without_email_configured(hs):
    status, body = await hs.request(
        "POST",
        V3 + "/register/email/requestToken",
        json={"client_secret": "s", "email": "a@example.test", "send_attempt": 1},
    )
    assert (status, body["errcode"]) == (400, "M_UNKNOWN")
    status, body = await hs.request("POST", V3 + "/account/password", json={"new_password": "x"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    status, body = await hs.request("POST", V3 + "/register", json={})
    assert body["flows"] == [{"stages": ["m.login.dummy"]}]


async def test_smtp_server_down(server_factory, smtp):
    # A port nothing listens on (the sink's, once closed).
    config = smtp.config()
    hs = await server_factory(email=config, public_baseurl=PUBLIC_BASE)
    smtp.close()
    for _ in range(2):
        # The retry with the same send_attempt tries again: nothing was kept.
        status, body = await request_token(hs, "register", "frank@example.test")
        assert (status, body["errcode"]) == (500, "M_UNKNOWN")


async def test_the_deprecated_add_form(server_factory, smtp):
    """POST /account/3pid (spec v1.0, deprecated): no UIA, the credentials of
    a session this server validated; an unvalidated one adds nothing."""
    hs = await email_server(server_factory, smtp)
    token = (await hs.register("fay", "pw"))["access_token"]
    status, body = await request_token(hs, "add", "fay@example.test", secret="old")
    creds = {"sid": body["sid"], "client_secret": "old"}
    status, body = await hs.request(
        "POST", V3 + "/account/3pid", token=token, json={"three_pid_creds": creds}
    )
    assert (status, body["errcode"]) == (400, "M_THREEPID_AUTH_FAILED")
    status, body = await hs.request(
        "POST", V3 + "/account/3pid", token=token, json={"three_pid_creds": creds, "bind": True}
    )
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await hs.request("POST", V3 + "/account/3pid", token=token, json={})
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    await validate(hs, smtp, "fay@example.test")
    status, body = await hs.request(
        "POST", V3 + "/account/3pid", token=token, json={"three_pid_creds": creds}
    )
    assert status == 200, body
    status, body = await hs.request("GET", V3 + "/account/3pid", token=token)
    assert [t["address"] for t in body["threepids"]] == ["fay@example.test"]
