"""Small pieces shared by the auth rule modules: state keys, ids, membership.

The state keys are module constants so that the hot paths (every event, and
state resolution loops) look events up without building a tuple each time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from homeserver.events.event import Event, StateKey

AuthEvents = Mapping[StateKey, Event]

CREATE = "m.room.create"
MEMBER = "m.room.member"
POWER_LEVELS = "m.room.power_levels"
JOIN_RULES = "m.room.join_rules"
THIRD_PARTY_INVITE = "m.room.third_party_invite"
ALIASES = "m.room.aliases"
REDACTION = "m.room.redaction"

CREATE_KEY: StateKey = (CREATE, "")
POWER_LEVELS_KEY: StateKey = (POWER_LEVELS, "")
JOIN_RULES_KEY: StateKey = (JOIN_RULES, "")

JOIN = "join"
INVITE = "invite"
LEAVE = "leave"
BAN = "ban"
KNOCK = "knock"

# Server name grammar from the appendices: a DNS name, a dotted-quad IPv4
# literal or a bracketed IPv6 literal, with an optional port of 1-5 digits.
_SERVER_NAME_RE = re.compile(
    r"(?:[A-Za-z0-9.\-]{1,255}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?",
    re.ASCII,
)


def domain_of(identifier: str) -> str:
    """The server part of "&localpart:domain" ids (users, v1-11 rooms, v1-2 events).

    The localpart of historical user ids may hold anything except ":", so the
    domain starts after the first colon. An id without a colon has no domain,
    returned as "" so that it never equals a real server name.
    """
    _, sep, domain = identifier.partition(":")
    return domain if sep else ""


def is_valid_user_id(user_id: object) -> bool:
    """Whether `user_id` is a user id the rules accept (in power levels, creators).

    Rooms must keep working with historical user ids, so the localpart is only
    required to be free of ":", NUL and lone surrogates (it may even be empty,
    as the appendices allow); the domain must be a well-formed server name, and
    the whole id at most 255 bytes of UTF-8.
    """
    if not isinstance(user_id, str) or not user_id.startswith("@"):
        return False
    localpart, sep, server_name = user_id[1:].partition(":")
    if not sep or "\x00" in localpart or _SERVER_NAME_RE.fullmatch(server_name) is None:
        return False
    try:
        return len(user_id.encode("utf-8")) <= 255
    except UnicodeEncodeError:
        return False


def membership_of(auth_events: AuthEvents, user_id: str) -> str:
    """The user's current membership; "leave" when they have no member event."""
    member = auth_events.get((MEMBER, user_id))
    if member is None:
        return LEAVE
    membership = member.content.get("membership")
    return membership if isinstance(membership, str) else LEAVE
