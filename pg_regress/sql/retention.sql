-- Retention: bidim.drop_before drops whole time partitions before a cutoff.
CREATE EXTENSION bidim;
SET timezone = 'UTC';
CREATE TABLE points (series_id bigint, ts timestamptz, value float8) USING bidim;
SELECT (bidim.configure('points', hot_chunk_rows => 500, partition_interval => '1 day')).rel IS NOT NULL AS configured;
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
-- Totals.
SELECT rows >= 0 AS rows, chunks >= 3 AS chunks, key_ranges, partitions, time_lo, time_hi,
       bytes = bidim.table_size('points') AS bytes
FROM bidim.table_stats('points');
SELECT * FROM bidim.table_stats('plain');
-- Retention policies: jobs the background worker runs; bidim.run_job runs one now.
SELECT bidim.add_retention_policy('points', interval '2 days') AS job \gset
SELECT bidim.add_retention_policy('points', interval '1 day');
SELECT bidim.add_retention_policy('points', interval '1 day', if_not_exists => true);
SELECT bidim.add_retention_policy('points', interval '0');
SELECT bidim.add_retention_policy('points', NULL);
SELECT bidim.add_retention_policy('plain', interval '1 day');
SELECT kind, rel, drop_after, runs, failures, last_error FROM bidim.jobs ORDER BY job_id;
INSERT INTO points VALUES (1, now() - interval '5 days', 1), (1, now(), 2);
SELECT bidim.run_job(:job);
SELECT count(*) FROM points WHERE ts < now() - interval '3 days';
SELECT count(*) FROM points WHERE ts > now() - interval '1 day';
SELECT kind, runs, failures, last_error IS NULL AS ok, last_success IS NOT NULL AS succeeded,
       next_run > now() AS scheduled
FROM bidim.jobs WHERE job_id = :job;
SELECT bidim.run_job(-1);
SELECT job_id AS maint FROM bidim.jobs WHERE kind = 'maintenance' \gset
SELECT bidim.run_job(:maint);
SELECT kind, runs, last_error FROM bidim.jobs WHERE job_id = :maint;
-- A failing job records its error and stays scheduled.
SELECT bidim.remove_retention_policy('points');
SELECT bidim.add_retention_policy('points', interval '1000000 years') AS job \gset
SELECT bidim.run_job(:job);
SELECT kind, runs, failures, last_error, next_run > now() AS scheduled FROM bidim.jobs WHERE job_id = :job;
SELECT bidim.remove_retention_policy('points');
SELECT bidim.remove_retention_policy('points');
SELECT bidim.remove_retention_policy('points', if_exists => true);
-- Only superusers run jobs; owners manage their own tables' policies.
CREATE ROLE bidim_retention_user;
SET ROLE bidim_retention_user;
SELECT bidim.run_job(:job);
SELECT bidim.add_retention_policy('points', interval '1 day');
RESET ROLE;
-- Dropping a table drops its policy.
SELECT bidim.add_retention_policy('points', interval '30 days') IS NOT NULL AS added;
DROP TABLE plain, points;
SELECT count(*) FROM bidim.jobs WHERE kind = 'retention';
DROP ROLE bidim_retention_user;
DROP EXTENSION bidim;
