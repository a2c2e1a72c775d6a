-- Delayed events (MSC4140): events a user scheduled to be sent later.
-- A row moves scheduled -> sending (claimed by the scheduler or a "send"
-- action) -> sent | failed, or scheduled -> cancelled. Finalised rows are kept
-- a while so that retried actions and look-ups can be answered.
CREATE TABLE delayed_events (
    delay_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT,
    -- The client's transaction id when scheduled through a PUT with one.
    txn_id TEXT,
    room_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    state_key TEXT,
    -- For state: the current event of that state when it was scheduled; if
    -- another user's event replaced it by the time of sending, it is
    -- cancelled then (should the commit hook that cancels it have been missed).
    state_event_id TEXT,
    content TEXT NOT NULL,
    -- An application service's ?ts=, kept for the event when it is sent.
    origin_server_ts BIGINT,
    delay_ms BIGINT NOT NULL,
    -- When it was scheduled or last restarted; send_ts = scheduled_at + delay_ms.
    scheduled_at BIGINT NOT NULL,
    send_ts BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'scheduled',
    claimed_at BIGINT,
    finalised_ts BIGINT,
    -- Why it was finalised: 'delay', 'action', 'error' or 'state' (overwritten).
    reason TEXT,
    event_id TEXT,
    error TEXT
);

CREATE INDEX delayed_events_due ON delayed_events (send_ts) WHERE status = 'scheduled';
CREATE INDEX delayed_events_claimed ON delayed_events (claimed_at) WHERE status = 'sending';
CREATE INDEX delayed_events_user ON delayed_events (user_id, send_ts);
CREATE INDEX delayed_events_state ON delayed_events (room_id, event_type, state_key)
    WHERE status = 'scheduled' AND state_key IS NOT NULL;
CREATE INDEX delayed_events_finalised ON delayed_events (finalised_ts)
    WHERE finalised_ts IS NOT NULL;
CREATE UNIQUE INDEX delayed_events_txn ON delayed_events (user_id, device_id, txn_id)
    WHERE txn_id IS NOT NULL;
