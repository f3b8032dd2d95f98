-- Retention: bidim.drop_before drops whole time partitions before a cutoff.
CREATE EXTENSION bidim;
SET timezone = 'UTC';
CREATE TABLE points (series_id bigint, ts timestamptz, value float8) USING bidim;
SELECT bidim.configure('points', hot_chunk_rows => 500, partition_interval => '1 day') IS NOT NULL AS configured;
-- 5 days, 1200 rows a day: several chunks per partition.
INSERT INTO points
SELECT g % 10, timestamptz '2026-01-01' + g * interval '72 seconds', g FROM generate_series(0, 5999) g;
SELECT partition, chunks > 1 AS several_chunks FROM bidim.time_partitions ORDER BY partition;
CREATE TEMP TABLE files AS
SELECT c.time_lo, pg_relation_filepath(c.chunk_rel) AS path FROM bidim.chunk c;
SELECT bidim.table_size('points') AS size_before \gset
-- Cut in the middle of day 3: days 1 and 2 go, day 3 stays (with a notice).
SELECT bidim.drop_before('points', '2026-01-03 12:00');
SELECT partition FROM bidim.time_partitions ORDER BY partition;
SELECT min(ts), count(*) FROM points;
SELECT count(*) FROM points WHERE ts < '2026-01-03';
SELECT bidim.table_size('points') < :size_before AS smaller;
-- The dropped chunks' disk space is freed at commit (PostgreSQL truncates a dropped
-- relation's file at once and unlinks it after the next checkpoint); kept ones stay.
SELECT time_lo < '2026-01-03' AS dropped,
       bool_and(coalesce((pg_stat_file(path, true)).size, 0) = 0) AS freed
FROM files GROUP BY 1 ORDER BY 1;
-- Nothing left before the cutoff: 0. Transactional: a rollback keeps everything.
SELECT bidim.drop_before('points', '2026-01-02');
BEGIN;
SELECT bidim.drop_before('points', '2027-01-01');
SELECT count(*) FROM points;
ROLLBACK;
SELECT count(*) FROM points;
-- New rows for a dropped partition make a new chunk there.
INSERT INTO points VALUES (1, '2026-01-01 06:00', 1);
SELECT count(*) FROM points WHERE ts < '2026-01-02';
-- Errors.
SELECT bidim.drop_before('points', NULL);
SELECT bidim.drop_before(NULL, now());
CREATE TABLE plain (k int, t timestamptz);
SELECT bidim.drop_before('plain', now());
DROP TABLE plain, points;
DROP EXTENSION bidim;
