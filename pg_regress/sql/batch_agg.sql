-- BidimAgg: aggregates over tables with cold chunks computed inside the scan, as
-- partial states a Finalize Aggregate combines. Every answer is compared with a heap
-- table holding the same rows.
CREATE EXTENSION bidim;
SET timezone = 'UTC';
CREATE TABLE m (series_id bigint, ts timestamptz NOT NULL, v float8, w float8, n int, s smallint,
                d date, note text) USING bidim;
SELECT bidim.configure('m', hot_chunk_rows => 400, partition_interval => '6 hours');
-- values that are multiples of 1/4 (float sums are exact in any order), with NaN,
-- -0, infinities and NULLs
INSERT INTO m
SELECT g % 17, timestamptz '2026-01-01' + g * interval '53 seconds',
       CASE g % 61 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN '-0'::float8 WHEN 2 THEN NULL
                   WHEN 3 THEN 'Infinity'::float8 ELSE (g % 997) * 0.25 END,
       (g % 89) * 0.5,
       CASE WHEN g % 13 = 0 THEN NULL ELSE (g * 31) % 5000 - 2500 END,
       (g % 300)::smallint,
       date '2026-01-01' + g % 9,
       CASE WHEN g % 3 = 0 THEN 'x' END
FROM generate_series(1, 6000) g;
SELECT bidim.seal('m');
SELECT bidim.convert('m', older_than => '2026-01-03');
-- hot rows too
INSERT INTO m
SELECT g % 17, timestamptz '2026-01-01' + g * interval '53 seconds', (g % 997) * 0.25,
       (g % 89) * 0.5, g, 1, date '2026-01-04', NULL
FROM generate_series(6001, 6500) g;
SELECT state, count(*) AS chunks FROM bidim.chunks WHERE rel = 'm'::regclass GROUP BY state ORDER BY state;
CREATE TABLE h AS SELECT * FROM m;
ANALYZE m, h;

-- rows of query q (with {t} for the table) on m but not on h, and the other way
CREATE FUNCTION differ(q text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE r bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM (((%s) EXCEPT ALL (%s)) UNION ALL ((%s) EXCEPT ALL (%s))) x',
                   replace(q, '{t}', 'm'), replace(q, '{t}', 'h'),
                   replace(q, '{t}', 'h'), replace(q, '{t}', 'm')) INTO r;
    RETURN r;
END $$;
-- the lines of EXPLAIN ANALYZE that do not depend on timing or memory
CREATE FUNCTION plan_of(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
        IF line !~ 'Memory|Batches:|Planned Partitions|Disk' THEN
            RETURN NEXT line;
        END IF;
    END LOOP;
END $$;

-- The whole table: every aggregate BidimAgg computes.
EXPLAIN (COSTS OFF, VERBOSE)
SELECT count(*), count(v), sum(v), avg(v), max(v), min(v), count(n), sum(n), avg(n), max(n),
       min(n), sum(s), avg(s), max(ts), min(d), approx_percentile(ddsketch_agg(w), 0.5) FROM m;
SELECT differ($$SELECT count(*), count(v), sum(v), avg(v), max(v), min(v), count(n), sum(n),
       avg(n), max(n), min(n), sum(s), avg(s), max(ts), min(d),
       approx_percentile(ddsketch_agg(w), 0.5) FROM {t}$$);
SELECT count(*), count(v), sum(v), avg(v), max(v), min(v), sum(n), avg(n), max(ts), min(d) FROM m;

-- Grouped by the key, by time buckets, by both, by a date; with time bounds, keys,
-- other conditions and HAVING.
SELECT * FROM plan_of($$SELECT series_id, date_trunc('hour', ts), count(*), avg(w), max(v)
    FROM m WHERE ts >= '2026-01-02 03:00' AND ts < '2026-01-03 05:00' GROUP BY 1, 2$$);
SELECT differ($$SELECT series_id, date_trunc('hour', ts), count(*), avg(w), max(v), sum(n)
    FROM {t} WHERE ts >= '2026-01-02 03:00' AND ts < '2026-01-03 05:00' GROUP BY 1, 2$$);
SELECT differ($$SELECT series_id, count(*), avg(v), min(n) FROM {t} GROUP BY 1$$);
SELECT differ($$SELECT date_trunc('minute', ts), max(w), count(n) FROM {t} GROUP BY 1$$);
SELECT differ($$SELECT d, series_id, count(*), sum(v) FROM {t} GROUP BY 1, 2$$);
SELECT differ($$SELECT s, count(*) FROM {t} WHERE n > 100 GROUP BY s$$);
EXPLAIN (COSTS OFF)
SELECT series_id, sum(n) FROM m WHERE series_id IN (3, 5) AND n > 100 GROUP BY 1 ORDER BY 1;
SELECT series_id, sum(n), count(*) FROM m WHERE series_id IN (3, 5) AND n > 100 GROUP BY 1 ORDER BY 1;
SELECT series_id, sum(n), count(*) FROM h WHERE series_id IN (3, 5) AND n > 100 GROUP BY 1 ORDER BY 1;
SELECT differ($$SELECT series_id, sum(n) FROM {t} WHERE series_id = 7 AND ts < '2026-01-02' GROUP BY 1$$);
SELECT differ($$SELECT series_id, avg(w) FROM {t} GROUP BY 1 HAVING count(*) > 380 AND max(n) > 2000$$);
SELECT differ($$SELECT date_trunc('hour', ts) AS hr, count(*) FROM {t}
    WHERE date_trunc('hour', ts) < '2026-01-02' AND note IS NULL GROUP BY 1$$);
-- a key set given as a parameter (generic plan)
PREPARE q(bigint[]) AS SELECT series_id, count(*), sum(w) FROM m WHERE series_id = ANY ($1) GROUP BY 1 ORDER BY 1;
SET plan_cache_mode = force_generic_plan;
EXECUTE q('{1, 2, 99}');
SELECT series_id, count(*), sum(w) FROM h WHERE series_id IN (1, 2, 99) GROUP BY 1 ORDER BY 1;
RESET plan_cache_mode;
-- no row passes
SELECT count(*), avg(v), max(n) FROM m WHERE ts < '2025-01-01';
SELECT series_id, count(*) FROM m WHERE ts < '2025-01-01' GROUP BY 1;

-- date_trunc in other time zones: a fixed offset (truncated by arithmetic) and one
-- with daylight saving time (date_trunc called row by row).
SET timezone = 'Asia/Kolkata';
SELECT differ($$SELECT date_trunc('hour', ts), count(*), max(v) FROM {t} GROUP BY 1$$);
SELECT differ($$SELECT date_trunc('day', ts), count(*) FROM {t} GROUP BY 1$$);
SET timezone = 'America/New_York';
SELECT differ($$SELECT date_trunc('hour', ts), count(*), max(v) FROM {t} GROUP BY 1$$);
SELECT differ($$SELECT date_trunc('week', ts), count(*) FROM {t} GROUP BY 1$$);
SET timezone = 'UTC';

-- Errors come as the row-by-row aggregates raise them.
INSERT INTO h VALUES (1, '2026-01-01 00:00:01', 1e308, 'NaN'), (1, '2026-01-01 00:00:02', 1e308, 1);
INSERT INTO m VALUES (1, '2026-01-01 00:00:01', 1e308, 'NaN'), (1, '2026-01-01 00:00:02', 1e308, 1);
SELECT bidim.seal('m');
SELECT bidim.convert('m', older_than => '2026-01-03');
SELECT sum(v) FROM m WHERE v = 1e308;
SELECT sum(v) FROM h WHERE v = 1e308;
SELECT ddsketch_agg(w) FROM m WHERE series_id = 1;
SELECT ddsketch_agg(w) FROM h WHERE series_id = 1;
DELETE FROM m WHERE v > 1e300;
DELETE FROM h WHERE v > 1e300;

-- More groups than work_mem holds: partial groups are emitted early and combined.
SET work_mem = '64kB';
SET enable_hashagg = off;
SELECT * FROM plan_of($$SELECT series_id, ts, count(*), sum(v) FROM m GROUP BY 1, 2$$);
SELECT differ($$SELECT series_id, ts, count(*), sum(v) FROM {t} GROUP BY 1, 2$$);
RESET enable_hashagg;
RESET work_mem;

-- In parallel: participants take whole chunks.
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT series_id, count(*), avg(w) FROM m GROUP BY 1;
SELECT differ($$SELECT series_id, count(*), avg(w), max(n) FROM {t} GROUP BY 1$$);
SELECT differ($$SELECT count(*), sum(v), min(d) FROM {t}$$);
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- Grouped by a time bucket alone, in the order the query wants: cold batches are read
-- by their time bounds and each group is emitted once no unread row can fall in it,
-- so no sort is needed and a LIMIT stops the reading.
SELECT * FROM plan_of($$SELECT date_trunc('minute', ts) AS mi, max(v), count(*) FROM m
    WHERE ts < '2026-01-03 02:00' GROUP BY 1 ORDER BY 1 DESC LIMIT 5$$);
SELECT date_trunc('minute', ts) AS mi, max(v), count(*) FROM m
    WHERE ts < '2026-01-03 02:00' GROUP BY 1 ORDER BY 1 DESC LIMIT 5;
SELECT differ($$SELECT date_trunc('minute', ts) AS mi, max(v), count(*) FROM {t}
    WHERE ts < '2026-01-03 02:00' GROUP BY 1 ORDER BY 1 DESC LIMIT 5$$);
SELECT differ($$SELECT date_trunc('hour', ts), avg(w), min(n) FROM {t}
    WHERE ts > '2026-01-01 07:00' GROUP BY 1 ORDER BY 1 LIMIT 7$$);
-- Under a constant LIMIT (and OFFSET) of groups shown in their order, a batch that
-- holds that many groups (plus the one that ends the last) cuts the rest: rows of
-- later groups are not added up. Three series, a row every 10 s, batches of 1000 rows.
CREATE TABLE lm (series_id int, ts timestamptz NOT NULL, v float8) USING bidim;
SELECT (bidim.configure('lm', partition_interval => '1 day')).rel IS NOT NULL AS configured;
INSERT INTO lm SELECT s, timestamptz '2026-01-01' + g * interval '10 seconds', (g * s) % 101
FROM generate_series(0, 4319) g, generate_series(1, 3) s;
SELECT bidim.seal('lm') AS sealed;
SELECT bidim.convert('lm') AS converted;
CREATE TABLE lh AS SELECT * FROM lm;
CREATE FUNCTION differ_l(q text) RETURNS bigint LANGUAGE sql AS $f$
    SELECT differ(replace(q, 'FROM {t}', 'FROM l{t}'))
$f$;
SELECT * FROM plan_of($$SELECT date_trunc('minute', ts) AS mi, max(v), count(*) FROM lm
    WHERE ts < '2026-01-01 10:00' GROUP BY 1 ORDER BY 1 DESC LIMIT 5$$);
SELECT differ_l($$SELECT date_trunc('minute', ts) AS mi, max(v), count(*) FROM {t}
    WHERE ts < '2026-01-01 10:00' GROUP BY 1 ORDER BY 1 DESC LIMIT 5$$);
SELECT differ_l($$SELECT date_trunc('minute', ts), sum(v), count(*) FROM {t}
    WHERE ts < '2026-01-01 10:00' GROUP BY 1 ORDER BY 1 DESC LIMIT 3 OFFSET 4$$);
SELECT differ_l($$SELECT date_trunc('minute', ts), sum(v), count(*) FROM {t}
    WHERE ts >= '2026-01-01 05:00' GROUP BY 1 ORDER BY 1 LIMIT 6$$);
SELECT differ_l($$SELECT ts, count(*) FROM {t} GROUP BY 1 ORDER BY 1 DESC LIMIT 2$$);
-- a filter, HAVING, or another output order: no cut (a batch's groups may not all
-- reach the output)
SELECT differ_l($$SELECT date_trunc('minute', ts), max(v) FROM {t}
    WHERE ts < '2026-01-01 10:00' AND v > 90 GROUP BY 1 ORDER BY 1 DESC LIMIT 5$$);
SELECT differ_l($$SELECT date_trunc('minute', ts), max(v) FROM {t}
    WHERE ts < '2026-01-01 10:00' GROUP BY 1 HAVING max(v) > 99 ORDER BY 1 DESC LIMIT 5$$);
SELECT differ_l($$SELECT date_trunc('minute', ts), max(v) FROM {t}
    WHERE ts < '2026-01-01 10:00' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5$$);
DROP FUNCTION differ_l(text);
DROP TABLE lm, lh;
-- every group, in order (hot rows' groups among them)
SELECT (SELECT string_agg(format('%s %s %s', hr, c, s), ',' ORDER BY hr DESC) FROM (
          SELECT date_trunc('hour', ts) hr, count(*) c, sum(w) s FROM h GROUP BY 1) x)
     = (SELECT string_agg(format('%s %s %s', hr, c, s), ',') FROM (
          SELECT date_trunc('hour', ts) hr, count(*) c, sum(w) s FROM m GROUP BY 1 ORDER BY 1 DESC) y)
       AS same_order;
EXPLAIN (COSTS OFF) SELECT ts, count(*) FROM m GROUP BY ts ORDER BY ts LIMIT 3;
SELECT differ($$SELECT ts, count(*) FROM {t} GROUP BY ts ORDER BY ts LIMIT 3$$);

-- A join that only picks keys (TSBS's `IN (SELECT id FROM tags WHERE ...)`): the
-- inner plan runs first and its keys become a key set of the scan.
CREATE TABLE hosts (id bigint PRIMARY KEY, name text);
INSERT INTO hosts SELECT g, 'h' || g FROM generate_series(0, 20) g;
INSERT INTO hosts VALUES (100, NULL);
ANALYZE hosts;
EXPLAIN (COSTS OFF) SELECT date_trunc('hour', ts), max(v) FROM m
    WHERE series_id IN (SELECT id FROM hosts WHERE name IN ('h3', 'h5'))
      AND ts >= '2026-01-02' AND ts < '2026-01-03' GROUP BY 1;
SELECT * FROM plan_of($$SELECT date_trunc('hour', ts), max(v) FROM m
    WHERE series_id IN (SELECT id FROM hosts WHERE name IN ('h3', 'h5'))
      AND ts >= '2026-01-02' AND ts < '2026-01-03' GROUP BY 1$$);
SELECT differ($$SELECT date_trunc('hour', ts), max(v), count(*) FROM {t}
    WHERE series_id IN (SELECT id FROM hosts WHERE name IN ('h3', 'h5'))
      AND ts >= '2026-01-02' AND ts < '2026-01-03' GROUP BY 1$$);
-- an inner join on a unique column, a semi-join on a repeating expression, no key
SELECT differ($$SELECT x.series_id, sum(w) FROM {t} x JOIN hosts y ON x.series_id = y.id
    WHERE y.name LIKE 'h1%' GROUP BY 1$$);
SELECT differ($$SELECT count(*), avg(w) FROM {t} WHERE series_id IN (SELECT id % 3 FROM hosts)$$);
SELECT differ($$SELECT count(*), avg(w) FROM {t} WHERE series_id IN (SELECT id FROM hosts WHERE name = 'none')$$);
SELECT differ($$SELECT date_trunc('minute', ts), count(*) FROM {t}
    WHERE series_id IN (SELECT id FROM hosts WHERE name > 'h18') GROUP BY 1 ORDER BY 1 DESC LIMIT 4$$);
-- a join whose other side adds columns is not a key join
EXPLAIN (COSTS OFF) SELECT y.name, count(*) FROM m x JOIN hosts y ON x.series_id = y.id GROUP BY 1;
DROP TABLE hosts;

-- Not taken: other aggregates, DISTINCT, FILTER, expressions as arguments, grouping
-- by text, grouping sets; and off by the setting.
EXPLAIN (COSTS OFF) SELECT count(DISTINCT n) FROM m;
EXPLAIN (COSTS OFF) SELECT sum(v) FILTER (WHERE n > 0) FROM m;
EXPLAIN (COSTS OFF) SELECT sum(v * 2) FROM m;
EXPLAIN (COSTS OFF) SELECT note, count(*) FROM m GROUP BY 1;
EXPLAIN (COSTS OFF) SELECT series_id, count(*) FROM m GROUP BY ROLLUP (series_id);
SET bidim.enable_batch_aggregation = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM m;
RESET bidim.enable_batch_aggregation;
SELECT differ($$SELECT count(DISTINCT n), sum(v * 2), sum(v) FILTER (WHERE n > 0) FROM {t}$$);
SELECT differ($$SELECT note, count(*) FROM {t} GROUP BY ROLLUP (note)$$);

-- A role with SELECT on the table only reads through BidimAgg as through BidimScan.
CREATE ROLE agg_reader;
GRANT SELECT ON m TO agg_reader;
SET ROLE agg_reader;
SELECT count(*) > 0 AS reads FROM m;
SELECT count(*) FROM h;
RESET ROLE;
DROP OWNED BY agg_reader;
DROP ROLE agg_reader;
DROP TABLE m, h;
-- Columns added after rows were written: hot rows read a buffer at a time take the
-- added columns' missing values (a default) or NULL, as PostgreSQL's own reads do.
CREATE TABLE am (series_id int, ts timestamptz NOT NULL, v float8) USING bidim;
SELECT (bidim.configure('am', hot_chunk_rows => 700)).rel IS NOT NULL AS configured;
INSERT INTO am SELECT g % 5, timestamptz '2026-01-01' + g * interval '1 minute', g FROM generate_series(1, 2000) g;
ALTER TABLE am ADD COLUMN x int DEFAULT 7, ADD COLUMN y float8;
INSERT INTO am SELECT g % 5, timestamptz '2026-01-01' + g * interval '1 minute', g, g % 11, g / 4.0
FROM generate_series(2001, 3000) g;
SELECT bidim.seal('am') > 0 AS sealed;
INSERT INTO am SELECT g % 5, timestamptz '2026-01-01' + g * interval '1 minute', g, NULL, g FROM generate_series(3001, 3500) g;
CREATE TABLE ah AS SELECT * FROM am;
SELECT * FROM plan_of($$SELECT x, count(*), sum(x), max(y), avg(v) FROM am GROUP BY x$$) WHERE plan_of LIKE '%BidimAgg%' OR plan_of LIKE '%Rows aggregated%';
SELECT differ($$SELECT x, count(*), sum(x), max(y), avg(v), count(y) FROM a{t} GROUP BY x$$ ) AS added_columns;
SELECT differ($$SELECT count(*), sum(x), avg(y), min(x) FROM a{t} WHERE ts >= '2026-01-02 06:00' AND ts < '2026-01-02 20:00'$$ ) AS added_columns_window;
DROP TABLE am, ah;
DROP FUNCTION differ(text), plan_of(text);
DROP EXTENSION bidim;
