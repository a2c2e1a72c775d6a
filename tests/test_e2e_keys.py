"""End-to-end encryption keys over the client API: upload, query, claim,
key counts in /sync, cross-signing and signatures, device list changes.

Keys are made and signed here with signedjson, as a client would, so that
every check can verify what the server hands back.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from signedjson.key import generate_signing_key, get_verify_key
from signedjson.sign import sign_json, verify_signed_json
from signedjson.types import SigningKey
from unpaddedbase64 import encode_base64

from homeserver.e2e.changes import DeviceKeysChanged, KeyChange, SigningKeysChanged
from homeserver.e2e.keys import KeyService
from homeserver.requester import Requester
from storage.device_lists import DeviceListStore
from storage.e2e_keys import E2eKeyStore

V3 = "/_matrix/client/v3"
MEGOLM = "m.megolm.v1.aes-sha2"
OLM = "m.olm.v1.curve25519-aes-sha2"


def public(key: SigningKey) -> str:
    return encode_base64(get_verify_key(key).encode())


@attrs.define
class Device:
    """A logged-in device of a registered user, with its own signing key."""

    hs: Any
    user_id: str
    device_id: str
    token: str
    key: SigningKey

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.hs.request(method, V3 + path, token=self.token, json=body)

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.call(method, path, body)
        assert status == 200, (path, answer)
        return answer

    def device_keys(self, **changes: Any) -> dict[str, Any]:
        """The device's keys, signed by the device's ed25519 key."""
        keys = {
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithms": [OLM, MEGOLM],
            "keys": {
                f"curve25519:{self.device_id}": encode_base64(b"c" * 32),
                f"ed25519:{self.device_id}": public(self.key),
            },
            **changes,
        }
        return sign_json(keys, self.user_id, self.key)

    def one_time_key(self, key: str, **extra: Any) -> dict[str, Any]:
        return sign_json({"key": key, **extra}, self.user_id, self.key)

    def one_time_keys(self, prefix: str, count: int) -> dict[str, Any]:
        return {
            f"signed_curve25519:{prefix}{i}": self.one_time_key(f"{prefix}-key-{i}")
            for i in range(count)
        }

    async def sync(self, since: str | None = None) -> dict[str, Any]:
        path = "/sync?timeout=0" + (f"&since={since}" if since else "")
        return await self.ok("GET", path)

    async def query(self, *user_ids: str) -> dict[str, Any]:
        return await self.ok("POST", "/keys/query", {"device_keys": {u: [] for u in user_ids}})

    async def claim(self, owner: Device, algorithm: str = "signed_curve25519") -> dict[str, Any]:
        answer = await self.ok(
            "POST",
            "/keys/claim",
            {"one_time_keys": {owner.user_id: {owner.device_id: algorithm}}},
        )
        assert answer["failures"] == {}
        return answer["one_time_keys"].get(owner.user_id, {}).get(owner.device_id, {})


@pytest.fixture
async def device(hs: Any) -> AsyncIterator[Any]:
    """device(name): registers the user and returns their first device."""

    async def make(name: str) -> Device:
        body = await hs.register(name, initial_device_display_name=f"{name}'s laptop")
        return Device(
            hs,
            body["user_id"],
            body["device_id"],
            body["access_token"],
            generate_signing_key(body["device_id"]),
        )

    yield make


async def shared_room(a: Device, b: Device) -> str:
    room = await a.ok("POST", "/createRoom", {"invite": [b.user_id]})
    await b.ok("POST", f"/join/{room['room_id']}", {})
    return str(room["room_id"])


async def test_uploaded_device_keys_are_queried_with_display_name_and_valid_signature(
    device: Any,
) -> None:
    alice, bob = await device("alice"), await device("bob")
    keys = alice.device_keys()
    answer = await alice.ok(
        "POST",
        "/keys/upload",
        {"device_keys": keys, "one_time_keys": alice.one_time_keys("a", 3)},
    )
    assert answer == {"one_time_key_counts": {"signed_curve25519": 3}}

    got = await bob.query(alice.user_id, "@nobody:localhost")
    assert got["failures"] == {}
    assert got["device_keys"]["@nobody:localhost"] == {}
    served = got["device_keys"][alice.user_id][alice.device_id]
    assert served["unsigned"] == {"device_display_name": "alice's laptop"}
    assert {k: v for k, v in served.items() if k != "unsigned"} == keys
    verify_signed_json(served, alice.user_id, get_verify_key(alice.key))

    by_id = await bob.ok(
        "POST", "/keys/query", {"device_keys": {alice.user_id: [alice.device_id, "NOPE"]}}
    )
    assert list(by_id["device_keys"][alice.user_id]) == [alice.device_id]

    # The identical upload again is fine, and so is one with another signature
    # added (as clients do once cross-signing is set up); other identity keys
    # are refused.
    await alice.ok("POST", "/keys/upload", {"device_keys": keys})
    other_signer = generate_signing_key("other")
    resigned = sign_json(copy.deepcopy(keys), alice.user_id, other_signer)
    await alice.ok("POST", "/keys/upload", {"device_keys": resigned})
    served = (await bob.query(alice.user_id))["device_keys"][alice.user_id][alice.device_id]
    verify_signed_json(served, alice.user_id, get_verify_key(other_signer))
    new_identity = alice.device_keys(
        keys={**keys["keys"], f"curve25519:{alice.device_id}": encode_base64(b"n" * 32)}
    )
    status, error = await alice.call("POST", "/keys/upload", {"device_keys": new_identity})
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")
    served = (await bob.query(alice.user_id))["device_keys"][alice.user_id][alice.device_id]
    assert served["keys"] == keys["keys"]


@pytest.mark.parametrize(
    ("case", "errcode"),
    [
        ("bad signature", "M_INVALID_PARAM"),
        ("other device", "M_INVALID_PARAM"),
        ("other user", "M_INVALID_PARAM"),
        # Missing required fields: malformed JSON, as SyTest expects.
        ("unsigned", "M_BAD_JSON"),
        ("no ed25519 key", "M_BAD_JSON"),
        ("no algorithms or keys", "M_BAD_JSON"),
    ],
)
async def test_bad_device_keys_are_refused_and_nothing_is_stored(
    device: Any, case: str, errcode: str
) -> None:
    alice, bob = await device("alice"), await device("bob")
    if case == "bad signature":
        keys = alice.device_keys()
        keys["algorithms"] = [MEGOLM]
    elif case == "other device":
        keys = sign_json(
            {**alice.device_keys(), "device_id": "OTHER", "signatures": {}},
            alice.user_id,
            alice.key,
        )
    elif case == "other user":
        keys = {**bob.device_keys(), "device_id": alice.device_id}
    elif case == "unsigned":
        keys = {k: v for k, v in alice.device_keys().items() if k != "signatures"}
    elif case == "no algorithms or keys":
        keys = {"user_id": alice.user_id, "device_id": alice.device_id}
    else:
        keys = alice.device_keys()
        keys["keys"] = {f"curve25519:{alice.device_id}": "abc"}
    status, error = await alice.call(
        "POST",
        "/keys/upload",
        {"device_keys": keys, "one_time_keys": alice.one_time_keys("x", 2)},
    )
    assert (status, error["errcode"]) == (400, errcode), error
    got = await bob.query(alice.user_id)
    assert got["device_keys"] == {alice.user_id: {}}
    assert await bob.claim(alice) == {}


@pytest.mark.parametrize(
    "one_time_keys",
    [
        {"signed_curve25519": "AAAA"},
        {"signed_curve25519:a:b": {"key": "k", "signatures": {}}},
        {":AAAA": {"key": "k", "signatures": {}}},
        {"signed_curve25519:": {"key": "k", "signatures": {}}},
        {"signed_curve25519:AAAA": "unsigned-string"},
        {"signed_curve25519:AAAA": {"signatures": {}}},
        {"signed_curve25519:AAAA": {"key": "k"}},
        ["signed_curve25519:AAAA"],
    ],
)
async def test_malformed_one_time_keys_are_refused(device: Any, one_time_keys: Any) -> None:
    alice = await device("alice")
    good = alice.one_time_keys("good", 2)
    status, error = await alice.call(
        "POST",
        "/keys/upload",
        {"device_keys": alice.device_keys(), "one_time_keys": one_time_keys, "fallback_keys": {}},
    )
    assert status == 400 and error["errcode"] in ("M_INVALID_PARAM", "M_BAD_JSON"), error
    # Nothing of the request was stored, device keys included.
    answer = await alice.ok("POST", "/keys/upload", {"one_time_keys": good})
    assert answer["one_time_key_counts"] == {"signed_curve25519": 2}
    assert (await alice.query(alice.user_id))["device_keys"][alice.user_id] == {}


async def test_a_one_time_key_id_cannot_be_reused_with_other_content(device: Any) -> None:
    alice, bob = await device("alice"), await device("bob")
    first = {"signed_curve25519:K1": alice.one_time_key("first")}
    await alice.ok("POST", "/keys/upload", {"one_time_keys": first})
    await alice.ok("POST", "/keys/upload", {"one_time_keys": first})
    status, error = await alice.call(
        "POST",
        "/keys/upload",
        {
            "one_time_keys": {
                "signed_curve25519:K2": alice.one_time_key("second"),
                "signed_curve25519:K1": alice.one_time_key("changed"),
            }
        },
    )
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")
    assert await bob.claim(alice) == first
    assert await bob.claim(alice) == {}


async def test_sync_counts_keys_exactly_and_claims_hand_each_key_out_once(device: Any) -> None:
    alice, bob = await device("alice"), await device("bob")
    first = await alice.sync()
    assert first["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert first["device_unused_fallback_key_types"] == []

    await alice.ok(
        "POST",
        "/keys/upload",
        {
            "device_keys": alice.device_keys(),
            "one_time_keys": {
                **alice.one_time_keys("a", 4),
                "curve25519:plain": "unsigned-key",
            },
            "fallback_keys": {
                "signed_curve25519:fb": alice.one_time_key("fallback", fallback=True)
            },
        },
    )
    synced = await alice.sync(first["next_batch"])
    assert synced["device_one_time_keys_count"] == {"signed_curve25519": 4, "curve25519": 1}
    assert synced["device_unused_fallback_key_types"] == ["signed_curve25519"]

    claimed = await bob.claim(alice)
    assert list(claimed) == ["signed_curve25519:a0"]
    verify_signed_json(claimed["signed_curve25519:a0"], alice.user_id, get_verify_key(alice.key))
    synced = await alice.sync(synced["next_batch"])
    assert synced["device_one_time_keys_count"] == {"signed_curve25519": 3, "curve25519": 1}

    # Concurrent claims: the three keys left, then the fallback key, never a key twice.
    results = await asyncio.gather(*(bob.claim(alice) for _ in range(6)))
    one_time = [k for r in results for k in r if k != "signed_curve25519:fb"]
    assert sorted(one_time) == [
        "signed_curve25519:a1",
        "signed_curve25519:a2",
        "signed_curve25519:a3",
    ]
    assert sum("signed_curve25519:fb" in r for r in results) == 3
    assert all(len(r) == 1 for r in results)

    synced = await alice.sync(synced["next_batch"])
    assert synced["device_one_time_keys_count"] == {"signed_curve25519": 0, "curve25519": 1}
    assert synced["device_unused_fallback_key_types"] == []
    # The used fallback key is still handed out while nothing replaces it.
    fallback = await bob.claim(alice)
    assert fallback["signed_curve25519:fb"]["fallback"] is True
    assert await bob.claim(alice, "curve25519") == {"curve25519:plain": "unsigned-key"}

    # Re-uploading the same fallback key keeps it used; a new one is unused.
    same = {"signed_curve25519:fb": fallback["signed_curve25519:fb"]}
    await alice.ok("POST", "/keys/upload", {"fallback_keys": same})
    assert (await alice.sync())["device_unused_fallback_key_types"] == []
    new = {"signed_curve25519:fb2": alice.one_time_key("fallback 2", fallback=True)}
    answer = await alice.ok("POST", "/keys/upload", {"fallback_keys": new})
    assert answer["one_time_key_counts"] == {"signed_curve25519": 0}
    assert (await alice.sync())["device_unused_fallback_key_types"] == ["signed_curve25519"]
    assert list(await bob.claim(alice)) == ["signed_curve25519:fb2"]


async def test_remote_users_are_reported_as_failures(device: Any) -> None:
    alice = await device("alice")
    got = await alice.ok("POST", "/keys/query", {"device_keys": {"@bob:remote.example": []}})
    assert list(got["failures"]) == ["remote.example"]
    claimed = await alice.ok(
        "POST",
        "/keys/claim",
        {"one_time_keys": {"@bob:remote.example": {"DEV": "signed_curve25519"}}},
    )
    assert claimed == {
        "one_time_keys": {},
        "failures": {"remote.example": claimed["failures"]["remote.example"]},
    }


def cross_signing_keys(user_id: str) -> tuple[dict[str, SigningKey], dict[str, Any]]:
    """A new set of master, self-signing and user-signing keys, as uploaded."""
    secrets = {t: generate_signing_key("") for t in ("master", "self_signing", "user_signing")}
    for key in secrets.values():
        key.version = public(key)
    body: dict[str, Any] = {}
    for t, key in secrets.items():
        obj = {"user_id": user_id, "usage": [t], "keys": {f"ed25519:{public(key)}": public(key)}}
        if t != "master":
            obj = sign_json(obj, user_id, secrets["master"])
        body[f"{t}_key"] = obj
    return secrets, body


async def upload_cross_signing(dev: Device) -> dict[str, SigningKey]:
    secrets, body = cross_signing_keys(dev.user_id)
    await dev.ok("POST", "/keys/device_signing/upload", body)
    return secrets


async def test_cross_signing_keys_and_signatures_are_shared(device: Any) -> None:
    alice, bob = await device("alice"), await device("bob")
    await alice.ok("POST", "/keys/upload", {"device_keys": alice.device_keys()})
    await bob.ok("POST", "/keys/upload", {"device_keys": bob.device_keys()})
    # The first upload needs no password (there is no master key yet).
    alice_secrets = await upload_cross_signing(alice)
    bob_secrets = await upload_cross_signing(bob)

    # Alice's self-signing key signs her device; bob's user-signing key signs her master key.
    alice_device = (await alice.query(alice.user_id))["device_keys"][alice.user_id][alice.device_id]
    alice_device.pop("unsigned")
    signed_device = sign_json(
        copy.deepcopy(alice_device), alice.user_id, alice_secrets["self_signing"]
    )
    answer = await alice.ok(
        "POST", "/keys/signatures/upload", {alice.user_id: {alice.device_id: signed_device}}
    )
    assert answer == {"failures": {}}

    seen_by_bob = await bob.query(alice.user_id)
    alice_master = seen_by_bob["master_keys"][alice.user_id]
    master_public = public(alice_secrets["master"])
    assert alice_master["keys"] == {f"ed25519:{master_public}": master_public}
    ssk = seen_by_bob["self_signing_keys"][alice.user_id]
    verify_signed_json(ssk, alice.user_id, get_verify_key(alice_secrets["master"]))
    assert alice.user_id not in seen_by_bob["user_signing_keys"]
    device_keys = seen_by_bob["device_keys"][alice.user_id][alice.device_id]
    verify_signed_json(device_keys, alice.user_id, get_verify_key(alice_secrets["self_signing"]))
    verify_signed_json(device_keys, alice.user_id, get_verify_key(alice.key))

    signed_master = sign_json(copy.deepcopy(alice_master), bob.user_id, bob_secrets["user_signing"])
    answer = await bob.ok(
        "POST", "/keys/signatures/upload", {alice.user_id: {master_public: signed_master}}
    )
    assert answer == {"failures": {}}
    seen_by_bob = await bob.query(alice.user_id, bob.user_id)
    verify_signed_json(
        seen_by_bob["master_keys"][alice.user_id],
        bob.user_id,
        get_verify_key(bob_secrets["user_signing"]),
    )
    assert bob.user_id in seen_by_bob["user_signing_keys"]
    # Alice sees her own user-signing key and her keys, but not bob's signature.
    seen_by_alice = await alice.query(alice.user_id)
    assert alice.user_id in seen_by_alice["user_signing_keys"]
    assert bob.user_id not in seen_by_alice["master_keys"][alice.user_id].get("signatures", {})

    # A device signs its own master key.
    own_master = sign_json(
        {k: v for k, v in seen_by_alice["master_keys"][alice.user_id].items()},
        alice.user_id,
        alice.key,
    )
    answer = await alice.ok(
        "POST", "/keys/signatures/upload", {alice.user_id: {master_public: own_master}}
    )
    assert answer == {"failures": {}}
    master = (await bob.query(alice.user_id))["master_keys"][alice.user_id]
    verify_signed_json(master, alice.user_id, get_verify_key(alice.key))


async def test_bad_signatures_are_reported_and_not_stored(device: Any) -> None:
    alice, bob = await device("alice"), await device("bob")
    await alice.ok("POST", "/keys/upload", {"device_keys": alice.device_keys()})
    alice_secrets = await upload_cross_signing(alice)
    await upload_cross_signing(bob)
    stored = (await alice.query(alice.user_id))["device_keys"][alice.user_id][alice.device_id]
    stored.pop("unsigned")
    wrong_key = generate_signing_key(public(alice_secrets["self_signing"]))
    forged = sign_json(copy.deepcopy(stored), alice.user_id, wrong_key)
    master_public = public(alice_secrets["master"])
    alice_master = (await bob.query(alice.user_id))["master_keys"][alice.user_id]
    answer = await alice.ok(
        "POST",
        "/keys/signatures/upload",
        {alice.user_id: {alice.device_id: forged, "NODEVICE": forged}},
    )
    failures = answer["failures"][alice.user_id]
    assert failures[alice.device_id]["errcode"] == "M_INVALID_SIGNATURE"
    assert failures["NODEVICE"]["errcode"] == "M_NOT_FOUND"
    # Bob signing alice's master key with something other than his user-signing key.
    answer = await bob.ok(
        "POST",
        "/keys/signatures/upload",
        {
            alice.user_id: {
                master_public: sign_json(copy.deepcopy(alice_master), bob.user_id, bob.key)
            }
        },
    )
    assert answer["failures"][alice.user_id][master_public]["errcode"] == "M_INVALID_SIGNATURE"
    served = (await alice.query(alice.user_id))["device_keys"][alice.user_id][alice.device_id]
    assert list(served["signatures"][alice.user_id]) == [f"ed25519:{alice.device_id}"]
    served_master = (await bob.query(alice.user_id))["master_keys"][alice.user_id]
    assert bob.user_id not in served_master.get("signatures", {})


async def test_cross_signing_upload_rules(device: Any) -> None:
    alice = await device("alice")
    _, body = cross_signing_keys(alice.user_id)
    # Self-signing key not signed by the master key.
    bad = copy.deepcopy(body)
    bad["self_signing_key"]["signatures"] = {}
    status, error = await alice.call("POST", "/keys/device_signing/upload", bad)
    assert (status, error["errcode"]) == (400, "M_INVALID_SIGNATURE")
    status, error = await alice.call(
        "POST", "/keys/device_signing/upload", {"self_signing_key": body["self_signing_key"]}
    )
    assert (status, error["errcode"]) == (400, "M_MISSING_PARAM")
    for key_type, change in (("master", {"user_id": "@bob:localhost"}), ("master", {"usage": []})):
        status, error = await alice.call(
            "POST",
            "/keys/device_signing/upload",
            {**body, f"{key_type}_key": {**body[f"{key_type}_key"], **change}},
        )
        assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")
    assert (await alice.query(alice.user_id))["master_keys"] == {}

    await alice.ok("POST", "/keys/device_signing/upload", body)
    # The same keys again need no password; new ones do.
    await alice.ok("POST", "/keys/device_signing/upload", body)
    _, replacement = cross_signing_keys(alice.user_id)
    status, challenge = await alice.call("POST", "/keys/device_signing/upload", replacement)
    assert status == 401 and challenge["flows"] == [{"stages": ["m.login.password"]}]
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": alice.user_id},
        "password": "secret",
        "session": challenge["session"],
    }
    await alice.ok("POST", "/keys/device_signing/upload", {**replacement, "auth": auth})
    got = await alice.query(alice.user_id)
    assert got["master_keys"][alice.user_id] == replacement["master_key"]
    assert got["user_signing_keys"][alice.user_id] == replacement["user_signing_key"]


async def test_key_changes_reach_users_sharing_a_room(device: Any) -> None:
    alice, bob, carol = await device("alice"), await device("bob"), await device("carol")
    room_id = await shared_room(alice, bob)
    start = (await bob.sync())["next_batch"]
    carol_start = (await carol.sync())["next_batch"]

    await alice.ok("POST", "/keys/upload", {"device_keys": alice.device_keys()})
    synced = await bob.sync(start)
    assert alice.user_id in synced["device_lists"]["changed"]
    assert alice.user_id not in (await carol.sync(carol_start))["device_lists"]["changed"]
    after_upload = synced["next_batch"]

    await upload_cross_signing(alice)
    synced = await bob.sync(after_upload)
    assert alice.user_id in synced["device_lists"]["changed"]
    after_signing = synced["next_batch"]
    changes = await bob.ok("GET", f"/keys/changes?from={start}&to={after_signing}")
    assert alice.user_id in changes["changed"] and changes["left"] == []
    nothing = await bob.ok("GET", f"/keys/changes?from={after_signing}&to={after_signing}")
    assert nothing == {"changed": [], "left": []}

    # A new device of alice's, then its deletion, then alice leaving.
    second = await alice.hs.request(
        "POST",
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "secret",
        },
    )
    assert second[0] == 200
    synced = await bob.sync(after_signing)
    assert alice.user_id in synced["device_lists"]["changed"]
    after_login = synced["next_batch"]
    status, challenge = await alice.call("DELETE", f"/devices/{second[1]['device_id']}", {})
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": alice.user_id},
        "password": "secret",
        "session": challenge["session"],
    }
    await alice.ok("DELETE", f"/devices/{second[1]['device_id']}", {"auth": auth})
    synced = await bob.sync(after_login)
    assert alice.user_id in synced["device_lists"]["changed"]
    after_delete = synced["next_batch"]

    await alice.ok("POST", f"/rooms/{room_id}/leave", {})
    synced = await bob.sync(after_delete)
    assert synced["device_lists"]["left"] == [alice.user_id]
    changes = await bob.ok("GET", f"/keys/changes?from={after_delete}&to={synced['next_batch']}")
    assert changes == {"changed": [], "left": [alice.user_id]}

    status, error = await bob.call("GET", f"/keys/changes?from={start}")
    assert (status, error["errcode"]) == (400, "M_MISSING_PARAM")
    status, error = await bob.call("GET", f"/keys/changes?from=nonsense&to={start}")
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")


async def test_private_key_changes_reach_only_the_user_who_may_see_them(device: Any) -> None:
    alice, bob = await device("alice"), await device("bob")
    await shared_room(alice, bob)
    secrets, body = cross_signing_keys(alice.user_id)
    del body["user_signing_key"]
    await alice.ok("POST", "/keys/device_signing/upload", body)
    bob_secrets = await upload_cross_signing(bob)
    alice_since = (await alice.sync())["next_batch"]
    bob_since = (await bob.sync())["next_batch"]

    # A new user-signing key: alice's clients refetch, bob is not told.
    user_signing = generate_signing_key("")
    user_signing.version = public(user_signing)
    key = {
        "user_id": alice.user_id,
        "usage": ["user_signing"],
        "keys": {f"ed25519:{public(user_signing)}": public(user_signing)},
    }
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": alice.user_id},
        "password": "secret",
    }
    await alice.ok(
        "POST",
        "/keys/device_signing/upload",
        {"user_signing_key": sign_json(key, alice.user_id, secrets["master"]), "auth": auth},
    )
    assert alice.user_id in (await alice.sync(alice_since))["device_lists"]["changed"]
    assert alice.user_id not in (await bob.sync(bob_since))["device_lists"]["changed"]

    # Bob signs alice's master key: only bob is told of alice.
    alice_since = (await alice.sync())["next_batch"]
    bob_since = (await bob.sync())["next_batch"]
    master = (await bob.query(alice.user_id))["master_keys"][alice.user_id]
    signed = sign_json(copy.deepcopy(master), bob.user_id, bob_secrets["user_signing"])
    master_public = public(secrets["master"])
    answer = await bob.ok(
        "POST", "/keys/signatures/upload", {alice.user_id: {master_public: signed}}
    )
    assert answer == {"failures": {}}
    assert alice.user_id in (await bob.sync(bob_since))["device_lists"]["changed"]
    assert alice.user_id not in (await alice.sync(alice_since))["device_lists"]["changed"]


async def test_key_changes_are_announced_to_listeners(device: Any, hs: Any) -> None:
    heard: list[KeyChange] = []

    async def listener(change: KeyChange) -> None:
        heard.append(change)

    hs.server.key_changes.add_listener(listener)
    alice = await device("alice")
    await alice.ok("POST", "/keys/upload", {"device_keys": alice.device_keys()})
    await alice.ok("POST", "/keys/upload", {"device_keys": alice.device_keys()})
    _, body = cross_signing_keys(alice.user_id)
    await alice.ok("POST", "/keys/device_signing/upload", body)
    await alice.ok("POST", "/keys/device_signing/upload", body)
    # The new device (at registration), its keys and the cross-signing keys
    # (once each: a repeat changes nothing).
    assert heard == [
        DeviceKeysChanged(alice.user_id, (alice.device_id,)),
        DeviceKeysChanged(alice.user_id, (alice.device_id,)),
        SigningKeysChanged(alice.user_id),
    ]


class FakeRemote:
    """Another server's answers, as the federation client will hand them over."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []

    async def query(
        self, server: str, device_keys: dict[str, list[str]], timeout_ms: int
    ) -> dict[str, Any]:
        self.asked.append((server, device_keys))
        if server == "down.example":
            raise OSError("connection refused")
        if server == "slow.example":
            await asyncio.sleep(5)
        return {
            "device_keys": {
                "@carol:remote.example": {"DEV": {"device_id": "DEV"}},
                "@stranger:remote.example": {"X": {}},
            },
            "master_keys": {"@carol:remote.example": {"usage": ["master"]}},
            "self_signing_keys": {},
        }

    async def claim(
        self, server: str, one_time_keys: dict[str, dict[str, str]], timeout_ms: int
    ) -> dict[str, Any]:
        self.asked.append((server, one_time_keys))
        return {"one_time_keys": {"@carol:remote.example": {"DEV": {"signed_curve25519:A": {}}}}}


async def test_remote_users_go_through_the_remote_keys_interface(hs: Any, device: Any) -> None:
    alice = await device("alice")
    remote = FakeRemote()
    keys = KeyService(
        E2eKeyStore(hs.pool),
        DeviceListStore(hs.pool),
        hs.server.key_changes,
        server_name="localhost",
        remote=remote,
    )
    requester = Requester(alice.user_id, alice.device_id, 0)
    got = await keys.query(
        requester,
        {
            "device_keys": {
                "@carol:remote.example": [],
                "@dave:down.example": [],
                "@erin:slow.example": [],
            },
            "timeout": 200,
        },
    )
    # Each server once, with its own users only; what it says of others is dropped.
    assert sorted(remote.asked) == [
        ("down.example", {"@dave:down.example": []}),
        ("remote.example", {"@carol:remote.example": []}),
        ("slow.example", {"@erin:slow.example": []}),
    ]
    assert got["device_keys"] == {"@carol:remote.example": {"DEV": {"device_id": "DEV"}}}
    assert got["master_keys"] == {"@carol:remote.example": {"usage": ["master"]}}
    assert sorted(got["failures"]) == ["down.example", "slow.example"]

    claimed = await keys.claim(
        requester, {"one_time_keys": {"@carol:remote.example": {"DEV": "signed_curve25519"}}}
    )
    assert claimed == {
        "one_time_keys": {"@carol:remote.example": {"DEV": {"signed_curve25519:A": {}}}},
        "failures": {},
    }
