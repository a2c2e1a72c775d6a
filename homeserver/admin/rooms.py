"""What administrators do to rooms: look inside, delete, block, purge history,
join users, make someone a room admin.

Background deletes and purges run in the process that took the request; their
status is kept in PostgreSQL (storage/admin_room_tasks.py), so any process of
a deployment answers the status endpoints.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from homeserver.errors import MatrixError, forbidden, invalid_param, not_found
from homeserver.events.auth import get_power_level, get_required_level
from homeserver.events.event import Event
from homeserver.identifiers import is_valid_room_id
from homeserver.requester import Requester
from homeserver.rooms.format import EventFormatter
from homeserver.rooms.history import token_position, topological_token
from homeserver.rooms.service import RoomService
from storage.admin_room_tasks import AdminRoomTaskStore, RoomTask
from storage.admin_rooms import AdminRoomStore
from storage.events import EventStore
from storage.history import HistoryStore

logger = logging.getLogger(__name__)

DEFAULT_NOTICE_ROOM_NAME = "Content Violation Notification"
DEFAULT_NOTICE_MESSAGE = (
    "Sharing illegal content on this server is not permitted and rooms in violation will be "
    "blocked."
)


def as_user(user_id: str) -> Requester:
    """The server acting for one of its users (no device, no token)."""
    return Requester(user_id, "", 0)


@attrs.frozen
class DeleteRequest:
    """The body of DELETE /rooms/{roomId}, checked."""

    new_room_user_id: str | None = None
    room_name: str = DEFAULT_NOTICE_ROOM_NAME
    message: str = DEFAULT_NOTICE_MESSAGE
    block: bool = False
    purge: bool = True
    force_purge: bool = False


class AdminRooms:
    def __init__(
        self,
        *,
        store: AdminRoomStore,
        tasks: AdminRoomTaskStore,
        rooms: RoomService,
        events: EventStore,
        history: HistoryStore,
        formatter: EventFormatter,
        server_name: str,
        runner: str | None,
    ) -> None:
        """`runner` is this process's database session name in a deployment
        (None alone): the tasks it runs carry it."""
        self._store = store
        self._task_store = tasks
        self._runner = runner
        self._rooms = rooms
        self._events = events
        self._history = history
        self._formatter = formatter
        self._server_name = server_name
        self._running: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Fail the tasks a previous run of this process left running."""
        count = await self._task_store.interrupt_own(self._runner)
        if count:
            logger.warning("%d admin room tasks were cut short by the last stop", count)

    async def stop(self) -> None:
        """Let background deletes and purges finish before the database closes."""
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _is_local(self, user_id: str) -> bool:
        return user_id.endswith(":" + self._server_name)

    async def summary(self, room_id: str) -> dict[str, Any]:
        if not is_valid_room_id(room_id):
            raise invalid_param(f"{room_id!r} is not a room id")
        row = await self._store.room_summary(room_id, self._server_name)
        if row is None:
            raise not_found("Room not found")
        return row

    async def list_rooms(
        self,
        *,
        search_term: str | None,
        order_by: str,
        backwards: bool,
        offset: int,
        limit: int,
    ) -> dict[str, Any]:
        rows, total = await self._store.list_rooms(
            server_name=self._server_name,
            search_term=search_term,
            order_by=order_by,
            backwards=backwards,
            offset=offset,
            limit=limit,
        )
        body: dict[str, Any] = {
            "rooms": [_list_fields(r) for r in rows],
            "offset": offset,
            "total_rooms": total,
        }
        if offset + len(rows) < total:
            body["next_batch"] = offset + len(rows)
        if offset > 0:
            body["prev_batch"] = max(0, offset - limit)
        return body

    async def details(self, room_id: str) -> dict[str, Any]:
        row = await self.summary(room_id)
        body = _list_fields(row)
        body.update(
            topic=row["topic"],
            avatar=row["avatar"],
            joined_local_devices=await self._store.joined_local_devices(room_id, self._server_name),
            forgotten=False,
        )
        return body

    async def members(self, room_id: str) -> dict[str, Any]:
        await self.summary(room_id)
        members = await self._store.members(room_id, ["join"])
        return {"members": members, "total": len(members)}

    async def state(self, room_id: str) -> dict[str, Any]:
        await self.summary(room_id)
        ids = await self._events.current_state_ids(room_id)
        loaded = await self._events.get_events(ids.values())
        stored = sorted(loaded.values(), key=lambda s: s.stream_ordering)
        return {"state": await self._formatter.serialize(stored, None, aggregations=False)}

    async def messages(
        self, room_id: str, *, from_token: str | None, backwards: bool, limit: int
    ) -> dict[str, Any]:
        """The room's timeline, every event regardless of history visibility."""
        await self.summary(room_id)
        if from_token is not None:
            start = await token_position(self._history, room_id, from_token)
        elif backwards:
            start = await self._history.room_end(room_id) or (0, 0)
        else:
            start = (0, 0)
        rows = await self._history.page(room_id, start, backwards=backwards, limit=limit)
        loaded = await self._events.get_events(r.event_id for r in rows)
        stored = [loaded[r.event_id] for r in rows if r.event_id in loaded]
        body: dict[str, Any] = {
            "chunk": await self._formatter.serialize(stored, None),
            "start": from_token or topological_token(start),
        }
        if len(rows) == limit:
            last = rows[-1].position
            body["end"] = topological_token((last[0], last[1] - 1) if backwards else last)
        return body

    async def block_status(self, room_id: str) -> dict[str, Any]:
        if not is_valid_room_id(room_id):
            raise invalid_param(f"{room_id!r} is not a room id")
        blocker = await self._store.block_of(room_id)
        return {"block": True, "user_id": blocker} if blocker else {"block": False}

    async def set_blocked(self, requester: Requester, room_id: str, block: bool) -> None:
        """Block or unblock; a room need not be known to be blocked (as Synapse)."""
        if not is_valid_room_id(room_id):
            raise invalid_param(f"{room_id!r} is not a room id")
        await self._store.set_blocked(room_id, requester.user_id, block)

    async def forward_extremities(self, room_id: str) -> dict[str, Any]:
        await self.summary(room_id)
        results = await self._store.forward_extremities(room_id)
        return {"count": len(results), "results": results}

    async def delete_forward_extremities(self, room_id: str) -> dict[str, Any]:
        await self.summary(room_id)
        return {"deleted": await self._store.delete_forward_extremities(room_id)}

    # Deleting rooms.

    async def delete_room(self, requester: Requester, room_id: str, req: DeleteRequest) -> dict:
        """Synapse's room shutdown, done before answering (v1)."""
        await self._check_delete(room_id, req)
        return await self._shut_down(requester, room_id, req, None)

    async def start_delete(self, requester: Requester, room_id: str, req: DeleteRequest) -> str:
        """The same in the background (v2); the answer is the delete id to ask about."""
        await self._check_delete(room_id, req)
        task_id = secrets.token_urlsafe(12)
        if not await self._task_store.create(
            task_id, "delete", room_id, "shutting_down", self._runner
        ):
            raise MatrixError(400, "M_UNKNOWN", "A delete of this room is already in progress")

        async def work() -> dict[str, Any]:
            return await self._shut_down(requester, room_id, req, task_id)

        self._run(task_id, room_id, work)
        return task_id

    async def _check_delete(self, room_id: str, req: DeleteRequest) -> None:
        if not is_valid_room_id(room_id):
            raise invalid_param(f"{room_id!r} is not a room id")
        if req.new_room_user_id is not None and not self._is_local(req.new_room_user_id):
            raise invalid_param("'new_room_user_id' must be a local user")
        if not req.block and await self._store.room_summary(room_id, self._server_name) is None:
            raise not_found("Room not found")

    async def _shut_down(
        self, requester: Requester, room_id: str, req: DeleteRequest, task_id: str | None
    ) -> dict[str, Any]:
        """Remove the local members and aliases, then purge; the shutdown's
        result (recorded in the task `task_id` as soon as it is known)."""
        if req.block:
            await self._store.set_blocked(room_id, requester.user_id, True)
        exists = await self._store.room_summary(room_id, self._server_name) is not None
        new_room_id = None
        kicked: list[str] = []
        failed: list[str] = []
        aliases: list[str] = []
        if exists:
            if req.new_room_user_id is not None:
                new_room_id = await self._notice_room(req)
            users = await self._store.members(room_id, ["join"], server_name=self._server_name)
            for user_id in users:
                try:
                    await self._rooms.set_membership(as_user(user_id), room_id, user_id, "leave")
                    if new_room_id is not None and user_id != req.new_room_user_id:
                        await self._rooms.set_membership(
                            as_user(user_id), new_room_id, user_id, "join"
                        )
                    kicked.append(user_id)
                except MatrixError as e:
                    logger.warning("could not remove %s from %s: %s", user_id, room_id, e)
                    failed.append(user_id)
            aliases = await self._store.unpublish(room_id)
        result = {
            "kicked_users": kicked,
            "failed_to_kick_users": failed,
            "local_aliases": aliases,
            "new_room_id": new_room_id,
        }
        if exists and req.purge:
            if task_id is not None:
                await self._task_store.update(task_id, "shutting_down", result=result)
            if failed and not req.force_purge:
                raise MatrixError(
                    400, "M_UNKNOWN", "Users are still in the room; use force_purge to purge"
                )
            if task_id is not None:
                await self._task_store.update(task_id, "purging")
            await self._store.purge_room(room_id)
        return result

    async def _notice_room(self, req: DeleteRequest) -> str:
        """The room local users are moved to, where they can read why."""
        assert req.new_room_user_id is not None
        creator = as_user(req.new_room_user_id)
        new_room_id = await self._rooms.create_room(
            creator,
            {
                "preset": "public_chat",
                "name": req.room_name,
                "power_level_content_override": {"users_default": -10},
            },
        )
        await self._rooms.send_event(
            creator, new_room_id, "m.room.message", {"msgtype": "m.text", "body": req.message}
        )
        return new_room_id

    def _run(
        self, task_id: str, room_id: str, work: Callable[[], Awaitable[dict[str, Any]]]
    ) -> None:
        """Run `work` in the background; its result or error goes to the task's row."""

        async def run() -> None:
            try:
                result = await work()
            except MatrixError as e:
                await self._task_store.update(task_id, "failed", error=e.message)
            except Exception as e:
                logger.exception("admin task %s on %s failed", task_id, room_id)
                await self._task_store.update(task_id, "failed", error=str(e))
            else:
                await self._task_store.update(task_id, "complete", result=result)

        running = asyncio.get_running_loop().create_task(run())
        self._running.add(running)
        running.add_done_callback(self._running.discard)

    @staticmethod
    def _delete_status(task: RoomTask) -> dict[str, Any]:
        body: dict[str, Any] = {"delete_id": task.task_id, "status": task.status}
        if task.error is not None:
            body["error"] = task.error
        body["shutdown_room"] = task.result or {
            "kicked_users": [],
            "failed_to_kick_users": [],
            "local_aliases": [],
            "new_room_id": None,
        }
        return body

    async def delete_status(self, delete_id: str) -> dict[str, Any]:
        task = await self._task_store.get(delete_id)
        if task is None or task.kind != "delete":
            raise not_found("delete id not found")
        body = self._delete_status(task)
        del body["delete_id"]
        return body

    async def delete_statuses(self, room_id: str) -> dict[str, Any]:
        results = [
            self._delete_status(t) for t in await self._task_store.of_room(room_id, "delete")
        ]
        if not results:
            raise not_found("No delete task for room")
        return {"results": results}

    # Purging history.

    async def start_purge_history(
        self,
        room_id: str,
        *,
        event_id: str | None,
        ts: int | None,
        delete_local_events: bool,
    ) -> str:
        await self.summary(room_id)
        if event_id is not None:
            position = await self._store.event_position(room_id, event_id)
            if position is None:
                raise not_found("Event not found in the room")
        elif ts is not None:
            position = await self._store.position_at_ts(room_id, ts)
            if position is None:
                raise not_found("There is no event to purge up to the given time")
        else:
            raise MatrixError(
                400, "M_MISSING_PARAM", "'purge_up_to_event_id' or 'purge_up_to_ts' is required"
            )
        task_id = "purge_" + secrets.token_urlsafe(12)
        await self._task_store.create(task_id, "purge", room_id, "active", self._runner)
        local_suffix = None if delete_local_events else ":" + self._server_name

        async def purge() -> dict[str, Any]:
            deleted = await self._store.purge_history(room_id, position, local_suffix=local_suffix)
            return {"deleted_events": deleted}

        self._run(task_id, room_id, purge)
        return task_id

    async def purge_status(self, purge_id: str) -> dict[str, Any]:
        task = await self._task_store.get(purge_id)
        if task is None or task.kind != "purge":
            raise not_found("purge id not found")
        body: dict[str, Any] = {"status": task.status}
        if task.error is not None:
            body["error"] = task.error
        return body

    # Membership.

    async def join(self, requester: Requester, room_id_or_alias: str, user_id: str) -> str:
        """Join a local user to a room: directly if it is public, else invited by the admin."""
        if not self._is_local(user_id):
            raise invalid_param("This endpoint can only be used with local users")
        room_id = await self._rooms.resolve_room(room_id_or_alias)
        row = await self.summary(room_id)
        if row["join_rules"] != "public":
            if requester.user_id not in await self._store.members(room_id, ["join"]):
                raise forbidden("You are not in this room, so cannot invite into it")
            await self._rooms.set_membership(requester, room_id, user_id, "invite")
        await self._rooms.set_membership(as_user(user_id), room_id, user_id, "join")
        return room_id

    async def make_room_admin(self, requester: Requester, room_id: str, user_id: str) -> None:
        """Give `user_id` the highest power level a local member can grant.

        The local member with the most power who may change the power levels
        does it; the user is joined (public rooms) or invited first.
        """
        if not self._is_local(user_id):
            raise invalid_param("Only local users can be room admins")
        await self.summary(room_id)
        ids = await self._events.current_state_ids(room_id)
        loaded = await self._events.get_events(ids.values())
        state: dict[tuple[str, str], Event] = {k: loaded[i].event for k, i in ids.items()}
        version = next(iter(state.values())).room_version
        local_joined = [
            k[1]
            for k, e in state.items()
            if k[0] == "m.room.member"
            and e.content.get("membership") == "join"
            and self._is_local(k[1])
        ]
        needed = get_required_level(version, "m.room.power_levels", "", state)
        ranked = sorted(
            ((get_power_level(version, u, state), u) for u in local_joined), reverse=True
        )
        if not ranked or ranked[0][0] < needed:
            raise MatrixError(400, "M_UNKNOWN", "No local admin in the room can grant power")
        level, acting = ranked[0]
        power = state.get(("m.room.power_levels", ""))
        content = dict(power.content) if power is not None else {}
        users = dict(content.get("users") or {})
        if math.isinf(level):
            # A creator of a room 12+: grant the most any non-creator has, at least 100.
            granted = max([100, *(v for v in users.values() if isinstance(v, int))])
        else:
            granted = int(level)
        membership = state.get(("m.room.member", user_id))
        if membership is None or membership.content.get("membership") != "join":
            join_rule = state.get(("m.room.join_rules", ""))
            if join_rule is None or join_rule.content.get("join_rule") != "public":
                await self._rooms.set_membership(as_user(acting), room_id, user_id, "invite")
            await self._rooms.set_membership(as_user(user_id), room_id, user_id, "join")
        if get_power_level(version, user_id, state) == math.inf:
            return
        users[user_id] = granted
        await self._rooms.send_event(
            as_user(acting),
            room_id,
            "m.room.power_levels",
            {**content, "users": users},
            state_key="",
        )


def _list_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The fields of Synapse's room list."""
    keys = (
        "room_id",
        "name",
        "canonical_alias",
        "joined_members",
        "joined_local_members",
        "version",
        "creator",
        "encryption",
        "federatable",
        "public",
        "join_rules",
        "guest_access",
        "history_visibility",
        "state_events",
        "room_type",
    )
    return {k: row[k] for k in keys}
