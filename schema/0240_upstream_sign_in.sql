-- Signing in through upstream OpenID Connect providers, and legacy single
-- sign-on (homeserver/sso/).

-- A sign-in started at a provider and not yet come back: the state, nonce and
-- PKCE verifier stay here, never in the browser. Single use (deleted when the
-- callback reads it), short-lived, and bound to the browser that started it
-- by the hash of a cookie secret.
CREATE TABLE upstream_auth_requests (
    state TEXT PRIMARY KEY,
    idp_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    browser_hash BYTEA NOT NULL,
    next_path TEXT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX upstream_auth_requests_expiry ON upstream_auth_requests (expires_ts);

-- Which account a provider's subject is.
CREATE TABLE upstream_links (
    idp_id TEXT NOT NULL,
    sub TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    -- What the provider's claims said at the last sign-in (email_template).
    email TEXT,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (idp_id, sub)
);
CREATE INDEX upstream_links_user ON upstream_links (user_id);

-- A completed sign-in at a provider (its session id `sid`, if it gave one),
-- remembered by the hash of a cookie secret so that what the browser goes on
-- to create (a device, by a login token) is known to come from it, and a
-- back-channel logout can end it.
CREATE TABLE upstream_sign_ins (
    handle_hash BYTEA PRIMARY KEY,
    idp_id TEXT NOT NULL,
    sub TEXT NOT NULL,
    sid TEXT,
    user_id TEXT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX upstream_sign_ins_subject ON upstream_sign_ins (idp_id, sub);

-- Devices created through a provider's sign-in, for back-channel logout.
CREATE TABLE upstream_devices (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    idp_id TEXT NOT NULL,
    sub TEXT NOT NULL,
    sid TEXT,
    PRIMARY KEY (user_id, device_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX upstream_devices_subject ON upstream_devices (idp_id, sub);

-- m.login.token: single use, short-lived; only a SHA-256 of the token is kept.
CREATE TABLE login_tokens (
    token_hash BYTEA PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_ts BIGINT NOT NULL,
    -- Where the sign-in behind the token came from, carried to the device.
    idp_id TEXT,
    sub TEXT,
    sid TEXT
);
CREATE INDEX login_tokens_expiry ON login_tokens (expires_ts);
