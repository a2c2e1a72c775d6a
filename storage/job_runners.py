"""Which process runs an admin job, for the jobs' tables (`runner` columns).

A job row names the database session name (`application_name`) of the
process running it; in a deployment every process's sessions carry its
unique name (homeserver/cluster/wiring.py `session_name`), and PostgreSQL
ends them when the process dies. So "its runner has no session" is "its
process is gone", seen the same way from every process, without a
heartbeat of its own.
"""

from __future__ import annotations

# SQL condition on a row with a `runner` column: a named runner with no
# session on this database any more.
RUNNER_GONE = """(runner IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = runner))"""


def left_over(param: str) -> str:
    """SQL condition: a job a starting process may take over, its own from an
    earlier run, an unnamed one, or one whose runner is gone (`param` is the
    placeholder of the starting process's name, e.g. "$1")."""
    return f"(runner IS NULL OR runner = {param} OR {RUNNER_GONE})"
