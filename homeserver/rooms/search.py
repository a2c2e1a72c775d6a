"""Server-side search over room events (the spec's `room_events` category).

A search matches message bodies, room names and topics with PostgreSQL text
search, in the rooms the searcher is in or has left (up to their leave, and
not once they forgot the room), and returns only events that history
visibility lets them see. Words match as prefixes (as with Synapse, "mart"
finds "martians"); "quoted phrases", `or` and `-excluded` words work as in web
search engines. Pages are cut with an opaque `next_batch` token that carries
the position of the last match examined, so a page costs a bounded number of
queries whatever the number of rooms: a few rounds of (matches, events,
visibility) while visibility hides matches, one count, and a few for the
optional parts. `count` is the number of matches before visibility, an
estimate as the spec allows (as Synapse's).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from homeserver.errors import MatrixError, invalid_param
from homeserver.events.topic import topic_search_text
from homeserver.requester import Requester
from homeserver.rooms.format import EventFormatter
from homeserver.rooms.history import topological_token
from homeserver.rooms.visibility import HistoryVisibility
from homeserver.strict_json import parse_strict_json
from storage.events import EventStore, StoredEvent
from storage.search import SearchHit, SearchScope, SearchStore
from storage.state import StateStore

# Search key -> the event type whose content it names (the index stores the type).
KEY_TYPES = {
    "content.body": "m.room.message",
    "content.name": "m.room.name",
    "content.topic": "m.room.topic",
}
_CONTENT_KEY = {"m.room.message": "body", "m.room.name": "name", "m.room.topic": "topic"}

# A quoted phrase or a bare token, each possibly negated with a leading '-'.
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(-?)([^\s"]+)')
# Words as PostgreSQL's default parser splits them (underscores separate words).
_WORD = re.compile(r"[^\W_]+")
# Visibility may hide matches; a page tries this many fetches to fill itself.
_MAX_ROUNDS = 4


@attrs.frozen
class EventContextSpec:
    before_limit: int
    after_limit: int
    include_profile: bool


@attrs.frozen
class SearchCriteria:
    """A validated `room_events` search request."""

    search_term: str
    keys: tuple[str, ...]
    order_by_rank: bool
    limit: int
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    senders: tuple[str, ...] | None = None
    not_senders: tuple[str, ...] = ()
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    event_context: EventContextSpec | None = None
    include_state: bool = False
    group_by: tuple[str, ...] = ()


@attrs.frozen
class ParsedTerm:
    """A search term as a `to_tsquery('simple', ...)` text, and the words to highlight."""

    tsquery: str | None
    words: tuple[str, ...]


def parse_search_term(term: str) -> ParsedTerm:
    """Turn what a user typed into a prefix-matching tsquery.

    Every word is lower-cased and made a prefix (`'word':*`); the words of one
    token ("don't", "e-mail") or of a quoted phrase must follow each other
    (`<->`); `or` between two terms joins them with `|`; a leading `-`
    excludes. A term with nothing to look for has no query.
    """
    terms: list[str] = []
    joiners: list[str] = []
    words: list[str] = []
    pending_or = False
    for m in _TOKEN.finditer(term):
        quoted = m.group(2) is not None
        negated = bool(m.group(1) if quoted else m.group(3))
        text = m.group(2) if quoted else m.group(4)
        if not quoted and not negated and text.lower() == "or":
            pending_or = bool(terms)
            continue
        found = [w.lower() for w in _WORD.findall(text)]
        if not found:
            continue
        expr = " <-> ".join(f"'{w}':*" for w in found)
        if negated:
            expr = f"!({expr})"
        else:
            words.extend(found)
        if terms:
            joiners.append(" | " if pending_or else " & ")
        terms.append(f"({expr})" if len(found) > 1 and not negated else expr)
        pending_or = False
    if not words:
        return ParsedTerm(None, ())
    query = terms[0] + "".join(j + t for j, t in zip(joiners, terms[1:], strict=True))
    return ParsedTerm(query, tuple(dict.fromkeys(words)))


def _matches_type(event_type: str, patterns: Iterable[str]) -> bool:
    """Filter type patterns: exact, or with '*' as a wildcard (as sync filters allow)."""
    return any(re.fullmatch(".*".join(map(re.escape, p.split("*"))), event_type) for p in patterns)


@attrs.frozen
class _Batch:
    """Where the next page starts: after (rank, stream ordering), maybe in one group."""

    order_by_rank: bool
    rank: float
    stream_ordering: int
    group: tuple[str, str] | None

    def encode(self) -> str:
        data: dict[str, Any] = {
            "o": "rank" if self.order_by_rank else "recent",
            "r": self.rank,
            "s": self.stream_ordering,
        }
        if self.group is not None:
            data["g"] = list(self.group)
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> _Batch:
        try:
            data = parse_strict_json(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            group = data.get("g")
            if group is not None:
                key, value = group
                if key not in ("room_id", "sender") or not isinstance(value, str):
                    raise ValueError
                group = (key, value)
            rank, stream = data["r"], data["s"]
            if not isinstance(rank, int | float) or type(stream) is not int:
                raise ValueError
            if not -(2**63) <= stream < 2**63:
                raise ValueError
            return cls(data["o"] == "rank", float(rank), stream, group)
        except (binascii.Error, ValueError, TypeError, KeyError, AttributeError, MatrixError):
            raise invalid_param("Invalid next_batch token") from None


def _highlights(words: Sequence[str], events: Iterable[StoredEvent]) -> list[str]:
    """The query words, and the words of the results they matched as prefixes."""
    found = dict.fromkeys(words)
    for stored in events:
        if stored.event.type == "m.room.topic":
            value = topic_search_text(stored.event.content)
        else:
            value = stored.event.content.get(_CONTENT_KEY.get(stored.event.type, ""))
        if isinstance(value, str):
            for word in _WORD.findall(value):
                if word.lower().startswith(tuple(words)):
                    found[word] = None
    return list(found)


class SearchService:
    def __init__(
        self,
        store: SearchStore,
        events: EventStore,
        state: StateStore,
        visibility: HistoryVisibility,
        formatter: EventFormatter,
    ) -> None:
        self._store = store
        self._events = events
        self._state = state
        self._visibility = visibility
        self._formatter = formatter

    async def search_room_events(
        self, requester: Requester, criteria: SearchCriteria, next_batch: str | None
    ) -> dict[str, Any]:
        """The `room_events` part of a /search response."""
        batch = _Batch.decode(next_batch) if next_batch is not None else None
        if batch is not None and batch.order_by_rank != criteria.order_by_rank:
            raise invalid_param("next_batch belongs to a search with another order_by")
        parsed = parse_search_term(criteria.search_term)
        scope = await self._scope(requester, criteria, parsed, batch)
        if scope is None:
            return {"count": 0, "highlights": list(parsed.words), "results": []}
        hits, stored, last = await self._visible_page(
            requester.user_id,
            scope,
            criteria,
            (batch.rank, batch.stream_ordering) if batch else None,
        )
        count = await self._store.count(scope)
        serialized = await self._formatter.serialize(stored, requester)
        results: list[dict[str, Any]] = [
            {"rank": h.rank, "result": event} for h, event in zip(hits, serialized, strict=True)
        ]
        if criteria.event_context is not None and stored:
            contexts = await self._contexts(requester, stored, criteria.event_context)
            for result, one in zip(results, stored, strict=True):
                result["context"] = contexts[one.event.event_id]
        body: dict[str, Any] = {
            "count": count,
            "highlights": _highlights(parsed.words, stored),
            "results": results,
        }
        next_token = None
        if last is not None:
            group = batch.group if batch else None
            next_token = _Batch(criteria.order_by_rank, last.rank, last.stream_ordering, group)
            body["next_batch"] = next_token.encode()
        if criteria.include_state:
            # Only for rooms the searcher is still in: a room they left may
            # have changed since, out of their sight.
            joined = {s.event.room_id for s in stored if scope.rooms[s.event.room_id] is None}
            body["state"] = await self._room_states(requester, joined)
        if criteria.group_by:
            body["groups"] = {
                key: self._groups(key, stored, next_token) for key in criteria.group_by
            }
        return body

    async def _visible_page(
        self,
        user_id: str,
        scope: SearchScope,
        criteria: SearchCriteria,
        after: tuple[float, int] | None,
    ) -> tuple[list[SearchHit], list[StoredEvent], SearchHit | None]:
        """Up to `limit` visible matches after `after`, and the last match
        examined when more may follow (where the next page starts)."""
        hits: list[SearchHit] = []
        stored: list[StoredEvent] = []
        for _ in range(_MAX_ROUNDS):
            want = criteria.limit - len(hits)
            found = await self._store.search(
                scope, by_rank=criteria.order_by_rank, limit=want + 1, after=after
            )
            more, found = len(found) > want, found[:want]
            if not found:
                return hits, stored, None
            loaded = await self._events.get_events(h.event_id for h in found)
            # An erased sender's message matched on content the searcher sees
            # redacted: it is no hit for them (its words would leak).
            visible = {
                s.event.event_id
                for s in await self._visibility.filter(
                    user_id, [loaded[h.event_id] for h in found if h.event_id in loaded]
                )
                if s.event.content == loaded[s.event.event_id].event.content
            }
            for hit in found:
                if hit.event_id in visible:
                    hits.append(hit)
                    stored.append(loaded[hit.event_id])
            after = (found[-1].rank, found[-1].stream_ordering)
            if not more:
                return hits, stored, None
            if len(hits) >= criteria.limit:
                break
        return hits, stored, found[-1]

    async def _scope(
        self,
        requester: Requester,
        criteria: SearchCriteria,
        parsed: ParsedTerm,
        batch: _Batch | None,
    ) -> SearchScope | None:
        """What the search may match, or None when nothing can match."""
        types = [
            KEY_TYPES[k]
            for k in criteria.keys
            if (criteria.types is None or _matches_type(KEY_TYPES[k], criteria.types))
            and not _matches_type(KEY_TYPES[k], criteria.not_types)
        ]
        rooms = {
            room_id: bound
            for room_id, bound in (await self._store.searchable_rooms(requester.user_id)).items()
            if (criteria.rooms is None or room_id in criteria.rooms)
            and room_id not in criteria.not_rooms
        }
        senders = criteria.senders
        if batch is not None and batch.group is not None:
            key, value = batch.group
            if key == "room_id":
                rooms = {r: b for r, b in rooms.items() if r == value}
            elif senders is None or value in senders:
                senders = (value,)
            else:
                senders = ()
        if parsed.tsquery is None or not types or not rooms or senders == ():
            return None
        return SearchScope(
            tsquery=parsed.tsquery,
            rooms=rooms,
            types=types,
            senders=senders,
            not_senders=criteria.not_senders,
        )

    async def _contexts(
        self, requester: Requester, results: Sequence[StoredEvent], spec: EventContextSpec
    ) -> dict[str, dict[str, Any]]:
        """Events around each result, and the senders' profiles at the result."""
        ids = await self._store.context(
            [s.event.event_id for s in results], spec.before_limit, spec.after_limit
        )
        around = {i for c in ids.values() for i in (*c.before, *c.after)}
        loaded = await self._events.get_events(around)
        kept = await self._visibility.filter(
            requester.user_id, [loaded[i] for i in around if i in loaded]
        )
        serialized = dict(
            zip(
                (s.event.event_id for s in kept),
                await self._formatter.serialize(kept, requester),
                strict=True,
            )
        )
        profiles = await self._profiles(results, loaded) if spec.include_profile else {}
        contexts: dict[str, dict[str, Any]] = {}
        for result in results:
            c = ids[result.event.event_id]
            context: dict[str, Any] = {
                "events_before": [serialized[i] for i in c.before if i in serialized],
                "events_after": [serialized[i] for i in c.after if i in serialized],
                # The gap before the first event shown, and after the last.
                "start": topological_token((c.start[0], c.start[1] - 1)),
                "end": topological_token(c.end),
            }
            if spec.include_profile:
                shown = [loaded[i].event.sender for i in (*c.before, *c.after) if i in serialized]
                senders = {*shown, result.event.sender}
                at_result = profiles.get(result.event.event_id, {})
                context["profile_info"] = {u: at_result[u] for u in senders if u in at_result}
            contexts[result.event.event_id] = context
        return contexts

    async def _profiles(
        self, results: Sequence[StoredEvent], around: dict[str, StoredEvent]
    ) -> dict[str, dict[str, dict[str, str]]]:
        """{result id: {user: profile}} from the member events in the state at each result.

        One query for the member keys of every sender in every result's state.
        """
        senders = {s.event.sender for s in results} | {s.event.sender for s in around.values()}
        groups = {s.state_group for s in results if s.state_group is not None}
        entries = await self._state.state_entries(
            groups, [("m.room.member", u) for u in sorted(senders)]
        )
        members = await self._events.get_events(i for m in entries.values() for i in m.values())
        profiles: dict[str, dict[str, dict[str, str]]] = {}
        for result in results:
            state = entries.get(result.state_group, {}) if result.state_group else {}
            mine: dict[str, dict[str, str]] = {}
            for (_, user), event_id in state.items():
                member = members.get(event_id)
                if member is None:
                    continue
                content = member.event.content
                mine[user] = {
                    k: content[k]
                    for k in ("displayname", "avatar_url")
                    if isinstance(content.get(k), str)
                }
            profiles[result.event.event_id] = mine
        return profiles

    async def _room_states(
        self, requester: Requester, room_ids: set[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """The current state of every room with a result."""
        ids = await self._store.current_state_ids(sorted(room_ids))
        loaded = await self._events.get_events(i for v in ids.values() for i in v)
        events = [loaded[i] for v in ids.values() for i in v if i in loaded]
        serialized = await self._formatter.serialize(events, requester)
        state: dict[str, list[dict[str, Any]]] = {room_id: [] for room_id in ids}
        for stored, event in zip(events, serialized, strict=True):
            state[stored.event.room_id].append(event)
        return state

    @staticmethod
    def _groups(
        key: str, results: Sequence[StoredEvent], next_batch: _Batch | None
    ) -> dict[str, dict[str, Any]]:
        """This page's results partitioned by room or sender, in order of first appearance."""
        groups: dict[str, dict[str, Any]] = {}
        for stored in results:
            value = stored.event.room_id if key == "room_id" else stored.event.sender
            group = groups.setdefault(value, {"order": len(groups) + 1, "results": []})
            group["results"].append(stored.event.event_id)
        if next_batch is not None:
            for value, group in groups.items():
                group["next_batch"] = attrs.evolve(next_batch, group=(key, value)).encode()
        return groups
