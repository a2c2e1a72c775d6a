-- /sync asks for one user's member events across all their rooms (their
-- membership at the `since` and `now` positions); without this index that is
-- a scan of every event.
CREATE INDEX events_member_by_user ON events (state_key, stream_ordering)
    WHERE type = 'm.room.member';
