-- A device list change only one user is told of: a new user-signing key
-- (which only its owner sees) or a user's signature on another user's master
-- key (which only the signer sees). NULL: everyone sharing a room is told.
ALTER TABLE device_list_changes ADD COLUMN only_for TEXT;
