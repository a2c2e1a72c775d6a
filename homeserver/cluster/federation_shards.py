"""The federation sender's shards: destinations spread over the deployment's
federation_sender workers by a stable hash, one leased duty per shard.

With one federation_sender worker (or one process) there is one sender for
every destination, reading from the one stored position as always. With n,
shard i (named "i-of-n", its position its own) sends to the destinations
whose hash falls to it; each worker asks first for the shard of its own
rank and for the others only after `OTHERS_AFTER_S`, so shards spread one
per worker when all are up, and a dead worker's shard is taken by another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs

from homeserver.cluster.lease import RETRY_S
from homeserver.cluster.roles import ProcessRoles, Role, WorkerSpec, owner_of, workers_with

# How long a worker leaves another's shard for its own worker to take.
OTHERS_AFTER_S = 2 * RETRY_S + 1


@attrs.frozen
class SenderShard:
    # The stored position's key (None: the one-sender position).
    name: str | None
    lease: str
    owns: Callable[[str], bool] | None
    # Seconds before this process first asks for the shard's lease.
    first_ask_after_s: float


def shard_of(destination: str, count: int) -> int:
    return int(owner_of(destination, [str(i) for i in range(count)]))


def sender_shards(workers: Mapping[str, WorkerSpec], roles: ProcessRoles) -> list[SenderShard]:
    """Every shard of the deployment, as this process sees it (each process
    builds them all: a key change stores its EDUs in the outbox of the
    destination's shard whichever process it happens in)."""
    senders = workers_with(workers, Role.FEDERATION_SENDER)
    if roles.worker is None or len(senders) <= 1:
        return [SenderShard(None, "federation-sender", None, 0.0)]
    count = len(senders)
    rank = senders.index(roles.worker) if roles.worker in senders else None
    return [
        SenderShard(
            f"{i}-of-{count}",
            f"federation-sender-{i}-of-{count}",
            _owner(i, count),
            0.0 if i == rank else OTHERS_AFTER_S,
        )
        for i in range(count)
    ]


def _owner(index: int, count: int) -> Callable[[str], bool]:
    return lambda destination: shard_of(destination, count) == index
