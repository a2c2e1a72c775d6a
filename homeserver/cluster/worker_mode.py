"""A process started as one worker of the config (`homeserver run --worker NAME`)."""

from __future__ import annotations

from typing import Any

import attrs
from aiohttp import web

from homeserver.cluster.roles import ProcessRoles
from homeserver.config import Config, ConfigError

# Names the worker that answered, for operators and for the deployment tests.
WORKER_HEADER = "X-Homeserver-Worker"


def worker_process(config: Config, name: str | None) -> tuple[Config, ProcessRoles]:
    """The config this process runs with and its roles. A worker takes its
    own listeners in place of the shared config's (which are the public
    addresses the deployment's reverse proxy listens on)."""
    if name is None:
        return config, ProcessRoles.single_process()
    worker = config.workers.get(name)
    if worker is None:
        known = ", ".join(sorted(config.workers)) or "none are configured"
        raise ConfigError(f"--worker {name}: no such worker in the config ({known})")
    metrics = config.metrics
    if worker.metrics_listen is not None:
        metrics = attrs.evolve(metrics, listen=worker.metrics_listen)
    else:
        metrics = attrs.evolve(metrics, enabled=False)
    changes: dict[str, Any] = {"metrics": metrics}
    if worker.client_listen is not None:
        changes["client_listen"] = worker.client_listen
    if worker.federation_listen is not None:
        changes["federation_listen"] = worker.federation_listen
    roles = ProcessRoles.of_worker(name, worker.roles)
    return attrs.evolve(config, **changes), roles


def opens(config: Config, roles: ProcessRoles, listener: str) -> bool:
    """Whether this process opens its `listener` ("client_listen" or
    "federation_listen"): always on its own, and as a worker when the worker
    names one (a federation sender may have none)."""
    if roles.worker is None:
        return True
    return getattr(config.workers[roles.worker], listener) is not None


def name_responses(app: web.Application, worker: str) -> None:
    """Every response of `app` says which worker answered it."""

    async def add_header(_: web.Request, response: web.StreamResponse) -> None:
        response.headers[WORKER_HEADER] = worker

    app.on_response_prepare.append(add_header)


def worker_routes(config: Config, *, nginx: bool) -> int:
    """`homeserver worker-routes`: the routing table, or an nginx.conf for it."""
    from homeserver.cluster.nginx import nginx_config, routing_text
    from homeserver.cluster.routes import route_table

    routes = route_table()
    if not nginx:
        print(routing_text(config, routes))
        return 0
    try:
        print(nginx_config(config, routes), end="")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return 0
