"""Server-side key backup over the client API: versions, keys in and out,
the replacement rule, etags and counts, wrong and unknown versions."""

from __future__ import annotations

from typing import Any

V3 = "/_matrix/client/v3"
ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
ROOM = "!room:localhost"
OTHER_ROOM = "!other:localhost"


def session(
    index: int = 0, forwarded: int = 0, verified: bool = False, text: str = "x"
) -> dict[str, Any]:
    return {
        "first_message_index": index,
        "forwarded_count": forwarded,
        "is_verified": verified,
        "session_data": {"ciphertext": text, "ephemeral": "e", "mac": "m"},
    }


class Backup:
    def __init__(self, hs: Any, token: str) -> None:
        self.hs = hs
        self.token = token

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.hs.request(method, V3 + path, token=self.token, json=body)

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.call(method, path, body)
        assert status == 200, (method, path, answer)
        return answer

    async def create(self, auth_data: dict[str, Any] | None = None) -> str:
        answer = await self.ok(
            "POST",
            "/room_keys/version",
            {"algorithm": ALGORITHM, "auth_data": auth_data or {"public_key": "abc"}},
        )
        return str(answer["version"])


async def user(hs: Any, name: str) -> Backup:
    body = await hs.register(name)
    return Backup(hs, body["access_token"])


async def test_round_trip_with_etag_and_count(hs: Any) -> None:
    alice = await user(hs, "alice")
    status, error = await alice.call("GET", "/room_keys/version")
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")

    version = await alice.create({"public_key": "abc", "signatures": {}})
    info = await alice.ok("GET", "/room_keys/version")
    assert info == {
        "algorithm": ALGORITHM,
        "auth_data": {"public_key": "abc", "signatures": {}},
        "count": 0,
        "etag": info["etag"],
        "version": version,
    }
    assert await alice.ok("GET", f"/room_keys/version/{version}") == info

    put = await alice.ok(
        "PUT",
        f"/room_keys/keys?version={version}",
        {
            "rooms": {
                ROOM: {"sessions": {"s1": session(text="one"), "s2": session(text="two")}},
                OTHER_ROOM: {"sessions": {"s3": session(text="three")}},
            }
        },
    )
    assert put["count"] == 3 and put["etag"] != info["etag"]
    assert await alice.ok("GET", f"/room_keys/keys?version={version}") == {
        "rooms": {
            ROOM: {"sessions": {"s1": session(text="one"), "s2": session(text="two")}},
            OTHER_ROOM: {"sessions": {"s3": session(text="three")}},
        }
    }
    assert await alice.ok("GET", f"/room_keys/keys/{ROOM}?version={version}") == {
        "sessions": {"s1": session(text="one"), "s2": session(text="two")}
    }
    assert await alice.ok("GET", f"/room_keys/keys/{OTHER_ROOM}/s3?version={version}") == session(
        text="three"
    )
    info = await alice.ok("GET", "/room_keys/version")
    assert (info["count"], info["etag"]) == (3, put["etag"])

    # One room and one session at a time.
    room_put = await alice.ok(
        "PUT",
        f"/room_keys/keys/{OTHER_ROOM}?version={version}",
        {"sessions": {"s4": session(text="four")}},
    )
    assert room_put["count"] == 4 and room_put["etag"] != put["etag"]
    one_put = await alice.ok(
        "PUT", f"/room_keys/keys/{ROOM}/s5?version={version}", session(text="five")
    )
    assert one_put["count"] == 5

    deleted = await alice.ok("DELETE", f"/room_keys/keys/{ROOM}/s1?version={version}")
    assert deleted["count"] == 4 and deleted["etag"] != one_put["etag"]
    deleted = await alice.ok("DELETE", f"/room_keys/keys/{OTHER_ROOM}?version={version}")
    assert deleted["count"] == 2
    status, error = await alice.call("GET", f"/room_keys/keys/{ROOM}/s1?version={version}")
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")
    assert await alice.ok("GET", f"/room_keys/keys/{OTHER_ROOM}?version={version}") == {
        "sessions": {}
    }
    deleted = await alice.ok("DELETE", f"/room_keys/keys?version={version}")
    assert deleted["count"] == 0
    assert await alice.ok("GET", f"/room_keys/keys?version={version}") == {"rooms": {}}

    # Another user sees none of it.
    bob = await user(hs, "bob")
    status, _ = await bob.call("GET", f"/room_keys/keys?version={version}")
    assert status == 404


async def test_a_stored_key_is_replaced_only_by_a_better_one(hs: Any) -> None:
    alice = await user(hs, "alice")
    version = await alice.create()
    path = f"/room_keys/keys/{ROOM}/s?version={version}"

    async def stored() -> str:
        return str((await alice.ok("GET", path))["session_data"]["ciphertext"])

    first = await alice.ok("PUT", path, session(index=5, forwarded=2, text="start"))
    same_etag = await alice.ok("PUT", path, session(index=6, forwarded=0, text="later index"))
    assert await stored() == "start" and same_etag["etag"] == first["etag"]
    await alice.ok("PUT", path, session(index=5, forwarded=3, text="more forwards"))
    assert await stored() == "start"
    await alice.ok("PUT", path, session(index=5, forwarded=1, text="fewer forwards"))
    assert await stored() == "fewer forwards"
    await alice.ok("PUT", path, session(index=2, forwarded=9, text="lower index"))
    assert await stored() == "lower index"
    await alice.ok("PUT", path, session(index=9, forwarded=9, verified=True, text="verified"))
    assert await stored() == "verified"
    await alice.ok("PUT", path, session(index=0, forwarded=0, verified=False, text="unverified"))
    assert await stored() == "verified"
    await alice.ok("PUT", path, session(index=8, forwarded=9, verified=True, text="v lower"))
    assert await stored() == "v lower"


async def test_versions_wrong_and_unknown(hs: Any) -> None:
    alice = await user(hs, "alice")
    status, error = await alice.call("PUT", f"/room_keys/keys/{ROOM}/s?version=1", session())
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")
    old = await alice.create()
    await alice.ok("PUT", f"/room_keys/keys/{ROOM}/s?version={old}", session())
    new = await alice.create({"public_key": "new"})
    assert int(new) > int(old)
    status, error = await alice.call("PUT", f"/room_keys/keys/{ROOM}/s?version={old}", session())
    assert status == 403
    assert error["errcode"] == "M_WRONG_ROOM_KEYS_VERSION"
    assert error["current_version"] == new
    # The old version's keys can still be read.
    assert await alice.ok("GET", f"/room_keys/keys/{ROOM}/s?version={old}") == session()

    for bad in ("999", "abc"):
        status, error = await alice.call("GET", f"/room_keys/version/{bad}")
        assert (status, error["errcode"]) == (404, "M_NOT_FOUND")
        status, error = await alice.call("GET", f"/room_keys/keys?version={bad}")
        assert (status, error["errcode"]) == (404, "M_NOT_FOUND")
    status, error = await alice.call("GET", "/room_keys/keys")
    assert (status, error["errcode"]) == (400, "M_MISSING_PARAM")

    # Updating auth_data; the algorithm cannot change.
    await alice.ok(
        "PUT",
        f"/room_keys/version/{new}",
        {"algorithm": ALGORITHM, "auth_data": {"public_key": "newer"}, "version": new},
    )
    assert (await alice.ok("GET", "/room_keys/version"))["auth_data"] == {"public_key": "newer"}
    status, error = await alice.call(
        "PUT", f"/room_keys/version/{new}", {"algorithm": "other", "auth_data": {}}
    )
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")

    # Deleting the newest makes the older one current again; numbers are never reused.
    await alice.ok("DELETE", f"/room_keys/version/{new}")
    assert (await alice.ok("GET", "/room_keys/version"))["version"] == old
    status, error = await alice.call("DELETE", f"/room_keys/version/{new}")
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")
    newest = await alice.create()
    assert int(newest) > int(new)


async def test_bad_key_data_is_refused_and_changes_nothing(hs: Any) -> None:
    alice = await user(hs, "alice")
    version = await alice.create()
    for body in (
        {"rooms": {ROOM: {"sessions": {"s": {**session(), "first_message_index": -1}}}}},
        {"rooms": {ROOM: {"sessions": {"s": {**session(), "is_verified": "yes"}}}}},
        {"rooms": {ROOM: {"sessions": {"ok": session(), "s": {**session(), "session_data": 1}}}}},
        {"rooms": {ROOM: []}},
        {"rooms": "none"},
    ):
        status, error = await alice.call("PUT", f"/room_keys/keys?version={version}", body)
        assert (status, error["errcode"]) == (400, "M_BAD_JSON"), body
    assert await alice.ok("GET", f"/room_keys/keys?version={version}") == {"rooms": {}}
    for body, errcode in (
        ({"algorithm": ALGORITHM}, "M_MISSING_PARAM"),
        ({"auth_data": {}}, "M_MISSING_PARAM"),
        # The spec's auth_data is an object; SyTest's opaque string is not.
        ({"algorithm": ALGORITHM, "auth_data": "anopaquestring"}, "M_BAD_JSON"),
        ({"algorithm": 1, "auth_data": {}}, "M_BAD_JSON"),
    ):
        status, error = await alice.call("POST", "/room_keys/version", body)
        assert (status, error["errcode"]) == (400, errcode), body
    assert (await alice.ok("GET", "/room_keys/version"))["version"] == version
