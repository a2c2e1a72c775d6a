-- Push rules and the notifications they produce.

-- A user's changes to their push rules. Rows with is_default = FALSE are the
-- user's own rules; rows with is_default = TRUE only change a server-default
-- rule (NULL enabled / actions: the default's value stands).
CREATE TABLE push_rules (
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    is_default BOOLEAN NOT NULL,
    -- Order among the user's rules of a kind: higher runs first.
    priority INTEGER NOT NULL DEFAULT 0,
    -- JSON text: the conditions of override/underride rules.
    conditions TEXT,
    -- The glob of content rules.
    pattern TEXT,
    -- JSON text.
    actions TEXT,
    enabled BOOLEAN,
    PRIMARY KEY (user_id, kind, rule_id)
);

-- One row per event that notifies a local user: unread counts in /sync count
-- the rows after the user's read receipt; GET /notifications and pushers read
-- them too.
CREATE TABLE event_push_notifications (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    -- The thread root's event id, or '' for the main timeline (which sorts
    -- first, so that counting the main timeline and the threads are two
    -- separate index ranges).
    thread_id TEXT NOT NULL,
    highlight BOOLEAN NOT NULL,
    -- JSON text: the actions of the rule that matched.
    actions TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id, thread_id, stream_ordering)
);
