"""Accounts of application services: their sender, ghost registration, login, devices.

An appservice creates the users of its namespace without user-interactive
auth (`POST /register` with `type: m.login.application_service`), logs them
in with `m.login.application_service`, and, with MSC4190, creates and deletes
their devices directly. Where the spec and Synapse differ the spec wins: a
registration without a token is 401 M_MISSING_TOKEN, and a login outside the
namespace is M_EXCLUSIVE.
"""

from __future__ import annotations

import logging

from homeserver.accounts.registration import AccountService
from homeserver.accounts.sessions import Session, SessionService
from homeserver.appservice.registration import AppService, AppServices
from homeserver.errors import MatrixError, unknown_token
from homeserver.requester import Requester
from storage.users import UserStore

logger = logging.getLogger(__name__)

APPSERVICE_LOGIN_TYPE = "m.login.application_service"


def not_in_namespace(user_id: str) -> MatrixError:
    return MatrixError(
        400, "M_EXCLUSIVE", f"{user_id} is not in this application service's namespace"
    )


class AppServiceAccounts:
    def __init__(
        self,
        appservices: AppServices,
        accounts: AccountService,
        sessions: SessionService,
        users: UserStore,
        *,
        server_name: str,
    ) -> None:
        self._appservices = appservices
        self._accounts = accounts
        self._sessions = sessions
        self._users = users
        self._server_name = server_name

    async def ensure_senders(self) -> None:
        """Create each appservice's sender user if it does not exist yet: it
        acts at once (joins, messages) and owns the appservice's requests."""
        for service in self._appservices.all():
            if await self._users.get_user(service.sender) is None:
                try:
                    await self._accounts.create(service.sender, None)
                except MatrixError:
                    # Made by another process in the meantime.
                    continue
                logger.info("created %s, the sender of appservice %s", service.sender, service.id)

    def any_registered(self) -> bool:
        return bool(self._appservices.all())

    def manages_devices(self, requester: Requester) -> AppService | None:
        """The appservice behind a request if it manages its users' devices
        itself (MSC4190): it creates and deletes them without UIA."""
        if requester.app_service_id is None:
            return None
        service = self._appservices.by_id(requester.app_service_id)
        return service if service is not None and service.device_management else None

    def service_for_token(self, token: str | None) -> AppService:
        """The appservice an `m.login.application_service` request comes from."""
        if token is None:
            raise MatrixError(401, "M_MISSING_TOKEN", "An application service token is required")
        service = self._appservices.by_as_token(token)
        if service is None:
            raise unknown_token("Unknown application service token", soft_logout=False)
        return service

    async def register(
        self,
        service: AppService,
        username: str | None,
        *,
        inhibit_login: bool,
        device_id: str | None,
        display_name: str | None,
        want_refresh: bool,
        ip: str | None,
    ) -> tuple[str, Session | None]:
        """Create a user of the appservice's namespace, logged in unless
        `inhibit_login` (bridges usually inhibit it and act with ?user_id=)."""
        if not username:
            raise MatrixError(400, "M_MISSING_PARAM", "'username' is required")
        localpart = username[1:].partition(":")[0] if username.startswith("@") else username
        user_id = await self._accounts.check_username(localpart.lower(), for_appservice=True)
        if not service.is_user_in_namespace(user_id):
            raise not_in_namespace(user_id)
        other = self._appservices.exclusive_user_owner(user_id)
        if other is not None and other.id != service.id:
            raise MatrixError(400, "M_EXCLUSIVE", f"{user_id} is reserved by another appservice")
        await self._accounts.create(user_id, None)
        if inhibit_login:
            return user_id, None
        session = await self._sessions.start_session(
            user_id, device_id, display_name, want_refresh=want_refresh, ip=ip
        )
        return user_id, session

    async def login(
        self,
        service: AppService,
        user_id: str,
        *,
        device_id: str | None,
        display_name: str | None,
        want_refresh: bool,
        ip: str | None,
    ) -> Session:
        """A new access token (and device) for a user of the appservice."""
        if not service.is_user_in_namespace(user_id):
            raise not_in_namespace(user_id)
        user = await self._users.get_user(user_id)
        if user is None or user.deactivated:
            raise MatrixError(403, "M_FORBIDDEN", "Invalid user")
        return await self._sessions.start_session(
            user_id, device_id, display_name, want_refresh=want_refresh, ip=ip
        )

    async def create_device(self, user_id: str, device_id: str, display_name: str | None) -> bool:
        """MSC4190: a device for one of the appservice's users, without a
        token; True if it is new (the endpoint then answers 201)."""
        return await self._sessions.create_device(user_id, device_id, display_name)
