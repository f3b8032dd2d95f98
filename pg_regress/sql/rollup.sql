-- Rollups (src/tam/rollup.rs, sql/rollup.sql): per (key, bucket) and per bucket, the
-- count, sum, min, max, first, last and ddsketch of columns, materialized and read
-- through views that add the raw rows not materialized: every answer equals the same
-- aggregate over raw rows, before and after refreshes, late rows, UPDATE, DELETE.
CREATE EXTENSION bidim;
SET timezone = 'UTC';
CREATE TABLE r (id int, ts timestamptz, v float8, w int) USING bidim
    WITH (bidim.partition_interval = '6 hours');
SELECT setseed(0.16);
INSERT INTO r SELECT id, timestamptz '2026-01-01' + m * interval '1 minute' + id * interval '1 second',
                     round((random() * 100)::numeric, 2), m % 7
FROM generate_series(1, 3) id, generate_series(0, 12 * 60 - 1) m;
-- Time bounds from an InitPlan (the views' watermark is one): the scan prunes with the
-- value once the plan runs, and reads every row it must.
SELECT count(*) AS before_6h FROM r WHERE ts < (SELECT timestamptz '2026-01-01 06:00');
SELECT count(*) AS from_6h FROM r WHERE ts >= (SELECT timestamptz '2026-01-01 06:00');
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT count(*) FROM r WHERE ts >= (SELECT timestamptz '2026-01-01 06:00');
SELECT bidim.add_rollup('r', interval '15 minutes');
SELECT rel, view, total_view, bucket, columns, refresh_lag, materialized_until, pending_buckets, job_id IS NOT NULL AS has_job
FROM bidim.rollups;
SELECT kind, rel, rollup_id IS NOT NULL AS has_rollup FROM bidim.jobs ORDER BY job_id;
\d r_15m
-- The oracle: the same aggregates over raw rows.
CREATE VIEW oracle AS
SELECT id, date_bin('15 minutes', ts, '2000-01-03') AS bucket, count(*) AS rows,
       count(v) AS v_count, sum(v) AS v_sum, min(v) AS v_min, max(v) AS v_max,
       first(v, ts) AS v_first, first_time(v, ts) AS v_first_time,
       last(v, ts) AS v_last, last_time(v, ts) AS v_last_time, ddsketch_agg(v) AS v_sketch,
       count(w) AS w_count, sum(w) AS w_sum, ddsketch_agg(w::float8) AS w_sketch
FROM r GROUP BY 1, 2;
CREATE VIEW oracle_total AS
SELECT date_bin('15 minutes', ts, '2000-01-03') AS bucket, count(*) AS rows, count(v) AS v_count, sum(v) AS v_sum,
       min(v) AS v_min, max(v) AS v_max, first(v, ts) AS v_first, last(v, ts) AS v_last, ddsketch_agg(v) AS v_sketch
FROM r GROUP BY 1;
CREATE FUNCTION same_sketch(a ddsketch, b ddsketch) RETURNS bool LANGUAGE sql AS $$
    SELECT (a IS NULL AND b IS NULL) OR (ddsketch_bucket_counts(a) = ddsketch_bucket_counts(b)
        AND ddsketch_bucket_bounds(a) = ddsketch_bucket_bounds(b) AND ddsketch_count(a) = ddsketch_count(b)
        AND ddsketch_min(a) = ddsketch_min(b) AND ddsketch_max(a) = ddsketch_max(b))
$$;
-- (Buckets whose raw rows drop_before dropped are the rollup's alone.)
CREATE VIEW kept AS SELECT u.raw_dropped_before AS horizon FROM bidim.rollup u WHERE u.view = 'r_15m'::regclass;
CREATE VIEW differences AS
SELECT (SELECT count(*) FROM (SELECT * FROM r_15m WHERE bucket >= (SELECT horizon FROM kept)) x
        FULL JOIN (SELECT * FROM oracle WHERE bucket >= (SELECT horizon FROM kept)) o USING (id, bucket)
        WHERE x.rows IS DISTINCT FROM o.rows OR x.v_count IS DISTINCT FROM o.v_count
           OR abs(x.v_sum - o.v_sum) > 1e-9 * abs(o.v_sum) OR (x.v_sum IS NULL) <> (o.v_sum IS NULL)
           OR x.v_min IS DISTINCT FROM o.v_min OR x.v_max IS DISTINCT FROM o.v_max
           OR x.v_first IS DISTINCT FROM o.v_first OR x.v_first_time IS DISTINCT FROM o.v_first_time
           OR x.v_last IS DISTINCT FROM o.v_last OR x.v_last_time IS DISTINCT FROM o.v_last_time
           OR NOT same_sketch(x.v_sketch, o.v_sketch) OR x.w_count IS DISTINCT FROM o.w_count
           OR x.w_sum IS DISTINCT FROM o.w_sum OR NOT same_sketch(x.w_sketch, o.w_sketch)) AS per_key,
       (SELECT count(*) FROM (SELECT * FROM r_15m_total WHERE bucket >= (SELECT horizon FROM kept)) x
        FULL JOIN (SELECT * FROM oracle_total WHERE bucket >= (SELECT horizon FROM kept)) o USING (bucket)
        WHERE x.rows IS DISTINCT FROM o.rows OR x.v_count IS DISTINCT FROM o.v_count
           OR abs(x.v_sum - o.v_sum) > 1e-9 * abs(o.v_sum) OR x.v_min IS DISTINCT FROM o.v_min
           OR x.v_max IS DISTINCT FROM o.v_max OR x.v_first IS DISTINCT FROM o.v_first
           OR x.v_last IS DISTINCT FROM o.v_last OR NOT same_sketch(x.v_sketch, o.v_sketch)) AS total,
       (SELECT count(*) FROM r_15m WHERE bucket >= (SELECT horizon FROM kept)) AS buckets;
-- Nothing materialized yet: the views read raw rows.
SELECT * FROM differences;
CALL bidim.refresh_rollup('r_15m');
SELECT materialized_until > '2026-01-02' AS materialized, pending_buckets, buckets_materialized, rows_rolled_up
FROM bidim.rollups;
SELECT count(*) AS materialized_rows FROM bidim_rollup.r1;
SELECT * FROM differences;
-- Late rows into materialized buckets are logged by the writer's transaction; the views
-- read those buckets raw until the next refresh materializes them again.
INSERT INTO r VALUES (1, '2026-01-01 00:07:30', 1000, 1), (2, '2026-01-01 05:59:59', -5, NULL);
SELECT bucket FROM bidim.rollup_invalid ORDER BY 1;
SELECT pending_buckets FROM bidim.rollups;
SELECT * FROM differences;
SELECT id, bucket, rows, v_max FROM r_15m WHERE bucket = '2026-01-01 00:00' ORDER BY id;
CALL bidim.refresh_rollup('r_15m');
SELECT pending_buckets FROM bidim.rollups;
SELECT * FROM differences;
-- A rolled-back late row leaves nothing behind: its log rolls back with it.
BEGIN;
INSERT INTO r VALUES (3, '2026-01-01 01:00', 7, 7);
ROLLBACK;
SELECT pending_buckets FROM bidim.rollups;
-- UPDATE and DELETE log every bucket of the row's chunk.
UPDATE r SET v = v + 1 WHERE id = 2 AND ts < '2026-01-01 00:30';
SELECT pending_buckets > 0 AS logged FROM bidim.rollups;
SELECT * FROM differences;
CALL bidim.refresh_rollup('r_15m');
SELECT * FROM differences;
DELETE FROM r WHERE id = 3 AND ts >= '2026-01-01 07:00' AND ts < '2026-01-01 07:20';
SELECT * FROM differences;
CALL bidim.refresh_rollup('r_15m');
SELECT pending_buckets FROM bidim.rollups;
SELECT * FROM differences;
-- Sealed and converted chunks: the rows moved back for a change are logged too.
SELECT bidim.seal('r') > 0 AS sealed;
SELECT bidim.convert('r') > 0 AS converted;
UPDATE r SET w = w + 1 WHERE id = 1 AND ts < '2026-01-01 03:00';
SELECT * FROM differences;
CALL bidim.refresh_rollup('r_15m');
SELECT * FROM differences;
-- Rollups of rollups: p99 per series over the whole span, equal to the raw answer.
SELECT id, approx_percentile(rollup(v_sketch), 0.99) = (SELECT approx_percentile(ddsketch_agg(v), 0.99) FROM r WHERE r.id = x.id) AS p99_equal,
       sum(rows) = (SELECT count(*) FROM r WHERE r.id = x.id) AS count_equal
FROM r_15m x GROUP BY id ORDER BY id;
-- Series and time conditions reach the views' raw part; the watermark is a constant
-- the planner sees (shown masked: it depends on when the test runs).
CREATE FUNCTION masked_plan(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
    FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
        RETURN NEXT regexp_replace(l, '''[A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d 20[1-9]\d UTC''', 'WATERMARK', 'g');
    END LOOP;
END $$;
SELECT * FROM masked_plan('SELECT * FROM r_15m WHERE id = 2');

-- drop_before drops raw partitions; the rollup keeps their buckets.
SELECT bidim.drop_before('r', '2026-01-01 06:00');
SELECT count(*) AS raw_rows FROM r WHERE ts < '2026-01-01 06:00';
SELECT count(*) AS kept_buckets, sum(rows) AS kept_rows FROM r_15m WHERE bucket < '2026-01-01 06:00';
SELECT raw_dropped_before FROM bidim.rollup;
SELECT * FROM differences;
-- A change logged in a dropped span cannot be redone from raw rows: the bucket stays.
INSERT INTO bidim.rollup_invalid VALUES (1, '2026-01-01 00:00');
CALL bidim.refresh_rollup('r_15m');
SELECT rows FROM r_15m_total WHERE bucket = '2026-01-01 00:00';

-- Who may do what.
CREATE ROLE rollup_reader;
CREATE ROLE rollup_stranger;
CREATE ROLE rollup_writer;
GRANT SELECT ON r TO rollup_reader;
GRANT INSERT ON r TO rollup_writer;
SELECT bidim.add_rollup('r', interval '1 hour', columns => ARRAY['w'], name => 'r_hourly');
SET ROLE rollup_reader;
SELECT count(*) > 0 AS reads_rollup FROM r_hourly;
SELECT view FROM bidim.rollups ORDER BY rollup_id;
CALL bidim.refresh_rollup('r_hourly');
SELECT bidim.remove_rollup('r_hourly');
SET ROLE rollup_stranger;
SELECT count(*) FROM r_hourly;
SELECT count(*) AS visible_rollups FROM bidim.rollups;
SELECT bidim.add_rollup('r', interval '1 day');
SET ROLE rollup_writer;
-- An INSERT-only writer's late row is logged all the same.
INSERT INTO r VALUES (1, '2026-01-01 07:01', 1, 1);
RESET ROLE;
SELECT count(*) > 0 AS logged FROM bidim.rollup_invalid i JOIN bidim.rollup u USING (rollup_id)
WHERE u.view = 'r_15m'::regclass AND i.bucket = '2026-01-01 07:00';
SELECT * FROM differences;

-- Bad arguments.
SELECT bidim.add_rollup('r', interval '1 month');
SELECT bidim.add_rollup('r', interval '0 seconds');
SELECT bidim.add_rollup('r', interval '1 hour', columns => ARRAY['nope']);
SELECT bidim.add_rollup('r', interval '1 hour', columns => ARRAY['ts']);
SELECT bidim.add_rollup('r', interval '1 hour', columns => ARRAY['v', 'v']);
SELECT bidim.add_rollup('r', interval '15 minutes');
SELECT bidim.add_rollup('r', interval '1 hour', refresh_lag => interval '-1 minute');
CREATE TABLE plain_t (id int, ts timestamptz, v float8);
SELECT bidim.add_rollup('plain_t', interval '1 hour');
CREATE TABLE naive (id int, ts timestamp, v float8) USING bidim;
SELECT bidim.add_rollup('naive', interval '1 hour');
SELECT bidim.remove_rollup('r');
SELECT bidim.remove_rollup('r', if_exists => true);
CALL bidim.refresh_rollup('oracle');

-- Removing a rollup, or its table, takes its views, tables, job and log along.
SELECT bidim.remove_rollup('r_hourly');
SELECT count(*) AS rollups, (SELECT count(*) FROM bidim.job WHERE kind = 'rollup') AS jobs FROM bidim.rollup;
DROP VIEW differences, kept, oracle, oracle_total;
DROP TABLE r CASCADE;
SELECT count(*) AS rollups, (SELECT count(*) FROM bidim.job WHERE kind = 'rollup') AS jobs,
       (SELECT count(*) FROM bidim.rollup_invalid) AS logged,
       (SELECT count(*) FROM pg_class WHERE relnamespace = 'bidim_rollup'::regnamespace) AS relations
FROM bidim.rollup;
DROP TABLE plain_t, naive;
DROP FUNCTION same_sketch;
DROP FUNCTION masked_plan;
DROP ROLE rollup_reader, rollup_stranger, rollup_writer;
DROP EXTENSION bidim;
