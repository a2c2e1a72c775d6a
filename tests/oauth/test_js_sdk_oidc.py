"""Element Web's sign-in: matrix-js-sdk's own OIDC helpers (registerOidcClient,
generateOidcAuthorizationUrl, completeAuthorizationCodeGrant) run in Node
against the server; in between, a browser signs in and allows the client on
the server's pages."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

import pytest

from tests.interop.node_script import JS_DIR
from tests.web.browser import Browser

SCRIPT = JS_DIR / "oauth_flow.mjs"
TIMEOUT_S = 60


async def test_js_sdk_signs_in_with_its_oidc_helpers(oauth_hs: Any) -> None:
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "matrix-js-sdk").is_dir():
        pytest.fail("Node.js and matrix-js-sdk are needed: run `make test`, which installs them")
    user = await oauth_hs.register("alice", password="pw")
    proc = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        oauth_hs.url,
        cwd=JS_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin and proc.stdout and proc.stderr
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT_S)
        assert line, (await proc.stderr.read()).decode(errors="replace")[-5000:]
        url = json.loads(line)["authorization_url"]
        browser = Browser(oauth_hs.url)
        try:
            sign_in = await browser.get(url)
            consent = await browser.submit(sign_in, "sign_in", username="alice", password="pw")
            assert "Element Web wants to access your account" in consent.html
            back = await browser.submit(consent, "consent", button="allow", follow=False)
        finally:
            await browser.close()
        proc.stdin.write(back.location.encode() + b"\n")
        await proc.stdin.drain()
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")[-5000:]
    result = json.loads(out)
    assert result["issuer"] == oauth_hs.url + "/"
    assert result["homeserver_url"] == oauth_hs.url
    # js-sdk checked the ID token's issuer, audience, nonce and expiry
    # (validateIdToken) before handing back its claims.
    claims = result["id_token_claims"]
    assert claims["sub"] == user["user_id"]
    assert result["has_refresh_token"]
    assert result["whoami"]["user_id"] == user["user_id"]
    device_scope = next(s for s in result["scope"].split(" ") if ":device:" in s)
    assert result["whoami"]["device_id"] == device_scope.rsplit(":", 1)[1]
