"""Server ACLs (m.room.server_acl): which servers may take part in a room.

Pure: the caller passes the ACL event's content. Names are compared without
their port, globs ('*', '?') case-insensitively; deny wins over allow; an
absent allow list allows nobody; IP literals are allowed unless
allow_ip_literals is false.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from federation.discovery import is_ip_literal, split_server_name


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _matches(host: str, entries: Any) -> bool:
    if not isinstance(entries, list):
        return False
    return any(isinstance(e, str) and _glob(e).fullmatch(host) for e in entries)


def server_allowed(server_name: str, acl: Mapping[str, Any] | None) -> bool:
    """Whether `server_name` passes the ACL (no ACL: everyone does)."""
    if acl is None:
        return True
    try:
        host, _ = split_server_name(server_name)
    except ValueError:
        return False
    if acl.get("allow_ip_literals", True) is False and is_ip_literal(host):
        return False
    if _matches(host, acl.get("deny", [])):
        return False
    return _matches(host, acl.get("allow", []))
