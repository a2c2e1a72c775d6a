"""Asking application services about what they may create on demand.

A bridge does not create a ghost user for every person or a room for every
channel of the other network up front: the server asks it about an unknown
user or alias in its namespace (`/users/{userId}`, `/rooms/{roomAlias}`)
before answering 404, and the bridge creates it then. Third-party lookups
(`/thirdparty/...`) are passed to the appservices that declare the protocol;
the reverse lookups (`?alias=`, `?userid=`) to every appservice that declares
any protocol (the spec's behaviour; Synapse answers those with []).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from homeserver.appservice.client import AppServiceClient
from homeserver.appservice.registration import AppService, AppServices
from homeserver.errors import not_found
from storage.users import UserStore

# The fields each kind of third-party answer must have to be passed on.
_REQUIRED = {"user": ("userid", "protocol", "fields"), "location": ("alias", "protocol", "fields")}


def instance_id(service: AppService, network_id: str) -> str:
    """A third-party network's id in /publicRooms' `third_party_instance_id`
    (Synapse's form, which clients hand back to us only)."""
    return f"{service.id}|{network_id}"


def parse_instance_id(value: str) -> tuple[str, str] | None:
    """(appservice id, network id) from an instance id; None if malformed."""
    service_id, sep, network_id = value.partition("|")
    return (service_id, network_id) if sep and service_id and network_id else None


class AppServiceQueries:
    def __init__(
        self,
        appservices: AppServices,
        client: AppServiceClient,
        users: UserStore,
        *,
        server_name: str,
    ) -> None:
        self._appservices = appservices
        self._client = client
        self._users = users
        self._server_name = server_name

    async def query_user(self, user_id: str) -> bool:
        """Ask the appservices owning an unknown local user whether it exists;
        True once one of them said so and the account is there."""
        if user_id.partition(":")[2] != self._server_name:
            return False
        for service in self._appservices.user_owners(user_id):
            if await self._client.query_user(service, user_id):
                return await self._users.get_user(user_id) is not None
        return False

    async def query_alias(self, alias: str) -> bool:
        """Ask the appservices owning an unknown local alias whether it exists."""
        if alias.partition(":")[2] != self._server_name:
            return False
        for service in self._appservices.alias_owners(alias):
            if await self._client.query_alias(service, alias):
                return True
        return False

    async def protocols(self, only: str | None = None) -> dict[str, dict[str, Any]]:
        """Each declared protocol's metadata, merged over the appservices that
        declare it: the first one's fields, every one's `instances`."""
        wanted = [
            (service, protocol)
            for service in self._appservices.all()
            for protocol in service.protocols
            if only is None or protocol == only
        ]
        answers = await asyncio.gather(
            *(self._client.protocol(service, protocol) for service, protocol in wanted)
        )
        merged: dict[str, dict[str, Any]] = {}
        for (service, protocol), info in zip(wanted, answers, strict=True):
            instances = info.get("instances") if info is not None else None
            if info is None or not isinstance(instances, list):
                continue
            stamped = [_stamp(service, i) for i in instances if isinstance(i, dict)]
            if protocol in merged:
                merged[protocol]["instances"].extend(stamped)
            else:
                merged[protocol] = {**info, "instances": stamped}
        return merged

    async def protocol(self, protocol: str) -> dict[str, Any]:
        found = await self.protocols(protocol)
        if protocol not in found:
            raise not_found(f"Unknown protocol {protocol!r}")
        return found[protocol]

    async def lookup(
        self, kind: str, protocol: str | None, params: list[tuple[str, str]]
    ) -> list[dict[str, Any]]:
        """Third-party users or locations, from every appservice asked.

        With a protocol: `/thirdparty/{kind}/{protocol}` (the fields to
        search) of the appservices declaring it. Without: the reverse lookup
        `/thirdparty/{kind}?alias=` or `?userid=` of every appservice with a
        protocol.
        """
        if protocol is not None:
            services = self._appservices.for_protocol(protocol)
            path = f"/{kind}/{quote(protocol, safe='')}"
        else:
            services = [s for s in self._appservices.all() if s.protocols]
            path = f"/{kind}"
        answers = await asyncio.gather(
            *(self._client.thirdparty(service, path, params) for service in services)
        )
        found = []
        for service, items in zip(services, answers, strict=True):
            for item in items:
                if not all(key in item for key in _REQUIRED[kind]):
                    continue
                if protocol is not None and item["protocol"] != protocol:
                    continue
                if protocol is None and item["protocol"] not in service.protocols:
                    continue
                found.append(item)
        return found


def _stamp(service: AppService, instance: dict[str, Any]) -> dict[str, Any]:
    """An instance as clients see it: with the `instance_id` /publicRooms takes."""
    network_id = instance.get("network_id")
    if isinstance(network_id, str) and network_id:
        return {**instance, "instance_id": instance_id(service, network_id)}
    return dict(instance)
