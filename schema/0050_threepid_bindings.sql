-- Which identity servers this server bound each user's third-party
-- identifiers (email addresses, phone numbers) on, through
-- /account/3pid/bind. Remembered so that /account/3pid/unbind, /delete and
-- account deactivation can unbind them again without the client naming the
-- identity server.
CREATE TABLE threepid_bindings (
    user_id TEXT NOT NULL,
    medium TEXT NOT NULL,
    address TEXT NOT NULL,
    -- The identity server's name (host and optional port), as the client gave it.
    id_server TEXT NOT NULL,
    PRIMARY KEY (user_id, medium, address, id_server)
);
