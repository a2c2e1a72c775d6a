"""What the room, profile and directory services need from other servers.

`homeserver` never imports `federation` (DESIGN.md): these small interfaces
are implemented in federation/membership.py and handed in by server.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from homeserver.events.event import Event
from storage.events import StoredEvent


class RemoteRooms(Protocol):
    """Membership handshakes with the servers of rooms this server is not in."""

    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]:
        """(room id, servers in the room) of another server's alias; 404 if unknown."""
        ...

    async def join(
        self, room_id: str, user_id: str, content: dict[str, Any], servers: Sequence[str]
    ) -> StoredEvent:
        """Join `user_id` through the first of `servers` that lets it (make_join,
        send_join); the room, its state and the join are stored."""
        ...

    async def join_vouched(
        self, room_id: str, user_id: str, content: dict[str, Any], servers: Sequence[str]
    ) -> StoredEvent:
        """Join a restricted room this server is in but where none of its
        members may invite: the first of `servers` that vouches for the join
        (make_join, send_join) signs it, and it enters the room like any event."""
        ...

    async def leave(
        self, room_id: str, user_id: str, content: dict[str, Any], servers: Sequence[str]
    ) -> StoredEvent:
        """Reject an invite or withdraw a knock through a resident server
        (make_leave, send_leave); the leave is stored out of band."""
        ...

    async def knock(
        self, room_id: str, user_id: str, content: dict[str, Any], servers: Sequence[str]
    ) -> StoredEvent:
        """Knock through a resident server (make_knock, send_knock); the knock
        is stored out of band with the room's stripped state."""
        ...

    async def invite(self, event: Event, invite_room_state: list[dict[str, Any]]) -> Event:
        """Send a local invite of another server's user to that server; the
        answer is the invite with the invitee's server's signature added."""
        ...


class RemoteQueries(Protocol):
    """Profile and alias lookups on the servers of other users and aliases."""

    async def profile(self, user_id: str, field: str | None) -> dict[str, Any]:
        """Another server's user's profile (or one field of it); 404 if unknown."""
        ...

    async def alias(self, alias: str) -> dict[str, Any]:
        """{room_id, servers} of another server's alias; 404 if unknown."""
        ...
