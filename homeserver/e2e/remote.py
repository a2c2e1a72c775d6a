"""The door to other servers' keys, implemented by the federation client.

Without it (None), queries and claims for remote users are answered with the
remote server named in `failures`, as the spec does for an unreachable server.
An implementation signals a server that could not answer by raising
MatrixError, OSError, TimeoutError or ValueError (a malformed answer); the
server then lands in `failures` too. Each server is asked once per request,
all servers at once, within the request's `timeout`.
"""

from __future__ import annotations

from typing import Any, Protocol


class RemoteKeys(Protocol):
    async def query(
        self, server: str, device_keys: dict[str, list[str]], timeout_ms: int
    ) -> dict[str, Any]:
        """The server's /federation/v1/user/keys/query answer: device_keys,
        master_keys, self_signing_keys."""
        ...

    async def claim(
        self, server: str, one_time_keys: dict[str, dict[str, str]], timeout_ms: int
    ) -> dict[str, Any]:
        """The server's /federation/v1/user/keys/claim answer: one_time_keys."""
        ...


UNREACHABLE = {"status": 503, "message": "Federation is not available"}
