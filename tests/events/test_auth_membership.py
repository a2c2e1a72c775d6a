"""Auth rules for m.room.member events: join, invite, leave/kick/unban, ban, knock."""

from __future__ import annotations

import pytest

from tests.events.test_auth_support import (
    ALICE,
    ALL_VERSIONS,
    BOB,
    CAROL,
    DAVE,
    Room,
    versions,
)

# --- shape -------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_member_without_state_key_denied(version: str) -> None:
    room = Room.standard(version)
    room.denied(room.event("m.room.member", BOB, {"membership": "join"}), "member.no_state_key")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_member_without_membership_denied(version: str) -> None:
    room = Room.standard(version)
    room.denied(
        room.event("m.room.member", BOB, {"displayname": "Bob"}, state_key=BOB),
        "member.no_membership",
    )


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("membership", ["foo", "JOIN", 5, ["join"]])
def test_unknown_membership_denied(version: str, membership: object) -> None:
    room = Room.standard(version)
    room.denied(room.member(BOB, membership), "member.unknown_membership")  # type: ignore[arg-type]


@pytest.mark.parametrize("version", versions(1, 6))
def test_knock_is_unknown_membership_before_v7(version: str) -> None:
    room = Room.standard(version, join_rule="knock")
    room.denied(room.member(BOB, "knock"), "member.unknown_membership")


# --- join --------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_creator_first_join_directly_after_create(version: str) -> None:
    room = Room(version)
    room.check(room.member(ALICE, "join"))
    # Not directly after the create event: the ordinary rules apply, and with
    # no join rules event the room counts as invite-only.
    late_join = room.event(
        "m.room.member", ALICE, {"membership": "join"}, state_key=ALICE, prev=("$other",)
    )
    room.denied(late_join, "member.join.not_invited")
    # Somebody else is never the creator.
    room.denied(room.member(BOB, "join"), "member.join.not_invited")


@pytest.mark.parametrize("version", versions(1, 10))
def test_creator_is_content_creator_before_v11(version: str) -> None:
    room = Room(version, create_content={"creator": BOB})
    room.check(room.member(BOB, "join"))
    room.denied(room.member(ALICE, "join"), "member.join.not_invited")


@pytest.mark.parametrize("version", ["11", "12"])
def test_creator_is_create_sender_from_v11(version: str) -> None:
    room = Room(version, create_content={"creator": BOB})
    room.check(room.member(ALICE, "join"))
    room.denied(room.member(BOB, "join"), "member.join.not_invited")


def test_v12_additional_creator_first_join_is_not_special() -> None:
    room = Room("12", create_content={"additional_creators": [BOB]})
    room.denied(room.member(BOB, "join"), "member.join.not_invited")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_join_for_someone_else_denied(version: str) -> None:
    room = Room.standard(version)
    room.denied(room.member(BOB, "join", sender=ALICE), "member.join.sender_not_target")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_public_join(version: str) -> None:
    room = Room.standard(version, join_rule="public")
    room.check(room.member(BOB, "join"))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_banned_user_cannot_join_public_room(version: str) -> None:
    room = Room.standard(version, join_rule="public")
    room.set_member(BOB, "ban", sender=ALICE)
    room.denied(room.member(BOB, "join"), "member.join.banned")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_invite_only_join(version: str) -> None:
    room = Room.standard(version, join_rule="invite")
    room.denied(room.member(BOB, "join"), "member.join.not_invited")
    room.set_member(BOB, "invite", sender=ALICE)
    room.set_member(BOB, "join")
    # Joining again (a profile change) is allowed.
    room.check(room.member(BOB, "join", displayname="Bobby"))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_join_without_join_rules_event_is_invite_only(version: str) -> None:
    room = Room.standard(version)
    del room.state[("m.room.join_rules", "")]
    room.denied(room.member(BOB, "join"), "member.join.not_invited")
    room.set_member(BOB, "invite", sender=ALICE)
    room.check(room.member(BOB, "join"))


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("join_rule", ["private", "unknown"])
def test_other_join_rules_deny_joins(version: str, join_rule: str) -> None:
    room = Room.standard(version, join_rule=join_rule)
    room.set_member(BOB, "invite", sender=ALICE)
    room.denied(room.member(BOB, "join"), "member.join.join_rule")


@pytest.mark.parametrize("version", versions(7, 12))
def test_knock_join_rule_joins_need_invite(version: str) -> None:
    room = Room.standard(version, join_rule="knock")
    room.denied(room.member(BOB, "join"), "member.join.not_invited")
    room.set_member(BOB, "knock")
    room.denied(room.member(BOB, "join"), "member.join.not_invited")
    room.set_member(BOB, "invite", sender=ALICE)
    room.check(room.member(BOB, "join"))


@pytest.mark.parametrize("version", versions(1, 6))
def test_knock_join_rule_unknown_before_v7(version: str) -> None:
    room = Room.standard(version, join_rule="knock")
    room.set_member(BOB, "invite", sender=ALICE)
    room.denied(room.member(BOB, "join"), "member.join.join_rule")


def _restricted(version: str, join_rule: str) -> Room:
    """A restricted room where CAROL (power 0) and DAVE (power 50) are joined
    and inviting needs 50.
    """
    room = Room.standard(version, join_rule="public", power_levels={"invite": 50})
    room.set_member(CAROL, "join")
    room.set_member(DAVE, "join")
    levels = dict(room.state[("m.room.power_levels", "")].content)
    levels["users"] = {**levels["users"], DAVE: 50}
    room.send("m.room.power_levels", ALICE, levels, state_key="")
    room.send("m.room.join_rules", ALICE, {"join_rule": join_rule}, state_key="")
    return room


_RESTRICTED_CASES = [(v, "restricted") for v in versions(8, 12)] + [
    (v, "knock_restricted") for v in versions(10, 12)
]


@pytest.mark.parametrize(("version", "join_rule"), _RESTRICTED_CASES)
def test_restricted_join_authorised_by_joined_inviter(version: str, join_rule: str) -> None:
    room = _restricted(version, join_rule)
    room.check(room.member(BOB, "join", join_authorised_via_users_server=DAVE))
    room.check(room.member(BOB, "join", join_authorised_via_users_server=ALICE))


@pytest.mark.parametrize(("version", "join_rule"), _RESTRICTED_CASES)
def test_restricted_join_without_authoriser_denied(version: str, join_rule: str) -> None:
    room = _restricted(version, join_rule)
    room.denied(room.member(BOB, "join"), "member.join.no_authoriser")
    room.denied(
        room.member(BOB, "join", join_authorised_via_users_server=5), "member.join.no_authoriser"
    )


@pytest.mark.parametrize(("version", "join_rule"), _RESTRICTED_CASES)
def test_restricted_join_authoriser_must_be_joined(version: str, join_rule: str) -> None:
    room = _restricted(version, join_rule)
    room.set_member(DAVE, "leave")
    room.denied(
        room.member(BOB, "join", join_authorised_via_users_server=DAVE),
        "member.join.authoriser_not_joined",
    )
    room.denied(
        room.member(BOB, "join", join_authorised_via_users_server="@nobody:x.example"),
        "member.join.authoriser_not_joined",
    )


@pytest.mark.parametrize(("version", "join_rule"), _RESTRICTED_CASES)
def test_restricted_join_authoriser_needs_invite_power(version: str, join_rule: str) -> None:
    room = _restricted(version, join_rule)
    room.denied(
        room.member(BOB, "join", join_authorised_via_users_server=CAROL),
        "member.join.authoriser_cannot_invite",
    )


@pytest.mark.parametrize(("version", "join_rule"), _RESTRICTED_CASES)
def test_restricted_join_by_invited_or_joined_needs_no_authoriser(
    version: str, join_rule: str
) -> None:
    room = _restricted(version, join_rule)
    room.check(room.member(CAROL, "join"))
    room.set_member(BOB, "invite", sender=ALICE)
    room.check(room.member(BOB, "join"))


@pytest.mark.parametrize(("version", "join_rule"), _RESTRICTED_CASES)
def test_restricted_join_banned_denied(version: str, join_rule: str) -> None:
    room = _restricted(version, join_rule)
    room.set_member(BOB, "ban", sender=ALICE)
    room.denied(
        room.member(BOB, "join", join_authorised_via_users_server=DAVE), "member.join.banned"
    )


@pytest.mark.parametrize(
    ("version", "join_rule"),
    [(v, "restricted") for v in versions(1, 7)] + [(v, "knock_restricted") for v in versions(1, 9)],
)
def test_restricted_join_rules_unknown_in_older_versions(version: str, join_rule: str) -> None:
    room = _restricted(version, join_rule)
    room.denied(
        room.member(BOB, "join", join_authorised_via_users_server=DAVE), "member.join.join_rule"
    )
    # An invite still does not help: the join rule is simply not one that allows joins.
    room.set_member(BOB, "invite", sender=ALICE)
    room.denied(room.member(BOB, "join"), "member.join.join_rule")


# --- invite ------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_invite_by_member(version: str) -> None:
    room = Room.standard(version, join_rule="invite")
    room.check(room.member(BOB, "invite", sender=ALICE))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_invite_by_non_member_denied(version: str) -> None:
    room = Room.standard(version, join_rule="invite")
    room.denied(room.member(CAROL, "invite", sender=BOB), "member.invite.sender_not_joined")
    room.set_member(BOB, "invite", sender=ALICE)
    room.denied(room.member(CAROL, "invite", sender=BOB), "member.invite.sender_not_joined")


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("current", ["join", "ban"])
def test_invite_of_joined_or_banned_user_denied(version: str, current: str) -> None:
    room = Room.standard(version)
    room.set_member(BOB, "join")
    if current == "ban":
        room.set_member(BOB, "ban", sender=ALICE)
    room.denied(room.member(BOB, "invite", sender=ALICE), "member.invite.target_joined_or_banned")


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("current", ["invite", "leave"])
def test_reinvite_of_invited_or_departed_user(version: str, current: str) -> None:
    room = Room.standard(version)
    if current == "leave":
        room.set_member(BOB, "join")
        room.set_member(BOB, "leave")
    else:
        room.set_member(BOB, "invite", sender=ALICE)
    room.check(room.member(BOB, "invite", sender=ALICE))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_invite_needs_invite_level(version: str) -> None:
    room = Room.standard(version, power_levels={"invite": 10})
    room.set_member(BOB, "join")
    room.denied(room.member(CAROL, "invite", sender=BOB), "member.invite.power")
    levels = dict(room.state[("m.room.power_levels", "")].content)
    levels["users"] = {**levels["users"], BOB: 10}
    room.send("m.room.power_levels", ALICE, levels, state_key="")
    room.check(room.member(CAROL, "invite", sender=BOB))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_invite_default_level_is_zero(version: str) -> None:
    room = Room.standard(version)
    room.set_member(BOB, "join")
    room.check(room.member(CAROL, "invite", sender=BOB))


# --- leave, kick, unban ------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("current", ["join", "invite"])
def test_leave_own_membership(version: str, current: str) -> None:
    room = Room.standard(version)
    room.set_member(BOB, current, sender=BOB if current == "join" else ALICE)
    room.check(room.member(BOB, "leave"))


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("current", ["leave", "ban", None])
def test_leave_without_being_member_denied(version: str, current: str | None) -> None:
    room = Room.standard(version)
    if current is not None:
        room.set_member(BOB, "join")
        room.set_member(BOB, current, sender=ALICE if current == "ban" else BOB)
    room.denied(room.member(BOB, "leave"), "member.leave.not_member")


@pytest.mark.parametrize("version", versions(7, 12))
def test_rescind_knock(version: str) -> None:
    room = Room.standard(version, join_rule="knock")
    room.set_member(BOB, "knock")
    room.check(room.member(BOB, "leave"))


@pytest.mark.parametrize("version", versions(1, 6))
def test_leave_from_knock_denied_before_v7(version: str) -> None:
    room = Room.standard(version)
    room.force(room.member(BOB, "knock"))
    room.denied(room.member(BOB, "leave"), "member.leave.not_member")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_kick_needs_joined_sender(version: str) -> None:
    room = Room.standard(version)
    room.set_member(BOB, "join")
    room.set_member(ALICE, "leave")
    room.denied(room.member(BOB, "leave", sender=ALICE), "member.leave.sender_not_joined")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_kick_needs_kick_level_and_more_power_than_target(version: str) -> None:
    room = Room.standard(version, power_levels={"kick": 30})
    levels = dict(room.state[("m.room.power_levels", "")].content)
    levels["users"] = {**levels["users"], BOB: 30, CAROL: 30, DAVE: 20}
    room.send("m.room.power_levels", ALICE, levels, state_key="")
    for user in (BOB, CAROL, DAVE):
        room.set_member(user, "join")
    room.check(room.member(DAVE, "leave", sender=BOB))  # 30 >= kick, 20 < 30
    room.denied(room.member(CAROL, "leave", sender=BOB), "member.leave.kick_power")  # equal
    room.denied(room.member(BOB, "leave", sender=DAVE), "member.leave.kick_power")  # below kick
    room.check(room.member(BOB, "leave", sender=ALICE))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_kick_of_invited_or_absent_user(version: str) -> None:
    room = Room.standard(version)
    room.set_member(BOB, "invite", sender=ALICE)
    room.check(room.member(BOB, "leave", sender=ALICE))
    room.check(room.member(CAROL, "leave", sender=ALICE))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_unban_needs_ban_and_kick_level(version: str) -> None:
    room = Room.standard(version, power_levels={"kick": 20, "ban": 60})
    levels = dict(room.state[("m.room.power_levels", "")].content)
    levels["users"] = {**levels["users"], CAROL: 50, DAVE: 60}
    room.send("m.room.power_levels", ALICE, levels, state_key="")
    for user in (CAROL, DAVE):
        room.set_member(user, "join")
    room.set_member(BOB, "ban", sender=ALICE)
    room.denied(room.member(BOB, "leave", sender=CAROL), "member.leave.unban_power")
    room.check(room.member(BOB, "leave", sender=DAVE))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_unban_with_ban_level_but_not_kick_level_denied(version: str) -> None:
    room = Room.standard(version, power_levels={"kick": 70, "ban": 60})
    levels = dict(room.state[("m.room.power_levels", "")].content)
    levels["users"] = {**levels["users"], DAVE: 60}
    room.send("m.room.power_levels", ALICE, levels, state_key="")
    room.set_member(DAVE, "join")
    room.set_member(BOB, "ban", sender=ALICE)
    room.denied(room.member(BOB, "leave", sender=DAVE), "member.leave.kick_power")


# --- ban ---------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_ban(version: str) -> None:
    room = Room.standard(version)
    room.check(room.member(BOB, "ban", sender=ALICE))  # not even in the room
    room.set_member(BOB, "join")
    room.check(room.member(BOB, "ban", sender=ALICE))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_ban_needs_joined_sender(version: str) -> None:
    room = Room.standard(version)
    room.set_member(ALICE, "leave")
    room.denied(room.member(BOB, "ban", sender=ALICE), "member.ban.sender_not_joined")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_ban_needs_ban_level_and_more_power_than_target(version: str) -> None:
    room = Room.standard(version, power_levels={"ban": 40})
    levels = dict(room.state[("m.room.power_levels", "")].content)
    levels["users"] = {**levels["users"], BOB: 40, CAROL: 40, DAVE: 30}
    room.send("m.room.power_levels", ALICE, levels, state_key="")
    for user in (BOB, CAROL, DAVE):
        room.set_member(user, "join")
    room.check(room.member(DAVE, "ban", sender=BOB))
    room.denied(room.member(CAROL, "ban", sender=BOB), "member.ban.power")
    room.denied(room.member(BOB, "ban", sender=DAVE), "member.ban.power")
    room.denied(room.member(BOB, "ban", sender=BOB), "member.ban.power")  # self-ban


# --- knock -------------------------------------------------------------------

_KNOCK_CASES = [(v, "knock") for v in versions(7, 12)] + [
    (v, "knock_restricted") for v in versions(10, 12)
]


@pytest.mark.parametrize(("version", "join_rule"), _KNOCK_CASES)
def test_knock(version: str, join_rule: str) -> None:
    room = Room.standard(version, join_rule=join_rule)
    room.check(room.member(BOB, "knock"))
    room.set_member(BOB, "knock")
    room.check(room.member(BOB, "knock"))  # knocking again
    room.set_member(BOB, "leave")
    room.check(room.member(BOB, "knock"))


@pytest.mark.parametrize(("version", "join_rule"), _KNOCK_CASES)
def test_knock_for_someone_else_denied(version: str, join_rule: str) -> None:
    room = Room.standard(version, join_rule=join_rule)
    room.denied(room.member(BOB, "knock", sender=ALICE), "member.knock.sender_not_target")


@pytest.mark.parametrize(("version", "join_rule"), _KNOCK_CASES)
@pytest.mark.parametrize("current", ["join", "invite", "ban"])
def test_knock_when_joined_invited_or_banned_denied(
    version: str, join_rule: str, current: str
) -> None:
    room = Room.standard(version, join_rule=join_rule)
    room.set_member(BOB, "invite" if current == "join" else current, sender=ALICE)
    if current == "join":
        room.set_member(BOB, "join")
    room.denied(room.member(BOB, "knock"), "member.knock.membership")


@pytest.mark.parametrize(
    ("version", "join_rule"),
    [(v, rule) for v in versions(7, 12) for rule in ("public", "invite", "restricted")]
    + [(v, "knock_restricted") for v in versions(7, 9)],
)
def test_knock_needs_knock_join_rule(version: str, join_rule: str) -> None:
    room = Room.standard(version, join_rule=join_rule)
    room.denied(room.member(BOB, "knock"), "member.knock.join_rule")


# --- room 12 creators --------------------------------------------------------


def test_v12_creators_cannot_be_kicked_or_banned() -> None:
    room = Room.standard("12", create_content={"additional_creators": [BOB]})
    room.set_member(BOB, "join")
    room.set_member(CAROL, "join")
    # BOB is a creator too: infinite power, yet not above ALICE's.
    room.denied(room.member(ALICE, "leave", sender=BOB), "member.leave.kick_power")
    room.denied(room.member(ALICE, "ban", sender=BOB), "member.ban.power")
    room.check(room.member(CAROL, "ban", sender=BOB))


def test_v12_additional_creator_has_power_without_power_levels_entry() -> None:
    room = Room.standard("12", join_rule="invite", create_content={"additional_creators": [BOB]})
    room.set_member(BOB, "invite", sender=ALICE)
    room.set_member(BOB, "join")
    room.check(room.event("m.room.topic", BOB, {"topic": "t"}, state_key=""))
    room.check(room.member(CAROL, "ban", sender=BOB))
