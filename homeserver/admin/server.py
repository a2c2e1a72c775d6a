"""The server's own status for administrators: version and background updates."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any


def server_version() -> str:
    try:
        return version("homeserver")
    except PackageNotFoundError:
        return "unknown"


class BackgroundUpdates:
    """Synapse's background updates API. This server migrates its schema at start-up
    (in one transaction per migration), so there is never an update in progress;
    the enabled switch is kept so that tools which pause updates work unchanged."""

    def __init__(self) -> None:
        self._enabled = True

    def status(self) -> dict[str, Any]:
        return {"enabled": self._enabled, "current_updates": {}}

    def enabled(self) -> dict[str, Any]:
        return {"enabled": self._enabled}

    def set_enabled(self, enabled: bool) -> dict[str, Any]:
        self._enabled = enabled
        return {"enabled": self._enabled}
