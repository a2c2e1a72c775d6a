"""A room hosted by a ScriptedRemote (it is the resident server, not us): a
real, signed DAG built with the event builder and the remote's key, and the
membership endpoints a resident server serves for it (make_join/send_join,
make_leave/send_leave, make_knock/send_knock), plus invites it sends us."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from homeserver.events.auth import check_auth
from homeserver.events.builder import build_create_event, build_event
from homeserver.events.event import Event, StateKey, parse_event
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.events.signing import sign_event
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote, path_quote

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"
CREATE: StateKey = ("m.room.create", "")
NAME: StateKey = ("m.room.name", "")


def now_ms() -> int:
    return int(time.time() * 1000)


class HostedRoom:
    """A room on `remote`, created by @alice of that server."""

    def __init__(
        self, remote: ScriptedRemote, version: str = "10", join_rule: str = "public"
    ) -> None:
        self.remote = remote
        self.version: RoomVersion = KNOWN_ROOM_VERSIONS[version]
        self.alice = f"@alice:{remote.server_name}"
        content: dict[str, Any] = {"room_version": version}
        if not self.version.implicit_room_creator:
            content["creator"] = self.alice
        create = build_create_event(
            self.version,
            sender=self.alice,
            content=content,
            origin_server_ts=now_ms(),
            server_name=remote.server_name,
            signing_key=remote.signing_key,
            room_id=None
            if self.version.room_id_from_create_event
            else f"!room{now_ms()}:{remote.server_name}",
        )
        self.room_id = create.room_id
        self.events: list[Event] = [create]
        self.state: dict[StateKey, Event] = {CREATE: create}
        self.send("m.room.member", {"membership": "join"}, state_key=self.alice)
        # From room 12 the creator's power is implicit and may not be listed.
        users = {} if self.version.privileged_creators else {self.alice: 100}
        self.send(
            "m.room.power_levels",
            {"users": users, "invite": 0, "kick": 50, "ban": 50},
            state_key="",
        )
        self.send("m.room.join_rules", {"join_rule": join_rule}, state_key="")
        self.send("m.room.name", {"name": "The remote room"}, state_key="")
        self.send("m.room.message", {"msgtype": "m.text", "body": "hello"})
        # (endpoint, event) of every membership handshake our server made.
        self.handshakes: list[tuple[str, Event]] = []

    def build(
        self, type: str, content: dict[str, Any], *, state_key: str | None = None, sender: str = ""
    ) -> Event:
        """An event on top of the room's last one, signed by the remote (unchecked)."""
        return build_event(
            self.version,
            room_id=self.room_id,
            type=type,
            sender=sender or self.alice,
            content=content,
            state_key=state_key,
            prev_events=[self.events[-1]],
            state=lambda t, k: self.state.get((t, k)),
            origin_server_ts=now_ms(),
            server_name=self.remote.server_name,
            signing_key=self.remote.signing_key,
        )

    def send(
        self, type: str, content: dict[str, Any], *, state_key: str | None = None, sender: str = ""
    ) -> Event:
        return self.add(self.build(type, content, state_key=state_key, sender=sender))

    def add(self, event: Event) -> Event:
        """Authorise `event` against the room's state and append it."""
        check_auth(self.version, event, self.state)
        self.events.append(event)
        if event.state_key is not None:
            self.state[(event.type, event.state_key)] = event
        return event

    def auth_chain(self, events: list[Event]) -> list[Event]:
        by_id = {e.event_id: e for e in self.events}
        seen: dict[str, Event] = {}
        todo = [a for e in events for a in e.auth_event_ids]
        if self.version.room_id_from_create_event:
            todo.append(self.state[CREATE].event_id)
        while todo:
            event_id = todo.pop()
            if event_id not in seen:
                seen[event_id] = by_id[event_id]
                todo.extend(by_id[event_id].auth_event_ids)
        return list(seen.values())

    def template(self, user_id: str, membership: str) -> dict[str, Any]:
        """A make_* answer: the member event built here, unsigned."""
        event = self.build(
            "m.room.member", {"membership": membership}, state_key=user_id, sender=user_id
        )
        pdu = {k: v for k, v in event.pdu.items() if k not in ("hashes", "signatures", "event_id")}
        return {"room_version": self.version.identifier, "event": pdu}

    def received(self, body: Any, event_id: str) -> Event:
        """Parse an event our server sent: its id must match, our signature be on it."""
        event = parse_event(body, self.version, event_id=event_id)
        assert event.pdu["signatures"].get("localhost"), event.pdu
        return event

    def countersigned(self, event: Event) -> dict[str, Any]:
        return sign_event(
            {k: v for k, v in event.pdu.items() if k != "unsigned"},
            self.remote.server_name,
            self.remote.signing_key,
            self.version,
        )

    def stripped(self, key: StateKey) -> dict[str, Any]:
        event = self.state[key]
        return {
            "type": event.type,
            "state_key": event.state_key,
            "content": dict(event.content),
            "sender": event.sender,
        }

    def serve(
        self,
        send_join_answer: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        *,
        v2: bool = True,
    ) -> None:
        """Add the resident server's membership endpoints to the remote's app
        (before it starts). `send_join_answer` may tamper with the answer;
        without `v2` only the v1 send_join and send_leave are served (their
        answers are [200, body])."""
        remote = self.remote
        router = remote.app.router

        async def make(request: web.Request, _origin: str, _body: Any) -> Any:
            membership = request.path.split("/")[4].removeprefix("make_")
            return self.template(request.match_info["userId"], membership)

        async def send_join(request: web.Request, _origin: str, body: Any) -> Any:
            before = [self.state[k] for k in sorted(self.state)]
            event = self.received(body, request.match_info["eventId"])
            self.handshakes.append(("send_join", event))
            self.add(event)
            answer = {
                "origin": remote.server_name,
                "state": [dict(e.pdu) for e in before],
                "auth_chain": [dict(e.pdu) for e in self.auth_chain(before)],
                "event": self.countersigned(event),
                "members_omitted": False,
            }
            return send_join_answer(answer) if send_join_answer else answer

        async def send_other(request: web.Request, _origin: str, body: Any) -> Any:
            event = self.received(body, request.match_info["eventId"])
            kind = request.path.split("/")[4]
            self.handshakes.append((kind, event))
            self.add(event)
            if kind == "send_knock":
                return {"knock_room_state": [self.stripped(CREATE), self.stripped(NAME)]}
            return {}

        for name in ("make_join", "make_leave", "make_knock"):
            router.add_get(f"{V1}/{name}/{{roomId}}/{{userId}}", remote.handler(make))
        if v2:
            router.add_put(f"{V2}/send_join/{{roomId}}/{{eventId}}", remote.handler(send_join))
            router.add_put(f"{V2}/send_leave/{{roomId}}/{{eventId}}", remote.handler(send_other))
        else:

            def v1(answer: Any) -> Any:
                async def respond(request: web.Request, origin: str, body: Any) -> Any:
                    return [200, await answer(request, origin, body)]

                return respond

            router.add_put(f"{V1}/send_join/{{roomId}}/{{eventId}}", remote.handler(v1(send_join)))
            router.add_put(
                f"{V1}/send_leave/{{roomId}}/{{eventId}}", remote.handler(v1(send_other))
            )
        router.add_put(f"{V1}/send_knock/{{roomId}}/{{eventId}}", remote.handler(send_other))

    async def invite(self, hs: RunningServer, user_id: str) -> tuple[int, Any, Event]:
        """Invite one of our users: PUT /v2/invite to our server."""
        event = self.build("m.room.member", {"membership": "invite"}, state_key=user_id)
        status, body = await self.remote.request(
            hs,
            "PUT",
            f"{V2}/invite/{path_quote(self.room_id)}/{path_quote(event.event_id)}",
            json_body={
                "room_version": self.version.identifier,
                "event": dict(event.pdu),
                "invite_room_state": [self.stripped(CREATE), self.stripped(NAME)],
            },
        )
        if status == 200:
            self.add(parse_event(body["event"], self.version))
        return status, body, event
