-- bidim demo: a small metrics walk-through.
-- Run by scripts/demo.sh against a throwaway cluster with bidim preloaded.
-- Points live in a bidim table (key range x time chunks). As more capabilities land,
-- this script switches to them: ddsketch_agg / approx_percentile, tagset / tagquery.
\set ON_ERROR_STOP 1
\pset footer off

CREATE EXTENSION bidim;
\echo '--- the extension, as listed by psql (dx bidim)'
\dx bidim
SELECT bidim.version() AS library_version, bidim.preloaded() AS preloaded;

\echo '--- sample metrics: 200 series (host x service x env), one point per 10 s for 6 hours'
CREATE TABLE series (id bigint PRIMARY KEY, metric text NOT NULL, tags text[] NOT NULL);
INSERT INTO series
SELECT h * 10 + s,
       'http.request.latency',
       ARRAY['host:web-' || h, 'service:svc-' || s, 'env:' || (CASE WHEN h % 4 = 0 THEN 'staging' ELSE 'prod' END)]
FROM generate_series(1, 20) h, generate_series(0, 9) s;
CREATE INDEX ON series USING gin (tags);

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

\echo '--- tag query: which series are prod and service svc-7?'
SELECT id, tags FROM series WHERE tags @> ARRAY['env:prod', 'service:svc-7'] ORDER BY id LIMIT 5;

\echo '--- p50 / p99 latency per env, last 2 hours'
SELECT split_part(t.tag, ':', 2) AS env,
       count(*) AS points,
       round(percentile_disc(0.5) WITHIN GROUP (ORDER BY p.value)::numeric, 2) AS p50_ms,
       round(percentile_disc(0.99) WITHIN GROUP (ORDER BY p.value)::numeric, 2) AS p99_ms
FROM points p
JOIN series s ON s.id = p.series_id
CROSS JOIN LATERAL unnest(s.tags) AS t(tag)
WHERE t.tag LIKE 'env:%'
  AND p.ts >= timestamptz '2026-11-21 04:00:00+00'
GROUP BY 1 ORDER BY 1;

\echo '--- the slowest services by p99 (prod only)'
SELECT split_part(t.tag, ':', 2) AS service,
       round(percentile_disc(0.99) WITHIN GROUP (ORDER BY p.value)::numeric, 2) AS p99_ms
FROM points p
JOIN series s ON s.id = p.series_id
CROSS JOIN LATERAL unnest(s.tags) AS t(tag)
WHERE s.tags @> ARRAY['env:prod'] AND t.tag LIKE 'service:%'
GROUP BY 1 ORDER BY 2 DESC LIMIT 3;
