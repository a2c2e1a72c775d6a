-- The user directory: finding local users by display name and user id.
--
-- Local users are searched straight from `profiles`, so the directory can
-- never disagree with a profile (registration, display name changes and
-- deactivation need no extra bookkeeping). Who may see whom is decided at
-- query time from `current_state` memberships and the members of public
-- rooms below.

-- The words a search matches, weighted for ranking: the localpart (A, both
-- whole and split at its punctuation: 'john.doe' also gives 'john' and
-- 'doe'), the display name (B), the server name (D). IMMUTABLE so that an
-- index can hold it.
CREATE FUNCTION user_directory_vector(user_id TEXT, display_name TEXT) RETURNS TSVECTOR
LANGUAGE SQL IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(
               to_tsvector('simple', split_part(substr(user_id, 2), ':', 1))
               || to_tsvector('simple',
                              translate(split_part(substr(user_id, 2), ':', 1), '._=-/+', '      ')),
               'A')
        || setweight(to_tsvector('simple', COALESCE(display_name, '')), 'B')
        || setweight(to_tsvector('simple', substr(user_id, strpos(user_id, ':') + 1)), 'D')
$$;

-- Stored, so that ranking reads it instead of recomputing it for every match.
ALTER TABLE profiles ADD COLUMN directory_vector TSVECTOR
    GENERATED ALWAYS AS (user_directory_vector(user_id, displayname)) STORED;
CREATE INDEX profiles_directory_vector ON profiles USING GIN (directory_vector);

-- Who is joined to which public room (join rule public, or history
-- world_readable, as Synapse): everyone may find these users. A copy of part
-- of current_state, kept so a search checks each match with one probe instead
-- of reading every membership of every public room. Recomputed for a member
-- after each member event, and for a whole room after a change of its join
-- rules or history visibility.
CREATE TABLE user_directory_public_members (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);
CREATE INDEX user_directory_public_members_room ON user_directory_public_members (room_id);

INSERT INTO user_directory_public_members (user_id, room_id)
SELECT m.state_key, m.room_id
FROM current_state m
WHERE m.type = 'm.room.member' AND m.membership = 'join'
  AND EXISTS (
      SELECT 1 FROM current_state c JOIN events e ON e.event_id = c.event_id
      WHERE c.room_id = m.room_id AND c.state_key = ''
        AND ((c.type = 'm.room.join_rules'
              AND e.json::jsonb -> 'content' ->> 'join_rule' = 'public')
          OR (c.type = 'm.room.history_visibility'
              AND e.json::jsonb -> 'content' ->> 'history_visibility' = 'world_readable')));
