"""Identity assertion: an appservice's as_token acting as one of its users.

The Application Service API lets an appservice authenticate with its
`as_token` and name the user it acts as with `?user_id=` (its sender when
absent), and, with MSC4326 (unstable: MSC3202's `org.matrix.msc3202.device_id`),
the device with `?device_id=`. The checks are Synapse's: the user must be local
and in the appservice's namespace (403 otherwise) and already registered (403
too, as Synapse answers); a named device must exist (400 M_UNKNOWN_DEVICE).
The Requester carries whether the user is suspended, as a user's own token
would (read with the user, remembered with it, forgotten on a change).
"""

from __future__ import annotations

from collections import OrderedDict

from multidict import MultiMapping

from homeserver.appservice.registration import AppService, AppServices
from homeserver.cluster.invalidation import CacheInvalidations
from homeserver.errors import MatrixError, forbidden
from homeserver.identifiers import split_user_id
from homeserver.requester import Requester
from storage.sessions import SessionStore
from storage.users import UserStore

# Registered appservice users remembered (with whether they are suspended),
# so a bridge's steady stream of `?user_id=` requests costs no query each
# (accounts are never deleted).
_KNOWN_USERS_CACHE = 50_000
# Its name among the caches shared by a deployment.
_KNOWN_USERS_SHARED = "appservice_users"

DEVICE_PARAMS = (("device_id", "M_UNKNOWN_DEVICE"),)
UNSTABLE_DEVICE_PARAMS = (("org.matrix.msc3202.device_id", "ORG.MATRIX.MSC4326.M_UNKNOWN_DEVICE"),)


class AppServiceAuth:
    def __init__(
        self,
        appservices: AppServices,
        users: UserStore,
        devices: SessionStore,
        *,
        server_name: str,
    ) -> None:
        self._appservices = appservices
        self._users = users
        self._devices = devices
        self._server_name = server_name
        self._known: OrderedDict[str, bool] = OrderedDict()
        # Moved by every change: a read that overlapped one is not remembered.
        self._changes = 0
        self._shared: CacheInvalidations | None = None

    def is_unlimited(self, token: str) -> bool:
        """Whether `token` is an appservice's registered with `rate_limited: false`
        (its ghost registrations and logins are then never rate limited either)."""
        service = self._appservices.by_as_token(token)
        return service is not None and not service.rate_limited

    async def requester(self, token: str, query: MultiMapping[str]) -> Requester | None:
        """The Requester an as_token stands for; None if `token` is no appservice's."""
        service = self._appservices.by_as_token(token)
        if service is None:
            return None
        user_id = query.get("user_id") or service.sender
        if user_id != service.sender:
            self._check_namespace(service, user_id)
        suspended = await self._suspended(user_id)
        device_id = ""
        for name, errcode in (*DEVICE_PARAMS, *UNSTABLE_DEVICE_PARAMS):
            wanted = query.get(name)
            if wanted is not None:
                if await self._devices.get_device(user_id, wanted) is None:
                    raise MatrixError(400, errcode, f"No device {wanted!r} for {user_id}")
                device_id = wanted
                break
        return Requester(
            user_id,
            device_id,
            0,
            app_service_id=service.id,
            rate_limited=service.rate_limited,
            suspended=suspended,
        )

    def _check_namespace(self, service: AppService, user_id: str) -> None:
        parts = split_user_id(user_id)
        if parts is None or parts[1] != self._server_name:
            raise forbidden(f"Application service cannot masquerade as this user ({user_id})")
        if not service.is_user_in_namespace(user_id):
            raise forbidden(f"Application service cannot masquerade as this user ({user_id})")

    async def _suspended(self, user_id: str) -> bool:
        """Whether the registered user is suspended; 403 if not registered."""
        known = self._known.get(user_id)
        if known is not None:
            self._known.move_to_end(user_id)
            return known
        changes = self._changes
        user = await self._users.get_user(user_id)
        if user is None:
            # Synapse's answer to a namespaced user the appservice never registered.
            raise forbidden(f"Application service has not registered this user ({user_id})")
        if changes == self._changes:
            self._known[user_id] = user.suspended
        if len(self._known) > _KNOWN_USERS_CACHE:
            self._known.popitem(last=False)
        return user.suspended

    def account_changed(self, user_id: str) -> None:
        """Forget what is remembered of a user whose account flags changed,
        here and, in a deployment, in the other processes."""
        if self._shared is not None:
            self._shared.forget(_KNOWN_USERS_SHARED, user_id)
        else:
            self._forget(user_id)

    def share_invalidations(self, shared: CacheInvalidations) -> None:
        self._shared = shared
        shared.register(_KNOWN_USERS_SHARED, self._forget, self._forget_all)

    def _forget(self, user_id: str) -> None:
        self._changes += 1
        self._known.pop(user_id, None)

    def _forget_all(self) -> None:
        self._changes += 1
        self._known.clear()
