-- Federation: other servers' signing keys, and how reachable each server is.

-- Verify keys of other servers, each with the signed key response it came in.
-- The response text is kept exactly as received (TEXT, not JSONB) so that this
-- server can serve it again as a notary with its signature added.
CREATE TABLE server_keys (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    -- Unpadded base64 of the ed25519 verify key.
    verify_key TEXT NOT NULL,
    -- Objects signed up to this time verify with the key: the response's
    -- valid_until_ts for current keys, expired_ts for old ones.
    valid_until_ts BIGINT NOT NULL,
    -- The server that gave us the response: the key's owner or a notary.
    from_server TEXT NOT NULL,
    fetched_ts BIGINT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (server_name, key_id)
);

-- Servers that failed to answer: outbound traffic to them waits until
-- retry_last_ts + retry_interval_ms (exponential backoff).
CREATE TABLE federation_destinations (
    destination TEXT PRIMARY KEY,
    failure_ts BIGINT,
    retry_last_ts BIGINT NOT NULL DEFAULT 0,
    retry_interval_ms BIGINT NOT NULL DEFAULT 0
);
