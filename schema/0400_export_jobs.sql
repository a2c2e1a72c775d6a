-- Data exports (homeserver/export/): the admin API's background jobs, and the
-- indexes that let an export page through a user's events without scanning
-- the whole events table.

-- One row per export started through the admin API. Kept in PostgreSQL so a
-- restart reports the jobs it cut short as 'interrupted' instead of
-- forgetting them.
CREATE TABLE export_jobs (
    export_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'room')),
    target TEXT NOT NULL,
    include_redacted BOOLEAN NOT NULL,
    requested_by TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
    -- Records written so far, of `total` (counted when the export starts).
    progress BIGINT NOT NULL DEFAULT 0,
    total BIGINT,
    output_path TEXT NOT NULL,
    error TEXT,
    started_ts BIGINT NOT NULL,
    finished_ts BIGINT
);

-- The events a user sent, in stream order.
CREATE INDEX IF NOT EXISTS export_events_sender ON events (sender, stream_ordering);
-- Every membership event about a user, in stream order: events_member_by_user
-- (schema/0007) serves it.
