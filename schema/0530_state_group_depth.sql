-- A state group's depth: how many state changes lie between it and the
-- room's first group, along the groups each was built on. It decides which
-- ancestor a new group is stored as a delta against (storage/state.py), so
-- that a room's state takes storage linear in its changes instead of a full
-- snapshot every hundred changes. NULL for groups written before: their
-- chain length stands in for it (their chains are plain one-step deltas).
ALTER TABLE state_groups ADD COLUMN depth BIGINT;
