-- ddsketch: the type, aggregates, accessors, operators and every error.
CREATE EXTENSION bidim;
SET extra_float_digits = 0;
\dT+ ddsketch
-- Text form: JSON, lossless round trip.
SELECT ddsketch_agg(x) FROM (VALUES (1.0), (2.0), (3.0), (NULL), (-2.5), (0.0)) v(x);
SELECT ddsketch_agg(x)::text::ddsketch = ddsketch_agg(x) AS round_trip
FROM (VALUES (1.0), (2.0), (-3.0), (0.0), (1e-300), (1e300)) v(x);
-- No rows, or only NULLs: NULL.
SELECT ddsketch_agg(x) IS NULL AS no_rows FROM generate_series(1, 0) x;
SELECT ddsketch_agg(NULL::float8) IS NULL AS only_nulls FROM generate_series(1, 3);
-- Percentiles follow percentile_disc within alpha.
CREATE TABLE v AS SELECT g::float8 AS x, g % 4 AS grp FROM generate_series(1, 1000) g;
SELECT q, approx_percentile(s, q) AS approx, exact,
       abs(approx_percentile(s, q) - exact) <= 0.01 * exact AS within_alpha
FROM (SELECT ddsketch_agg(x) s FROM v) a,
     LATERAL (SELECT q, percentile_disc(q) WITHIN GROUP (ORDER BY x) exact
              FROM v, unnest(ARRAY[0, 0.01, 0.25, 0.5, 0.9, 0.99, 1]) q GROUP BY q) e
ORDER BY q;
SELECT approx_percentiles(ddsketch_agg(x), ARRAY[0.5, NULL, 0.99]) FROM v;
SELECT approx_percentile_rank(ddsketch_agg(x), 500) FROM v;
SELECT ddsketch_count(s), ddsketch_sum(s), ddsketch_mean(s), ddsketch_min(s), ddsketch_max(s),
       ddsketch_relative_error(s), ddsketch_alpha(s), ddsketch_max_buckets(s), ddsketch_bins(s)
FROM (SELECT ddsketch_agg(x) s FROM v) a;
-- Parameters: alpha, max_buckets, weights.
SELECT ddsketch_alpha(ddsketch_agg(x, 0.05)), ddsketch_bins(ddsketch_agg(x, 0.05)) FROM v;
SELECT ddsketch_max_buckets(s), ddsketch_bins(s), ddsketch_relative_error(s) > 0.01 AS collapsed,
       approx_percentile(s, 0.99) AS p99
FROM (SELECT ddsketch_agg(x, 0.01, 16) s FROM v) a;
SELECT ddsketch_count(ddsketch_agg(x, 10, 0.01, 2048)), ddsketch_sum(ddsketch_agg(x, 10, 0.01, 2048)) FROM v;
-- Buckets.
SELECT * FROM ddsketch_buckets((SELECT ddsketch_agg(x) FROM (VALUES (-1.0), (0.0), (1.0), (1.0)) v(x)));
-- Merges: rollup, ddsketch_agg(ddsketch), ||, ddsketch_merge; rollup of rollups.
CREATE TABLE per_grp AS SELECT grp, ddsketch_agg(x) s FROM v GROUP BY grp;
SELECT rollup(s) = (SELECT ddsketch_agg(x) FROM v) AS rollup_exact,
       ddsketch_agg(s) = rollup(s) AS same
FROM per_grp;
SELECT rollup(r) = (SELECT ddsketch_agg(x) FROM v) AS rollup_of_rollups
FROM (SELECT grp % 2 AS half, rollup(s) r FROM per_grp GROUP BY 1) h;
SELECT (SELECT s FROM per_grp WHERE grp = 0) || (SELECT s FROM per_grp WHERE grp = 1)
     = ddsketch_merge((SELECT s FROM per_grp WHERE grp = 1), (SELECT s FROM per_grp WHERE grp = 0)) AS commutative;
SELECT rollup(s) IS NULL AS rollup_of_nothing FROM per_grp WHERE false;
SELECT ddsketch_count(rollup(s)) FROM (SELECT s FROM per_grp UNION ALL SELECT NULL) x;
-- Scalar building.
SELECT ddsketch_empty();
SELECT approx_percentile(ddsketch_add(ddsketch_add(ddsketch_empty(0.02, 64), 3.0), 5.0, 3), 0.5);
SELECT approx_percentile(ddsketch_empty(), 0.5) IS NULL AS empty_is_null, ddsketch_count(ddsketch_empty());
-- Comparison, DISTINCT, GROUP BY, indexes.
SELECT count(DISTINCT s), count(*) FROM (SELECT s FROM per_grp UNION ALL SELECT s FROM per_grp) x;
CREATE INDEX ON per_grp (s);
CREATE INDEX ON per_grp USING hash (s);
SELECT s < (SELECT max(s::text)::ddsketch FROM per_grp) OR s >= (SELECT max(s::text)::ddsketch FROM per_grp) AS total_order FROM per_grp LIMIT 1;
-- Binary form: version byte 1, then bincode; about 2 bytes a bin here.
SELECT get_byte(ddsketch_send(s), 0) AS version, length(ddsketch_send(s)) AS bytes, ddsketch_bins(s) AS bins
FROM per_grp WHERE grp = 0;
-- Errors name the offending value.
SELECT ddsketch_agg(x) FROM (VALUES ('NaN'::float8)) v(x);
SELECT ddsketch_agg(x) FROM (VALUES ('Infinity'::float8)) v(x);
SELECT ddsketch_agg(x) FROM (VALUES ('-Infinity'::float8)) v(x);
SELECT ddsketch_agg(x, 0) FROM v;
SELECT ddsketch_agg(x, 1) FROM v;
SELECT ddsketch_agg(x, -0.5) FROM v;
SELECT ddsketch_agg(x, NULL) FROM v;
SELECT ddsketch_agg(x, 0.01, 8) FROM v;
SELECT ddsketch_agg(x, 0.01, 100000000) FROM v;
SELECT ddsketch_agg(x, 0, 0.01, 2048) FROM v;
SELECT approx_percentile(ddsketch_agg(x), 1.5) FROM v;
SELECT approx_percentile(ddsketch_agg(x), -0.1) FROM v;
SELECT approx_percentile(ddsketch_agg(x), 'NaN') FROM v;
SELECT ddsketch_agg(x, 0.01) || ddsketch_agg(x, 0.02) FROM v;
SELECT rollup(s) FROM (SELECT ddsketch_agg(x, 0.01) s FROM v UNION ALL SELECT ddsketch_agg(x, 0.05) FROM v) x;
SELECT ddsketch_add(ddsketch_empty(), 'NaN');
SELECT ddsketch_add(ddsketch_empty(), 1, 0);
SELECT ddsketch_empty(0.7);
SELECT ddsketch_trans(NULL, 1.0);
-- Corrupt text input.
SELECT 'not json'::ddsketch;
SELECT '{"bad": 1}'::ddsketch;
SELECT '{"alpha":0.01,"max_buckets":2048,"count":5,"sum":6.0,"min":1.0,"max":3.0,"zero":0,"positive":[[0,1]],"negative":[]}'::ddsketch;
SELECT '{"alpha":0.01,"max_buckets":2048,"count":1,"sum":1.0,"min":3.0,"max":1.0,"zero":0,"positive":[[0,1]],"negative":[]}'::ddsketch;
SELECT '{"alpha":0.01,"max_buckets":2048,"count":2,"sum":1.0,"min":1.0,"max":1.0,"zero":0,"positive":[[5,1],[2,1]],"negative":[]}'::ddsketch;
DROP TABLE v, per_grp;
DROP EXTENSION bidim;
