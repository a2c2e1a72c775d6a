"""Creating rooms, sending events and reading room state, for local users."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

from homeserver.accounts.suspension import check_event, check_membership, refuse_if_suspended
from homeserver.appservice.aliases import AppServiceAliases
from homeserver.config import RequestLimits
from homeserver.errors import MatrixError, forbidden, invalid_param, not_found
from homeserver.identifiers import is_valid_user_id
from homeserver.profile import ProfileService
from homeserver.request_limits import DEFAULT_LIMITS, check_count
from homeserver.requester import Requester
from homeserver.retention.policy import check_policy_content
from homeserver.rooms.canonical_alias import check_canonical_alias
from homeserver.rooms.create import create_content, initial_events, parse_create_request
from homeserver.rooms.guest_access import GuestAccessRules
from homeserver.rooms.pipeline import EventPipeline
from homeserver.rooms.redaction_send import REDACTION, redaction_from_content
from homeserver.rooms.remote import RemoteRooms
from homeserver.rooms.remote_invites import ANSWER_WITHIN_S, RemoteInvites
from homeserver.rooms.restricted import AUTHORISER_KEY, NoLocalAuthoriser, RestrictedJoins
from homeserver.rooms.stripped import stripped_room_state
from storage.events import EventStore, StoredEvent
from storage.remote_membership import RemoteMembershipStore
from storage.retention import RETENTION_TYPE
from storage.rooms import AliasInUseError, RoomStore

# Membership actions of the client API and the membership each one sets.
_ACTIONS = {
    "invite": "invite",
    "join": "join",
    "knock": "knock",
    "leave": "leave",
    "kick": "leave",
    "ban": "ban",
    "unban": "leave",
}
# Memberships whose content carries the target's display name and avatar.
_WITH_PROFILE = ("invite", "join", "knock")


class RoomModeration(Protocol):
    """The server admins' decisions about users and rooms (homeserver/admin)."""

    def is_shadow_banned(self, user_id: str) -> bool: ...

    async def is_blocked(self, room_id: str) -> bool: ...

    def fake_event_id(self) -> str: ...


class InvitePolicy(Protocol):
    """Whether a local user accepts invites (homeserver/invite_permission.py)."""

    async def check_invite(self, invitee: str) -> None: ...


class FakeAccepted(MatrixError):
    """The answer to a shadow-banned sender: success, for something that never happened."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(200, "", "")
        self._body = body

    def to_json(self) -> dict[str, Any]:
        return self._body


class RoomService:
    def __init__(
        self,
        pipeline: EventPipeline,
        events: EventStore,
        rooms: RoomStore,
        profiles: ProfileService,
        *,
        server_name: str,
        default_room_version: str,
        moderation: RoomModeration | None = None,
        remote: RemoteRooms | None = None,
        remote_memberships: RemoteMembershipStore | None = None,
        restricted: RestrictedJoins | None = None,
        guest_access: GuestAccessRules | None = None,
        limits: RequestLimits = DEFAULT_LIMITS,
        appservice_aliases: AppServiceAliases | None = None,
        invite_policy: InvitePolicy | None = None,
    ) -> None:
        self._pipeline = pipeline
        # Local users who block invites (MSC4380) are refused them here.
        self._invite_policy = invite_policy
        # Appservices' exclusive aliases, and the rooms they create on demand.
        self._appservice_aliases = appservice_aliases
        self._events = events
        self._rooms = rooms
        self._profiles = profiles
        self._server_name = server_name
        self._default_room_version = default_room_version
        self._moderation = moderation
        # Rooms hosted elsewhere; None when this server does not federate.
        self._remote = remote
        self._remote_memberships = remote_memberships
        # Picks the member vouching for joins to rooms with a restricted join rule.
        self._restricted = restricted
        # Which rooms this server's guest accounts may join.
        self._guest_access = guest_access
        self._limits = limits
        self._remote_invites = RemoteInvites(self._invite_for_create)
        # One handshake with other servers per room at a time: a second local
        # user joining the same remote room waits, then joins locally.
        self._remote_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def member_content(self, user_id: str, membership: str) -> dict[str, Any]:
        """A join's content carries the joiner's current display name and avatar."""
        content: dict[str, Any] = {"membership": membership}
        try:
            profile = await self._profiles.get_profile(user_id)
        except MatrixError:
            return content
        for key in ("displayname", "avatar_url"):
            if key in profile:
                content[key] = profile[key]
        return content

    async def create_room(self, requester: Requester, body: dict[str, Any]) -> str:
        """The spec's createRoom: checked whole first, then sent event by event.

        Returns the room id. A request the auth rules would refuse part-way
        (say, power levels that leave the creator unable to set the join
        rules) fails with 400 before anything is written.
        """
        user_id = requester.user_id
        refuse_if_suspended(requester, "Creating rooms")
        req = parse_create_request(
            body,
            server_name=self._server_name,
            default_room_version=self._default_room_version,
            limits=self._limits,
        )
        if req.alias is not None and self._appservice_aliases is not None:
            self._appservice_aliases.check_create(requester, req.alias)
        if req.alias is not None and await self._rooms.room_for_alias(req.alias) is not None:
            raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")
        content = create_content(req, user_id)
        # Other servers' users are invited after the room is made, through
        # their servers (RemoteInvites); ours with the room's first events.
        remote_invitees = [i for i in req.invites if self._needs_remote_invite(i)]
        local_invitees = [i for i in req.invites if i not in remote_invitees]
        for invitee in local_invitees:
            # Refused before anything is made: the request changes nothing.
            await self._check_invite(invitee)
        invites = {i: await self.member_content(i, "invite") for i in local_invitees}
        events = initial_events(req, user_id, await self.member_content(user_id, "join"), invites)
        self._pipeline.rehearse_new_room(req.room_version, user_id, content, events)

        create = await self._pipeline.create_room(req.room_version, user_id, content)
        room_id = create.event.room_id
        if req.alias is not None:
            try:
                await self._rooms.create_alias(req.alias, room_id, user_id)
            except AliasInUseError:
                raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken") from None
        if req.public:
            await self._rooms.set_public(room_id, True)
        for type, state_key, event_content in events:
            await self._pipeline.send(
                room_id, type=type, sender=user_id, content=event_content, state_key=state_key
            )
        if remote_invitees:
            extra = {"is_direct": True} if req.is_direct else {}
            job = self._remote_invites.start(user_id, room_id, remote_invitees, extra)
            await asyncio.wait({job}, timeout=ANSWER_WITHIN_S)
        return room_id

    async def _invite_for_create(
        self, sender: str, room_id: str, target: str, extra: dict[str, Any]
    ) -> StoredEvent:
        return await self._invite_remote(sender, room_id, target, None, extra)

    async def stop(self) -> None:
        """Give up the remote invites still waiting for their servers."""
        await self._remote_invites.stop()

    async def send_event(
        self,
        requester: Requester,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        *,
        state_key: str | None = None,
        txn_id: str | None = None,
        redacts: str | None = None,
        origin_server_ts: int | None = None,
    ) -> StoredEvent:
        if event_type == "m.room.create":
            raise forbidden("A room has one create event, made by createRoom")
        if requester.suspended:
            redacted_sender = None
            if event_type == "m.room.redaction":
                redacted_sender = await self._sender_of(redacts or content.get("redacts"))
            check_event(requester, event_type, content, redacted_sender)
        if self._moderation is not None and self._moderation.is_shadow_banned(requester.user_id):
            # As Synapse: the sender sees success; nobody sees the event.
            raise FakeAccepted({"event_id": self._moderation.fake_event_id()})
        if event_type == "m.room.canonical_alias" and state_key == "":
            await self._check_canonical_alias(room_id, content)
        if event_type == RETENTION_TYPE:
            check_policy_content(content)
        if event_type == "m.room.member" and content.get("membership") == "invite":
            await self._check_invite(state_key or "")
        if event_type == REDACTION and state_key is None and redacts is None:
            content, redacts = redaction_from_content(content)
        if state_key is not None:
            same = await self._unchanged_state(
                requester.user_id, room_id, event_type, state_key, content
            )
            if same is not None:
                return same
        return await self._pipeline.send(
            room_id,
            type=event_type,
            sender=requester.user_id,
            content=content,
            state_key=state_key,
            redacts=redacts,
            txn=(requester.device_id, txn_id) if txn_id is not None else None,
            origin_server_ts=origin_server_ts,
        )

    async def _sender_of(self, event_id: Any) -> str | None:
        """The sender of an event this server has, else None."""
        if not isinstance(event_id, str):
            return None
        stored = (await self._events.get_events([event_id])).get(event_id)
        return stored.event.sender if stored is not None else None

    async def _check_invite(self, invitee: str) -> None:
        """403 M_INVITE_BLOCKED if `invitee` is a local user blocking invites."""
        if self._invite_policy is not None and invitee.partition(":")[2] == self._server_name:
            await self._invite_policy.check_invite(invitee)

    async def _check_canonical_alias(self, room_id: str, content: dict[str, Any]) -> None:
        """400 unless the aliases the new event adds point to the room."""
        event_id = await self._events.current_state_event_id(room_id, "m.room.canonical_alias", "")
        current = (await self._events.get_events([event_id])).get(event_id) if event_id else None
        previous = current.event.content if current is not None else None
        await check_canonical_alias(room_id, content, previous, self._alias_room)

    async def _alias_room(self, alias: str) -> str | None:
        """The room an alias points to, asking its server if it is another's."""
        if self._remote is not None and alias.partition(":")[2] != self._server_name:
            try:
                room_id, _ = await self._remote.resolve_alias(alias)
            except MatrixError:
                return None
            return room_id
        return await self._rooms.room_for_alias(alias)

    async def _unchanged_state(
        self, sender: str, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> StoredEvent | None:
        """The current state event, if `sender` sent it with this very content.

        Like Synapse, setting a state event to what the same member already set
        answers with the existing event instead of adding a copy to the room.
        """
        event_id = await self._events.current_state_event_id(room_id, event_type, state_key)
        if event_id is None:
            return None
        current = (await self._events.get_events([event_id])).get(event_id)
        if current is None or current.event.sender != sender or current.event.content != content:
            return None
        membership, _ = await self._rooms.membership(room_id, sender)
        return current if membership == "join" or event_type == "m.room.member" else None

    async def resolve_room(self, room_id_or_alias: str) -> str:
        if room_id_or_alias.startswith("#"):
            room_id = await self._rooms.room_for_alias(room_id_or_alias)
            if room_id is None and self._appservice_aliases is not None:
                # A bridge creates the room of an alias in its namespace on demand.
                if await self._appservice_aliases.query(room_id_or_alias):
                    room_id = await self._rooms.room_for_alias(room_id_or_alias)
            if room_id is None:
                raise not_found("Room alias not found")
            return room_id
        if not room_id_or_alias.startswith("!"):
            raise MatrixError(400, "M_INVALID_PARAM", "Expected a room id or alias")
        return room_id_or_alias

    async def joined_rooms(self, user_id: str) -> list[str]:
        return await self._rooms.rooms_for_user(user_id)

    async def forget(self, requester: Requester, room_id: str) -> None:
        """Hide a room the user has left; refused while they are still in it."""
        membership, _ = await self._rooms.membership(room_id, requester.user_id)
        if membership in ("join", "invite", "knock"):
            raise MatrixError(400, "M_UNKNOWN", "Leave the room before forgetting it")
        if membership is None and not await self._rooms.exists(room_id):
            raise not_found("Unknown room")
        await self._rooms.forget(requester.user_id, room_id)

    async def set_membership(
        self,
        requester: Requester,
        room_id: str,
        target: str,
        action: str,
        *,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
        servers: Sequence[str] = (),
    ) -> StoredEvent:
        """Invite, join, knock, leave, kick, ban or unban: one member event.

        The auth rules decide who may do what. Before them, as in Synapse: a
        kick needs a target in the room, an unban a banned one, and a request
        that repeats the target's current member event (same sender, same
        content) answers with that event instead of sending a copy.
        """
        membership = _ACTIONS[action]
        check_membership(requester, membership)
        if not is_valid_user_id(target):
            raise invalid_param("Invalid user id")
        if membership == "join" and requester.is_guest and self._guest_access is not None:
            # Guests are this server's notion: no auth rule checks this for us.
            await self._guest_access.check_join(room_id)
        if extra:
            # The membership, and the restricted-join authoriser, are the server's to set.
            extra = {k: v for k, v in extra.items() if k not in ("membership", AUTHORISER_KEY)}
        elsewhere = await self._own_membership_elsewhere(
            requester.user_id, room_id, target, action, reason, extra, servers
        )
        if elsewhere is not None:
            return elsewhere
        if not await self._rooms.exists(room_id):
            raise not_found("Unknown room")
        if (
            membership in _WITH_PROFILE
            and self._moderation is not None
            and await self._moderation.is_blocked(room_id)
        ):
            raise forbidden("This room has been blocked on this server")
        if (
            action == "invite"
            and self._moderation is not None
            and self._moderation.is_shadow_banned(requester.user_id)
        ):
            # As Synapse: a shadow-banned user's invites seem to work and reach nobody.
            raise FakeAccepted({})
        if action == "invite":
            await self._check_invite(target)
        if action == "invite" and self._needs_remote_invite(target):
            return await self._invite_remote(requester.user_id, room_id, target, reason, extra)
        current, current_id = await self._rooms.membership(room_id, target)
        if action == "kick" and current not in ("join", "invite", "knock"):
            raise forbidden("The target user is not in the room")
        if action == "unban" and current != "ban":
            raise MatrixError(403, "M_BAD_STATE", "Cannot unban a user who is not banned")
        if membership in _WITH_PROFILE:
            content = await self.member_content(target, membership)
        else:
            content = {"membership": membership}
        if reason is not None:
            content["reason"] = reason
        if extra:
            content.update(extra)
        if action == "join" and current not in ("join", "invite") and self._restricted is not None:
            try:
                authoriser = await self._restricted.current_authoriser(room_id, target)
            except NoLocalAuthoriser as e:
                if self._remote is None or not e.servers:
                    raise
                # As Synapse: a server whose member may invite vouches instead.
                content.pop("membership")
                return await self._remote.join_vouched(room_id, target, content, e.servers)
            if authoriser is not None:
                content[AUTHORISER_KEY] = authoriser
        if current_id is not None:
            previous = (await self._events.get_events([current_id])).get(current_id)
            if (
                previous is not None
                and previous.event.sender == requester.user_id
                and previous.event.content == content
            ):
                return previous
        return await self._pipeline.send(
            room_id,
            type="m.room.member",
            sender=requester.user_id,
            content=content,
            state_key=target,
        )

    async def resolve_room_via(
        self, room_id_or_alias: str, via: Sequence[str]
    ) -> tuple[str, list[str]]:
        """A room id and the servers to reach it through: those the client
        named, then those another server's alias lists."""
        check_count(len(set(via)), self._limits.max_via_servers, "via servers")
        if room_id_or_alias.startswith("#") and self._remote is not None:
            if room_id_or_alias.partition(":")[2] != self._server_name:
                room_id, servers = await self._remote.resolve_alias(room_id_or_alias)
                return room_id, [*via, *servers]
        return await self.resolve_room(room_id_or_alias), list(via)

    async def _own_membership_elsewhere(
        self,
        user_id: str,
        room_id: str,
        target: str,
        action: str,
        reason: str | None,
        extra: dict[str, Any] | None,
        servers: Sequence[str],
    ) -> StoredEvent | None:
        """A join, knock or leave of one's own in a room no user of this
        server is in goes through a server that is (make_join/send_join and
        the like); None when this server can do it alone.

        The servers tried: those the client named, the inviter's, the room
        id's. A leave needs another server only to reject an invite or
        withdraw a knock that came from there.
        """
        if (
            self._remote is None
            or self._remote_memberships is None
            or target != user_id
            or action not in ("join", "knock", "leave")
        ):
            return None
        lock = self._remote_locks.get(room_id)
        if lock is None:
            lock = self._remote_locks[room_id] = asyncio.Lock()
        async with lock:
            if await self._remote_memberships.is_resident(room_id, self._server_name):
                return None
            return await self._handshake(user_id, room_id, action, reason, extra, servers)

    async def _handshake(
        self,
        user_id: str,
        room_id: str,
        action: str,
        reason: str | None,
        extra: dict[str, Any] | None,
        servers: Sequence[str],
    ) -> StoredEvent | None:
        """The handshake through the candidate servers; None when this server
        can do it alone."""
        assert self._remote is not None and self._remote_memberships is not None
        latest = await self._remote_memberships.latest(room_id, user_id)
        candidates = list(servers)
        if latest is not None:
            candidates.append(latest.sender.partition(":")[2])
        candidates.append(room_id.partition(":")[2])
        candidates = [s for s in dict.fromkeys(candidates) if s and s != self._server_name]
        if action == "leave":
            if latest is None or latest.membership not in ("invite", "knock"):
                return None
            content: dict[str, Any] = {} if reason is None else {"reason": reason}
            if candidates:
                try:
                    return await self._remote.leave(room_id, user_id, content, candidates)
                except MatrixError:
                    # No resident server would take the leave: like Synapse,
                    # the rejection is still recorded here, out of band below,
                    # so the invite does not stay in the user's sync for ever.
                    pass
            member = (await self._events.get_events([latest.event_id]))[latest.event_id]
            if member.state_group is not None:
                # In the room's DAG here: an ordinary leave event.
                return None
            # As Synapse: an invite from a server that cannot be reached (or
            # refuses) is still rejected here, so that it goes away.
            return await self._pipeline.leave_out_of_band(member.event, content)
        if not candidates:
            return None
        content = await self.member_content(user_id, action)
        content.update(extra or {})
        if reason is not None:
            content["reason"] = reason
        content.pop("membership")
        handshake = self._remote.join if action == "join" else self._remote.knock
        return await handshake(room_id, user_id, content, candidates)

    async def invite_third_party(
        self, sender: str, room_id: str, target: str, third_party_invite: dict[str, Any]
    ) -> StoredEvent:
        """Complete a third-party invite: `sender` (who made it, and may have
        left since) invites `target`, the identity server's `signed` proof
        in the content for the auth rules to check."""
        extra = {"third_party_invite": third_party_invite}
        if self._needs_remote_invite(target):
            return await self._invite_remote(sender, room_id, target, None, extra)
        content = await self.member_content(target, "invite")
        content.update(extra)
        return await self._pipeline.send(
            room_id, type="m.room.member", sender=sender, content=content, state_key=target
        )

    def _needs_remote_invite(self, target: str) -> bool:
        return self._remote is not None and target.partition(":")[2] != self._server_name

    async def _invite_remote(
        self,
        sender: str,
        room_id: str,
        target: str,
        reason: str | None,
        extra: dict[str, Any] | None = None,
    ) -> StoredEvent:
        """Invite another server's user: that server signs the invite first,
        then it is persisted like any event (and sent to the room's servers)."""
        assert self._remote is not None
        current, current_id = await self._rooms.membership(room_id, target)
        if current == "invite" and current_id is not None:
            previous = (await self._events.get_events([current_id]))[current_id]
            if previous.event.sender == sender:
                return previous
        content: dict[str, Any] = {"membership": "invite"}
        if reason is not None:
            content["reason"] = reason
        content.update(extra or {})
        event = await self._pipeline.build_local(
            room_id, type="m.room.member", sender=sender, content=content, state_key=target
        )
        stripped = await stripped_room_state(self._events, room_id)
        signed = await self._remote.invite(event, stripped)
        return await self._pipeline.accept_remote(signed)
