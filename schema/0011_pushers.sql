-- Pushers (where a user's notifications are pushed) and what GET /notifications needs.

-- One row per pusher: a user has at most one per (app_id, pushkey). It
-- belongs to the device whose access token set it, and dies with it.
CREATE TABLE pushers (
    user_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    app_display_name TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag TEXT,
    lang TEXT NOT NULL,
    -- JSON text: the pusher's data object as the client gave it.
    data TEXT NOT NULL,
    -- When the pushkey was last set, in milliseconds.
    pushkey_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, app_id, pushkey),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
-- append=false removes other users' pushers with the same app id and pushkey.
CREATE INDEX pushers_app_pushkey ON pushers (app_id, pushkey);
CREATE INDEX pushers_device ON pushers (user_id, device_id);

-- When each notification was made (GET /notifications `ts`), in milliseconds.
ALTER TABLE event_push_notifications
    ADD COLUMN ts BIGINT NOT NULL
    DEFAULT (floor(extract(epoch FROM clock_timestamp()) * 1000))::BIGINT;

-- GET /notifications: a user's notifications, newest first.
CREATE INDEX event_push_notifications_user_stream
    ON event_push_notifications (user_id, stream_ordering);
