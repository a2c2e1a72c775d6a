"""The m.oauth UIA stage (MSC4312): an OAuth user replaces their
cross-signing keys after approving it on the account page."""

from __future__ import annotations

from typing import Any

from tests.oauth.conftest import API_SCOPE
from tests.test_e2e_keys import cross_signing_keys

UPLOAD = "/_matrix/client/v3/keys/device_signing/upload"


async def test_reset_needs_an_approval_on_the_account_page(element_x: Any, oauth_hs: Any) -> None:
    user = await oauth_hs.register("alice")
    token, _ = await element_x.sign_in(user["user_id"], API_SCOPE)
    access = token["access_token"]
    _, first = cross_signing_keys(user["user_id"])
    assert (await oauth_hs.request("POST", UPLOAD, token=access, json=first))[0] == 200

    _, second = cross_signing_keys(user["user_id"])
    status, challenge = await oauth_hs.request("POST", UPLOAD, token=access, json=second)
    assert status == 401
    stages = [flow["stages"] for flow in challenge["flows"]]
    assert ["m.oauth"] in stages and ["org.matrix.cross_signing_reset"] in stages
    url = oauth_hs.url + "/_homeserver/web/account?action=org.matrix.cross_signing_reset"
    assert challenge["params"]["m.oauth"] == {"url": url}
    assert challenge["params"]["org.matrix.cross_signing_reset"] == {"url": url}

    # Not approved yet: the stage is refused.
    auth = {"type": "m.oauth", "session": challenge["session"]}
    status, refused = await oauth_hs.request(
        "POST", UPLOAD, token=access, json={**second, "auth": auth}
    )
    assert (status, refused["errcode"]) == (401, "M_FORBIDDEN")

    await oauth_hs.server.oauth_grants.approve_cross_signing_reset(user["user_id"])
    status, _ = await oauth_hs.request("POST", UPLOAD, token=access, json={**second, "auth": auth})
    assert status == 200
    # The approval is used up.
    _, third = cross_signing_keys(user["user_id"])
    assert (await oauth_hs.request("POST", UPLOAD, token=access, json=third))[0] == 401


async def test_element_x_retries_without_auth_after_approval(element_x: Any, oauth_hs: Any) -> None:
    """As Synapse with MAS: once approved, the retried upload needs no `auth`."""
    user = await oauth_hs.register("bob")
    token, _ = await element_x.sign_in(user["user_id"], API_SCOPE)
    access = token["access_token"]
    _, keys = cross_signing_keys(user["user_id"])
    assert (await oauth_hs.request("POST", UPLOAD, token=access, json=keys))[0] == 200
    _, replacement = cross_signing_keys(user["user_id"])
    await oauth_hs.server.oauth_grants.approve_cross_signing_reset(user["user_id"])
    assert (await oauth_hs.request("POST", UPLOAD, token=access, json=replacement))[0] == 200


async def test_without_oauth_only_the_password_is_offered(hs: Any) -> None:
    user = await hs.register("carol")
    _, first = cross_signing_keys(user["user_id"])
    assert (await hs.request("POST", UPLOAD, token=user["access_token"], json=first))[0] == 200
    _, second = cross_signing_keys(user["user_id"])
    status, challenge = await hs.request("POST", UPLOAD, token=user["access_token"], json=second)
    assert status == 401
    assert challenge["flows"] == [{"stages": ["m.login.password"]}]
    assert challenge["params"] == {}
