-- Jump to date (`/timestamp_to_event`): a room's events by origin_server_ts,
-- so the closest event to a time is one index probe in either direction.
CREATE INDEX events_room_ts ON events (room_id, origin_server_ts, stream_ordering)
    WHERE NOT outlier;
