"""Redactions sent through `PUT /rooms/{roomId}/send/m.room.redaction/{txnId}`.

MSC4169 (spec v1.18) lets a client send a redaction like any other event, with
the target in `content.redacts`, in every room version. The event built from
it is the one the redact endpoint builds: the target goes where the room
version keeps it (inside `content` from room version 11, at the top level
before), so the same power-level checks and the same redaction apply.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import bad_json

REDACTION = "m.room.redaction"


def redaction_from_content(content: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Split a sent redaction's content into the rest of it and its target.

    A redaction names the event it removes; without a target it would redact
    nothing, so it is refused (400 M_BAD_JSON) rather than stored as a no-op.
    """
    target = content.get("redacts")
    if not isinstance(target, str) or not target.startswith("$") or len(target) < 2:
        raise bad_json("An m.room.redaction event needs the event id it redacts in 'redacts'")
    return {k: v for k, v in content.items() if k != "redacts"}, target
