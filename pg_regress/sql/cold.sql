-- Cold chunks: bidim.convert turns sealed chunks into sorted, compressed column
-- batches. Every answer is compared with a heap table holding the same rows.
CREATE EXTENSION bidim;
SET timezone = 'UTC';

-- Every kind of column: numbers (with NaN, -0, infinities, extremes), text (few and
-- many distinct values, empty strings, TOASTed values), bytea, booleans, arrays, jsonb,
-- numeric, an enum, a domain, a composite, and bidim's own tagset and ddsketch.
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN pos AS int CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);
CREATE TABLE c (
    series_id bigint, ts timestamptz, f8 float8, f4 real, i2 smallint, i4 int, i8 bigint,
    t text, tt text, by bytea, bo bool, arr int[], j jsonb, n numeric, m mood, p pos,
    pr pair, tg tagset, sk ddsketch, d date, u uuid, iv interval, ch "char"
) USING bidim;
SELECT bidim.configure('c', hot_chunk_rows => 300, partition_interval => '1 day');
INSERT INTO c
SELECT g % 13, timestamptz '2026-01-01' + g * interval '97 seconds',
       CASE g % 50 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN '-0'::float8 WHEN 2 THEN 'Infinity'::float8
                   WHEN 3 THEN '-Infinity'::float8 WHEN 4 THEN 1.7976931348623157e308::float8
                   WHEN 5 THEN NULL ELSE g * 0.25::float8 END,
       CASE WHEN g % 40 = 0 THEN 'NaN'::real WHEN g % 40 = 1 THEN '-0'::real ELSE g / 3.0 END,
       CASE WHEN g % 30 = 0 THEN -32768 WHEN g % 30 = 1 THEN 32767 ELSE g % 1000 END,
       CASE WHEN g % 11 = 0 THEN NULL ELSE g * 7 END,
       CASE WHEN g % 17 = 0 THEN -9223372036854775808 WHEN g % 17 = 1 THEN 9223372036854775807 ELSE g::bigint * 1000003 END,
       'host_' || (g % 5),
       CASE WHEN g % 9 = 0 THEN '' WHEN g % 97 = 0 THEN repeat(md5(g::text), 400) ELSE md5(g::text) END,
       decode(md5(g::text), 'hex'),
       CASE WHEN g % 7 = 0 THEN NULL ELSE g % 2 = 0 END,
       ARRAY[g, g + 1, NULL],
       jsonb_build_object('g', g, 'odd', g % 2 = 1),
       g / 7.0,
       (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::mood,
       1 + g % 10,
       ROW(g, 'x' || g)::pair,
       ('{host:h' || (g % 4) || ',env:prod}')::tagset,
       (SELECT ddsketch_agg(x) FROM generate_series(1, g % 5 + 1) x),
       date '2026-01-01' + g % 30,
       md5(g::text)::uuid,
       g * interval '1 second',
       chr(65 + g % 26)::"char"
FROM generate_series(1, 4000) g;
CREATE TABLE h AS SELECT * FROM c;
-- the same rows, compared by their text form (every column's output function)
CREATE VIEW diff AS
SELECT count(*) AS rows_differing FROM (
    (SELECT c::text FROM c EXCEPT ALL SELECT h::text FROM h)
    UNION ALL (SELECT h::text FROM h EXCEPT ALL SELECT c::text FROM c)) d;

SELECT bidim.seal('c');
SELECT state, count(*) AS chunks FROM bidim.chunks WHERE rel = 'c'::regclass GROUP BY state;

-- Only chunks holding rows before older_than; then the rest.
SELECT bidim.convert('c', older_than => '2026-01-03');
-- (a cold chunk's rows were counted by its conversion; a sealed one's come from statistics)
SELECT state, count(*) AS chunks, sum(rows) FILTER (WHERE state = 'cold') AS rows
FROM bidim.chunks WHERE rel = 'c'::regclass GROUP BY state ORDER BY state;
SELECT * FROM diff;
-- (half of them through the chunks' (key, time) index, half sorted: the same rows)
SELECT bidim.convert('c', older_than => '2026-01-04');
SET enable_indexscan = off;
SELECT bidim.convert('c');
RESET enable_indexscan;
SELECT bidim.convert('c');
SELECT state, count(*) AS chunks, sum(rows) AS rows, sum(bytes) < sum(bytes_before) AS smaller
FROM bidim.chunks WHERE rel = 'c'::regclass GROUP BY state ORDER BY state;
SELECT * FROM diff;
SELECT chunks, hot_chunks, cold_chunks, cold_rows, compression_ratio > 0 AS has_ratio
FROM bidim.table_stats('c');
-- ANALYZE samples cold rows (a cold chunk's blocks stand for its batches).
ANALYZE c;
SELECT reltuples AS rows_estimated FROM pg_class WHERE oid = 'c'::regclass;
SELECT attname, n_distinct, null_frac FROM pg_stats WHERE tablename = 'c' AND attname IN ('series_id', 'i4', 'm') ORDER BY 1;
-- bit patterns of special floats, NULLs, extremes, TOASTed text
SELECT count(*) FILTER (WHERE f8 = 'NaN') AS nan, count(*) FILTER (WHERE f8::text = '-0') AS neg_zero,
       count(*) FILTER (WHERE f8 = 'Infinity') AS inf, count(*) FILTER (WHERE f8 IS NULL) AS nulls,
       count(*) FILTER (WHERE i8 = -9223372036854775808) AS i8_min, count(*) FILTER (WHERE length(tt) = 12800) AS toasted,
       count(*) FILTER (WHERE tt = '') AS empty
FROM c;

-- Queries: sequential, by key, key sets, time ranges, newest first, joins, parallel.
SELECT count(*), sum(i4), sum(f4), min(ts), max(ts) FROM c;
SELECT count(*), sum(i4), sum(f4), min(ts), max(ts) FROM h;
EXPLAIN (COSTS OFF) SELECT count(*) FROM c WHERE series_id = 5 AND ts >= '2026-01-02' AND ts < '2026-01-02 06:00';
SELECT count(*), sum(i4) FROM c WHERE series_id = 5 AND ts >= '2026-01-02' AND ts < '2026-01-02 06:00';
SELECT count(*), sum(i4) FROM h WHERE series_id = 5 AND ts >= '2026-01-02' AND ts < '2026-01-02 06:00';
SELECT series_id, count(*), sum(i2) FROM c WHERE series_id IN (1, 4, 12, 99) GROUP BY 1 ORDER BY 1;
SELECT series_id, count(*), sum(i2) FROM h WHERE series_id IN (1, 4, 12, 99) GROUP BY 1 ORDER BY 1;
SELECT ts, i4, t FROM c WHERE series_id = 3 ORDER BY ts DESC LIMIT 4;
SELECT ts, i4, t FROM h WHERE series_id = 3 ORDER BY ts DESC LIMIT 4;
SELECT ts, i4 FROM c WHERE series_id = 3 ORDER BY ts LIMIT 2;
SELECT ts, i4 FROM h WHERE series_id = 3 ORDER BY ts LIMIT 2;
-- A newest-first read hands out each batch's last row from the batch row, decoding
-- nothing until a second row of the batch is wanted. Every series' newest row, every
-- column, compared by its text form with the heap table's.
CREATE VIEW newest AS
SELECT s, n.r AS bidim, o.r AS heap
FROM generate_series(0, 13) s
LEFT JOIN LATERAL (SELECT c::text AS r FROM c WHERE series_id = s ORDER BY ts DESC LIMIT 1) n ON true
LEFT JOIN LATERAL (SELECT h::text AS r FROM h WHERE series_id = s ORDER BY ts DESC LIMIT 1) o ON true;
SELECT count(*) AS series, count(bidim) AS found, count(*) FILTER (WHERE bidim IS DISTINCT FROM heap) AS differing
FROM newest;
SET max_parallel_workers_per_gather = 0;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM c WHERE series_id = 3 ORDER BY ts DESC LIMIT 1;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM c WHERE series_id = 3 ORDER BY ts DESC LIMIT 2;
RESET max_parallel_workers_per_gather;
-- the row's TID names the same row
SELECT c::text = (SELECT x::text FROM c x WHERE x.ctid = c.ctid) AS same_row
FROM c WHERE series_id = 3 ORDER BY ts DESC LIMIT 1;
SELECT count(*), sum(i4) FROM c WHERE ts >= '2026-01-03 10:00' AND ts < '2026-01-03 11:00';
SELECT count(*), sum(i4) FROM h WHERE ts >= '2026-01-03 10:00' AND ts < '2026-01-03 11:00';
CREATE TABLE s (id bigint, name text);
INSERT INTO s VALUES (2, 'two'), (7, 'seven');
SELECT s.name, count(*), sum(c.i4) FROM s JOIN c ON c.series_id = s.id GROUP BY 1 ORDER BY 1;
SELECT s.name, count(*), sum(h.i4) FROM s JOIN h ON h.series_id = s.id GROUP BY 1 ORDER BY 1;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SELECT count(*), sum(i8 % 1000), sum(length(tt)) FROM c WHERE ts < '2026-01-04';
SELECT count(*), sum(i8 % 1000), sum(length(tt)) FROM h WHERE ts < '2026-01-04';
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
-- Batches keep the min/max of number, date and time columns: a filter skips batches
-- that cannot match (NaN sorts above every number, as in PostgreSQL; NULLs never match).
SET max_parallel_workers_per_gather = 0;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM c WHERE i4 > 27000;
RESET max_parallel_workers_per_gather;
SELECT count(*), sum(i4) FROM c WHERE i4 > 27000;
SELECT count(*), sum(i4) FROM h WHERE i4 > 27000;
SELECT count(*) FROM c WHERE f8 > 1e300;
SELECT count(*) FROM h WHERE f8 > 1e300;
SELECT count(*), min(f4) FROM c WHERE f4 <= 1 AND i2 >= 0;
SELECT count(*), min(f4) FROM h WHERE f4 <= 1 AND i2 >= 0;
SELECT count(*) FROM c WHERE d = '2026-01-05' AND i8 < 0;
SELECT count(*) FROM h WHERE d = '2026-01-05' AND i8 < 0;
SELECT count(*) FROM c WHERE i2 = 32767::int8;
SELECT count(*) FROM h WHERE i2 = 32767::int8;
-- BidimScan also checks those conditions on each row of a decoded batch, leaving out
-- the rows that surely fail (counted as removed by the filter); the filter decides the
-- rest. Rows compared with the heap table's, every kind of column and value.
SET bidim.enable_batch_aggregation = off;
SET max_parallel_workers_per_gather = 0;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT ts, i4 FROM c WHERE i4 > 27000;
RESET max_parallel_workers_per_gather;
CREATE FUNCTION rows_differ(cond text) RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE r bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM ((SELECT ctid::text IS NOT NULL, series_id, ts, f8, f4, i2, i4, i8, d FROM c WHERE %1$s
                    EXCEPT ALL SELECT true, series_id, ts, f8, f4, i2, i4, i8, d FROM h WHERE %1$s)
                   UNION ALL (SELECT true, series_id, ts, f8, f4, i2, i4, i8, d FROM h WHERE %1$s
                    EXCEPT ALL SELECT true, series_id, ts, f8, f4, i2, i4, i8, d FROM c WHERE %1$s)) x', cond) INTO r;
    RETURN r;
END $f$;
SELECT cond, rows_differ(cond) FROM (VALUES ('f8 > 1e300'), ('f8 >= ''NaN'''), ('f8 = 0'), ('f8 < 0'),
    ('f4 <= 1 AND i2 >= 0'), ('d = ''2026-01-05'' AND i8 < 0'), ('i2 = 32767::int8'), ('i2 < 3.5'),
    ('i4 > 27000'), ('i8 <= -5 AND f4 > 0.5'), ('ts >= ''2026-01-03 05:00'' AND f8 < 100'),
    ('d < ''2026-01-04''::timestamp'), ('ts < ''2026-01-02 07:13:20'''),
    ('ts > ''2026-01-02'' AND ts <= ''2026-01-02 03:00'' AND i4 > 100')) v(cond);
DROP FUNCTION rows_differ(text);
RESET bidim.enable_batch_aggregation;
-- In READ COMMITTED a scan keeps no lock on the cold chunks (nor their indexes) it read.
BEGIN;
SELECT count(*) FROM c WHERE series_id IN (5, 6);
SELECT count(*) AS internal_locks FROM pg_locks l JOIN pg_class k ON k.oid = l.relation
WHERE l.pid = pg_backend_pid() AND k.relnamespace = 'bidim_internal'::regnamespace;
COMMIT;
-- a cold row by its TID
SELECT series_id, ts FROM c WHERE ctid = (SELECT ctid FROM c WHERE series_id = 6 ORDER BY ts LIMIT 1);

-- New rows for a cold time partition go to a hot chunk of their cell.
INSERT INTO c (series_id, ts, i4) VALUES (5, '2026-01-01 12:00:30', -1);
INSERT INTO h (series_id, ts, i4) VALUES (5, '2026-01-01 12:00:30', -1);
SELECT * FROM diff;
SELECT state, count(*) FROM bidim.chunks WHERE rel = 'c'::regclass AND partition = '2026-01-01' GROUP BY state ORDER BY state;

-- Changing cold rows: a statement first moves the batches its conditions can reach
-- back to a hot chunk of their cell (in its transaction), then changes heap rows.
-- A role that may read but not change the table: its DELETE, UPDATE and FOR UPDATE
-- fail on privileges before any batch moves (the chunk states stay as they were).
CREATE ROLE cold_reader;
GRANT SELECT ON c TO cold_reader;
SELECT state, count(*) FROM bidim.chunks WHERE rel = 'c'::regclass GROUP BY state ORDER BY state;
SET ROLE cold_reader;
DELETE FROM c WHERE series_id = 4;
UPDATE c SET i4 = 0 WHERE series_id = 4;
SELECT count(*) FROM (SELECT * FROM c WHERE series_id = 4 FOR UPDATE) x;
SELECT count(*) FROM c WHERE series_id = 4;
RESET ROLE;
SELECT state, count(*) FROM bidim.chunks WHERE rel = 'c'::regclass GROUP BY state ORDER BY state;
REVOKE ALL ON c FROM cold_reader;
DROP ROLE cold_reader;
CREATE TABLE deleted_log (series_id bigint, ts timestamptz);
CREATE FUNCTION log_delete() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN INSERT INTO deleted_log VALUES (OLD.series_id, OLD.ts); RETURN OLD; END$$;
CREATE TRIGGER c_deleted AFTER DELETE ON c FOR EACH ROW EXECUTE FUNCTION log_delete();
DELETE FROM c WHERE series_id = 5 AND ts < '2026-01-01 12:00';
DELETE FROM h WHERE series_id = 5 AND ts < '2026-01-01 12:00';
SELECT count(*), min(ts), max(ts) FROM deleted_log;
SELECT * FROM diff;
-- a cursor without FOR UPDATE reads cold rows: WHERE CURRENT OF cannot change them
BEGIN;
DECLARE cur CURSOR FOR SELECT series_id, ts FROM c WHERE series_id = 10 AND ts >= '2026-01-03' AND ts < '2026-01-03 03:00';
FETCH 1 FROM cur;
DELETE FROM c WHERE CURRENT OF cur;
ROLLBACK;
-- a read-only transaction gets PostgreSQL's own error, nothing moves
BEGIN READ ONLY;
DELETE FROM c WHERE series_id = 11;
ROLLBACK;
-- in place, with RETURNING
WITH u AS (UPDATE c SET i4 = 0, t = 'changed' WHERE series_id = 6 AND ts < '2026-01-01 06:00' RETURNING i4, t, ts)
SELECT count(*), sum(i4), min(t), min(ts) FROM u;
UPDATE h SET i4 = 0, t = 'changed' WHERE series_id = 6 AND ts < '2026-01-01 06:00';
SELECT * FROM diff;
-- across cells: rows move to another day's partition, and between cold days
UPDATE c SET ts = ts + interval '1 day' WHERE series_id = 7 AND ts < '2026-01-01 03:00';
UPDATE h SET ts = ts + interval '1 day' WHERE series_id = 7 AND ts < '2026-01-01 03:00';
SELECT * FROM diff;
-- a key set and the statement's parameters (a generic plan)
PREPARE del(bigint[], timestamptz) AS DELETE FROM c WHERE series_id = ANY ($1) AND ts < $2;
SET plan_cache_mode = force_generic_plan;
EXECUTE del('{1, 2}', '2026-01-01 02:00');
RESET plan_cache_mode;
DELETE FROM h WHERE series_id = ANY ('{1, 2}') AND ts < '2026-01-01 02:00';
SELECT * FROM diff;
-- rows that only a join or a subquery picks: every batch within the time conditions moves
-- (with none, every batch of the table)
UPDATE c SET i2 = -7 FROM s WHERE c.series_id = s.id AND c.ts < '2026-01-01 08:00';
UPDATE h SET i2 = -7 FROM s WHERE h.series_id = s.id AND h.ts < '2026-01-01 08:00';
DELETE FROM c WHERE series_id IN (SELECT id + 1 FROM s) AND i4 % 3 = 0;
DELETE FROM h WHERE series_id IN (SELECT id + 1 FROM s) AND i4 % 3 = 0;
SELECT * FROM diff;
-- MERGE, and row locks
MERGE INTO c USING s ON c.series_id = s.id AND c.ts < '2026-01-02 01:00'
WHEN MATCHED THEN UPDATE SET i8 = 42;
MERGE INTO h USING s ON h.series_id = s.id AND h.ts < '2026-01-02 01:00'
WHEN MATCHED THEN UPDATE SET i8 = 42;
SELECT * FROM diff;
BEGIN;
SELECT count(*) FROM (SELECT * FROM c WHERE series_id = 8 AND ts < '2026-01-02 12:00' FOR UPDATE) x;
SELECT count(*) FROM (SELECT * FROM c WHERE series_id = 8 AND ts < '2026-01-02 12:00' FOR SHARE) x;
COMMIT;
-- a rolled-back change leaves the rows cold and unchanged
BEGIN;
DELETE FROM c WHERE series_id = 9;
SELECT count(*) FROM c WHERE series_id = 9;
ROLLBACK;
SELECT * FROM diff;
-- the hot row can be changed
DELETE FROM c WHERE i4 = -1;
DELETE FROM h WHERE i4 = -1;
SELECT * FROM diff;
DROP TRIGGER c_deleted ON c;
-- A cold chunk's rows are those its batches hold now: moved rows count in hot chunks.
SELECT sum(rows) FILTER (WHERE state = 'cold') < 4000 AS fewer_cold_rows,
       sum(rows) FILTER (WHERE state = 'cold') = (SELECT cold_rows FROM bidim.table_stats('c')) AS same_in_stats
FROM bidim.chunks WHERE rel = 'c'::regclass;
SELECT bidim.cold_rows('c', 0) AS no_such_chunk;

-- Columns added after the conversion read as their default in cold rows; dropped ones
-- disappear.
ALTER TABLE c ADD COLUMN extra int DEFAULT 42;
ALTER TABLE h ADD COLUMN extra int DEFAULT 42;
ALTER TABLE c DROP COLUMN by;
ALTER TABLE h DROP COLUMN by;
SELECT * FROM diff;
SELECT count(*) AS series, count(bidim) AS found, count(*) FILTER (WHERE bidim IS DISTINCT FROM heap) AS differing
FROM newest;
SELECT count(*), sum(extra) FROM c;

-- Only the table's owner converts; bad arguments.
CREATE ROLE cold_stranger;
SET ROLE cold_stranger;
SELECT bidim.convert('c');
-- nor changes cold rows it may not change (nothing moves: the privileges are checked first)
DELETE FROM c WHERE series_id = 12;
UPDATE c SET i4 = 1 WHERE series_id = 12;
SELECT bidim.cold_rows('c', 1);
RESET ROLE;
DROP ROLE cold_stranger;
SELECT bidim.convert('h');
SELECT bidim.convert(NULL);

-- Retention drops cold partitions whole; TRUNCATE and DROP take cold chunks along.
SELECT bidim.drop_before('c', '2026-01-03');
DELETE FROM h WHERE ts < '2026-01-03';
SELECT * FROM diff;
TRUNCATE c;
SELECT count(*) FROM c;
SELECT count(*) FROM bidim.chunks WHERE rel = 'c'::regclass;
DROP VIEW diff, newest;
DROP TABLE c, h, s;
SELECT count(*) AS relations_left FROM pg_class WHERE relnamespace = 'bidim_internal'::regnamespace
  AND relname NOT LIKE 'pg_toast%' AND relkind = 'r';
DROP TYPE pair; DROP DOMAIN pos; DROP TYPE mood;

-- convert_after: the maintenance job converts sealed chunks older than it (a few per
-- run); interval '0' turns it off; negative ages are refused.
CREATE TABLE auto (k int, t timestamptz, v float8) USING bidim;
SELECT * FROM bidim.configure('auto', convert_after => '7 days');
SELECT bidim.configure('auto', convert_after => '-1 day');
INSERT INTO auto SELECT g % 5, timestamptz '2026-01-01' + g * interval '1 min', g FROM generate_series(1, 3000) g;
SELECT bidim.seal('auto');
SELECT bidim._maintain() > 0 AS worked;
SELECT state, count(*) FROM bidim.chunks WHERE rel = 'auto'::regclass GROUP BY state ORDER BY state;
SELECT count(*), sum(v) FROM auto;
SELECT convert_after FROM bidim.configure('auto', convert_after => '0');
DROP TABLE auto;
DROP EXTENSION bidim;
