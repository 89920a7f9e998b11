-- hookd schema, version 5 (SQLite): the bounded public intake and schedule errors.
-- A hook's unfinished executions, counted (up to its cap) before an async call is stored.
-- Queries repeat this predicate word for word so the planner can use it.
CREATE INDEX executions_unfinished ON executions (hook_id)
    WHERE status IN ('queued', 'running');
-- Why the schedule's last firing could not render its message (NULL when it could).
ALTER TABLE schedules ADD COLUMN last_error TEXT;
