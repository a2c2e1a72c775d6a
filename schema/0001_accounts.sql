-- Accounts, sessions and per-user data: everything the client API basics need.

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    -- bcrypt hash; NULL for accounts that cannot log in with a password.
    password_hash TEXT,
    created_ts BIGINT NOT NULL,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    is_guest BOOLEAN NOT NULL DEFAULT FALSE,
    deactivated BOOLEAN NOT NULL DEFAULT FALSE,
    locked BOOLEAN NOT NULL DEFAULT FALSE,
    shadow_banned BOOLEAN NOT NULL DEFAULT FALSE,
    user_type TEXT
);

CREATE TABLE devices (
    user_id TEXT NOT NULL REFERENCES users (user_id),
    device_id TEXT NOT NULL,
    display_name TEXT,
    created_ts BIGINT NOT NULL,
    last_seen_ts BIGINT,
    last_seen_ip TEXT,
    last_seen_user_agent TEXT,
    PRIMARY KEY (user_id, device_id)
);

-- Only a SHA-256 of each token is stored: a leaked table grants no access.
CREATE TABLE refresh_tokens (
    id BIGSERIAL PRIMARY KEY,
    token_hash BYTEA NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    -- The token that replaced this one; this one dies once the next is used.
    next_token_id BIGINT REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

CREATE TABLE access_tokens (
    id BIGSERIAL PRIMARY KEY,
    token_hash BYTEA NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    valid_until_ts BIGINT,
    refresh_token_id BIGINT REFERENCES refresh_tokens (id) ON DELETE CASCADE,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX access_tokens_user_device ON access_tokens (user_id, device_id);

CREATE TABLE profiles (
    user_id TEXT PRIMARY KEY REFERENCES users (user_id),
    displayname TEXT,
    avatar_url TEXT,
    -- Extended profile fields (m.tz and custom keys), by key.
    fields JSONB NOT NULL DEFAULT '{}'
);

-- Position in the account data stream, for /sync.
CREATE SEQUENCE account_data_stream;

CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    -- '' for global account data.
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    content TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_stream_idx ON account_data (user_id, stream_id);

CREATE TABLE filters (
    user_id TEXT NOT NULL,
    filter_id BIGINT NOT NULL,
    filter_json TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

-- User-interactive authentication sessions. Kept in the database so that any
-- worker process can continue a session another one started.
CREATE TABLE ui_auth_sessions (
    session_id TEXT PRIMARY KEY,
    created_ts BIGINT NOT NULL,
    -- What the session authorises, so it cannot be reused for something else.
    method TEXT NOT NULL,
    uri TEXT NOT NULL,
    -- Stage type -> result (the user id it authenticated, or true).
    completed JSONB NOT NULL DEFAULT '{}',
    -- Data the operation keeps across stages (e.g. the registration request).
    params JSONB NOT NULL DEFAULT '{}'
);

CREATE TABLE registration_tokens (
    token TEXT PRIMARY KEY,
    uses_allowed INTEGER,
    pending INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    expiry_time BIGINT
);

CREATE TABLE openid_tokens (
    token_hash BYTEA PRIMARY KEY,
    user_id TEXT NOT NULL,
    valid_until_ts BIGINT NOT NULL
);
