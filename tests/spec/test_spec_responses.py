"""Successful answers match the spec's response schemas.

A scripted scenario over real HTTP (register, rooms, messages, sync, keys,
media, profile, devices, push rules...; over federation: keys, make_join and
send_join, state, events, backfill, queries) whose every 2xx answer is
validated against the schema the spec's OpenAPI gives for that operation and
status (tests/spec/validation.py, with jsonschema). At the end it prints the
operations our server serves that the scenario does not drive yet.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web
from signedjson.key import generate_signing_key
from signedjson.sign import sign_json

from homeserver.events.hashing import compute_event_id
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.events.signing import sign_event
from tests.appservice.conftest import free_port, registration, write_registrations
from tests.appservice.test_networks import irc_appservice
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote
from tests.federation.hosted_room import CREATE, NAME, HostedRoom
from tests.spec.openapi import operations
from tests.spec.test_spec_endpoints import OPTIONAL, WALK_CONFIG, missing_endpoints
from tests.spec.validation import SpecDriver
from tests.test_e2e_keys import cross_signing_keys, public

C3 = "/_matrix/client/v3"
C1 = "/_matrix/client/v1"
F1 = "/_matrix/federation/v1"
F2 = "/_matrix/federation/v2"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360606060000000050001a5f645400000000049454e44ae426082"
)


# Where we answer as Synapse does and clients expect, off the spec's schema
# (patterns of the violation lines).
KNOWN_DEPARTURES = [
    # A device without keys is listed without `keys` (the spec requires the
    # key): Synapse lists it the same way, and the querying server asks
    # /user/keys/query for keys anyway.
    r"GET /_matrix/federation/v1/user/devices/\{userId\} -> 200: \$\.devices\[\d+\]: 'keys' is",
    # A device never named, or not seen since, has null there (the spec has a
    # string or nothing): matrix-nio requires the keys, and Synapse sends null.
    r"GET /_matrix/client/v3/devices(/\{deviceId\})? -> 200: \$(\.devices\[\d+\])?"
    r"\.(display_name|last_seen_ip|last_seen_ts): None is not",
    # An unset name or avatar of a joined member, and the profile tag of a
    # notification, are null where the spec has a string or nothing: Synapse
    # sends null, and SyTest requires the keys.
    r"GET /_matrix/client/v3/rooms/\{roomId\}/joined_members -> 200: "
    r"\$\.joined\[[^\]]+\]\.(display_name|avatar_url): None is not",
    r"GET /_matrix/client/v3/notifications -> 200: \$\.notifications\[\d+\]\.profile_tag: None is not",
]


def q(value: str) -> str:
    return quote(value, safe="")


async def register(driver: SpecDriver, name: str) -> dict[str, Any]:
    return await driver.client(
        "POST",
        f"{C3}/register",
        json_body={
            "username": name,
            "password": "spec-password",
            "auth": {"type": "m.login.dummy"},
        },
    )


async def with_password(
    d: SpecDriver, method: str, path: str, token: str, user_id: str, body: dict[str, Any]
) -> Any:
    """A call behind user-interactive authentication, done with the password stage."""
    challenge = await d.client(method, path, token, json_body=body, expect=401)
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": "spec-password",
        "session": challenge["session"],
    }
    return await d.client(method, path, token, json_body={**body, "auth": auth})


async def discovery(d: SpecDriver, token: str) -> None:
    await d.client("GET", "/_matrix/client/versions")
    await d.client("GET", "/.well-known/matrix/client")
    await d.client("GET", "/.well-known/matrix/support")
    await d.client("GET", f"{C3}/capabilities", token)
    await d.client("GET", f"{C3}/login")
    await d.client("GET", f"{C3}/register/available?username=nobody-yet")
    await d.client("GET", f"{C3}/account/whoami", token)
    await d.client("GET", f"{C3}/voip/turnServer", token)
    await d.client("GET", f"{C3}/thirdparty/protocols", token)


async def session(d: SpecDriver, user: str) -> str:
    """Log in a second device; returns its access token."""
    login = await d.client(
        "POST",
        f"{C3}/login",
        json_body={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": "spec-password",
            "refresh_token": True,
        },
    )
    refreshed = await d.client(
        "POST", f"{C3}/refresh", json_body={"refresh_token": login["refresh_token"]}
    )
    token = refreshed["access_token"]
    await with_password(d, "POST", f"{C1}/login/get_token", token, user, {})
    return token


async def rooms(d: SpecDriver, alice: dict[str, Any], bob: dict[str, Any]) -> dict[str, str]:
    """Two users in a room with messages, state, receipts, tags, relations."""
    token, bob_token = alice["access_token"], bob["access_token"]
    me = q(alice["user_id"])
    created = await d.client(
        "POST",
        f"{C3}/createRoom",
        token,
        json_body={"preset": "public_chat", "name": "Spec room", "room_alias_name": "spec"},
    )
    room = created["room_id"]
    r = q(room)
    await d.client("POST", f"{C3}/rooms/{r}/invite", token, json_body={"user_id": bob["user_id"]})
    await d.client("POST", f"{C3}/join/{q('#spec:localhost')}", bob_token, json_body={})
    sent = await d.client(
        "PUT",
        f"{C3}/rooms/{r}/send/m.room.message/t1",
        token,
        json_body={"msgtype": "m.text", "body": "hello"},
    )
    event = sent["event_id"]
    e = q(event)
    await d.client(
        "PUT",
        f"{C3}/rooms/{r}/send/m.room.message/t2",
        bob_token,
        json_body={
            "msgtype": "m.text",
            "body": "in a thread",
            "m.relates_to": {"rel_type": "m.thread", "event_id": event},
        },
    )
    await d.client(
        "PUT",
        f"{C3}/rooms/{r}/state/m.room.topic/",
        token,
        json_body={"topic": "the spec"},
    )
    await d.client("GET", f"{C3}/rooms/{r}/state/m.room.topic/", token)
    await d.client("GET", f"{C3}/rooms/{r}/state", token)
    await d.client("GET", f"{C3}/rooms/{r}/members", token)
    await d.client("GET", f"{C3}/rooms/{r}/joined_members", token)
    await d.client("GET", f"{C3}/rooms/{r}/messages?dir=b&limit=10", token)
    await d.client("GET", f"{C3}/rooms/{r}/context/{e}?limit=3", token)
    await d.client("GET", f"{C3}/rooms/{r}/event/{e}", token)
    await d.client("GET", f"{C3}/rooms/{r}/aliases", token)
    await d.client("GET", f"{C3}/rooms/{r}/initialSync", token)
    await d.client("GET", f"{C3}/events/{e}", token)
    await d.client("GET", f"{C1}/rooms/{r}/relations/{e}", token)
    await d.client("GET", f"{C1}/rooms/{r}/relations/{e}/m.thread", token)
    await d.client("GET", f"{C1}/rooms/{r}/relations/{e}/m.thread/m.room.message", token)
    await d.client("GET", f"{C1}/rooms/{r}/threads", token)
    await d.client("GET", f"{C1}/rooms/{r}/hierarchy", token)
    await d.client("GET", f"{C3}/joined_rooms", token)
    await d.client("PUT", f"{C3}/rooms/{r}/typing/{me}", token, json_body={"typing": False})
    await d.client("POST", f"{C3}/rooms/{r}/receipt/m.read/{e}", bob_token, json_body={})
    await d.client(
        "POST", f"{C3}/rooms/{r}/read_markers", bob_token, json_body={"m.fully_read": event}
    )
    await d.client("PUT", f"{C3}/user/{me}/rooms/{r}/tags/u.work", token, json_body={"order": 0.5})
    await d.client("GET", f"{C3}/user/{me}/rooms/{r}/tags", token)
    await d.client("DELETE", f"{C3}/user/{me}/rooms/{r}/tags/u.work", token)
    await d.client(
        "PUT", f"{C3}/user/{me}/rooms/{r}/account_data/org.example.r", token, json_body={"a": 1}
    )
    await d.client("GET", f"{C3}/user/{me}/rooms/{r}/account_data/org.example.r", token)
    await d.client("POST", f"{C3}/rooms/{r}/report/{e}", bob_token, json_body={"reason": "test"})
    await d.client("POST", f"{C3}/rooms/{r}/report", bob_token, json_body={"reason": "test"})
    await d.client(
        "POST",
        f"{C3}/search",
        token,
        json_body={"search_categories": {"room_events": {"search_term": "hello"}}},
    )
    redacted = await d.client(
        "PUT",
        f"{C3}/rooms/{r}/send/m.room.message/t3",
        token,
        json_body={"msgtype": "m.text", "body": "oops"},
    )
    await d.client(
        "PUT", f"{C3}/rooms/{r}/redact/{q(redacted['event_id'])}/t4", token, json_body={}
    )
    # The directory: the alias, the room list.
    alias = q("#spec-other:localhost")
    await d.client("PUT", f"{C3}/directory/room/{alias}", token, json_body={"room_id": room})
    await d.client("GET", f"{C3}/directory/room/{alias}", token)
    await d.client("DELETE", f"{C3}/directory/room/{alias}", token)
    await d.client(
        "PUT", f"{C3}/directory/list/room/{r}", token, json_body={"visibility": "public"}
    )
    await d.client("GET", f"{C3}/directory/list/room/{r}", token)
    await d.client("GET", f"{C3}/publicRooms", token)
    await d.client("POST", f"{C3}/publicRooms", token, json_body={"limit": 5})
    # Membership changes of a third user.
    carol = await register(d, "carol")
    c = carol["user_id"]
    await d.client("POST", f"{C3}/rooms/{r}/join", carol["access_token"], json_body={})
    await d.client("POST", f"{C3}/rooms/{r}/kick", token, json_body={"user_id": c})
    await d.client("POST", f"{C3}/rooms/{r}/ban", token, json_body={"user_id": c})
    await d.client("POST", f"{C3}/rooms/{r}/unban", token, json_body={"user_id": c})
    await d.client("POST", f"{C3}/rooms/{r}/forget", carol["access_token"], json_body={})
    knockable = await d.client(
        "POST",
        f"{C3}/createRoom",
        token,
        json_body={
            "room_version": "10",
            "initial_state": [
                {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}
            ],
        },
    )
    await d.client(
        "POST", f"{C3}/knock/{q(knockable['room_id'])}", carol["access_token"], json_body={}
    )
    other = await d.client("POST", f"{C3}/createRoom", bob_token, json_body={})
    await d.client("POST", f"{C3}/rooms/{q(other['room_id'])}/leave", bob_token, json_body={})
    upgraded = await d.client("POST", f"{C3}/createRoom", token, json_body={})
    await d.client(
        "POST",
        f"{C3}/rooms/{q(upgraded['room_id'])}/upgrade",
        token,
        json_body={"new_version": "11"},
    )
    await d.client(
        "POST",
        f"{C3}/user_directory/search",
        token,
        json_body={"search_term": "bob"},
    )
    return {"room_id": room, "event_id": event, "knock_room_id": knockable["room_id"]}


async def sync_and_account(d: SpecDriver, alice: dict[str, Any]) -> None:
    token, me = alice["access_token"], q(alice["user_id"])
    filtered = await d.client(
        "POST", f"{C3}/user/{me}/filter", token, json_body={"room": {"timeline": {"limit": 5}}}
    )
    await d.client("GET", f"{C3}/user/{me}/filter/{q(filtered['filter_id'])}", token)
    first = await d.client("GET", f"{C3}/sync?filter={q(filtered['filter_id'])}", token)
    await d.client("GET", f"{C3}/sync?since={q(first['next_batch'])}&timeout=0", token)
    await d.client("GET", f"{C3}/sync?full_state=true&set_presence=online", token)
    await d.client("GET", f"{C3}/initialSync?limit=2", token)
    await d.client("GET", f"{C3}/events?timeout=0", token)
    await d.client("GET", f"{C3}/notifications", token)
    await d.client("PUT", f"{C3}/user/{me}/account_data/org.example.a", token, json_body={"b": 2})
    await d.client("GET", f"{C3}/user/{me}/account_data/org.example.a", token)
    await d.client("PUT", f"{C3}/presence/{me}/status", token, json_body={"presence": "online"})
    await d.client("GET", f"{C3}/presence/{me}/status", token)
    await d.client("PUT", f"{C3}/profile/{me}/displayname", token, json_body={"displayname": "A"})
    await d.client(
        "PUT", f"{C3}/profile/{me}/avatar_url", token, json_body={"avatar_url": "mxc://x/y"}
    )
    await d.client("PUT", f"{C3}/profile/{me}/m.tz", token, json_body={"m.tz": "Europe/Paris"})
    await d.client("GET", f"{C3}/profile/{me}", token)
    await d.client("GET", f"{C3}/profile/{me}/displayname", token)
    await d.client("DELETE", f"{C3}/profile/{me}/m.tz", token)
    await d.client("GET", f"{C3}/admin/whois/{me}", token)
    await d.client("GET", f"{C3}/account/3pid", token)
    openid = await d.client("POST", f"{C3}/user/{me}/openid/request_token", token, json_body={})
    await d.federation("GET", f"{F1}/openid/userinfo?access_token={q(openid['access_token'])}")
    await d.client("GET", f"{C1}/register/m.login.registration_token/validity?token=nope")


async def devices_and_keys(d: SpecDriver, alice: dict[str, Any], bob: dict[str, Any]) -> None:
    token, device = alice["access_token"], alice["device_id"]
    await d.client("GET", f"{C3}/devices", token)
    await d.client("GET", f"{C3}/devices/{q(device)}", token)
    await d.client(
        "PUT", f"{C3}/devices/{q(device)}", token, json_body={"display_name": "spec device"}
    )
    user = alice["user_id"]
    device_key = generate_signing_key(device)
    device_keys = sign_json(
        {
            "user_id": user,
            "device_id": device,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {f"curve25519:{device}": "c" * 43, f"ed25519:{device}": public(device_key)},
        },
        user,
        device_key,
    )
    await d.client(
        "POST",
        f"{C3}/keys/upload",
        token,
        json_body={
            "device_keys": device_keys,
            "one_time_keys": {f"curve25519:AAAA{i}": f"key{i}" for i in range(3)},
        },
    )
    # Cross-signing: the first upload needs no password; the self-signing key signs the device.
    secrets, cross_signing = cross_signing_keys(user)
    await d.client("POST", f"{C3}/keys/device_signing/upload", token, json_body=cross_signing)
    signed = sign_json(dict(device_keys), user, secrets["self_signing"])
    await d.client(
        "POST", f"{C3}/keys/signatures/upload", token, json_body={user: {device: signed}}
    )
    await d.client(
        "POST",
        f"{C3}/keys/query",
        bob["access_token"],
        json_body={"device_keys": {alice["user_id"]: []}},
    )
    await d.client(
        "POST",
        f"{C3}/keys/claim",
        bob["access_token"],
        json_body={"one_time_keys": {alice["user_id"]: {device: "curve25519"}}},
    )
    await d.client("GET", f"{C3}/keys/changes?from=s0&to=s1", token)
    await d.client(
        "PUT",
        f"{C3}/sendToDevice/m.test/t1",
        token,
        json_body={"messages": {bob["user_id"]: {"*": {"hello": "bob"}}}},
    )
    version = await d.client(
        "POST",
        f"{C3}/room_keys/version",
        token,
        json_body={"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {}},
    )
    v = q(version["version"])
    await d.client("GET", f"{C3}/room_keys/version", token)
    await d.client("GET", f"{C3}/room_keys/version/{v}", token)
    await d.client(
        "PUT",
        f"{C3}/room_keys/version/{v}",
        token,
        json_body={"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {}},
    )
    session = {
        "first_message_index": 0,
        "forwarded_count": 0,
        "is_verified": True,
        "session_data": {"ciphertext": "c", "ephemeral": "e", "mac": "m"},
    }
    room = q("!backup:localhost")
    await d.client("PUT", f"{C3}/room_keys/keys/{room}/s1?version={v}", token, json_body=session)
    await d.client(
        "PUT",
        f"{C3}/room_keys/keys/{room}?version={v}",
        token,
        json_body={"sessions": {"s2": session}},
    )
    await d.client(
        "PUT",
        f"{C3}/room_keys/keys?version={v}",
        token,
        json_body={"rooms": {"!backup:localhost": {"sessions": {"s3": session}}}},
    )
    await d.client("GET", f"{C3}/room_keys/keys/{room}/s1?version={v}", token)
    await d.client("GET", f"{C3}/room_keys/keys/{room}?version={v}", token)
    await d.client("GET", f"{C3}/room_keys/keys?version={v}", token)
    await d.client("DELETE", f"{C3}/room_keys/keys/{room}/s1?version={v}", token)
    await d.client("DELETE", f"{C3}/room_keys/keys/{room}?version={v}", token)
    await d.client("DELETE", f"{C3}/room_keys/keys?version={v}", token)
    await d.client("DELETE", f"{C3}/room_keys/version/{v}", token)


async def push(d: SpecDriver, token: str) -> None:
    await d.client("GET", f"{C3}/pushrules/", token)
    await d.client("GET", f"{C3}/pushrules/global/", token)
    rule = f"{C3}/pushrules/global/content/spec"
    await d.client("PUT", rule, token, json_body={"pattern": "spec", "actions": ["notify"]})
    await d.client("GET", rule, token)
    await d.client("GET", f"{rule}/enabled", token)
    await d.client("PUT", f"{rule}/enabled", token, json_body={"enabled": False})
    await d.client("GET", f"{rule}/actions", token)
    await d.client("PUT", f"{rule}/actions", token, json_body={"actions": []})
    await d.client("DELETE", rule, token)
    await d.client(
        "POST",
        f"{C3}/pushers/set",
        token,
        json_body={
            "pushkey": "spec-key",
            "kind": "http",
            "app_id": "org.example.spec",
            "app_display_name": "Spec",
            "device_display_name": "Spec device",
            "lang": "en",
            "data": {"url": "https://push.example.org/_matrix/push/v1/notify"},
        },
    )
    await d.client("GET", f"{C3}/pushers", token)


async def media(d: SpecDriver, token: str) -> str:
    """Upload, download and thumbnail a picture; returns its media id."""
    uploaded = await d.client(
        "POST",
        "/_matrix/media/v3/upload?filename=dot.png",
        token,
        data=PNG,
        headers={"Content-Type": "image/png"},
    )
    server, media_id = uploaded["content_uri"].removeprefix("mxc://").split("/")
    created = await d.client("POST", "/_matrix/media/v1/create", token)
    pending = created["content_uri"].removeprefix("mxc://").split("/")[1]
    await d.client(
        "PUT",
        f"/_matrix/media/v3/upload/{server}/{pending}",
        token,
        data=PNG,
        headers={"Content-Type": "image/png"},
    )
    # The deprecated /_matrix/media/v3 downloads serve no media uploaded while
    # authenticated media is on (the default): only their config is driven.
    await d.client("GET", "/_matrix/media/v3/config", token)
    await d.client("GET", f"{C1}/media/config", token)
    await d.client("GET", f"{C1}/media/download/{server}/{media_id}", token)
    await d.client("GET", f"{C1}/media/download/{server}/{media_id}/dot.png", token)
    await d.client(
        "GET", f"{C1}/media/thumbnail/{server}/{media_id}?width=1&height=1&method=scale", token
    )
    return media_id


async def previews(d: SpecDriver, token: str) -> None:
    """URL previews of a page served on loopback, through both paths."""
    page = web.Application()

    async def serve(_: web.Request) -> web.Response:
        html = '<html><head><meta property="og:title" content="Spec page"></head></html>'
        return web.Response(text=html, content_type="text/html")

    page.router.add_get("/page", serve)
    runner = web.AppRunner(page, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        url = q(f"http://127.0.0.1:{port}/page")
        await d.client("GET", f"{C1}/media/preview_url?url={url}", token)
        await d.client("GET", f"/_matrix/media/v3/preview_url?url={url}", token)
    finally:
        await runner.cleanup()


async def bridge(d: SpecDriver, token: str, room_id: str) -> None:
    """The third-party network lookups, a ping and a network's room list, of
    the IRC appservice registered for the scenario (`irc_bridge`)."""
    await d.client("GET", f"{C3}/thirdparty/protocol/irc", token)
    await d.client("GET", f"{C3}/thirdparty/user/irc?nick=spec", token)
    await d.client("GET", f"{C3}/thirdparty/location/irc?channel=spec", token)
    await d.client("GET", f"{C3}/thirdparty/user?userid={q('@irc_spec:localhost')}", token)
    await d.client("GET", f"{C3}/thirdparty/location?alias={q('#irc_libera_x:localhost')}", token)
    await d.client("POST", f"{C1}/appservice/libera/ping", "as-libera", json_body={})
    await d.client(
        "PUT",
        f"{C3}/directory/list/appservice/libera/{q(room_id)}",
        "as-libera",
        json_body={"visibility": "public"},
    )


@contextlib.asynccontextmanager
async def irc_bridge(tmp_path: Path) -> AsyncIterator[list[str]]:
    """An IRC appservice on loopback (with pings); its registration files."""
    app = irc_appservice("libera", [])

    async def ping(_: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_post("/_matrix/app/v1/ping", ping)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield write_registrations(
            tmp_path,
            registration(
                f"http://127.0.0.1:{port}",
                id="libera",
                as_token="as-libera",
                hs_token="hs-libera",
                sender_localpart="liberabot",
                namespaces={"users": [{"exclusive": False, "regex": "@irc_.*:localhost"}]},
            ),
        )
    finally:
        await runner.cleanup()


def invite_of(hosted: HostedRoom, user_id: str) -> tuple[dict[str, Any], str]:
    """An invite PDU of the remote's room as the spec's invite event has it
    (with its `origin`, which the test room's events leave out); its event id."""
    event = hosted.build("m.room.member", {"membership": "invite"}, state_key=user_id)
    pdu = {k: v for k, v in event.pdu.items() if k not in ("hashes", "signatures")}
    pdu["origin"] = hosted.remote.server_name
    signed = sign_event(pdu, hosted.remote.server_name, hosted.remote.signing_key, hosted.version)
    return signed, signed.get("event_id") or compute_event_id(signed, hosted.version)


async def federation(
    d: SpecDriver,
    remote: ScriptedRemote,
    alice: dict[str, Any],
    room: dict[str, str],
    other_user: str,
) -> None:
    r, e = q(room["room_id"]), q(room["event_id"])
    user = q(alice["user_id"])
    await d.federation("GET", "/_matrix/key/v2/server")
    await d.federation("GET", "/_matrix/key/v2/query/localhost")
    await d.federation(
        "POST", "/_matrix/key/v2/query", json_body={"server_keys": {"localhost": {}}}
    )
    await d.federation("GET", f"{F1}/version")
    await d.delegation()
    await d.federation("GET", f"{F1}/media/download/{q(room['media_id'])}")
    await d.federation(
        "GET", f"{F1}/media/thumbnail/{q(room['media_id'])}?width=1&height=1&method=scale"
    )
    await d.federation("GET", f"{F1}/query/profile?user_id={user}")
    await d.federation("GET", f"{F1}/query/directory?room_alias={q('#spec:localhost')}")
    await d.federation("GET", f"{F1}/publicRooms")
    await d.federation("POST", f"{F1}/publicRooms", json_body={"limit": 5})
    await d.federation("GET", f"{F1}/user/devices/{user}")
    await d.federation(
        "POST", f"{F1}/user/keys/query", json_body={"device_keys": {alice["user_id"]: []}}
    )
    await d.federation(
        "POST",
        f"{F1}/user/keys/claim",
        json_body={"one_time_keys": {alice["user_id"]: {alice["device_id"]: "curve25519"}}},
    )
    # A user of the remote server joins the room.
    bob = q(f"@bob:{remote.server_name}")
    made = await d.federation("GET", f"{F1}/make_join/{r}/{bob}?ver=10&ver=11&ver=12")
    version = KNOWN_ROOM_VERSIONS[made["room_version"]]
    pdu = sign_event(made["event"], remote.server_name, remote.signing_key, version)
    join_id = q(compute_event_id(pdu, version))
    await d.federation("PUT", f"{F2}/send_join/{r}/{join_id}", json_body=pdu)
    await d.federation("GET", f"{F1}/state/{r}?event_id={e}")
    await d.federation("GET", f"{F1}/state_ids/{r}?event_id={e}")
    await d.federation("GET", f"{F1}/event/{e}")
    await d.federation("GET", f"{F1}/event_auth/{r}/{e}")
    await d.federation("GET", f"{F1}/backfill/{r}?v={join_id}&limit=5")
    await d.federation(
        "POST",
        f"{F1}/get_missing_events/{r}",
        json_body={"earliest_events": [room["event_id"]], "latest_events": [], "limit": 5},
    )
    transaction = {
        "origin": remote.server_name,
        "origin_server_ts": 1_700_000_000_000,
        "pdus": [],
        "edus": [],
    }
    await d.federation("PUT", f"{F1}/send/spec-txn", json_body=transaction)
    made = await d.federation("GET", f"{F1}/make_leave/{r}/{bob}")
    leave = sign_event(made["event"], remote.server_name, remote.signing_key, version)
    leave_id = q(compute_event_id(leave, version))
    await d.federation("PUT", f"{F2}/send_leave/{r}/{leave_id}", json_body=leave)
    k = q(room["knock_room_id"])
    made = await d.federation("GET", f"{F1}/make_knock/{k}/{bob}?ver=10")
    version = KNOWN_ROOM_VERSIONS[made["room_version"]]
    knock = sign_event(made["event"], remote.server_name, remote.signing_key, version)
    knock_id = q(compute_event_id(knock, version))
    await d.federation("PUT", f"{F1}/send_knock/{k}/{knock_id}", json_body=knock)
    # The remote server invites our users to a room it hosts, through both versions.
    hosted = HostedRoom(remote, "10")
    invite, invite_id = invite_of(hosted, alice["user_id"])
    await d.federation(
        "PUT",
        f"{F2}/invite/{q(hosted.room_id)}/{q(invite_id)}",
        json_body={
            "room_version": "10",
            "event": invite,
            "invite_room_state": [hosted.stripped(CREATE), hosted.stripped(NAME)],
        },
    )
    # The v1 invite carries no room version: it is for rooms of versions 1 and 2.
    hosted = HostedRoom(remote, "1")
    invite, invite_id = invite_of(hosted, other_user)
    await d.federation("PUT", f"{F1}/invite/{q(hosted.room_id)}/{q(invite_id)}", json_body=invite)


async def account_end(d: SpecDriver) -> None:
    """Devices deleted, a password changed, sessions ended, an account closed."""
    dave = await register(d, "dave")
    user, token = dave["user_id"], dave["access_token"]
    for _ in range(3):
        await session(d, user)
    devices = (await d.client("GET", f"{C3}/devices", token))["devices"]
    others = [device["device_id"] for device in devices if device["device_id"] != dave["device_id"]]
    await with_password(d, "DELETE", f"{C3}/devices/{q(others[0])}", token, user, {})
    await with_password(d, "POST", f"{C3}/delete_devices", token, user, {"devices": others[1:]})
    await with_password(
        d, "POST", f"{C3}/account/password", token, user, {"new_password": "spec-password"}
    )
    await d.client("POST", f"{C3}/logout", await session(d, user), json_body={})
    await d.client("POST", f"{C3}/logout/all", token, json_body={})
    erin = await register(d, "erin")
    await with_password(
        d, "POST", f"{C3}/account/deactivate", erin["access_token"], erin["user_id"], {}
    )


async def test_successful_answers_match_the_spec_schemas(
    server_factory: Any, remote: ScriptedRemote, tmp_path: Path
) -> None:
    async with irc_bridge(tmp_path) as registrations:
        hs: RunningServer = await server_factory(
            **WALK_CONFIG, app_service_config_files=registrations
        )
        await scenario(hs, remote)


async def scenario(hs: RunningServer, remote: ScriptedRemote) -> None:
    await remote.expect_keys_of(hs)
    async with aiohttp.ClientSession() as http:
        d = SpecDriver(hs, remote, http)
        alice = await register(d, "alice")
        bob = await register(d, "bob")
        await discovery(d, alice["access_token"])
        await session(d, alice["user_id"])
        room = await rooms(d, alice, bob)
        await sync_and_account(d, alice)
        await devices_and_keys(d, alice, bob)
        await push(d, alice["access_token"])
        room["media_id"] = await media(d, alice["access_token"])
        await previews(d, alice["access_token"])
        await federation(d, remote, alice, room, bob["user_id"])
        await bridge(d, alice["access_token"], room["room_id"])
        await account_end(d)

    walker = (await hs.register("walker"))["access_token"]
    missing = {op.name for op, _, _ in await missing_endpoints(hs, remote, walker)}
    every = {op.name for api in ("client-server", "server-server") for op in operations(api)}
    not_driven = sorted(every - d.driven - missing - OPTIONAL)
    print(f"Driven and validated: {len(d.driven)} operations")
    print("Served but not driven by this scenario yet:\n  " + "\n  ".join(not_driven))
    print("Driven, no JSON schema in the spec:\n  " + "\n  ".join(sorted(d.unchecked)))
    violations = [v for v in d.violations if not any(re.match(p, v) for p in KNOWN_DEPARTURES)]
    assert not violations, "answers off the spec's schemas:\n" + "\n".join(violations)
