"""The plain-text topic of an `m.room.topic` event's content.

Since spec v1.15 (MSC3765) a topic may carry an `m.topic` content block: an
`m.text` list of representations, each a `body` with an optional `mimetype`
(text/plain when absent). The `topic` field SHOULD duplicate the text/plain
one, but a client may send only `m.topic` or let the two drift; whoever shows
a plain topic (room directory, hierarchy, summaries, search) reads the
text/plain representation first and falls back to `topic`, as Synapse does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def plain_topic(content: Mapping[str, Any]) -> str | None:
    """The text/plain topic, or None when the room has no (non-empty) topic."""
    rich = content.get("m.topic")
    texts = rich.get("m.text") if isinstance(rich, Mapping) else None
    if isinstance(texts, list):
        for part in texts:
            if (
                isinstance(part, Mapping)
                and part.get("mimetype", "text/plain") == "text/plain"
                and isinstance(part.get("body"), str)
            ):
                return part["body"] or None
    topic = content.get("topic")
    return topic if isinstance(topic, str) and topic else None


def topic_search_text(content: Mapping[str, Any]) -> str | None:
    """What search indexes of a topic: `topic` and, when it differs, the
    text/plain body of `m.topic` (the spec's search module names both)."""
    topic = content.get("topic")
    parts = [topic] if isinstance(topic, str) and topic else []
    plain = plain_topic(content)
    if plain is not None and plain not in parts:
        parts.append(plain)
    return " ".join(parts) if parts else None
