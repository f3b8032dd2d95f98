-- The chunk directory, configuration and jobs of the bidim access method
-- (src/tam/schema.rs; rules in src/tam/directory.rs). Every name is schema-qualified; pgspot checks this file.
CREATE SCHEMA bidim;
GRANT USAGE ON SCHEMA bidim TO PUBLIC;
CREATE SCHEMA bidim_internal;
COMMENT ON SCHEMA bidim_internal IS 'bidim: chunk relations of bidim tables (internal, do not touch)';
REVOKE ALL ON SCHEMA bidim_internal FROM PUBLIC;

CREATE TABLE bidim.table_config (
    rel                regclass PRIMARY KEY,
    key_column         name     NOT NULL,
    time_column        name     NOT NULL,
    hot_chunk_rows     bigint   NOT NULL CHECK (hot_chunk_rows OPERATOR(pg_catalog.>) 0),
    partition_interval interval NOT NULL,
    -- the maintenance job converts sealed chunks whose rows are all older than this
    -- (NULL: never; bidim.convert converts by hand)
    convert_after      interval CHECK (convert_after OPERATOR(pg_catalog.>) interval '0')
);
COMMENT ON TABLE bidim.table_config IS 'bidim: per-table settings written by bidim.configure (no row: defaults)';
-- Not dumped: a table's settings are in its definition too (WITH (bidim.* = ...), src/tam/options.rs),
-- which pg_dump writes and a restore applies.

CREATE TABLE bidim.chunk (
    rel        oid         NOT NULL,
    chunk_id   int4        NOT NULL,
    chunk_rel  oid         NOT NULL,
    range_id   int4        NOT NULL DEFAULT 0,
    key_lo     text,
    key_hi     text,
    time_lo    timestamptz NOT NULL,
    time_hi    timestamptz NOT NULL,
    state      text        NOT NULL DEFAULT 'hot'
               CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['hot', 'sealed', 'cold']::pg_catalog.text[])),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    sealed_at  timestamptz,
    -- the transaction that sealed the chunk, and the exact times of its rows once the
    -- maintenance job has measured them (NULL: not yet; the partition bounds hold)
    sealed_xid xid8,
    min_time   timestamptz,
    max_time   timestamptz,
    -- the chunk's size in blocks when its bounds were measured (the planner's size
    -- estimate reads it instead of opening every chunk)
    pages      int8,
    -- a cold chunk's rows and the bytes its heap form took, counted when it was
    -- converted (src/tam/convert.rs)
    rows         int8,
    bytes_before int8,
    -- a sealed chunk's block-range time map, measured with its bounds
    -- (src/tam/block_map.rs: blocks per range, blocks covered, then each range's
    -- first and last time); NULL: read the whole chunk
    block_times  int8[],
    PRIMARY KEY (rel, chunk_id)
);
COMMENT ON TABLE bidim.chunk IS 'bidim: chunk directory (one row per chunk; internal)';
-- A query's scan reads the directory rows of the partitions that end after its lower
-- time bound only (src/tam/directory_io.rs, read_chunks_ending_after).
CREATE INDEX chunk_rel_time_hi_idx ON bidim.chunk (rel, time_hi);

-- Key ranges of each table: no row means the single range 0 covering every key. A
-- split marks its range 'split' and adds two 'active' halves; chunks keep the bounds
-- of the range they were made for (bidim.chunk.key_lo/key_hi).
CREATE SEQUENCE bidim.key_range_id_seq AS int4 MINVALUE 1;
CREATE TABLE bidim.key_range (
    rel        oid         NOT NULL,
    range_id   int4        NOT NULL,
    key_lo     text,
    key_hi     text,
    state      text        NOT NULL DEFAULT 'active'
               CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['active', 'split']::pg_catalog.text[])),
    parent     int4,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    split_at   timestamptz,
    PRIMARY KEY (rel, range_id)
);
COMMENT ON TABLE bidim.key_range IS 'bidim: key ranges of every bidim table (internal)';

-- Background jobs of this database: one row per retention policy and per rollup, plus
-- the database's maintenance job (seals chunks of finished partitions, analyzes sealed
-- chunks). The maintenance worker runs due jobs through bidim.run_job.
CREATE SEQUENCE bidim.job_id_seq AS int4 MINVALUE 1;
CREATE TABLE bidim.job (
    job_id            int4        PRIMARY KEY DEFAULT pg_catalog.nextval('bidim.job_id_seq'::pg_catalog.regclass),
    kind              text        NOT NULL
                      CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['retention', 'maintenance', 'rollup']::pg_catalog.text[])),
    rel               regclass,
    -- a rollup job's rollup (bidim.rollup, sql/rollup.sql)
    rollup_id         int4,
    drop_after        interval,
    schedule_interval interval    CHECK (schedule_interval OPERATOR(pg_catalog.>) interval '0'),
    next_run          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_run          timestamptz,
    last_success      timestamptz,
    last_error        text,
    runs              bigint      NOT NULL DEFAULT 0,
    failures          bigint      NOT NULL DEFAULT 0,
    UNIQUE NULLS NOT DISTINCT (kind, rel, rollup_id),
    CHECK ((kind OPERATOR(pg_catalog.=) 'retention') OPERATOR(pg_catalog.=) (rel IS NOT NULL AND drop_after IS NOT NULL)),
    CHECK ((kind OPERATOR(pg_catalog.=) 'rollup') OPERATOR(pg_catalog.=) (rel IS NOT NULL AND rollup_id IS NOT NULL))
);
COMMENT ON TABLE bidim.job IS 'bidim: background jobs (retention policies, maintenance); see the view bidim.jobs';
SELECT pg_catalog.pg_extension_config_dump('bidim.job', 'WHERE kind <> ''maintenance''');
SELECT pg_catalog.pg_extension_config_dump('bidim.job_id_seq', '');
INSERT INTO bidim.job (kind) VALUES ('maintenance');

-- Chunk ordinals handed out per table (transactional: a rolled-back chunk creation
-- gives its number back). Written through the catalog C API only.
CREATE TABLE bidim.chunk_counter (
    rel          oid  PRIMARY KEY,
    last_ordinal int8 NOT NULL
);
-- Ordinals of dropped chunks, reused once every snapshot that could hold a TID of
-- theirs is gone (freed_xid precedes the oldest running transaction's xmin).
CREATE TABLE bidim.chunk_free (
    rel       oid  NOT NULL,
    ordinal   int4 NOT NULL,
    freed_xid xid8 NOT NULL,
    PRIMARY KEY (rel, ordinal)
);
COMMENT ON TABLE bidim.chunk_free IS 'bidim: chunk ordinals of dropped chunks, waiting to be reused (internal)';
COMMENT ON TABLE bidim.chunk_counter IS 'bidim: last chunk ordinal of every bidim table (internal)';

-- Directory rows are visible to roles that may SELECT their table (row-level
-- security; routing and scans read them through the C API, whatever the caller may see).
ALTER TABLE bidim.table_config ENABLE ROW LEVEL SECURITY;
CREATE POLICY table_config_readable ON bidim.table_config FOR SELECT
    USING (pg_catalog.has_table_privilege(rel, 'SELECT'));
ALTER TABLE bidim.chunk ENABLE ROW LEVEL SECURITY;
CREATE POLICY chunk_readable ON bidim.chunk FOR SELECT
    USING (pg_catalog.has_table_privilege(rel, 'SELECT'));
ALTER TABLE bidim.key_range ENABLE ROW LEVEL SECURITY;
CREATE POLICY key_range_readable ON bidim.key_range FOR SELECT
    USING (pg_catalog.has_table_privilege(rel, 'SELECT'));
ALTER TABLE bidim.job ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_readable ON bidim.job FOR SELECT
    USING (rel IS NULL OR pg_catalog.has_table_privilege(rel, 'SELECT'));
GRANT SELECT ON bidim.table_config, bidim.chunk, bidim.key_range, bidim.job TO PUBLIC;

-- Chunks are extension members (so pg_dump skips them), not dependents of their
-- table: a dropped table's chunks are dropped here. SECURITY DEFINER: it drops
-- relations of the extension; it reads only catalogs and bidim's own tables.
CREATE FUNCTION bidim._on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    o record;
BEGIN
    FOR o IN SELECT d.objid FROM pg_catalog.pg_event_trigger_dropped_objects() d
             WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
               AND d.objsubid OPERATOR(pg_catalog.=) 0 AND d.object_type OPERATOR(pg_catalog.=) 'table'
    LOOP
        IF EXISTS (SELECT 1 FROM bidim.chunk c WHERE c.rel OPERATOR(pg_catalog.=) o.objid)
           OR EXISTS (SELECT 1 FROM bidim.chunk_counter c WHERE c.rel OPERATOR(pg_catalog.=) o.objid)
           OR EXISTS (SELECT 1 FROM bidim.chunk_free c WHERE c.rel OPERATOR(pg_catalog.=) o.objid)
           OR EXISTS (SELECT 1 FROM bidim.table_config c WHERE c.rel::pg_catalog.oid OPERATOR(pg_catalog.=) o.objid)
           OR EXISTS (SELECT 1 FROM bidim.job j WHERE j.rel::pg_catalog.oid OPERATOR(pg_catalog.=) o.objid) THEN
            PERFORM bidim._forget_table(o.objid);
        END IF;
    END LOOP;
END
$$;
CREATE EVENT TRIGGER bidim_sql_drop ON sql_drop EXECUTE FUNCTION bidim._on_sql_drop();

-- After ALTER TABLE on a bidim table: its chunks follow the table's owner, and its key
-- and time columns must still be the columns its chunks were made by.
CREATE FUNCTION bidim._on_alter_table() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    o record;
BEGIN
    FOR o IN SELECT DISTINCT d.objid FROM pg_catalog.pg_event_trigger_ddl_commands() d
             WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
               AND d.command_tag OPERATOR(pg_catalog.=) 'ALTER TABLE'
    LOOP
        IF EXISTS (SELECT 1 FROM bidim.chunk c WHERE c.rel OPERATOR(pg_catalog.=) o.objid) THEN
            PERFORM bidim._after_alter_table(o.objid);
        END IF;
    END LOOP;
END
$$;
CREATE EVENT TRIGGER bidim_alter_table ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION bidim._on_alter_table();

CREATE FUNCTION bidim_tam_handler(internal) RETURNS table_am_handler
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'bidim_tam_handler';
CREATE ACCESS METHOD bidim TYPE TABLE HANDLER bidim_tam_handler;
COMMENT ON ACCESS METHOD bidim IS 'bidim: rows partitioned by key range and time into hot and sealed chunks';

-- Views list the tables the reader may SELECT (security barriers: a reader's own
-- functions in a WHERE clause run only on rows that passed the privilege check).
-- On a Citus coordinator (group 0): the rows of bidim view `view_name` ('chunks' or
-- 'key_ranges') on every shard of the distributed bidim tables the caller may read, as
-- JSON, with the distributed table and the shard id; empty anywhere else. The views
-- below add them to their own node's rows (bidim.on_shards runs the query on each
-- shard as the caller).
CREATE FUNCTION bidim.shard_rows(view_name pg_catalog.text)
RETURNS TABLE (rel pg_catalog.regclass, shard pg_catalog.int8, item pg_catalog.json)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t pg_catalog.regclass;
    coordinator pg_catalog.bool;
BEGIN
    IF view_name OPERATOR(pg_catalog.<>) ALL (ARRAY['chunks', 'key_ranges']) THEN
        RAISE EXCEPTION 'bidim.shard_rows: no view "%" (chunks or key_ranges)', view_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN;
    END IF;
    EXECUTE 'SELECT coalesce((SELECT g.groupid OPERATOR(pg_catalog.=) 0 FROM pg_catalog.pg_dist_local_group g), false)'
        INTO coordinator;
    IF NOT coordinator THEN
        RETURN;
    END IF;
    FOR t IN EXECUTE 'SELECT p.logicalrelid FROM pg_catalog.pg_dist_partition p
                      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.logicalrelid
                      JOIN pg_catalog.pg_am a ON a.oid OPERATOR(pg_catalog.=) c.relam
                      WHERE a.amname OPERATOR(pg_catalog.=) ''bidim''
                        AND pg_catalog.has_table_privilege(p.logicalrelid, ''SELECT'')
                      ORDER BY 1' LOOP
        RETURN QUERY
        SELECT t, s.shardid, j.r
        FROM bidim.on_shards(t, pg_catalog.format(
                 'SELECT pg_catalog.json_agg(v) FROM bidim.%I v WHERE v.rel OPERATOR(pg_catalog.=) %%L::pg_catalog.regclass',
                 view_name)) s,
             pg_catalog.json_array_elements(coalesce(NULLIF(s.result, ''), '[]')::pg_catalog.json) AS j(r);
    END LOOP;
END
$$;
COMMENT ON FUNCTION bidim.shard_rows(pg_catalog.text) IS
    'bidim: on a Citus coordinator, the rows of bidim.chunks or bidim.key_ranges on the shards of the distributed bidim tables the caller may read (the views include them)';

CREATE VIEW bidim.key_ranges WITH (security_barrier) AS
SELECT r.rel::pg_catalog.regclass AS rel, r.range_id, r.key_lo, r.key_hi, r.state, r.parent,
       r.created_at, r.split_at, NULL::pg_catalog.int8 AS shard
FROM bidim.key_range r
JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) r.rel
WHERE pg_catalog.has_table_privilege(r.rel, 'SELECT')
UNION ALL
-- On a Citus coordinator: the key ranges of the shards of distributed bidim tables.
SELECT s.rel, j.range_id, j.key_lo, j.key_hi, j.state, j.parent, j.created_at, j.split_at, s.shard
FROM bidim.shard_rows('key_ranges') s,
     pg_catalog.json_to_record(s.item)
       AS j(range_id pg_catalog.int4, key_lo pg_catalog.text, key_hi pg_catalog.text, state pg_catalog.text,
            parent pg_catalog.int4, created_at pg_catalog.timestamptz, split_at pg_catalog.timestamptz);
COMMENT ON VIEW bidim.key_ranges IS 'bidim: key ranges of every bidim table that has split (a table without rows here has one range holding every key); on a Citus coordinator also those of the shards of distributed bidim tables (shard: the shard id)';
GRANT SELECT ON bidim.key_ranges TO PUBLIC;

-- A chunk's state is its directory row's (src/tam/directory.rs): hot chunks take new
-- rows; a chunk is sealed by the transaction that makes its successor, splits its key
-- range, runs bidim.seal() or the maintenance job; bidim.convert makes sealed chunks
-- cold (rows: counted at conversion; bytes: the batch relation with its TOAST).
CREATE FUNCTION bidim.cold_rows(rel pg_catalog.regclass, chunk_id pg_catalog.int4) RETURNS pg_catalog.int8
LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_cold_rows';
COMMENT ON FUNCTION bidim.cold_rows(pg_catalog.regclass, pg_catalog.int4) IS
    'bidim: the rows a cold chunk holds now (rows moved back to hot chunks by changes no longer count); NULL for a chunk that is not cold';

CREATE FUNCTION bidim.cold_column_bytes(rel pg_catalog.regclass, chunk_id pg_catalog.int4) RETURNS pg_catalog.int8[]
LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_cold_column_bytes';
COMMENT ON FUNCTION bidim.cold_column_bytes(pg_catalog.regclass, pg_catalog.int4) IS
    'bidim: bytes each column takes in a cold chunk (by attribute number: its batches'' encoded columns); NULL for a chunk that is not cold';

CREATE VIEW bidim.chunks WITH (security_barrier) AS
SELECT c.rel::pg_catalog.regclass AS rel,
       c.chunk_id,
       c.key_lo,
       c.key_hi,
       c.time_lo,
       c.time_hi,
       c.state,
       -- live tuples from the statistics system; after a stats reset (a crash) the
       -- count ANALYZE (or the maintenance job) left in pg_class
       -- a cold chunk's rows: those its batches hold now (changes move rows out)
       CASE WHEN c.state OPERATOR(pg_catalog.=) 'cold' THEN bidim.cold_rows(c.rel::pg_catalog.regclass, c.chunk_id)
            WHEN pg_catalog.pg_stat_get_tuples_inserted(c.chunk_rel) OPERATOR(pg_catalog.>) 0
                 OR pg_catalog.pg_stat_get_tuples_deleted(c.chunk_rel) OPERATOR(pg_catalog.>) 0
                 OR pg_catalog.pg_stat_get_last_analyze_time(c.chunk_rel) IS NOT NULL
                 OR pg_catalog.pg_stat_get_last_autoanalyze_time(c.chunk_rel) IS NOT NULL
            THEN greatest(pg_catalog.pg_stat_get_live_tuples(c.chunk_rel), 0)
            ELSE greatest(k.reltuples, 0)::bigint END AS rows,
       pg_catalog.pg_total_relation_size(c.chunk_rel) AS bytes,
       c.time_lo AS partition,
       c.created_at,
       c.sealed_at,
       c.range_id,
       c.min_time,
       c.max_time,
       -- a cold chunk's heap form before its conversion, in bytes
       c.bytes_before,
       NULL::pg_catalog.int8 AS shard
FROM bidim.chunk c
JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) c.chunk_rel
WHERE pg_catalog.has_table_privilege(c.rel, 'SELECT')
UNION ALL
-- On a Citus coordinator: the chunks of the shards of distributed bidim tables.
SELECT s.rel, j.chunk_id, j.key_lo, j.key_hi, j.time_lo, j.time_hi, j.state, j.rows, j.bytes, j.partition,
       j.created_at, j.sealed_at, j.range_id, j.min_time, j.max_time, j.bytes_before, s.shard
FROM bidim.shard_rows('chunks') s,
     pg_catalog.json_to_record(s.item)
       AS j(chunk_id pg_catalog.int4, key_lo pg_catalog.text, key_hi pg_catalog.text,
            time_lo pg_catalog.timestamptz, time_hi pg_catalog.timestamptz, state pg_catalog.text,
            rows pg_catalog.int8, bytes pg_catalog.int8, partition pg_catalog.timestamptz,
            created_at pg_catalog.timestamptz, sealed_at pg_catalog.timestamptz, range_id pg_catalog.int4,
            min_time pg_catalog.timestamptz, max_time pg_catalog.timestamptz, bytes_before pg_catalog.int8);
COMMENT ON VIEW bidim.chunks IS 'bidim: chunks of every bidim table (rows: live tuples from statistics); on a Citus coordinator also the chunks of the shards of distributed bidim tables (shard: the shard id)';

CREATE VIEW bidim.time_partitions AS
SELECT rel, partition, pg_catalog.min(time_lo) AS time_lo, pg_catalog.max(time_hi) AS time_hi,
       pg_catalog.count(*) AS chunks, pg_catalog.sum(rows)::bigint AS rows, pg_catalog.sum(bytes)::bigint AS bytes
FROM bidim.chunks
GROUP BY rel, partition;
COMMENT ON VIEW bidim.time_partitions IS 'bidim: time partitions of every bidim table';
GRANT SELECT ON bidim.chunks, bidim.time_partitions TO PUBLIC;

-- Logical replication decodes the changes of chunk relations, never of their table:
-- a publication of a bidim table would copy its rows once and then stay silent (Citus'
-- logical shard moves lost acknowledged rows that way), and one of its chunks (FOR ALL
-- TABLES) publishes relations no subscriber has. After every statement that can put a
-- bidim table or a chunk into a publication (CREATE/ALTER PUBLICATION, CREATE TABLE
-- ... USING bidim, ALTER TABLE ... SET SCHEMA) this trigger refuses it, so the
-- statement is undone. COPY ... TO, pg_dump and Citus' block_writes moves work as usual.
CREATE FUNCTION bidim._on_publication() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    pub pg_catalog.text;
    t pg_catalog.text;
    chunk pg_catalog.bool;
    alltables pg_catalog.bool;
BEGIN
    SELECT p.pubname, pg_catalog.format('%I.%I', n.nspname, c.relname),
           n.nspname OPERATOR(pg_catalog.=) 'bidim_internal', p.puballtables
    INTO pub, t, chunk, alltables
    FROM pg_catalog.pg_publication p
    JOIN pg_catalog.pg_class c ON c.relkind OPERATOR(pg_catalog.=) 'r'
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    LEFT JOIN pg_catalog.pg_am a ON a.oid OPERATOR(pg_catalog.=) c.relam
    WHERE (a.amname OPERATOR(pg_catalog.=) 'bidim' OR n.nspname OPERATOR(pg_catalog.=) 'bidim_internal')
      AND (p.puballtables
           OR EXISTS (SELECT FROM pg_catalog.pg_publication_rel r
                      WHERE r.prpubid OPERATOR(pg_catalog.=) p.oid AND r.prrelid OPERATOR(pg_catalog.=) c.oid)
           OR EXISTS (SELECT FROM pg_catalog.pg_publication_namespace s
                      WHERE s.pnpubid OPERATOR(pg_catalog.=) p.oid AND s.pnnspid OPERATOR(pg_catalog.=) c.relnamespace))
    ORDER BY n.nspname OPERATOR(pg_catalog.=) 'bidim_internal', p.pubname, 2
    LIMIT 1;
    IF pub IS NOT NULL THEN
        RAISE EXCEPTION 'publication "%" would publish %, and logical replication does not carry the rows of bidim tables',
            pub, CASE WHEN chunk THEN 'a chunk of a bidim table (' OPERATOR(pg_catalog.||) t OPERATOR(pg_catalog.||) ')'
                      ELSE 'bidim table ' OPERATOR(pg_catalog.||) t END
            USING ERRCODE = 'feature_not_supported',
                  HINT = CASE WHEN alltables
                              THEN 'A FOR ALL TABLES publication cannot be used in a database with bidim tables: list the tables to publish. '
                              ELSE 'Leave bidim tables out of publications. ' END
                         OPERATOR(pg_catalog.||) 'Copy bidim tables with COPY or pg_dump (or physical replication); move Citus shards of bidim tables with shard_transfer_mode => ''block_writes''.';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION bidim._on_publication() FROM PUBLIC;
CREATE EVENT TRIGGER bidim_publication ON ddl_command_end
    WHEN TAG IN ('CREATE PUBLICATION', 'ALTER PUBLICATION', 'CREATE TABLE', 'CREATE TABLE AS',
                 'SELECT INTO', 'ALTER TABLE')
    EXECUTE FUNCTION bidim._on_publication();
