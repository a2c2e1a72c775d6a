"""The reduced `send_join` answer a joining server may ask for with
`omit_members=true` (partial-state joins, MSC3706, spec v1.6).

Synapse asks for it on every join. Without the members, the answer of a
large room shrinks from its every member event (and their auth chains) to
the room's other state: the joining server can start at once and fetches
the full state afterwards (`/state_ids`, `/state`). What the spec asks to
keep: the member events of the room's heroes when it has neither a name nor
a canonical alias (so its clients can name it), and `servers_in_room`, the
servers with joined members before the join (whom the joining server talks
to until it has the state).
"""

from __future__ import annotations

from storage.events import EventStore
from storage.state import StateMap

MEMBER = "m.room.member"
# As many as /sync's room summary names (its `m.heroes`).
HEROES = 5


def _server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


async def without_members(
    events: EventStore, state: StateMap, joiner: str
) -> tuple[StateMap, list[str]]:
    """(the state to answer with, the servers in the room before the join).

    One batch read of the member events, whatever the room's size."""
    members = sorted(k for k in state if k[0] == MEMBER)
    loaded = await events.get_events([state[k] for k in members])
    membership = {
        k: loaded[state[k]].event.content.get("membership") for k in members if state[k] in loaded
    }
    servers = sorted({_server_of(k[1]) for k, m in membership.items() if m == "join"})
    kept = {k: v for k, v in state.items() if k[0] != MEMBER}
    if ("m.room.name", "") not in state and ("m.room.canonical_alias", "") not in state:
        heroes = [k for k in members if k[1] != joiner and membership.get(k) in ("join", "invite")]
        kept.update((k, state[k]) for k in heroes[:HEROES])
    return kept, servers
