-- Account suspension (client-server API v1.13, MSC3823; set by admins through
-- /_matrix/client/v1/admin/suspend, v1.18): a flag next to `locked`, read with
-- the access token so that no request pays an extra query for it.
ALTER TABLE users ADD COLUMN suspended BOOLEAN NOT NULL DEFAULT FALSE;

-- Reports of users (POST /users/{userId}/report, v1.14), shown to admins as
-- Synapse's /_synapse/admin/v1/user_reports shows them.
CREATE TABLE user_reports (
    id BIGSERIAL PRIMARY KEY,
    received_ts BIGINT NOT NULL,
    target_user_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX user_reports_target ON user_reports (target_user_id);
CREATE INDEX user_reports_reporter ON user_reports (user_id);
