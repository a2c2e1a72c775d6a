"""Asks other servers for a room's hierarchy (`GET /_matrix/federation/v1/hierarchy`):
implements homeserver.rooms.remote_hierarchy.RemoteHierarchy for the space
hierarchy and the room summary of rooms this server is not in."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from urllib.parse import quote

from federation.transport import FederationClient, FederationError
from homeserver.rooms.remote_hierarchy import RemoteRoom, parse_answer

log = logging.getLogger(__name__)

# Servers tried per room, in the order given, and how long each may take.
MAX_SERVERS = 3
REQUEST_TIMEOUT_S = 10.0


class FederationHierarchy:
    def __init__(self, client: Callable[[], FederationClient], server_name: str) -> None:
        # Made with the federation listener, after the services that use this.
        self._client = client
        self._server_name = server_name

    async def hierarchy(
        self, servers: Sequence[str], room_id: str, suggested_only: bool
    ) -> RemoteRoom | None:
        tried = [s for s in dict.fromkeys(servers) if s != self._server_name][:MAX_SERVERS]
        for server in tried:
            try:
                answer = await self._client().get_json(
                    server,
                    f"/_matrix/federation/v1/hierarchy/{quote(room_id, safe='')}",
                    query={"suggested_only": "true" if suggested_only else "false"},
                    timeout_s=REQUEST_TIMEOUT_S,
                )
            except FederationError as e:
                log.info("hierarchy of %s from %s failed: %s", room_id, server, e)
                continue
            room = parse_answer(answer, room_id, suggested_only)
            if room is not None:
                return room
            log.info("hierarchy of %s from %s: malformed answer", room_id, server)
        return None
