"""`GET /password_policy` (MSC2000): the rules new passwords must follow, for
clients to check a password as it is typed. Unauthenticated, as in Synapse
(a registration form asks before there is an account)."""

from __future__ import annotations

from typing import Any

from homeserver.accounts.password_policy import PasswordPolicy
from homeserver.api.http import CLIENT_PREFIXES, ClientRequest, endpoint

# Synapse also serves it under the bare unstable prefix, where Element Web asks.
PREFIXES = (*CLIENT_PREFIXES, "/_matrix/client/unstable")


class PasswordPolicyApi:
    def __init__(self, policy: PasswordPolicy) -> None:
        self._policy = policy

    @endpoint("GET", "/password_policy", auth=False, prefixes=PREFIXES)
    async def password_policy(self, req: ClientRequest) -> dict[str, Any]:
        return self._policy.advertised()
