"""Where inbound EDUs go: one handler per edu_type.

The receiver knows no EDU by name. Each service that understands an EDU
registers an `async (origin, content) -> None` handler for its type at start-up
(server.py wires them); the receiver hands every EDU of a transaction to
`dispatch`. EDUs are best-effort by the spec: an unknown type is ignored, and
a handler that fails loses that EDU only, never the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

EduHandler = Callable[[str, dict[str, Any]], Awaitable[None]]


class EduRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, EduHandler] = {}

    def register(self, edu_type: str, handler: EduHandler) -> None:
        """Route EDUs of `edu_type` to `handler`; one handler per type."""
        if edu_type in self._handlers:
            raise ValueError(f"an EDU handler for {edu_type} is already registered")
        self._handlers[edu_type] = handler

    def handles(self, edu_type: str) -> bool:
        return edu_type in self._handlers

    async def dispatch(self, origin: str, edus: Iterable[Any]) -> None:
        """Hand each well-formed EDU to its handler, in order; skip the rest."""
        for edu in edus:
            if not isinstance(edu, dict):
                continue
            edu_type, content = edu.get("edu_type"), edu.get("content")
            if not isinstance(edu_type, str) or not isinstance(content, dict):
                continue
            handler = self._handlers.get(edu_type)
            if handler is None:
                continue
            try:
                await handler(origin, content)
            except Exception:
                log.exception("EDU %s from %s failed", edu_type, origin)
