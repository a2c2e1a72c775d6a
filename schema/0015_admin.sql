-- The admin API (/_synapse/admin): its audit log and the per-user and per-room
-- decisions administrators make.

-- Every admin request that changes something, as it was answered. Append-only:
-- the API has no route to change it and the trigger below refuses UPDATE and
-- DELETE, so an administrator cannot cover their tracks through the server.
CREATE TABLE admin_audit_log (
    id BIGSERIAL PRIMARY KEY,
    ts BIGINT NOT NULL,
    -- NULL for requests authorised by the registration shared secret.
    admin_user_id TEXT,
    ip TEXT,
    -- A stable name such as 'user.deactivate'.
    action TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    -- The user, room, media or token id the action is about, if any.
    target TEXT,
    -- The query and body, with secrets (passwords, MACs) removed.
    params JSONB NOT NULL,
    status INTEGER NOT NULL,
    errcode TEXT
);
CREATE INDEX admin_audit_log_ts ON admin_audit_log (ts);
CREATE INDEX admin_audit_log_admin ON admin_audit_log (admin_user_id, id);
CREATE INDEX admin_audit_log_target ON admin_audit_log (target, id);

CREATE FUNCTION admin_audit_log_append_only() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit_log is append-only';
END
$$;

CREATE TRIGGER admin_audit_log_append_only
    BEFORE UPDATE OR DELETE ON admin_audit_log
    FOR EACH ROW EXECUTE FUNCTION admin_audit_log_append_only();
CREATE TRIGGER admin_audit_log_no_truncate
    BEFORE TRUNCATE ON admin_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION admin_audit_log_append_only();

-- Deactivated with erase=true: the account's profile and messages are to be
-- forgotten (Synapse's `erased` flag in the admin user list).
ALTER TABLE users ADD COLUMN erased BOOLEAN NOT NULL DEFAULT FALSE;

-- Per-user replacement of the client_writes rate limit; 0/0 means no limit.
CREATE TABLE ratelimit_overrides (
    user_id TEXT PRIMARY KEY,
    messages_per_second INTEGER NOT NULL,
    burst_count INTEGER NOT NULL
);

-- Rooms local users may not join (admin block or room deletion with block).
CREATE TABLE blocked_rooms (
    room_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    blocked_ts BIGINT NOT NULL
);

-- The server notices room of each user, created on the first notice.
CREATE TABLE server_notice_rooms (
    user_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL
);
