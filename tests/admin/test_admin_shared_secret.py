"""Shared-secret registration: a hand-computed HMAC, single-use nonces, and
Synapse's own register_new_matrix_user script against this server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.admin.conftest import ADMIN, SHARED_SECRET, V3, login
from tests.interop.synapse import ensure_synapse_venv


@pytest.fixture(scope="session")
def register_new_matrix_user() -> Path:
    """Synapse's registration script from the pip package matrix-synapse.

    Synapse is installed into .venv-synapse (the Makefile's pins, shared with
    `make bench` and the interop harness) if it is not there yet. The script
    also needs `requests`, which matrix-synapse does not depend on.
    """
    python = ensure_synapse_venv()
    script = python.parent / "register_new_matrix_user"
    if subprocess.run([str(python), "-c", "import requests"], capture_output=True).returncode:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "requests>=2.31,<3"], check=True
        )
    assert script.exists()
    return script


def mac_by_hand(nonce: str, user: str, password: str, admin: bool) -> str:
    message = b"\x00".join(
        [nonce.encode(), user.encode(), password.encode(), b"admin" if admin else b"notadmin"]
    )
    return hmac.new(SHARED_SECRET.encode(), message, hashlib.sha1).hexdigest()


async def nonce(hs: Any) -> str:
    status, body = await hs.request("GET", f"{ADMIN}/v1/register")
    assert status == 200
    return body["nonce"]


async def test_register_with_hand_computed_hmac(admin_hs):
    hs = admin_hs
    n = await nonce(hs)
    body = {
        "nonce": n,
        "username": "boss",
        "password": "pw-boss",
        "admin": True,
        "mac": mac_by_hand(n, "boss", "pw-boss", True),
    }
    status, result = await hs.request("POST", f"{ADMIN}/v1/register", json=body)
    assert status == 200, result
    assert result["user_id"] == "@boss:localhost"
    status, who = await hs.request("GET", f"{V3}/account/whoami", token=result["access_token"])
    assert who["user_id"] == "@boss:localhost"
    # The new account is an admin: the admin API answers it.
    status, _ = await hs.request("GET", f"{ADMIN}/v1/server_version", token=result["access_token"])
    assert status == 200

    # The nonce was used up.
    status, error = await hs.request("POST", f"{ADMIN}/v1/register", json=body)
    assert status == 400


async def test_wrong_hmac_is_refused_and_creates_nothing(admin_hs):
    hs = admin_hs
    n = await nonce(hs)
    status, error = await hs.request(
        "POST",
        f"{ADMIN}/v1/register",
        json={
            "nonce": n,
            "username": "mallory",
            "password": "pw",
            "admin": True,
            "mac": mac_by_hand(n, "mallory", "pw", False),
        },
    )
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
    assert (await login(hs, "mallory", "pw"))[0] == 403
    assert await hs.pool.fetchval("SELECT count(*) FROM users WHERE user_id LIKE '@mallory%'") == 0


async def test_disabled_without_secret(hs):
    status, body = await hs.request("GET", f"{ADMIN}/v1/register")
    assert status == 400


async def test_synapse_register_new_matrix_user(admin_hs, register_new_matrix_user):
    hs = admin_hs
    process = await asyncio.create_subprocess_exec(
        str(register_new_matrix_user),
        "-u",
        "synapse_made",
        "-p",
        "pw-synapse",
        "-a",
        "-k",
        SHARED_SECRET,
        hs.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, (out, err)
    status, session = await login(hs, "synapse_made", "pw-synapse")
    assert status == 200, session
    status, details = await hs.request(
        "GET", f"{ADMIN}/v2/users/@synapse_made:localhost", token=session["access_token"]
    )
    assert status == 200 and details["admin"] is True
