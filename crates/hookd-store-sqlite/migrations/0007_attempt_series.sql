-- hookd schema, version 7 (SQLite): attempts over time (the delivery dashboard).
-- What the series counts is copied out of `record` into columns, filled on insert: the
-- webhook, whether the endpoint answered 2xx, and the latency (NULL when nothing was sent).
ALTER TABLE attempts ADD COLUMN webhook_id TEXT;
ALTER TABLE attempts ADD COLUMN succeeded INTEGER;
ALTER TABLE attempts ADD COLUMN latency_ms INTEGER;
UPDATE attempts SET
    webhook_id = json_extract(record, '$.webhook_id'),
    succeeded = CASE WHEN json_extract(record, '$.response.status') BETWEEN 200 AND 299
                     THEN 1 ELSE 0 END,
    latency_ms = CASE WHEN json_extract(record, '$.error_kind')
                           IN ('invalid_payload', 'webhook_disabled', 'gone')
                      THEN NULL ELSE json_extract(record, '$.duration_ms') END;
-- A window's attempts, of all webhooks or of one: one range scan of the window that covers the
-- series' statement (one webhook's are picked out of the window's entries). One index, not one
-- per question: every attempt written pays for each, and SQLite has one writer.
CREATE INDEX attempts_started ON attempts (started_at, webhook_id, succeeded, latency_ms);
