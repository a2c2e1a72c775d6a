"""SyncService skips a provider that names its streams when none of them
moved since the client's token, and calls it whenever one did (or the sync
is initial or full_state)."""

from __future__ import annotations

import asyncio
from typing import Any

from homeserver.notifier import Notifier
from homeserver.requester import Requester
from homeserver.sync.response import SyncRequest
from homeserver.sync.service import SyncService
from homeserver.sync.token import SyncToken

ALICE = Requester("@alice:example.org", "DEVICE", 1)


class Recorder:
    def __init__(self, name: str, streams: tuple[str, ...] | None) -> None:
        self.name = name
        if streams is not None:
            self.sync_streams = streams
        self.calls: list[tuple[SyncToken | None, SyncToken]] = []

    async def add(self, request: SyncRequest, response: dict[str, Any]) -> None:
        self.calls.append((request.since, request.now))
        response.setdefault("called", []).append(self.name)


class NoRooms:
    async def rooms_for_user(self, user_id: str, membership: str = "join") -> list[str]:
        return []


def service(notifier: Notifier) -> tuple[SyncService, Recorder, Recorder, Recorder]:
    rooms = Recorder("rooms", ("events",))
    account = Recorder("account_data", ("account_data",))
    always = Recorder("always", None)
    return SyncService(notifier, [rooms, account, always], NoRooms()), rooms, account, always


async def sync(sync_service: SyncService, since: SyncToken | None, **kw: Any) -> dict[str, Any]:
    return await sync_service.sync(
        ALICE,
        since=since,
        timeout_ms=0,
        full_state=kw.get("full_state", False),
        filter={},
        set_presence="online",
    )


async def test_providers_run_only_for_streams_that_moved():
    notifier = Notifier()
    notifier.notify("events", 10)
    notifier.notify("account_data", 3)
    sync_service, rooms, account, always = service(notifier)

    initial = await sync(sync_service, None)
    assert initial["called"] == ["rooms", "account_data", "always"]
    since = SyncToken.parse(initial["next_batch"])

    # Nothing moved: only the provider without streams runs.
    idle = await sync(sync_service, since)
    assert idle["called"] == ["always"]

    notifier.notify("typing", 1)
    assert (await sync(sync_service, since))["called"] == ["always"]

    notifier.notify("events", 11)
    moved = await sync(sync_service, since)
    assert moved["called"] == ["rooms", "always"]
    assert rooms.calls[-1] == (since, SyncToken.parse(moved["next_batch"]))

    notifier.notify("account_data", 4)
    assert (await sync(sync_service, since))["called"] == ["rooms", "account_data", "always"]

    # full_state: everything, whatever moved.
    latest = SyncToken.parse(moved["next_batch"])
    latest = SyncToken({**latest.positions, "account_data": 4})
    assert (await sync(sync_service, latest, full_state=True))["called"] == [
        "rooms",
        "account_data",
        "always",
    ]
    assert len(account.calls) == 3
    assert len(always.calls) == 6


async def test_a_token_ahead_of_the_server_counts_as_moved():
    """A token from before a restart of an in-memory stream can be ahead:
    the provider decides what that means, so it is called."""
    notifier = Notifier()
    notifier.notify("events", 5)
    sync_service, rooms, _, _ = service(notifier)
    ahead = SyncToken({"events": 9})
    assert (await sync(sync_service, ahead))["called"] == ["rooms", "always"]
    assert rooms.calls[-1][0] == ahead


class OneRoom:
    async def rooms_for_user(self, user_id: str, membership: str = "join") -> list[str]:
        return ["!mine:example.org"]


async def test_a_woken_poll_skips_streams_that_moved_only_for_others():
    """A long poll woken by a message in its room reads the rooms' part, not
    the account data of another user that moved meanwhile; providers see
    what moved for their user in `request.moved`."""
    notifier = Notifier()
    for stream in ("events", "account_data", "to_device", "device_lists"):
        notifier.notify(stream, 1)
    rooms = Recorder("rooms", ("events",))
    account = Recorder("account_data", ("account_data",))
    seen: list[frozenset[str] | None] = []
    built_twice = asyncio.Event()

    class Always:
        async def add(self, request: SyncRequest, response: dict[str, Any]) -> None:
            seen.append(request.moved)
            if len(seen) == 2:
                built_twice.set()
            if rooms.calls[-1] == (request.since, request.now) and request.since is not None:
                response["rooms"] = {"join": {"!mine:example.org": {"timeline": ["news"]}}}

    sync_service = SyncService(notifier, [rooms, account, Always()], OneRoom())
    since = SyncToken.parse((await sync(sync_service, None))["next_batch"])

    async def poll() -> dict[str, Any]:
        return await sync_service.sync(
            ALICE,
            since=since,
            timeout_ms=10_000,
            full_state=False,
            filter={},
            set_presence="online",
        )

    waiting = asyncio.ensure_future(poll())
    await built_twice.wait()
    # Others' news: bob's account data and to-device message, then a
    # message in alice's room and a device change of a user sharing it.
    notifier.notify("account_data", 2, users=["@bob:example.org"])
    notifier.notify("to_device", 2, users=["@bob:example.org"])
    notifier.notify("events", 2, rooms=["!mine:example.org"])
    response = await asyncio.wait_for(waiting, 5)
    assert response["rooms"]["join"]["!mine:example.org"]["timeline"] == ["news"]
    assert len(account.calls) == 1  # the initial sync only
    assert seen[-1] == frozenset({"events"})
    woken = SyncRequest(ALICE, since, SyncToken.parse(response["next_batch"]), {}, False, "")
    assert not woken.quiet("to_device")  # nothing known: not quiet
