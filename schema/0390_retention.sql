-- Message retention (MSC1763) and redaction purges (homeserver/retention/).
-- An event whose content was purged keeps its row (the DAG, auth chains and
-- federation need it) with its JSON replaced by the redacted form, and this
-- flag set so no job looks at it again.
ALTER TABLE events ADD COLUMN content_purged BOOLEAN NOT NULL DEFAULT FALSE;
-- The purge job's scan: non-state events not purged yet, oldest first.
CREATE INDEX events_retention_candidates ON events (origin_server_ts, event_id)
    WHERE state_key IS NULL AND NOT content_purged;

-- Which media (mxc://server/id) each event's JSON names, so the purge knows
-- whether an event not purged still uses a file before deleting it.
CREATE TABLE event_media_refs (
    event_id TEXT NOT NULL,
    server_name TEXT NOT NULL,
    media_id TEXT NOT NULL,
    PRIMARY KEY (event_id, server_name, media_id)
);
CREATE INDEX event_media_refs_media ON event_media_refs (server_name, media_id);

INSERT INTO event_media_refs (event_id, server_name, media_id)
SELECT DISTINCT e.event_id, m[1], m[2]
FROM events e, regexp_matches(e.json, 'mxc://([][A-Za-z0-9.:-]+)/([A-Za-z0-9_-]+)', 'g') AS m
WHERE e.json LIKE '%mxc://%';

-- The purge drops the push notifications of the events it purges.
CREATE INDEX event_push_notifications_event ON event_push_notifications (event_id);
