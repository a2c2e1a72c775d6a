"""Room aliases and application services: exclusive namespaces and alias queries.

An appservice's exclusive alias namespace is its alone: others' creations
and deletions there are refused (400 M_EXCLUSIVE), and an appservice may only
create aliases in its own namespace (Synapse's rules). An unknown alias in a
namespace is asked of the appservice before 404 (see queries.py).
"""

from __future__ import annotations

from homeserver.appservice.queries import AppServiceQueries
from homeserver.appservice.registration import AppServices
from homeserver.errors import MatrixError
from homeserver.requester import Requester


def _exclusive(message: str) -> MatrixError:
    return MatrixError(400, "M_EXCLUSIVE", message)


class AppServiceAliases:
    def __init__(self, appservices: AppServices, queries: AppServiceQueries) -> None:
        self._appservices = appservices
        self._queries = queries

    def check_create(self, requester: Requester, alias: str) -> bool:
        """400 M_EXCLUSIVE if `requester` may not create `alias`; True when it
        is an appservice creating one of its own (it need not be in the room,
        as in Synapse: bridges alias rooms their bot has not joined yet)."""
        if requester.app_service_id is not None:
            service = self._appservices.by_id(requester.app_service_id)
            if service is None or not service.is_alias_in_namespace(alias):
                raise _exclusive("This application service has not reserved this kind of alias")
            return True
        self.check_change(requester, alias)
        return False

    def check_change(self, requester: Requester, alias: str) -> None:
        """400 M_EXCLUSIVE if another appservice holds `alias` exclusively."""
        owner = self._appservices.exclusive_alias_owner(alias)
        if owner is None or requester.app_service_id == owner.id:
            return
        if requester.user_id == owner.sender:
            return
        raise _exclusive("This alias is reserved by an application service")

    async def query(self, alias: str) -> bool:
        """Whether an appservice says the unknown alias exists now."""
        return await self._queries.query_alias(alias)
