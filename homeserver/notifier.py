"""Wakes whoever waits for new events (long-polling /sync) when the event
stream moves. In-process; several processes feed it via LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio


class Notifier:
    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self.position = 0

    def advance(self, position: int) -> None:
        if position > self.position:
            self.position = position
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_beyond(self, position: int, timeout_s: float) -> int:
        """Return once the stream is past `position`, or after `timeout_s` seconds."""
        if self.position > position:
            return self.position
        changed = self._changed
        try:
            async with asyncio.timeout(timeout_s):
                await changed.wait()
        except TimeoutError:
            pass
        return self.position
