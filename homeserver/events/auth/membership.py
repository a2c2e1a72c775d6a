"""The rules for `m.room.member` events (rule 5 of room 12, rule 4 of room 6-11).

Every branch ends in an allow (return) or a reject (AuthError): once an event
is a membership event, the later rules of the algorithm no longer apply to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from canonicaljson import encode_canonical_json
from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey
from unpaddedbase64 import decode_base64

from homeserver.events.auth._common import (
    BAN,
    INVITE,
    JOIN,
    JOIN_RULES_KEY,
    KNOCK,
    LEAVE,
    THIRD_PARTY_INVITE,
    AuthEvents,
    membership_of,
)
from homeserver.events.auth.power_levels import get_named_level, get_power_level
from homeserver.events.errors import AuthError
from homeserver.events.event import Event
from homeserver.events.room_versions import RoomVersion

_INVITE_OR_JOIN = frozenset((INVITE, JOIN))
_INVITE_JOIN_OR_KNOCK = frozenset((INVITE, JOIN, KNOCK))
_BAN_INVITE_OR_JOIN = frozenset((BAN, INVITE, JOIN))


def _join_rule(auth_events: AuthEvents) -> str:
    """The room's join rule; "invite" when there is no join rules event, as
    Synapse, Dendrite and ruma all assume.
    """
    join_rules = auth_events.get(JOIN_RULES_KEY)
    if join_rules is None:
        return INVITE
    rule = join_rules.content.get("join_rule")
    return rule if isinstance(rule, str) else INVITE


def check_member_event(
    room_version: RoomVersion, event: Event, create: Event, auth_events: AuthEvents
) -> None:
    """Authorise a membership event; return to allow it, raise AuthError otherwise.

    The `join_authorised_via_users_server` signature requirement (rooms 8+) is
    enforced by the signature checks, which hold the servers' keys: this
    function never does I/O.
    """
    target = event.state_key
    if target is None:
        raise AuthError("member.no_state_key", "membership events need a state_key")
    membership = event.content.get("membership")
    if membership is None:
        raise AuthError("member.no_membership", "content has no 'membership'")

    if membership == JOIN:
        _check_join(room_version, event, target, create, auth_events)
    elif membership == INVITE:
        _check_invite(room_version, event, target, auth_events)
    elif membership == LEAVE:
        _check_leave(room_version, event, target, auth_events)
    elif membership == BAN:
        _check_ban(room_version, event, target, auth_events)
    elif membership == KNOCK and room_version.knock_join_rule:
        _check_knock(room_version, event, target, auth_events)
    else:
        raise AuthError("member.unknown_membership", f"unknown membership {membership!r}")


def _check_join(
    room_version: RoomVersion, event: Event, target: str, create: Event, auth_events: AuthEvents
) -> None:
    # The creator's own join, right after the create event, bootstraps the room.
    if event.prev_event_ids == (create.event_id,):
        if room_version.implicit_room_creator:
            creator = create.sender
        else:
            creator = create.content.get("creator")
        if target == creator:
            return

    if event.sender != target:
        raise AuthError("member.join.sender_not_target", "cannot join on behalf of another user")
    current = membership_of(auth_events, target)
    if current == BAN:
        raise AuthError("member.join.banned", f"{target} is banned from the room")

    join_rule = _join_rule(auth_events)
    if join_rule == INVITE or (join_rule == KNOCK and room_version.knock_join_rule):
        if current in _INVITE_OR_JOIN:
            return
        raise AuthError("member.join.not_invited", f"the room is {join_rule}-only")
    if (join_rule == "restricted" and room_version.restricted_join_rule) or (
        join_rule == "knock_restricted" and room_version.knock_restricted_join_rule
    ):
        if current in _INVITE_OR_JOIN:
            return
        _check_join_authoriser(room_version, event, auth_events)
        return
    if join_rule == "public":
        return
    raise AuthError("member.join.join_rule", f"join rule {join_rule!r} does not allow joining")


def _check_join_authoriser(
    room_version: RoomVersion, event: Event, auth_events: AuthEvents
) -> None:
    """A restricted join needs a joined member with invite power to vouch for it."""
    authoriser = event.content.get("join_authorised_via_users_server")
    if not isinstance(authoriser, str):
        raise AuthError(
            "member.join.no_authoriser",
            "joining a restricted room needs 'join_authorised_via_users_server'",
        )
    if membership_of(auth_events, authoriser) != JOIN:
        raise AuthError(
            "member.join.authoriser_not_joined", f"{authoriser} is not joined to the room"
        )
    if get_power_level(room_version, authoriser, auth_events) < get_named_level(
        room_version, "invite", auth_events
    ):
        raise AuthError(
            "member.join.authoriser_cannot_invite", f"{authoriser} may not invite users"
        )


def _check_invite(
    room_version: RoomVersion, event: Event, target: str, auth_events: AuthEvents
) -> None:
    target_membership = membership_of(auth_events, target)
    if "third_party_invite" in event.content:
        if target_membership == BAN:
            raise AuthError("member.invite.third_party.banned", f"{target} is banned from the room")
        _check_third_party_signed(event, target, auth_events)
        return
    if membership_of(auth_events, event.sender) != JOIN:
        raise AuthError("member.invite.sender_not_joined", "only room members may invite")
    if target_membership == JOIN or target_membership == BAN:
        raise AuthError(
            "member.invite.target_joined_or_banned",
            f"{target} is already {'joined' if target_membership == JOIN else 'banned'}",
        )
    if get_power_level(room_version, event.sender, auth_events) < get_named_level(
        room_version, "invite", auth_events
    ):
        raise AuthError("member.invite.power", "the sender's power level is below the invite level")


def _check_third_party_signed(event: Event, target: str, auth_events: AuthEvents) -> None:
    """An invite for a third-party identifier, proven by the identity server's
    signature over the `signed` block with a key from the matching
    `m.room.third_party_invite` event.
    """
    third_party_invite = event.content["third_party_invite"]
    signed = third_party_invite.get("signed") if isinstance(third_party_invite, Mapping) else None
    if not isinstance(signed, Mapping):
        raise AuthError(
            "member.invite.third_party.no_signed", "third_party_invite has no 'signed' object"
        )
    mxid = signed.get("mxid")
    token = signed.get("token")
    if not isinstance(mxid, str) or not isinstance(token, str):
        raise AuthError(
            "member.invite.third_party.no_mxid_or_token", "'signed' needs 'mxid' and 'token'"
        )
    if mxid != target:
        raise AuthError(
            "member.invite.third_party.mxid_mismatch", f"signed mxid {mxid} is not {target}"
        )
    invite_event = auth_events.get((THIRD_PARTY_INVITE, token))
    if invite_event is None:
        raise AuthError(
            "member.invite.third_party.no_invite_event",
            "no m.room.third_party_invite event for this token",
        )
    if invite_event.sender != event.sender:
        raise AuthError(
            "member.invite.third_party.sender_mismatch",
            "only the sender of the third-party invite may complete it",
        )
    if third_party_signing_key(signed, invite_event.content) is None:
        raise AuthError(
            "member.invite.third_party.bad_signature",
            "no signature of 'signed' matches a public key of the third-party invite",
        )


def _public_keys(content: Mapping[str, Any]) -> Iterator[str]:
    """The identity server keys of a third-party invite: `public_key`, then
    each `public_keys[].public_key`.
    """
    key = content.get("public_key")
    if isinstance(key, str):
        yield key
    entries = content.get("public_keys")
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, Mapping):
                key = entry.get("public_key")
                if isinstance(key, str):
                    yield key


def third_party_signing_key(
    signed: Mapping[str, Any], invite_content: Mapping[str, Any]
) -> str | None:
    """The public key of a third-party invite's content under which an
    ed25519 signature in `signed` verifies, or None.

    The identity server's name in `signatures` is not known in advance, so
    every server's ed25519 signatures are tried against every key. The
    homeserver completing an invite also needs the key itself, to ask the
    identity server whether it is still valid.
    """
    signatures = signed.get("signatures")
    if not isinstance(signatures, Mapping):
        return None
    candidates: list[str] = [
        signature
        for block in signatures.values()
        if isinstance(block, Mapping)
        for key_id, signature in block.items()
        if isinstance(key_id, str) and key_id.startswith("ed25519:") and isinstance(signature, str)
    ]
    if not candidates:
        return None
    unsigned_part = {k: v for k, v in signed.items() if k != "signatures" and k != "unsigned"}
    try:
        message = encode_canonical_json(unsigned_part)
    except (TypeError, ValueError):
        return None
    for public_key in _public_keys(invite_content):
        try:
            verify_key = VerifyKey(decode_base64(public_key))
        except (ValueError, CryptoError):
            continue
        for signature in candidates:
            try:
                verify_key.verify(message, decode_base64(signature))
            except (ValueError, CryptoError):
                continue
            return public_key
    return None


def _check_leave(
    room_version: RoomVersion, event: Event, target: str, auth_events: AuthEvents
) -> None:
    target_membership = membership_of(auth_events, target)
    if event.sender == target:
        allowed = _INVITE_JOIN_OR_KNOCK if room_version.knock_join_rule else _INVITE_OR_JOIN
        if target_membership in allowed:
            return
        raise AuthError("member.leave.not_member", f"{target} is {target_membership}, cannot leave")
    if membership_of(auth_events, event.sender) != JOIN:
        raise AuthError("member.leave.sender_not_joined", "only room members may kick or unban")
    sender_level = get_power_level(room_version, event.sender, auth_events)
    if target_membership == BAN and sender_level < get_named_level(
        room_version, "ban", auth_events
    ):
        raise AuthError(
            "member.leave.unban_power", "the sender's power level is below the ban level"
        )
    if (
        sender_level >= get_named_level(room_version, "kick", auth_events)
        and get_power_level(room_version, target, auth_events) < sender_level
    ):
        return
    raise AuthError(
        "member.leave.kick_power",
        "kicking needs the kick level and a power level above the target's",
    )


def _check_ban(
    room_version: RoomVersion, event: Event, target: str, auth_events: AuthEvents
) -> None:
    if membership_of(auth_events, event.sender) != JOIN:
        raise AuthError("member.ban.sender_not_joined", "only room members may ban")
    sender_level = get_power_level(room_version, event.sender, auth_events)
    if (
        sender_level >= get_named_level(room_version, "ban", auth_events)
        and get_power_level(room_version, target, auth_events) < sender_level
    ):
        return
    raise AuthError(
        "member.ban.power", "banning needs the ban level and a power level above the target's"
    )


def _check_knock(
    room_version: RoomVersion, event: Event, target: str, auth_events: AuthEvents
) -> None:
    join_rule = _join_rule(auth_events)
    if not (
        join_rule == KNOCK
        or (join_rule == "knock_restricted" and room_version.knock_restricted_join_rule)
    ):
        raise AuthError(
            "member.knock.join_rule", f"join rule {join_rule!r} does not allow knocking"
        )
    if event.sender != target:
        raise AuthError("member.knock.sender_not_target", "cannot knock on behalf of another user")
    current = membership_of(auth_events, target)
    if current in _BAN_INVITE_OR_JOIN:
        raise AuthError("member.knock.membership", f"{target} is {current}, cannot knock")
