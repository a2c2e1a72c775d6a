"""The federation sender's shards: destinations spread over the deployment's
federation_sender workers by a stable hash, one leased duty per shard.

With one federation_sender worker (or one process) there is one sender for
every destination, reading from the one stored position as always. With n,
shard i (named "i-of-n", its position its own) sends to the destinations
whose hash falls to it. Shard i is the own shard of the i-th sender worker
(by name): the others ask for it only while that worker has no session on
the database, and give it back once it has one again, so shards spread one
per worker whenever all are up, and a dead worker's shard is taken by
another within seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs

from homeserver.cluster.roles import ProcessRoles, Role, WorkerSpec, owner_of, workers_with


@attrs.frozen
class SenderShard:
    # The stored position's key (None: the one-sender position).
    name: str | None
    lease: str
    owns: Callable[[str], bool] | None
    # The worker whose own shard it is, when that is not this process.
    defer_to: str | None


def shard_of(destination: str, count: int) -> int:
    return int(owner_of(destination, [str(i) for i in range(count)]))


def sender_shards(workers: Mapping[str, WorkerSpec], roles: ProcessRoles) -> list[SenderShard]:
    """Every shard of the deployment, as this process sees it (each process
    builds them all: a key change stores its EDUs in the outbox of the
    destination's shard whichever process it happens in)."""
    senders = workers_with(workers, Role.FEDERATION_SENDER)
    if roles.worker is None or len(senders) <= 1:
        return [SenderShard(None, "federation-sender", None, None)]
    count = len(senders)
    return [
        SenderShard(
            f"{i}-of-{count}",
            f"federation-sender-{i}-of-{count}",
            _owner(i, count),
            None if worker == roles.worker else worker,
        )
        for i, worker in enumerate(senders)
    ]


def _owner(index: int, count: int) -> Callable[[str], bool]:
    return lambda destination: shard_of(destination, count) == index
