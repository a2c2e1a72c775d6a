"""The recent moves of every stream, and whom each concerned.

The notifier records here every move it is told of: the new position, and
the users and rooms it concerns. A woken /sync asks whether a stream moved
*for its user* between its token and now (a move for the user, or for one
of their rooms): when one message in a big room wakes a thousand long
polls, none of them needs to ask the database for its to-device messages,
device list changes or presence, which did not move for it.

Only the last `MAX_MOVES` moves of a stream are kept, naming at most
`MAX_NAMES` users and rooms in all; a range reaching back further than the record, or ahead of it (a
token from before a restart), is answered "moved": the caller then asks
the database as before. So the record can make a /sync cheaper, never
wrong.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable

import attrs

# Moves kept per stream. A woken poll's range is a few moves long; one that
# reaches back further (a client back after a while) runs its queries.
MAX_MOVES = 4096
# And at most this many user and room names in them per stream (a presence
# change names every room of its user): a few MB at most.
MAX_NAMES = 100_000

# The pseudo-stream of membership changes in the user's rooms (or of the
# user's own): what device list and presence "newly shared" answers follow.
MEMBERS = "members"


@attrs.frozen
class _Move:
    position: int
    users: frozenset[str]
    rooms: frozenset[str]


class RecentMoves:
    def __init__(self, max_moves: int = MAX_MOVES, max_names: int = MAX_NAMES) -> None:
        self._max = max_moves
        self._max_names = max_names
        self._moves: dict[str, deque[_Move]] = {}
        # Per stream, the users and rooms its kept moves name.
        self._names: dict[str, int] = {}
        # Per stream, the position the record starts after: every move in
        # (floor, last recorded] is in it.
        self._floor: dict[str, int] = {}

    def record(
        self, stream: str, position: int, users: Iterable[str], rooms: Iterable[str]
    ) -> None:
        """The stream moved to `position` (or, at or below its last recorded
        position, news for these users and rooms at that last move)."""
        moves = self._moves.get(stream)
        if moves is None:
            moves = self._moves[stream] = deque()
            # Nothing before the first move is known.
            self._floor[stream] = position
            self._names[stream] = 0
            return
        move = _Move(position, frozenset(users), frozenset(rooms))
        if moves and position <= moves[-1].position:
            last = moves.pop()
            self._names[stream] -= _names(last)
            move = _Move(last.position, last.users | move.users, last.rooms | move.rooms)
        elif not moves and position <= self._floor[stream]:
            self._floor[stream] = position
            return
        moves.append(move)
        self._names[stream] += _names(move)
        while len(moves) > self._max or (self._names[stream] > self._max_names and moves):
            dropped = moves.popleft()
            self._floor[stream] = dropped.position
            self._names[stream] -= _names(dropped)

    def lose_track(self, stream: str, position: int) -> None:
        """The stream moved up to `position` with news for people not named
        (in a deployment: a notification too long to name them, or a
        catch-up after a lost connection): every range reaching back before
        it, or past it with nothing recorded since, is answered "moved"."""
        self._moves[stream] = deque()
        self._floor[stream] = position
        self._names[stream] = 0

    def _range(self, stream: str, after: int, upto: int) -> list[_Move] | None:
        """The moves in (after, upto], or None when the record does not hold them all."""
        floor = self._floor.get(stream)
        if floor is None or after < floor or after > upto:
            return None
        moves = self._moves[stream]
        if moves and upto > moves[-1].position:
            return None
        if not moves and upto > floor:
            return None
        found = []
        for move in reversed(moves):
            if move.position <= after:
                break
            if move.position <= upto:
                found.append(move)
        return found

    def moved_for(
        self, stream: str, user_id: str, rooms: Collection[str], after: int, upto: int
    ) -> bool:
        """Whether the stream may hold news for the user (a move for them or
        for one of `rooms`) in (after, upto]: True when the record cannot tell."""
        if after == upto:
            return False
        moves = self._range(stream, after, upto)
        if moves is None:
            return True
        return any(user_id in m.users or not m.rooms.isdisjoint(rooms) for m in moves)

    def members_moved_for(
        self, user_id: str, rooms: Collection[str], after: int, upto: int
    ) -> bool:
        """Whether a membership may have changed in (after, upto] in one of
        `rooms`, or of the user's own (the events stream records the state
        keys of member events as its users): True when the record cannot tell."""
        if after == upto:
            return False
        moves = self._range("events", after, upto)
        if moves is None:
            return True
        return any(user_id in m.users or (m.users and not m.rooms.isdisjoint(rooms)) for m in moves)


def _names(move: _Move) -> int:
    return len(move.users) + len(move.rooms)
