"""Which Matrix account a password verified by the directory opens.

Collisions are decided as matrix-synapse-ldap3 decides them: when the
directory accepts the password of a user whose localpart already names an
account here (made by local registration before LDAP was configured, say),
that account is the one signed in to. The directory is the authority on who
the person is; with `local_passwords_enabled: false` nothing but the
directory can open the account any more.
"""

from __future__ import annotations

import logging

from homeserver.accounts.ldap.directory import LdapDirectory
from homeserver.accounts.registration import AccountService
from homeserver.errors import MatrixError
from homeserver.identifiers import is_valid_localpart, split_user_id, user_id_for
from storage.ldap_users import LdapUserStore
from storage.users import UserRecord, UserStore

logger = logging.getLogger(__name__)


class LdapSignIn:
    def __init__(
        self,
        directory: LdapDirectory,
        accounts: AccountService,
        users: UserStore,
        store: LdapUserStore,
        server_name: str,
        *,
        create_users: bool,
        local_passwords_enabled: bool,
    ) -> None:
        self._directory = directory
        self._accounts = accounts
        self._users = users
        self._store = store
        self._server_name = server_name
        self._create_users = create_users
        self.local_passwords_enabled = local_passwords_enabled

    async def sign_in(
        self, user_id: str, existing: UserRecord | None, password: str
    ) -> UserRecord | None:
        """The account the directory vouches for with this password, or None.

        Raises DirectoryUnavailable when the directory cannot be asked. Only
        local user ids with a valid localpart are looked up, in lower case
        (the directory's matching of user names ignores case, Matrix's not).
        """
        parts = split_user_id(user_id)
        if parts is None or parts[1] != self._server_name:
            return None
        localpart = parts[0].lower()
        if not is_valid_localpart(localpart):
            # Never sent to the directory: filter syntax or worse (logged).
            logger.warning("LDAP: refused user name %r: not a valid localpart", localpart)
            return None
        entry = await self._directory.authenticate(localpart, password)
        if entry is None:
            return None
        if existing is not None:
            return existing
        if not self._create_users:
            logger.info("LDAP: %s has no account here and create_users is off", localpart)
            return None
        new_user_id = user_id_for(localpart, self._server_name)
        try:
            await self._accounts.create(new_user_id, None, displayname=entry.display_name)
            logger.info("LDAP: created %s for %s", new_user_id, entry.dn)
        except MatrixError as e:
            # A concurrent first sign-in of the same person created it first.
            if e.errcode != "M_USER_IN_USE":
                raise
        await self._store.record(new_user_id, entry.dn, entry.email)
        return await self._users.get_user(new_user_id)

    async def manages_password(self, user_id: str) -> bool:
        """Whether the account's password lives in the directory (it was created from it)."""
        return await self._store.is_directory_user(user_id)
