-- History visibility asks when a user last joined a room: find a user's
-- member events in a room without scanning the room's timeline.
CREATE INDEX events_room_member ON events (room_id, state_key, depth, stream_ordering)
    WHERE type = 'm.room.member';
