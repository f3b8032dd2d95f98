-- The bidim table access method: SQL surface, views, DML, DDL and errors.
CREATE EXTENSION bidim;
SET timezone = 'UTC';

-- Creation: defaults picked from the columns, or a clear error.
CREATE TABLE points (series_id bigint, ts timestamptz, value float8) USING bidim;
SELECT amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.relname = 'points';
CREATE TABLE no_time (k int, v float8) USING bidim;
CREATE TABLE no_key (t timestamptz, v float8) USING bidim;
CREATE UNLOGGED TABLE unlogged_points (k int, t timestamptz) USING bidim;
CREATE TEMPORARY TABLE temp_points (k int, t timestamptz) USING bidim;

-- Configuration.
SELECT * FROM bidim.configure('points');
SELECT * FROM bidim.configure('points', hot_chunk_rows => 500, partition_interval => '1 hour');
SELECT * FROM bidim.table_config;
CREATE TABLE plain (k int, t timestamptz);
SELECT bidim.configure('plain');
SELECT bidim.configure('points', key_column => 'nope');
SELECT bidim.configure('points', key_column => 'value');
SELECT bidim.configure('points', time_column => 'series_id');
SELECT bidim.configure('points', hot_chunk_rows => 0);
SELECT bidim.configure('points', partition_interval => '1 month');
SELECT bidim.configure('points', partition_interval => '10 ms');
SELECT bidim.configure(NULL);

-- Rows: INSERT, COPY, SELECT; 2000 rows over 3 hours with a 500-row seal threshold.
INSERT INTO points
SELECT g % 7, timestamptz '2026-01-01 00:00' + g * interval '5 seconds', g
FROM generate_series(1, 2000) g;
COPY points FROM STDIN;
100	2026-01-01 05:00:00+00	-1
101	2026-01-01 05:00:01+00	-2
\.
SELECT count(*), sum(value), min(ts), max(ts) FROM points;
SELECT series_id, count(*) FROM points GROUP BY 1 ORDER BY 1;
-- Every partition holds chunks of one hour; the busy ones were sealed and split.
SELECT partition, chunks > 1 AS split FROM bidim.time_partitions ORDER BY partition;
SELECT state, count(*) > 0 AS present FROM bidim.chunks GROUP BY 1 ORDER BY 1;
SELECT count(*) = count(DISTINCT ctid) AS ctids_unique FROM points;

-- Row errors.
INSERT INTO points VALUES (1, NULL, 1);
INSERT INTO points VALUES (NULL, now(), 1);
INSERT INTO points VALUES (1, 'infinity', 1);

-- DELETE, UPDATE in place, UPDATE that moves rows to another partition, RETURNING.
DELETE FROM points WHERE value <= 100;
UPDATE points SET value = value + 0.5 WHERE series_id = 3 AND value < 150 RETURNING series_id, ts, value;
UPDATE points SET ts = ts + interval '10 hours' WHERE value BETWEEN 1990 AND 2000
RETURNING series_id, ts, value;
SELECT count(*), sum(value) FROM points;
SELECT count(*) FROM points WHERE ts >= '2026-01-01 10:00';

-- Sealing by hand: every hot chunk is sealed, new rows go to a new chunk.
SELECT bidim.seal('points') > 0 AS sealed;
SELECT count(*) FROM bidim.chunks WHERE state = 'hot';
INSERT INTO points VALUES (9, '2026-01-01 00:30', 42);
SELECT count(*) FROM bidim.chunks WHERE state = 'hot';
SELECT bidim.seal('plain');

-- Transactions: rolled back rows and chunks never show.
BEGIN;
INSERT INTO points VALUES (9, '2030-01-01', 1);
SELECT count(*) FROM points WHERE ts >= '2030-01-01';
ROLLBACK;
SELECT count(*) FROM points WHERE ts >= '2030-01-01';
SELECT count(*) FROM bidim.chunks WHERE time_lo >= '2030-01-01';
BEGIN;
INSERT INTO points VALUES (9, '2031-01-01', 1);
SAVEPOINT s;
INSERT INTO points VALUES (9, '2032-01-01', 1);
ROLLBACK TO s;
COMMIT;
SELECT ts FROM points WHERE ts >= '2030-01-01';

-- Unsupported features fail with a clear error.
CREATE INDEX ON points (series_id);
SELECT * FROM points TABLESAMPLE SYSTEM (50);
ALTER TABLE points ALTER COLUMN value TYPE numeric;
VACUUM FULL points;
CLUSTER points;
ALTER TABLE plain SET ACCESS METHOD bidim;

-- Column DDL that needs no rewrite reaches old and new rows.
ALTER TABLE points ADD COLUMN host text DEFAULT 'web-1';
INSERT INTO points VALUES (8, '2026-01-01 01:00', 8, 'web-2');
SELECT host, count(*) FROM points GROUP BY 1 ORDER BY 1;
-- Wide values in the new column (TOASTed) survive, for new rows and updated old rows.
INSERT INTO points VALUES (8, '2026-01-01 01:00:01', 9, repeat('x', 5000));
UPDATE points SET host = repeat('y', 6000) WHERE value = 101.5;
SELECT value, length(host), left(host, 3) FROM points WHERE length(host) > 100 ORDER BY value;
UPDATE points SET host = 'web-1' WHERE length(host) > 100;
ALTER TABLE points RENAME COLUMN host TO hostname;
ALTER TABLE points DROP COLUMN hostname;
INSERT INTO points VALUES (8, '2040-01-01', 8);
SELECT * FROM points WHERE ts >= '2031-01-01' ORDER BY ts;
ALTER TABLE points ALTER COLUMN value SET DEFAULT 0;
INSERT INTO points (series_id, ts) VALUES (8, '2041-01-01');
SELECT value FROM points WHERE ts = '2041-01-01';
ALTER TABLE points RENAME TO metrics;
SELECT count(*) FROM metrics;
CREATE SCHEMA other;
ALTER TABLE metrics SET SCHEMA other;
SELECT count(*) FROM other.metrics;
ALTER TABLE other.metrics SET SCHEMA public;
CREATE ROLE bidim_owner;
ALTER TABLE metrics OWNER TO bidim_owner;
SET ROLE bidim_owner;
INSERT INTO metrics VALUES (7, '2042-01-01', 7);
SELECT count(*) FROM metrics WHERE ts >= '2042-01-01';
SELECT hot_chunk_rows FROM bidim.configure('metrics', hot_chunk_rows => 500);
RESET ROLE;
ALTER TABLE metrics OWNER TO CURRENT_USER;
DROP ROLE bidim_owner;
DROP SCHEMA other;

-- Row triggers: BEFORE triggers change the row (and so its chunk), AFTER triggers
-- see old and new rows.
CREATE TABLE trigger_log (op text, old_v float8, new_v float8, new_ts timestamptz);
CREATE FUNCTION metrics_before() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.value < 0 THEN NEW.value := -NEW.value; NEW.ts := NEW.ts + interval '1 year'; END IF;
    RETURN NEW;
END $$;
CREATE FUNCTION metrics_after() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO trigger_log VALUES (TG_OP,
        CASE WHEN TG_OP <> 'INSERT' THEN OLD.value END,
        CASE WHEN TG_OP <> 'DELETE' THEN NEW.value END,
        CASE WHEN TG_OP <> 'DELETE' THEN NEW.ts END);
    RETURN NULL;
END $$;
CREATE TRIGGER b BEFORE INSERT OR UPDATE ON metrics FOR EACH ROW EXECUTE FUNCTION metrics_before();
CREATE TRIGGER a AFTER INSERT OR UPDATE OR DELETE ON metrics FOR EACH ROW EXECUTE FUNCTION metrics_after();
INSERT INTO metrics VALUES (6, '2043-01-01', -6);
UPDATE metrics SET value = value + 1 WHERE ts >= '2043-01-01';
DELETE FROM metrics WHERE ts >= '2043-01-01';
SELECT * FROM trigger_log;
DROP TRIGGER a ON metrics;
DROP TRIGGER b ON metrics;
DROP TABLE trigger_log;
DROP FUNCTION metrics_before(), metrics_after();

-- Maintenance.
VACUUM metrics;
ANALYZE metrics;
SELECT reltuples > 0 AS analyzed FROM pg_class WHERE relname = 'metrics';

-- TRUNCATE (transactional) and DROP remove every chunk.
BEGIN;
TRUNCATE metrics;
SELECT count(*) FROM metrics;
ROLLBACK;
SELECT count(*) > 0 AS rows_back FROM metrics;
TRUNCATE metrics;
SELECT count(*) FROM metrics;
SELECT count(*) FROM bidim.chunk;
INSERT INTO metrics VALUES (1, '2026-01-01', 1);
DROP TABLE metrics;
SELECT count(*) FROM bidim.chunk;
SELECT count(*) FROM bidim.table_config;
SELECT count(*) FROM pg_class WHERE relnamespace = 'bidim_internal'::regnamespace;

-- Internal relations are not the users' to touch.
CREATE TABLE p2 (k int, t timestamptz) USING bidim;
INSERT INTO p2 VALUES (1, '2026-01-01');
DO $$
DECLARE c text;
BEGIN
    SELECT format('bidim_internal.%I', relname) INTO c
    FROM pg_class WHERE relnamespace = 'bidim_internal'::regnamespace AND relkind = 'r';
    EXECUTE 'DROP TABLE ' || c;
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE NOTICE 'dropping a chunk directly is refused: %', regexp_replace(SQLERRM, 'c[0-9]+_[0-9]+', 'cN_M');
END $$;
SELECT count(*) FROM p2;
DROP TABLE p2, plain;

-- Internal entry points are not callable by ordinary users.
CREATE ROLE bidim_regress_user;
SET ROLE bidim_regress_user;
SELECT bidim._forget_table(1);
SELECT bidim._maintain();
SELECT bidim._after_alter_table(1);
RESET ROLE;
-- No internal function (bidim._*) is EXECUTE-able by an ordinary role.
SELECT p.oid::regprocedure AS callable_internal_function
FROM pg_proc p
WHERE p.pronamespace = 'bidim'::regnamespace AND p.proname LIKE '\_%'
  AND has_function_privilege('bidim_regress_user', p.oid, 'EXECUTE');

-- A user with table privileges (no CREATE anywhere) inserts rows that need new chunks;
-- without privileges it gets the usual error.
CREATE TABLE shared_points (k int, t timestamptz, v float8) USING bidim;
GRANT SELECT, INSERT, UPDATE, DELETE ON shared_points TO bidim_regress_user;
SET ROLE bidim_regress_user;
INSERT INTO shared_points VALUES (1, '2026-01-01', 1), (2, '2027-01-01', 2);
UPDATE shared_points SET t = '2028-01-01' WHERE k = 2;
SELECT k, t FROM shared_points ORDER BY k;
SELECT bidim.seal('shared_points');
SELECT bidim.configure('shared_points', hot_chunk_rows => 1);
RESET ROLE;
REVOKE ALL ON shared_points FROM bidim_regress_user;
SET ROLE bidim_regress_user;
SELECT count(*) FROM shared_points;
RESET ROLE;
DROP TABLE shared_points;
DROP ROLE bidim_regress_user;
DROP EXTENSION bidim;
