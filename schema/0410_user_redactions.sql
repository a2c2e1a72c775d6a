-- Admin jobs that redact all of a user's events (POST
-- /_synapse/admin/v1/user/{user_id}/redact): their request and progress, so
-- the status endpoint answers after a restart and an interrupted job resumes.
CREATE TABLE user_redactions (
    redact_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    admin_id TEXT NOT NULL,
    -- The rooms named in the request; empty means every room of the user.
    rooms TEXT[] NOT NULL,
    reason TEXT,
    max_per_room INTEGER NOT NULL,
    after_ts BIGINT,
    before_ts BIGINT,
    -- scheduled, active, completed or failed (Synapse's names).
    status TEXT NOT NULL,
    total INTEGER NOT NULL DEFAULT 0,
    redacted INTEGER NOT NULL DEFAULT 0,
    -- {event id: why its redaction failed}
    failed_redactions JSONB NOT NULL DEFAULT '{}',
    error TEXT,
    created_ts BIGINT NOT NULL,
    updated_ts BIGINT NOT NULL
);
CREATE INDEX user_redactions_unfinished ON user_redactions (created_ts)
    WHERE status IN ('scheduled', 'active');
