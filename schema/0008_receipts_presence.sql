-- Read receipts and presence: the two database-backed ephemeral streams of /sync.

CREATE SEQUENCE receipts_stream;

-- The latest receipt of each user, per room, receipt type and thread.
CREATE TABLE receipts (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- m.read or m.read.private (only its owner sees the latter).
    receipt_type TEXT NOT NULL,
    -- '' for an unthreaded receipt, else 'main' or the thread root's event id.
    thread_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    -- The stream_ordering of event_id: receipts only move forward, and unread
    -- counts are the events after it.
    event_stream BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
);
CREATE INDEX receipts_room_stream ON receipts (room_id, stream_id);

CREATE SEQUENCE presence_stream;

-- The presence of each user who ever had one; rows of users who share a room
-- with someone are what that someone's /sync reports.
CREATE TABLE presence (
    user_id TEXT PRIMARY KEY,
    -- online, unavailable or offline.
    state TEXT NOT NULL,
    status_msg TEXT,
    -- 0 when the user was never active.
    last_active_ts BIGINT NOT NULL,
    currently_active BOOLEAN NOT NULL,
    stream_id BIGINT NOT NULL
);
CREATE INDEX presence_stream_idx ON presence (stream_id);
