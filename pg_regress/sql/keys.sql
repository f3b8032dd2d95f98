-- Queries that name series: key sets (IN, = ANY), joins and semi-joins on the key
-- (a nested loop over a BidimScan parameterized by the key), LATERAL reads. Every
-- answer is compared with a heap table holding the same rows.
CREATE EXTENSION bidim;
SET timezone = 'UTC';
-- Aggregates by the Aggregate node over the scan shown (BidimAgg, which computes them
-- inside the scan, has its own tests: batch_agg).
SET bidim.enable_batch_aggregation = off;
CREATE TABLE points (series_id bigint, ts timestamptz, value float8) USING bidim;
SELECT (bidim.configure('points', hot_chunk_rows => 2000, partition_interval => '1 hour')).rel IS NOT NULL AS configured;
-- 6 hours, 200 series, one row per series a minute (with duplicate times for one
-- series): enough chunks per hour for the key range to split.
INSERT INTO points
SELECT s, timestamptz '2026-01-01' + t * interval '1 minute', s * 10000 + t
FROM generate_series(1, 200) s, generate_series(0, 359) t;
INSERT INTO points SELECT 7, ts, -value FROM points WHERE series_id = 7 AND ts < '2026-01-01 01:00';
CREATE TABLE heap_points AS SELECT * FROM points;
ANALYZE points;
ANALYZE heap_points;
SELECT count(*) > 20 AS many_chunks, count(DISTINCT range_id) > 1 AS split FROM bidim.chunks WHERE rel = 'points'::regclass;

CREATE TABLE series (id bigint PRIMARY KEY, tags tagset);
INSERT INTO series
SELECT i, format('{env:%s,service:svc-%s,host:h%s}', CASE WHEN i % 4 = 0 THEN 'prod' ELSE 'dev' END, i % 5, i)::tagset
FROM generate_series(1, 240) i;
CREATE INDEX ON series USING gin (tags);
ANALYZE series;

-- Runs q against the bidim tables and against their heap copies (" points",
-- " named" and " daily" replaced) and says whether they return the same rows.
CREATE FUNCTION same_as_heap(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE a text; b text;
BEGIN
    EXECUTE format('SELECT md5(coalesce(string_agg(x::text, '','' ORDER BY x::text), '''')) FROM (%s) x', q) INTO a;
    EXECUTE format('SELECT md5(coalesce(string_agg(x::text, '','' ORDER BY x::text), '''')) FROM (%s) x',
                   replace(replace(replace(q, ' points', ' heap_points'), ' named', ' heap_named'), ' daily', ' heap_daily')) INTO b;
    RETURN a = b;
END $$;

-- 1. Key sets: IN lists and = ANY (arrays), pruned by key range and read through each
-- chunk's (key, time) index.
EXPLAIN (COSTS OFF) SELECT count(*) FROM points WHERE series_id IN (3, 17, 33) AND ts >= '2026-01-01 02:00' AND ts < '2026-01-01 03:00';
SELECT count(*), sum(value) FROM points WHERE series_id IN (3, 17, 33) AND ts >= '2026-01-01 02:00' AND ts < '2026-01-01 03:00';
SELECT same_as_heap($$SELECT * FROM points WHERE series_id IN (3, 17, 33) AND ts >= '2026-01-01 02:00' AND ts < '2026-01-01 03:00'$$);
SELECT same_as_heap($$SELECT * FROM points WHERE series_id = ANY ('{1, 2, 2, 40, 41}')$$);
SELECT same_as_heap($$SELECT * FROM points WHERE series_id = ANY ('{7, NULL}') AND ts < '2026-01-01 01:00'$$);
SELECT same_as_heap($$SELECT * FROM points WHERE series_id IN (7::int2, 8::int2)$$);
SELECT same_as_heap($$SELECT * FROM points WHERE series_id = ANY ('{5, 6}'::int4[]) AND series_id = 5$$);
SELECT same_as_heap($$SELECT * FROM points WHERE series_id = ANY ('{5, 6}'::int4[]) AND series_id IN (6, 9)$$);
-- Empty sets, only NULLs, a NULL array: no row.
SELECT count(*) FROM points WHERE series_id = ANY ('{}'::bigint[]);
SELECT count(*) FROM points WHERE series_id = ANY ('{NULL}'::bigint[]);
SELECT count(*) FROM points WHERE series_id = ANY (NULL::bigint[]);
SELECT count(*) FROM points WHERE series_id IN (NULL, 1000);
-- Generic plans: the set is a parameter, evaluated at executor start.
SET plan_cache_mode = force_generic_plan;
PREPARE q(bigint[], timestamptz) AS SELECT count(*), sum(value) FROM points WHERE series_id = ANY ($1) AND ts < $2;
EXPLAIN (COSTS OFF) EXECUTE q('{1, 2, 3}', '2026-01-01 01:00');
EXECUTE q('{1, 2, 3}', '2026-01-01 01:00');
SELECT count(*), sum(value) FROM heap_points WHERE series_id = ANY ('{1, 2, 3}') AND ts < '2026-01-01 01:00';
EXECUTE q('{}', '2026-01-01 01:00');
EXECUTE q('{39, NULL, 40, 40}', '2027-01-01');
SELECT count(*), sum(value) FROM heap_points WHERE series_id IN (39, 40);
DEALLOCATE q;
PREPARE q2(bigint, bigint) AS SELECT count(*) FROM points WHERE series_id IN ($1, $2);
EXECUTE q2(4, 5);
EXECUTE q2(4, NULL);
DEALLOCATE q2;
RESET plan_cache_mode;

-- 2. Joins and semi-joins on the key: when few series qualify, a nested loop reads only
-- theirs, through a BidimScan parameterized by the key; when many do, a hash join over
-- the scan (12 series here).
-- (random_page_cost as for data that fits in memory, so this small table's index reads
-- are costed like a large table's.)
SET random_page_cost = 1.1;
EXPLAIN (COSTS OFF)
SELECT count(*), sum(p.value) FROM points p JOIN series s ON p.series_id = s.id
WHERE s.tags @@ 'env:prod AND service:svc-2' AND p.ts >= '2026-01-01 04:00';
SELECT count(*), sum(p.value) FROM points p JOIN series s ON p.series_id = s.id
WHERE s.tags @@ 'env:prod AND service:svc-2' AND p.ts >= '2026-01-01 04:00';
SELECT count(*), sum(p.value) FROM heap_points p JOIN series s ON p.series_id = s.id
WHERE s.tags @@ 'env:prod AND service:svc-2' AND p.ts >= '2026-01-01 04:00';
SELECT same_as_heap($$SELECT p.* FROM points p WHERE p.series_id IN (SELECT id FROM series WHERE tags @@ 'env:prod') AND p.ts < '2026-01-01 00:10'$$);
SELECT same_as_heap($$SELECT p.* FROM points p WHERE EXISTS (SELECT 1 FROM series s WHERE s.id = p.series_id AND s.tags @@ 'service:svc-3')$$);
SELECT same_as_heap($$SELECT s.id, p.ts, p.value FROM series s JOIN points p ON p.series_id = s.id::int4 WHERE s.id < 4$$);
SELECT same_as_heap($$SELECT s.id, p.* FROM series s LEFT JOIN points p ON p.series_id = s.id AND p.ts < '2026-01-01 00:05' WHERE s.id > 198$$);
-- LATERAL: the newest point of each series.
EXPLAIN (COSTS OFF)
SELECT s.id, l.ts, l.value FROM series s
CROSS JOIN LATERAL (SELECT ts, value FROM points p WHERE p.series_id = s.id ORDER BY ts DESC LIMIT 1) l
WHERE s.tags @@ 'env:prod';
SELECT same_as_heap($$SELECT s.id, l.ts, l.value FROM series s CROSS JOIN LATERAL (SELECT ts, value FROM points p WHERE p.series_id = s.id ORDER BY ts DESC, value LIMIT 1) l$$);
-- The nested loop and a hash join give the same answers.
SET enable_nestloop = off;
SELECT count(*), sum(p.value) FROM points p JOIN series s ON p.series_id = s.id
WHERE s.tags @@ 'env:prod AND service:svc-2' AND p.ts >= '2026-01-01 04:00';
RESET enable_nestloop;
-- One series: the nested loop (the GIN index picks it); most series: a hash join.
EXPLAIN (COSTS OFF)
SELECT count(*) FROM points p WHERE p.series_id IN (SELECT id FROM series WHERE tags @@ 'host:h7')
  AND p.ts >= '2026-01-01 05:00';
EXPLAIN (COSTS OFF)
SELECT count(*) FROM points p WHERE p.series_id IN (SELECT id FROM series WHERE tags @@ 'env:dev')
  AND p.ts >= '2026-01-01 05:00';
SELECT same_as_heap($$SELECT count(*) FROM points p WHERE p.series_id IN (SELECT id FROM series WHERE tags @@ 'env:dev') AND p.ts >= '2026-01-01 05:00'$$);
-- BidimAgg (batch aggregation on, the default) runs the subquery first and reads
-- only the keys it returns.
SET bidim.enable_batch_aggregation = on;
EXPLAIN (COSTS OFF)
SELECT count(*) FROM points p WHERE p.series_id IN (SELECT id FROM series WHERE tags @@ 'host:h7')
  AND p.ts >= '2026-01-01 05:00';
SELECT same_as_heap($$SELECT count(*), sum(value) FROM points p WHERE p.series_id IN (SELECT id FROM series WHERE tags @@ 'env:dev') AND p.ts >= '2026-01-01 05:00'$$);
SET bidim.enable_batch_aggregation = off;
RESET random_page_cost;
SELECT count(*) FROM points p WHERE p.series_id IN (SELECT id FROM series WHERE tags @@ 'host:h7')
  AND p.ts >= '2026-01-01 05:00';

-- 3. Newest (oldest) first: one key read in time order, a partition at a time, its
-- chunks merged; LIMIT stops the reading (the scan returns one row).
EXPLAIN (COSTS OFF) SELECT * FROM points WHERE series_id = 7 ORDER BY ts DESC LIMIT 3;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM points WHERE series_id = 7 ORDER BY ts DESC LIMIT 1;
SELECT * FROM points WHERE series_id = 7 ORDER BY ts DESC, value LIMIT 3;
SELECT * FROM heap_points WHERE series_id = 7 ORDER BY ts DESC, value LIMIT 3;
-- Duplicate times (series 7 has two rows per time in its first hour) and ascending.
SELECT ts, value FROM points WHERE series_id = 7 AND ts < '2026-01-01 00:01' ORDER BY ts, value;
SELECT same_as_heap($$SELECT ts FROM points WHERE series_id = 7 ORDER BY ts$$);
SELECT (SELECT array_agg(ts) FROM (SELECT ts FROM points WHERE series_id = 12 ORDER BY ts DESC) x)
     = (SELECT array_agg(ts) FROM (SELECT ts FROM heap_points WHERE series_id = 12 ORDER BY ts DESC) x) AS same_order;
SELECT (SELECT array_agg(ts) FROM (SELECT ts FROM points WHERE series_id = 12 AND ts >= '2026-01-01 01:30' ORDER BY ts LIMIT 500) x)
     = (SELECT array_agg(ts) FROM (SELECT ts FROM heap_points WHERE series_id = 12 AND ts >= '2026-01-01 01:30' ORDER BY ts LIMIT 500) x) AS same_order;
-- Rows inserted late into an old partition still come out in order.
INSERT INTO points VALUES (12, '2026-01-01 00:30:01', 1), (12, '2026-01-01 05:59:59', 2);
INSERT INTO heap_points VALUES (12, '2026-01-01 00:30:01', 1), (12, '2026-01-01 05:59:59', 2);
SELECT (SELECT array_agg(ts) FROM (SELECT ts FROM points WHERE series_id = 12 ORDER BY ts DESC) x)
     = (SELECT array_agg(ts) FROM (SELECT ts FROM heap_points WHERE series_id = 12 ORDER BY ts DESC) x) AS same_order;
-- The last point of every series (TSBS lastpoint), from a parameter per series.
SELECT same_as_heap($$SELECT s.id, (SELECT max(ts) FROM points p WHERE p.series_id = s.id) FROM series s$$);
SET plan_cache_mode = force_generic_plan;
PREPARE last(bigint) AS SELECT ts, value FROM points WHERE series_id = $1 ORDER BY ts DESC LIMIT 2;
EXECUTE last(3);
SELECT ts, value FROM heap_points WHERE series_id = 3 ORDER BY ts DESC LIMIT 2;
EXECUTE last(NULL);
DEALLOCATE last;
RESET plan_cache_mode;

-- 4. Text keys.
CREATE TABLE named (host text, ts timestamptz, v int) USING bidim;
SELECT (bidim.configure('named', hot_chunk_rows => 500, partition_interval => '1 day')).rel IS NOT NULL AS configured;
INSERT INTO named SELECT 'host-' || h, timestamptz '2026-01-01' + t * interval '1 minute', h * t
FROM generate_series(1, 30) h, generate_series(0, 99) t;
CREATE TABLE heap_named AS SELECT * FROM named;
SELECT count(DISTINCT range_id) > 1 AS split FROM bidim.chunks WHERE rel = 'named'::regclass;
SELECT same_as_heap($$SELECT * FROM named WHERE host IN ('host-1', 'host-29', 'host-404')$$);
SELECT same_as_heap($$SELECT * FROM named WHERE host = ANY (ARRAY['host-3', NULL, 'host-3'])$$);
SELECT same_as_heap($$SELECT n.* FROM (VALUES ('host-2'), ('host-20')) v(h) JOIN named n ON n.host = v.h$$);

-- 5. Exact time bounds: the maintenance job measures the first and last time of
-- sealed chunks; a 1-hour window then reads only the chunks holding that hour.
CREATE TABLE daily (series_id int, ts timestamptz, v int) USING bidim;
SELECT (bidim.configure('daily', hot_chunk_rows => 300, partition_interval => '1 day')).rel IS NOT NULL AS configured;
INSERT INTO daily SELECT s, timestamptz '2026-02-01' + t * interval '1 minute', t
FROM generate_series(0, 1439) t, generate_series(1, 2) s ORDER BY t, s;
SELECT bidim.seal('daily') AS sealed_now;
CREATE TABLE heap_daily AS SELECT * FROM daily;
-- (each run measures up to 16 chunks, in table order)
DO $$ BEGIN FOR i IN 1..10 LOOP PERFORM bidim._maintain(); END LOOP; END $$;
SELECT count(*) AS chunks, count(min_time) AS measured FROM bidim.chunks WHERE rel = 'daily'::regclass;
EXPLAIN (COSTS OFF) SELECT count(*) FROM daily WHERE ts >= '2026-02-01 10:00' AND ts < '2026-02-01 11:00';
SELECT count(*), sum(v) FROM daily WHERE ts >= '2026-02-01 10:00' AND ts < '2026-02-01 11:00';
SELECT count(*), sum(v) FROM heap_daily WHERE ts >= '2026-02-01 10:00' AND ts < '2026-02-01 11:00';
-- An UPDATE that moves a row's time out of its chunk's bounds moves the row.
UPDATE daily SET ts = '2026-02-01 23:59:30' WHERE ts = '2026-02-01 10:15' AND series_id = 1;
UPDATE heap_daily SET ts = '2026-02-01 23:59:30' WHERE ts = '2026-02-01 10:15' AND series_id = 1;
UPDATE daily SET ts = '2026-02-01 10:15:30' WHERE ts = '2026-02-01 10:16' AND series_id = 2;
UPDATE heap_daily SET ts = '2026-02-01 10:15:30' WHERE ts = '2026-02-01 10:16' AND series_id = 2;
SELECT (SELECT array_agg(x ORDER BY x) FROM (SELECT ts, v, series_id FROM daily WHERE ts >= '2026-02-01 23:00') x)
     = (SELECT array_agg(x ORDER BY x) FROM (SELECT ts, v, series_id FROM heap_daily WHERE ts >= '2026-02-01 23:00') x) AS same_rows;
SELECT (SELECT array_agg(x ORDER BY x) FROM (SELECT ts, v, series_id FROM daily WHERE ts >= '2026-02-01 10:10' AND ts < '2026-02-01 10:20') x)
     = (SELECT array_agg(x ORDER BY x) FROM (SELECT ts, v, series_id FROM heap_daily WHERE ts >= '2026-02-01 10:10' AND ts < '2026-02-01 10:20') x) AS same_rows;
SELECT same_as_heap($$SELECT * FROM daily WHERE ts BETWEEN '2026-02-01 03:00' AND '2026-02-01 03:30'$$);
-- The maintenance job also maps each sealed chunk's block ranges to the times of
-- their rows: a window reads only the blocks whose ranges hold it.
CREATE TABLE wide (series_id int, ts timestamptz NOT NULL, v int, pad text) USING bidim;
SELECT (bidim.configure('wide', hot_chunk_rows => 20000, partition_interval => '1 day')).rel IS NOT NULL AS configured;
INSERT INTO wide SELECT s, timestamptz '2026-02-01' + t * interval '1 minute', t, repeat('x', 100)
FROM generate_series(0, 1439) t, generate_series(1, 10) s ORDER BY t, s;
SELECT bidim.seal('wide') AS sealed_now;
CREATE TABLE heap_wide AS SELECT * FROM wide;
DO $$ BEGIN FOR i IN 1..3 LOOP PERFORM bidim._maintain(); END LOOP; END $$;
SELECT state, pages, array_length(block_times, 1) AS map_length FROM bidim.chunk WHERE rel = 'wide'::regclass;
EXPLAIN (COSTS OFF) SELECT count(*), sum(v) FROM wide WHERE ts >= '2026-02-01 10:00' AND ts < '2026-02-01 11:00';
SELECT count(*), sum(v) FROM wide WHERE ts >= '2026-02-01 10:00' AND ts < '2026-02-01 11:00';
SELECT count(*), sum(v) FROM heap_wide WHERE ts >= '2026-02-01 10:00' AND ts < '2026-02-01 11:00';
-- Groups of time wanted newest first (`ORDER BY 1 DESC LIMIT n`): BidimAgg reads the
-- mapped block ranges newest first and stops once the groups are complete.
SET bidim.enable_batch_aggregation = on;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT date_trunc('minute', ts), max(v), count(*) FROM wide WHERE ts < '2026-02-01 12:00' GROUP BY 1 ORDER BY 1 DESC LIMIT 3;
SELECT date_trunc('minute', ts), max(v), count(*) FROM wide WHERE ts < '2026-02-01 12:00' GROUP BY 1 ORDER BY 1 DESC LIMIT 3;
SET bidim.enable_batch_aggregation = off;
SELECT date_trunc('minute', ts), max(v), count(*) FROM heap_wide WHERE ts < '2026-02-01 12:00' GROUP BY 1 ORDER BY 1 DESC LIMIT 3;
-- An UPDATE moves its row out of a mapped chunk (heap could store the new version in
-- any block), into a hot chunk of the same cell.
UPDATE wide SET ts = ts + interval '30 seconds' WHERE series_id = 3 AND ts = '2026-02-01 10:20';
UPDATE heap_wide SET ts = ts + interval '30 seconds' WHERE series_id = 3 AND ts = '2026-02-01 10:20';
SELECT state, count(*) FROM bidim.chunks WHERE rel = 'wide'::regclass GROUP BY 1 ORDER BY 1;
SELECT same_as_heap($$SELECT * FROM wide WHERE ts >= '2026-02-01 10:15' AND ts < '2026-02-01 10:25'$$);

-- 6. Many chunks. A scan reads the directory rows of the partitions that end after its
-- lower time bound (again on a rescan whose bound is earlier), and in READ COMMITTED
-- releases each chunk's lock once it is done with it, so one query can read more
-- chunks than the lock table holds; REPEATABLE READ keeps them to commit (retention
-- waits, so the transaction's answers stay the same).
CREATE TABLE many (series_id int, ts timestamptz, v int) USING bidim;
SELECT (bidim.configure('many', partition_interval => '1 hour')).rel IS NOT NULL AS configured;
INSERT INTO many SELECT s, timestamptz '2026-03-01' + h * interval '1 hour' + s * interval '1 minute', h
FROM generate_series(0, 119) h, generate_series(1, 3) s;
SELECT bidim.seal('many') AS sealed_now;
CREATE TABLE heap_many AS SELECT * FROM many;
SELECT w.t0, (SELECT count(*) FROM many m WHERE m.ts >= w.t0 AND m.series_id = 1) AS bidim,
       (SELECT count(*) FROM heap_many m WHERE m.ts >= w.t0 AND m.series_id = 1) AS heap
FROM (VALUES (timestamptz '2026-03-05'), ('2026-03-02'), ('2026-03-04 12:00'), ('2026-03-01')) w(t0);
-- Newest first without a lower bound over this long directory (120 rows): the read
-- starts at the newest partition (one row a series there) and goes on to the older
-- partitions only when the limit needs more rows. (The table was not analyzed: the
-- planner would sort its 120 rows.)
SET enable_sort = off;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT ts, v FROM many WHERE series_id = 2 ORDER BY ts DESC LIMIT 1;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT ts, v FROM many WHERE series_id = 2 ORDER BY ts DESC LIMIT 3;
SELECT n, (SELECT array_agg(x) FROM (SELECT ts, v FROM many WHERE series_id = 2 ORDER BY ts DESC LIMIT n) x)
        = (SELECT array_agg(x) FROM (SELECT ts, v FROM heap_many WHERE series_id = 2 ORDER BY ts DESC LIMIT n) x) AS same_rows
FROM unnest(ARRAY[1, 2, 3, 500]) n;
RESET enable_sort;
BEGIN;
SELECT ts, v FROM many WHERE series_id = 2 ORDER BY ts DESC LIMIT 1;
SELECT count(*) FROM many m JOIN (VALUES (1), (3)) k(id) ON m.series_id = k.id;
SELECT count(*), sum(v) FROM many;
SELECT count(*) AS chunk_locks_held FROM pg_locks l JOIN bidim.chunk c ON c.chunk_rel = l.relation
WHERE l.pid = pg_backend_pid();
COMMIT;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM many WHERE series_id = 2;
SELECT count(*) AS chunk_locks_held FROM pg_locks l JOIN bidim.chunk c ON c.chunk_rel = l.relation
WHERE l.pid = pg_backend_pid();
COMMIT;

-- 7. Parallel: a parallel BidimScan (or BidimAgg) hands the chunks it keeps to the
-- participants one at a time.
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT count(*), sum(v) FROM many WHERE ts >= '2026-03-02' AND ts < '2026-03-04';
SET bidim.enable_batch_aggregation = on;
EXPLAIN (COSTS OFF) SELECT count(*), sum(v) FROM many WHERE ts >= '2026-03-02' AND ts < '2026-03-04';
SET bidim.enable_batch_aggregation = off;
SELECT count(*), sum(v) FROM many WHERE ts >= '2026-03-02' AND ts < '2026-03-04';
SELECT count(*), sum(v) FROM heap_many WHERE ts >= '2026-03-02' AND ts < '2026-03-04';
SELECT count(*), sum(v) FROM many WHERE series_id IN (1, 3) AND ts >= '2026-03-02';
SELECT count(*), sum(v) FROM heap_many WHERE series_id IN (1, 3) AND ts >= '2026-03-02';
RESET parallel_setup_cost; RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size; RESET max_parallel_workers_per_gather;

-- 8. Rescans: a nested loop rescans its inner BidimScan once per outer row; from the
-- second rescan on, the index scans of the hot chunks it reads stay open (up to 32 a
-- node) and the scan is reused while the next key reads the same chunks. Answers
-- equal heap's whatever the outer order, with text keys, time bounds, key sets and a
-- cursor stopped halfway; the chunks are unlocked when the statement ends.
SET enable_hashjoin = off; SET enable_mergejoin = off;
SELECT count(*) > 32 AS many_chunks FROM bidim.chunks WHERE rel = 'points'::regclass;
SELECT same_as_heap($$SELECT s.id, l.* FROM series s CROSS JOIN LATERAL (SELECT ts, value FROM points p WHERE p.series_id = s.id ORDER BY ts DESC, value LIMIT 2) l$$);
SELECT same_as_heap($$SELECT s.id, l.* FROM (SELECT id FROM series ORDER BY id % 7, id DESC) s CROSS JOIN LATERAL (SELECT ts, value FROM points p WHERE p.series_id = s.id AND p.ts < '2026-01-01 03:30' ORDER BY ts LIMIT 3) l$$);
SELECT same_as_heap($$SELECT s.id, p.ts, p.value FROM (SELECT id FROM series ORDER BY random()) s JOIN points p ON p.series_id = s.id AND p.ts >= '2026-01-01 02:10' AND p.ts < '2026-01-01 02:20'$$);
SELECT same_as_heap($$SELECT v.a, p.* FROM generate_series(1, 60) v(a) JOIN points p ON p.series_id = ANY (ARRAY[v.a, v.a + 100, NULL]) AND p.ts < '2026-01-01 00:30'$$);
SELECT same_as_heap($$SELECT v.h, l.* FROM (SELECT 'host-' || g FROM generate_series(1, 40) g) v(h) CROSS JOIN LATERAL (SELECT ts, v FROM named n WHERE n.host = v.h ORDER BY ts DESC LIMIT 1) l$$);
-- The outer row also moves the time bound, repeats a key, or has a NULL key (an int4
-- key against the bigint column).
SELECT same_as_heap($$SELECT v.a, v.t, l.* FROM (VALUES (1, timestamptz '2026-01-01 01:00'), (1, '2026-01-01 02:00'), (2, '2026-01-01 02:00'), (NULL, '2026-01-01 02:00'), (150, '2026-01-01 03:00'), (150, '2026-01-01 03:00'), (151, '2026-01-01 03:00'), (3, '2026-01-01 00:00')) v(a, t) LEFT JOIN LATERAL (SELECT ts, value FROM points p WHERE p.series_id = v.a AND p.ts < v.t ORDER BY ts DESC LIMIT 2) l ON true$$);
SELECT same_as_heap($$SELECT g, l.* FROM generate_series(1, 200) g LEFT JOIN LATERAL (SELECT ts, value FROM points p WHERE p.series_id = (g * 37) % 211 AND p.ts >= '2026-01-01 01:00' ORDER BY ts LIMIT 1) l ON true$$);
BEGIN;
DECLARE c CURSOR FOR SELECT s.id, l.ts FROM series s CROSS JOIN LATERAL (SELECT ts FROM points p WHERE p.series_id = s.id ORDER BY ts DESC LIMIT 1) l ORDER BY s.id;
FETCH 3 FROM c;
FETCH 2 FROM c;
CLOSE c;
SELECT count(*) AS chunk_locks_held FROM pg_locks l JOIN bidim.chunk c ON c.chunk_rel = l.relation
WHERE l.pid = pg_backend_pid();
COMMIT;
RESET enable_hashjoin; RESET enable_mergejoin;

-- 9. Conditions on other columns (`column <op> constant`, the column's own type)
-- become scan keys of heap's scans of hot and sealed chunks: heap passes over the rows
-- that fail them (not counted as removed by the filter; EXPLAIN says so).
SET max_parallel_workers_per_gather = 0;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT * FROM points WHERE value > 1990000 AND ts >= '2026-01-01 05:00';
SELECT same_as_heap($$SELECT * FROM points WHERE value > 1990000 AND ts >= '2026-01-01 05:00'$$);
SELECT same_as_heap($$SELECT * FROM points WHERE value <= 10005 AND ts < '2026-01-01 01:00'$$);
SELECT same_as_heap($$SELECT * FROM points WHERE value = 500020 AND ts >= '2026-01-01 00:00'$$);
SELECT same_as_heap($$SELECT * FROM points WHERE 1000010 >= value AND value >= 1000000 AND ts >= '2026-01-01 00:00'$$);
SELECT same_as_heap($$SELECT count(*), sum(value) FROM points WHERE value > 'NaN'::float8 AND ts >= '2026-01-01 00:00'$$);
SELECT same_as_heap($$SELECT * FROM points WHERE value::numeric > 1999000 AND ts >= '2026-01-01 00:00'$$);
RESET max_parallel_workers_per_gather;

-- 10. A backend decodes a directory row once and reuses it while the tuple at that
-- place has the same xmin and bytes. The rows one statement writes share their xmin:
-- after retention drops some and VACUUM FULL packs the directory (the others move to
-- other places), answers still equal heap's, in this backend and a new one.
CREATE TABLE packed (series_id int, ts timestamptz, v int) USING bidim;
SELECT (bidim.configure('packed', hot_chunk_rows => 100, partition_interval => '1 hour')).rel IS NOT NULL AS configured;
INSERT INTO packed SELECT s, timestamptz '2026-03-01' + t * interval '1 minute', t
FROM generate_series(0, 359) t, generate_series(1, 3) s;
CREATE TABLE heap_packed AS SELECT * FROM packed;
SELECT count(*) > 6 AS chunks FROM bidim.chunks WHERE rel = 'packed'::regclass;
SELECT date_trunc('hour', ts) h, count(*), sum(v) FROM packed GROUP BY 1 ORDER BY 1;
SELECT bidim.drop_before('packed', '2026-03-01 03:00') > 0 AS dropped;
DELETE FROM heap_packed WHERE ts < '2026-03-01 03:00';
VACUUM FULL bidim.chunk;
SELECT (SELECT array_agg(x ORDER BY x) FROM (SELECT date_trunc('hour', ts) h, series_id, count(*), sum(v) FROM packed GROUP BY 1, 2) x)
     = (SELECT array_agg(x ORDER BY x) FROM (SELECT date_trunc('hour', ts) h, series_id, count(*), sum(v) FROM heap_packed GROUP BY 1, 2) x) AS same_rows;
SELECT same_as_heap($$SELECT * FROM points WHERE series_id IN (5, 150) AND ts >= '2026-01-01 04:00'$$);
\c
SET timezone = 'UTC';
SELECT date_trunc('hour', ts) h, count(*), sum(v) FROM packed GROUP BY 1 ORDER BY 1;

-- Tail probes: a newest-first (oldest-first) read of one key in a sealed chunk whose
-- bounds were measured reads a thin slice at that end of the chunk first, then the
-- rest; the answers are a heap table's whatever the limit. Series 21 stopped early:
-- its probes find nothing in their slices (each miss widens the slice).
CREATE TABLE tails (series_id int, ts timestamptz, value float8) USING bidim;
SELECT (bidim.configure('tails', hot_chunk_rows => 20000, partition_interval => '1 day')).rel IS NOT NULL AS configured;
INSERT INTO tails SELECT s, timestamptz '2026-02-01' + t * interval '10 seconds', t
FROM generate_series(0, 4319) t, generate_series(1, 20) s ORDER BY t, s;
INSERT INTO tails SELECT 21, timestamptz '2026-02-01' + t * interval '10 seconds', -t FROM generate_series(0, 99) t;
CREATE TABLE heap_tails AS SELECT * FROM tails;
SELECT bidim.seal('tails') > 0 AS sealed;
-- (each run measures up to 16 chunks, in table order)
DO $$ BEGIN FOR i IN 1..10 LOOP PERFORM bidim._maintain(); END LOOP; END $$;
SELECT count(*) AS measured_chunks FROM bidim.chunks WHERE rel = 'tails'::regclass AND min_time IS NOT NULL;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT k, l.ts FROM generate_series(1, 20) k CROSS JOIN LATERAL
  (SELECT ts FROM tails WHERE series_id = k ORDER BY ts DESC LIMIT 1) l;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT ts, value FROM tails WHERE series_id = 21 ORDER BY ts DESC LIMIT 2;
SELECT n, (SELECT array_agg(x) FROM (SELECT k, l.ts, l.value FROM generate_series(1, 22) k CROSS JOIN LATERAL
              (SELECT ts, value FROM tails WHERE series_id = k ORDER BY ts DESC, value LIMIT n) l) x)
        = (SELECT array_agg(x) FROM (SELECT k, l.ts, l.value FROM generate_series(1, 22) k CROSS JOIN LATERAL
              (SELECT ts, value FROM heap_tails WHERE series_id = k ORDER BY ts DESC, value LIMIT n) l) x) AS newest_same,
          (SELECT array_agg(x) FROM (SELECT k, l.ts, l.value FROM generate_series(1, 22) k CROSS JOIN LATERAL
              (SELECT ts, value FROM tails WHERE series_id = k ORDER BY ts, value LIMIT n) l) x)
        = (SELECT array_agg(x) FROM (SELECT k, l.ts, l.value FROM generate_series(1, 22) k CROSS JOIN LATERAL
              (SELECT ts, value FROM heap_tails WHERE series_id = k ORDER BY ts, value LIMIT n) l) x) AS oldest_same
FROM unnest(ARRAY[1, 3, 200, 5000]) n ORDER BY 1;
SELECT (SELECT array_agg(ts) FROM (SELECT ts FROM tails WHERE series_id = 4 ORDER BY ts DESC LIMIT 40) x)
     = (SELECT array_agg(ts) FROM (SELECT ts FROM heap_tails WHERE series_id = 4 ORDER BY ts DESC LIMIT 40) x) AS same_order;
SELECT (SELECT array_agg(ts) FROM (SELECT ts FROM tails WHERE series_id = 4 ORDER BY ts LIMIT 40) x)
     = (SELECT array_agg(ts) FROM (SELECT ts FROM heap_tails WHERE series_id = 4 ORDER BY ts LIMIT 40) x) AS same_order;
-- Bounds evaluated once per scan are interpreted, not compiled by JIT (where the
-- server has JIT); the answers do not change.
SET jit = on;
SET jit_above_cost = 0;
SELECT count(*), sum(value) FROM tails WHERE series_id IN (2, 3) AND ts >= timestamptz '2026-02-01' + interval '3 hours' AND value > 100;
SELECT count(*), sum(value) FROM heap_tails WHERE series_id IN (2, 3) AND ts >= timestamptz '2026-02-01' + interval '3 hours' AND value > 100;
RESET jit;
RESET jit_above_cost;
DROP TABLE tails, heap_tails;

DROP FUNCTION same_as_heap(text);
DROP TABLE packed, heap_packed, points, heap_points, series, named, heap_named, daily, heap_daily, wide, heap_wide, many, heap_many;
SELECT count(*) AS chunks_left FROM bidim.chunk;
DROP EXTENSION bidim;
