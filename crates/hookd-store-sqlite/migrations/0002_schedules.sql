-- hookd schema, version 2 (SQLite): schedules, and which schedule occurrence made a delivery.

CREATE TABLE schedules (
    id          TEXT    NOT NULL PRIMARY KEY,
    active      INTEGER NOT NULL,
    webhook_id  TEXT    NOT NULL,
    spec        TEXT    NOT NULL,
    -- The occurrence it fires next (NULL while inactive). Firing moves it on conditionally.
    next_run_at INTEGER,
    last_run_at INTEGER,
    -- Bumped by every write, firings included; updates are conditional on it.
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE active;

ALTER TABLE deliveries ADD COLUMN schedule_id TEXT;
ALTER TABLE deliveries ADD COLUMN occurrence INTEGER;
ALTER TABLE deliveries ADD COLUMN message TEXT;
-- One delivery per scheduled occurrence, whatever races the scheduler loses.
CREATE UNIQUE INDEX deliveries_schedule_occurrence ON deliveries (schedule_id, occurrence)
    WHERE schedule_id IS NOT NULL;
