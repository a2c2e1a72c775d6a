"""The account basics, driven by the real matrix-js-sdk (Node.js) over HTTP.

tests/interop/js/account_flow.mjs registers a user the way Element does (the
dummy UIA flow), logs in from fresh clients, makes the calls js-sdk needs at
start-up, sets and reads a display name, lists devices and logs out. It prints
one JSON object; this test checks it. `make test` installs the npm packages
(from package-lock.json) first.
"""

from __future__ import annotations

from tests.interop.node_script import JS_DIR, run_node_script

SCRIPT = JS_DIR / "account_flow.mjs"


async def test_js_sdk_register_login_profile_logout(hs):
    result = await run_node_script(SCRIPT, hs.url)

    # Element accepts the server when the user types its URL.
    assert result["discovery"]["state"] == "SUCCESS", result["discovery"]

    # Registration: a 401 offering the dummy flow, then success with it.
    assert result["uia"]["httpStatus"] == 401
    assert ["m.login.dummy"] in result["uia"]["flows"]
    user_id = f"@{result['username']}:localhost"
    assert result["register"]["user_id"] == user_id
    assert result["register"]["device_id"]

    # whoami returns the registered user and device.
    assert result["whoami"]["user_id"] == user_id
    assert result["whoami"]["device_id"] == result["register"]["device_id"]

    # Password login from fresh clients gives new devices.
    login = result["login"]
    assert login["user_id"] == user_id
    assert login["device_id"] and login["device_id"] != result["register"]["device_id"]
    assert result["legacy_login"]["user_id"] == user_id
    assert result["legacy_login"]["client_user_id"] == user_id
    assert result["legacy_login"]["client_has_token"]
    assert result["wrong_password"] == {"httpStatus": 403, "errcode": "M_FORBIDDEN"}

    # What js-sdk reads at start-up.
    assert result["versions"]["supports_v1_1"] is True
    assert result["capabilities"]["m.room_versions"]["default"]
    assert (
        result["capabilities"]["m.room_versions"]["default"]
        in result["capabilities"]["m.room_versions"]["available"]
    )
    # The server's own rules (before js-sdk merges its defaults) start with the master rule.
    assert result["push_rules"]["server"]["override"][0] == ".m.rule.master"
    assert result["push_rules"]["client"]["override"][0] == ".m.rule.master"
    assert ".m.rule.message" in result["push_rules"]["server"]["underride"]

    # The display name set by the first client is what the second one reads.
    assert result["profile"]["displayname"] == result["display_name_set"]
    assert result["profile_displayname"] == {"displayname": result["display_name_set"]}

    # Every session is listed, with its display name.
    devices = {d["device_id"]: d["display_name"] for d in result["devices"]}
    assert devices[result["register"]["device_id"]] == "js-sdk register"
    assert devices[login["device_id"]] == "js-sdk login"
    assert result["legacy_login"]["device_id"] in devices

    # After logout the old token is refused; the other session lives on.
    assert result["logout"] == {}
    assert result["after_logout"]["httpStatus"] == 401
    assert result["after_logout"]["errcode"] == "M_UNKNOWN_TOKEN"
    assert result["other_session_after_logout"]["user_id"] == user_id
