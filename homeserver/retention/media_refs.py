"""Which media an event names, so purging an event deletes a local file only
when no event still keeping its content names it too.

Every mxc URI anywhere in an event's content is recorded (`event_media_refs`,
by a pipeline commit hook; schema/0390 recorded the events before it), which
errs on the side of keeping files. What a purge deletes is narrower: the
local media in the content fields the spec puts files in.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

from homeserver.events.event import Event
from storage.retention import RetentionStore

logger = logging.getLogger(__name__)

# The same pattern as schema/0390_retention.sql's backfill.
_MXC_IN_TEXT = re.compile(r"mxc://([\[\]A-Za-z0-9.:-]+)/([A-Za-z0-9_-]+)")
_MXC = re.compile(r"mxc://([\[\]A-Za-z0-9.:-]+)/([A-Za-z0-9_-]+)\Z")


def refs_in(text: str) -> list[tuple[str, str]]:
    """(server name, media id) of every mxc URI in a JSON text."""
    return _MXC_IN_TEXT.findall(text) if "mxc://" in text else []


def _file_urls(content: Mapping[str, Any]) -> Iterator[Any]:
    yield content.get("url")
    file = content.get("file")
    if isinstance(file, dict):
        yield file.get("url")
    info = content.get("info")
    if isinstance(info, dict):
        yield info.get("thumbnail_url")
        thumbnail_file = info.get("thumbnail_file")
        if isinstance(thumbnail_file, dict):
            yield thumbnail_file.get("url")


def local_media_of(content: Mapping[str, Any], server_name: str) -> set[str]:
    """Media ids of this server in the content's `url`, `file.url`,
    `info.thumbnail_url` and `info.thumbnail_file.url`."""
    found = set()
    for url in _file_urls(content):
        match = _MXC.match(url) if isinstance(url, str) else None
        if match and match[1] == server_name:
            found.add(match[2])
    return found


class MediaRefsRecorder:
    def __init__(self, store: RetentionStore) -> None:
        self._store = store

    async def on_commit(self, event: Event, stream_ordering: int) -> None:
        """Pipeline commit hook: record the media the new event names."""
        # Content only: the rest of a PDU names no media, and this runs
        # for every event the server commits.
        refs = refs_in(json.dumps(event.content, ensure_ascii=False))
        if not refs:
            return
        try:
            await self._store.add_media_refs(event.event_id, refs)
        except Exception:
            # The event is committed already; its sender must not see an error.
            logger.exception("recording the media of %s failed", event.event_id)
