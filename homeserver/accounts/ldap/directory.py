"""Talking to the LDAP / Active Directory server: is this the user's password?

ldap3 is synchronous, so each sign-in runs in a worker thread of its own
small pool (a hanging directory must not use up the threads that bcrypt and
others share), bounded twice: ldap3's own connect and receive timeouts, and
an overall deadline here, so a directory that hangs never holds up the event
loop or a request for long.

Everything typed by the user is escaped with ldap3's own helpers before it
goes into a filter (`escape_filter_chars`) or a DN (`escape_rdn`), and only a
successful simple bind with a non-empty password counts: RFC 4513 5.1.2 makes
a bind with a DN and an empty password an anonymous one, which says nothing
about who is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from homeserver.config import LdapConfig

logger = logging.getLogger(__name__)

# Bind and search results that mean "the directory cannot answer now" rather
# than "no": busy, unavailable, unwilling, time or admin limit, other.
_UNAVAILABLE_RESULTS = {3, 11, 51, 52, 53, 80}
# Sign-ins talking to the directory at once; more wait (within their deadline).
_THREADS = 8


class DirectoryUnavailable(Exception):
    """The directory could not be asked (down, timed out, misconfigured)."""


@attrs.frozen
class DirectoryUser:
    """The entry a password was verified against."""

    dn: str
    display_name: str | None
    email: str | None


class LdapDirectory:
    """Verifies passwords by binding to the directory as the user."""

    def __init__(self, config: LdapConfig, ca_file: str | None) -> None:
        self._config = config
        tls = ldap3.Tls(
            ca_certs_file=ca_file,
            validate=ssl.CERT_REQUIRED if config.tls_verify else ssl.CERT_NONE,
            version=ssl.PROTOCOL_TLS_CLIENT,
        )
        self._tls = tls
        self._threads = ThreadPoolExecutor(_THREADS, thread_name_prefix="ldap")
        # Each connection may try every server; then StartTLS, binds and a search.
        self._deadline = 2 * config.connect_timeout * len(config.uri) + 4 * config.timeout

    async def authenticate(self, localpart: str, password: str) -> DirectoryUser | None:
        """The user's entry if `password` binds as them (and they pass `user_filter`).

        None for a wrong password, an unknown user or one outside the filter;
        DirectoryUnavailable when the directory cannot tell.
        """
        if not password:
            return None
        try:
            loop = asyncio.get_running_loop()
            return await asyncio.wait_for(
                loop.run_in_executor(self._threads, self._authenticate, localpart, password),
                self._deadline,
            )
        except TimeoutError:
            logger.warning("LDAP: no answer within %.0f s", self._deadline)
            raise DirectoryUnavailable("timed out") from None

    def _authenticate(self, localpart: str, password: str) -> DirectoryUser | None:
        config = self._config
        try:
            if config.bind_template is not None:
                dn = config.bind_template.replace("{localpart}", escape_rdn(localpart))
                with self._connection(dn, password) as conn:
                    if not self._bind(conn, user=True):
                        return None
                    return self._find(conn, localpart)
            with self._connection(config.bind_dn, config.bind_password) as conn:
                if config.bind_dn is not None and not self._bind(conn, user=False):
                    raise DirectoryUnavailable("the service account cannot bind")
                user = self._find(conn, localpart)
            if user is None:
                return None
            with self._connection(user.dn, password) as conn:
                return user if self._bind(conn, user=True) else None
        except LDAPException as e:
            logger.warning("LDAP: directory unavailable: %s", e)
            raise DirectoryUnavailable(str(e)) from None

    @contextlib.contextmanager
    def _connection(self, user: str | None, password: str | None) -> Iterator[ldap3.Connection]:
        """An open connection (after StartTLS if configured), unbound afterwards.

        Not ldap3's own `with`, which binds on entering and raises on a wrong password.
        """
        conn = self._open(user, password)
        try:
            if self._config.start_tls and not conn.server.ssl and not conn.start_tls():
                raise DirectoryUnavailable(f"StartTLS refused: {conn.result}")
            yield conn
        finally:
            with contextlib.suppress(LDAPException):
                conn.unbind()

    def _open(self, user: str | None, password: str | None) -> ldap3.Connection:
        """A connection to the first configured server that accepts one.

        Failover is done here, in order, rather than by ldap3's ServerPool,
        which sleeps ten seconds between rounds when every server is down; and
        with a fresh ldap3.Server each time, since one remembers an address
        that failed as unusable long after the directory is back.
        """
        failure: LDAPException | None = None
        for uri in self._config.uri:
            server = ldap3.Server(
                uri,
                get_info=ldap3.NONE,
                tls=self._tls,
                connect_timeout=self._config.connect_timeout,
            )
            conn = ldap3.Connection(
                server,
                user=user,
                password=password,
                auto_bind=ldap3.AUTO_BIND_NONE,
                read_only=True,
                raise_exceptions=False,
                receive_timeout=self._config.timeout,
            )
            try:
                conn.open()
                return conn
            except LDAPException as e:
                logger.warning("LDAP: cannot reach %s: %s", server, e)
                failure = e
        raise DirectoryUnavailable(f"no directory server answers: {failure}")

    def _bind(self, conn: ldap3.Connection, *, user: bool) -> bool:
        if conn.bind():
            return True
        result = conn.result or {}
        code = result.get("result")
        if code in _UNAVAILABLE_RESULTS or not user:
            logger.warning("LDAP: bind failed: %s", result.get("description"))
            raise DirectoryUnavailable(str(result.get("description")))
        logger.info("LDAP: bind refused (%s)", result.get("description"))
        return False

    def _find(self, conn: ldap3.Connection, localpart: str) -> DirectoryUser | None:
        """The one entry whose uid attribute is `localpart` and that passes user_filter."""
        config = self._config
        attrs_ = config.attributes
        search_filter = (
            f"(&({attrs_.uid}={escape_filter_chars(localpart)}){config.user_filter or ''})"
        )
        ok = conn.search(
            config.base,
            search_filter,
            search_scope=ldap3.SUBTREE,
            attributes=[attrs_.uid, attrs_.name, attrs_.mail],
            size_limit=2,
        )
        if not ok and (conn.result or {}).get("result") in _UNAVAILABLE_RESULTS:
            raise DirectoryUnavailable(str(conn.result.get("description")))
        entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
        if len(entries) != 1:
            logger.info("LDAP: %d entries for %r under the filter", len(entries), localpart)
            return None
        found = entries[0]["attributes"]
        return DirectoryUser(
            dn=entries[0]["dn"],
            display_name=_first(found.get(attrs_.name)),
            email=_first(found.get(attrs_.mail)),
        )


def _first(value: Any) -> str | None:
    """An attribute's single value (ldap3 gives lists when it has no schema)."""
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    return value if isinstance(value, str) and value else None
