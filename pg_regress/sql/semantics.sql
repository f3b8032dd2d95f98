-- PostgreSQL semantics on bidim tables: statements that scan a table outside the
-- executor's usual path, per-column storage settings, triggers after DROP COLUMN,
-- long keys, many small chunks, sizes. Each answer is what heap gives.
CREATE EXTENSION bidim;
SET timezone = 'UTC';

-- 1. Scans outside the executor. A bidim table as the DEFAULT partition: adding a
-- partition scans it (check_default_partition_contents) in a per-tuple memory
-- context that is reset after every row.
CREATE TABLE lp (a text, k int, ts timestamptz) PARTITION BY LIST (lower(a));
CREATE TABLE lp_def PARTITION OF lp DEFAULT USING bidim;
SELECT (bidim.configure('lp_def', hot_chunk_rows => 300)).rel IS NOT NULL AS configured;
INSERT INTO lp SELECT 'x' || g, g, timestamptz '2000-01-01' + g * interval '1 hour' FROM generate_series(1, 1000) g;
CREATE TABLE lp_a PARTITION OF lp FOR VALUES IN ('a') USING heap;
INSERT INTO lp VALUES ('B', 1, '2000-01-01');
CREATE TABLE lp_b PARTITION OF lp FOR VALUES IN ('b') USING heap;
SELECT count(*) FROM lp;
-- ATTACH PARTITION validates the attached bidim table.
CREATE TABLE lp_c (a text, k int, ts timestamptz) USING bidim;
INSERT INTO lp_c SELECT 'c', g, timestamptz '2000-01-01' + g * interval '1 day' FROM generate_series(1, 500) g;
ALTER TABLE lp ATTACH PARTITION lp_c FOR VALUES IN ('c');
INSERT INTO lp_c VALUES ('d', 0, '2000-01-01');
ALTER TABLE lp DETACH PARTITION lp_c;
ALTER TABLE lp ATTACH PARTITION lp_c FOR VALUES IN ('c');
SELECT count(*) FROM lp;

-- Constraint validation scans (expressions that allocate in the per-tuple context).
CREATE TABLE v (k int, ts timestamptz, note text) USING bidim;
SELECT (bidim.configure('v', hot_chunk_rows => 200)).rel IS NOT NULL AS configured;
INSERT INTO v SELECT g, timestamptz '2000-01-01' + g * interval '1 minute', repeat('n', g % 50)
FROM generate_series(1, 2000) g;
ALTER TABLE v ADD CONSTRAINT c1 CHECK (length(note || repeat('x', 100)) > 99);
ALTER TABLE v ADD CONSTRAINT c2 CHECK (k < 1000) NOT VALID;
ALTER TABLE v VALIDATE CONSTRAINT c2;
ALTER TABLE v ADD CONSTRAINT c3 CHECK (k <= 2000) NOT VALID;
ALTER TABLE v VALIDATE CONSTRAINT c3;
ALTER TABLE v ALTER COLUMN note SET NOT NULL;
INSERT INTO v VALUES (5000, '2000-01-01', 'x');
INSERT INTO v VALUES (1, '2000-01-01', NULL);
CREATE TABLE ref (k int PRIMARY KEY);
INSERT INTO ref SELECT generate_series(1, 1999);
ALTER TABLE v ADD CONSTRAINT fk FOREIGN KEY (k) REFERENCES ref;
INSERT INTO ref VALUES (2000);
ALTER TABLE v ADD CONSTRAINT fk FOREIGN KEY (k) REFERENCES ref;
INSERT INTO v VALUES (4000, '2000-01-01', 'x');
-- A foreign key referencing a bidim table needs a unique index: refused clearly.
CREATE TABLE child (k int REFERENCES v (k));

-- COPY TO, CREATE TABLE AS, materialized views.
COPY (SELECT k, note FROM v WHERE k <= 3 ORDER BY k) TO STDOUT;
COPY v TO '/dev/null';
CREATE TABLE v_copy AS SELECT * FROM v;
SELECT count(*), sum(k) FROM v_copy;
CREATE MATERIALIZED VIEW mv AS SELECT k % 10 AS b, count(*) AS n FROM v GROUP BY 1;
INSERT INTO v SELECT g, timestamptz '2000-01-03' + g * interval '1 minute', 'late' FROM generate_series(1, 100) g;
REFRESH MATERIALIZED VIEW mv;
SELECT sum(n) FROM mv;

-- Cursors: FETCH forward in steps, MOVE, WHERE CURRENT OF.
BEGIN;
DECLARE cur CURSOR FOR SELECT k, note FROM v WHERE k <= 20 AND note <> 'late' ORDER BY k;
FETCH 3 FROM cur;
MOVE 5 IN cur;
FETCH 2 FROM cur;
CLOSE cur;
DECLARE c2 CURSOR FOR SELECT k, note FROM v WHERE k BETWEEN 10 AND 12 AND note <> 'late' FOR UPDATE;
FETCH 1 FROM c2;
UPDATE v SET note = 'current' WHERE CURRENT OF c2;
FETCH 1 FROM c2;
DELETE FROM v WHERE CURRENT OF c2;
COMMIT;
SELECT k, note FROM v WHERE k BETWEEN 10 AND 12 AND note <> 'late' ORDER BY k;

-- amcheck refuses other access methods clearly.
CREATE EXTENSION amcheck;
SELECT * FROM verify_heapam('v');

-- 2. Per-column compression and storage, at creation and changed later.
CREATE TABLE cmp (k int, ts timestamptz, f1 text COMPRESSION lz4, f2 text) USING bidim;
CREATE TABLE cmp_h (k int, ts timestamptz, f1 text COMPRESSION lz4, f2 text);
INSERT INTO cmp VALUES (1, '2000-01-01', repeat('abc', 10000), repeat('abc', 10000));
INSERT INTO cmp_h VALUES (1, '2000-01-01', repeat('abc', 10000), repeat('abc', 10000));
ALTER TABLE cmp ALTER COLUMN f2 SET COMPRESSION lz4;
ALTER TABLE cmp_h ALTER COLUMN f2 SET COMPRESSION lz4;
INSERT INTO cmp VALUES (2, '2000-01-01', repeat('abc', 10000), repeat('abc', 10000));
INSERT INTO cmp_h VALUES (2, '2000-01-01', repeat('abc', 10000), repeat('abc', 10000));
SELECT 'bidim' AS am, k, pg_column_compression(f1), pg_column_compression(f2) FROM cmp
UNION ALL
SELECT 'heap', k, pg_column_compression(f1), pg_column_compression(f2) FROM cmp_h ORDER BY 1, 2;
ALTER TABLE cmp ALTER COLUMN f2 SET STORAGE plain;
ALTER TABLE cmp_h ALTER COLUMN f2 SET STORAGE plain;
INSERT INTO cmp VALUES (3, '2000-01-01', 'x', repeat(md5('a'), 500));
INSERT INTO cmp_h VALUES (3, '2000-01-01', 'x', repeat(md5('a'), 500));
-- A new chunk (another partition) gets the settings at creation.
INSERT INTO cmp VALUES (4, '2001-01-01', 'x', repeat(md5('a'), 500));
INSERT INTO cmp VALUES (5, '2001-01-01', repeat('abc', 10000), 'short');
SELECT k, pg_column_compression(f1) FROM cmp WHERE k = 5;

-- 3. A BEFORE UPDATE trigger returning OLD, after DROP COLUMN, with a generated column.
CREATE FUNCTION tro() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN OLD; END$$;
CREATE TABLE t (k int NOT NULL, b bool, ts timestamptz GENERATED ALWAYS AS
  ('2000-01-01 00:00:00+00') STORED) USING bidim;
CREATE TRIGGER tro BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION tro();
INSERT INTO t VALUES (1, true);
ALTER TABLE t DROP COLUMN b;
UPDATE t SET k = 2;
SELECT * FROM t;
DROP TRIGGER tro ON t;
UPDATE t SET k = 3;
SELECT * FROM t;

-- 4. Long text keys: up to 2048 bytes are stored and found; longer ones are refused
-- with the limit.
CREATE TABLE lk (k text NOT NULL, ts timestamptz NOT NULL, v int) USING bidim;
INSERT INTO lk VALUES (repeat('a', 2048), '2000-01-01', 1), (repeat(md5('x'), 64), '2000-01-01', 2);
SELECT length(k), v FROM lk WHERE k = repeat('a', 2048);
INSERT INTO lk VALUES (repeat(md5('y'), 300), '2000-01-01', 3);
COPY lk FROM STDIN;
short	2000-01-01 00:00:00+00	4
\.
SELECT count(*) FROM lk;

-- 5. Settings that make a chunk per handful of rows are said; one transaction may
-- create at most bidim.max_chunks_per_transaction chunks.
CREATE TABLE tiny (k int, ts timestamptz) USING bidim;
SELECT (bidim.configure('tiny', hot_chunk_rows => 10, partition_interval => '1 second')).rel IS NOT NULL AS configured;
SET bidim.max_chunks_per_transaction = 50;
INSERT INTO tiny SELECT 1, timestamptz '2000-01-01' + g * interval '1 second' FROM generate_series(1, 100) g;
INSERT INTO tiny SELECT 1, timestamptz '2000-01-01' + g * interval '1 second' FROM generate_series(1, 40) g;
RESET bidim.max_chunks_per_transaction;
SELECT count(*) AS rows, (SELECT count(*) FROM bidim.chunks WHERE rel = 'tiny'::regclass) AS chunks FROM tiny;

-- 6. Sizes: PostgreSQL's size functions count the chunks (the planner calls bidim's
-- twins, src/tam/sizes.rs), as bidim.table_size does; the table's own file is empty.
SELECT pg_relation_size('v') > 100000 AS chunks_counted,
       pg_total_relation_size('v') = bidim.table_size('v') AS same_total,
       pg_table_size('v') <= pg_total_relation_size('v') AS table_within_total,
       pg_relation_size('pg_class') = pg_relation_size('pg_class', 'main') AS others_unchanged;
SET bidim.count_chunks_in_sizes = off;
SELECT pg_relation_size('v') AS own_file;
RESET bidim.count_chunks_in_sizes;
EXPLAIN (COSTS OFF) SELECT * FROM v;
DROP EXTENSION amcheck;

-- 7. Publications: logical decoding sees chunks, not the table, so publishing a bidim
-- table (by name or by schema) is refused; heap tables publish as usual.
CREATE PUBLICATION pub_v FOR TABLE v;
CREATE PUBLICATION pub_s FOR TABLES IN SCHEMA public;
CREATE PUBLICATION pub_ok FOR TABLE ref;
ALTER PUBLICATION pub_ok ADD TABLE v;
DROP PUBLICATION pub_ok;

DROP MATERIALIZED VIEW mv;
DROP TABLE lp, v, v_copy, ref, cmp, cmp_h, t, lk, tiny, lp_c;
DROP FUNCTION tro();
DROP EXTENSION bidim;
