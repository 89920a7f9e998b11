-- hookd schema, version 8 (SQLite): the queue and retention indexes' conditions as equalities.
-- SQLite checks a partial index's WHERE for every row it writes, and evaluates an IN list of
-- more than two constants through a temporary b-tree it builds each time: three such indexes
-- on `deliveries` made every insert build three and every claim or outcome up to ten. The
-- same conditions written as ORs of equalities are a few comparisons. Queries repeat these
-- predicates word for word so the planner can use them.
DROP INDEX deliveries_queue_first;
CREATE INDEX deliveries_queue_first ON deliveries (webhook_id, next_attempt_at, id)
    WHERE (status = 'pending' OR status = 'retrying' OR status = 'delivering') AND attempts = 0;
DROP INDEX deliveries_queue_retry;
CREATE INDEX deliveries_queue_retry ON deliveries (webhook_id, next_attempt_at, id)
    WHERE (status = 'pending' OR status = 'retrying' OR status = 'delivering') AND attempts > 0;
DROP INDEX deliveries_finished;
CREATE INDEX deliveries_finished ON deliveries (created_at)
    WHERE status = 'succeeded' OR status = 'failed' OR status = 'cancelled';
DROP INDEX executions_finished;
CREATE INDEX executions_finished ON executions (created_at)
    WHERE status = 'succeeded' OR status = 'failed' OR status = 'timed_out'
        OR status = 'rejected';
