"""Which worker role answers each HTTP path: the routing table of a deployment.

Derived from the endpoints the code declares (`@endpoint`/`@admin_endpoint`
in homeserver/api, `@federation_endpoint` in federation/api*), so it cannot
drift from what the server serves: every declared endpoint lands in exactly
one row. `homeserver worker-routes` prints it (cluster/nginx.py turns it
into an nginx configuration).

The rules, in order: the admin API to `background`; media uploads,
thumbnails and previews to `media`, media downloads to `client`; writes that
make a room event (send, state, redact, membership, createRoom, upgrade) to
`event_persister`; everything else on the client listener to `client` (the
sync-style long polls marked `sticky`, so one user's polls meet the same
reader's caches); everything on the federation listener to
`federation_inbound`.
"""

from __future__ import annotations

import enum
import importlib
import pkgutil
import re
from collections.abc import Iterator

import attrs

from homeserver.cluster.roles import Role


class Listener(enum.StrEnum):
    CLIENT = "client"
    FEDERATION = "federation"


@attrs.frozen
class Route:
    """One declared endpoint and who answers it."""

    listener: Listener
    method: str
    # The aiohttp path templates of the endpoint (one per version prefix).
    paths: tuple[str, ...]
    role: Role
    # Long polls (/sync and its kind): kept on one reader per access token.
    sticky: bool = False

    @property
    def regex(self) -> str:
        """An anchored regex matching the endpoint's paths (one path segment per parameter)."""
        return "^(?:" + "|".join(_template_regex(p) for p in self.paths) + ")$"


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*))?\}")


def _template_regex(template: str) -> str:
    out, last = [], 0
    for match in _PARAM.finditer(template):
        out.append(re.escape(template[last : match.start()]))
        out.append(f"(?:{match.group(2)})" if match.group(2) else "[^/]+")
        last = match.end()
    out.append(re.escape(template[last:]))
    return "".join(out)


def sample_path(template: str) -> str:
    """A concrete path the template matches (each parameter an `x`)."""
    return _PARAM.sub("x", template)


# Long polls and their kin: /sync, sliding sync, the legacy /events.
_STICKY = re.compile(
    r"^/_matrix/client/(?:(?:r0|v3)/(?:sync|events|initialSync)"
    r"|unstable/org\.matrix\.simplified_msc3575/sync|v4/sync)$"
)
# Writes that make a room event; a room's typing, receipts, markers,
# reports, forgetting and thread subscriptions make none.
_ROOM_EVENT_WRITE = re.compile(
    r"^/_matrix/client/(?:r0|v3|v1|unstable/[^/]+)/"
    r"(?:rooms/\{roomId\}/(?!typing/|receipt/|read_markers$|report|forget$|thread/)"
    r"|join/|knock/|createRoom$)"
)
# Media that makes or stores files (and so needs the media workers' disk).
_MEDIA_MAKES = re.compile(r"/(upload|create|thumbnail|preview_url|config)(/|$)")


def role_of(listener: Listener, method: str, template: str, *, admin: bool) -> tuple[Role, bool]:
    """The role answering an endpoint, and whether it is sticky."""
    if listener is Listener.FEDERATION:
        return Role.FEDERATION_INBOUND, False
    if admin or template.startswith("/_synapse/admin"):
        return Role.BACKGROUND, False
    if "/media/" in template:
        return (Role.MEDIA, False) if _MEDIA_MAKES.search(template) else (Role.CLIENT, False)
    if method in ("PUT", "POST", "DELETE") and _ROOM_EVENT_WRITE.search(template):
        return Role.EVENT_PERSISTER, False
    return Role.CLIENT, bool(_STICKY.search(template))


def _modules() -> Iterator[object]:
    """Every module that may declare endpoints."""
    import federation
    import homeserver.api

    for info in pkgutil.walk_packages(homeserver.api.__path__, "homeserver.api."):
        yield importlib.import_module(info.name)
    for info in pkgutil.iter_modules(federation.__path__, "federation."):
        if info.name.startswith("federation.api"):
            yield importlib.import_module(info.name)


def declared_endpoints() -> list[tuple[Listener, str, tuple[str, ...], bool]]:
    """(listener, method, paths, admin) of every endpoint declared, each once."""
    seen: set[tuple[Listener, str, tuple[str, ...]]] = set()
    found = []
    for module in _modules():
        for cls in vars(module).values():
            if not isinstance(cls, type) or cls.__module__ != module.__name__:  # type: ignore[attr-defined]
                continue
            for func in vars(cls).values():
                for spec in getattr(func, "_endpoints", ()):
                    key = (Listener.CLIENT, spec.method, spec.paths)
                    if key not in seen:
                        seen.add(key)
                        found.append((*key, spec.admin or spec.audit_action is not None))
                for spec in getattr(func, "_federation_endpoints", ()):
                    key = (Listener.FEDERATION, spec.method, (spec.path,))
                    if key not in seen:
                        seen.add(key)
                        found.append((*key, False))
    return found


def route_table() -> list[Route]:
    """Every declared endpoint with its role, by listener and path."""
    routes = []
    for listener, method, paths, admin in declared_endpoints():
        role, sticky = role_of(listener, method, paths[0], admin=admin)
        routes.append(Route(listener, method, paths, role, sticky))
    return sorted(routes, key=lambda r: (r.listener, r.paths[0], r.method))
