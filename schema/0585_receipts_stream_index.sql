-- Receipts by stream position alone: a cluster's federation sender follows
-- the public receipts of every room from its last position
-- (storage/ephemeral_changes.py), as the appservice delivery does; the
-- (room_id, stream_id) index serves only readers of known rooms.
CREATE INDEX receipts_by_stream ON receipts (stream_id);
