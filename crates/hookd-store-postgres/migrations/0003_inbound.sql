-- hookd schema, version 3 (PostgreSQL): inbound hooks and their executions.

CREATE TABLE inbound_hooks (
    id         TEXT    NOT NULL PRIMARY KEY,
    -- The unguessable part of the public URL, /hooks/{key}.
    key        TEXT    NOT NULL UNIQUE,
    -- JSON of the InboundSpec, verification secrets included, as is.
    spec       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    -- Updates are conditional on it.
    updated_at BIGINT  NOT NULL
);

CREATE TABLE executions (
    id              TEXT    NOT NULL PRIMARY KEY,
    -- No foreign key: executions outlive a deleted hook until retention.
    hook_id         TEXT    NOT NULL,
    mode            TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    -- JSON of the ExecutionRecord.
    record          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    -- Queued: when it is due; running: when the lease ends; NULL once final.
    next_attempt_at BIGINT,
    lease_token     TEXT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
-- Listing a hook's executions, newest first.
CREATE INDEX executions_hook ON executions (hook_id, id);
-- The claim; queries repeat this predicate word for word so the planner can use it.
CREATE INDEX executions_due ON executions (next_attempt_at)
    WHERE status IN ('queued', 'running');
-- Retention: finished executions by age.
CREATE INDEX executions_finished ON executions (created_at)
    WHERE status IN ('succeeded', 'failed', 'timed_out', 'rejected');
