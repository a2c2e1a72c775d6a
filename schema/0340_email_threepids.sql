-- Email addresses this server validates itself (the requestToken flows of
-- the client-server API): one session per (client_secret, medium, address),
-- as the spec's send_attempt counts the sends of one such session.
CREATE TABLE threepid_validation_sessions (
    session_id TEXT PRIMARY KEY,
    client_secret TEXT NOT NULL,
    medium TEXT NOT NULL,
    address TEXT NOT NULL,
    last_send_attempt BIGINT NOT NULL,
    -- SHA-256 of the token mailed out (hex); the token itself is never kept.
    token_hash TEXT NOT NULL,
    token_expires_ts BIGINT NOT NULL,
    next_link TEXT,
    created_ts BIGINT NOT NULL,
    validated_ts BIGINT,
    UNIQUE (client_secret, medium, address)
);
CREATE INDEX threepid_validation_sessions_created ON threepid_validation_sessions (created_ts);

-- The third-party identifiers added to accounts (validated by this server),
-- for GET /account/3pid, password reset and login with m.id.thirdparty.
-- An address belongs to one account at most.
CREATE TABLE user_threepids (
    user_id TEXT NOT NULL,
    medium TEXT NOT NULL,
    address TEXT NOT NULL,
    validated_ts BIGINT NOT NULL,
    added_ts BIGINT NOT NULL,
    PRIMARY KEY (medium, address)
);
CREATE INDEX user_threepids_user ON user_threepids (user_id);
