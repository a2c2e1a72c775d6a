"""Starting the appservice delivery on a running test server with appservices
built from the registration model directly."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs

from homeserver.appservice.delivery.metrics import DeliveryMetrics
from homeserver.appservice.delivery.service import AppServiceDelivery
from homeserver.rooms.format import EventFormatter
from storage.appservice_delivery import AppServiceDeliveryStore
from storage.events import EventStore
from storage.state import StateStore


@attrs.frozen
class Namespace:
    regex: re.Pattern[str]
    exclusive: bool


@attrs.frozen
class AppService:
    id: str
    url: str | None
    as_token: str
    hs_token: str
    sender: str
    users: tuple[Namespace, ...]
    aliases: tuple[Namespace, ...] = ()
    rooms: tuple[Namespace, ...] = ()
    rate_limited: bool = False
    protocols: tuple[str, ...] = ()
    receive_ephemeral: bool = False
    device_masquerading: bool = False
    device_management: bool = False

    def is_user_in_namespace(self, user_id: str) -> bool:
        return user_id == self.sender or any(n.regex.fullmatch(user_id) for n in self.users)

    def is_alias_in_namespace(self, alias: str) -> bool:
        return any(n.regex.fullmatch(alias) for n in self.aliases)

    def is_room_in_namespace(self, room_id: str) -> bool:
        return any(n.regex.fullmatch(room_id) for n in self.rooms)


def appservice(id: str, url: str | None, users: str, **fields: Any) -> AppService:
    return AppService(
        id=id,
        url=url,
        as_token=f"as_{id}",
        hs_token=f"hs_{id}",
        sender=f"@{id}_bot:localhost",
        users=(Namespace(re.compile(users), True),),
        **fields,
    )


@attrs.frozen
class Registry:
    services: tuple[AppService, ...]

    def all(self) -> Sequence[AppService]:
        return self.services


async def start_delivery(running: Any, *services: AppService) -> AppServiceDelivery:
    server = running.server
    pool = running.pool
    events = EventStore(pool, StateStore(pool))
    delivery = AppServiceDelivery(
        appservices=Registry(services),
        store=AppServiceDeliveryStore(pool),
        events=events,
        formatter=EventFormatter(events),
        notifier=server.notifier,
        typing_users=server.typing.typing_users,
        metrics=DeliveryMetrics(server.metrics.registry),
        server_name=server.config.server_name,
    )
    server.typing.add_listener(delivery.typing_changed)
    server.presence.add_listener(delivery.presence_changed)
    await delivery.start()
    return delivery
