-- hookd schema, version 8 (PostgreSQL): attempts over time (the delivery dashboard).
-- What the series counts is copied out of `record` into columns, filled on insert: the
-- webhook, whether the endpoint answered 2xx, and the latency (NULL when nothing was sent).
ALTER TABLE attempts ADD COLUMN webhook_id TEXT;
ALTER TABLE attempts ADD COLUMN succeeded INTEGER;
ALTER TABLE attempts ADD COLUMN latency_ms BIGINT;
UPDATE attempts SET
    webhook_id = record::jsonb ->> 'webhook_id',
    succeeded = CASE WHEN (record::jsonb #>> '{response,status}')::integer BETWEEN 200 AND 299
                     THEN 1 ELSE 0 END,
    latency_ms = CASE WHEN record::jsonb ->> 'error_kind'
                           IN ('invalid_payload', 'webhook_disabled', 'gone')
                      THEN NULL ELSE (record::jsonb ->> 'duration_ms')::bigint END;
-- A window's attempts, of all webhooks or of one: range scans that cover the series' statement.
CREATE INDEX attempts_started ON attempts (started_at, succeeded, latency_ms);
CREATE INDEX attempts_webhook_started ON attempts (webhook_id, started_at, succeeded, latency_ms);
