-- Membership handshakes with other servers: rooms joined through a remote
-- server, invites and knocks across servers.

-- Events received without their place in the room's timeline (a remote
-- room's state and auth chain at the moment we join it) are outliers. They
-- take their stream_ordering from this sequence, negated, so that they stay
-- out of every stream reader's range and never use up events_stream positions.
CREATE SEQUENCE outlier_stream;

-- What an invitee or knocker may see of a room they are not in, as the other
-- server gave it with the invite (invite_room_state) or knock
-- (knock_room_state): a JSON list of stripped state events, kept exactly as
-- received.
CREATE TABLE stripped_room_state (
    event_id TEXT PRIMARY KEY,
    state_json TEXT NOT NULL
);
