"""The password policy: the rules new passwords must follow, and how they are
told to clients (MSC2000's `GET /password_policy`, as Synapse serves it)."""

from __future__ import annotations

import re
from typing import Any

from homeserver.config import PasswordPolicyConfig
from homeserver.errors import MatrixError

# (config flag, what must occur, error code, message), in Synapse's order, so
# the first broken rule is reported as Synapse reports it.
_RULES = (
    ("require_digit", re.compile("[0-9]"), "M_PASSWORD_NO_DIGIT", "at least one digit"),
    ("require_symbol", re.compile("[^a-zA-Z0-9]"), "M_PASSWORD_NO_SYMBOL", "at least one symbol"),
    (
        "require_uppercase",
        re.compile("[A-Z]"),
        "M_PASSWORD_NO_UPPERCASE",
        "at least one uppercase letter",
    ),
    (
        "require_lowercase",
        re.compile("[a-z]"),
        "M_PASSWORD_NO_LOWERCASE",
        "at least one lowercase letter",
    ),
)


class PasswordPolicy:
    def __init__(self, config: PasswordPolicyConfig) -> None:
        self._config = config

    def check(self, password: str) -> None:
        """Raise 400 with the spec's error code for the first rule `password` breaks."""
        config = self._config
        if not config.enabled:
            return
        if len(password) < config.minimum_length:
            raise MatrixError(
                400,
                "M_PASSWORD_TOO_SHORT",
                f"The password must be at least {config.minimum_length} characters long",
            )
        for flag, pattern, errcode, needs in _RULES:
            if getattr(config, flag) and pattern.search(password) is None:
                raise MatrixError(400, errcode, f"The password must include {needs}")

    def advertised(self) -> dict[str, Any]:
        """The policy as `GET /password_policy` gives it: {} when there is none."""
        config = self._config
        if not config.enabled:
            return {}
        policy: dict[str, Any] = {"m.minimum_length": config.minimum_length}
        for flag, *_ in _RULES:
            policy[f"m.{flag}"] = getattr(config, flag)
        return policy
