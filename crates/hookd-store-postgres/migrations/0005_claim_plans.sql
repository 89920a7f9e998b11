-- hookd schema, version 5 (PostgreSQL): the claim's statements keep one plan per connection.
-- Made afresh for each run, the plans of the claim's two statements took longer to make than
-- to run (0.7 to 2.4 ms each time, measured with pg_stat_statements). Every step of them
-- follows an index whatever the values, so they run in functions that keep a generic plan
-- (planned once per connection, and again when the tables' statistics change).
ALTER FUNCTION hookd_claim_deliveries(
    boolean, bigint, bigint, text, bigint, text[], bigint[], bigint, bigint)
    SET plan_cache_mode = force_generic_plan;

-- The claim's candidates (`hookd_core::flow::Candidate`): every webhook with unfinished
-- deliveries in the lane, found by a skip scan (one index step per webhook, whatever the
-- backlog), with its earliest due time, its deliveries under a live lease and its limits
-- (null when the webhook no longer exists). The lane predicates repeat the partial indexes'
-- word for word.
CREATE FUNCTION hookd_claim_candidates(p_first boolean, p_now bigint)
RETURNS TABLE (
    webhook_id text, due_at bigint, in_flight bigint, active boolean, max_in_flight integer,
    rate_limit integer, rate_tat_us bigint, circuit_failures integer,
    circuit_open_until bigint, circuit_opens integer
) LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
BEGIN
    IF p_first THEN
        RETURN QUERY
        WITH RECURSIVE hooks (webhook_id) AS (
            SELECT (SELECT d.webhook_id FROM deliveries AS d WHERE status IN ('pending', 'retrying', 'delivering') AND attempts = 0
                    ORDER BY d.webhook_id LIMIT 1)
            UNION ALL
            SELECT (SELECT d.webhook_id FROM deliveries AS d WHERE status IN ('pending', 'retrying', 'delivering') AND attempts = 0
                      AND d.webhook_id > hooks.webhook_id ORDER BY d.webhook_id LIMIT 1)
            FROM hooks WHERE hooks.webhook_id IS NOT NULL)
        SELECT h.webhook_id,
            (SELECT MIN(d.next_attempt_at) FROM deliveries AS d
             WHERE status IN ('pending', 'retrying', 'delivering') AND attempts = 0 AND d.webhook_id = h.webhook_id),
            (SELECT COUNT(*) FROM deliveries AS l
             WHERE l.status = 'delivering' AND l.webhook_id = h.webhook_id
               AND l.next_attempt_at > p_now),
            w.active, w.max_in_flight, w.rate_limit, w.rate_tat_us, w.circuit_failures,
            w.circuit_open_until, w.circuit_opens
        FROM hooks AS h LEFT JOIN webhooks AS w ON w.id = h.webhook_id
        WHERE h.webhook_id IS NOT NULL;
    ELSE
        RETURN QUERY
        WITH RECURSIVE hooks (webhook_id) AS (
            SELECT (SELECT d.webhook_id FROM deliveries AS d WHERE status IN ('pending', 'retrying', 'delivering') AND attempts > 0
                    ORDER BY d.webhook_id LIMIT 1)
            UNION ALL
            SELECT (SELECT d.webhook_id FROM deliveries AS d WHERE status IN ('pending', 'retrying', 'delivering') AND attempts > 0
                      AND d.webhook_id > hooks.webhook_id ORDER BY d.webhook_id LIMIT 1)
            FROM hooks WHERE hooks.webhook_id IS NOT NULL)
        SELECT h.webhook_id,
            (SELECT MIN(d.next_attempt_at) FROM deliveries AS d
             WHERE status IN ('pending', 'retrying', 'delivering') AND attempts > 0 AND d.webhook_id = h.webhook_id),
            (SELECT COUNT(*) FROM deliveries AS l
             WHERE l.status = 'delivering' AND l.webhook_id = h.webhook_id
               AND l.next_attempt_at > p_now),
            w.active, w.max_in_flight, w.rate_limit, w.rate_tat_us, w.circuit_failures,
            w.circuit_open_until, w.circuit_opens
        FROM hooks AS h LEFT JOIN webhooks AS w ON w.id = h.webhook_id
        WHERE h.webhook_id IS NOT NULL;
    END IF;
END $$;
