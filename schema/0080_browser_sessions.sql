-- A person signed in to the server's own web pages (the OAuth 2.0 sign-in,
-- consent and account pages, and the single sign-on pages). The cookie holds
-- a random secret; only its hash is kept, like access tokens. A browser
-- session is not a Matrix device: it grants no access to the client API.
CREATE TABLE browser_sessions (
    secret_hash BYTEA PRIMARY KEY,
    user_id TEXT NOT NULL,
    -- How the person proved who they are: "password", "ldap", "upstream:<idp id>".
    authenticated_by TEXT NOT NULL,
    -- A per-session secret that CSRF tokens of this session's forms derive from.
    csrf_key BYTEA NOT NULL,
    created_ts BIGINT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX browser_sessions_user ON browser_sessions (user_id);
CREATE INDEX browser_sessions_expiry ON browser_sessions (expires_ts);
