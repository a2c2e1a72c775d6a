"""Events as clients see them (the spec's "client event" format).

Redactions are applied here, when serving: the stored original is kept, and a
redacted event is shown stripped, with the redaction in unsigned.redacted_because.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from homeserver.delayed_events import DELAYED_TXN_DEVICE, UNSIGNED_DELAY_ID
from homeserver.events.redaction import redact
from homeserver.requester import Requester
from storage.events import StoredEvent


def _client_dict(
    stored: StoredEvent,
    *,
    now: int,
    requester: Requester | None,
    content: Mapping[str, Any],
) -> dict[str, Any]:
    event = stored.event
    result: dict[str, Any] = {
        "content": content,
        "event_id": event.event_id,
        "origin_server_ts": event.origin_server_ts,
        "room_id": event.room_id,
        "sender": event.sender,
        "type": event.type,
        "unsigned": {"age": max(0, now - event.origin_server_ts)},
    }
    if event.state_key is not None:
        result["state_key"] = event.state_key
    if event.redacts is not None and not event.room_version.updated_redaction_rules:
        result["redacts"] = event.redacts
    if (
        requester is not None
        and stored.txn_id is not None
        and event.sender == requester.user_id
        and stored.txn_device_id == requester.device_id
    ):
        result["unsigned"]["transaction_id"] = stored.txn_id
    if (
        stored.txn_device_id == DELAYED_TXN_DEVICE
        and requester is not None
        and event.sender == requester.user_id
    ):
        # A sent delayed event's transaction id is its delay id (MSC4140).
        result["unsigned"][UNSIGNED_DELAY_ID] = stored.txn_id
    return result


class Aggregator(Protocol):
    """Computes bundled aggregations (unsigned["m.relations"]) for a batch."""

    async def bundle(
        self,
        events: Sequence[StoredEvent],
        requester: Requester | None,
        formatter: EventFormatter,
    ) -> dict[str, dict[str, Any]]: ...


class EventReads(Protocol):
    """What the formatter reads: EventStore, or /sync's reads shared between
    the responses of one position (sync/shared_reads.py)."""

    async def get_events(self, event_ids: Iterable[str]) -> dict[str, StoredEvent]: ...

    async def redactions_of(self, event_ids: Iterable[str]) -> dict[str, str]: ...


class EventFormatter:
    """Serialises many events with a bounded number of queries."""

    def __init__(self, events: EventReads, aggregator: Aggregator | None = None) -> None:
        self._events = events
        self._aggregator = aggregator

    async def serialize(
        self,
        events: Iterable[StoredEvent],
        requester: Requester | None,
        *,
        aggregations: bool = True,
    ) -> list[dict[str, Any]]:
        """Client-format events; with `aggregations`, non-state events that are
        not redacted also get their bundled aggregations (one batch for all)."""
        events = list(events)
        now = int(time.time() * 1000)
        redactions = await self._events.redactions_of(e.event.event_id for e in events)
        replaced_ids = [e.replaces_state for e in events if e.replaces_state]
        related = await self._events.get_events([*redactions.values(), *replaced_ids])
        redacted_replaced = await self._events.redactions_of(replaced_ids)
        out = []
        for stored in events:
            event = stored.event
            redaction = related.get(redactions.get(event.event_id, ""))
            if redaction is not None:
                content = redact(dict(event.pdu), event.room_version)["content"]
            else:
                content = event.content
            body = _client_dict(stored, now=now, requester=requester, content=content)
            if redaction is not None:
                body["unsigned"]["redacted_because"] = _client_dict(
                    redaction, now=now, requester=None, content=redaction.event.content
                )
            replaced = related.get(stored.replaces_state or "")
            if replaced is not None:
                body["unsigned"]["replaces_state"] = replaced.event.event_id
                prev = replaced.event
                body["unsigned"]["prev_content"] = (
                    redact(dict(prev.pdu), prev.room_version)["content"]
                    if prev.event_id in redacted_replaced
                    else prev.content
                )
                body["unsigned"]["prev_sender"] = prev.sender
            out.append(body)
        if aggregations and self._aggregator is not None:
            eligible = [
                e
                for e in events
                if e.event.state_key is None and e.event.event_id not in redactions
            ]
            bundles = await self._aggregator.bundle(eligible, requester, self) if eligible else {}
            for body in out:
                bundle = bundles.get(body["event_id"])
                if bundle is not None:
                    body["unsigned"]["m.relations"] = bundle
        return out
