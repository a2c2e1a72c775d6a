"""What a client asks first: spec versions, well-known data, capabilities."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.api.account_features import ACCOUNT_UNSTABLE_FEATURES
from homeserver.api.http import ClientRequest, endpoint
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.requester import Requester

# Spec versions whose client-server API this server implements. The r0
# releases are listed as Synapse lists them: older clients look for them.
LEGACY_VERSIONS = ["r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1"]
SUPPORTED_VERSIONS = [*LEGACY_VERSIONS, *(f"v1.{n}" for n in range(1, 20))]
# Features older Element builds check for before they lazy-load members
# (without it they show an "Incompatible local cache" dialog) or set up
# cross-signing; both are stable in the spec now.
UNSTABLE_FEATURES = {
    "m.lazy_load_members": True,
    "org.matrix.e2e_cross_signing": True,
    # Simplified sliding sync (MSC4186), which Element X requires.
    "org.matrix.simplified_msc3575": True,
    # Delayed events (homeserver/delayed_events).
    "org.matrix.msc4140": True,
    # state_after in /sync, and room summaries under their unstable path.
    "org.matrix.msc4222": True,
    "im.nheko.summary": True,
    # Mutual rooms, invite blocking and the account moderation flags.
    **ACCOUNT_UNSTABLE_FEATURES,
    # Account data deletion, thread subscriptions, dehydrated devices.
    "org.matrix.msc3391": True,
    "org.matrix.msc4306": True,
    "org.matrix.msc3814": True,
}


class DiscoveryApi:
    def __init__(
        self,
        *,
        server_name: str,
        public_baseurl: str,
        federation_address: str,
        default_room_version: str,
        rtc_foci: list[dict[str, Any]] | None = None,
        change_password: bool = True,
        get_login_token: bool = False,
        delayed_events: dict[str, int] | None = None,
        account_moderation: Callable[[Requester], Awaitable[dict[str, bool] | None]] | None = None,
        forget_on_leave: bool = False,
        threepid_changes: bool = False,
    ) -> None:
        # Delayed events' limits (MSC4140), as the capability of that name.
        self._delayed_events = delayed_events or {}
        # The requester's `m.account_moderation` capability (admins only).
        self._account_moderation = account_moderation
        # Rooms are forgotten when left (forget_rooms_on_leave), as MSC4267 advertises.
        self._forget_on_leave = forget_on_leave
        # Email addresses can be added and removed (`email` is configured).
        self._threepid_changes = threepid_changes
        # MSC3882's POST /login/get_token is offered (sso.login_via_existing_session).
        self._get_login_token = get_login_token
        self._server_name = server_name
        self._baseurl = public_baseurl
        self._federation_address = federation_address
        self._default_room_version = default_room_version
        # MatrixRTC (Element Call) backends, advertised as MSC4143 asks.
        self._rtc_foci = rtc_foci or []
        # False when only the LDAP directory's passwords count (as Synapse
        # without its local password database), so clients hide the form.
        self._change_password = change_password

    @endpoint("GET", "/_matrix/client/versions", auth=False, prefixes=("",))
    async def versions(self, req: ClientRequest) -> dict[str, Any]:
        return {"versions": SUPPORTED_VERSIONS, "unstable_features": UNSTABLE_FEATURES}

    @endpoint("GET", "/.well-known/matrix/client", auth=False, prefixes=("",))
    async def well_known_client(self, req: ClientRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"m.homeserver": {"base_url": self._baseurl}}
        if self._rtc_foci:
            body["org.matrix.msc4143.rtc_foci"] = self._rtc_foci
        return body

    @endpoint("GET", "/.well-known/matrix/server", auth=False, prefixes=("",))
    async def well_known_server(self, req: ClientRequest) -> dict[str, Any]:
        return {"m.server": self._federation_address}

    @endpoint("GET", "/capabilities", guest_ok=True)
    async def capabilities(self, req: ClientRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "capabilities": {
                "m.change_password": {"enabled": self._change_password},
                "m.room_versions": {
                    "default": self._default_room_version,
                    "available": {
                        v: "stable" if rv.stable else "unstable"
                        for v, rv in KNOWN_ROOM_VERSIONS.items()
                    },
                },
                "m.set_displayname": {"enabled": True},
                "m.set_avatar_url": {"enabled": True},
                "m.3pid_changes": {"enabled": self._threepid_changes},
                "m.get_login_token": {"enabled": self._get_login_token},
                "m.profile_fields": {"enabled": True},
                "org.matrix.msc4140.delayed_events": self._delayed_events,
                "m.forget_forced_upon_leave": {"enabled": self._forget_on_leave},
            }
        }
        if self._account_moderation is not None:
            moderation = await self._account_moderation(req.user)
            if moderation is not None:
                body["capabilities"]["m.account_moderation"] = moderation
        return body
