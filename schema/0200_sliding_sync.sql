-- Simplified sliding sync (MSC4186) connections: one per (user, device,
-- conn_id). Each response writes a position: the sync token it reached, the
-- list counts it gave and what of each room it has sent (timeline position,
-- required_state asked for), as JSON, so the next request with that `pos`
-- sends only what changed, across restarts. A connection keeps only the
-- positions from the last one its client used onwards.
CREATE TABLE sliding_sync_connections (
    id BIGSERIAL PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    conn_id TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    last_used_ts BIGINT NOT NULL,
    UNIQUE (user_id, device_id, conn_id)
);
CREATE INDEX sliding_sync_connections_last_used ON sliding_sync_connections (last_used_ts);

CREATE TABLE sliding_sync_positions (
    pos BIGSERIAL PRIMARY KEY,
    connection_id BIGINT NOT NULL REFERENCES sliding_sync_connections (id) ON DELETE CASCADE,
    token TEXT NOT NULL,
    lists JSONB NOT NULL,
    rooms JSONB NOT NULL
);
CREATE INDEX sliding_sync_positions_connection ON sliding_sync_positions (connection_id);
