-- Threads of a room: /threads groups a room's m.thread children by root
-- without scanning the room's other events.
CREATE INDEX events_room_threads ON events (room_id, relates_to) WHERE rel_type = 'm.thread';
