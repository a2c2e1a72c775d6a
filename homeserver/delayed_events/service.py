"""Delayed events as the client sees them: scheduling within the configured
limits, the cancel / restart / send actions, and look-ups.

Answers follow the MSC where clients cope with it, and Synapse where Element
Call depends on Synapse (each such place says so).
"""

from __future__ import annotations

import math
import secrets
from typing import Any

import attrs

from homeserver.delayed_events.scheduler import DelayedEventScheduler
from homeserver.errors import MatrixError, forbidden, invalid_param, not_found
from homeserver.events.canonical import encode_canonical_json
from homeserver.requester import Requester
from storage.database import now_ms
from storage.delayed_events import (
    CANCELLED,
    FAILED,
    SCHEDULED,
    SENDING,
    SENT,
    CapReached,
    DelayedEvent,
    DelayedEventStore,
    NewDelayedEvent,
)
from storage.events import EventStore

# The spec's limit on an event; content alone can only be smaller.
MAX_CONTENT_BYTES = 65_536
ACTIONS = ("cancel", "restart", "send")


class CapReachedError(MatrixError):
    """429 with a Retry-After header: the user has as many delayed events
    scheduled as allowed (the MSC; the extra errcode is the older form)."""

    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(
            429,
            "M_LIMIT_EXCEEDED",
            "The maximum number of delayed events has been reached.",
            retry_after_ms=retry_after_ms,
            **{"org.matrix.msc4140.errcode": "M_MAX_DELAYED_EVENTS_EXCEEDED"},
        )
        self.retry_after_s = max(1, math.ceil(retry_after_ms / 1000))


@attrs.frozen
class DelayedEventLimits:
    max_delay_ms: int
    # 0 disallows delayed events altogether.
    max_per_user: int


class DelayedEvents:
    def __init__(
        self,
        store: DelayedEventStore,
        events: EventStore,
        scheduler: DelayedEventScheduler,
        limits: DelayedEventLimits,
    ) -> None:
        self._store = store
        self._events = events
        self._scheduler = scheduler
        self._limits = limits

    def capability(self) -> dict[str, int]:
        """The `org.matrix.msc4140.delayed_events` capability."""
        return {
            "max_delay_ms": self._limits.max_delay_ms,
            "max_scheduled": self._limits.max_per_user,
        }

    async def schedule(
        self,
        requester: Requester,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        delay_ms: int,
        *,
        state_key: str | None = None,
        txn_id: str | None = None,
        origin_server_ts: int | None = None,
    ) -> str:
        """Schedule an event; return its delay id. Whether the user may send
        it is decided when it is sent (the MSC: power levels then)."""
        if self._limits.max_per_user == 0:
            raise forbidden("Sending delayed events has been disallowed")
        if delay_ms <= 0:
            raise invalid_param("The delay must be a positive number of ms")
        if delay_ms > self._limits.max_delay_ms:
            # The form Element Call (matrix-js-sdk's MembershipManager) reads
            # to shorten its delay and try again, as Synapse answered it.
            raise MatrixError(
                400,
                "M_UNKNOWN",
                f"The requested delay ({delay_ms}ms) exceeds the allowed maximum "
                f"({self._limits.max_delay_ms}ms)",
                **{
                    "org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED",
                    "org.matrix.msc4140.max_delay": self._limits.max_delay_ms,
                },
            )
        if len(encode_canonical_json(content)) > MAX_CONTENT_BYTES:
            raise MatrixError(413, "M_TOO_LARGE", "The event content is too large")
        if await self._events.room_version(room_id) is None:
            raise not_found("Unknown room")
        state_event_id = (
            await self._events.current_state_event_id(room_id, event_type, state_key)
            if state_key is not None
            else None
        )
        found = await self._store.add(
            NewDelayedEvent(
                delay_id=_new_delay_id(),
                user_id=requester.user_id,
                device_id=requester.device_id,
                txn_id=txn_id,
                room_id=room_id,
                event_type=event_type,
                state_key=state_key,
                state_event_id=state_event_id,
                content=content,
                origin_server_ts=origin_server_ts,
                delay_ms=delay_ms,
                scheduled_at=now_ms(),
            ),
            self._limits.max_per_user,
        )
        if isinstance(found, CapReached):
            raise CapReachedError(max(0, found.next_send_ts - now_ms()))
        self._scheduler.wake()
        return found

    async def act(self, delay_id: str, action: str, requester: Requester | None) -> None:
        """Cancel, restart or send a scheduled delayed event.

        Without a requester the delay id itself is the credential (Synapse's
        unauthenticated form, so a client that lost its token can still
        cancel or restart); with one, only its owner's events are found.

        A retry whose outcome already happened (cancel after cancel, send
        after send) succeeds, as the MSC says. One that conflicts with the
        outcome (restart or send of a finished event, cancel of a sent one)
        is 404 M_NOT_FOUND, as Synapse answers: Element Call treats exactly
        that as "already gone" and schedules anew (the MSC's 409 would stop it).
        """
        row = await self._store.get(delay_id)
        if row is None or (requester is not None and row.user_id != requester.user_id):
            raise not_found("Delayed event not found")
        now = now_ms()
        if action == "cancel":
            if await self._store.finalise_scheduled(delay_id, CANCELLED, "action", now):
                return
        elif action == "restart":
            if await self._store.restart(delay_id, now):
                self._scheduler.wake()
                return
        else:
            claimed = await self._store.claim(delay_id, now)
            if claimed is not None:
                try:
                    sent = await self._scheduler.send(claimed, reason="action")
                except MatrixError:
                    # The MSC: answer with the error, keep it scheduled.
                    await self._store.unclaim(delay_id)
                    raise
                if sent is not None:
                    return
        current = await self._store.get(delay_id)
        if current is not None and _same_outcome(action, current):
            return
        raise not_found("Delayed event not found")

    async def get(self, delay_id: str, requester: Requester) -> dict[str, Any]:
        """One of the requester's delayed events (the MSC's current form)."""
        row = await self._store.get(delay_id)
        if row is None or row.user_id != requester.user_id:
            raise not_found("Delayed event not found")
        return details(row)

    async def lookup(
        self,
        requester: Requester,
        *,
        status: str | None,
        delay_ids: list[str] | None,
        offset: int,
        limit: int,
    ) -> tuple[list[DelayedEvent], list[DelayedEvent]]:
        """The requester's scheduled and finalised delayed events (each at
        most `limit`, from `offset` on), as `status` asks."""
        scheduled: list[DelayedEvent] = []
        finalised: list[DelayedEvent] = []
        if status in (None, "scheduled"):
            scheduled = await self._store.list_for_user(
                requester.user_id,
                statuses=(SCHEDULED, SENDING),
                delay_ids=delay_ids,
                offset=offset,
                limit=limit,
            )
        if status in (None, "finalised"):
            finalised = await self._store.list_for_user(
                requester.user_id,
                statuses=(SENT, FAILED, CANCELLED),
                delay_ids=delay_ids,
                offset=offset,
                limit=limit,
            )
        return scheduled, finalised


def _same_outcome(action: str, row: DelayedEvent) -> bool:
    if action == "cancel":
        return row.status in (CANCELLED, FAILED)
    if action == "send":
        return row.status == SENT
    return False


def _new_delay_id() -> str:
    """Opaque and unguessable: without a token, knowing it is the credential."""
    return "de_" + secrets.token_urlsafe(24)


def details(row: DelayedEvent) -> dict[str, Any]:
    """A delayed event as the MSC's look-ups show it, with Synapse's older
    field names (`delay`, `running_since`) that today's clients read."""
    body: dict[str, Any] = {
        "delay_id": row.delay_id,
        "room_id": row.room_id,
        "type": row.event_type,
        "delay_ms": row.delay_ms,
        "scheduled_at": row.scheduled_at,
        "content": row.content,
        "delay": row.delay_ms,
        "running_since": row.scheduled_at,
    }
    if row.state_key is not None:
        body["state_key"] = row.state_key
    if row.finalised_ts is not None:
        body["finalised_ts"] = row.finalised_ts
    if row.event_id is not None:
        body["event_id"] = row.event_id
    if row.error is not None:
        body["error"] = row.error
    return body


def finalised_entry(row: DelayedEvent) -> dict[str, Any]:
    """A finalised delayed event in the list form of the earlier MSC text
    that matrix-js-sdk's `_unstable_getDelayedEvents` reads."""
    entry: dict[str, Any] = {
        "delayed_event": details(row),
        "outcome": "send" if row.status == SENT else "cancel",
        "reason": {"delay": "delay", "error": "error"}.get(row.reason or "", "action"),
    }
    if row.error is not None:
        entry["error"] = row.error
    if row.event_id is not None:
        entry["event_id"] = row.event_id
    return entry
