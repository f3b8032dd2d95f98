-- bidim demo: a small metrics walk-through.
-- Run by scripts/demo.sh against a throwaway cluster with bidim preloaded.
-- Points live in a bidim table (key range x time chunks), series carry a tagset with a
-- GIN index and a describe-tags dictionary, latencies are summarized with ddsketch.
\set ON_ERROR_STOP 1
\pset footer off

CREATE EXTENSION bidim;
\echo '--- the extension, as listed by psql (dx bidim)'
\dx bidim
SELECT bidim.version() AS library_version, bidim.preloaded() AS preloaded;

\echo '--- sample metrics: 200 series (host x service x env), one point per 10 s for 6 hours'
CREATE TABLE series (id bigint PRIMARY KEY, metric text NOT NULL, tags tagset NOT NULL);
INSERT INTO series
SELECT h * 10 + s,
       'http.request.latency',
       tags(ARRAY['host:web-' || h, 'service:svc-' || s, 'env:' || (CASE WHEN h % 4 = 0 THEN 'staging' ELSE 'prod' END)])
FROM generate_series(1, 20) h, generate_series(0, 9) s;
CREATE INDEX ON series USING gin (tags);
SELECT bidim.enable_tag_dictionary('series', 'tags') AS series_in_tag_dictionary;

CREATE TABLE points (series_id bigint NOT NULL, ts timestamptz NOT NULL, value float8 NOT NULL)
    USING bidim;
-- hourly time partitions, hot chunks sealed every 50,000 rows
SELECT rel, key_column, time_column, hot_chunk_rows, partition_interval
FROM bidim.configure('points', hot_chunk_rows => 50000, partition_interval => interval '1 hour');
INSERT INTO points
SELECT s.id,
       timestamptz '2026-11-21 00:00:00+00' + make_interval(secs => 10 * t),
       -- latency in ms: lognormal-ish, a slow service and a slow host
       exp(3 + 0.5 * sqrt(-2 * ln(random())) * cos(2 * pi() * random()))
         * (CASE WHEN s.id % 10 = 7 THEN 3 ELSE 1 END)
         * (CASE WHEN s.id / 10 = 13 THEN 2 ELSE 1 END)
FROM series s, generate_series(0, 6 * 360 - 1) t;
ANALYZE series; ANALYZE points;
SELECT count(*) AS points, count(DISTINCT series_id) AS series FROM points;

\echo '--- how bidim stored them: one time partition per hour, sealed and hot chunks'
SELECT partition, chunks, pg_size_pretty(bytes) AS size FROM bidim.time_partitions ORDER BY partition;
SELECT state, count(*) AS chunks FROM bidim.chunks GROUP BY state ORDER BY state;
SELECT pg_size_pretty(bidim.table_size('points')) AS table_size;

\echo '--- describe tags (from the dictionary, no scan of series)'
SELECT * FROM bidim.tag_keys('series');
SELECT * FROM bidim.tag_values('series', 'env');

\echo '--- tag query: which series are prod, service svc-7, on a web-1x host?'
SELECT id, tags FROM series WHERE tags @@ 'env:prod AND service:svc-7 AND host:/web-1[0-9]/' ORDER BY id LIMIT 5;

\echo '--- p50 / p99 latency per env, last 2 hours (ddsketch, 1% relative accuracy)'
SELECT env,
       ddsketch_count(d) AS points,
       round(approx_percentile(d, 0.5)::numeric, 2) AS p50_ms,
       round(approx_percentile(d, 0.99)::numeric, 2) AS p99_ms
FROM (SELECT s.tags -> 'env' AS env, ddsketch_agg(p.value) AS d
      FROM points p JOIN series s ON s.id = p.series_id
      WHERE p.ts >= timestamptz '2026-11-21 04:00:00+00'
      GROUP BY 1) x
ORDER BY 1;

\echo '--- the same p99 exactly (percentile_disc), for comparison'
SELECT s.tags -> 'env' AS env,
       round(percentile_disc(0.99) WITHIN GROUP (ORDER BY p.value)::numeric, 2) AS p99_ms
FROM points p JOIN series s ON s.id = p.series_id
WHERE p.ts >= timestamptz '2026-11-21 04:00:00+00'
GROUP BY 1 ORDER BY 1;

\echo '--- hourly sketches rolled up: the slowest services by p99 (prod only)'
CREATE TABLE hourly AS
SELECT p.series_id, date_trunc('hour', p.ts) AS hour, ddsketch_agg(p.value) AS latency
FROM points p GROUP BY 1, 2;
SELECT s.tags -> 'service' AS service,
       round(approx_percentile(rollup(h.latency), 0.99)::numeric, 2) AS p99_ms
FROM hourly h JOIN series s ON s.id = h.series_id
WHERE s.tags @@ 'env:prod'
GROUP BY 1 ORDER BY 2 DESC LIMIT 3;

\echo '--- counters: requests_total of 5 services, service 3 restarted (a reset) at 03:00'
CREATE TABLE requests (series_id bigint NOT NULL, ts timestamptz NOT NULL, total float8 NOT NULL) USING bidim;
INSERT INTO requests
SELECT s, timestamptz '2026-11-21 00:00:00+00' + make_interval(secs => 10 * t),
       CASE WHEN s = 3 AND t >= 1080 THEN 7 * (t - 1080) ELSE 7 * t END
FROM generate_series(1, 5) s, generate_series(0, 6 * 360 - 1) t;
-- increase over the whole span (the reset added back), and PromQL's
-- rate(requests_total[5m]) evaluated at 04:00 (requests per second)
SELECT series_id, increase(total, ts),
       rate(total, ts, timestamptz '2026-11-21 03:55:00+00', timestamptz '2026-11-21 04:00:00+00')
         FILTER (WHERE ts > timestamptz '2026-11-21 03:55:00+00' AND ts <= timestamptz '2026-11-21 04:00:00+00') AS rate_5m
FROM requests GROUP BY 1 ORDER BY 1;

\echo '--- gauges: a sparse queue-depth gauge, time-weighted (linear and last value carried forward)'
SELECT time_weighted_avg(depth, ts) AS linear, time_weighted_avg(depth, ts, 'locf') AS locf,
       avg(depth) AS naive_avg, last(depth, ts) AS last_value
FROM (VALUES (timestamptz '2026-11-21 00:00+00', 0::float8), ('2026-11-21 00:01+00', 100),
             ('2026-11-21 00:02+00', 0), ('2026-11-21 01:00+00', 0)) g(ts, depth);

\echo '--- distributions: a 1-hour rollup of the latencies, materialized now (the worker would do it)'
SELECT bidim.add_rollup('points', interval '1 hour', columns => ARRAY['value']) AS rollup_view;
CALL bidim.refresh_rollup('points_1h');
SELECT view, bucket, columns, materialized_until, buckets_materialized, rows_rolled_up, pending_buckets
FROM bidim.rollups;
-- p99 per service over the whole span from the rollup, equal to the raw answer
SELECT s.tags -> 'service' AS service,
       round(approx_percentile(rollup(h.value_sketch), 0.99)::numeric, 2) AS p99_ms
FROM points_1h h JOIN series s ON s.id = h.series_id
WHERE s.tags @@ 'env:prod'
GROUP BY 1 ORDER BY 2 DESC LIMIT 3;
SELECT round(approx_percentile(rollup(value_sketch), 0.99)::numeric, 2) AS p99_all_from_rollup,
       (SELECT round(approx_percentile(ddsketch_agg(value), 0.99)::numeric, 2) FROM points) AS p99_all_from_raw
FROM points_1h_total;
-- a late point lands in a materialized hour: the view reads that hour raw until the next refresh
INSERT INTO points VALUES (11, timestamptz '2026-11-21 00:30:00+00', 5000);
SELECT pending_buckets FROM bidim.rollups;
SELECT ddsketch_max(rollup(value_sketch)) AS max_ms FROM points_1h WHERE series_id = 11;

\echo '--- retention: drop the first two hours, and a policy for the background worker'
SELECT bidim.drop_before('points', timestamptz '2026-11-21 02:00:00+00') AS partitions_dropped;
SELECT bidim.add_retention_policy('points', interval '30 days') AS retention_job;
SELECT job_id, kind, rel, drop_after, next_run IS NOT NULL AS scheduled FROM bidim.jobs ORDER BY job_id;
SELECT * FROM bidim.table_stats('points');
-- the rollup keeps the dropped hours
SELECT count(*) AS hours_kept FROM points_1h_total WHERE bucket < timestamptz '2026-11-21 02:00:00+00';
