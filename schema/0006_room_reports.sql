-- Reports of whole rooms (client-server API v1.13), next to event_reports:
-- a room report names no event, and the reporter need not be in the room.
CREATE TABLE room_reports (
    id BIGSERIAL PRIMARY KEY,
    received_ts BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX room_reports_room ON room_reports (room_id);
