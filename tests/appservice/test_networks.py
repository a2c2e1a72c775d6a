"""Third-party networks: protocol metadata merged over the appservices that
declare a protocol, lookups passed to them (reverse ones too), and the room
directories of their networks in /publicRooms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.appservice.conftest import free_port, registration, write_registrations
from tests.conftest import RunningServer

V3 = "/_matrix/client/v3"


def irc_appservice(network: str, seen: list[tuple[str, str, str | None]]) -> web.Application:
    """An IRC bridge for one network, answering the third-party API."""

    def check(request: web.Request) -> None:
        seen.append((network, request.path_qs, request.headers.get("Authorization")))

    async def protocol(request: web.Request) -> web.Response:
        check(request)
        return web.json_response(
            {
                "user_fields": ["nick"],
                "location_fields": ["channel"],
                "icon": "mxc://localhost/irc",
                "field_types": {},
                "instances": [{"desc": network, "network_id": network, "fields": {}}],
            }
        )

    async def users(request: web.Request) -> web.Response:
        check(request)
        nick = request.query.get("nick") or "someone"
        return web.json_response(
            [
                {"userid": f"@irc_{nick}:localhost", "protocol": "irc", "fields": {"nick": nick}},
                {"userid": "@bad:localhost", "fields": {}},  # no protocol: dropped
            ]
        )

    async def locations(request: web.Request) -> web.Response:
        check(request)
        alias = request.query.get("alias")
        if alias is not None and not alias.startswith(f"#irc_{network}_"):
            return web.json_response([])
        return web.json_response(
            [{"alias": f"#irc_{network}_x:localhost", "protocol": "irc", "fields": {}}]
        )

    app = web.Application()
    app.router.add_get("/_matrix/app/v1/thirdparty/protocol/irc", protocol)
    app.router.add_get("/_matrix/app/v1/thirdparty/user/irc", users)
    app.router.add_get("/_matrix/app/v1/thirdparty/user", users)
    app.router.add_get("/_matrix/app/v1/thirdparty/location", locations)
    return app


@pytest.fixture
async def networks(
    server_factory: Any, tmp_path: Path
) -> AsyncIterator[tuple[RunningServer, list[Any]]]:
    """Two IRC bridges (libera, oftc) on one server, and what they were asked."""
    seen: list[Any] = []
    runners, registrations = [], []
    for network in ("libera", "oftc"):
        runner = web.AppRunner(irc_appservice(network, seen))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        registrations.append(
            registration(
                f"http://127.0.0.1:{port}",
                id=network,
                as_token=f"as-{network}",
                hs_token=f"hs-{network}",
                sender_localpart=f"{network}bot",
                namespaces={"users": [{"exclusive": False, "regex": "@irc_.*:localhost"}]},
            )
        )
    paths = write_registrations(tmp_path, *registrations)
    yield await server_factory(app_service_config_files=paths), seen
    for runner in runners:
        await runner.cleanup()


async def test_protocols_merge_instances(networks: tuple[RunningServer, list[Any]]) -> None:
    hs, seen = networks
    user = await hs.register("alice")
    token = user["access_token"]
    status, protocols = await hs.request("GET", f"{V3}/thirdparty/protocols", token=token)
    assert status == 200 and set(protocols) == {"irc"}
    irc = protocols["irc"]
    assert irc["user_fields"] == ["nick"]
    assert sorted(i["instance_id"] for i in irc["instances"]) == ["libera|libera", "oftc|oftc"]
    status, one = await hs.request("GET", f"{V3}/thirdparty/protocol/irc", token=token)
    assert status == 200 and len(one["instances"]) == 2
    status, err = await hs.request("GET", f"{V3}/thirdparty/protocol/slack", token=token)
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
    assert {auth for _, _, auth in seen} == {"Bearer hs-libera", "Bearer hs-oftc"}


async def test_lookups_are_passed_to_the_appservices(
    networks: tuple[RunningServer, list[Any]],
) -> None:
    hs, seen = networks
    token = (await hs.register("alice"))["access_token"]
    status, found = await hs.request("GET", f"{V3}/thirdparty/user/irc?nick=bob", token=token)
    assert status == 200
    assert (
        found
        == [{"userid": "@irc_bob:localhost", "protocol": "irc", "fields": {"nick": "bob"}}] * 2
    )
    assert ("libera", "/_matrix/app/v1/thirdparty/user/irc?nick=bob", "Bearer hs-libera") in seen
    # The reverse lookups reach the appservices (Synapse answers []).
    status, found = await hs.request(
        "GET", f"{V3}/thirdparty/location?alias=%23irc_oftc_x:localhost", token=token
    )
    assert status == 200
    assert found == [{"alias": "#irc_oftc_x:localhost", "protocol": "irc", "fields": {}}]
    status, found = await hs.request(
        "GET", f"{V3}/thirdparty/user?userid=%40irc_carol:localhost", token=token
    )
    assert status == 200 and len(found) == 2
    status, err = await hs.request("GET", f"{V3}/thirdparty/location", token=token)
    assert (status, err["errcode"]) == (400, "M_MISSING_PARAM")
    status, found = await hs.request("GET", f"{V3}/thirdparty/user/slack?nick=x", token=token)
    assert (status, found) == (200, [])


async def test_network_room_lists(networks: tuple[RunningServer, list[Any]]) -> None:
    hs, _ = networks
    alice = (await hs.register("alice"))["access_token"]
    _, main = await hs.request(
        "POST", f"{V3}/createRoom", token=alice, json={"visibility": "public", "name": "main"}
    )
    _, bridged = await hs.request(
        "POST", f"{V3}/createRoom", token="as-libera", json={"name": "bridged"}
    )
    path = f"{V3}/directory/list/appservice/libera/{bridged['room_id']}"
    status, _ = await hs.request("PUT", path, token="as-libera", json={"visibility": "public"})
    assert status == 200

    async def listed(body: dict[str, Any]) -> list[str]:
        status, page = await hs.request("POST", f"{V3}/publicRooms", token=alice, json=body)
        assert status == 200, page
        return sorted(r["name"] for r in page["chunk"])

    assert await listed({}) == ["main"]
    assert await listed({"third_party_instance_id": "libera|libera"}) == ["bridged"]
    assert await listed({"third_party_instance_id": "oftc|libera"}) == []
    assert await listed({"include_all_networks": True}) == ["bridged", "main"]
    status, err = await hs.request(
        "POST",
        f"{V3}/publicRooms",
        token=alice,
        json={"third_party_instance_id": "libera|libera", "include_all_networks": True},
    )
    assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")
    status, err = await hs.request(
        "POST", f"{V3}/publicRooms", token=alice, json={"third_party_instance_id": "nopipe"}
    )
    assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")
    status, page = await hs.request(
        "GET", f"{V3}/publicRooms?third_party_instance_id=libera%7Clibera"
    )
    assert [r["name"] for r in page["chunk"]] == ["bridged"]
    # Private again: gone from the network's list.
    await hs.request("PUT", path, token="as-libera", json={"visibility": "private"})
    assert await listed({"third_party_instance_id": "libera|libera"}) == []
    # Only appservices edit these lists, and only of rooms that exist.
    status, err = await hs.request("PUT", path, token=alice, json={"visibility": "public"})
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    status, err = await hs.request(
        "PUT",
        f"{V3}/directory/list/appservice/libera/!nope:localhost",
        token="as-libera",
        json={"visibility": "public"},
    )
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
    status, err = await hs.request("PUT", path, token="as-libera", json={"visibility": "open"})
    assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")
