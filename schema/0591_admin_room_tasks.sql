-- The admin API's background room deletes (v2 DELETE /rooms/{roomId}) and
-- history purges, with their status, so that any process of a deployment
-- answers delete_status and purge_history_status.
CREATE TABLE admin_room_tasks (
    task_id TEXT PRIMARY KEY,
    -- 'delete' or 'purge'
    kind TEXT NOT NULL,
    room_id TEXT NOT NULL,
    -- delete: shutting_down, purging, complete, failed;
    -- purge: active, complete, failed (Synapse's names).
    status TEXT NOT NULL,
    error TEXT,
    -- delete: the shutdown's kicked users, aliases, new room; purge: counts.
    result JSONB NOT NULL DEFAULT '{}',
    -- The database session name of the process running it (NULL: a single
    -- process); a task whose runner is gone is reported failed.
    runner TEXT,
    created_ts BIGINT NOT NULL,
    updated_ts BIGINT NOT NULL
);
CREATE INDEX admin_room_tasks_room ON admin_room_tasks (room_id, created_ts);
-- One delete of a room at a time, whichever process takes the request.
CREATE UNIQUE INDEX admin_room_tasks_one_delete ON admin_room_tasks (room_id)
    WHERE kind = 'delete' AND status IN ('shutting_down', 'purging');
