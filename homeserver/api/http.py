"""The one place where aiohttp requests become handler calls.

A handler is a method decorated with `@endpoint(...)`. It receives a
`ClientRequest` (path parameters, query, the authenticated requester, the body
parsed on demand) and returns a JSON-able dict, or a `(status, dict)` pair.
Authentication, rate limiting, errors as Matrix JSON, CORS, metrics and
request ids are handled here once, for every endpoint; so is which endpoints
guest accounts may call (`guest_ok`).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs
from aiohttp import StreamReader, web
from multidict import MultiMapping

from homeserver.api.completion import run_to_completion
from homeserver.api.path_ids import check_path_ids
from homeserver.errors import MatrixError, bad_json
from homeserver.metrics import Metrics
from homeserver.ratelimit import RateLimiter
from homeserver.requester import Requester
from homeserver.strict_json import check_text_param, parse_strict_json
from storage.database import is_database_unavailable

logger = logging.getLogger(__name__)

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

CLIENT_PREFIXES = ("/_matrix/client/r0", "/_matrix/client/v3")
CLIENT_V1 = ("/_matrix/client/v1",)
ADMIN_PREFIXES = ("/_synapse/admin",)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization, Date",
    "Access-Control-Expose-Headers": "Synapse-Trace-Id, Server",
}


def parse_json_body(body: bytes, *, allow_nul: bool = False) -> Any:
    """JSON as the spec allows it (UTF-8, no NaN or Infinity) and as the
    server can store it (see strict_json); a 400 Matrix error otherwise."""
    return parse_strict_json(body, allow_nul=allow_nul)


def json_object(body: bytes, *, allow_nul: bool = False) -> dict[str, Any]:
    """A request body as a JSON object (empty bodies count as {})."""
    if not body.strip():
        return {}
    value = parse_json_body(body, allow_nul=allow_nul)
    if not isinstance(value, dict):
        raise bad_json("The request body must be a JSON object")
    return value


@attrs.frozen
class ClientRequest:
    """What a handler may know about a request."""

    method: str
    path: str
    params: Mapping[str, str]
    query: MultiMapping[str]
    requester: Requester | None
    ip: str | None
    user_agent: str | None
    body: bytes = attrs.field(repr=False)
    # Endpoints declared with `stream_body=True` read their body from here
    # (`body` is then empty): media uploads may be far larger than the
    # app-wide request body limit and are never held in memory.
    content: StreamReader | None = attrs.field(default=None, repr=False)
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    @property
    def user(self) -> Requester:
        """The requester of an endpoint that requires authentication."""
        assert self.requester is not None, "endpoint declared without auth"
        return self.requester

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (empty bodies count as {})."""
        return json_object(self.body)

    def query_bool(self, name: str, default: bool = False) -> bool:
        value = self.query.get(name)
        if value is None:
            return default
        if value not in ("true", "false"):
            raise MatrixError(400, "M_INVALID_PARAM", f"{name} must be 'true' or 'false'")
        return value == "true"


Handler = Callable[[Any, ClientRequest], Awaitable[Any]]
# Whether guest accounts may call an endpoint: True or False, or a test of the
# request's path parameters for endpoints open to guests for some values only.
GuestRule = bool | Callable[[Mapping[str, str]], bool]


@attrs.frozen
class EndpointSpec:
    method: str
    paths: tuple[str, ...]
    auth: bool
    # Name of a per-IP rate limiter applied before the handler runs.
    ratelimit: str | None
    # Only server administrators may call it (403 M_FORBIDDEN for others).
    admin: bool = False
    # For admin endpoints that change something: the audit log's action name.
    audit_action: str | None = None
    stream_body: bool = False
    # Served to locked accounts too (the spec lets them log out).
    allow_locked: bool = False
    # Guest accounts get 403 M_GUEST_ACCESS_FORBIDDEN unless this allows them
    # (the spec's guest access module lists what they may call).
    guest_ok: GuestRule = False
    # Stopped when its client disconnects (see completion.py). None: reads
    # (GET, HEAD) are, writes run to their end; a POST that only reads says True.
    cancellable: bool | None = None
    # With `auth=False`: a request that carries an access token is still
    # authenticated (for endpoints the spec lets anyone call, answering more
    # to users, such as the room summary; POST /account/password, where a
    # reset by email has no login).
    optional_auth: bool = False


def endpoint(
    method: str,
    path: str,
    *,
    auth: bool = True,
    prefixes: Iterable[str] = CLIENT_PREFIXES,
    ratelimit: str | None = None,
    stream_body: bool = False,
    allow_locked: bool = False,
    guest_ok: GuestRule = False,
    cancellable: bool | None = None,
    optional_auth: bool = False,
    admin: bool = False,
    audit_action: str | None = None,
) -> Callable[[Handler], Handler]:
    """A client API endpoint. `admin` (with `audit_action` for changes): for
    server admins only, audited, like the admin API's (the spec's own admin
    endpoints, /_matrix/client/v1/admin/...)."""
    return _mark(
        EndpointSpec(
            method,
            tuple(p + path for p in prefixes),
            auth,
            ratelimit,
            admin=admin,
            audit_action=audit_action,
            stream_body=stream_body,
            allow_locked=allow_locked,
            guest_ok=guest_ok,
            cancellable=cancellable,
            optional_auth=optional_auth,
        )
    )


def admin_endpoint(
    method: str, path: str, *, action: str | None = None, auth: bool = True
) -> Callable[[Handler], Handler]:
    """An endpoint under /_synapse/admin for server administrators.

    Every method but GET changes something and must name its `action`: the
    Router then writes one audit log entry per call, whatever the outcome.
    `auth=False` is for the one admin route authorised otherwise (the
    registration shared secret); it is audited all the same.
    """
    if (method == "GET") != (action is None):
        raise ValueError(f"{method} {path}: an action name is required exactly for changes")
    return _mark(
        EndpointSpec(
            method,
            tuple(p + path for p in ADMIN_PREFIXES),
            auth,
            None,
            admin=auth,
            audit_action=action,
        )
    )


def _mark(spec: EndpointSpec) -> Callable[[Handler], Handler]:
    """A decorator adding `spec` to a handler's endpoints (a handler may
    answer several), which `Router.mount` reads."""

    def mark(func: Handler) -> Handler:
        specs = getattr(func, "_endpoints", ())
        func._endpoints = (*specs, spec)  # type: ignore[attr-defined]
        return func

    return mark


class AdminGate(Protocol):
    """What the Router needs for admin endpoints: who is an admin, and the audit log."""

    async def require_admin(self, requester: Requester) -> None: ...

    async def record(
        self,
        request: ClientRequest,
        action: str,
        result: Any,
        status: int,
        errcode: str | None,
    ) -> None: ...


def json_response(status: int, body: Any) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        content_type="application/json",
    )


def handler_response(result: Any) -> web.StreamResponse:
    """What a handler returned as the response: a response as it is, a
    `(status, body)` pair, or a body for 200."""
    if isinstance(result, web.StreamResponse):
        return result
    if isinstance(result, tuple):
        return json_response(*result)
    return json_response(200, result)


# An application service's token (and the request's ?user_id=, ?device_id=)
# as its Requester; None for a token that is no appservice's.
AppServiceResolver = Callable[[str, MultiMapping[str]], Awaitable[Requester | None]]


class Authenticator:
    """Turns the request's access token into a Requester.

    The token comes in the Authorization header or, deprecated since spec
    v1.11 but required of servers up to v1.19, in the `access_token` query
    parameter. Spec v1.20 (MSC4127) drops the parameter: with
    `query_tokens=False` (the config's `access_token_query_parameter`) it is
    refused, except with an appservice's as_token, which the Application
    Service API's identity assertion still lets come in the query string.
    A request naming its token more than once (two headers, two parameters,
    or both, which Synapse refuses too) is refused either way: which one
    counts would be a guess.
    """

    def __init__(
        self,
        resolve: Callable[..., Awaitable[Requester]],
        appservice: AppServiceResolver | None = None,
        unlimited: Callable[[str], bool] | None = None,
        *,
        query_tokens: bool = True,
    ) -> None:
        self._resolve = resolve
        self._appservice = appservice
        # Tokens exempt from per-IP rate limits (appservices with rate_limited: false).
        self._unlimited = unlimited
        self._query_tokens = query_tokens

    def is_unlimited(self, request: web.Request) -> bool:
        """Whether the request's token is exempt from the per-IP rate limits."""
        if self._unlimited is None:
            return False
        try:
            token = self.token_of(request)
        except MatrixError:
            return False
        return token is not None and self._unlimited(token)

    @staticmethod
    def token_of(request: web.Request | ClientRequest) -> str | None:
        return Authenticator.token_and_source(request)[0]

    @staticmethod
    def token_and_source(request: web.Request | ClientRequest) -> tuple[str | None, bool]:
        """The access token, and whether it came in the query string."""
        headers = request.headers
        found = headers.getall("Authorization", []) if isinstance(headers, MultiMapping) else []
        if not isinstance(headers, MultiMapping) and "Authorization" in headers:
            found = [headers["Authorization"]]
        in_query = request.query.getall("access_token", [])
        if len(found) + len(in_query) > 1:
            raise MatrixError(
                401, "M_MISSING_TOKEN", "Give the access token once, in the Authorization header"
            )
        if found:
            scheme, _, token = found[0].partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise MatrixError(401, "M_MISSING_TOKEN", "Invalid Authorization header")
            return token.strip(), False
        return (in_query[0], True) if in_query else (None, False)

    async def requester(
        self, request: web.Request, ip: str | None, *, allow_locked: bool = False
    ) -> Requester:
        token, from_query = self.token_and_source(request)
        if token is None:
            raise MatrixError(401, "M_MISSING_TOKEN", "Missing access token")
        if self._appservice is not None:
            found = await self._appservice(token, request.query)
            if found is not None:
                return found
        if from_query and not self._query_tokens:
            raise MatrixError(
                401,
                "M_MISSING_TOKEN",
                "Access tokens in the query string are not accepted: use the Authorization header",
            )
        return await self._resolve(
            token,
            ip=ip,
            user_agent=request.headers.get("User-Agent"),
            allow_locked=allow_locked,
        )


class Router:
    """Mounts handler objects on an aiohttp application."""

    def __init__(
        self,
        app: web.Application,
        authenticator: Authenticator | None,
        limiters: Mapping[str, RateLimiter],
        admin_gate: AdminGate | None = None,
    ) -> None:
        self._app = app
        self._auth = authenticator
        self._limiters = limiters
        self._admin_gate = admin_gate

    def mount(self, *handler_objects: object) -> None:
        for obj in handler_objects:
            for name in dir(type(obj)):
                func = getattr(type(obj), name)
                for spec in getattr(func, "_endpoints", ()):
                    if spec.auth and self._auth is None:
                        raise ValueError(f"{name} needs access tokens, which this app has not")
                    if (spec.admin or spec.audit_action) and self._admin_gate is None:
                        raise ValueError(f"{name} is an admin endpoint; this app has no admin gate")
                    bound = getattr(obj, name)
                    for path in spec.paths:
                        self._app.router.add_route(spec.method, path, self._wrap(spec, bound))

    def _wrap(self, spec: EndpointSpec, handler: Callable[[ClientRequest], Awaitable[Any]]) -> Any:
        auth = self._auth
        admin_gate = self._admin_gate
        ip_limiter = self._limiters[spec.ratelimit] if spec.ratelimit else None
        write_limiter = self._limiters.get("client_writes")
        is_write = spec.method in ("PUT", "POST", "DELETE")
        cancellable = (
            spec.cancellable if spec.cancellable is not None else spec.method in ("GET", "HEAD")
        )

        async def aiohttp_handler(request: web.Request) -> web.StreamResponse:
            check_client_params(request)
            ip = request.remote
            if ip_limiter is not None and not (auth is not None and auth.is_unlimited(request)):
                ip_limiter.check(ip or "")
            requester = (
                await auth.requester(request, ip, allow_locked=spec.allow_locked)
                if auth
                and (spec.auth or (spec.optional_auth and auth.token_of(request) is not None))
                else None
            )
            if requester is not None and requester.is_guest:
                _check_guest(spec.guest_ok, request.match_info)
            if spec.admin:
                assert admin_gate is not None and requester is not None
                await admin_gate.require_admin(requester)
            elif (
                requester is not None
                and is_write
                and write_limiter is not None
                and requester.rate_limited
            ):
                write_limiter.check(requester.user_id)
            streamed = spec.stream_body and request.can_read_body
            body = await request.read() if request.can_read_body and not streamed else b""
            client_request = ClientRequest(
                method=request.method,
                path=request.path,
                params=request.match_info,
                query=request.query,
                requester=requester,
                ip=ip,
                user_agent=request.headers.get("User-Agent"),
                body=body,
                content=request.content if streamed else None,
                headers=request.headers,
            )
            if spec.audit_action is None:
                work = handler(client_request)
            else:
                assert admin_gate is not None
                work = _audited(admin_gate, spec.audit_action, handler, client_request)
            result = await (work if cancellable else run_to_completion(work))
            return handler_response(result)

        return aiohttp_handler


def check_request_params(request: web.Request) -> None:
    """Refuse NUL and lone surrogates in path and query parameters once, for
    every endpoint: no identifier or string holding them can be stored."""
    for name, value in request.match_info.items():
        check_text_param(name, value)
    for name, value in request.query.items():
        check_text_param(name, name)
        check_text_param(name, value)


def check_client_params(request: web.Request) -> None:
    """The checks of `check_request_params`, then the identifiers in the
    path (see path_ids): the client API's edge."""
    check_request_params(request)
    check_path_ids(request.match_info)


def _check_guest(rule: GuestRule, params: Mapping[str, str]) -> None:
    """Refuse a guest an endpoint the guest access rules keep from guests."""
    allowed = rule(params) if callable(rule) else rule
    if not allowed:
        raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guest access not allowed")


async def _audited(
    gate: AdminGate,
    action: str,
    handler: Callable[[ClientRequest], Awaitable[Any]],
    request: ClientRequest,
) -> Any:
    """Run an admin handler that changes something and log its outcome once."""
    try:
        result = await handler(request)
    except MatrixError as e:
        await gate.record(request, action, None, e.status, e.errcode)
        raise
    except Exception:
        await gate.record(request, action, None, 500, "M_UNKNOWN")
        raise
    status = result[0] if isinstance(result, tuple) else 200
    body = result[1] if isinstance(result, tuple) else result
    await gate.record(request, action, body, status, None)
    return result


def _error_for_http_exception(exc: web.HTTPException) -> MatrixError:
    if exc.status == 404:
        return MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")
    if exc.status == 405:
        return MatrixError(405, "M_UNRECOGNIZED", "Unrecognized request method")
    if exc.status == 413:
        return MatrixError(413, "M_TOO_LARGE", "Request body too large")
    return MatrixError(exc.status, "M_UNKNOWN", exc.reason)


# The status logged (never sent) for a request whose client hung up, as nginx does.
CLIENT_CLOSED_REQUEST = 499


def _client_gone(request: web.Request) -> bool:
    """Whether the client closed its connection: reading the rest of its body
    (a large upload, say) then fails, which is the client's doing, not an
    error of the server."""
    transport = request.transport
    return transport is None or transport.is_closing()


# Seconds a client is asked to wait while the database is away: the pool
# connects again on the first request after PostgreSQL is back.
DATABASE_RETRY_AFTER_S = 1


def _failure_response(request: web.Request, e: Exception) -> web.StreamResponse:
    """The answer to an exception no handler turned into a Matrix error."""
    if _client_gone(request):
        logger.info(
            "client disconnected during %s %s (%s: %s)",
            request.method,
            request.path,
            type(e).__name__,
            e,
        )
        return web.Response(status=CLIENT_CLOSED_REQUEST)
    if isinstance(e, web.RequestPayloadError):
        # The body broke off or could not be decoded (bad chunking, bad gzip).
        reason = " ".join(str(e).split())
        logger.info("unreadable body in %s %s: %s", request.method, request.path, reason)
        response = json_response(
            400, {"errcode": "M_NOT_JSON", "error": "The request body could not be read"}
        )
        response.force_close()
        return response
    if is_database_unavailable(e):
        logger.warning(
            "database unavailable during %s %s: %s: %s",
            request.method,
            request.path,
            type(e).__name__,
            e,
        )
        response = json_response(
            503, {"errcode": "M_UNKNOWN", "error": "The database is unavailable; retry shortly"}
        )
        response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return response
    logger.exception("request %s %s failed", request.method, request.path)
    return json_response(500, {"errcode": "M_UNKNOWN", "error": "Internal server error"})


def matrix_middleware(metrics: Metrics) -> Any:
    """Request ids, logs, metrics, CORS, and Matrix errors for everything."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        request_id = secrets.token_hex(6)
        request_id_var.set(request_id)
        started = time.perf_counter()
        route = request.match_info.route.resource
        endpoint_name = route.canonical if route is not None else "unmatched"
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204)
        else:
            try:
                response = await handler(request)
            except asyncio.CancelledError:
                # The client hung up (handler_cancellation): nothing to answer.
                logger.info("client disconnected during %s %s", request.method, request.path)
                raise
            except MatrixError as e:
                response = json_response(e.status, e.to_json())
            except web.HTTPException as e:
                if e.status < 400:
                    raise
                err = _error_for_http_exception(e)
                response = json_response(err.status, err.to_json())
            except Exception as e:
                response = _failure_response(request, e)
        response.headers.update(CORS_HEADERS)
        elapsed = time.perf_counter() - started
        metrics.observe_request(request.method, endpoint_name, response.status, elapsed)
        logger.info(
            "%s %s %s %d %.1fms",
            request.remote,
            request.method,
            request.path,
            response.status,
            elapsed * 1000,
        )
        return response

    return middleware
