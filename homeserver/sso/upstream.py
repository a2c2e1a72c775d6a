"""Signing in through an upstream OpenID Connect provider: the service behind
`/_homeserver/upstream/{idp_id}/start`, `/callback` and `/backchannel_logout`.

A sign-in's state, nonce and PKCE verifier are kept in PostgreSQL, used once,
expire after ten minutes, and belong to the browser holding the cookie secret
whose hash is stored with them. Nothing is created until the ID token is
valid and the claims meet the provider's `attribute_requirements`. A provider
subject is linked to one account (created at the first sign-in through the
registration service, or an existing one with `allow_existing_users`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Sequence

import aiohttp
import attrs

from homeserver.accounts.registration import AccountService
from homeserver.accounts.sessions import SessionService
from homeserver.errors import MatrixError
from homeserver.profile import ProfileService
from homeserver.sso.mapping import MappingError, UserMapper
from homeserver.sso.provider import OidcProvider, UpstreamError, new_secret
from homeserver.web.browser_sessions import BrowserSessions
from homeserver.web.links import UpstreamLink, safe_next
from storage.upstream import SignInRecord, UpstreamStore
from storage.users import UserStore

logger = logging.getLogger(__name__)

_REQUEST_LIFETIME_MS = 10 * 60 * 1000
# As long as a browser session: what the browser does next may need it.
SIGN_IN_LIFETIME_MS = 86_400_000


@attrs.frozen
class Started:
    """Where to send the browser, and the secret its cookie must carry back."""

    redirect_url: str
    browser_secret: str


@attrs.frozen
class Finished:
    user_id: str
    next_path: str
    # The cookie secret naming this sign-in (upstream_sign_ins).
    sign_in_secret: str


class ProviderHttp:
    """The one HTTP client for every provider, opened at first use (in the
    server's event loop) and closed with the app."""

    def __init__(self, ssl: object) -> None:
        self._ssl = ssl
        self._session: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl),  # type: ignore[arg-type]
                timeout=aiohttp.ClientTimeout(total=20),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class UpstreamSignIn:
    def __init__(
        self,
        providers: Sequence[OidcProvider],
        store: UpstreamStore,
        users: UserStore,
        accounts: AccountService,
        profiles: ProfileService,
        sessions: SessionService,
        browser_sessions: BrowserSessions,
        server_name: str,
    ) -> None:
        self._providers = {p.idp_id: p for p in providers}
        self._mappers = {
            p.idp_id: UserMapper(p.config.user_mapping_provider, p.config.attribute_requirements)
            for p in providers
        }
        self._store = store
        self._users = users
        self._accounts = accounts
        self._profiles = profiles
        self._sessions = sessions
        self._browser_sessions = browser_sessions
        self._server_name = server_name

    @property
    def enabled(self) -> bool:
        return bool(self._providers)

    def providers(self) -> list[OidcProvider]:
        return list(self._providers.values())

    def links(self) -> list[UpstreamLink]:
        """The sign-in page's buttons, one per provider."""
        return [UpstreamLink(p.idp_id, p.config.idp_name) for p in self._providers.values()]

    def has(self, idp_id: str) -> bool:
        return idp_id in self._providers

    async def start(self, idp_id: str, next_path: str | None) -> Started:
        provider = self._providers[idp_id]
        state, nonce, verifier, browser = new_secret(), new_secret(), new_secret(), new_secret()
        url = await provider.authorization_url(state, nonce, verifier)
        now = _now_ms()
        await self._store.add_request(
            state,
            idp_id,
            nonce,
            verifier,
            digest(browser),
            safe_next(next_path),
            now + _REQUEST_LIFETIME_MS,
            now,
        )
        return Started(url, browser)

    async def finish(
        self,
        idp_id: str,
        *,
        state: str | None,
        code: str | None,
        error: str | None,
        browser_secret: str | None,
    ) -> Finished:
        """Completes a sign-in the provider sent back; UpstreamError says why not."""
        provider = self._providers[idp_id]
        if not state:
            raise UpstreamError("The provider's answer carries no state")
        pending = await self._store.take_request(state)
        if pending is None or pending.idp_id != idp_id or pending.expires_ts <= _now_ms():
            raise UpstreamError("This sign-in is unknown, already used or has expired")
        if browser_secret is None or not hmac.compare_digest(
            digest(browser_secret), pending.browser_hash
        ):
            raise UpstreamError("This sign-in was started in another browser")
        if error is not None:
            raise UpstreamError(f"The provider did not sign you in ({error})")
        if not code:
            raise UpstreamError("The provider's answer carries no code")
        tokens = await provider.exchange_code(code, pending.code_verifier)
        claims = await provider.id_token_claims(tokens["id_token"], pending.nonce)
        if provider.config.user_profile_method == "userinfo_endpoint":
            access_token = tokens.get("access_token")
            if not isinstance(access_token, str):
                raise UpstreamError("The provider sent no access token for userinfo")
            info = await provider.userinfo(access_token)
            if info.get("sub") != claims["sub"]:
                raise UpstreamError("The provider's userinfo is for another subject")
            claims = {**claims, **info}
        user_id = await self._account_for(idp_id, claims)
        sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
        secret = new_secret()
        now = _now_ms()
        await self._store.add_sign_in(
            digest(secret),
            SignInRecord(idp_id, claims["sub"], sid, user_id),
            now + SIGN_IN_LIFETIME_MS,
            now,
        )
        return Finished(user_id, pending.next_path, secret)

    async def _account_for(self, idp_id: str, claims: dict[str, object]) -> str:
        mapper = self._mappers[idp_id]
        sub = claims["sub"]
        assert isinstance(sub, str)
        try:
            mapper.check_requirements(claims)
        except MappingError as e:
            raise UpstreamError(str(e)) from e
        email = mapper.email(claims)
        linked = await self._store.linked_user(idp_id, sub, email)
        if linked is not None:
            user = await self._users.get_user(linked)
            if user is None or user.deactivated:
                raise UpstreamError("This account has been deactivated")
            return linked
        try:
            mapped = mapper.map(claims)
        except MappingError as e:
            raise UpstreamError(str(e)) from e
        try:
            user_id = await self._accounts.check_username(mapped.localpart)
        except MatrixError as e:
            if e.errcode != "M_USER_IN_USE":
                raise UpstreamError(f"The user name {mapped.localpart!r} is not allowed") from e
            # As Synapse: a taken localpart is linked only with allow_existing_users.
            if not self._providers[idp_id].config.allow_existing_users:
                raise UpstreamError(f"The user name {mapped.localpart!r} is already taken") from e
            user_id = f"@{mapped.localpart}:{self._server_name}"
            user = await self._users.get_user(user_id)
            if user is None or user.deactivated:
                raise UpstreamError("This account has been deactivated") from e
            await self._store.link(idp_id, sub, user_id, email, _now_ms())
            return user_id
        try:
            await self._accounts.register(user_id, None)
        except MatrixError as e:
            raise UpstreamError(f"The user name {mapped.localpart!r} is already taken") from e
        if mapped.display_name is not None:
            await self._profiles.set_field(user_id, user_id, "displayname", mapped.display_name)
        await self._store.link(idp_id, sub, user_id, email, _now_ms())
        logger.info("created %s at first sign-in through %s", user_id, idp_id)
        return user_id

    async def sign_in_of(self, secret: str | None, user_id: str) -> SignInRecord | None:
        """The upstream sign-in a browser's cookie names, if it is `user_id`'s."""
        if not secret:
            return None
        record = await self._store.get_sign_in(digest(secret), _now_ms())
        return record if record is not None and record.user_id == user_id else None

    async def handle_of(self, secret: str | None, user_id: str) -> bytes | None:
        """What a grant keeps of the browser's upstream sign-in (its cookie's
        digest) when it is `user_id`'s, so that the device the grant creates
        later can be tied to it (`origin_of`)."""
        if await self.sign_in_of(secret, user_id) is None:
            return None
        assert secret is not None
        return digest(secret)

    async def origin_of(self, handle: bytes, user_id: str) -> SignInRecord | None:
        """The sign-in a grant kept (`handle_of`), if it has not ended since
        (back-channel logout, expiry) and is still `user_id`'s."""
        record = await self._store.get_sign_in(handle, _now_ms())
        return record if record is not None and record.user_id == user_id else None

    async def device_created(self, user_id: str, device_id: str, origin: SignInRecord) -> None:
        await self._store.add_device(user_id, device_id, origin)

    async def backchannel_logout(self, idp_id: str, logout_token: str) -> None:
        """Ends at once what the provider's session (`sid`) or subject (`sub`)
        signed in here: its devices with their access tokens, its unused login
        tokens, and the browser sessions of the accounts it names."""
        claims = await self._providers[idp_id].logout_token_claims(logout_token)
        sub, sid = claims.get("sub"), claims.get("sid")
        users = await self._store.users_of(idp_id, sub, sid)
        devices = await self._store.end_sign_ins(idp_id, sub, sid)
        for user_id, device_ids in devices.items():
            await self._sessions.delete_devices(user_id, device_ids)
        for user_id in users:
            await self._browser_sessions.sign_out_user(user_id)
        logger.info(
            "back-channel logout from %s: %d devices of %d accounts",
            idp_id,
            sum(map(len, devices.values())),
            len(users),
        )


def _now_ms() -> int:
    return int(time.time() * 1000)
