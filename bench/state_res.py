"""Benchmark: state resolution of a large room with two long forks.

The room has 10,000 joined members. From a common point two forks each send
250 state events (power levels changes, kicks, bans, topics and per-member
status events, some of them on the same keys in both forks), so that the two
state maps of about 10,000 entries disagree on roughly 500 conflicted state
events. The script times `resolve_state` on them and prints the figures.

Run: .venv/bin/python bench/state_res.py [--members N] [--per-fork N] [--room-version V]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from homeserver.events.auth import auth_types_for_event
from homeserver.events.event import Event, StateKey
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.events.state_res import resolve_state

STATUS = "org.example.status"


class Builder:
    """Builds a room's events in memory, tracking the state after each fork tip."""

    def __init__(self, room_version: RoomVersion) -> None:
        self.room_version = room_version
        self.events: dict[str, Event] = {}
        self.room_id = "!bench:example.org"
        self._n = 0

    def add(
        self,
        state: dict[StateKey, str],
        type: str,
        sender: str,
        content: dict[str, Any],
        state_key: str,
        prev: str | None,
    ) -> str:
        """Add a state event on top of `state` (updated in place); return its id."""
        self._n += 1
        event_id = f"$ev{self._n}"
        if type == "m.room.create" and self.room_version.room_id_from_create_event:
            self.room_id = "!" + event_id[1:]
        draft = self._event(event_id, type, sender, content, state_key, prev, ())
        auth = tuple(
            state[key] for key in auth_types_for_event(self.room_version, draft) if key in state
        )
        event = self._event(event_id, type, sender, content, state_key, prev, auth)
        self.events[event_id] = event
        state[(type, state_key)] = event_id
        return event_id

    def _event(
        self,
        event_id: str,
        type: str,
        sender: str,
        content: dict[str, Any],
        state_key: str,
        prev: str | None,
        auth: tuple[str, ...],
    ) -> Event:
        prev_ids = (prev,) if prev else ()
        return Event(
            event_id=event_id,
            room_version=self.room_version,
            room_id=self.room_id,
            type=type,
            state_key=state_key,
            sender=sender,
            content=content,
            prev_event_ids=prev_ids,
            auth_event_ids=auth,
            depth=self._n,
            origin_server_ts=1_700_000_000_000 + self._n,
            redacts=None,
            pdu={"type": type, "sender": sender, "content": content, "state_key": state_key},
        )


def build_room(
    room_version: RoomVersion, members: int, per_fork: int
) -> tuple[Builder, list[dict[StateKey, str]]]:
    """The room and the state maps at the tips of its two forks."""
    b = Builder(room_version)
    admin = "@admin:example.org"
    mods = [f"@mod{i}:example.org" for i in range(10)]
    users = [f"@user{i}:example.org" for i in range(members)]
    admin_level = {} if room_version.privileged_creators else {admin: 100}

    def levels(mod_level: int) -> dict[str, Any]:
        return {
            "users": {**admin_level, **dict.fromkeys(mods, mod_level)},
            "events": {STATUS: 0},
        }

    base: dict[StateKey, str] = {}
    creator = {} if room_version.implicit_room_creator else {"creator": admin}
    create_content = {"room_version": room_version.identifier, **creator}
    last = b.add(base, "m.room.create", admin, create_content, "", None)
    last = b.add(base, "m.room.member", admin, {"membership": "join"}, admin, last)
    last = b.add(base, "m.room.power_levels", admin, levels(50), "", last)
    last = b.add(base, "m.room.join_rules", admin, {"join_rule": "public"}, "", last)
    for user in mods + users:
        last = b.add(base, "m.room.member", user, {"membership": "join"}, user, last)

    tips = []
    for fork in range(2):
        state = dict(base)
        prev = last
        # Members whose status both forks change, members only this fork changes,
        # and members only this fork removes.
        shared = users[: per_fork // 4]
        own = users[1000 + fork * per_fork : 1000 + (fork + 1) * per_fork]
        removed = users[5000 + fork * 40 : 5000 + (fork + 1) * 40]
        sent = 0
        for n in range(4):
            prev = b.add(state, "m.room.power_levels", admin, levels(50 - n - fork), "", prev)
            sent += 1
        for n, user in enumerate(removed):
            membership = "ban" if n % 2 else "leave"
            sender = admin if n % 4 == 0 else mods[n % len(mods)]
            prev = b.add(state, "m.room.member", sender, {"membership": membership}, user, prev)
            sent += 1
        for n in range(6):
            topic = {"topic": f"fork {fork} topic {n}"}
            prev = b.add(state, "m.room.topic", mods[n], topic, "", prev)
            sent += 1
        for user in shared + own:
            if sent == per_fork:
                break
            prev = b.add(state, STATUS, user, {"status": f"fork {fork}"}, user, prev)
            sent += 1
        tips.append(state)
    return b, tips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--per-fork", type=int, default=250)
    parser.add_argument("--room-version", default="10", choices=sorted(KNOWN_ROOM_VERSIONS))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    room_version = KNOWN_ROOM_VERSIONS[args.room_version]
    started = time.perf_counter()
    builder, state_sets = build_room(room_version, args.members, args.per_fork)
    build_seconds = time.perf_counter() - started

    keys = set(state_sets[0]) | set(state_sets[1])
    conflicted_keys = {k for k in keys if state_sets[0].get(k) != state_sets[1].get(k)}
    conflicted_events = {s[k] for s in state_sets for k in conflicted_keys if k in s}

    timings = []
    result: dict[StateKey, str] = {}
    for _ in range(args.runs):
        started = time.perf_counter()
        result = resolve_state(room_version, state_sets, builder.events.get)
        timings.append(time.perf_counter() - started)

    seconds = statistics.median(timings)
    print(f"room version {room_version.identifier}, {args.members} members")
    print(f"built {len(builder.events)} events in {build_seconds:.2f} s")
    print(
        f"state maps of {len(state_sets[0])} and {len(state_sets[1])} entries, "
        f"{len(conflicted_keys)} conflicted keys, {len(conflicted_events)} conflicted events"
    )
    print(f"resolved state: {len(result)} entries")
    print(f"resolve_state: median {seconds:.3f} s, best {min(timings):.3f} s over {args.runs} runs")
    print(f"conflicted events/second: {len(conflicted_events) / seconds:,.0f}")
    print(f"state entries/second: {len(keys) / seconds:,.0f}")


if __name__ == "__main__":
    main()
