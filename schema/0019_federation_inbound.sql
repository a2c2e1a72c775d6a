-- Inbound federation: transactions already answered, and soft-failed events.

-- Each /send transaction an origin sent us, with the answer we gave: a retry
-- with the same txnId gets the same answer and is not processed again.
CREATE TABLE federation_inbound_transactions (
    origin TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    -- The JSON answer, as sent.
    response TEXT NOT NULL,
    received_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, txn_id)
);
CREATE INDEX federation_inbound_transactions_ts ON federation_inbound_transactions (received_ts);

-- A soft-failed event passed the auth rules at its place in the DAG but not
-- against the room's current state (spec: "soft failure"). It is stored with
-- outlier = TRUE so that every client-facing read (timelines, sync, search,
-- relations, push) leaves it out, yet it keeps its state group, so that later
-- events built on it get their state. This flag tells the two kinds apart.
ALTER TABLE events ADD COLUMN soft_failed BOOLEAN NOT NULL DEFAULT FALSE;
