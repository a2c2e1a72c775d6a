-- End-to-end encryption over federation: the cache of remote users' device
-- lists and cross-signing keys, kept fresh by m.device_list_update and
-- m.signing_key_update EDUs, and the to-device messages already received
-- from other servers (so that a repeated EDU is delivered once).

-- A remote user whose device list is cached. Only users sharing a room with
-- a local user are cached: their server sends us every change.
CREATE TABLE e2e_remote_users (
    user_id TEXT PRIMARY KEY,
    -- The stream_id of the list (from /user/devices or the last update
    -- applied); NULL when it came from /user/keys/query, which names none:
    -- the next update then resyncs the whole list.
    stream_id BIGINT,
    -- The events stream position just before the list was fetched. The cache
    -- is trusted only while the user has shared a room with a local user
    -- since then (their server has been telling us of every change).
    events_position BIGINT NOT NULL,
    -- An update could not be applied and the resync failed: ask again.
    stale BOOLEAN NOT NULL DEFAULT FALSE,
    -- The public cross-signing keys as JSON text, as the remote sent them.
    master_key TEXT,
    self_signing_key TEXT
);

-- The devices of a cached remote user. `keys` is the signed device keys
-- object as JSON text, NULL for a device that has uploaded none.
CREATE TABLE e2e_remote_devices (
    user_id TEXT NOT NULL REFERENCES e2e_remote_users (user_id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    keys TEXT,
    display_name TEXT,
    PRIMARY KEY (user_id, device_id)
);

-- m.direct_to_device EDUs delivered, by sender and message_id: the same EDU
-- in a retried transaction is not delivered again. Rows older than a week
-- are dropped (no server retries a transaction that long).
CREATE TABLE to_device_federation_received (
    sender TEXT NOT NULL,
    message_id TEXT NOT NULL,
    received_ts BIGINT NOT NULL,
    PRIMARY KEY (sender, message_id)
);
CREATE INDEX to_device_federation_received_ts ON to_device_federation_received (received_ts);
