-- Presence in a deployment of several processes (homeserver/cluster/presence.py):
-- each process writes, every few seconds in one statement, the users it holds
-- a /sync for (last_sync_ts: now while one is in flight, else when the last
-- ended) and the latest activity it saw of them. The process holding the
-- presence-timeouts lease reads them, one query per sweep, to time users out.
-- A dead process's rows stop moving, so its users time out like the others.
CREATE TABLE presence_syncs (
    user_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    last_sync_ts BIGINT NOT NULL,
    last_active_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, instance)
);
CREATE INDEX presence_syncs_ts ON presence_syncs (greatest(last_sync_ts, last_active_ts));

-- The sweep reads the local users who are not offline, a few of all users.
CREATE INDEX presence_not_offline ON presence (user_id) WHERE state <> 'offline';
