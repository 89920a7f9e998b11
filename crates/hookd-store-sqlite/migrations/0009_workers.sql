-- hookd schema, version 9: the worker processes alive, each with the last time it said so.
-- Workers share the webhooks out among those alive (`hookd_core::share`), so that two workers
-- do not both claim every webhook's deliveries; a worker not seen for a while is forgotten.
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
