-- hookd schema, version 10 (PostgreSQL): a publish in one statement, and outcomes in a statement
-- that keeps its plan.
--
-- The claim's room per webhook was a call of the SQL function hookd_claim_room with a subquery
-- for an argument used twice, which PostgreSQL does not inline: each claim planned and ran the
-- function apart (about 0.15 ms of a 0.4 ms claim, measured with pgbench). With the count in a
-- lateral subquery of its own, the call is inlined into the claim's plan.

-- What each webhook `p_ids[i]` may take now of `p_counts[i]` planned deliveries: its room
-- (hookd_claim_room) given its deliveries under a live lease, read by the caller under the
-- claim lock. A single SELECT, so PostgreSQL inlines it into the caller's plan.
CREATE FUNCTION hookd_claim_grants(
    p_ids text[], p_counts bigint[], p_now bigint, p_default_cap bigint, p_tolerance_us bigint
) RETURNS TABLE (webhook_id text, n bigint) LANGUAGE sql STABLE AS $$
    SELECT g.webhook_id,
        hookd_claim_room(g.n, w, p_now, p_default_cap, p_tolerance_us, f.in_flight)
    FROM UNNEST(p_ids, p_counts) AS g (webhook_id, n)
    LEFT JOIN webhooks AS w ON w.id = g.webhook_id
    CROSS JOIN LATERAL (
        SELECT COUNT(*) AS in_flight FROM deliveries AS l
        WHERE l.status = 'delivering' AND l.webhook_id = g.webhook_id
          AND l.next_attempt_at > p_now) AS f
$$;

CREATE OR REPLACE FUNCTION hookd_claim_deliveries(
    p_first boolean, p_now bigint, p_lease_until bigint, p_token text, p_limit bigint,
    p_ids text[], p_counts bigint[], p_default_cap bigint, p_tolerance_us bigint
) RETURNS SETOF deliveries LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('hookd_claim:' || current_schema()));
    IF p_first THEN
        RETURN QUERY
        WITH grants AS (
            SELECT * FROM hookd_claim_grants(p_ids, p_counts, p_now, p_default_cap,
                p_tolerance_us)),
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
            SELECT * FROM hookd_claim_grants(p_ids, p_counts, p_now, p_default_cap,
                p_tolerance_us)),
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

-- A publish (SPEC §7): its events, their deliveries, the claim of first attempts for the
-- publisher's own worker and the wake-up of the other workers, in one call and so in one
-- round trip and one transaction (a statement outside a transaction is one), where it took
-- seven. The events are inserted in the order given (the caller orders them by idempotency
-- key, so two publishes sharing keys wait for each other in one order); an event whose key is
-- taken is skipped with its deliveries, and the event holding the key is returned as a
-- `duplicate` row. With `p_token`, the
-- deliveries of `p_grant_ids` are claimed under the claim lock, within each webhook's limits
-- (hookd_claim_room), oldest first: with `p_insert_leased` and none of those webhooks having
-- older first attempts due, by inserting the new deliveries already leased (one write a
-- delivery fewer, the lock held across the insert), otherwise by hookd_claim_deliveries after
-- the insert. They are returned as `claimed` rows with their
-- webhook's state read under the lock (its limit columns null when the webhook is gone), due
-- now, with the deliveries the claim took of it in flight.
-- Webhooks left with pending first attempts are named in one notification
-- (`first:<id>,<id>`, or `first` when longer than `p_max_named`), sent at commit.
CREATE FUNCTION hookd_publish(
    p_now bigint, p_channel text, p_max_named integer,
    p_event_ids text[], p_types text[], p_models text[], p_data text[], p_occurred bigint[],
    p_keys text[],
    p_ids text[], p_events text[], p_webhooks text[], p_statuses text[], p_due bigint[],
    p_entries integer[], p_leases text[],
    p_token text, p_lease_until bigint, p_limit bigint, p_grant_ids text[],
    p_grant_counts bigint[], p_default_cap bigint, p_tolerance_us bigint,
    p_insert_leased boolean
) RETURNS TABLE (
    kind text, id text, event_id text, webhook_id text, status text, attempts integer,
    next_attempt_at bigint, entry_index integer, last_status_code integer, last_error text,
    schedule_id text, occurrence bigint, message text, created_at bigint, updated_at bigint,
    active boolean, max_in_flight integer, rate_limit integer, rate_tat_us bigint,
    circuit_failures integer, circuit_open_until bigint, circuit_opens integer,
    due_at bigint, in_flight bigint, event_type text, model text, data text,
    occurred_at bigint, idempotency_key text
) LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
#variable_conflict use_column
DECLARE
    v_inserted text[];
    v_all boolean;
    v_claim boolean;
    v_backlog boolean := false;
    v_lease text[] := '{}';
    v_claimed deliveries[] := '{}';
    v_left text;
BEGIN
    WITH stored AS (
        INSERT INTO events (id, event_type, model, data, occurred_at, idempotency_key, created_at)
        SELECT e.id, e.event_type, e.model, e.data, e.occurred_at, e.idempotency_key, p_now
        FROM UNNEST(p_event_ids, p_types, p_models, p_data, p_occurred, p_keys)
            WITH ORDINALITY AS e (id, event_type, model, data, occurred_at, idempotency_key, n)
        ORDER BY e.n
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING events.id)
    SELECT COALESCE(array_agg(stored.id), '{}') INTO v_inserted FROM stored;

    v_all := cardinality(v_inserted) = cardinality(p_event_ids);

    -- The event holding each key taken (committed: the insert waited for it, or this call's).
    RETURN QUERY
    SELECT DISTINCT ON (h.id) 'duplicate', h.id, NULL, NULL, NULL, NULL::integer, NULL::bigint,
        NULL::integer, NULL::integer, NULL, NULL, NULL::bigint, NULL, h.created_at,
        NULL::bigint, NULL::boolean, NULL::integer, NULL::integer, NULL::bigint, NULL::integer,
        NULL::bigint, NULL::integer, NULL::bigint, NULL::bigint, h.event_type, h.model, h.data,
        h.occurred_at, h.idempotency_key
    FROM UNNEST(p_event_ids, p_keys) AS e (id, idempotency_key)
    CROSS JOIN LATERAL (
        SELECT * FROM events AS x WHERE x.idempotency_key = e.idempotency_key) AS h
    WHERE NOT v_all AND NOT e.id = ANY (v_inserted);


    v_claim := p_token IS NOT NULL AND COALESCE(cardinality(p_grant_ids), 0) > 0;
    IF v_claim AND p_insert_leased THEN
        PERFORM pg_advisory_xact_lock(hashtext('hookd_claim:' || current_schema()));
        -- Older first attempts due for one of the webhooks go first (seen under the lock, so
        -- none another publish left waiting is passed over): the claim after the insert
        -- takes them.
        SELECT EXISTS (
            SELECT 1 FROM UNNEST(p_grant_ids) AS g (webhook_id)
            WHERE EXISTS (
                SELECT 1 FROM deliveries AS q
                WHERE q.status IN ('pending', 'retrying', 'delivering') AND q.attempts = 0
                  AND q.webhook_id = g.webhook_id AND q.next_attempt_at <= p_now))
        INTO v_backlog;
        IF NOT v_backlog THEN
            -- Otherwise the new deliveries are leased as they are inserted: up to each
            -- webhook's room now, round-robin across webhooks, at most p_limit in all.
            v_claim := false;
            WITH room AS (
                SELECT * FROM hookd_claim_grants(p_grant_ids, p_grant_counts, p_now,
                    p_default_cap, p_tolerance_us)),
            ranked AS (
                SELECT d.id, d.n AS pos, room.n AS room,
                    row_number() OVER (PARTITION BY d.webhook_id ORDER BY d.n) AS k
                FROM UNNEST(p_ids, p_events, p_webhooks, p_statuses, p_due)
                    WITH ORDINALITY AS d (id, event_id, webhook_id, status, next_attempt_at, n)
                JOIN room ON room.webhook_id = d.webhook_id
                WHERE d.status = 'pending' AND d.next_attempt_at <= p_now
                  AND (v_all OR d.event_id = ANY (v_inserted)))
            SELECT COALESCE(array_agg(r.id), '{}') INTO v_lease
            FROM (SELECT ranked.id FROM ranked WHERE ranked.k <= ranked.room
                  ORDER BY ranked.k, ranked.pos LIMIT p_limit) AS r;
        END IF;
    END IF;

    -- The rows leased here are read back from the insert itself (a lookup by id would be
    -- planned once, while the table may still be small).
    WITH inserted AS (
        INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, next_attempt_at,
            entry_index, lease_token, created_at, updated_at)
        SELECT d.id, d.event_id, d.webhook_id,
            CASE WHEN d.id = ANY (v_lease) THEN 'delivering' ELSE d.status END, 0,
            CASE WHEN d.id = ANY (v_lease) THEN p_lease_until ELSE d.next_attempt_at END,
            d.entry_index,
            CASE WHEN d.id = ANY (v_lease) THEN p_token ELSE d.lease_token END, p_now, p_now
        FROM UNNEST(p_ids, p_events, p_webhooks, p_statuses, p_due, p_entries, p_leases)
            AS d (id, event_id, webhook_id, status, next_attempt_at, entry_index, lease_token)
        WHERE (v_all OR d.event_id = ANY (v_inserted))
        RETURNING deliveries.*)
    SELECT COALESCE(array_agg(ROW(inserted.*)::deliveries)
        FILTER (WHERE inserted.id = ANY (v_lease)), '{}')
    INTO v_claimed FROM inserted;

    IF v_claim THEN
        SELECT COALESCE(array_agg(c), '{}') INTO v_claimed
        FROM hookd_claim_deliveries(true, p_now, p_lease_until, p_token, p_limit, p_grant_ids,
            p_grant_counts, p_default_cap, p_tolerance_us) AS c;
    ELSIF cardinality(v_lease) > 0 THEN
        -- The rate limiters move on as hookd_claim_deliveries moves them (its `rates`).
        UPDATE webhooks AS w
        SET rate_tat_us = GREATEST(w.rate_tat_us, p_now * 1000)
            + (1000000 + w.rate_limit - 1) / w.rate_limit * c.taken
        FROM (SELECT d.webhook_id, COUNT(*) AS taken
              FROM UNNEST(p_ids, p_webhooks) AS d (id, webhook_id)
              WHERE d.id = ANY (v_lease) GROUP BY d.webhook_id) AS c
        WHERE w.id = c.webhook_id AND w.rate_limit IS NOT NULL AND w.active;
    END IF;

    IF cardinality(v_claimed) > 0 THEN
        RETURN QUERY
        SELECT 'claimed', c.id, c.event_id, c.webhook_id, c.status, c.attempts,
            c.next_attempt_at, c.entry_index, c.last_status_code, c.last_error, c.schedule_id,
            c.occurrence, c.message, c.created_at, c.updated_at, w.active, w.max_in_flight,
            w.rate_limit, w.rate_tat_us, w.circuit_failures, w.circuit_open_until,
            w.circuit_opens, p_now, COUNT(*) OVER (PARTITION BY c.webhook_id), NULL, NULL, NULL,
            NULL::bigint, NULL
        FROM UNNEST(v_claimed) AS c LEFT JOIN webhooks AS w ON w.id = c.webhook_id;
    END IF;

    SELECT string_agg(DISTINCT d.webhook_id, ',') INTO v_left
    FROM UNNEST(p_ids, p_events, p_webhooks, p_statuses)
        AS d (id, event_id, webhook_id, status)
    WHERE d.status = 'pending' AND (v_all OR d.event_id = ANY (v_inserted))
      AND NOT d.id = ANY (SELECT c.id FROM UNNEST(v_claimed) AS c);
    IF v_left IS NOT NULL THEN
        PERFORM pg_notify(p_channel, CASE
            WHEN length('first:' || v_left) > p_max_named THEN 'first'
            ELSE 'first:' || v_left END);
    END IF;
END $$;

-- A batch of outcomes' rows (`hookd-store-postgres/src/outcomes.rs`): the failure clocks of the
-- webhooks that answered stop (their rows locked in id order first), every attempt is inserted
-- (an attempt inserted twice, a batch retried after an unclear commit, is a no-op), and every
-- delivery still under the lease that sent its attempt moves on. As a statement of its own it
-- was planned at every run (a plan kept from while the tables were small could scan them
-- whole): parsing and planning it took about a third of PostgreSQL's instructions per event at
-- low rates (callgrind). Here its plan is made once per connection, and the settings below
-- make that plan the nested loop over the arrays with an index lookup per row, which it is
-- whatever the tables held when it was made.
CREATE FUNCTION hookd_record_rows(
    p_ids text[], p_tokens text[], p_statuses text[], p_attempts integer[],
    p_next bigint[], p_codes integer[], p_errors text[], p_now bigint[],
    p_healthy text[],
    p_attempt_ids text[], p_attempt_deliveries text[], p_started bigint[], p_records text[],
    p_webhooks text[], p_succeeded integer[], p_latencies bigint[]
) RETURNS void LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
    WITH locked AS (
        SELECT w.id FROM webhooks AS w
        WHERE w.id = ANY (p_healthy) AND w.failing_since IS NOT NULL
        ORDER BY w.id FOR UPDATE),
    cleared AS (
        UPDATE webhooks AS w SET failing_since = NULL FROM locked WHERE w.id = locked.id),
    inserted AS (
        INSERT INTO attempts (id, delivery_id, started_at, record, webhook_id, succeeded,
            latency_ms)
        SELECT * FROM UNNEST(p_attempt_ids, p_attempt_deliveries, p_started, p_records,
            p_webhooks, p_succeeded, p_latencies)
        ON CONFLICT (id) DO NOTHING)
    UPDATE deliveries AS d
    SET status = u.status, attempts = u.attempts, next_attempt_at = u.next_attempt_at,
        last_status_code = u.status_code, last_error = u.error, lease_token = NULL,
        updated_at = u.now_ms
    FROM UNNEST(p_ids, p_tokens, p_statuses, p_attempts, p_next, p_codes, p_errors, p_now)
        AS u (id, lease_token, status, attempts, next_attempt_at, status_code, error, now_ms)
    WHERE d.id = u.id AND d.lease_token = u.lease_token;
END $$;
