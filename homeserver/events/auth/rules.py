"""`check_auth`: the authorization rules of room versions 1 to 12, in spec order.

The rules are written once, with each room version difference behind a flag
of `RoomVersion`; comments give the rule numbers of room 12 (and of the older
numbering where it differs) so the code can be read next to the spec.
"""

from __future__ import annotations

from homeserver.events.auth._common import (
    ALIASES,
    CREATE,
    CREATE_KEY,
    JOIN,
    MEMBER,
    POWER_LEVELS,
    REDACTION,
    THIRD_PARTY_INVITE,
    AuthEvents,
    domain_of,
    is_valid_user_id,
    membership_of,
)
from homeserver.events.auth.membership import check_member_event
from homeserver.events.auth.power_levels import (
    check_power_levels_event,
    get_named_level,
    get_power_level,
    get_required_level,
)
from homeserver.events.errors import AuthError
from homeserver.events.event import Event
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion


def check_auth(room_version: RoomVersion, event: Event, auth_events: AuthEvents) -> None:
    """Raise AuthError (naming the failed rule) unless `event` is authorised.

    `auth_events` is the state to authorise against, keyed by (type,
    state_key): the event's own auth events (see
    `check_auth_events_selection`), the state before the event, or the
    current state of the room. Extra entries are ignored. It must contain the
    room's create event, in room 12 too although that version no longer lists
    it in `auth_events`.

    Not checked here, because they need more than this state: that auth
    events were not themselves rejected, and that a restricted join is signed
    by the server of `join_authorised_via_users_server`.
    """
    # Rule 1: the create event stands alone.
    if event.type == CREATE:
        _check_create(room_version, event)
        return

    create = auth_events.get(CREATE_KEY)
    if create is None:
        raise AuthError("auth_events.no_create", "no m.room.create event to authorise against")
    # Rule 2 of room 12: the room id is the create event's id.
    if room_version.room_id_from_create_event and event.room_id != "!" + create.event_id[1:]:
        raise AuthError(
            "room_id.not_create_event",
            f"room id {event.room_id} does not derive from create event {create.event_id}",
        )

    # Rule 4 (3 before room 12): rooms created with m.federate false stay local.
    if create.content.get("m.federate", True) is False and domain_of(event.sender) != domain_of(
        create.sender
    ):
        raise AuthError("federate.forbidden", "the room does not federate")

    # Rule 4 of rooms 1-5: aliases belong to the server named by the state key.
    if event.type == ALIASES and room_version.special_case_aliases_auth:
        if event.state_key is None:
            raise AuthError("aliases.no_state_key", "m.room.aliases needs a state_key")
        if event.state_key != domain_of(event.sender):
            raise AuthError(
                "aliases.domain_mismatch", "m.room.aliases state_key must be the sender's domain"
            )
        return

    if event.type == MEMBER:
        check_member_event(room_version, event, create, auth_events)
        return

    if membership_of(auth_events, event.sender) != JOIN:
        raise AuthError("sender_not_joined", f"{event.sender} is not joined to the room")

    sender_level = get_power_level(room_version, event.sender, auth_events)
    if event.type == THIRD_PARTY_INVITE:
        if sender_level < get_named_level(room_version, "invite", auth_events):
            raise AuthError(
                "third_party_invite.power", "the sender's power level is below the invite level"
            )
        return

    required = get_required_level(room_version, event.type, event.state_key, auth_events)
    if sender_level < required:
        raise AuthError(
            "event.power",
            f"sending {event.type} needs power level {required}, the sender has {sender_level}",
        )

    # Only the user a state key names may set it. (MSC3757's owned state keys,
    # "@user:server_suffix", are in no stable room version.)
    if event.state_key is not None and event.state_key.startswith("@"):
        if event.state_key != event.sender:
            raise AuthError(
                "state_key.user_mismatch", "a state_key that is a user id must be the sender's"
            )

    if event.type == POWER_LEVELS:
        check_power_levels_event(room_version, event, auth_events)
        return

    # Rule 11 of rooms 1-2; from room 3 the redact level is checked when a
    # redaction is applied, not by the auth rules.
    if event.type == REDACTION and not room_version.hash_event_ids:
        _check_redaction_v1(room_version, event, sender_level, auth_events)


def _check_create(room_version: RoomVersion, event: Event) -> None:
    """Rule 1: the create event."""
    if event.prev_event_ids:
        raise AuthError("create.has_prev_events", "the create event cannot have prev_events")
    if room_version.room_id_from_create_event:
        if "room_id" in event.pdu:
            raise AuthError(
                "create.has_room_id", "the create event has no room_id: its id is the room's"
            )
    elif domain_of(event.room_id) != domain_of(event.sender):
        raise AuthError("create.room_id_domain", "the room id's domain must be the sender's domain")
    content = event.content
    if "room_version" in content:
        version = content["room_version"]
        if not isinstance(version, str) or version not in KNOWN_ROOM_VERSIONS:
            raise AuthError("create.unknown_room_version", f"unknown room version {version!r}")
    if room_version.privileged_creators and "additional_creators" in content:
        additional = content["additional_creators"]
        if not isinstance(additional, list) or not all(is_valid_user_id(c) for c in additional):
            raise AuthError(
                "create.invalid_additional_creators",
                "additional_creators must be a list of user ids",
            )
    if not room_version.implicit_room_creator and "creator" not in content:
        raise AuthError("create.no_creator", "the create event's content needs 'creator'")


def _check_redaction_v1(
    room_version: RoomVersion, event: Event, sender_level: int | float, auth_events: AuthEvents
) -> None:
    """Rooms 1-2: redact with the redact level, or redact events of your own server.

    The server is compared through the event ids, which in these rooms have
    the form "$local:server".
    """
    if sender_level >= get_named_level(room_version, "redact", auth_events):
        return
    if event.redacts is not None and domain_of(event.redacts) == domain_of(event.event_id):
        return
    raise AuthError(
        "redaction.power",
        "redacting another server's events needs the redact level",
    )
