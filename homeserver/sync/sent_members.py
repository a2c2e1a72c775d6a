"""Which member events each device was already sent while lazy loading members.

With `lazy_load_members` (and without `include_redundant_members`), an
incremental sync leaves out the member events the device was sent before,
as Synapse does with its lazy-loaded members cache: a client keeps the
member state it was given, so sending it again with every message of that
sender only costs bandwidth. An initial sync starts the device afresh.

Memory is bounded: each device remembers its most recent
`PER_DEVICE` (room, user) pairs, and the most recently syncing `DEVICES`
devices are kept. A forgotten entry only means that member event is sent
again, which is always correct (Synapse keeps 100 per device too). Each
process keeps its own memory, as Synapse's workers do, so a device's syncs
belong on one process.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

DEVICES: Final = 5_000
PER_DEVICE: Final = 100

# (user id, device id)
DeviceKey = tuple[str, str]
# (room id, member user id)
_MemberKey = tuple[str, str]


class SentMembers:
    def __init__(self, devices: int = DEVICES, per_device: int = PER_DEVICE) -> None:
        self._devices = devices
        self._per_device = per_device
        self._sent: OrderedDict[DeviceKey, OrderedDict[_MemberKey, str]] = OrderedDict()

    def forget(self, device: DeviceKey) -> None:
        """The device starts afresh (an initial sync): it is assumed to have nothing."""
        self._sent.pop(device, None)

    def was_sent(self, device: DeviceKey, room_id: str, user_id: str, event_id: str) -> bool:
        """Whether this very member event is the last one the device was sent for the user."""
        sent = self._sent.get(device)
        return sent is not None and sent.get((room_id, user_id)) == event_id

    def remember(self, device: DeviceKey, room_id: str, user_id: str, event_id: str) -> None:
        sent = self._sent.get(device)
        if sent is None:
            sent = self._sent[device] = OrderedDict()
            while len(self._sent) > self._devices:
                self._sent.popitem(last=False)
        else:
            self._sent.move_to_end(device)
        sent[(room_id, user_id)] = event_id
        sent.move_to_end((room_id, user_id))
        while len(sent) > self._per_device:
            sent.popitem(last=False)
