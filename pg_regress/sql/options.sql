-- bidim.* storage parameters: a table's settings in its definition (src/tam/options.rs,
-- src/tam/utility.rs). They reach pg_dump and every Citus shard with the definition.
CREATE EXTENSION bidim;
CREATE TABLE opt (series_id bigint, ts timestamptz, value float8) USING bidim
    WITH (bidim.hot_chunk_rows = 1000, bidim.partition_interval = '2 hours');
SELECT key_column, time_column, hot_chunk_rows, partition_interval, convert_after
FROM bidim.table_config WHERE rel = 'opt'::regclass;
SELECT reloptions FROM pg_class WHERE oid = 'opt'::regclass;
-- The quoted spelling pg_dump and Citus write works the same.
CREATE TABLE opt2 (series_id bigint, ts timestamptz) USING bidim
    WITH ("bidim.hot_chunk_rows" = 5000, "bidim.convert_after" = '7 days');
SELECT hot_chunk_rows, convert_after FROM bidim.table_config WHERE rel = 'opt2'::regclass;
-- Column names as written, also those that are type names.
CREATE TABLE opt3 (id int, time timestamp) USING bidim
    WITH (bidim.key_column = id, bidim.time_column = time);
SELECT key_column, time_column FROM bidim.table_config WHERE rel = 'opt3'::regclass;
DROP TABLE opt3;
-- ALTER TABLE SET / RESET change them; bidim.configure writes them back.
ALTER TABLE opt SET (bidim.hot_chunk_rows = 2000, bidim.convert_after = '1 day');
SELECT hot_chunk_rows, convert_after FROM bidim.table_config WHERE rel = 'opt'::regclass;
ALTER TABLE opt RESET (bidim.hot_chunk_rows, bidim.convert_after);
SELECT hot_chunk_rows, convert_after FROM bidim.table_config WHERE rel = 'opt'::regclass;
SELECT FROM bidim.configure('opt', partition_interval => '30 minutes');
SELECT reloptions FROM pg_class WHERE oid = 'opt'::regclass;
-- Errors name the offending parameter or value.
CREATE TABLE bad (a bigint, ts timestamptz) USING bidim WITH (bidim.chunk_rows = 5);
CREATE TABLE bad (a bigint, ts timestamptz) USING bidim WITH (bidim.hot_chunk_rows = 'many');
CREATE TABLE bad (a bigint, ts timestamptz) USING bidim WITH (bidim.partition_interval = 'soon');
CREATE TABLE bad (a bigint, ts timestamptz) USING bidim WITH (bidim.key_column = nope);
CREATE TABLE bad (a bigint, ts timestamptz) WITH (bidim.hot_chunk_rows = 5);
CREATE TABLE bad (a bigint, ts timestamptz) USING bidim WITH (fillfactor = 50);
ALTER TABLE opt SET (fillfactor = 50);
ALTER TABLE opt RESET (bidim.key_column);
CREATE TABLE plain (a int);
ALTER TABLE plain SET (bidim.hot_chunk_rows = 5);
-- Only the owner changes them.
CREATE ROLE opt_intruder;
GRANT SELECT, INSERT ON opt TO opt_intruder;
SET ROLE opt_intruder;
ALTER TABLE opt SET (bidim.hot_chunk_rows = 1);
RESET ROLE;
-- Rows go where the settings say.
INSERT INTO opt SELECT g % 3, timestamptz '2026-01-01' + g * interval '1 minute', g FROM generate_series(1, 180) g;
SELECT count(DISTINCT partition) AS partitions FROM bidim.chunks WHERE rel = 'opt'::regclass;
DROP TABLE opt, opt2, plain;
DROP ROLE opt_intruder;
DROP EXTENSION bidim;
