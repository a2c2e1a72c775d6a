"""The email flows driven by the real matrix-js-sdk (tests/interop/js/email_flow.mjs),
as Element runs them: the script keeps retrying each step while this test
reads the mail and opens its link, as the person would."""

from __future__ import annotations

import asyncio

from tests.email.conftest import PUBLIC_BASE, mail_link, open_link
from tests.interop.node_script import JS_DIR, run_node_script

SCRIPT = JS_DIR / "email_flow.mjs"


async def test_js_sdk_email_flows(server_factory, smtp):
    hs = await server_factory(
        email=smtp.config(registration_requires_email=True), public_baseurl=PUBLIC_BASE
    )
    first, second = "js.one@example.test", "js.two@example.test"
    script = asyncio.create_task(run_node_script(SCRIPT, hs.url, first, second))
    # Registration, the added address, the password reset: one mail each.
    for to in (first, second, first):
        mail = await asyncio.wait_for(smtp.mails.get(), timeout=60)
        assert mail["To"] == to
        status, page, _ = await open_link(hs, mail_link(mail))
        assert status == 200, (to, page)
    result = await script
    assert smtp.mails.empty()

    assert result["bad_address"]["errcode"] == "M_INVALID_PARAM"
    assert result["register_retry_sid"] == result["register_sid"]
    assert result["register_flows"] == [{"stages": ["m.login.email.identity"]}]
    user_id = f"@{result['username']}:localhost"
    assert result["register"]["user_id"] == user_id
    assert result["capabilities"] == {"enabled": True}
    assert result["threepids"] == [first, second]
    assert result["old_token_after_reset"]["errcode"] == "M_UNKNOWN_TOKEN"
    assert result["login_user_id"] == user_id
    assert result["unknown_reset"]["errcode"] == "M_THREEPID_NOT_FOUND"
