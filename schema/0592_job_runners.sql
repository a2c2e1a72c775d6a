-- The database session name of the process running each export and user
-- redaction job (NULL: a single process, or a job from before this column):
-- in a deployment, a process that starts must not interrupt or resume the
-- jobs another live process is running.
ALTER TABLE export_jobs ADD COLUMN runner TEXT;
ALTER TABLE user_redactions ADD COLUMN runner TEXT;
