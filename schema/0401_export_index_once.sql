-- export_events_membership repeated events_member_by_user (schema/0007), an
-- index every member event paid for twice; 0400 no longer makes it, and
-- databases migrated before that drop it here.
DROP INDEX IF EXISTS export_events_membership;
