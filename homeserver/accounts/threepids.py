"""The email addresses added to accounts: listed on GET /account/3pid, used
to reset a password and to log in (m.id.thirdparty).

An address is added only once this server validated it (homeserver/email),
by registration with an email stage or POST /account/3pid/add.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from homeserver.accounts.login import identifier_user
from homeserver.email.validation import EMAIL, ValidatedAddress, canonical_email
from homeserver.errors import MatrixError, bad_json, forbidden
from storage.user_threepids import UserThreepid, UserThreepidStore

log = logging.getLogger(__name__)


def canonical_address(medium: str, address: str) -> str:
    """Addresses are stored canonical: emails trimmed and lower-cased."""
    return canonical_email(address) if medium == EMAIL else address


class AccountThreepids:
    def __init__(self, store: UserThreepidStore) -> None:
        self._store = store

    async def list(self, user_id: str) -> list[UserThreepid]:
        return await self._store.for_user(user_id)

    async def add(self, user_id: str, validated: ValidatedAddress) -> None:
        """400 M_THREEPID_IN_USE if another account has the address."""
        now = int(time.time() * 1000)
        added = await self._store.add(
            user_id, validated.medium, validated.address, validated.validated_ts, now
        )
        if not added:
            raise MatrixError(400, "M_THREEPID_IN_USE", "This address is used by another account")

    async def add_at_registration(self, user_id: str, validated: ValidatedAddress) -> None:
        """As `add`, but an address taken meanwhile does not undo the new account."""
        try:
            await self.add(user_id, validated)
        except MatrixError:
            log.warning("%s registered with an address another account took meanwhile", user_id)

    async def remove(self, user_id: str, medium: str, address: str) -> None:
        await self._store.remove(user_id, medium, canonical_address(medium, address))

    async def remove_all(self, user_id: str) -> None:
        await self._store.remove_all(user_id)

    async def owner(self, medium: str, address: str) -> str | None:
        """The account with this address, if any (an invalid address has none)."""
        try:
            address = canonical_address(medium, address)
        except MatrixError:
            return None
        return await self._store.owner(medium, address)


async def identified_user(
    body: dict[str, Any], server_name: str, threepids: AccountThreepids | None
) -> str:
    """The user a password login (or m.login.password stage) names: by user
    id, or by an address of the account (m.id.thirdparty, or the legacy
    top-level `medium` and `address`)."""
    identifier = body.get("identifier")
    if isinstance(identifier, dict) and identifier.get("type") == "m.id.thirdparty":
        medium, address = identifier.get("medium"), identifier.get("address")
    elif identifier is None and "medium" in body:
        medium, address = body.get("medium"), body.get("address")
    else:
        return identifier_user(body, server_name)
    if not isinstance(medium, str) or not isinstance(address, str):
        raise bad_json("A third-party identifier needs a 'medium' and an 'address'")
    owner = await threepids.owner(medium, address) if threepids is not None else None
    if owner is None:
        # The answer of a wrong password: it does not tell which addresses exist.
        raise forbidden("Invalid username or password")
    return owner
