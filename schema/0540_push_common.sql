-- Notifications without one row per member (issue 24): most local members of
-- a room get the same outcome for an event, written once here; the members
-- whose outcome is their own keep per-user rows in event_push_notifications.

-- The outcome every local member of the room gets for an event unless they
-- have a row of their own for it in event_push_notifications: one row per
-- event that notifies that "anonymous" member with the default rules. Readers
-- count it for a local member joined when it was sent who is not its sender.
CREATE TABLE event_push_common (
    room_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    -- As in event_push_notifications: the thread root, or '' for the main timeline.
    thread_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    highlight BOOLEAN NOT NULL,
    -- JSON text: the actions of the rule that matched.
    actions TEXT NOT NULL,
    -- When the notification was made (GET /notifications `ts`), in milliseconds.
    ts BIGINT NOT NULL DEFAULT (floor(extract(epoch FROM clock_timestamp()) * 1000))::BIGINT,
    PRIMARY KEY (room_id, stream_ordering)
);
-- The retention purge drops the rows of the events it purges.
CREATE INDEX event_push_common_event ON event_push_common (event_id);

-- A per-user row may now say "not notified": it overrides the common row of
-- its event for that user. Every row written before notified.
ALTER TABLE event_push_notifications ADD COLUMN notify BOOLEAN NOT NULL DEFAULT TRUE;

-- When each local user was joined to each room (from the stream ordering of
-- the event that made them join to that of the one that ended it; NULL while
-- they still are): GET /notifications lists the common rows of these spans,
-- as it listed the per-user rows written while the user was a member.
CREATE TABLE push_member_spans (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    left_at BIGINT,
    PRIMARY KEY (user_id, room_id, joined_at)
);
-- At most one open span per user and room.
CREATE UNIQUE INDEX push_member_spans_open ON push_member_spans (user_id, room_id)
    WHERE left_at IS NULL;

-- The spans of the local members joined now, from their current membership
-- event (what the unread counts already start from); earlier spans have no
-- common rows to show.
INSERT INTO push_member_spans (user_id, room_id, joined_at)
SELECT cs.state_key, cs.room_id, e.stream_ordering
FROM current_state cs
JOIN events e ON e.event_id = cs.event_id
JOIN users u ON u.user_id = cs.state_key
WHERE cs.type = 'm.room.member' AND cs.membership = 'join';
