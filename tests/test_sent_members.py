"""The per-device memory of sent member events stays bounded and forgets safely."""

from __future__ import annotations

from homeserver.sync.sent_members import SentMembers


def test_remembers_the_last_member_event_per_room_and_user():
    sent = SentMembers(devices=2, per_device=3)
    device = ("@a:hs", "D1")
    sent.remember(device, "!r:hs", "@b:hs", "$join")
    assert sent.was_sent(device, "!r:hs", "@b:hs", "$join")
    # A newer member event of the same user replaces it; other rooms are apart.
    sent.remember(device, "!r:hs", "@b:hs", "$rename")
    assert not sent.was_sent(device, "!r:hs", "@b:hs", "$join")
    assert sent.was_sent(device, "!r:hs", "@b:hs", "$rename")
    assert not sent.was_sent(device, "!other:hs", "@b:hs", "$rename")
    assert not sent.was_sent(("@a:hs", "D2"), "!r:hs", "@b:hs", "$rename")
    sent.forget(device)
    assert not sent.was_sent(device, "!r:hs", "@b:hs", "$rename")


def test_bounded_per_device_and_in_devices():
    sent = SentMembers(devices=2, per_device=3)
    first = ("@a:hs", "D1")
    for n in range(4):
        sent.remember(first, "!r:hs", f"@u{n}:hs", f"${n}")
    # The oldest entry made room for the newest.
    assert not sent.was_sent(first, "!r:hs", "@u0:hs", "$0")
    assert all(sent.was_sent(first, "!r:hs", f"@u{n}:hs", f"${n}") for n in (1, 2, 3))
    sent.remember(("@b:hs", "D"), "!r:hs", "@u:hs", "$x")
    sent.remember(("@c:hs", "D"), "!r:hs", "@u:hs", "$x")
    # Three devices in a memory of two: the least recently syncing one goes.
    assert not sent.was_sent(first, "!r:hs", "@u3:hs", "$3")
    assert sent.was_sent(("@c:hs", "D"), "!r:hs", "@u:hs", "$x")
