-- The pushers' sender follows the per-user notification rows in stream order
-- (homeserver/push/stream.py); this is how far it has pushed them, so that
-- the process that takes its lease over resumes there. One row per
-- deployment: only the lease's holder writes it.
CREATE TABLE pusher_stream_position (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    stream_ordering BIGINT NOT NULL
);

-- The sender's read: the rows that notify, in a range of the events stream.
CREATE INDEX event_push_notifications_stream
    ON event_push_notifications (stream_ordering) WHERE notify;
