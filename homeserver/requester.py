"""Who is making an authenticated request."""

from __future__ import annotations

import attrs


@attrs.frozen
class Requester:
    user_id: str
    device_id: str
    token_id: int
    is_guest: bool = False
