"""What server.py builds differently when processes share the streams."""

from __future__ import annotations

import asyncpg

from homeserver.cluster.ephemeral_follower import EphemeralFollower
from homeserver.cluster.notifier import ClusterNotifier
from homeserver.cluster.presence import SharedPresenceService
from homeserver.cluster.roles import Duty, ProcessRoles
from homeserver.cluster.stream_ids import ClusterStreamIds
from homeserver.cluster.typing import SharedTypingService
from homeserver.config import Config
from homeserver.ephemeral.common import StreamPublisher
from homeserver.ephemeral.presence import PresenceService, PresenceTimers, now_ms
from homeserver.ephemeral.typing import ActivityTracker, TypingService
from homeserver.notifier import Notifier
from storage import stream_writers
from storage.ephemeral_changes import EphemeralChangeStore
from storage.presence import PresenceStore
from storage.presence_syncs import PresenceSyncStore
from storage.rooms import RoomStore
from storage.shared_caches import SharedCaches
from storage.streams import StreamIds
from storage.typing import TypingStore

# Every stream of a sync token and the sequence its positions come from.
SEQUENCES = {
    "events": "events_stream",
    "account_data": "account_data_stream",
    "receipts": "receipts_stream",
    "to_device": "to_device_stream",
    "presence": "presence_stream",
    "typing": "typing_stream",
    "device_lists": "device_lists_stream",
}


def session_name(config: Config, worker: str | None) -> str | None:
    """What this process's database sessions are named in a cluster: a
    writer with a session open may still commit a position it took."""
    if not config.cluster_mode:
        return None
    return stream_writers.application_name(worker or config.cluster.instance_name)


async def make_notifier(pool: asyncpg.Pool, config: Config, worker: str | None) -> Notifier:
    """The in-process notifier, or in a cluster one fed across processes
    (started: this process is registered as a writer of every stream, under
    its worker's name, or `cluster.instance_name` when it runs no worker)."""
    if not config.cluster_mode:
        return Notifier()
    assert config.database.dsn is not None  # Config.validate
    instance = worker or config.cluster.instance_name
    notifier = ClusterNotifier(pool, config.database.dsn, instance, SEQUENCES)
    await notifier.start()
    return notifier


def stream_ids(pool: asyncpg.Pool, notifier: Notifier, stream: str) -> StreamIds | ClusterStreamIds:
    """Where a stream's positions come from: blocks of the sequence in one
    process, one `nextval` at a time next to other writers in a cluster."""
    if isinstance(notifier, ClusterNotifier):
        return ClusterStreamIds(pool, stream, SEQUENCES[stream], notifier)
    return StreamIds(pool, SEQUENCES[stream])


async def typing_service(
    pool: asyncpg.Pool, notifier: Notifier, rooms: RoomStore, activity: ActivityTracker
) -> TypingService:
    """Typing in memory, or shared through the database in a cluster."""
    if not isinstance(notifier, ClusterNotifier):
        return TypingService(notifier, rooms, activity)
    publisher = StreamPublisher("typing", stream_ids(pool, notifier, "typing"), notifier)
    await publisher.start()
    return SharedTypingService(notifier, rooms, activity, TypingStore(pool), publisher)


async def ephemeral_follower(
    pool: asyncpg.Pool, notifier: Notifier, roles: ProcessRoles
) -> EphemeralFollower | None:
    """In a cluster, where the federation sender and the appservice delivery
    hear typing, receipts and presence, and the pushers read receipts
    (started); None in one process (they hear the services), and in a worker
    that runs none of them (those duties are never started there, so what
    their listeners hear is dropped)."""
    if not isinstance(notifier, ClusterNotifier):
        return None
    if not any(
        roles.runs(d) for d in (Duty.FEDERATION_SENDER, Duty.APPSERVICE_SENDER, Duty.PUSHER)
    ):
        return None
    follower = EphemeralFollower(EphemeralChangeStore(pool), notifier)
    await follower.start()
    return follower


def presence_service(
    pool: asyncpg.Pool,
    notifier: Notifier,
    shared: SharedCaches,
    config: Config,
    worker: str | None,
) -> PresenceService:
    """Presence timed out by this process, or in a cluster reported by every
    process and timed out by the holder of the presence-timeouts lease."""
    timers = PresenceTimers.from_timeouts(
        config.presence.idle_timeout_ms, config.presence.sync_timeout_ms
    )
    publisher = StreamPublisher("presence", stream_ids(pool, notifier, "presence"), notifier)
    if not isinstance(notifier, ClusterNotifier):
        return PresenceService(PresenceStore(pool), publisher, timers=timers)
    return SharedPresenceService(
        PresenceStore(pool),
        publisher,
        PresenceSyncStore(pool),
        shared,
        instance=worker or config.cluster.instance_name,
        server_name=config.server_name,
        timers=timers,
        clock=now_ms,
    )
