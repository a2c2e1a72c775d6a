"""A scripted remote server taking part in one of our rooms, for receiver tests.

`RemoteRoom.join` joins a user of the remote to a local room through
make_join / send_join (the committed flow), keeps the room's events and state
as the remote knows them, and builds new PDUs signed with the remote's key.
`serve_dag` lets the remote answer our server's /event, /event_auth,
/state_ids and /get_missing_events requests from that knowledge.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from homeserver.events.builder import build_event
from homeserver.events.event import Event, StateKey, parse_event
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote, now_ms
from tests.federation.test_joins import make_join, send_join, sign_join

V1 = "/_matrix/federation/v1"
_txn_ids = itertools.count()


class RemoteRoom:
    def __init__(
        self, remote: ScriptedRemote, hs: RunningServer, room_id: str, version: RoomVersion
    ) -> None:
        self.remote = remote
        self.hs = hs
        self.room_id = room_id
        self.version = version
        self.events: dict[str, Event] = {}
        # State after each event, as the remote sees it.
        self.state_after: dict[str, dict[StateKey, Event]] = {}
        self.state: dict[StateKey, Event] = {}
        self.heads: list[str] = []
        # How many events /get_missing_events answers with at most (None: all).
        self.missing_events_limit: int | None = None

    @classmethod
    async def join(
        cls, hs: RunningServer, remote: ScriptedRemote, room_id: str, localpart: str = "bob"
    ) -> RemoteRoom:
        room = cls(remote, hs, room_id, KNOWN_ROOM_VERSIONS["10"])
        await room.join_user(localpart)
        return room

    def user(self, localpart: str) -> str:
        return f"@{localpart}:{self.remote.server_name}"

    async def join_user(self, localpart: str) -> Event:
        user_id = self.user(localpart)
        status, made = await make_join(self.remote, self.hs, self.room_id, user_id, "9,10,11,12")
        assert status == 200, made
        version = made["room_version"]
        self.version = KNOWN_ROOM_VERSIONS[version]
        status, joined, event_id = await send_join(
            self.remote,
            self.hs,
            self.room_id,
            sign_join(self.remote, made["event"], version),
            version,
        )
        assert status == 200, joined
        for pdu in [*joined["auth_chain"], *joined["state"]]:
            self._know(parse_event(pdu, self.version))
        state = {}
        for pdu in joined["state"]:
            event = parse_event(pdu, self.version)
            state[event.state_tuple] = event
        join = parse_event(joined["event"], self.version)
        self.state = state
        self.add(join)
        return join

    def _know(self, event: Event) -> None:
        self.events[event.event_id] = event

    def add(self, event: Event) -> Event:
        """Make `event` the remote's latest: the head of the DAG it builds on."""
        self._know(event)
        before = self.state_before(event)
        after = dict(before)
        if event.state_key is not None:
            after[event.state_tuple] = event
        self.state_after[event.event_id] = after
        self.state = after
        self.heads = [event.event_id]
        return event

    def state_before(self, event: Event) -> dict[StateKey, Event]:
        """The state before a linear event: after its first known prev event."""
        for prev in event.prev_event_ids:
            if prev in self.state_after:
                return self.state_after[prev]
        return dict(self.state)

    def build(
        self,
        type: str,
        content: dict[str, Any],
        *,
        sender: str = "bob",
        state_key: str | None = None,
        prev: Iterable[str] | None = None,
        state: dict[StateKey, Event] | None = None,
        add: bool = True,
    ) -> Event:
        """A new event signed by the remote, on `prev` (default: the heads),
        its auth events chosen from `state` (default: the state after prev)."""
        prev_ids = list(prev) if prev is not None else self.heads
        if state is None:
            state = self.state_after.get(prev_ids[0], self.state)
        event = build_event(
            self.version,
            room_id=self.room_id,
            type=type,
            sender=self.user(sender) if not sender.startswith("@") else sender,
            content=content,
            state_key=state_key,
            prev_events=[self.events[i] for i in prev_ids],
            state=lambda t, k: state.get((t, k)),
            origin_server_ts=now_ms(),
            server_name=self.remote.server_name,
            signing_key=self.remote.signing_key,
        )
        if add:
            self.add(event)
        else:
            self._know(event)
        return event

    def message(self, body: str, **kwargs: Any) -> Event:
        return self.build("m.room.message", {"msgtype": "m.text", "body": body}, **kwargs)

    async def learn(self, event_id: str) -> Event:
        """Fetch one of our server's events over federation, as the remote would."""
        status, body = await self.remote.request(self.hs, "GET", f"{V1}/event/{event_id}")
        assert status == 200, body
        event = parse_event(body["pdus"][0], self.version)
        return self.add(event)

    async def send(
        self,
        pdus: Iterable[Event | dict[str, Any]],
        edus: Iterable[dict[str, Any]] = (),
        txn_id: str | None = None,
    ) -> tuple[int, Any]:
        body = {
            "origin": self.remote.server_name,
            "origin_server_ts": now_ms(),
            "pdus": [dict(p.pdu) if isinstance(p, Event) else p for p in pdus],
            "edus": list(edus),
        }
        return await self.remote.request(
            self.hs, "PUT", f"{V1}/send/{txn_id or f'txn{next(_txn_ids)}'}", json_body=body
        )

    def auth_chain(self, event_ids: Iterable[str]) -> set[str]:
        chain: set[str] = set()
        todo = [a for i in event_ids for a in self.events[i].auth_event_ids]
        while todo:
            event_id = todo.pop()
            if event_id not in chain and event_id in self.events:
                chain.add(event_id)
                todo.extend(self.events[event_id].auth_event_ids)
        return chain

    def missing_between(self, earliest: list[str], latest: list[str], limit: int) -> list[str]:
        """Walk back from `latest` through prev events to `earliest`: oldest first."""
        seen: set[str] = set()
        found: list[Event] = []
        todo = [p for i in latest if i in self.events for p in self.events[i].prev_event_ids]
        while todo:
            event_id = todo.pop()
            if event_id in seen or event_id in earliest or event_id not in self.events:
                continue
            seen.add(event_id)
            found.append(self.events[event_id])
            todo.extend(self.events[event_id].prev_event_ids)
        found.sort(key=lambda e: e.depth)
        if self.missing_events_limit is not None:
            limit = min(limit, self.missing_events_limit)
        return [e.event_id for e in found[len(found) - limit :]] if limit else []


def serve_dag(remote: ScriptedRemote, holder: dict[str, RemoteRoom]) -> None:
    """Routes answering our server's reads from `holder["room"]` (set once
    the room is joined); add before the remote starts."""

    def pdu(event: Event) -> dict[str, Any]:
        return dict(event.pdu)

    async def event(request: web.Request, origin: str, body: Any) -> Any:
        found = holder["room"].events[request.match_info["eventId"]]
        return {"origin": remote.server_name, "origin_server_ts": now_ms(), "pdus": [pdu(found)]}

    async def event_auth(request: web.Request, origin: str, body: Any) -> Any:
        room = holder["room"]
        chain = room.auth_chain([request.match_info["eventId"]])
        return {"auth_chain": [pdu(room.events[i]) for i in sorted(chain)]}

    async def state_ids(request: web.Request, origin: str, body: Any) -> Any:
        room = holder["room"]
        event_id = request.query["event_id"]
        state = room.state_before(room.events[event_id])
        ids = [e.event_id for e in state.values()]
        return {"pdu_ids": ids, "auth_chain_ids": sorted(room.auth_chain(ids))}

    async def missing(request: web.Request, origin: str, body: Any) -> Any:
        room = holder["room"]
        ids = room.missing_between(body["earliest_events"], body["latest_events"], body["limit"])
        return {"events": [pdu(room.events[i]) for i in ids]}

    router = remote.app.router
    router.add_get(V1 + "/event/{eventId}", remote.handler(event))
    router.add_get(V1 + "/event_auth/{roomId}/{eventId}", remote.handler(event_auth))
    router.add_get(V1 + "/state_ids/{roomId}", remote.handler(state_ids))
    router.add_post(V1 + "/get_missing_events/{roomId}", remote.handler(missing))
