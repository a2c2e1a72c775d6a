"""Our users' membership in rooms other servers host: the outbound handshakes.

Joining goes make_join -> fill in and sign the template -> send_join (v2,
v1 for servers that do not know it), then the answer is checked before
anything is stored: every state and auth chain event's signatures and
content hash, every one of them against its auth events, the create event
against the room id and version, and our join against the state. Leaving a
room we only have an invite to, and knocking, go make_leave / make_knock ->
send_leave / send_knock, and the result is stored out of band. Inviting
another server's user sends the invite to their server, which signs it too.
A restricted room's make_join may name a user of the resident server who
vouches for the join: that server's signature must then come back on the
join (send_join's `event`). In a restricted room this server is already in,
but where none of its members may invite, a server whose member may vouches
and the join enters our copy of the room like any event (`join_vouched`).
The room service reaches other servers through this object
(homeserver/rooms/remote.py).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from signedjson.types import SigningKey

from federation.keys import KeyRing
from federation.membership_checks import check_stripped_state, checks_stripped_state
from federation.queries import FederationQueries, server_of
from federation.transport import FederationClient, FederationError
from federation.verification import verify_pdu_signatures
from homeserver.errors import MatrixError, not_found
from homeserver.events.auth import check_auth, check_auth_events_selection
from homeserver.events.errors import AuthError, InvalidEventError, SignatureError
from homeserver.events.event import Event, StateKey, parse_event
from homeserver.events.hashing import check_content_hash
from homeserver.events.redaction import redact
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, EventFormat, RoomVersion
from homeserver.events.signing import key_validity_ts, sign_event
from homeserver.rooms.pipeline import EventPipeline
from homeserver.rooms.restricted import AUTHORISER_KEY
from storage.database import now_ms
from storage.events import StoredEvent

logger = logging.getLogger(__name__)

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"
CREATE_KEY: StateKey = ("m.room.create", "")
# Room versions whose joins we can make, sent as make_join's `ver`.
SUPPORTED_VERSIONS = sorted(KNOWN_ROOM_VERSIONS, key=int)
KNOCK_VERSIONS = [v for v in SUPPORTED_VERSIONS if KNOWN_ROOM_VERSIONS[v].knock_join_rule]


class BadAnswer(Exception):
    """A resident server's answer that must not be trusted (bad signature,
    event failing auth, wrong room): the next server is tried."""


def _q(segment: str) -> str:
    return quote(segment, safe="")


def _unversioned(answer: Any) -> Any:
    """v1 membership endpoints answer [200, body]; v2 ones the body."""
    if isinstance(answer, list) and len(answer) == 2 and isinstance(answer[1], dict):
        return answer[1]
    return answer


def _parse(pdu: Any, room_version: RoomVersion, room_id: str) -> Event:
    """An event of another server's answer, without its `unsigned` (what the
    sender's server said about it is not kept as part of the event)."""
    if not isinstance(pdu, Mapping):
        raise BadAnswer("an event is not an object")
    try:
        event = parse_event({k: v for k, v in pdu.items() if k != "unsigned"}, room_version)
    except InvalidEventError as e:
        raise BadAnswer(f"invalid event: {e}") from None
    if event.room_id != room_id:
        raise BadAnswer(f"event {event.event_id} is from another room")
    return event


class RemoteMembership:
    """Implements homeserver.rooms.remote.RemoteRooms.

    The federation client and key ring are made with the federation
    listener, after the room service: they are reached through callables.
    """

    def __init__(
        self,
        client: Callable[[], FederationClient],
        keys: Callable[[], KeyRing],
        pipeline: EventPipeline,
        queries: FederationQueries,
        *,
        server_name: str,
        signing_key: SigningKey,
    ) -> None:
        self._queries = queries
        self._client = client
        self._keys = keys
        self._pipeline = pipeline
        self._server_name = server_name
        self._signing_key = signing_key

    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]:
        answer = await self._queries.alias(alias)
        return answer["room_id"], answer["servers"]

    # Handshakes

    async def join(
        self, room_id: str, user_id: str, content: dict[str, Any], servers: Sequence[str]
    ) -> StoredEvent:
        async def attempt(server: str) -> StoredEvent:
            event = await self._make(server, "make_join", room_id, user_id, content, "join")
            answer = await self._send(server, "send_join", event, v2=True)
            state, chain, join = await self._check_join_answer(answer, event)
            create = next(e for e in state if e.state_tuple == CREATE_KEY)
            return await self._pipeline.join_remote_room(join, state, chain, create.sender)

        return await self._through(servers, attempt)

    async def join_vouched(
        self, room_id: str, user_id: str, content: dict[str, Any], servers: Sequence[str]
    ) -> StoredEvent:
        async def attempt(server: str) -> StoredEvent:
            event = await self._make(server, "make_join", room_id, user_id, content, "join")
            answer = await self._send(server, "send_join", event, v2=True)
            signed = answer.get("event") if isinstance(answer, dict) else None
            if signed is None:
                raise BadAnswer("send_join did not give back the join it authorised")
            join = self._same_event(signed, event)
            await _verify(self._keys(), join)
            return await self._pipeline.accept_remote(join)

        return await self._through(servers, attempt)

    async def leave(
        self, room_id: str, user_id: str, content: dict[str, Any], servers: Sequence[str]
    ) -> StoredEvent:
        async def attempt(server: str) -> StoredEvent:
            event = await self._make(server, "make_leave", room_id, user_id, content, "leave")
            await self._send(server, "send_leave", event, v2=True)
            return await self._pipeline.store_out_of_band_member(event, event.sender)

        return await self._through(servers, attempt)

    async def knock(
        self, room_id: str, user_id: str, content: dict[str, Any], servers: Sequence[str]
    ) -> StoredEvent:
        async def attempt(server: str) -> StoredEvent:
            event = await self._make(server, "make_knock", room_id, user_id, content, "knock")
            answer = await self._send(server, "send_knock", event, v2=False)
            stripped = answer.get("knock_room_state", []) if isinstance(answer, dict) else []
            if not isinstance(stripped, list):
                raise BadAnswer("knock_room_state is not a list")
            if checks_stripped_state(event.room_version):
                try:
                    await check_stripped_state(
                        self._keys(), stripped, event.room_id, event.room_version
                    )
                except MatrixError as e:
                    raise BadAnswer(f"knock_room_state: {e.message}") from None
            return await self._pipeline.store_out_of_band_member(
                event, event.sender, [s for s in stripped if isinstance(s, dict)]
            )

        return await self._through(servers, attempt)

    async def invite(self, event: Event, invite_room_state: list[dict[str, Any]]) -> Event:
        assert event.state_key is not None
        server = server_of(event.state_key)
        room_version = event.room_version
        path = f"/invite/{_q(event.room_id)}/{_q(event.event_id)}"
        body = {
            "room_version": room_version.identifier,
            "event": dict(event.pdu),
            "invite_room_state": invite_room_state,
        }
        try:
            try:
                answer = await self._client().put_json(server, V2 + path, body)
            except FederationError as e:
                if not _unrecognised(e) or room_version.identifier not in ("1", "2"):
                    raise
                old = {**event.pdu, "unsigned": {"invite_room_state": invite_room_state}}
                answer = _unversioned(await self._client().put_json(server, V1 + path, old))
        except FederationError as e:
            raise _refused(e) from None
        try:
            returned = self._same_event(
                answer.get("event") if isinstance(answer, dict) else None, event
            )
            await self._check_signature(returned.pdu, room_version, server)
        except BadAnswer as e:
            raise MatrixError(
                502, "M_UNKNOWN", f"{server} answered the invite badly: {e}"
            ) from None
        return returned

    async def _through(self, servers: Sequence[str], attempt: Callable[[str], Any]) -> StoredEvent:
        """Try `attempt` on each server in turn; the last failure is the answer."""
        failure: MatrixError = not_found("No known servers to reach the room through")
        for server in dict.fromkeys(servers):
            if server == self._server_name:
                continue
            try:
                return await attempt(server)
            except FederationError as e:
                logger.info("membership handshake through %s failed: %s", server, e)
                failure = _refused(e)
            except BadAnswer as e:
                logger.warning("%s answered a membership handshake badly: %s", server, e)
                failure = MatrixError(502, "M_UNKNOWN", f"{server} gave an invalid answer: {e}")
        raise failure

    async def _make(
        self,
        server: str,
        endpoint: str,
        room_id: str,
        user_id: str,
        content: dict[str, Any],
        membership: str,
    ) -> Event:
        """Ask `server` for a template and turn it into our signed event."""
        versions = KNOCK_VERSIONS if membership == "knock" else SUPPORTED_VERSIONS
        query = {"ver": versions} if membership != "leave" else None
        answer = await self._client().get_json(
            server, f"{V1}/{endpoint}/{_q(room_id)}/{_q(user_id)}", query=query
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("event"), dict):
            raise BadAnswer(f"{endpoint} gave no event template")
        room_version = KNOWN_ROOM_VERSIONS.get(str(answer.get("room_version", "1")))
        if room_version is None:
            raise BadAnswer("the room's version is not one we know")
        template = answer["event"]
        template_content = template.get("content")
        if (
            template.get("type") != "m.room.member"
            or template.get("sender") != user_id
            or template.get("state_key") != user_id
            or template.get("room_id") != room_id
            or not isinstance(template_content, dict)
            or template_content.get("membership") != membership
        ):
            raise BadAnswer(f"{endpoint} gave a template for something else")
        pdu = {
            k: v
            for k, v in template.items()
            if k not in ("hashes", "signatures", "unsigned", "event_id")
        }
        pdu["content"] = {**template_content, **content, "membership": membership}
        pdu["origin_server_ts"] = now_ms()
        if "origin" in pdu:
            pdu["origin"] = self._server_name
        if room_version.event_format is EventFormat.V1:
            pdu["event_id"] = f"${secrets.token_urlsafe(18)}:{self._server_name}"
        try:
            return parse_event(
                sign_event(pdu, self._server_name, self._signing_key, room_version), room_version
            )
        except InvalidEventError as e:
            raise BadAnswer(f"the template does not make a valid event: {e}") from None

    async def _send(self, server: str, endpoint: str, event: Event, *, v2: bool) -> Any:
        path = f"/{endpoint}/{_q(event.room_id)}/{_q(event.event_id)}"
        client = self._client()
        if not v2:
            return await client.put_json(server, V1 + path, dict(event.pdu))
        try:
            return await client.put_json(server, V2 + path, dict(event.pdu))
        except FederationError as e:
            if not _unrecognised(e):
                raise
        return _unversioned(await client.put_json(server, V1 + path, dict(event.pdu)))

    async def _check_join_answer(
        self, answer: Any, ours: Event
    ) -> tuple[list[Event], list[Event], Event]:
        """The state and auth chain of a send_join answer, each event checked,
        and the join as the resident server signed it."""
        if not isinstance(answer, dict):
            raise BadAnswer("send_join answered with something that is not an object")
        room_version, room_id = ours.room_version, ours.room_id
        raw_state, raw_chain = answer.get("state"), answer.get("auth_chain")
        if not isinstance(raw_state, list) or not isinstance(raw_chain, list):
            raise BadAnswer("send_join gave no state or auth chain")
        state = [await self._checked(p, room_version, room_id) for p in raw_state]
        chain = [await self._checked(p, room_version, room_id) for p in raw_chain]
        by_key = {e.state_tuple: e for e in state if e.is_state}
        if len(by_key) != len(state):
            raise BadAnswer("the state holds a non-state event or two events for one key")
        create = by_key.get(CREATE_KEY)
        if create is None:
            raise BadAnswer("the state has no create event")
        if str(create.content.get("room_version", "1")) != room_version.identifier:
            raise BadAnswer("the create event is of another room version")
        if room_version.room_id_from_create_event and room_id != "!" + create.event_id[1:]:
            raise BadAnswer("the room id is not the create event's")
        _check_all_auth([*state, *chain], create)
        join = ours
        if answer.get("event") is not None:
            join = self._same_event(answer["event"], ours)
            await _verify(self._keys(), join)
        elif AUTHORISER_KEY in ours.content:
            # A restricted join is valid only with the authorising server's signature.
            raise BadAnswer("send_join did not give back the join it authorised")
        try:
            check_auth(room_version, join, by_key)
        except AuthError as e:
            raise BadAnswer(f"our join is not allowed by the room's state: {e}") from None
        return state, chain, join

    async def _checked(self, pdu: Any, room_version: RoomVersion, room_id: str) -> Event:
        """Parse one event of an answer and check its signatures; an event
        whose content hash does not match is taken redacted, as the spec says."""
        event = _parse(pdu, room_version, room_id)
        await _verify(self._keys(), event)
        if not check_content_hash(event.pdu):
            event = _parse(redact(event.pdu, room_version), room_version, room_id)
        return event

    def _same_event(self, pdu: Any, ours: Event) -> Event:
        """The resident or invited server's copy of our event: the same event
        with more signatures, nothing else changed."""
        returned = _parse(pdu, ours.room_version, ours.room_id)

        def unsigned(p: Mapping[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in p.items() if k not in ("signatures", "unsigned")}

        if returned.event_id != ours.event_id or unsigned(returned.pdu) != unsigned(ours.pdu):
            raise BadAnswer("the event came back changed")
        ours_signatures = ours.pdu["signatures"].get(self._server_name)
        if returned.pdu.get("signatures", {}).get(self._server_name) != ours_signatures:
            raise BadAnswer("the event came back without our signature")
        return returned

    async def _check_signature(
        self, pdu: Mapping[str, Any], room_version: RoomVersion, server: str
    ) -> None:
        at_ts = key_validity_ts(pdu, room_version) or 0
        try:
            await self._keys().verify_json(redact(pdu, room_version), server, at_ts)
        except SignatureError as e:
            raise BadAnswer(f"{server}'s signature does not verify: {e}") from None


async def _verify(keys: KeyRing, event: Event) -> None:
    try:
        await verify_pdu_signatures(keys, event.pdu, event.room_version)
    except InvalidEventError as e:
        raise BadAnswer(f"event {event.event_id}: {e}") from None


def _check_all_auth(events: Sequence[Event], create: Event) -> None:
    """Every event passes the auth rules against its own auth events, all of
    which must be in the answer."""
    by_id = {e.event_id: e for e in events}
    for event in by_id.values():
        room_version = event.room_version
        missing = [i for i in event.auth_event_ids if i not in by_id]
        if missing:
            raise BadAnswer(f"event {event.event_id} has auth events missing: {missing}")
        try:
            own = check_auth_events_selection(
                room_version, event, [by_id[i] for i in event.auth_event_ids], create
            )
            check_auth(room_version, event, own)
        except AuthError as e:
            raise BadAnswer(f"event {event.event_id} fails the auth rules: {e}") from None


def _unrecognised(e: FederationError) -> bool:
    """A server that does not know a v2 endpoint: fall back to v1."""
    return e.status == 404 or (e.status == 400 and e.errcode == "M_UNRECOGNIZED")


def _refused(e: FederationError) -> MatrixError:
    """What the user sees of a remote server's refusal."""
    if e.status is not None and 400 <= e.status < 500 and e.errcode:
        message = e.body.get("error") if isinstance(e.body, dict) else None
        return MatrixError(e.status, e.errcode, str(message or e))
    return MatrixError(502, "M_UNKNOWN", f"Could not reach the room's server: {e}")
