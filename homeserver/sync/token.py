"""Sync tokens: the position of every stream, as one opaque string.

The form is "s<events>_<account_data>_<receipts>_..." in the order of
STREAMS. It starts with the event stream position so that /messages accepts
a sync token as `from` (see homeserver/rooms/history.py). Streams added later
go at the end; a token missing them reads them as 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from homeserver.errors import MatrixError

STREAMS = (
    "events",
    "account_data",
    "receipts",
    "to_device",
    "presence",
    "typing",
    "device_lists",
)


@attrs.frozen
class SyncToken:
    positions: Mapping[str, int]

    def __getitem__(self, stream: str) -> int:
        return self.positions.get(stream, 0)

    def __str__(self) -> str:
        return "s" + "_".join(str(self[s]) for s in STREAMS)

    @classmethod
    def parse(cls, text: str) -> SyncToken:
        parts = text[1:].split("_") if text.startswith("s") else []
        if (
            not parts
            or len(parts) > len(STREAMS)
            or not all(p.isdigit() and len(p) <= 18 for p in parts)
        ):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid sync token")
        return cls(dict(zip(STREAMS, map(int, parts), strict=False)))
