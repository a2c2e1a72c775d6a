"""The notifier's record of recent moves (homeserver/stream_moves.py): a
stream moved for a user when a move in the range named them or one of their
rooms, and "moved" whenever the record cannot tell."""

from __future__ import annotations

from homeserver.notifier import Notifier
from homeserver.stream_moves import RecentMoves


def test_moves_for_others_are_not_moves_for_the_user():
    recent = RecentMoves()
    recent.record("to_device", 10, (), ())
    recent.record("to_device", 11, ["@bob:x"], ())
    recent.record("to_device", 12, ["@carol:x"], ())
    assert not recent.moved_for("to_device", "@alice:x", [], 10, 12)
    assert recent.moved_for("to_device", "@bob:x", [], 10, 12)
    # The range is (after, upto]: bob's move at 11 is before (11, 12].
    assert not recent.moved_for("to_device", "@bob:x", [], 11, 12)
    assert recent.moved_for("to_device", "@carol:x", [], 11, 12)


def test_room_moves_concern_the_rooms_members():
    recent = RecentMoves()
    recent.record("receipts", 0, (), ())
    recent.record("receipts", 1, (), ["!a:x"])
    assert recent.moved_for("receipts", "@alice:x", ["!a:x", "!b:x"], 0, 1)
    assert not recent.moved_for("receipts", "@alice:x", ["!b:x"], 0, 1)


def test_the_record_says_moved_where_it_cannot_tell():
    recent = RecentMoves(max_moves=2)
    # Nothing recorded: anything is a move (a stream the record never saw).
    assert recent.moved_for("presence", "@alice:x", [], 0, 5)
    recent.record("presence", 5, (), ())
    for position in (6, 7, 8):
        recent.record("presence", position, ["@bob:x"], ())
    # Only 7 and 8 are kept: a range from before them cannot be told.
    assert recent.moved_for("presence", "@alice:x", [], 5, 8)
    assert not recent.moved_for("presence", "@alice:x", [], 6, 8)
    # Past the last move (another process's position) or backwards (a token
    # from before a restart): moved.
    assert recent.moved_for("presence", "@alice:x", [], 7, 9)
    assert recent.moved_for("presence", "@alice:x", [], 9, 8)
    # An empty range never moved.
    assert not recent.moved_for("presence", "@alice:x", [], 8, 8)


def test_news_without_a_move_joins_the_last_move():
    recent = RecentMoves()
    recent.record("device_lists", 3, (), ())
    recent.record("device_lists", 4, ["@bob:x"], ())
    recent.record("device_lists", 4, ["@alice:x"], ())
    recent.record("device_lists", 2, ["@dave:x"], ())
    assert recent.moved_for("device_lists", "@alice:x", [], 3, 4)
    assert recent.moved_for("device_lists", "@dave:x", [], 3, 4)


def test_membership_changes_in_the_users_rooms():
    recent = RecentMoves()
    recent.record("events", 100, (), ())
    # A message in !a, then bob joins !b.
    recent.record("events", 101, (), ["!a:x"])
    recent.record("events", 102, ["@bob:x"], ["!b:x"])
    assert not recent.members_moved_for("@alice:x", ["!a:x"], 100, 102)
    assert recent.members_moved_for("@alice:x", ["!b:x"], 100, 102)
    # The user's own membership, in a room not (yet) theirs.
    assert recent.members_moved_for("@bob:x", [], 100, 102)
    assert recent.members_moved_for("@alice:x", ["!a:x"], 99, 102)


def test_the_notifier_records_what_it_is_told():
    notifier = Notifier()
    notifier.notify("to_device", 1)
    notifier.notify("to_device", 2, users=iter(["@bob:x"]))
    assert notifier.positions["to_device"] == 2
    assert notifier.recent.moved_for("to_device", "@bob:x", [], 1, 2)
    assert not notifier.recent.moved_for("to_device", "@alice:x", [], 1, 2)


def test_the_record_is_bounded_by_the_names_it_holds():
    recent = RecentMoves(max_names=5)
    recent.record("presence", 0, (), ())
    recent.record("presence", 1, ["@bob:x"], ["!a:x", "!b:x"])
    recent.record("presence", 2, ["@carol:x"], ["!c:x"])
    assert not recent.moved_for("presence", "@alice:x", ["!z:x"], 0, 2)
    # Five names are kept at most: the first move goes.
    recent.record("presence", 3, ["@dave:x"], ["!d:x"])
    assert recent.moved_for("presence", "@alice:x", ["!z:x"], 0, 3)
    assert not recent.moved_for("presence", "@alice:x", ["!z:x"], 1, 3)
    # A single move naming more than the bound leaves nothing known.
    recent.record("presence", 4, [f"@u{i}:x" for i in range(9)], ())
    assert recent.moved_for("presence", "@alice:x", [], 3, 4)


def test_news_for_people_not_named_makes_every_range_through_it_a_move():
    """A deployment's notification too long to name whom it concerns."""
    recent = RecentMoves()
    recent.record("to_device", 10, (), ())
    recent.record("to_device", 11, ["@bob:x"], ())
    recent.lose_track("to_device", 12)
    assert recent.moved_for("to_device", "@alice:x", [], 10, 12)
    assert recent.moved_for("to_device", "@alice:x", [], 11, 12)
    # From the loss on, the record tells again.
    recent.record("to_device", 13, ["@bob:x"], ())
    assert not recent.moved_for("to_device", "@alice:x", [], 12, 13)
    assert recent.moved_for("to_device", "@bob:x", [], 12, 13)
