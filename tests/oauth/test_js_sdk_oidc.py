"""Element Web's sign-in: matrix-js-sdk's own OIDC helpers (registerOidcClient,
generateOidcAuthorizationUrl, completeAuthorizationCodeGrant) run in Node
against the server; the browser's sign-in and consent step in between is
`OAuthGrants.approve`, what the consent page calls."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

import httpx2 as httpx
import pytest

from tests.interop.node_script import JS_DIR

SCRIPT = JS_DIR / "oauth_flow.mjs"
TIMEOUT_S = 60


async def test_js_sdk_signs_in_with_its_oidc_helpers(oauth_hs: Any, web: httpx.AsyncClient) -> None:
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "matrix-js-sdk").is_dir():
        pytest.fail("Node.js and matrix-js-sdk are needed: run `make test`, which installs them")
    user = await oauth_hs.register("alice")
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
        response = await web.get(url)
        assert response.status_code == 302, response.text
        authorization_id = response.headers["Location"].rsplit("/", 1)[1]
        pending = await oauth_hs.server.oauth_grants.pending(authorization_id)
        assert pending.client.name == "Element Web"
        redirect = await oauth_hs.server.oauth_grants.approve(authorization_id, user["user_id"])
        proc.stdin.write(redirect.encode() + b"\n")
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
