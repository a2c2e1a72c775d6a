-- Pushes to application services: how far each appservice has been sent each
-- stream, and the one transaction in flight to it. Positions move only when
-- the appservice answered 2xx, in the same database transaction that deletes
-- the transaction in flight, so a restart neither loses nor reorders anything.

-- Per appservice and stream (events, receipts, to_device, device_lists): the
-- position up to which everything it is interested in was acknowledged.
CREATE TABLE appservice_positions (
    appservice_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (appservice_id, stream)
);

-- The last transaction id used and the time of the last 2xx, per appservice.
-- Ids are never reused, even across restarts: appservices deduplicate by them.
CREATE TABLE appservice_state (
    appservice_id TEXT PRIMARY KEY,
    last_txn_id BIGINT NOT NULL DEFAULT 0,
    last_success_ts BIGINT
);

-- The transaction being sent (at most one per appservice): retried with the
-- same id and body until it is acknowledged.
CREATE TABLE appservice_transactions (
    appservice_id TEXT PRIMARY KEY,
    txn_id BIGINT NOT NULL,
    -- The request body as JSON text.
    body TEXT NOT NULL,
    -- {stream: position} that acknowledging this transaction moves to.
    positions TEXT NOT NULL,
    event_count INTEGER NOT NULL
);

-- The delivery reads these streams by position across all users.
CREATE INDEX receipts_stream_id ON receipts (stream_id);
CREATE INDEX to_device_inbox_stream_id ON to_device_inbox (stream_id);
