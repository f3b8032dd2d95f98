-- Key-range splits: a key range that keeps filling chunks in one time partition splits
-- in two at the median of its keys; rows route by the new ranges, chunks keep theirs.
CREATE EXTENSION bidim;
SET timezone = 'UTC';
CREATE TABLE m (series_id bigint, ts timestamptz, value float8) USING bidim;
SELECT (bidim.configure('m', hot_chunk_rows => 300)).rel IS NOT NULL AS configured;
CREATE TABLE oracle (series_id bigint, ts timestamptz, value float8);
-- Skewed keys: series 1 gets half the rows, the rest spread over 2..200.
INSERT INTO oracle
SELECT CASE WHEN g % 2 = 0 THEN 1 ELSE 2 + (g * 7919) % 199 END,
       timestamptz '2026-03-01' + (g % 3600) * interval '1 second', g
FROM generate_series(1, 6000) g;
INSERT INTO m SELECT * FROM oracle ORDER BY value;
-- The key ranges tile the key space; the heavy series ends up alone in a range.
SELECT range_id, key_lo, key_hi, state, parent FROM bidim.key_ranges WHERE rel = 'm'::regclass
ORDER BY key_lo::bigint NULLS FIRST, range_id;
SELECT count(*) > 1 AS split,
       bool_and(key_lo IS NULL OR key_lo::bigint < coalesce(key_hi::bigint, 9999)) AS ordered
FROM bidim.key_ranges WHERE rel = 'm'::regclass AND state = 'active';
-- Every chunk records the range it was made for.
SELECT count(*) FILTER (WHERE key_lo IS NULL AND key_hi IS NULL) AS unbounded_chunks,
       count(*) FILTER (WHERE key_lo IS NOT NULL OR key_hi IS NOT NULL) > 0 AS bounded_chunks
FROM bidim.chunks WHERE rel = 'm'::regclass;
SELECT key_ranges > 1 AS split, partitions FROM bidim.table_stats('m');
-- Every row is still there (oracle).
SELECT (SELECT count(*) FROM m) = (SELECT count(*) FROM oracle) AS same_count,
       (SELECT sum(value) FROM m) = (SELECT sum(value) FROM oracle) AS same_sum;
SELECT count(*) AS mismatched_series FROM (
  (SELECT series_id, count(*), sum(value) FROM m GROUP BY 1
   EXCEPT SELECT series_id, count(*), sum(value) FROM oracle GROUP BY 1)
  UNION ALL
  (SELECT series_id, count(*), sum(value) FROM oracle GROUP BY 1
   EXCEPT SELECT series_id, count(*), sum(value) FROM m GROUP BY 1)) d;
-- A key query reads only the chunks whose range holds the key, and finds every row.
CREATE FUNCTION per_key_ok() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE k bigint;
BEGIN
  FOR k IN SELECT DISTINCT series_id FROM oracle UNION SELECT 0 UNION SELECT 1000 LOOP
    IF (SELECT count(*) FROM m WHERE series_id = k)
       <> (SELECT count(*) FROM oracle WHERE series_id = k) THEN
      RAISE NOTICE 'series % differs', k;
      RETURN false;
    END IF;
  END LOOP;
  RETURN true;
END $$;
SELECT per_key_ok();
CREATE FUNCTION chunks_read(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
  FOR l IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
    IF l LIKE '%Chunks:%' THEN RETURN regexp_replace(l, '^.*Chunks: (\d+) of (\d+).*$', '\1/\2'); END IF;
  END LOOP;
  RETURN NULL;
END $$;
SELECT split_part(chunks_read('SELECT * FROM m WHERE series_id = 150'), '/', 1)::int
     < split_part(chunks_read('SELECT * FROM m WHERE series_id = 150'), '/', 2)::int AS pruned_by_key;
-- Cross-type key comparisons prune too.
SELECT count(*) = (SELECT count(*) FROM oracle WHERE series_id = 150) FROM m WHERE series_id = 150::int;
-- UPDATE keeps a row in its chunk when its key stays in the chunk's range, moves it
-- otherwise; DELETE finds rows in every range.
UPDATE m SET value = -value WHERE series_id = 150;
UPDATE oracle SET value = -value WHERE series_id = 150;
UPDATE m SET series_id = 3 WHERE series_id = 199;
UPDATE oracle SET series_id = 3 WHERE series_id = 199;
DELETE FROM m WHERE series_id = 100;
DELETE FROM oracle WHERE series_id = 100;
SELECT per_key_ok();
SELECT (SELECT sum(value) FROM m) = (SELECT sum(value) FROM oracle) AS same_sum;
-- Text keys split bytewise.
CREATE TABLE t (host text, ts timestamptz, v int) USING bidim;
SELECT (bidim.configure('t', hot_chunk_rows => 200)).rel IS NOT NULL AS configured;
INSERT INTO t SELECT 'host-' || (g % 50), timestamptz '2026-03-01' + g * interval '1 second', g
FROM generate_series(1, 3000) g;
SELECT count(*) > 1 AS split FROM bidim.key_ranges WHERE rel = 't'::regclass AND state = 'active';
SELECT count(*), count(DISTINCT host) FROM t;
SELECT count(*) FROM t WHERE host = 'host-7';
SELECT count(*) FROM t WHERE host = 'host-70';
SELECT split_part(chunks_read($$SELECT * FROM t WHERE host = 'host-7'$$), '/', 1)::int
     < split_part(chunks_read($$SELECT * FROM t WHERE host = 'host-7'$$), '/', 2)::int AS pruned_by_key;
-- TRUNCATE keeps the ranges; DROP TABLE forgets them.
TRUNCATE m;
INSERT INTO m VALUES (1, '2026-03-02', 1), (150, '2026-03-02', 2);
SELECT count(*) FROM m WHERE series_id = 150;
DROP TABLE m, t;
SELECT count(*) FROM bidim.key_range;
DROP TABLE oracle;
DROP FUNCTION per_key_ok(), chunks_read(text);
DROP EXTENSION bidim;
