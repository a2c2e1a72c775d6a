"""The one way in for new events: every path that stores an event or moves
a room's current state, each in a module of its own around one commit step.

- local_events.py: a room's creation and local sends (build -> authorise
  against the current state -> sign);
- remote_events.py: events received over /send (rejected, soft-failed or
  accepted) and history from /backfill (never an extremity);
- remote_joins.py: a remote user's join through /send_join, and a local
  user's join to a room another server hosts;
- outliers.py: auth events and state without a place in the DAG, and
  member events of rooms this server is not in;
- event_state.py: the state before and after an event, state resolution
  where extremities fork, the change to the current state;
- commit.py: the room's writer (an asyncio lock here, a PostgreSQL advisory
  lock across processes), persist with the transaction hooks in one
  transaction -> advance the stream in order -> wake waiters -> commit hooks.

`EventPipeline` puts them together as the one object the services call.
In a deployment its entry points that write a room are replaced by ones
that run at the room's owner (cluster/owners.py, cluster/write_ops.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signedjson.types import SigningKey

from homeserver.events.room_versions import RoomVersion
from homeserver.notifier import Notifier
from homeserver.rooms.commit import RoomCommitter
from homeserver.rooms.local_events import LocalEvents
from homeserver.rooms.outliers import Outliers
from homeserver.rooms.remote_events import RemoteEvents
from homeserver.rooms.remote_joins import RemoteJoins
from storage.events import EventStore, StoredEvent
from storage.state import StateStore
from storage.streams import StreamIds


class EventPipeline:
    """Every path's entry points, over one commit step."""

    def __init__(
        self,
        events: EventStore,
        state: StateStore,
        stream: StreamIds,
        notifier: Notifier,
        *,
        server_name: str,
        signing_key: SigningKey,
    ) -> None:
        committer = RoomCommitter(events, state, stream, notifier)
        local = LocalEvents(committer, events, server_name=server_name, signing_key=signing_key)
        remote = RemoteEvents(committer, events)
        joins = RemoteJoins(committer, events)
        outliers = Outliers(committer, events, local)
        self.add_transaction_hook = committer.add_transaction_hook
        self.add_commit_hook = committer.add_commit_hook
        self.drain = committer.drain
        self._local = local
        self.new_room_id = local.new_room_id
        self.commit_create = local.commit_create
        self.rehearse_new_room = local.rehearse_new_room
        self.send = local.send
        self.build_local = local.build_local
        self.receive_remote = remote.receive_remote
        self.receive_backfilled = remote.receive_backfilled
        self.accept_remote = joins.accept_remote
        self.join_remote_room = joins.join_remote_room
        self.store_out_of_band_member = outliers.store_out_of_band_member
        self.leave_out_of_band = outliers.leave_out_of_band
        self.store_outliers = outliers.store_outliers

    async def create_room(
        self,
        room_version: RoomVersion,
        creator: str,
        content: Mapping[str, Any],
        room_id: str | None = None,
    ) -> StoredEvent:
        """A new room's create event, persisted (local_events.py): built here,
        committed through this facade's `commit_create`, which a deployment
        points at the new room's owner (cluster/owners.py)."""
        return await self._local.create_room(
            room_version, creator, content, room_id, self.commit_create
        )
