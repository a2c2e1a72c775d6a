"""From an upstream provider's claims to a Matrix account: who may come in,
which localpart and display name they get.

Templates are Jinja2 in a sandbox (the claims come from outside), as
Synapse's `user_mapping_provider.config.*_template`, with the claims as `user`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from jinja2 import ChainableUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from homeserver.config import AttributeRequirement, UserMappingConfig

# `=` itself is escaped, so two different names never map to one localpart.
_LOCALPART_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-/+")


class MappingError(Exception):
    """The claims cannot be turned into an account; the message says why."""


@attrs.frozen
class MappedUser:
    localpart: str
    display_name: str | None


class UserMapper:
    def __init__(
        self, config: UserMappingConfig, requirements: Sequence[AttributeRequirement]
    ) -> None:
        # A missing claim renders empty, as Synapse: no display name, or no localpart (refused).
        env = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
        self._localpart = env.from_string(config.localpart_template)
        self._display_name = (
            env.from_string(config.display_name_template)
            if config.display_name_template is not None
            else None
        )
        self._email = (
            env.from_string(config.email_template) if config.email_template is not None else None
        )
        self._requirements = tuple(requirements)

    def check_requirements(self, claims: Mapping[str, Any]) -> None:
        """Every `attribute_requirements` entry must hold: the claim equals the
        value, or is a list that contains it (as Synapse)."""
        for req in self._requirements:
            value = claims.get(req.attribute)
            ok = value == req.value or (isinstance(value, list) and req.value in value)
            if not ok:
                raise MappingError(f"Your account is missing the required {req.attribute!r}")

    def map(self, claims: Mapping[str, Any]) -> MappedUser:
        try:
            raw = self._localpart.render(user=claims).strip()
            display = (
                self._display_name.render(user=claims).strip()
                if self._display_name is not None
                else ""
            )
        except TemplateError as e:
            raise MappingError(f"The provider did not send what the mapping needs: {e}") from e
        localpart = sanitise_localpart(raw)
        if not localpart:
            raise MappingError("The provider sent no usable user name")
        return MappedUser(localpart, display or None)

    def email(self, claims: Mapping[str, Any]) -> str | None:
        """The mapped email address, if the template gives something like one."""
        if self._email is None:
            return None
        try:
            value = self._email.render(user=claims).strip()
        except TemplateError:
            return None
        ok = (
            3 <= len(value) <= 254 and value.count("@") == 1 and not any(c.isspace() for c in value)
        )
        return value if ok else None


def sanitise_localpart(value: str) -> str:
    """Lower case; any character a localpart may not hold becomes `=` and its
    UTF-8 bytes in hex (the spec's historical mapping, as Synapse's)."""
    out = []
    for ch in value.lower():
        if ch in _LOCALPART_CHARS:
            out.append(ch)
        else:
            out.extend(f"={b:02x}" for b in ch.encode())
    return "".join(out)
