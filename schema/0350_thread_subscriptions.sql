-- Thread subscriptions (MSC4306): one row per (user, thread) that was ever
-- subscribed. An unsubscription keeps the row (subscribed = false) so that
-- /thread_subscriptions and sliding sync (MSC4308) can tell clients about it,
-- and so that an automatic subscription caused by an event the server had
-- already received at the unsubscription is refused.
-- stream_id is a position on the account data stream: thread subscriptions
-- travel with account data through the notifier and sync positions.
CREATE TABLE thread_subscriptions (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    thread_root_id TEXT NOT NULL,
    subscribed BOOLEAN NOT NULL,
    automatic BOOLEAN NOT NULL,
    -- The event stream position when the user unsubscribed (NULL while subscribed).
    unsubscribed_at BIGINT,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, thread_root_id)
);
CREATE INDEX thread_subscriptions_by_stream ON thread_subscriptions (user_id, stream_id);
-- Push evaluation asks who is subscribed to one thread.
CREATE INDEX thread_subscriptions_subscribers ON thread_subscriptions (room_id, thread_root_id)
    WHERE subscribed;
