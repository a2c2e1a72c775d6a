-- Streams shared by the processes of a cluster (homeserver/cluster/).
-- Each process (instance) that writes a stream records here how far it has
-- persisted it: every position it took up to `position` is committed or
-- abandoned, and every position it takes later is larger. A reader's view of
-- a stream is the least of these over the live writers; this table is how a
-- reader that missed notifications (or just started) catches up.
CREATE TABLE stream_writers (
    stream TEXT NOT NULL,
    instance TEXT NOT NULL,
    position BIGINT NOT NULL,
    -- Nothing in flight: readers need not wait for this writer, which
    -- announces itself busy again (and waits for that to commit) before it
    -- takes its next position.
    idle BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (stream, instance)
);

-- Typing in a cluster: positions shared by every process, and who types in
-- which room (with the moment each stops), so that a /sync served by any
-- process sees typing set through any other.
CREATE SEQUENCE typing_stream;
CREATE TABLE typing_users (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- When the typing ends unless renewed; past it, or NULL: not typing.
    until TIMESTAMPTZ,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX typing_users_stream ON typing_users (stream_id);
