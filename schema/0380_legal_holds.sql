-- Legal holds (archive and compliance): a room or a user an administrator
-- has put on hold. While a hold stands, no event of the room (or sent by the
-- user) loses its content to retention, redaction purges or erasure.
CREATE TABLE legal_holds (
    kind TEXT NOT NULL CHECK (kind IN ('room', 'user')),
    target TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    placed_by TEXT NOT NULL,
    placed_ts BIGINT NOT NULL,
    PRIMARY KEY (kind, target)
);
