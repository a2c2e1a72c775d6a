-- Rooms and the event DAG.

CREATE TABLE rooms (
    room_id TEXT PRIMARY KEY,
    room_version TEXT NOT NULL,
    creator TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    -- Published in the room directory (/publicRooms).
    is_public BOOLEAN NOT NULL DEFAULT FALSE,
    -- Stream position of the newest event: lets a process see that its cached
    -- view of the room is stale.
    head_stream BIGINT NOT NULL DEFAULT 0
);

-- When this server learnt of an event: sync tokens and /messages stream order.
CREATE SEQUENCE events_stream;

CREATE TABLE events (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT,
    sender TEXT NOT NULL,
    depth BIGINT NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    stream_ordering BIGINT NOT NULL UNIQUE,
    -- The exact signed JSON text: JSONB would reorder keys and break signatures.
    json TEXT NOT NULL,
    outlier BOOLEAN NOT NULL DEFAULT FALSE,
    rejected_reason TEXT,
    -- The room state after this event (for a non-state event, also before it).
    state_group BIGINT,
    -- For state events: the event this one replaced in the state, if any.
    replaces_state TEXT,
    redacts TEXT,
    -- m.relates_to, extracted for /relations, threads and aggregations.
    rel_type TEXT,
    relates_to TEXT,
    -- Local sends: who sent it from which device with which transaction id.
    txn_device_id TEXT,
    txn_id TEXT
);
CREATE INDEX events_room_stream ON events (room_id, stream_ordering);
CREATE INDEX events_room_topo ON events (room_id, depth, stream_ordering);
CREATE INDEX events_relates_to ON events (relates_to, rel_type) WHERE relates_to IS NOT NULL;
CREATE INDEX events_redacts ON events (redacts) WHERE redacts IS NOT NULL;
CREATE UNIQUE INDEX events_txn ON events (room_id, sender, txn_device_id, txn_id)
    WHERE txn_id IS NOT NULL;

CREATE TABLE event_edges (
    event_id TEXT NOT NULL,
    prev_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
);
CREATE INDEX event_edges_prev ON event_edges (prev_event_id);

CREATE TABLE event_auth (
    event_id TEXT NOT NULL,
    auth_id TEXT NOT NULL,
    PRIMARY KEY (event_id, auth_id)
);

CREATE TABLE forward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

-- State snapshots: each group is a delta over its parent, so that one state
-- change writes one row. Chains are cut short by compaction, which rewrites a
-- group as a full snapshot (prev_group NULL) off the request path.
CREATE TABLE state_groups (
    id BIGSERIAL PRIMARY KEY,
    room_id TEXT NOT NULL,
    prev_group BIGINT REFERENCES state_groups (id),
    -- Number of deltas between this group and a full snapshot.
    chain_length INTEGER NOT NULL
);
CREATE INDEX state_groups_prev ON state_groups (prev_group);

CREATE TABLE state_group_entries (
    group_id BIGINT NOT NULL REFERENCES state_groups (id),
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    -- NULL: the key was removed from the state in this delta.
    event_id TEXT,
    PRIMARY KEY (group_id, type, state_key)
);

-- The room's state now, materialised for fast reads.
CREATE TABLE current_state (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    -- For m.room.member rows: the membership, for cheap member queries.
    membership TEXT,
    PRIMARY KEY (room_id, type, state_key)
);
CREATE INDEX current_state_members ON current_state (state_key, membership)
    WHERE type = 'm.room.member';

-- Valid redactions, applied when events are served (the original is kept).
CREATE TABLE redactions (
    redacted_id TEXT NOT NULL,
    redaction_id TEXT NOT NULL,
    PRIMARY KEY (redacted_id, redaction_id)
);

CREATE TABLE room_aliases (
    alias TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

-- Full-text search over message bodies.
CREATE TABLE event_search (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    key TEXT NOT NULL,
    vector TSVECTOR NOT NULL,
    stream_ordering BIGINT NOT NULL,
    origin_server_ts BIGINT NOT NULL
);
CREATE INDEX event_search_vector ON event_search USING GIN (vector);
CREATE INDEX event_search_room ON event_search (room_id, stream_ordering);

CREATE TABLE event_reports (
    id BIGSERIAL PRIMARY KEY,
    received_ts BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reason TEXT,
    score INTEGER
);

-- Rooms a user left and asked to forget: hidden from their history.
CREATE TABLE room_forgotten (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);
