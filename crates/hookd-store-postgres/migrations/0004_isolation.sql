-- hookd schema, version 4 (PostgreSQL): per-webhook flow control (SPEC §7, "Isolation").
-- The limits users set are copied out of `spec` into columns the claim reads; the rate
-- limiter's and the circuit breaker's state live beside them, written by claims and outcomes.
ALTER TABLE webhooks ADD COLUMN max_in_flight INTEGER;
ALTER TABLE webhooks ADD COLUMN rate_limit INTEGER;
ALTER TABLE webhooks ADD COLUMN rate_tat_us BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN circuit_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN circuit_open_until BIGINT;
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

-- A claim in one statement (SPEC §7 "Isolation"): under a transaction-scoped advisory lock, so
-- claims on this installation take turns, it leases up to p_counts[i] of webhook p_ids[i]'s
-- oldest due deliveries in the lane, round-robin across webhooks, at most p_limit in all. The
-- counts come from a plan made without the lock; each is cut here to what the webhook's
-- in-flight cap, circuit and rate limiter allow now, with the state read after the lock (every
-- statement of a volatile function sees a fresh snapshot). The rate limiters of the webhooks
-- it took from move on. The lane predicates repeat the partial indexes' word for word.
CREATE FUNCTION hookd_claim_deliveries(
    p_first boolean, p_now bigint, p_lease_until bigint, p_token text, p_limit bigint,
    p_ids text[], p_counts bigint[], p_default_cap bigint, p_tolerance_us bigint
) RETURNS SETOF deliveries LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('hookd_claim:' || current_schema()));
    IF p_first THEN
        RETURN QUERY
        WITH grants AS (
            SELECT g.webhook_id, hookd_claim_room(g.n, w, p_now, p_default_cap, p_tolerance_us, (
                SELECT COUNT(*) FROM deliveries AS l
                WHERE l.status = 'delivering' AND l.webhook_id = g.webhook_id
                  AND l.next_attempt_at > p_now)) AS n
            FROM UNNEST(p_ids, p_counts) AS g (webhook_id, n)
            LEFT JOIN webhooks AS w ON w.id = g.webhook_id),
        picked AS (
            SELECT q.id FROM (
                SELECT d.id, d.next_attempt_at, row_number() OVER (
                    PARTITION BY g.webhook_id ORDER BY d.next_attempt_at, d.id) AS k
                FROM grants AS g CROSS JOIN LATERAL (
                    SELECT id, next_attempt_at FROM deliveries
                    WHERE status IN ('pending', 'retrying', 'delivering') AND attempts = 0
                      AND webhook_id = g.webhook_id AND next_attempt_at <= p_now
                    ORDER BY next_attempt_at, id LIMIT GREATEST(g.n, 0)
                    FOR UPDATE SKIP LOCKED) AS d) AS q
            ORDER BY q.k, q.next_attempt_at, q.id LIMIT p_limit),
        claimed AS (
            UPDATE deliveries AS d
            SET status = 'delivering', next_attempt_at = p_lease_until, lease_token = p_token,
                updated_at = p_now
            FROM picked WHERE d.id = picked.id
            RETURNING d.*),
        rates AS (
            UPDATE webhooks AS w
            SET rate_tat_us = GREATEST(w.rate_tat_us, p_now * 1000)
                + (1000000 + w.rate_limit - 1) / w.rate_limit * c.taken
            FROM (SELECT webhook_id, COUNT(*) AS taken FROM claimed GROUP BY webhook_id) AS c
            WHERE w.id = c.webhook_id AND w.rate_limit IS NOT NULL AND w.active)
        SELECT * FROM claimed;
    ELSE
        RETURN QUERY
        WITH grants AS (
            SELECT g.webhook_id, hookd_claim_room(g.n, w, p_now, p_default_cap, p_tolerance_us, (
                SELECT COUNT(*) FROM deliveries AS l
                WHERE l.status = 'delivering' AND l.webhook_id = g.webhook_id
                  AND l.next_attempt_at > p_now)) AS n
            FROM UNNEST(p_ids, p_counts) AS g (webhook_id, n)
            LEFT JOIN webhooks AS w ON w.id = g.webhook_id),
        picked AS (
            SELECT q.id FROM (
                SELECT d.id, d.next_attempt_at, row_number() OVER (
                    PARTITION BY g.webhook_id ORDER BY d.next_attempt_at, d.id) AS k
                FROM grants AS g CROSS JOIN LATERAL (
                    SELECT id, next_attempt_at FROM deliveries
                    WHERE status IN ('pending', 'retrying', 'delivering') AND attempts > 0
                      AND webhook_id = g.webhook_id AND next_attempt_at <= p_now
                    ORDER BY next_attempt_at, id LIMIT GREATEST(g.n, 0)
                    FOR UPDATE SKIP LOCKED) AS d) AS q
            ORDER BY q.k, q.next_attempt_at, q.id LIMIT p_limit),
        claimed AS (
            UPDATE deliveries AS d
            SET status = 'delivering', next_attempt_at = p_lease_until, lease_token = p_token,
                updated_at = p_now
            FROM picked WHERE d.id = picked.id
            RETURNING d.*),
        rates AS (
            UPDATE webhooks AS w
            SET rate_tat_us = GREATEST(w.rate_tat_us, p_now * 1000)
                + (1000000 + w.rate_limit - 1) / w.rate_limit * c.taken
            FROM (SELECT webhook_id, COUNT(*) AS taken FROM claimed GROUP BY webhook_id) AS c
            WHERE w.id = c.webhook_id AND w.rate_limit IS NOT NULL AND w.active)
        SELECT * FROM claimed;
    END IF;
END $$;

-- How many of `n` planned deliveries webhook `w` may take now, given `in_flight` (the same rules
-- as hookd_core::flow::plan): a missing or disabled webhook has no limits; otherwise its cap,
-- its circuit (none while open, one probe when half open) and its rate (GCRA) bound it.
CREATE FUNCTION hookd_claim_room(
    n bigint, w webhooks, p_now bigint, p_default_cap bigint, p_tolerance_us bigint,
    in_flight bigint
) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN w.id IS NULL OR NOT w.active THEN n
        ELSE LEAST(
            n,
            COALESCE(w.max_in_flight, p_default_cap) - in_flight,
            CASE
                WHEN w.circuit_open_until IS NULL THEN n
                WHEN w.circuit_open_until > p_now THEN 0
                ELSE 1 - in_flight
            END,
            CASE
                WHEN w.rate_limit IS NULL THEN n
                WHEN w.rate_tat_us > p_now * 1000 + p_tolerance_us THEN 0
                ELSE (p_now * 1000 + p_tolerance_us - GREATEST(w.rate_tat_us, p_now * 1000))
                    / ((1000000 + w.rate_limit - 1) / w.rate_limit) + 1
            END)
    END
$$;
