"""Stored EDUs reach the federation sender shard that sends them, from any process.

Device list and signing key updates are stored in the EDU outbox by the
process where the change was made (federation/sender.py `keys_changed`), a
`client` worker as often as not, while only the holder of the destination's
shard lease sends them. The process that stored them wakes its own queues,
but the holder lives elsewhere: without a word it would find them only at its
next wake of that destination (a PDU for it) or its next start, and remote
users would not see the new device, nor encrypt to it, meanwhile.

So after the outbox rows commit, the storing process names their
destinations on the invalidation channel every process already listens to
(cluster/invalidation.py), as entries of the `federation_outbox` "cache"
(the entry a destination has there being "nothing waits for it"): no extra
connection, no query per wake, and the same recovery when the channel was
lost, when every destination with stored work is woken (one query). Every
sender object of the hearing process is told; only a started one (its shard
lease held) that owns the destination wakes that queue. The queue reads the
outbox itself and deletes what the destination acknowledged, so a wake that
finds the rows already sent sends nothing twice.

To-device messages need none of this: they take a position of the shared
`to_device` stream, which the sender follows through the cluster notifier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from storage.shared_caches import SharedCaches

OUTBOX = "federation_outbox"

Filled = Callable[[str], None]
Missed = Callable[[], None]


class OutboxWakes:
    """Names the destinations of new outbox rows to the other processes, and
    tells this process's senders of theirs."""

    def __init__(self, shared: SharedCaches) -> None:
        self._shared = shared
        self._filled: list[Filled] = []
        self._missed: list[Missed] = []
        shared.register(OUTBOX, self._heard, self._maybe_missed)

    def listen(self, filled: Filled, missed: Missed) -> None:
        """`filled(destination)`: another process stored EDUs for it;
        `missed()`: some may have been stored unheard (the channel was lost)."""
        self._filled.append(filled)
        self._missed.append(missed)

    def stored(self, destinations: Iterable[str]) -> None:
        """EDUs for these destinations were committed to the outbox here."""
        for destination in destinations:
            self._shared.tell_others(OUTBOX, destination)

    def _heard(self, destination: str) -> None:
        for filled in self._filled:
            filled(destination)

    def _maybe_missed(self) -> None:
        for missed in self._missed:
            missed()
