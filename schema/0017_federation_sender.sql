-- The outbound federation sender: how far it has read the event stream, and for
-- each destination what it owes and what the destination has acknowledged, so
-- that a server that was down (or a restart of ours) is caught up from here.

-- How far the sender has read the events stream (one row). Written in the same
-- transaction as the federation_destination_rooms rows of the events read.
CREATE TABLE federation_sender_position (
    lock CHAR(1) PRIMARY KEY DEFAULT 'X' CHECK (lock = 'X'),
    stream_ordering BIGINT NOT NULL
);

-- The newest local event of each room that each destination should have.
-- A destination that is behind is sent these (the newest event per room) and
-- fetches the rest itself with /get_missing_events.
CREATE TABLE federation_destination_rooms (
    destination TEXT NOT NULL,
    room_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    PRIMARY KEY (destination, room_id)
);
CREATE INDEX federation_destination_rooms_stream
    ON federation_destination_rooms (destination, stream_ordering);

-- The stream position of the newest event a destination acknowledged in a
-- transaction: it has everything owed to it up to here.
CREATE TABLE federation_destination_positions (
    destination TEXT PRIMARY KEY,
    last_successful_stream BIGINT NOT NULL
);

-- EDUs that must survive a restart (device list and signing key updates),
-- one row per destination; deleted once the destination acknowledged them.
CREATE TABLE federation_edu_outbox (
    id BIGSERIAL PRIMARY KEY,
    destination TEXT NOT NULL,
    edu_type TEXT NOT NULL,
    -- The EDU content as JSON text.
    content TEXT NOT NULL
);
CREATE INDEX federation_edu_outbox_destination ON federation_edu_outbox (destination, id);

-- The last m.device_list_update stream_id of each local user: the next update
-- names it in prev_id, so that a remote that missed one knows to resync.
CREATE TABLE federation_device_list_ids (
    user_id TEXT PRIMARY KEY,
    stream_id BIGINT NOT NULL
);
