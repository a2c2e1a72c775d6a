-- Outbound federation sharded over several federation_sender workers
-- (homeserver/cluster/): how far each shard has read the events stream. A
-- shard is named "<index>-of-<count>"; the one-process sender keeps using
-- federation_sender_position.
CREATE TABLE federation_sender_shard_positions (
    shard TEXT PRIMARY KEY,
    stream_ordering BIGINT NOT NULL
);
