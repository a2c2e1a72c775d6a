-- Events whose content the server removes at a time their sender chose
-- (MSC2228 `org.matrix.self_destruct_after`, with enable_ephemeral_messages).
-- Kept here, not in memory, so expiries survive a restart.
CREATE TABLE event_expiry (
    event_id TEXT PRIMARY KEY REFERENCES events (event_id) ON DELETE CASCADE,
    expiry_ts BIGINT NOT NULL
);
CREATE INDEX event_expiry_ts ON event_expiry (expiry_ts);
