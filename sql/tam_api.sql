-- SQL functions of the bidim access method (src/tam/api.rs implements the C ones).
-- Every name is schema-qualified; functions written in SQL pin their search_path.

CREATE FUNCTION bidim.configure(
    rel                pg_catalog.regclass,
    key_column         pg_catalog.name     DEFAULT NULL,
    time_column        pg_catalog.name     DEFAULT NULL,
    hot_chunk_rows     pg_catalog.int8     DEFAULT NULL,
    partition_interval pg_catalog.interval DEFAULT NULL,
    convert_after      pg_catalog.interval DEFAULT NULL)
RETURNS bidim.table_config
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'bidim_configure';
COMMENT ON FUNCTION bidim.configure(pg_catalog.regclass, pg_catalog.name, pg_catalog.name, pg_catalog.int8, pg_catalog.interval, pg_catalog.interval) IS
    'bidim: set the key column, time column, seal threshold, time partition width and automatic conversion age (convert_after; interval ''0'': off) of a bidim table';

CREATE FUNCTION bidim.seal(rel pg_catalog.regclass) RETURNS pg_catalog.int8
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'bidim_seal';
COMMENT ON FUNCTION bidim.seal(pg_catalog.regclass) IS
    'bidim: seal every hot chunk of a bidim table now; returns the number sealed';

CREATE FUNCTION bidim.drop_before(rel pg_catalog.regclass, cutoff pg_catalog.timestamptz)
RETURNS pg_catalog.int8
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'bidim_drop_before';
COMMENT ON FUNCTION bidim.drop_before(pg_catalog.regclass, pg_catalog.timestamptz) IS
    'bidim: drop every time partition of a bidim table that lies wholly before cutoff; returns the number dropped';

CREATE FUNCTION bidim.convert(rel pg_catalog.regclass,
                              older_than pg_catalog.timestamptz DEFAULT NULL)
RETURNS pg_catalog.int8
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'bidim_convert';
COMMENT ON FUNCTION bidim.convert(pg_catalog.regclass, pg_catalog.timestamptz) IS
    'bidim: convert the sealed chunks of a bidim table whose rows all lie before older_than (NULL: every sealed chunk) into cold chunks (sorted, compressed column batches), at most max_locks_per_transaction of them per call; returns the number converted';

CREATE FUNCTION bidim.add_retention_policy(rel pg_catalog.regclass, drop_after pg_catalog.interval,
                                           if_not_exists pg_catalog.bool DEFAULT false)
RETURNS pg_catalog.int4
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'bidim_add_retention_policy';
COMMENT ON FUNCTION bidim.add_retention_policy(pg_catalog.regclass, pg_catalog.interval, pg_catalog.bool) IS
    'bidim: drop the time partitions of a bidim table older than drop_after in the background (needs bidim in shared_preload_libraries); returns the job id';

CREATE FUNCTION bidim.remove_retention_policy(rel pg_catalog.regclass, if_exists pg_catalog.bool DEFAULT false)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'bidim_remove_retention_policy';
COMMENT ON FUNCTION bidim.remove_retention_policy(pg_catalog.regclass, pg_catalog.bool) IS
    'bidim: remove the retention policy of a bidim table';

-- Internal: the extension's event triggers and superusers only.
CREATE FUNCTION bidim._forget_table(rel pg_catalog.oid) RETURNS void
LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'bidim_forget_table';
CREATE FUNCTION bidim._after_alter_table(rel pg_catalog.oid) RETURNS void
LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'bidim_after_alter_table';
CREATE FUNCTION bidim._maintain() RETURNS pg_catalog.int8
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'bidim_maintain';
REVOKE ALL ON FUNCTION bidim._forget_table(pg_catalog.oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION bidim._after_alter_table(pg_catalog.oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION bidim._maintain() FROM PUBLIC;
REVOKE ALL ON FUNCTION bidim._on_sql_drop() FROM PUBLIC;
REVOKE ALL ON FUNCTION bidim._on_alter_table() FROM PUBLIC;

-- PostgreSQL's size functions, counting a bidim table's chunks: while the library is
-- loaded the planner points calls of pg_total_relation_size, pg_table_size and
-- pg_relation_size here (src/tam/sizes.rs). Any other relation gets PostgreSQL's answer.
CREATE FUNCTION bidim.pg_total_relation_size(pg_catalog.regclass) RETURNS pg_catalog.int8
LANGUAGE c STRICT VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'bidim_pg_total_relation_size';
CREATE FUNCTION bidim.pg_table_size(pg_catalog.regclass) RETURNS pg_catalog.int8
LANGUAGE c STRICT VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'bidim_pg_table_size';
CREATE FUNCTION bidim.pg_relation_size(pg_catalog.regclass) RETURNS pg_catalog.int8
LANGUAGE c STRICT VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'bidim_pg_relation_size';
CREATE FUNCTION bidim.pg_relation_size(pg_catalog.regclass, pg_catalog.text) RETURNS pg_catalog.int8
LANGUAGE c STRICT VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'bidim_pg_relation_size';
COMMENT ON FUNCTION bidim.pg_total_relation_size(pg_catalog.regclass) IS
    'bidim: pg_total_relation_size, counting the chunks of a bidim table (the planner calls it in place of PostgreSQL''s while bidim is loaded)';
COMMENT ON FUNCTION bidim.pg_table_size(pg_catalog.regclass) IS
    'bidim: pg_table_size, counting the chunks of a bidim table (the planner calls it in place of PostgreSQL''s while bidim is loaded)';
COMMENT ON FUNCTION bidim.pg_relation_size(pg_catalog.regclass) IS
    'bidim: pg_relation_size, counting the chunks of a bidim table (the planner calls it in place of PostgreSQL''s while bidim is loaded)';
COMMENT ON FUNCTION bidim.pg_relation_size(pg_catalog.regclass, pg_catalog.text) IS
    'bidim: pg_relation_size, counting the chunks of a bidim table (the planner calls it in place of PostgreSQL''s while bidim is loaded)';

-- Citus: whether rel is a Citus table, and a command's result on each of its shards
-- (src/tam/citus.rs sends bidim.configure/seal/convert/drop_before the same way).
CREATE FUNCTION bidim.is_citus_table(rel pg_catalog.regclass) RETURNS pg_catalog.bool
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found pg_catalog.bool;
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1)'
        INTO found USING rel;
    RETURN found;
END
$$;
CREATE FUNCTION bidim.on_shards(rel pg_catalog.regclass, command pg_catalog.text)
RETURNS TABLE (shardid pg_catalog.int8, result pg_catalog.text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
BEGIN
    FOR r IN EXECUTE 'SELECT DISTINCT ON (p.shardid) p.shardid, p.success, p.result, p.nodename, p.nodeport
                      FROM pg_catalog.run_command_on_placements($1, $2) p
                      ORDER BY p.shardid, p.success, p.nodename, p.nodeport'
             USING rel, command LOOP
        IF NOT r.success THEN
            RAISE EXCEPTION 'bidim: shard % of "%" on %:% failed: %', r.shardid, rel, r.nodename, r.nodeport, r.result
                USING ERRCODE = 'external_routine_exception';
        END IF;
        shardid := r.shardid;
        result := r.result;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION bidim.is_citus_table(pg_catalog.regclass) IS 'bidim: whether a table is a Citus table (distributed, reference or Citus local)';
COMMENT ON FUNCTION bidim.on_shards(pg_catalog.regclass, pg_catalog.text) IS
    'bidim: a command (a format string; %L: the shard) run on every shard of a Citus table through run_command_on_placements, as the caller; one result per shard, an error if a shard failed';

CREATE FUNCTION bidim.table_size(rel pg_catalog.regclass) RETURNS pg_catalog.int8
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (SELECT a.amname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_am a ON a.oid OPERATOR(pg_catalog.=) c.relam
        WHERE c.oid OPERATOR(pg_catalog.=) rel) IS DISTINCT FROM 'bidim' THEN
        RAISE EXCEPTION 'table "%" is not a bidim table', rel
            USING ERRCODE = 'wrong_object_type', HINT = 'Use pg_total_relation_size for other tables.';
    END IF;
    IF NOT pg_catalog.has_table_privilege(rel, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for table %', rel USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF bidim.is_citus_table(rel) THEN
        -- Citus sums the shards' sizes (each counted with its chunks: src/tam/sizes.rs).
        RETURN (SELECT coalesce(pg_catalog.sum(s.result::pg_catalog.int8), 0)::pg_catalog.int8
                FROM bidim.on_shards(rel, 'SELECT bidim.table_size(%L)') s);
    END IF;
    RETURN bidim.pg_total_relation_size(rel);
END
$$;
COMMENT ON FUNCTION bidim.table_size(pg_catalog.regclass) IS
    'bidim: bytes on disk of a bidim table: all its chunks (with TOAST) and its own empty file';

CREATE FUNCTION bidim.table_stats(rel pg_catalog.regclass)
RETURNS TABLE (rows pg_catalog.int8, bytes pg_catalog.int8, chunks pg_catalog.int8, hot_chunks pg_catalog.int8,
               key_ranges pg_catalog.int8, partitions pg_catalog.int8, time_lo pg_catalog.timestamptz,
               time_hi pg_catalog.timestamptz, cold_chunks pg_catalog.int8, cold_rows pg_catalog.int8,
               cold_bytes pg_catalog.int8, compression_ratio pg_catalog.float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (SELECT a.amname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_am a ON a.oid OPERATOR(pg_catalog.=) c.relam
        WHERE c.oid OPERATOR(pg_catalog.=) rel) IS DISTINCT FROM 'bidim' THEN
        RAISE EXCEPTION 'table "%" is not a bidim table', rel
            USING ERRCODE = 'wrong_object_type', HINT = 'Create it with CREATE TABLE ... USING bidim.';
    END IF;
    IF NOT pg_catalog.has_table_privilege(rel, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for table %', rel USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF bidim.is_citus_table(rel) THEN
        -- The shards' totals (each shard's row of this function, summed).
        RETURN QUERY
        WITH s AS (
            SELECT pg_catalog.string_to_array(r.result, ',') AS v
            FROM bidim.on_shards(rel,
                'SELECT pg_catalog.concat_ws('','', s.rows, s.bytes, s.chunks, s.hot_chunks, s.key_ranges, s.partitions,
                     pg_catalog.date_part(''epoch'', s.time_lo), pg_catalog.date_part(''epoch'', s.time_hi), s.cold_chunks,
                     s.cold_rows, s.cold_bytes, s.cold_bytes::pg_catalog.float8 OPERATOR(pg_catalog.*) s.compression_ratio)
                 FROM bidim.table_stats(%L) s') r)
        SELECT pg_catalog.sum(v[1]::pg_catalog.int8)::pg_catalog.int8, pg_catalog.sum(v[2]::pg_catalog.int8)::pg_catalog.int8,
               pg_catalog.sum(v[3]::pg_catalog.int8)::pg_catalog.int8, pg_catalog.sum(v[4]::pg_catalog.int8)::pg_catalog.int8,
               pg_catalog.sum(v[5]::pg_catalog.int8)::pg_catalog.int8, pg_catalog.max(v[6]::pg_catalog.int8),
               pg_catalog.to_timestamp(pg_catalog.min(nullif(v[7], '')::pg_catalog.float8)),
               pg_catalog.to_timestamp(pg_catalog.max(nullif(v[8], '')::pg_catalog.float8)),
               pg_catalog.sum(v[9]::pg_catalog.int8)::pg_catalog.int8, pg_catalog.sum(v[10]::pg_catalog.int8)::pg_catalog.int8,
               pg_catalog.sum(v[11]::pg_catalog.int8)::pg_catalog.int8,
               (pg_catalog.sum(nullif(v[12], '')::pg_catalog.float8)
                 OPERATOR(pg_catalog./) NULLIF(pg_catalog.sum(v[11]::pg_catalog.int8), 0))::pg_catalog.float8
        FROM s;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT coalesce(pg_catalog.sum(c.rows), 0)::pg_catalog.int8,
           bidim.table_size(table_stats.rel),
           pg_catalog.count(*),
           pg_catalog.count(*) FILTER (WHERE c.state OPERATOR(pg_catalog.=) 'hot'),
           greatest((SELECT pg_catalog.count(*) FROM bidim.key_range r
                     WHERE r.rel OPERATOR(pg_catalog.=) table_stats.rel::pg_catalog.oid
                       AND r.state OPERATOR(pg_catalog.=) 'active'), 1),
           pg_catalog.count(DISTINCT c.partition),
           pg_catalog.min(c.time_lo),
           pg_catalog.max(c.time_hi),
           pg_catalog.count(*) FILTER (WHERE c.state OPERATOR(pg_catalog.=) 'cold'),
           coalesce(pg_catalog.sum(c.rows) FILTER (WHERE c.state OPERATOR(pg_catalog.=) 'cold'), 0)::pg_catalog.int8,
           coalesce(pg_catalog.sum(c.bytes) FILTER (WHERE c.state OPERATOR(pg_catalog.=) 'cold'), 0)::pg_catalog.int8,
           -- the cold chunks' heap form before conversion over what they take now
           (pg_catalog.sum(c.bytes_before) FILTER (WHERE c.state OPERATOR(pg_catalog.=) 'cold')
             OPERATOR(pg_catalog./) NULLIF(pg_catalog.sum(c.bytes) FILTER (WHERE c.state OPERATOR(pg_catalog.=) 'cold'), 0))::pg_catalog.float8
    FROM bidim.chunks c
    WHERE c.rel OPERATOR(pg_catalog.=) table_stats.rel;
END
$$;
COMMENT ON FUNCTION bidim.table_stats(pg_catalog.regclass) IS
    'bidim: totals of a bidim table: rows, bytes, chunks, hot chunks, active key ranges, time partitions, time span, cold chunks, their rows and bytes, and their compression ratio (bytes before conversion / bytes now)';

-- Runs one job now and records the outcome (the maintenance worker calls it for every
-- due job; superusers may call it to run a job at once). Errors inside the job are
-- caught and recorded in bidim.jobs.last_error.
CREATE FUNCTION bidim.run_job(job_id pg_catalog.int4) RETURNS pg_catalog.bool
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j bidim.job;
    msg pg_catalog.text;
    nap pg_catalog.interval := coalesce(
        nullif(pg_catalog.current_setting('bidim.maintenance_naptime', true), '')::pg_catalog.interval,
        interval '1 minute');
BEGIN
    SELECT * INTO j FROM bidim.job WHERE bidim.job.job_id OPERATOR(pg_catalog.=) $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'bidim job % does not exist', $1 USING ERRCODE = 'undefined_object';
    END IF;
    BEGIN
        IF j.kind OPERATOR(pg_catalog.=) 'retention' THEN
            PERFORM bidim.drop_before(j.rel, pg_catalog.now() OPERATOR(pg_catalog.-) j.drop_after);
        ELSIF j.kind OPERATOR(pg_catalog.=) 'rollup' THEN
            -- The worker advanced the rollup's threshold in a transaction of its own
            -- just before (bidim.refresh_rollup_step(id, 'advance')); this materializes up to it.
            PERFORM bidim.refresh_rollup_step(j.rollup_id, 'materialize');
        ELSE
            PERFORM bidim._maintain();
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
    END;
    UPDATE bidim.job AS u
    SET last_run = pg_catalog.now(), runs = u.runs OPERATOR(pg_catalog.+) 1,
        last_success = CASE WHEN msg IS NULL THEN pg_catalog.now() ELSE u.last_success END,
        last_error = msg,
        failures = u.failures OPERATOR(pg_catalog.+) (msg IS NOT NULL)::pg_catalog.int4,
        next_run = pg_catalog.now() OPERATOR(pg_catalog.+) coalesce(u.schedule_interval, nap)
    WHERE u.job_id OPERATOR(pg_catalog.=) j.job_id;
    RETURN msg IS NULL;
END
$$;
REVOKE ALL ON FUNCTION bidim.run_job(pg_catalog.int4) FROM PUBLIC;
COMMENT ON FUNCTION bidim.run_job(pg_catalog.int4) IS
    'bidim: run a background job now (superuser); returns false and records last_error if it failed';

-- The first step of a job that needs two transactions (a rollup's: the threshold
-- moves and commits before its buckets are materialized by bidim.run_job); the
-- maintenance worker calls it just before run_job. Errors become a WARNING.
CREATE FUNCTION bidim._prepare_job(job_id pg_catalog.int4) RETURNS pg_catalog.bool
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j bidim.job;
    msg pg_catalog.text;
BEGIN
    SELECT * INTO j FROM bidim.job WHERE bidim.job.job_id OPERATOR(pg_catalog.=) $1;
    IF NOT FOUND OR j.kind OPERATOR(pg_catalog.<>) 'rollup' THEN
        RETURN true;
    END IF;
    BEGIN
        PERFORM bidim.refresh_rollup_step(j.rollup_id, 'advance');
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        RAISE WARNING 'bidim job %: cannot advance rollup %: %', j.job_id, j.rollup_id, msg;
    END;
    RETURN msg IS NULL;
END
$$;
REVOKE ALL ON FUNCTION bidim._prepare_job(pg_catalog.int4) FROM PUBLIC;

CREATE VIEW bidim.jobs WITH (security_barrier) AS
SELECT j.job_id, j.kind, j.rel, j.drop_after, j.schedule_interval,
       j.last_run, j.last_success, j.next_run, j.last_error, j.runs, j.failures,
       j.rollup_id
FROM bidim.job j
WHERE j.rel IS NULL OR pg_catalog.has_table_privilege(j.rel, 'SELECT');
COMMENT ON VIEW bidim.jobs IS 'bidim: background jobs of this database (retention policies, rollups, maintenance): last run, next run, last error';
GRANT SELECT ON bidim.jobs TO PUBLIC;
