"""What follows a user into the successor of an upgraded room.

When a local user joins a room whose create event names a predecessor, as
Synapse does: their push rules about the old room are copied to the new one
(a muted or highlighted room stays so), the old room's tags are copied if
the new room has none, and an old room listed in their `m.direct` is joined
there by the new one. Runs as a pipeline commit hook; only join events of
local users into rooms with a predecessor cost anything.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from homeserver.account_data import AccountDataService
from homeserver.events.event import Event
from homeserver.push.rules import PushRulesService
from storage.account_data import AccountDataStore
from storage.events import EventStore

logger = logging.getLogger(__name__)

TAG = "m.tag"
DIRECT = "m.direct"


class UpgradeCarryOver:
    def __init__(
        self,
        rules: PushRulesService,
        account_data: AccountDataService,
        account_data_store: AccountDataStore,
        events: EventStore,
        *,
        server_name: str,
    ) -> None:
        self._rules = rules
        self._account_data = account_data
        self._store = account_data_store
        self._events = events
        self._suffix = f":{server_name}"

    async def on_commit(self, event: Event, stream_ordering: int) -> None:
        """Pipeline commit hook: carry the joiner's settings over from the predecessor."""
        if (
            event.type != "m.room.member"
            or event.state_key is None
            or not event.state_key.endswith(self._suffix)
            or event.content.get("membership") != "join"
        ):
            return
        user_id, new_room_id = event.state_key, event.room_id
        try:
            old_room_id = await self._predecessor(new_room_id)
            if old_room_id is None:
                return
            await self._rules.copy_room_rules(user_id, old_room_id, new_room_id)
            await self._copy_tags(user_id, old_room_id, new_room_id)
            await self._extend_direct(user_id, old_room_id, new_room_id)
        except Exception:
            logger.exception("carrying %s over into %s failed", user_id, new_room_id)

    async def _predecessor(self, room_id: str) -> str | None:
        create_id = await self._events.current_state_event_id(room_id, "m.room.create", "")
        if create_id is None:
            return None
        create = (await self._events.get_events([create_id])).get(create_id)
        predecessor = create.event.content.get("predecessor") if create is not None else None
        old_room_id = predecessor.get("room_id") if isinstance(predecessor, dict) else None
        return old_room_id if isinstance(old_room_id, str) and old_room_id != room_id else None

    async def _load(self, user_id: str, room_id: str, data_type: str) -> Any:
        content = await self._store.get(user_id, room_id, data_type)
        return json.loads(content) if content is not None else None

    async def _copy_tags(self, user_id: str, old_room_id: str, new_room_id: str) -> None:
        old = await self._load(user_id, old_room_id, TAG)
        if not isinstance(old, dict) or not old.get("tags"):
            return
        if await self._load(user_id, new_room_id, TAG) is not None:
            return
        await self._account_data.put_unchecked(user_id, new_room_id, TAG, old)

    async def _extend_direct(self, user_id: str, old_room_id: str, new_room_id: str) -> None:
        direct = await self._load(user_id, "", DIRECT)
        if not isinstance(direct, dict):
            return
        changed = False
        for rooms in direct.values():
            if isinstance(rooms, list) and old_room_id in rooms and new_room_id not in rooms:
                rooms.append(new_room_id)
                changed = True
        if changed:
            await self._account_data.put_unchecked(user_id, "", DIRECT, direct)
