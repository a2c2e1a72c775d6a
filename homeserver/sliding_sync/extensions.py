"""Sliding sync extensions (to_device, e2ee, account_data, receipts, typing).

A placeholder with the interface the engine calls: it accepts any
`extensions` object and says nothing. The real extensions replace this file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from homeserver.sync.token import SyncToken


@attrs.frozen
class ExtensionScope:
    user_id: str
    device_id: str
    # The positions the previous response of this connection reached (None: first request).
    since: SyncToken | None
    # The positions this response reaches.
    upto: SyncToken
    # List name -> room ids of that list in this response's ranges.
    list_rooms: Mapping[str, Sequence[str]]
    # Room ids of room_subscriptions in this response.
    subscribed_rooms: Sequence[str]
    # True on the connection's first request.
    initial: bool


class ExtensionsRequest:
    """The parsed `extensions` object of a request."""


class SlidingSyncExtensions:
    def parse(self, body: Any) -> ExtensionsRequest | None:
        """The request's `extensions` object; MatrixError 400 on bad input."""
        return None

    async def build(
        self, request: ExtensionsRequest | None, scope: ExtensionScope
    ) -> dict[str, Any]:
        """The response's `extensions` object; {} when there is nothing to say."""
        return {}
