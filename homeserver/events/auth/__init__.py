"""The authorization rules of Matrix room versions 1 to 12.

Pure functions over plain data: an event and a state map of the events it is
judged against. `check_auth` raises `AuthError` whose `rule` names the failed
rule ("member.join.banned", "power_levels.raise_above_own", ...), so that the
reason stored with a rejected event says which rule it broke.

The power level helpers and `auth_types_for_event` are public because the
event builder, the redaction pipeline and state resolution need the same
answers the rules use.
"""

from homeserver.events.auth.power_levels import (
    get_named_level,
    get_power_level,
    get_required_level,
    parse_level,
)
from homeserver.events.auth.rules import check_auth
from homeserver.events.auth.selection import auth_types_for_event, check_auth_events_selection

__all__ = [
    "auth_types_for_event",
    "check_auth",
    "check_auth_events_selection",
    "get_named_level",
    "get_power_level",
    "get_required_level",
    "parse_level",
]
