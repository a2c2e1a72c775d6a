"""The one place where server-server HTTP requests become handler calls.

A handler is a method decorated with `@federation_endpoint(...)`. It receives
a `FederationRequest` whose `origin` is the server that signed the request:
every endpoint is authenticated (X-Matrix) here, once, unless declared
`auth=False` (the version and key endpoints, which the spec leaves open).
Errors become Matrix JSON by the shared middleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from aiohttp import web
from multidict import MultiMapping

from federation.auth import RequestVerifier
from homeserver.api.http import (
    check_request_params,
    handler_response,
    json_object,
    parse_json_body,
)
from homeserver.errors import MatrixError

FEDERATION_V1 = "/_matrix/federation/v1"
FEDERATION_V2 = "/_matrix/federation/v2"
# A transaction holds up to 50 PDUs of up to 64 KiB and 100 EDUs: bigger than
# the client API's default body limit, which must not refuse it.
MAX_FEDERATION_BODY_BYTES = 8 * 1024 * 1024


@attrs.frozen
class FederationRequest:
    """What a federation handler may know about a request."""

    method: str
    path: str
    params: Mapping[str, str]
    query: MultiMapping[str]
    # The authenticated origin server; None only on auth=False endpoints.
    origin_server: str | None
    body: bytes = attrs.field(repr=False)

    @property
    def origin(self) -> str:
        """The origin of an endpoint that requires authentication."""
        assert self.origin_server is not None, "endpoint declared without auth"
        return self.origin_server

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (empty bodies count as {})."""
        return json_object(self.body)

    def transaction_json(self) -> dict[str, Any]:
        """The body of a /send transaction: NUL is let through here, so that
        one event or EDU that holds it is refused alone, not the whole
        transaction of another server (which would hold up its deliveries)."""
        return json_object(self.body, allow_nul=True)


Handler = Callable[[Any, FederationRequest], Awaitable[Any]]


@attrs.frozen
class FederationEndpointSpec:
    method: str
    path: str
    auth: bool


def federation_endpoint(
    method: str, path: str, *, auth: bool = True
) -> Callable[[Handler], Handler]:
    """Mark a handler for `path` (a full path, e.g. FEDERATION_V1 + "/event/{eventId}")."""

    def mark(func: Handler) -> Handler:
        specs = getattr(func, "_federation_endpoints", ())
        func._federation_endpoints = (*specs, FederationEndpointSpec(method, path, auth))  # type: ignore[attr-defined]
        return func

    return mark


class FederationRouter:
    """Mounts federation handler objects on the federation listener's app."""

    def __init__(self, app: web.Application, verifier: RequestVerifier) -> None:
        self._app = app
        self._verifier = verifier

    def mount(self, *handler_objects: object) -> None:
        for obj in handler_objects:
            for name in dir(type(obj)):
                func = getattr(type(obj), name)
                for spec in getattr(func, "_federation_endpoints", ()):
                    self._app.router.add_route(
                        spec.method, spec.path, self._wrap(spec, getattr(obj, name))
                    )

    def _wrap(
        self, spec: FederationEndpointSpec, handler: Callable[[FederationRequest], Awaitable[Any]]
    ) -> Any:
        verifier = self._verifier

        async def aiohttp_handler(request: web.Request) -> web.StreamResponse:
            check_request_params(request)
            body = await request.read() if request.can_read_body else b""
            origin = None
            if spec.auth:
                content = parse_json_body(body, allow_nul=True) if body.strip() else None
                origin = await verifier.authenticate(
                    request.method,
                    request.raw_path,
                    request.headers.getall("Authorization", []),
                    content,
                )
            result = await handler(
                FederationRequest(
                    method=request.method,
                    path=request.path,
                    params=request.match_info,
                    query=request.query,
                    origin_server=origin,
                    body=body,
                )
            )
            return handler_response(result)

        return aiohttp_handler


def query_int(req: FederationRequest, name: str, default: int | None = None) -> int:
    """An integer query parameter; 400 M_INVALID_PARAM if it is not one."""
    value = req.query.get(name)
    if value is None:
        if default is None:
            raise MatrixError(400, "M_MISSING_PARAM", f"Missing {name}")
        return default
    try:
        return int(value)
    except ValueError:
        raise MatrixError(400, "M_INVALID_PARAM", f"{name} must be an integer") from None
