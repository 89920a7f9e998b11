-- hookd schema, version 1 (SQLite).
-- Timestamps are epoch milliseconds (INTEGER). JSON documents are TEXT. Ids are prefixed,
-- time-sortable strings, so `ORDER BY id` is creation order.

CREATE TABLE api_tokens (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    hash       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE webhooks (
    id              TEXT    NOT NULL PRIMARY KEY,
    active          INTEGER NOT NULL,
    disabled_reason TEXT,
    failing_since   INTEGER,
    spec            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- One row, bumped in the transaction of every write that changes a webhook's configuration or
-- `active`, so processes can cache the active webhooks and notice changes made by others.
CREATE TABLE webhooks_version (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO webhooks_version (id, version) VALUES (1, 0);

CREATE TABLE events (
    id              TEXT    NOT NULL PRIMARY KEY,
    event_type      TEXT    NOT NULL,
    model           TEXT,
    data            TEXT    NOT NULL,
    occurred_at     INTEGER NOT NULL,
    idempotency_key TEXT    UNIQUE,
    created_at      INTEGER NOT NULL
);
CREATE INDEX events_created_at ON events (created_at);

CREATE TABLE deliveries (
    id               TEXT    NOT NULL PRIMARY KEY,
    event_id         TEXT    NOT NULL,
    webhook_id       TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER,
    entry_index      INTEGER,
    lease_token      TEXT,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
-- The claim, one index per lane, so a backlog of due retries never slows first-attempt claims.
-- Queries repeat these predicates word for word so the planner can use them.
CREATE INDEX deliveries_due_first ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'retrying', 'delivering') AND attempts = 0;
CREATE INDEX deliveries_due_retry ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'retrying', 'delivering') AND attempts > 0;
-- Listing, newest first, by webhook, event or status.
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_event ON deliveries (event_id, id);
CREATE INDEX deliveries_status ON deliveries (status, id);
-- Retention: finished deliveries by age.
CREATE INDEX deliveries_finished ON deliveries (created_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');

CREATE TABLE attempts (
    id          TEXT    NOT NULL PRIMARY KEY,
    delivery_id TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    record      TEXT    NOT NULL
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, started_at);
