"""Reporting events and rooms to the server's administrators."""

from __future__ import annotations

from homeserver.errors import not_found
from homeserver.requester import Requester
from homeserver.rooms.visibility import HistoryVisibility
from storage.events import EventStore
from storage.reports import ReportStore
from storage.rooms import RoomStore


class ReportService:
    def __init__(
        self,
        reports: ReportStore,
        events: EventStore,
        rooms: RoomStore,
        visibility: HistoryVisibility,
    ) -> None:
        self._reports = reports
        self._events = events
        self._rooms = rooms
        self._visibility = visibility

    async def report_event(
        self,
        requester: Requester,
        room_id: str,
        event_id: str,
        reason: str | None,
        score: int | None,
    ) -> None:
        """Record a report; 404 unless the reporter is joined and may see the event.

        One 404 for an unknown room, an unknown event and a room the reporter
        is not in, as the spec asks, so that a report reveals nothing.
        """
        membership, _ = await self._rooms.membership(room_id, requester.user_id)
        stored = (await self._events.get_events([event_id])).get(event_id)
        if (
            membership != "join"
            or stored is None
            or stored.event.room_id != room_id
            or not await self._visibility.visible(requester.user_id, stored)
        ):
            raise not_found("The event was not found or you are not joined to the room")
        await self._reports.report_event(room_id, event_id, requester.user_id, reason, score)

    async def report_room(self, requester: Requester, room_id: str, reason: str) -> None:
        """Record a report of a room this server knows; the reporter need not be in it."""
        if not await self._rooms.exists(room_id):
            raise not_found("The room was not found")
        await self._reports.report_room(room_id, requester.user_id, reason)
