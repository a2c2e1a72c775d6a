-- Nonces of shared-secret registration (GET/POST /_synapse/admin/v1/register),
-- kept here rather than in one process's memory: behind a proxy the GET and
-- the POST may reach two processes. A nonce is deleted when used; expired ones
-- are deleted whenever a new nonce is issued.
CREATE TABLE shared_secret_nonces (
    nonce TEXT PRIMARY KEY,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX shared_secret_nonces_expiry ON shared_secret_nonces (expires_ts);
