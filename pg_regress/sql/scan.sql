-- BidimScan: queries with conditions on the time column read only the chunks whose
-- time partition can match; answers equal a full scan's (bidim.enable_pruning = off).
CREATE EXTENSION bidim;
SET timezone = 'UTC';
-- Aggregates by the Aggregate node over the scan shown (BidimAgg, which computes them
-- inside the scan, has its own tests: batch_agg).
SET bidim.enable_batch_aggregation = off;
CREATE TABLE points (series_id bigint, ts timestamptz, value float8) USING bidim;
SELECT (bidim.configure('points', hot_chunk_rows => 1000, partition_interval => '1 hour')).rel IS NOT NULL AS configured;
-- 24 hours, one row per series every 30 s: 2880 rows per hour, so 3 chunks per hour.
INSERT INTO points
SELECT s, timestamptz '2026-01-01' + t * interval '30 seconds', s * 1000 + t
FROM generate_series(1, 10) s, generate_series(0, 2879) t;
ANALYZE points;
SELECT count(*) AS chunks FROM bidim.chunks;

-- A helper that runs a query with and without pruning and says whether they agree.
CREATE FUNCTION same_answer(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE a text; b text;
BEGIN
    SET LOCAL bidim.enable_pruning = on;
    EXECUTE format('SELECT md5(string_agg(x::text, '','' ORDER BY x::text)) FROM (%s) x', q) INTO a;
    SET LOCAL bidim.enable_pruning = off;
    EXECUTE format('SELECT md5(string_agg(x::text, '','' ORDER BY x::text)) FROM (%s) x', q) INTO b;
    RETURN a IS NOT DISTINCT FROM b;
END $$;

EXPLAIN (COSTS OFF) SELECT count(*) FROM points WHERE ts >= '2026-01-01 05:00' AND ts < '2026-01-01 07:00';
SELECT count(*), sum(value) FROM points WHERE ts >= '2026-01-01 05:00' AND ts < '2026-01-01 07:00';
SELECT same_answer($$SELECT * FROM points WHERE ts >= '2026-01-01 05:00' AND ts < '2026-01-01 07:00'$$);
EXPLAIN (COSTS OFF) SELECT * FROM points WHERE ts = '2026-01-01 12:00:30';
SELECT * FROM points WHERE ts = '2026-01-01 12:00:30' ORDER BY series_id LIMIT 3;
EXPLAIN (COSTS OFF) SELECT count(*) FROM points WHERE '2026-01-01 22:00' < ts;
SELECT same_answer($$SELECT * FROM points WHERE '2026-01-01 22:00' < ts$$);
SELECT same_answer($$SELECT * FROM points WHERE ts <= '2026-01-01 00:59:30' AND series_id = 3$$);
SELECT same_answer($$SELECT * FROM points WHERE ts > '2026-01-01 10:00' AND ts <= '2026-01-01 10:00:30'$$);
-- A key (equality, also cross-type: series_id is bigint, 3 is integer) reads the
-- chunks' (key, time) index.
EXPLAIN (COSTS OFF) SELECT * FROM points WHERE series_id = 3 AND ts >= '2026-01-01 06:00' AND ts < '2026-01-01 06:05';
SELECT * FROM points WHERE series_id = 3 AND ts >= '2026-01-01 06:00' AND ts < '2026-01-01 06:05' ORDER BY ts;
SELECT same_answer($$SELECT * FROM points WHERE series_id = 3 AND ts >= '2026-01-01 06:00' AND ts < '2026-01-01 09:05'$$);
SELECT same_answer($$SELECT * FROM points WHERE series_id = 7$$);
SELECT same_answer($$SELECT * FROM points WHERE 7::int2 = series_id AND ts <= '2026-01-01 03:00'$$);
SELECT same_answer($$SELECT * FROM points WHERE series_id = 7 AND series_id = 8$$);
SELECT count(*) FROM points WHERE series_id = NULL::bigint;
-- Contradictions and NULL bounds read nothing.
EXPLAIN (COSTS OFF) SELECT count(*) FROM points WHERE ts > '2026-01-01 10:00' AND ts < '2026-01-01 09:00';
SELECT count(*) FROM points WHERE ts > '2026-01-01 10:00' AND ts < '2026-01-01 09:00';
SELECT count(*) FROM points WHERE ts > NULL::timestamptz;
-- Stable expressions (now()) are evaluated at executor start.
EXPLAIN (COSTS OFF) SELECT count(*) FROM points WHERE ts >= now() - (now() - timestamptz '2026-01-01 23:00');
SELECT count(*) FROM points WHERE ts >= now() - (now() - timestamptz '2026-01-01 23:00');
-- Generic plans with parameters prune at executor start.
SET plan_cache_mode = force_generic_plan;
PREPARE q(timestamptz, timestamptz) AS SELECT count(*), min(ts), max(ts) FROM points WHERE ts >= $1 AND ts < $2;
EXPLAIN (COSTS OFF) EXECUTE q('2026-01-01 03:00', '2026-01-01 04:00');
EXECUTE q('2026-01-01 03:00', '2026-01-01 04:00');
EXECUTE q('2026-01-01 23:30', '2027-01-01');
DEALLOCATE q;
RESET plan_cache_mode;
-- Run-time parameters (a lateral join): bounds are evaluated again at every rescan.
SELECT h, (SELECT count(*) FROM points p WHERE p.ts >= h AND p.ts < h + interval '1 hour') AS n
FROM generate_series(timestamptz '2026-01-01 00:00', '2026-01-01 02:00', interval '1 hour') h;
SELECT same_answer($$SELECT h, (SELECT count(*) FROM points p WHERE p.ts >= h AND p.ts < h + interval '1 hour') FROM generate_series(timestamptz '2026-01-01 00:00', '2026-01-01 05:00', interval '30 minutes') h$$);
-- Conditions the scan cannot use (other types, other columns, volatile) do not prune
-- but still filter.
EXPLAIN (COSTS OFF) SELECT count(*) FROM points WHERE ts::date = '2026-01-01';
EXPLAIN (COSTS OFF) SELECT count(*) FROM points WHERE ts > clock_timestamp() - interval '100 years';
-- UPDATE and DELETE through the pruning scan.
EXPLAIN (COSTS OFF) UPDATE points SET value = -value WHERE ts >= '2026-01-01 20:00' AND ts < '2026-01-01 20:10';
UPDATE points SET value = -value WHERE ts >= '2026-01-01 20:00' AND ts < '2026-01-01 20:10';
DELETE FROM points WHERE ts >= '2026-01-01 21:00' AND ts < '2026-01-01 21:05' AND series_id < 5;
SELECT count(*), sum(value) FROM points WHERE ts >= '2026-01-01 20:00' AND ts < '2026-01-01 22:00';
SELECT same_answer($$SELECT * FROM points WHERE ts >= '2026-01-01 20:00' AND ts < '2026-01-01 22:00'$$);
-- EXPLAIN ANALYZE counts the chunks the scan really read.
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM points WHERE ts >= '2026-01-01 23:00';
-- A text key.
CREATE TABLE logs (host text, ts timestamptz, msg text) USING bidim;
INSERT INTO logs SELECT 'web-' || (g % 5), timestamptz '2026-01-01' + g * interval '1 minute', 'm' || g
FROM generate_series(1, 3000) g;
ANALYZE logs;
EXPLAIN (COSTS OFF) SELECT count(*) FROM logs WHERE host = 'web-3';
SELECT count(*) FROM logs WHERE host = 'web-3';
SELECT same_answer($$SELECT * FROM logs WHERE host = 'web-3' AND ts > '2026-01-02'$$);
DROP TABLE logs;
-- The switch.
SET bidim.enable_pruning = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM points WHERE ts >= '2026-01-01 23:00';
RESET bidim.enable_pruning;
DROP FUNCTION same_answer(text);
DROP TABLE points;
DROP EXTENSION bidim;
