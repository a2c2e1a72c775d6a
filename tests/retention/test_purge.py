"""The purge job of retention policies (MSC1763), over real HTTP: old
messages of a room with max_lifetime lose their content and their media,
state is kept, and another server can still fetch the room's events."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.events.signing import verify_event_signatures
from storage.database import now_ms
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote
from tests.federation.test_serving import our_key_lookup
from tests.retention.conftest import (
    DAY,
    V3,
    download_status,
    image,
    make_room,
    put_message,
    room_path,
    upload_image,
)
from tests.sliding_sync.helpers import UNSTABLE as SLIDING
from tests.sliding_sync.helpers import all_rooms

V1 = "/_matrix/federation/v1"


async def room_version(hs: RunningServer, token: str, room_id: str) -> str:
    status, create = await hs.request(
        "GET", f"{V3}/rooms/{room_path(room_id)}/state/m.room.create/", token=token
    )
    assert status == 200
    return create.get("room_version", "1")


async def test_old_messages_and_their_media_are_purged(
    retention_hs: RunningServer, remote: ScriptedRemote, caplog: pytest.LogCaptureFixture
) -> None:
    hs = retention_hs
    alice = (await hs.register("alice"))["access_token"]
    room = await make_room(hs, alice, {"max_lifetime": DAY})
    # A room without a policy (and no default): nothing of it expires.
    other = await make_room(hs, alice, None)
    only_here = await upload_image(hs, alice, (200, 0, 0))
    thumbnail = await upload_image(hs, alice, (0, 200, 0))
    shared = await upload_image(hs, alice, (0, 0, 200))
    sent = [
        await put_message(hs, alice, room, image(only_here, thumbnail), "t1"),
        await put_message(hs, alice, room, image(shared), "t2"),
    ]
    sent += [
        await put_message(hs, alice, room, {"msgtype": "m.text", "body": f"secret {i}"}, f"m{i}")
        for i in range(3)
    ]
    kept = await put_message(hs, alice, other, image(shared), "o1")
    status, before = await remote.request(
        hs, "GET", f"{V1}/state_ids/{room_path(room)}?event_id={sent[-1]}"
    )
    assert status == 200, before

    # Nothing is due yet.
    assert (await hs.server.purge_job.run_once(now_ms())).expired == 0
    with caplog.at_level(logging.INFO, logger="homeserver.retention.job"):
        result = await hs.server.purge_job.run_once(now_ms() + 2 * DAY)
    # Five messages in batches of two; the other room's message stays.
    assert (result.expired, result.media) == (5, 2)
    assert "5 expired and 0 redacted events purged, 2 media deleted" in caplog.text

    # The media only purged messages named are gone; the one still named elsewhere stays.
    assert await download_status(hs, alice, only_here) == 404
    assert await download_status(hs, alice, thumbnail) == 404
    assert await download_status(hs, alice, shared) == 200
    status, body = await hs.request(
        "GET", f"{V3}/rooms/{room_path(other)}/event/{kept}", token=alice
    )
    assert status == 200 and body["content"]["url"] == shared

    # A remote server still gets the events, redacted and validly signed, and the state.
    lookup = await our_key_lookup(remote, hs)
    version = KNOWN_ROOM_VERSIONS[await room_version(hs, alice, room)]
    for event_id in sent:
        status, body = await remote.request(hs, "GET", f"{V1}/event/{event_id}")
        assert status == 200, body
        (pdu,) = body["pdus"]
        assert pdu["content"] == {}
        verify_event_signatures(pdu, version, lookup)
    status, after = await remote.request(
        hs, "GET", f"{V1}/state_ids/{room_path(room)}?event_id={sent[-1]}"
    )
    assert status == 200 and set(after["pdu_ids"]) == set(before["pdu_ids"])
    # The state itself is never purged.
    status, state = await hs.request("GET", f"{V3}/rooms/{room_path(room)}/state", token=alice)
    assert status == 200
    assert {"type": "m.room.retention", "content": {"max_lifetime": DAY}}.items() <= next(
        e for e in state if e["type"] == "m.room.retention"
    ).items()
    # Search no longer finds purged text.
    status, found = await hs.request(
        "POST",
        f"{V3}/search",
        token=alice,
        json={"search_categories": {"room_events": {"search_term": "secret"}}},
    )
    assert status == 200 and found["search_categories"]["room_events"]["results"] == []
    # A second run finds nothing left to do.
    assert (await hs.server.purge_job.run_once(now_ms() + 2 * DAY)).expired == 0
    metrics = hs.server.metrics.render().decode()
    assert 'homeserver_retention_purged_events_total{reason="retention"} 5.0' in metrics
    assert "homeserver_retention_deleted_media_total 2.0" in metrics
    assert "homeserver_retention_last_run_duration_seconds" in metrics


async def test_clients_no_longer_see_expired_history(server_factory: Any) -> None:
    hs = await server_factory(retention={"enabled": True, "purge_interval_ms": DAY})
    alice = (await hs.register("alice"))["access_token"]
    # A policy of 500 ms: messages expire for readers long before any job runs.
    room = await make_room(hs, alice, {"max_lifetime": 500})
    old = await put_message(hs, alice, room, {"msgtype": "m.text", "body": "ephemeral words"}, "a")
    path = f"{V3}/rooms/{room_path(room)}"
    status, body = await hs.request("GET", f"{path}/event/{old}", token=alice)
    assert status == 200

    async def messages() -> list[dict[str, Any]]:
        status, body = await hs.request("GET", f"{path}/messages?dir=b&limit=50", token=alice)
        assert status == 200
        return body["chunk"]

    deadline = now_ms() + 5000
    while any(e["event_id"] == old for e in await messages()):
        assert now_ms() < deadline, "the message never expired"
    chunk = await messages()
    # State events are kept; the expired message is not shown.
    assert chunk and all("state_key" in e for e in chunk)
    status, body = await hs.request("GET", f"{path}/event/{old}", token=alice)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await hs.request("GET", f"{path}/context/{old}", token=alice)
    assert status == 404
    status, body = await hs.request("GET", f"{V3}/sync", token=alice)
    assert status == 200
    timeline = body["rooms"]["join"][room]["timeline"]["events"]
    assert old not in {e["event_id"] for e in timeline}
    assert any(
        e["type"] == "m.room.retention"
        for e in timeline + body["rooms"]["join"][room]["state"]["events"]
    )
    status, found = await hs.request(
        "POST",
        f"{V3}/search",
        token=alice,
        json={"search_categories": {"room_events": {"search_term": "ephemeral"}}},
    )
    assert status == 200 and found["search_categories"]["room_events"]["results"] == []
    # Sliding sync (Element X) shows the room without the expired message.
    status, sliding = await hs.request("POST", SLIDING, token=alice, json=all_rooms(limit=10))
    assert status == 200, sliding
    shown = sliding["rooms"][room].get("timeline", [])
    assert shown and old not in {e["event_id"] for e in shown}


async def test_clamped_by_the_configured_bounds(server_factory: Any) -> None:
    hs = await server_factory(
        retention={
            "enabled": True,
            "purge_interval_ms": DAY,
            "allowed_lifetime_min_ms": DAY,
            "allowed_lifetime_max_ms": 3 * DAY,
            "default_policy": {"max_lifetime_ms": 2 * DAY},
        }
    )
    alice = (await hs.register("alice"))["access_token"]
    short = await make_room(hs, alice, {"max_lifetime": 1000})  # raised to a day
    long = await make_room(hs, alice, {"max_lifetime": 30 * DAY})  # lowered to three days
    default = await make_room(hs, alice, None)  # two days
    no_max = await make_room(hs, alice, {"min_lifetime": 1000})  # the default's two days
    ids = {
        room: await put_message(hs, alice, room, {"msgtype": "m.text", "body": "x"}, f"t{i}")
        for i, room in enumerate((short, long, default, no_max))
    }
    job = hs.server.purge_job
    start = now_ms()
    # After an hour the short room's 1 s policy has not taken effect: clamped to a day.
    assert (await job.run_once(start + 3600_000)).expired == 0
    assert (await job.run_once(start + DAY + 60_000)).expired == 1
    assert (await job.run_once(start + 2 * DAY + 60_000)).expired == 2
    assert (await job.run_once(start + 3 * DAY + 60_000)).expired == 1
    purged = await hs.pool.fetch(
        "SELECT event_id FROM events WHERE content_purged AND event_id = ANY($1)",
        list(ids.values()),
    )
    assert len(purged) == 4


async def test_a_malformed_policy_is_refused(retention_hs: RunningServer) -> None:
    hs = retention_hs
    alice = (await hs.register("alice"))["access_token"]
    room = await make_room(hs, alice, None)
    path = f"{V3}/rooms/{room_path(room)}/state/m.room.retention/"
    for content in (
        {"max_lifetime": "1d"},
        {"min_lifetime": 1.5},
        {"min_lifetime": 9, "max_lifetime": 5},
    ):
        status, body = await hs.request("PUT", path, token=alice, json=content)
        assert (status, body["errcode"]) == (400, "M_BAD_JSON"), content
    status, body = await hs.request("GET", path, token=alice)
    assert status == 404
    status, _ = await hs.request("PUT", path, token=alice, json={"max_lifetime": DAY})
    assert status == 200
    # The new policy applies at once: a message a day and a minute old has expired.
    sent = await put_message(hs, alice, room, {"msgtype": "m.text", "body": "x"}, "x")
    assert (await hs.server.purge_job.run_once(now_ms() + DAY + 60_000)).expired == 1
    status, body = await hs.request(
        "GET", f"{V3}/rooms/{room_path(room)}/event/{sent}", token=alice
    )
    assert status == 200  # Not expired yet by the real clock.
