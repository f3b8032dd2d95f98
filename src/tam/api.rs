//! SQL functions of the access method: configuration and maintenance.

use pgrx::prelude::*;

pgrx::extension_sql!(
    r#"
-- Default key/time columns: the first integer/text column, the first timestamp column.
CREATE FUNCTION bidim._default_column(rel regclass, kind text) RETURNS name
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT attname FROM pg_attribute
    WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped
      AND atttypid = ANY (CASE kind WHEN 'key' THEN '{int2,int4,int8,text,varchar}'::regtype[]
                                    ELSE '{timestamptz,timestamp}'::regtype[] END)
    ORDER BY attnum LIMIT 1
$$;

CREATE FUNCTION bidim._check_table(rel regclass, fn text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION '%: table must not be NULL', fn USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = rel)
       IS DISTINCT FROM 'bidim' THEN
        RAISE EXCEPTION 'table "%" is not a bidim table', rel
            USING ERRCODE = 'wrong_object_type', HINT = 'Create it with CREATE TABLE ... USING bidim.';
    END IF;
    IF NOT pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = rel), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', rel USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

CREATE FUNCTION bidim.configure(
    rel                regclass,
    key_column         name     DEFAULT NULL,
    time_column        name     DEFAULT NULL,
    hot_chunk_rows     bigint   DEFAULT NULL,
    partition_interval interval DEFAULT NULL)
RETURNS bidim.table_config
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cur bidim.table_config;
    typ regtype;
BEGIN
    PERFORM bidim._check_table(rel, 'bidim.configure');
    SELECT * INTO cur FROM bidim.table_config c WHERE c.rel = configure.rel;
    IF NOT FOUND THEN
        cur := ROW(rel, bidim._default_column(rel, 'key'), bidim._default_column(rel, 'time'),
                   1000000, interval '1 day')::bidim.table_config;
    END IF;
    IF (key_column IS NOT NULL AND key_column IS DISTINCT FROM cur.key_column)
       OR (time_column IS NOT NULL AND time_column IS DISTINCT FROM cur.time_column) THEN
        IF EXISTS (SELECT 1 FROM bidim.chunk c WHERE c.rel = configure.rel) THEN
            RAISE EXCEPTION 'cannot change the key or time column of bidim table "%" while it holds rows', rel
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'TRUNCATE it first, or copy the rows into a new table.';
        END IF;
    END IF;
    cur.key_column := coalesce(key_column, cur.key_column);
    cur.time_column := coalesce(time_column, cur.time_column);
    cur.hot_chunk_rows := coalesce(hot_chunk_rows, cur.hot_chunk_rows);
    cur.partition_interval := coalesce(partition_interval, cur.partition_interval);

    SELECT atttypid::regtype INTO typ FROM pg_attribute
    WHERE attrelid = rel AND attname = cur.key_column AND attnum > 0 AND NOT attisdropped;
    IF typ IS NULL THEN
        RAISE EXCEPTION 'column "%" of table "%" does not exist', cur.key_column, rel
            USING ERRCODE = 'undefined_column';
    ELSIF typ NOT IN ('int2'::regtype, 'int4', 'int8', 'text', 'varchar') THEN
        RAISE EXCEPTION 'key column "%" has type %, but must be smallint, integer, bigint, text or varchar',
            cur.key_column, typ USING ERRCODE = 'datatype_mismatch';
    END IF;
    typ := NULL;
    SELECT atttypid::regtype INTO typ FROM pg_attribute
    WHERE attrelid = rel AND attname = cur.time_column AND attnum > 0 AND NOT attisdropped;
    IF typ IS NULL THEN
        RAISE EXCEPTION 'column "%" of table "%" does not exist', cur.time_column, rel
            USING ERRCODE = 'undefined_column';
    ELSIF typ NOT IN ('timestamptz'::regtype, 'timestamp') THEN
        RAISE EXCEPTION 'time column "%" has type %, but must be timestamptz or timestamp',
            cur.time_column, typ USING ERRCODE = 'datatype_mismatch';
    END IF;
    IF cur.hot_chunk_rows < 1 THEN
        RAISE EXCEPTION 'hot_chunk_rows must be at least 1, not %', cur.hot_chunk_rows
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF extract(month FROM cur.partition_interval) <> 0 OR extract(year FROM cur.partition_interval) <> 0 THEN
        RAISE EXCEPTION 'partition_interval must not contain months or years, not %', cur.partition_interval
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use days, for example interval ''30 days''.';
    END IF;
    IF cur.partition_interval < interval '1 second' THEN
        RAISE EXCEPTION 'partition_interval must be at least 1 second, not %', cur.partition_interval
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    PERFORM bidim._store_config(rel::oid, cur.key_column::text, cur.time_column::text,
                                cur.hot_chunk_rows, cur.partition_interval::text);
    RETURN cur;
END
$$;
COMMENT ON FUNCTION bidim.configure(regclass, name, name, bigint, interval) IS
    'bidim: set the key column, time column, seal threshold and time partition width of a bidim table';

CREATE FUNCTION bidim.seal(rel regclass) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM bidim._check_table(rel, 'bidim.seal');
    RETURN bidim._seal(rel::oid);
END
$$;

CREATE FUNCTION bidim.table_size(rel regclass) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = rel)
       IS DISTINCT FROM 'bidim' THEN
        RAISE EXCEPTION 'table "%" is not a bidim table', rel
            USING ERRCODE = 'wrong_object_type', HINT = 'Use pg_total_relation_size for other tables.';
    END IF;
    RETURN pg_total_relation_size(rel)
         + coalesce((SELECT sum(pg_total_relation_size(c.chunk_rel))
                     FROM bidim.chunk c JOIN pg_class k ON k.oid = c.chunk_rel
                     WHERE c.rel = table_size.rel), 0)::bigint;
END
$$;
COMMENT ON FUNCTION bidim.table_size(regclass) IS
    'bidim: bytes on disk of a bidim table: all its chunks (with TOAST) and its own empty file';

CREATE FUNCTION bidim.drop_before(rel regclass, cutoff timestamptz) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM bidim._check_table(rel, 'bidim.drop_before');
    IF cutoff IS NULL THEN
        RAISE EXCEPTION 'bidim.drop_before: cutoff must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN bidim._drop_before(rel::oid, cutoff);
END
$$;
COMMENT ON FUNCTION bidim.drop_before(regclass, timestamptz) IS
    'bidim: drop every time partition of a bidim table that lies wholly before cutoff; returns the number dropped';

CREATE FUNCTION bidim.table_stats(rel regclass)
RETURNS TABLE (rows bigint, bytes bigint, chunks bigint, hot_chunks bigint, key_ranges bigint,
               partitions bigint, time_lo timestamptz, time_hi timestamptz)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = rel)
       IS DISTINCT FROM 'bidim' THEN
        RAISE EXCEPTION 'table "%" is not a bidim table', rel
            USING ERRCODE = 'wrong_object_type', HINT = 'Create it with CREATE TABLE ... USING bidim.';
    END IF;
    RETURN QUERY
    SELECT coalesce(sum(c.rows), 0)::bigint,
           bidim.table_size(table_stats.rel),
           count(*),
           count(*) FILTER (WHERE c.state = 'hot'),
           greatest((SELECT count(*) FROM bidim.key_range r
                     WHERE r.rel = table_stats.rel::oid AND r.state = 'active'), 1),
           count(DISTINCT c.partition),
           min(c.time_lo),
           max(c.time_hi)
    FROM bidim.chunks c
    WHERE c.rel = table_stats.rel;
END
$$;
COMMENT ON FUNCTION bidim.table_stats(regclass) IS
    'bidim: totals of a bidim table: rows, bytes, chunks, hot chunks, active key ranges, time partitions, time span';

CREATE FUNCTION bidim.add_retention_policy(rel regclass, drop_after interval,
                                           if_not_exists boolean DEFAULT false)
RETURNS int4
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM bidim._check_table(rel, 'bidim.add_retention_policy');
    IF drop_after IS NULL OR drop_after <= interval '0' THEN
        RAISE EXCEPTION 'bidim.add_retention_policy: drop_after must be a positive interval, not %',
            coalesce(drop_after::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN bidim._add_retention_policy(rel::oid, drop_after::text, coalesce(if_not_exists, false));
END
$$;
COMMENT ON FUNCTION bidim.add_retention_policy(regclass, interval, boolean) IS
    'bidim: drop the time partitions of a bidim table older than drop_after in the background (needs bidim in shared_preload_libraries); returns the job id';

CREATE FUNCTION bidim.remove_retention_policy(rel regclass, if_exists boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM bidim._check_table(rel, 'bidim.remove_retention_policy');
    IF NOT bidim._remove_retention_policy(rel::oid) THEN
        IF coalesce(if_exists, false) THEN
            RAISE NOTICE 'table "%" has no retention policy, skipping', rel;
        ELSE
            RAISE EXCEPTION 'table "%" has no retention policy', rel
                USING ERRCODE = 'undefined_object';
        END IF;
    END IF;
END
$$;
COMMENT ON FUNCTION bidim.remove_retention_policy(regclass, boolean) IS
    'bidim: remove the retention policy of a bidim table';

-- Runs one job now and records the outcome (the maintenance worker calls it for every
-- due job; superusers may call it to run a job at once). Errors inside the job are
-- caught and recorded in bidim.jobs.last_error.
CREATE FUNCTION bidim.run_job(job_id int4) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j bidim.job;
    msg text;
    nap interval := coalesce(nullif(current_setting('bidim.maintenance_naptime', true), '')::interval,
                             interval '1 minute');
BEGIN
    SELECT * INTO j FROM bidim.job WHERE bidim.job.job_id = $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'bidim job % does not exist', $1 USING ERRCODE = 'undefined_object';
    END IF;
    BEGIN
        IF j.kind = 'retention' THEN
            PERFORM bidim.drop_before(j.rel, now() - j.drop_after);
        ELSE
            PERFORM bidim._maintain();
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
    END;
    UPDATE bidim.job AS u
    SET last_run = now(), runs = u.runs + 1,
        last_success = CASE WHEN msg IS NULL THEN now() ELSE u.last_success END,
        last_error = msg,
        failures = u.failures + (msg IS NOT NULL)::int,
        next_run = now() + coalesce(u.schedule_interval, nap)
    WHERE u.job_id = j.job_id;
    RETURN msg IS NULL;
END
$$;
REVOKE ALL ON FUNCTION bidim.run_job(int4) FROM PUBLIC;
COMMENT ON FUNCTION bidim.run_job(int4) IS
    'bidim: run a background job now (superuser); returns false and records last_error if it failed';

CREATE VIEW bidim.jobs AS
SELECT j.job_id, j.kind, j.rel, j.drop_after, j.schedule_interval,
       j.last_run, j.last_success, j.next_run, j.last_error, j.runs, j.failures
FROM bidim.job j;
COMMENT ON VIEW bidim.jobs IS 'bidim: background jobs of this database (retention policies, maintenance): last run, next run, last error';
GRANT SELECT ON bidim.jobs TO PUBLIC;

-- Drops a table's chunks without asking: only the extension's own event trigger
-- (SECURITY DEFINER) and superusers may call it. The other internal entry points
-- check that the caller owns the table.
REVOKE ALL ON FUNCTION bidim._forget_table(oid) FROM PUBLIC;

COMMENT ON FUNCTION bidim.seal(regclass) IS
    'bidim: seal every hot chunk of a bidim table now; returns the number sealed';
"#,
    name = "tam_api",
    requires = [
        "tam_catalog",
        store_config,
        seal,
        forget_table,
        drop_before,
        add_retention_policy,
        remove_retention_policy,
        maintain
    ]
);

/// Raises an error unless the current user owns table `rel`.
fn require_owner(rel: pgrx::pg_sys::Oid) {
    use pgrx::pg_sys;
    // SAFETY: an ACL check and a syscache name lookup by oid.
    let (owner, name) = unsafe {
        (
            pg_sys::pg_class_ownercheck(rel, pg_sys::GetUserId()),
            pg_sys::get_rel_name(rel),
        )
    };
    if name.is_null() {
        crate::error::raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("relation with oid {} does not exist", rel.to_u32()),
            None,
        );
    }
    if !owner {
        // SAFETY: get_rel_name returned a palloc'd NUL-terminated string.
        let name = unsafe { std::ffi::CStr::from_ptr(name) }.to_string_lossy();
        crate::error::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("must be owner of table {name}"),
            None,
        );
    }
}

#[pg_schema]
mod bidim {
    use pgrx::pg_sys;
    use pgrx::prelude::*;

    /// Stores a table's configuration (bidim.configure validated it) and makes every
    /// backend re-read it.
    #[pg_extern(name = "_store_config", volatile, parallel_unsafe)]
    fn store_config(rel: pg_sys::Oid, key: &str, time: &str, rows: i64, width: &str) {
        super::require_owner(rel);
        crate::tam::catalog::store_config(rel, key, time, rows, width);
    }

    /// Drops the chunks, sequence, directory and configuration rows of a dropped table.
    #[pg_extern(name = "_forget_table", volatile, parallel_unsafe)]
    fn forget_table(rel: pg_sys::Oid) {
        crate::tam::catalog::forget_table(rel);
    }

    /// Drops the time partitions wholly before `cutoff` (bidim.drop_before wraps it).
    #[pg_extern(name = "_drop_before", volatile, parallel_unsafe)]
    fn drop_before(rel: pg_sys::Oid, cutoff: pgrx::datum::TimestampWithTimeZone) -> i64 {
        super::require_owner(rel);
        let micros: i64 = cutoff.into_inner();
        crate::tam::catalog::drop_before(rel, micros)
    }

    /// Adds a retention job (bidim.add_retention_policy wraps it with the checks).
    #[pg_extern(name = "_add_retention_policy", volatile, parallel_unsafe)]
    fn add_retention_policy(
        rel: pg_sys::Oid,
        drop_after: &str,
        if_not_exists: bool,
    ) -> Option<i32> {
        super::require_owner(rel);
        crate::tam::catalog::add_retention_policy(rel, drop_after, if_not_exists)
    }

    /// Removes a retention job; false if there was none.
    #[pg_extern(name = "_remove_retention_policy", volatile, parallel_unsafe)]
    fn remove_retention_policy(rel: pg_sys::Oid) -> bool {
        super::require_owner(rel);
        crate::tam::catalog::remove_retention_policy(rel)
    }

    /// The database's maintenance job (bidim.run_job calls it).
    #[pg_extern(name = "_maintain", volatile, parallel_unsafe)]
    fn maintain() -> i64 {
        // SAFETY: reads the current user id.
        if !unsafe { pg_sys::superuser() } {
            crate::error::raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                "must be superuser to run bidim maintenance",
                None,
            );
        }
        crate::tam::catalog::maintain()
    }

    /// Seals every hot chunk of a table now (bidim.seal wraps it with the checks).
    #[pg_extern(name = "_seal", volatile, parallel_unsafe)]
    fn seal(rel: pg_sys::Oid) -> i64 {
        super::require_owner(rel);
        crate::tam::catalog::seal_all(rel)
    }
}
