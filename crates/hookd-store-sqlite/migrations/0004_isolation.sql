-- hookd schema, version 4 (SQLite): per-webhook flow control (SPEC §7, "Isolation").
-- The limits users set are copied out of `spec` into columns the claim reads; the rate
-- limiter's and the circuit breaker's state live beside them, written by claims and outcomes.
ALTER TABLE webhooks ADD COLUMN max_in_flight INTEGER;
ALTER TABLE webhooks ADD COLUMN rate_limit INTEGER;
ALTER TABLE webhooks ADD COLUMN rate_tat_us INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN circuit_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN circuit_open_until INTEGER;
ALTER TABLE webhooks ADD COLUMN circuit_opens INTEGER NOT NULL DEFAULT 0;

-- The claim walks each webhook's queue apart (fair claims), so the lane indexes lead with the
-- webhook. Queries repeat these predicates word for word so the planner can use them.
DROP INDEX deliveries_due_first;
DROP INDEX deliveries_due_retry;
CREATE INDEX deliveries_queue_first ON deliveries (webhook_id, next_attempt_at, id)
    WHERE status IN ('pending', 'retrying', 'delivering') AND attempts = 0;
CREATE INDEX deliveries_queue_retry ON deliveries (webhook_id, next_attempt_at, id)
    WHERE status IN ('pending', 'retrying', 'delivering') AND attempts > 0;
-- A webhook's requests in flight: its deliveries under a lease that has not run out.
CREATE INDEX deliveries_leased ON deliveries (webhook_id, next_attempt_at)
    WHERE status = 'delivering';
