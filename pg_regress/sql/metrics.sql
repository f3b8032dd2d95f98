-- Metric semantics (src/metrics/): counters (increase, rate, delta with resets and
-- Prometheus's extrapolation), gauges (time-weighted averages), first/last, gap
-- filling. Answers are checked against Prometheus's own examples and brute-force
-- oracles; serial, parallel and bidim-table plans against each other.
CREATE EXTENSION bidim;
SET timezone = 'UTC';

-- Prometheus promql/promqltest/testdata/functions.test: `load 5m`,
-- http_requests{path="/foo"} 0+10x10, /bar 0+10x5 0+10x5, /dings 10+10x10,
-- /bumms 1+10x10; `eval instant at 50m increase(http_requests[50m])`.
CREATE TABLE prom (path text, ts timestamptz, v float8);
INSERT INTO prom
SELECT '/foo', timestamptz '2026-01-01' + i * interval '5 minutes', 10 * i FROM generate_series(0, 10) i
UNION ALL SELECT '/bar', timestamptz '2026-01-01' + i * interval '5 minutes', 10 * (i % 6) FROM generate_series(0, 11) i
UNION ALL SELECT '/dings', timestamptz '2026-01-01' + i * interval '5 minutes', 10 + 10 * i FROM generate_series(0, 10) i
UNION ALL SELECT '/bumms', timestamptz '2026-01-01' + i * interval '5 minutes', 1 + 10 * i FROM generate_series(0, 10) i;
-- Prometheus 2 (closed range [0m, 50m]): 100, 90, 100, 100.
SELECT path, increase(v, ts, '2026-01-01', '2026-01-01 00:50') AS increase,
       round(rate(v, ts, '2026-01-01', '2026-01-01 00:50')::numeric, 6) AS rate
FROM prom WHERE ts BETWEEN '2026-01-01' AND '2026-01-01 00:50' GROUP BY path ORDER BY path;
-- Prometheus 3 (left-open range (0m, 50m]): /bar's first point is then 10, and 80 over
-- 45 minutes extrapolates to 88.888...
SELECT path, round(increase(v, ts, '2026-01-01', '2026-01-01 00:50')::numeric, 6) AS increase
FROM prom WHERE ts > '2026-01-01' AND ts <= '2026-01-01 00:50' GROUP BY path ORDER BY path;
-- Without a window: the sampled span only; delta is a gauge's (no resets).
SELECT path, increase(v, ts), round(rate(v, ts)::numeric, 6) AS rate, delta(v, ts),
       delta(v, ts, '2026-01-01', '2026-01-01 01:00') AS delta_window
FROM prom WHERE ts <= '2026-01-01 00:50' GROUP BY path ORDER BY path;
-- Extrapolation: half an average interval at an edge farther than 1.1 intervals
-- (10 -> 20: 20), and a counter is not extrapolated below zero (1 -> 11: 16; 0 -> 10:
-- 15); a gauge is (11 -> 1: -20).
SELECT increase(v, ts, '2026-01-01', '2026-01-01 00:30') FILTER (WHERE k = 1) AS twenty,
       increase(v, ts, '2026-01-01', '2026-01-01 00:30') FILTER (WHERE k = 2) AS sixteen,
       increase(v, ts, '2026-01-01', '2026-01-01 00:30') FILTER (WHERE k = 3) AS fifteen,
       delta(v, ts, '2026-01-01', '2026-01-01 00:30') FILTER (WHERE k = 4) AS minus_twenty
FROM (VALUES (1, timestamptz '2026-01-01 00:10', 10::float8), (1, '2026-01-01 00:15', 20),
             (2, '2026-01-01 00:10', 1), (2, '2026-01-01 00:15', 11),
             (3, '2026-01-01 00:10', 0), (3, '2026-01-01 00:15', 10),
             (4, '2026-01-01 00:10', 11), (4, '2026-01-01 00:15', 1)) x(k, ts, v);

-- Edge cases: one point, no rows, NULLs, points at one instant, ties.
SELECT increase(v, ts) IS NULL AS one_point, rate(v, ts) IS NULL AS no_rate,
       time_weighted_avg(v, ts) AS twa, first(v, ts), last(v, ts)
FROM (VALUES (timestamptz '2026-01-01', 5::float8)) x(ts, v);
SELECT increase(v, ts), first(v, ts), time_weighted_avg(v, ts) FROM prom WHERE false;
SELECT increase(v, ts), last(v, ts), count(*)
FROM (VALUES (timestamptz '2026-01-01', NULL::float8), (NULL, 3), ('2026-01-01 00:01', 4), ('2026-01-01 00:02', 6)) x(ts, v);
SELECT rate(v, ts) IS NULL AS same_instant, time_weighted_avg(v, ts) AS mean, first(v, ts), last(v, ts)
FROM (VALUES (timestamptz '2026-01-01', 1::float8), ('2026-01-01', 3)) x(ts, v);
SELECT first_time(v, ts), last_time(v, ts) FROM prom;
-- Time-weighted averages: 0 for a minute, then 10 for three, then 20 (linear and LOCF).
SELECT time_weighted_avg(v, ts) AS linear, time_weighted_avg(v, ts, 'locf') AS locf
FROM (VALUES (timestamptz '2026-01-01 00:00', 0::float8), ('2026-01-01 00:01', 10),
             ('2026-01-01 00:02', 10), ('2026-01-01 00:03', 10), ('2026-01-01 00:04', 20)) x(ts, v);

-- Errors name the offending value.
SELECT increase(v, ts, '2026-01-01 00:10', '2026-01-01 00:50') FROM prom;
SELECT rate(v, ts, '2026-01-01 01:00', '2026-01-01 00:00') FROM prom;
SELECT rate(v, ts, NULL, '2026-01-01 00:00') FROM prom;
SELECT rate(v, ts, ts, ts + interval '1 hour') FROM prom;
SELECT time_weighted_avg(v, ts, 'spline') FROM prom;
SELECT increase(v, ts) FROM (VALUES (timestamptz 'infinity', 1::float8)) x(ts, v);

-- The state type (bidim.metric_points): its text form round-trips; bad input is an
-- error, never a crash.
SELECT '\x0100000000000000000000000000000000f03f'::bidim.metric_points;
SELECT '\x'::bidim.metric_points;
SELECT '\x0900'::bidim.metric_points;
SELECT '\x0104000000000000000000000000000000f03f0000000000000000000000000000f03f'::bidim.metric_points;
SELECT '\x010100000000000000000000000000000000000000000000000000000000000000f03f'::bidim.metric_points;
SELECT 'nothex'::bidim.metric_points;

-- Oracle: a counter's increase is the sum over consecutive points (in time order, ties
-- by value) of the rise, or of the new value after a drop (a reset). 200 series,
-- frequent resets, inserted in random order, some NULLs.
SELECT setseed(0.42);
CREATE TABLE ctr (id int, ts timestamptz, v float8);
INSERT INTO ctr
SELECT id, timestamptz '2026-01-01' + (n * 10 + (random() * 5)::int) * interval '1 second',
       CASE WHEN random() < 0.02 THEN NULL ELSE floor(random() * 1000) END
FROM generate_series(1, 200) id, generate_series(1, 300) n
ORDER BY random();
CREATE VIEW ctr_oracle AS
SELECT id, sum(CASE WHEN v < p THEN v ELSE v - p END) AS increase,
       sum(CASE WHEN v < p THEN v ELSE v - p END)
         / NULLIF(extract(epoch FROM max(ts) - min(ts)), 0) AS rate,
       sum(extract(epoch FROM ts - pt) * p) / extract(epoch FROM max(ts) - min(pt)) AS locf
FROM (SELECT id, ts, v, lag(v) OVER w AS p, lag(ts) OVER w AS pt
      FROM ctr WHERE v IS NOT NULL AND ts IS NOT NULL
      WINDOW w AS (PARTITION BY id ORDER BY ts, v)) x
GROUP BY id;
SELECT count(*) AS series,
       count(*) FILTER (WHERE abs(a.increase - o.increase) > 1e-9 * abs(o.increase)) AS increase_mismatches,
       count(*) FILTER (WHERE abs(a.rate - o.rate) > 1e-9 * abs(o.rate)) AS rate_mismatches,
       count(*) FILTER (WHERE abs(a.locf - o.locf) > 1e-9 * abs(o.locf)) AS locf_mismatches
FROM (SELECT id, increase(v, ts), rate(v, ts), time_weighted_avg(v, ts, 'locf') AS locf FROM ctr GROUP BY id) a
JOIN ctr_oracle o USING (id);

-- Serial = parallel (partial states serialized by workers, combined by the leader) =
-- a bidim table's scan, exactly.
CREATE TABLE ctr_answers AS
SELECT id, increase(v, ts), rate(v, ts), delta(v, ts),
       increase(v, ts, '2026-01-01', '2026-01-01 01:00') AS prom_increase,
       time_weighted_avg(v, ts) AS twa, time_weighted_avg(v, ts, 'locf') AS twa_locf,
       first(v, ts), last(v, ts), first_time(v, ts), last_time(v, ts)
FROM ctr GROUP BY id;
CREATE TABLE ctr_whole AS SELECT time_weighted_avg(v, ts) AS twa, increase(v, ts) AS inc FROM ctr;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
SET enable_hashagg = off;
EXPLAIN (COSTS OFF)
SELECT increase(v, ts) FROM ctr;
SELECT count(*) AS parallel_differences FROM (
    (SELECT * FROM ctr_answers
     EXCEPT
     SELECT id, increase(v, ts), rate(v, ts), delta(v, ts),
            increase(v, ts, '2026-01-01', '2026-01-01 01:00'),
            time_weighted_avg(v, ts), time_weighted_avg(v, ts, 'locf'),
            first(v, ts), last(v, ts), first_time(v, ts), last_time(v, ts)
     FROM ctr GROUP BY id)
) d;
-- The whole table in one group: every worker's partial states of interleaved series
-- combined, equal to the serial answer.
SELECT (SELECT time_weighted_avg(v, ts) FROM ctr) = (SELECT twa FROM ctr_whole) AS twa_equal,
       (SELECT increase(v, ts) FROM ctr) = (SELECT inc FROM ctr_whole) AS increase_equal,
       (SELECT last(v, ts) FROM ctr) = (SELECT v FROM ctr WHERE v IS NOT NULL ORDER BY ts DESC, v DESC LIMIT 1) AS last_ok;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;
RESET enable_hashagg;
CREATE TABLE ctr_b (id int, ts timestamptz, v float8) USING bidim;
INSERT INTO ctr_b SELECT * FROM ctr;
SELECT count(*) AS bidim_differences FROM (
    SELECT * FROM ctr_answers
    EXCEPT
    SELECT id, increase(v, ts), rate(v, ts), delta(v, ts),
           increase(v, ts, '2026-01-01', '2026-01-01 01:00'),
           time_weighted_avg(v, ts), time_weighted_avg(v, ts, 'locf'),
           first(v, ts), last(v, ts), first_time(v, ts), last_time(v, ts)
    FROM ctr_b WHERE ts IS NOT NULL GROUP BY id
) d;
-- As window functions: the running last value and increase of a series.
SELECT ts, v, last(v, ts) OVER w, increase(v, ts) OVER w
FROM prom WHERE path = '/bar' WINDOW w AS (ORDER BY ts) ORDER BY ts LIMIT 8;

-- Gap filling: one row per bucket, empty buckets NULL, the previous value, or a line.
SELECT * FROM bidim.gapfill(ARRAY[timestamptz '2026-01-01 00:00', '2026-01-01 00:30'], ARRAY[1, 4]::float8[],
                            '2026-01-01', '2026-01-01 01:00', '10 minutes');
SELECT * FROM bidim.gapfill(ARRAY[timestamptz '2026-01-01 00:00', '2026-01-01 00:30'], ARRAY[1, 4]::float8[],
                            '2026-01-01', '2026-01-01 01:00', '10 minutes', 'locf');
SELECT * FROM bidim.gapfill(ARRAY[timestamptz '2026-01-01 00:00', '2026-01-01 00:30'], ARRAY[1, 4]::float8[],
                            '2026-01-01', '2026-01-01 01:00', '10 minutes', 'linear');
SELECT * FROM bidim.gapfill(ARRAY[timestamptz '2026-01-01 00:20'], ARRAY[3]::float8[],
                            '2026-01-01', '2026-01-01 00:30', '10 minutes', 'linear', before => 0);
-- A Grafana panel: the PostgreSQL data source expands $__timeFilter(ts) to
-- `ts BETWEEN '<from>' AND '<to>'`, and $__timeFrom()/$__timeTo() to the literals;
-- one row per series per 10-minute bucket, gaps carried forward.
SELECT a.path AS metric, g.bucket AS "time", g.value
FROM (SELECT path, array_agg(b ORDER BY b) AS bs, array_agg(x ORDER BY b) AS xs
      FROM (SELECT path, date_bin('10 minutes', ts, '2026-01-01T00:00:00Z') AS b, avg(v) AS x
            FROM prom WHERE ts BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-01T01:30:00Z'
              AND path IN ('/foo', '/bar') GROUP BY 1, 2) s
      GROUP BY path) a,
     bidim.gapfill(a.bs, a.xs, '2026-01-01T00:00:00Z', '2026-01-01T01:30:00Z', '10 minutes', 'locf') g
ORDER BY 1, 2;
SELECT * FROM bidim.gapfill(ARRAY[timestamptz '2026-01-01'], ARRAY[1]::float8[], '2026-01-01', '2026-03-01', '1 month');
SELECT * FROM bidim.gapfill(ARRAY[timestamptz '2026-01-01', '2026-01-01'], ARRAY[1, 2]::float8[], '2026-01-01', '2026-01-02', '1 hour');
SELECT * FROM bidim.gapfill(ARRAY[timestamptz '2026-01-01'], ARRAY[1, 2]::float8[], '2026-01-01', '2026-01-02', '1 hour');
SELECT * FROM bidim.gapfill(NULL, NULL, '2026-01-01', '2026-01-01 02:00', '1 hour', 'cubic');
SELECT * FROM bidim.gapfill(NULL, NULL, '2026-01-01', '2026-01-01 02:00', '0 hours');

DROP TABLE prom, ctr, ctr_b, ctr_answers, ctr_whole CASCADE;
DROP EXTENSION bidim;
