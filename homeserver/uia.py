"""User-interactive authentication (the spec's UIA) for sensitive operations.

An operation declares the flows that satisfy it; a client walks through one
stage at a time, carrying a session id. Sessions live in the database and are
tied to the method and path of the request that started them, so a session
completed for one operation cannot authorise another.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Protocol

import attrs

from homeserver.accounts.login import PasswordChecker
from homeserver.accounts.threepids import AccountThreepids, identified_user
from homeserver.email.validation import EmailValidation
from homeserver.errors import MatrixError, bad_json, forbidden
from storage.uia import RegistrationTokenStore, UiaSessionRecord, UiaStore

DUMMY = "m.login.dummy"
PASSWORD = "m.login.password"
REGISTRATION_TOKEN = "m.login.registration_token"
# Completed only by the fallback page, after signing in again at an upstream
# provider (homeserver/api/sso.py); its result is the user who did.
SSO = "m.login.sso"
# MSC4312: approve on the OAuth server's account page, then retry. Synapse
# and MAS advertised the same as `org.matrix.cross_signing_reset`, which
# Element X and Element Web still look for.
OAUTH = "m.oauth"
CROSS_SIGNING_RESET = "org.matrix.cross_signing_reset"
# An email address this server validated (homeserver/email); its result is
# the address, as {"medium", "address", "validated_ts"}.
EMAIL_IDENTITY = "m.login.email.identity"
_SESSION_LIFETIME_MS = 30 * 60 * 1000


class ResetApprovals(Protocol):
    """The OAuth server's record of cross-signing resets approved by their user."""

    async def consume_cross_signing_reset(self, user_id: str) -> bool: ...


@attrs.frozen
class UiaResult:
    """A completed session: its id, each stage's result, and the operation's parameters."""

    session_id: str
    completed: dict[str, Any]
    params: dict[str, Any]


class UiaService:
    def __init__(
        self,
        store: UiaStore,
        passwords: PasswordChecker,
        registration_tokens: RegistrationTokenStore,
        server_name: str,
        *,
        sso_enabled: bool = False,
        reset_approvals: ResetApprovals | None = None,
        reset_url: str | None = None,
        emails: EmailValidation | None = None,
        account_threepids: AccountThreepids | None = None,
    ) -> None:
        self._sso = sso_enabled
        self._emails = emails
        # The password stage may name the account by one of its addresses.
        self._account_threepids = account_threepids
        self._store = store
        self._passwords = passwords
        self._tokens = registration_tokens
        self._server_name = server_name
        self._reset_approvals = reset_approvals
        # Where a person approves a cross-signing reset (the OAuth account page).
        self._stage_params: dict[str, Any] = (
            {OAUTH: {"url": reset_url}, CROSS_SIGNING_RESET: {"url": reset_url}}
            if reset_url
            else {}
        )

    def cross_signing_flows(self) -> list[list[str]]:
        """Replacing cross-signing keys: a password, or (with OAuth) an
        approval on the account page (MSC4312)."""
        if self._reset_approvals is None:
            return [[PASSWORD]]
        return [[PASSWORD], [OAUTH], [CROSS_SIGNING_RESET]]

    async def consume_reset_approval(self, user_id: str) -> bool:
        """Whether the user approved a cross-signing reset on the account page
        lately (used up). Clients such as Element X retry the upload without
        `auth` once the person approved, as Synapse with MAS accepts."""
        if self._reset_approvals is None:
            return False
        return await self._reset_approvals.consume_cross_signing_reset(user_id)

    async def authenticate(
        self,
        auth: Any,
        flows: list[list[str]],
        *,
        method: str,
        uri: str,
        user_id: str | None = None,
        params: dict[str, Any] | None = None,
        keep_session: bool = False,
    ) -> UiaResult:
        """Return the completed session once a flow is complete.

        Otherwise raise the 401 whose body tells the client what to do next.
        `user_id` is the account that must prove itself (None for
        registration). `params`, when given, replace what the session keeps,
        which is returned on completion: the operation's parameters may then
        be sent once, not with every stage. A completed session is deleted
        unless `keep_session`, which lets a client retry an operation whose
        response it lost (registration) with the same session.
        """
        if self._sso and user_id is not None and [PASSWORD] in flows:
            # As Synapse: whoever may prove themselves with a password may
            # instead sign in again at an upstream provider.
            flows = [*flows, [SSO]]
        session = await self._session_for(auth, method, uri, params or {})
        if auth is not None and "type" in auth:
            error = await self._try_stage(session, auth, flows, user_id)
            if error is not None:
                raise self._challenge(session, flows, self._stage_params, error)
            session = await self._store.get_session(session.session_id) or session
        if SSO in session.completed and session.completed[SSO] != user_id:
            raise forbidden("The single sign-on was completed by another account")
        if any(all(stage in session.completed for stage in flow) for flow in flows):
            if not keep_session:
                await self._store.delete_session(session.session_id)
            return UiaResult(session.session_id, session.completed, session.params)
        raise self._challenge(session, flows, self._stage_params)

    async def stored_params(self, auth: Any) -> dict[str, Any]:
        """The parameters kept by the session `auth` names ({} if none or unknown)."""
        session_id = auth.get("session") if isinstance(auth, dict) else None
        if not isinstance(session_id, str):
            return {}
        session = await self._store.get_session(session_id)
        return session.params if session is not None else {}

    async def remember(self, session_id: str, params: dict[str, Any]) -> None:
        """Add to what a session keeps, e.g. what a completed operation produced."""
        await self._store.update_params(session_id, params)

    async def session_started(self, session_id: str) -> int | None:
        """When a session began (ms), or None if there is no such session."""
        session = await self._store.get_session(session_id)
        return session.created_ts if session is not None else None

    async def complete_sso(self, session_id: str, user_id: str) -> None:
        """The m.login.sso stage, done by `user_id` on the fallback page."""
        await self._store.complete_stage(session_id, SSO, user_id)

    async def _session_for(
        self, auth: Any, method: str, uri: str, params: dict[str, Any]
    ) -> UiaSessionRecord:
        if auth is not None and not isinstance(auth, dict):
            raise bad_json("'auth' must be an object")
        session_id = auth.get("session") if auth else None
        if session_id is None:
            now = int(time.time() * 1000)
            await self._store.delete_sessions_before(now - _SESSION_LIFETIME_MS)
            session_id = secrets.token_urlsafe(24)
            await self._store.create_session(session_id, method, uri, params)
            return UiaSessionRecord(session_id, now, method, uri, {}, params)
        if not isinstance(session_id, str):
            raise bad_json("'auth.session' must be a string")
        session = await self._store.get_session(session_id)
        if session is None:
            raise MatrixError(400, "M_UNKNOWN", "Unknown or expired auth session")
        if (session.method, session.uri) != (method, uri):
            raise forbidden("This auth session was started for another request")
        if params and params != session.params:
            await self._store.set_params(session_id, params)
            session = attrs.evolve(session, params=params)
        return session

    async def _try_stage(
        self,
        session: UiaSessionRecord,
        auth: dict[str, Any],
        flows: list[list[str]],
        user_id: str | None,
    ) -> MatrixError | None:
        stage = auth["type"]
        if not any(stage in flow for flow in flows):
            return MatrixError(400, "M_UNRECOGNIZED", f"Auth stage {stage!r} is not offered")
        result: Any = True
        if stage == SSO:
            # Only the fallback page completes it; the client just asks again.
            return None
        if stage == PASSWORD:
            claimed = await identified_user(auth, self._server_name, self._account_threepids)
            try:
                user = await self._passwords.check(claimed, auth.get("password"))
            except MatrixError as e:
                return e
            if user_id is not None and user.user_id != user_id:
                raise forbidden("The password given is for another account")
            result = user.user_id
        elif stage == REGISTRATION_TOKEN:
            token = auth.get("token")
            if not isinstance(token, str) or not await self._tokens.reserve(token):
                return forbidden("Invalid registration token")
            result = token
        elif stage == EMAIL_IDENTITY:
            try:
                result = await self._email_stage(auth)
            except MatrixError as e:
                return e
        elif stage in (OAUTH, CROSS_SIGNING_RESET):
            if user_id is None or not await self.consume_reset_approval(user_id):
                return forbidden("Approve the reset on the account page first")
        await self._store.complete_stage(session.session_id, stage, result)
        return None

    async def _email_stage(self, auth: dict[str, Any]) -> dict[str, Any]:
        if self._emails is None:
            raise MatrixError(400, "M_UNRECOGNIZED", "Email addresses are not validated here")
        # `threepidCreds` is the name older clients (and Synapse) also accept.
        creds = auth.get("threepid_creds", auth.get("threepidCreds"))
        if not isinstance(creds, dict) or not all(
            isinstance(creds.get(key), str) for key in ("sid", "client_secret")
        ):
            raise bad_json("'threepid_creds' must hold 'sid' and 'client_secret'")
        validated = await self._emails.validated(creds["sid"], creds["client_secret"])
        return attrs.asdict(validated)

    @staticmethod
    def _challenge(
        session: UiaSessionRecord,
        flows: list[list[str]],
        stage_params: dict[str, Any],
        error: MatrixError | None = None,
    ) -> MatrixError:
        offered = {stage for flow in flows for stage in flow}
        body: dict[str, Any] = {
            "flows": [{"stages": flow} for flow in flows],
            "params": {k: v for k, v in stage_params.items() if k in offered},
            "session": session.session_id,
            # Always present, even empty: clients (and SyTest) read it after a failed stage.
            "completed": list(session.completed),
        }
        if error is None:
            return UiaChallenge(body)
        return UiaChallenge({**body, **error.to_json()})


class UiaChallenge(MatrixError):
    """The 401 of UIA: not an error body alone, but the flows to follow."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(401, body.get("errcode", ""), body.get("error", ""))
        self._body = body

    def to_json(self) -> dict[str, Any]:
        return self._body
