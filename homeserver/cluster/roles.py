"""Which process does what: the roles of a deployment's workers.

A deployment names its workers in the shared config (`workers:`, see
config.example.yaml): each has roles and listeners. A process started with
`--worker NAME` takes that worker's listeners and runs the background duties
of its roles only; a process started without `--worker` is the whole server
on its own, every role and every duty, as always.

The duties that must run once in a deployment are leased (cluster/lease.py)
among the processes whose roles include the duty's role, so killing the
holder moves the duty to another within seconds. Which HTTP paths go to
which role is cluster/routes.py.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import attrs


class Role(enum.StrEnum):
    # Reads: /sync, sliding sync, room reads, profiles, key queries, media downloads.
    CLIENT = "client"
    # Room writes; each room is owned by one of them (`persister_for`).
    EVENT_PERSISTER = "event_persister"
    # The federation listener: /send, joins, reads, keys.
    FEDERATION_INBOUND = "federation_inbound"
    # Outbound transactions to other servers.
    FEDERATION_SENDER = "federation_sender"
    PUSHER = "pusher"
    # Transactions to application services.
    APPSERVICE = "appservice"
    # Uploads, thumbnails, URL previews.
    MEDIA = "media"
    # Retention, scheduled and delayed work, expiries; the admin API.
    BACKGROUND = "background"


class Duty(enum.StrEnum):
    """A background duty that runs once in a deployment; its value is its lease's name."""

    RETENTION_PURGE = "retention-purge"
    DELAYED_EVENTS = "delayed-events"
    SELF_DESTRUCT = "self-destruct"
    MEDIA_EXPIRY = "media-expiry"
    FEDERATION_SENDER = "federation-sender"
    APPSERVICE_SENDER = "appservice-sender"
    PRESENCE_TIMEOUTS = "presence-timeouts"
    PUSHER = "pusher"


# The role whose processes hold each duty's lease.
DUTY_ROLES: Mapping[Duty, Role] = {
    Duty.RETENTION_PURGE: Role.BACKGROUND,
    Duty.DELAYED_EVENTS: Role.BACKGROUND,
    Duty.SELF_DESTRUCT: Role.BACKGROUND,
    Duty.MEDIA_EXPIRY: Role.BACKGROUND,
    Duty.FEDERATION_SENDER: Role.FEDERATION_SENDER,
    Duty.APPSERVICE_SENDER: Role.APPSERVICE,
    Duty.PRESENCE_TIMEOUTS: Role.BACKGROUND,
    Duty.PUSHER: Role.PUSHER,
}

# Worker names appear in lease names, nginx upstreams and response headers.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class WorkerSpec(Protocol):
    """One worker of the config (homeserver/config.py WorkerConfig)."""

    @property
    def roles(self) -> list[str]: ...

    @property
    def client_listen(self) -> str | None: ...

    @property
    def federation_listen(self) -> str | None: ...

    @property
    def internal_listen(self) -> str | None: ...

    @property
    def metrics_listen(self) -> str | None: ...


# Roles that answer requests on each listener (cluster/routes.py routes to them).
CLIENT_LISTENER_ROLES = frozenset({Role.CLIENT, Role.EVENT_PERSISTER, Role.MEDIA, Role.BACKGROUND})
FEDERATION_LISTENER_ROLES = frozenset({Role.FEDERATION_INBOUND})


def check_workers(workers: Mapping[str, WorkerSpec], shared_secret: str | None) -> None:
    """The `workers` section as a whole: raise ValueError naming what is wrong."""
    if not workers:
        return
    if shared_secret is None or len(shared_secret) < 32:
        raise ValueError(
            "worker_shared_secret: the workers' internal API needs a secret of at least 32 characters"
        )
    addresses: dict[str, str] = {}
    covered: set[Role] = set()
    for name, worker in workers.items():
        where = f"workers.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{where}: a worker name is 1-64 of a-z, 0-9, _ and -")
        if not worker.roles:
            raise ValueError(f"{where}.roles: give at least one role")
        roles = set()
        for role in worker.roles:
            if role not in Role.__members__.values():
                known = ", ".join(r.value for r in Role)
                raise ValueError(f"{where}.roles: unknown role {role!r} (known: {known})")
            if role in roles:
                raise ValueError(f"{where}.roles: {role!r} is listed twice")
            roles.add(Role(role))
        covered |= roles
        if roles & CLIENT_LISTENER_ROLES and worker.client_listen is None:
            raise ValueError(f"{where}.client_listen: its roles answer client requests")
        if roles & FEDERATION_LISTENER_ROLES and worker.federation_listen is None:
            raise ValueError(f"{where}.federation_listen: its roles answer other servers")
        if worker.internal_listen is None:
            raise ValueError(f"{where}.internal_listen: every worker has an internal listener")
        for key in ("client_listen", "federation_listen", "internal_listen", "metrics_listen"):
            address = getattr(worker, key)
            if address is None:
                continue
            if address in addresses:
                raise ValueError(f"{where}.{key}: {address} is also {addresses[address]}")
            addresses[address] = f"{where}.{key}"
    missing = [r.value for r in Role if r not in covered]
    if missing:
        raise ValueError(f"workers: no worker has the role(s) {', '.join(missing)}")


@attrs.frozen
class ProcessRoles:
    """The roles of this process. `worker` None: the whole server in one process."""

    worker: str | None
    roles: frozenset[Role]

    @classmethod
    def single_process(cls) -> ProcessRoles:
        return cls(None, frozenset(Role))

    @classmethod
    def of_worker(cls, name: str, roles: Iterable[str]) -> ProcessRoles:
        return cls(name, frozenset(Role(r) for r in roles))

    def has(self, role: Role) -> bool:
        return role in self.roles

    def runs(self, duty: Duty) -> bool:
        """Whether this process is among those that may hold the duty's lease."""
        return DUTY_ROLES[duty] in self.roles


def workers_with(workers: Mapping[str, WorkerSpec], role: Role) -> list[str]:
    """The names of the workers with `role`, in a stable order."""
    return sorted(name for name, worker in workers.items() if role in worker.roles)


def _weight(key: str, member: str) -> bytes:
    return hashlib.sha256(f"{member}\0{key}".encode()).digest()


def owner_of(key: str, members: Sequence[str]) -> str:
    """Which of `members` owns `key` (a room id over the event persisters, a
    destination over the federation senders): rendezvous hashing, stable
    across processes and restarts, and adding a member moves only the keys
    it now owns."""
    if not members:
        raise ValueError("no member to own the key")
    return max(members, key=lambda member: _weight(key, member))
