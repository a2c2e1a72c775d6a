"""Time-limited TURN credentials for VoIP calls (coturn's REST API scheme).

coturn with `use-auth-secret` accepts the username "<expiry>:<anything>" and
the password base64(HMAC-SHA1(shared secret, username)) until the expiry
(unix seconds) passes. The homeserver and the TURN server share only the
secret: nothing is stored, and a leaked credential dies on its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from homeserver.config import TurnConfig
from homeserver.errors import MatrixError
from homeserver.requester import Requester


def turn_password(shared_secret: str, username: str) -> str:
    mac = hmac.new(shared_secret.encode(), username.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


class TurnService:
    def __init__(self, config: TurnConfig) -> None:
        self._config = config

    def credentials(self, requester: Requester) -> dict[str, Any]:
        """The spec's turnServer response; {} when no TURN server is configured."""
        config = self._config
        if requester.is_guest and not config.allow_guests:
            raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guests may not use TURN")
        if not config.uris or not config.shared_secret or config.user_lifetime_ms <= 0:
            return {}
        expiry = (int(time.time() * 1000) + config.user_lifetime_ms) // 1000
        username = f"{expiry}:{requester.user_id}"
        return {
            "username": username,
            "password": turn_password(config.shared_secret, username),
            "uris": list(config.uris),
            "ttl": config.user_lifetime_ms // 1000,
        }
