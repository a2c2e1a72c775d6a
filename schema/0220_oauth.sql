-- The built-in OAuth 2.0 authorization server (homeserver/oauth).
-- An OAuth session is an ordinary device with ordinary access and refresh
-- tokens (0001_accounts.sql); these tables hold only what OAuth adds. Every
-- secret (authorization codes, device codes) is stored as a SHA-256 digest.

-- Clients registered dynamically (RFC 7591); their metadata as accepted.
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    metadata JSONB NOT NULL,
    created_ts BIGINT NOT NULL
);

-- Authorization requests, from the authorization endpoint until the code is
-- exchanged. A row whose code was exchanged is kept until it expires so that
-- a replayed code can revoke what it issued (RFC 6749 section 4.1.2).
CREATE TABLE oauth_authorizations (
    authorization_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    device_id TEXT NOT NULL,
    state TEXT,
    -- OpenID Connect's nonce, echoed in the ID token of an `openid` request.
    nonce TEXT,
    code_challenge TEXT NOT NULL,
    response_mode TEXT NOT NULL,
    prompt_create BOOLEAN NOT NULL,
    created_ts BIGINT NOT NULL,
    expires_ts BIGINT NOT NULL,
    -- Set by approval: who signed in, and the code the client receives.
    user_id TEXT,
    code_hash BYTEA UNIQUE,
    -- Set when the code is exchanged for tokens.
    exchanged_ts BIGINT
);
CREATE INDEX oauth_authorizations_expiry ON oauth_authorizations (expires_ts);

-- The device authorization grant (RFC 8628).
CREATE TABLE oauth_device_grants (
    device_code_hash BYTEA PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    device_id TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    expires_ts BIGINT NOT NULL,
    -- 'pending', 'approved', 'denied' or 'exchanged'.
    status TEXT NOT NULL DEFAULT 'pending',
    user_id TEXT,
    last_poll_ts BIGINT,
    poll_interval_s INTEGER NOT NULL
);
CREATE INDEX oauth_device_grants_expiry ON oauth_device_grants (expires_ts);

-- Which devices are OAuth sessions, of which client and with which scope.
-- Deleted with the device (logout, device deletion, revocation).
CREATE TABLE oauth_sessions (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

-- Refresh tokens of OAuth sessions that were rotated away: presenting one
-- again means it leaked, and ends the session.
CREATE TABLE oauth_spent_refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

-- A user's approval, on the account page, to replace their cross-signing
-- keys without another authentication (the m.oauth UIA stage, MSC4312).
CREATE TABLE oauth_cross_signing_resets (
    user_id TEXT PRIMARY KEY,
    expires_ts BIGINT NOT NULL
);
