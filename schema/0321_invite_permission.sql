-- Invite blocking (MSC4380): the server keeps who blocks invites in memory,
-- read once at start-up through this index of the settings' few rows.
CREATE INDEX account_data_invite_permission ON account_data (user_id)
    WHERE room_id = ''
      AND type IN ('m.invite_permission_config', 'org.matrix.msc4380.invite_permission_config');
