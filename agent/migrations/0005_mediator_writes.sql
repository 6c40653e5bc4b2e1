-- 0005_mediator_writes: the mediator's batches stop taking turns on one hot row and write fewer
-- rows (agent/src/postgres/mediator.rs).

-- The totals are kept in 16 rows (shards) whose sums are the totals: each batch or
-- acknowledgement adds to one shard, so batches of different agents no longer wait on one row.
-- The store-wide byte cap is checked against the sums read without a lock, so it holds to
-- within the batches committing at that instant.
ALTER TABLE mediator_usage DROP CONSTRAINT mediator_usage_id_check;
ALTER TABLE mediator_usage ADD CONSTRAINT mediator_usage_shard CHECK (id BETWEEN 1 AND 16);
INSERT INTO mediator_usage (id, count, bytes, forwards)
    SELECT shard, 0, 0, 0 FROM generate_series(2, 16) AS shard;

-- A batch takes one range of seqs (one nextval) and numbers its messages within it.
ALTER SEQUENCE mediator_queue_seq INCREMENT BY 1024;

-- Envelopes up to a page's room stay in the queue row itself: out of line, a 5 KB envelope
-- became three TOAST rows and three TOAST index entries.
ALTER TABLE mediator_queue SET (toast_tuple_target = 8160);
