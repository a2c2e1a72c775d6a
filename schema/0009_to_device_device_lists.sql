-- To-device messages and device list changes: two database-backed streams of /sync.

CREATE SEQUENCE to_device_stream;

-- Messages waiting for a local device. A message stays until a /sync of that
-- device acknowledges it (its `since` is at or past the message's position),
-- so a response that was lost is delivered again. Deleting the device deletes
-- its messages.
CREATE TABLE to_device_inbox (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    -- One position per send: a device gets at most one message of each send.
    stream_id BIGINT NOT NULL,
    sender TEXT NOT NULL,
    type TEXT NOT NULL,
    -- The content as JSON text, handed back as it came.
    content TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, stream_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

-- The transaction ids a device has sent with, so that a retried send is not
-- delivered twice.
CREATE TABLE to_device_txns (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

-- Messages for users of other servers, waiting for the federation sender
-- (one m.direct_to_device EDU per row), in stream order per destination.
CREATE TABLE to_device_outbox (
    destination TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    sender TEXT NOT NULL,
    type TEXT NOT NULL,
    message_id TEXT NOT NULL,
    -- {user id: {device id or "*": content}} of that server's users, JSON text.
    messages TEXT NOT NULL,
    PRIMARY KEY (destination, stream_id)
);

CREATE SEQUENCE device_lists_stream;

-- A user's devices (or, later, their keys) changed at this position: clients
-- of users who share a room with them refetch their device keys.
CREATE TABLE device_list_changes (
    stream_id BIGINT PRIMARY KEY,
    user_id TEXT NOT NULL
);
