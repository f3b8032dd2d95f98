-- Rollups (src/tam/rollup.rs): per (key, bucket), and per bucket over every key, the
-- count, sum, min, max, first, last and ddsketch of chosen columns of a bidim table,
-- materialized in the background and read through views that add the raw rows not
-- yet materialized, so an answer is always complete and exact.
-- Every name is schema-qualified; pgspot checks this file.

-- The materialized buckets live here, owned by their table's owner (the views are
-- the way in; the tables are listed by bidim.rollups).
CREATE SCHEMA bidim_rollup;
COMMENT ON SCHEMA bidim_rollup IS 'bidim: materialized buckets of rollups (read them through the rollup views)';
GRANT USAGE ON SCHEMA bidim_rollup TO PUBLIC;

CREATE SEQUENCE bidim.rollup_id_seq AS int4 MINVALUE 1;
CREATE TABLE bidim.rollup (
    -- rel first: writers find a table's rollups through the catalog C API by it
    rel         regclass    NOT NULL,
    rollup_id   int4        PRIMARY KEY DEFAULT pg_catalog.nextval('bidim.rollup_id_seq'::pg_catalog.regclass),
    -- the views and tables (NULL only while bidim.add_rollup creates them)
    view        regclass    UNIQUE,   -- per (key, bucket)
    total_view  regclass    UNIQUE,   -- per bucket, over every key
    data        regclass,
    total_data  regclass,
    bucket      interval    NOT NULL CHECK (bucket OPERATOR(pg_catalog.>) interval '0'),
    origin      timestamptz NOT NULL,
    -- the table's key and time columns, and the rolled-up columns
    key_column  name        NOT NULL,
    time_column name        NOT NULL,
    columns     name[]      NOT NULL,
    -- rows are materialized once they are this old (finished buckets, and the open
    -- bucket up to there, merged into its row)
    refresh_lag interval    NOT NULL,
    -- materialized buckets older than this are deleted (NULL: kept for ever)
    drop_after  interval,
    -- writes of rows before the threshold are logged (bidim.rollup_invalid); rows
    -- before the watermark are materialized (the views read them from data; the
    -- watermark's own bucket holds its part before the watermark)
    threshold   timestamptz NOT NULL DEFAULT '-infinity',
    watermark   timestamptz NOT NULL DEFAULT '-infinity',
    -- raw rows before this were dropped (drop_before): buckets before it are never
    -- materialized again, whatever is logged
    raw_dropped_before timestamptz NOT NULL DEFAULT '-infinity',
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_refresh timestamptz,
    buckets_materialized int8 NOT NULL DEFAULT 0,
    rows_rolled_up       int8 NOT NULL DEFAULT 0
);
CREATE INDEX rollup_rel_idx ON bidim.rollup (rel);
COMMENT ON TABLE bidim.rollup IS 'bidim: rollups of bidim tables (see the view bidim.rollups)';

-- Buckets changed after they were materialized (late rows, UPDATE, DELETE), logged by
-- the writers' own transactions; the views read them from raw rows until the next
-- refresh materializes them again. One row per (rollup, bucket) a transaction
-- changed; duplicates across transactions are harmless.
CREATE TABLE bidim.rollup_invalid (
    rollup_id int4        NOT NULL,
    bucket    timestamptz NOT NULL
);
CREATE INDEX rollup_invalid_idx ON bidim.rollup_invalid (rollup_id, bucket);
COMMENT ON TABLE bidim.rollup_invalid IS 'bidim: rollup buckets changed since they were materialized (internal)';
-- Analyzed while empty, so the planner counts its rows as none rather than the ten
-- pages it assumes of a table never analyzed: the rollup views re-read each logged
-- bucket from raw rows, and that guess made their plans look costly enough to be
-- JIT-compiled (300 ms of compiling for a 30-ms query). Autovacuum keeps it current.
ANALYZE bidim.rollup_invalid;

SELECT pg_catalog.pg_extension_config_dump('bidim.rollup', '');
SELECT pg_catalog.pg_extension_config_dump('bidim.rollup_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('bidim.rollup_invalid', '');

ALTER TABLE bidim.rollup ENABLE ROW LEVEL SECURITY;
CREATE POLICY rollup_readable ON bidim.rollup FOR SELECT
    USING (pg_catalog.has_table_privilege(rel, 'SELECT'));
ALTER TABLE bidim.rollup_invalid ENABLE ROW LEVEL SECURITY;
CREATE POLICY rollup_invalid_readable ON bidim.rollup_invalid FOR SELECT
    USING (EXISTS (SELECT 1 FROM bidim.rollup r WHERE r.rollup_id OPERATOR(pg_catalog.=) rollup_invalid.rollup_id));
GRANT SELECT ON bidim.rollup, bidim.rollup_invalid TO PUBLIC;

-- The statements of a rollup, from its catalog row and its table's current names:
--   'create'            CREATE TABLE / INDEX / VIEW statements (one per row), the
--                       views named view_name and total_name (quoted, qualified)
--   'views'             CREATE OR REPLACE VIEW of both views (with the watermark now)
--   'materialize'       INSERT of the (key, bucket) rows of raw times [$1, $2)
--   'materialize_merge' the same for raw times [$1, $2) within one bucket, merged into
--                       the bucket's materialized row (of an open bucket's first part)
--   'materialize_total' INSERT of the bucket rows of buckets [$1, $2) from the former
--   'delete'            DELETE of the (key, bucket) rows of buckets [$1, $2)
--   'delete_total'      the same for the bucket rows
-- Only bidim calls it (as the extension owner, to build; as the table owner, to run).
CREATE FUNCTION bidim._rollup_sql(id pg_catalog.int4, what pg_catalog.text,
                                  view_name pg_catalog.text DEFAULT NULL, total_name pg_catalog.text DEFAULT NULL)
RETURNS SETOF pg_catalog.text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r bidim.rollup;
    key_col pg_catalog.text;
    time_col pg_catalog.text;
    key_type pg_catalog.text;
    c pg_catalog.name;
    v pg_catalog.text;
    t pg_catalog.text;
    bucket_expr pg_catalog.text;
    aggs pg_catalog.text := '';
    merges pg_catalog.text := '';
    cols pg_catalog.text := '';
    defs pg_catalog.text := '';
    wm pg_catalog.text;
    wmb pg_catalog.text;
    data pg_catalog.text;
    total_data pg_catalog.text;
    stmt pg_catalog.text;
    verb pg_catalog.text;
BEGIN
    SELECT * INTO r FROM bidim.rollup WHERE bidim.rollup.rollup_id OPERATOR(pg_catalog.=) id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'bidim rollup % does not exist', id USING ERRCODE = 'undefined_object';
    END IF;
    key_col := pg_catalog.quote_ident(r.key_column);
    time_col := pg_catalog.quote_ident(r.time_column);
    SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) INTO key_type FROM pg_catalog.pg_attribute a
    WHERE a.attrelid OPERATOR(pg_catalog.=) r.rel AND a.attname OPERATOR(pg_catalog.=) r.key_column
      AND NOT a.attisdropped;
    IF key_type IS NULL THEN
        RAISE EXCEPTION 'bidim rollup %: table % has no column "%" any more', id, r.rel, r.key_column
            USING ERRCODE = 'undefined_column';
    END IF;
    bucket_expr := pg_catalog.format('pg_catalog.date_bin(%L::pg_catalog.interval, p.%s, %L::pg_catalog.timestamptz)',
                                     r.bucket, time_col, r.origin);
    FOREACH c IN ARRAY r.columns LOOP
        v := pg_catalog.format('p.%I::pg_catalog.float8', c);
        t := 'p.' OPERATOR(pg_catalog.||) time_col;
        aggs := aggs OPERATOR(pg_catalog.||) pg_catalog.format(
            ', pg_catalog.count(%1$s), pg_catalog.sum(%1$s), pg_catalog.min(%1$s), pg_catalog.max(%1$s),'
            ' @extschema@.first(%1$s, %2$s), @extschema@.first_time(%1$s, %2$s),'
            ' @extschema@.last(%1$s, %2$s), @extschema@.last_time(%1$s, %2$s), @extschema@.ddsketch_agg(%1$s)', v, t);
        merges := merges OPERATOR(pg_catalog.||) pg_catalog.format(
            ', pg_catalog.sum(d.%1$I)::pg_catalog.int8, pg_catalog.sum(d.%2$I), pg_catalog.min(d.%3$I), pg_catalog.max(d.%4$I),'
            ' @extschema@.first(d.%5$I, d.%6$I), @extschema@.first_time(d.%5$I, d.%6$I),'
            ' @extschema@.last(d.%7$I, d.%8$I), @extschema@.last_time(d.%7$I, d.%8$I), @extschema@.rollup(d.%9$I)',
            c OPERATOR(pg_catalog.||) '_count', c OPERATOR(pg_catalog.||) '_sum', c OPERATOR(pg_catalog.||) '_min',
            c OPERATOR(pg_catalog.||) '_max', c OPERATOR(pg_catalog.||) '_first', c OPERATOR(pg_catalog.||) '_first_time',
            c OPERATOR(pg_catalog.||) '_last', c OPERATOR(pg_catalog.||) '_last_time', c OPERATOR(pg_catalog.||) '_sketch');
        cols := cols OPERATOR(pg_catalog.||) pg_catalog.format(', d.%I, d.%I, d.%I, d.%I, d.%I, d.%I, d.%I, d.%I, d.%I',
            c OPERATOR(pg_catalog.||) '_count', c OPERATOR(pg_catalog.||) '_sum', c OPERATOR(pg_catalog.||) '_min',
            c OPERATOR(pg_catalog.||) '_max', c OPERATOR(pg_catalog.||) '_first', c OPERATOR(pg_catalog.||) '_first_time',
            c OPERATOR(pg_catalog.||) '_last', c OPERATOR(pg_catalog.||) '_last_time', c OPERATOR(pg_catalog.||) '_sketch');
        defs := defs OPERATOR(pg_catalog.||) pg_catalog.format(
            ', %I pg_catalog.int8 NOT NULL, %I pg_catalog.float8, %I pg_catalog.float8, %I pg_catalog.float8,'
            ' %I pg_catalog.float8, %I pg_catalog.timestamptz, %I pg_catalog.float8, %I pg_catalog.timestamptz, %I @extschema@.ddsketch',
            c OPERATOR(pg_catalog.||) '_count', c OPERATOR(pg_catalog.||) '_sum', c OPERATOR(pg_catalog.||) '_min',
            c OPERATOR(pg_catalog.||) '_max', c OPERATOR(pg_catalog.||) '_first', c OPERATOR(pg_catalog.||) '_first_time',
            c OPERATOR(pg_catalog.||) '_last', c OPERATOR(pg_catalog.||) '_last_time', c OPERATOR(pg_catalog.||) '_sketch');
    END LOOP;
    data := coalesce(r.data::pg_catalog.text, pg_catalog.format('bidim_rollup.%I', 'r' OPERATOR(pg_catalog.||) r.rollup_id));
    total_data := coalesce(r.total_data::pg_catalog.text,
                           pg_catalog.format('bidim_rollup.%I', 'r' OPERATOR(pg_catalog.||) r.rollup_id OPERATOR(pg_catalog.||) '_total'));
    -- The watermark as a constant: the planner sizes the raw part by it (and prunes
    -- chunks while planning); a refresh replaces the views with the new value.
    wm := pg_catalog.format('%L::pg_catalog.timestamptz', r.watermark);
    -- The start of the watermark's bucket (the watermark itself when infinite).
    wmb := pg_catalog.format('%L::pg_catalog.timestamptz',
        CASE WHEN pg_catalog.isfinite(r.watermark) THEN pg_catalog.date_bin(r.bucket, r.watermark, r.origin)
             ELSE r.watermark END);
    IF what OPERATOR(pg_catalog.=) 'create' THEN
        stmt := pg_catalog.format('CREATE TABLE %s (%s %s NOT NULL, bucket pg_catalog.timestamptz NOT NULL, "rows" pg_catalog.int8 NOT NULL%s)',
                                      data, key_col, key_type, defs);
        RETURN NEXT stmt;
        stmt := pg_catalog.format('CREATE UNIQUE INDEX ON %s (%s, bucket)', data, key_col);
        RETURN NEXT stmt;
        stmt := pg_catalog.format('CREATE INDEX ON %s (bucket)', data);
        RETURN NEXT stmt;
        stmt := pg_catalog.format('CREATE TABLE %s (bucket pg_catalog.timestamptz PRIMARY KEY, "rows" pg_catalog.int8 NOT NULL%s)',
                                      total_data, defs);
        RETURN NEXT stmt;
    END IF;
    IF what OPERATOR(pg_catalog.=) ANY (ARRAY['create', 'views']::pg_catalog.text[]) THEN
        verb := CASE WHEN what OPERATOR(pg_catalog.=) 'create' THEN 'CREATE VIEW' ELSE 'CREATE OR REPLACE VIEW' END;
        view_name := coalesce(view_name, r.view::pg_catalog.text);
        total_name := coalesce(total_name, r.total_view::pg_catalog.text);
        -- The views: the materialized buckets before the watermark's bucket that no
        -- write has changed since, as they are; then one row per (key,) bucket
        -- combining the rest: the materialized part of the watermark's bucket (a
        -- refresh materializes the open bucket up to the watermark), the raw rows from
        -- the watermark on, and the raw rows of changed buckets up to the watermark.
        stmt := pg_catalog.format(
            '%12$s %1$s AS'
            ' SELECT d.%2$s, d.bucket, d."rows"%3$s FROM %4$s d'
            ' WHERE d.bucket OPERATOR(pg_catalog.<) %13$s'
            ' AND NOT EXISTS (SELECT 1 FROM bidim.rollup_invalid i WHERE i.rollup_id OPERATOR(pg_catalog.=) %6$s'
            ' AND i.bucket OPERATOR(pg_catalog.=) d.bucket)'
            ' UNION ALL'
            ' SELECT d.%2$s, d.bucket, pg_catalog.sum(d."rows")::pg_catalog.int8%14$s FROM ('
            ' SELECT d.%2$s, d.bucket, d."rows"%3$s FROM %4$s d'
            ' WHERE d.bucket OPERATOR(pg_catalog.>=) %13$s AND d.bucket OPERATOR(pg_catalog.<) %5$s'
            ' AND NOT EXISTS (SELECT 1 FROM bidim.rollup_invalid i WHERE i.rollup_id OPERATOR(pg_catalog.=) %6$s'
            ' AND i.bucket OPERATOR(pg_catalog.=) d.bucket)'
            ' UNION ALL'
            ' SELECT p.%2$s, %7$s, pg_catalog.count(*)%8$s FROM %9$s p'
            ' WHERE p.%10$s OPERATOR(pg_catalog.>=) %5$s GROUP BY 1, 2'
            ' UNION ALL'
            ' SELECT x.* FROM (SELECT DISTINCT i.bucket FROM bidim.rollup_invalid i'
            ' WHERE i.rollup_id OPERATOR(pg_catalog.=) %6$s AND i.bucket OPERATOR(pg_catalog.<) %5$s) i,'
            ' LATERAL (SELECT p.%2$s, %7$s AS bucket, pg_catalog.count(*) AS "rows"%8$s FROM %9$s p'
            ' WHERE p.%10$s OPERATOR(pg_catalog.>=) i.bucket'
            ' AND p.%10$s OPERATOR(pg_catalog.<) LEAST(i.bucket OPERATOR(pg_catalog.+) %11$L::pg_catalog.interval, %5$s)'
            ' GROUP BY 1, 2) x) d GROUP BY 1, 2',
            view_name, key_col, cols, data, wm, r.rollup_id, bucket_expr, aggs, r.rel, time_col, r.bucket, verb,
            wmb, merges);
        RETURN NEXT stmt;
        stmt := pg_catalog.format(
            '%11$s %1$s AS'
            ' SELECT d.bucket, d."rows"%2$s FROM %3$s d'
            ' WHERE d.bucket OPERATOR(pg_catalog.<) %12$s'
            ' AND NOT EXISTS (SELECT 1 FROM bidim.rollup_invalid i WHERE i.rollup_id OPERATOR(pg_catalog.=) %5$s'
            ' AND i.bucket OPERATOR(pg_catalog.=) d.bucket)'
            ' UNION ALL'
            ' SELECT d.bucket, pg_catalog.sum(d."rows")::pg_catalog.int8%13$s FROM ('
            ' SELECT d.bucket, d."rows"%2$s FROM %3$s d'
            ' WHERE d.bucket OPERATOR(pg_catalog.>=) %12$s AND d.bucket OPERATOR(pg_catalog.<) %4$s'
            ' AND NOT EXISTS (SELECT 1 FROM bidim.rollup_invalid i WHERE i.rollup_id OPERATOR(pg_catalog.=) %5$s'
            ' AND i.bucket OPERATOR(pg_catalog.=) d.bucket)'
            ' UNION ALL'
            ' SELECT %6$s, pg_catalog.count(*)%7$s FROM %8$s p'
            ' WHERE p.%9$s OPERATOR(pg_catalog.>=) %4$s GROUP BY 1'
            ' UNION ALL'
            ' SELECT x.* FROM (SELECT DISTINCT i.bucket FROM bidim.rollup_invalid i'
            ' WHERE i.rollup_id OPERATOR(pg_catalog.=) %5$s AND i.bucket OPERATOR(pg_catalog.<) %4$s) i,'
            ' LATERAL (SELECT %6$s AS bucket, pg_catalog.count(*) AS "rows"%7$s FROM %8$s p'
            ' WHERE p.%9$s OPERATOR(pg_catalog.>=) i.bucket'
            ' AND p.%9$s OPERATOR(pg_catalog.<) LEAST(i.bucket OPERATOR(pg_catalog.+) %10$L::pg_catalog.interval, %4$s)'
            ' GROUP BY 1) x) d GROUP BY 1',
            total_name, cols, total_data, wm, r.rollup_id, bucket_expr, aggs, r.rel, time_col, r.bucket, verb,
            wmb, merges);
        RETURN NEXT stmt;
    ELSIF what OPERATOR(pg_catalog.=) 'materialize' THEN
        stmt := pg_catalog.format(
            'WITH ins AS (INSERT INTO %s SELECT p.%s, %s, pg_catalog.count(*)%s FROM %s p'
            ' WHERE p.%s OPERATOR(pg_catalog.>=) $1 AND p.%s OPERATOR(pg_catalog.<) $2 GROUP BY 1, 2 RETURNING "rows")'
            ' SELECT pg_catalog.count(*), coalesce(pg_catalog.sum(ins."rows"), 0)::pg_catalog.int8 FROM ins',
            r.data, key_col, bucket_expr, aggs, r.rel, time_col, time_col);
        RETURN NEXT stmt;
    ELSIF what OPERATOR(pg_catalog.=) 'materialize_merge' THEN
        -- Raw times [$1, $2) inside one bucket, merged into the bucket's materialized
        -- row (the part a previous refresh materialized of an open bucket).
        stmt := pg_catalog.format(
            'WITH old AS (DELETE FROM %1$s d WHERE d.bucket OPERATOR(pg_catalog.=) pg_catalog.date_bin(%2$L::pg_catalog.interval, $1, %3$L::pg_catalog.timestamptz)'
            ' RETURNING d.*),'
            ' raw AS (SELECT p.%4$s, %5$s, pg_catalog.count(*) AS "rows"%6$s FROM %7$s p'
            ' WHERE p.%8$s OPERATOR(pg_catalog.>=) $1 AND p.%8$s OPERATOR(pg_catalog.<) $2 GROUP BY 1, 2),'
            ' ins AS (INSERT INTO %1$s SELECT d.%4$s, d.bucket, pg_catalog.sum(d."rows")::pg_catalog.int8%9$s'
            ' FROM (SELECT * FROM old UNION ALL SELECT * FROM raw) d GROUP BY 1, 2 RETURNING 1)'
            ' SELECT (SELECT pg_catalog.count(*) FROM ins), (SELECT coalesce(pg_catalog.sum(raw."rows"), 0)::pg_catalog.int8 FROM raw)',
            r.data, r.bucket, r.origin, key_col, bucket_expr, aggs, r.rel, time_col, merges);
        RETURN NEXT stmt;
    ELSIF what OPERATOR(pg_catalog.=) 'materialize_total' THEN
        stmt := pg_catalog.format(
            'INSERT INTO %s SELECT d.bucket, pg_catalog.sum(d."rows")::pg_catalog.int8%s FROM %s d'
            ' WHERE d.bucket OPERATOR(pg_catalog.>=) $1 AND d.bucket OPERATOR(pg_catalog.<) $2 GROUP BY 1',
            r.total_data, merges, r.data);
        RETURN NEXT stmt;
    ELSIF what OPERATOR(pg_catalog.=) 'delete' THEN
        stmt := pg_catalog.format(
            'DELETE FROM %s d WHERE d.bucket OPERATOR(pg_catalog.>=) $1 AND d.bucket OPERATOR(pg_catalog.<) $2', r.data);
        RETURN NEXT stmt;
    ELSIF what OPERATOR(pg_catalog.=) 'delete_total' THEN
        stmt := pg_catalog.format(
            'DELETE FROM %s d WHERE d.bucket OPERATOR(pg_catalog.>=) $1 AND d.bucket OPERATOR(pg_catalog.<) $2', r.total_data);
        RETURN NEXT stmt;
    ELSE
        RAISE EXCEPTION 'bidim._rollup_sql: unknown statement %', what;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION bidim._rollup_sql(pg_catalog.int4, pg_catalog.text, pg_catalog.text, pg_catalog.text) FROM PUBLIC;

-- The SELECT grants of a rollup's table, repeated on its views (they read the
-- table as its owner; who may read the table may read its rollups).
CREATE FUNCTION bidim._rollup_grants(id pg_catalog.int4) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r bidim.rollup;
    g record;
BEGIN
    SELECT * INTO r FROM bidim.rollup WHERE bidim.rollup.rollup_id OPERATOR(pg_catalog.=) id;
    FOR g IN SELECT DISTINCT a.grantee FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
             WHERE c.oid OPERATOR(pg_catalog.=) r.rel::pg_catalog.oid
               AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
               AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
    LOOP
        EXECUTE pg_catalog.format('GRANT SELECT ON %s, %s TO %s', r.view, r.total_view,
            CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g.grantee)) END);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION bidim._rollup_grants(pg_catalog.int4) FROM PUBLIC;

CREATE FUNCTION bidim.add_rollup(
    rel          pg_catalog.regclass,
    bucket       pg_catalog.interval,
    columns      pg_catalog.name[]   DEFAULT NULL,
    name         pg_catalog.text     DEFAULT NULL,
    refresh_lag  pg_catalog.interval DEFAULT interval '1 minute',
    drop_after   pg_catalog.interval DEFAULT NULL,
    schedule_interval pg_catalog.interval DEFAULT NULL)
RETURNS pg_catalog.regclass
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'bidim_add_rollup';
COMMENT ON FUNCTION bidim.add_rollup(pg_catalog.regclass, pg_catalog.interval, pg_catalog.name[], pg_catalog.text,
                                     pg_catalog.interval, pg_catalog.interval, pg_catalog.interval) IS
    'bidim: keep count, sum, min, max, first, last and a ddsketch of columns per (key, bucket) and per bucket, materialized in the background; returns the (key, bucket) view (its twin <name>_total has one row per bucket)';

CREATE FUNCTION bidim.remove_rollup(view pg_catalog.regclass, if_exists pg_catalog.bool DEFAULT false)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'bidim_remove_rollup';
COMMENT ON FUNCTION bidim.remove_rollup(pg_catalog.regclass, pg_catalog.bool) IS
    'bidim: drop a rollup: its views, its materialized buckets and its job';

-- The two steps of a refresh, each in a transaction of its own: 'advance' moves the
-- threshold writers log changes below (waiting for the table's writers in flight),
-- 'materialize' materializes changed buckets and the buckets up to the threshold. The
-- worker runs them as a superuser; anyone else must own the table (refresh_rollup).
CREATE FUNCTION bidim.refresh_rollup_step(id pg_catalog.int4, step pg_catalog.text) RETURNS pg_catalog.int8
LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'bidim_rollup_step';
COMMENT ON FUNCTION bidim.refresh_rollup_step(pg_catalog.int4, pg_catalog.text) IS
    'bidim: one step of a rollup refresh (''advance'', then ''materialize'' in a later transaction); the table''s owner; bidim.refresh_rollup runs both';

-- Materializes a rollup now, up to its refresh lag (the table's owner; not inside a
-- transaction block: the two steps commit separately). No SET clause (a procedure
-- with one cannot COMMIT): every name in it is schema-qualified.
CREATE PROCEDURE bidim.refresh_rollup(view pg_catalog.regclass)
LANGUAGE plpgsql AS $$
DECLARE
    id pg_catalog.int4;
BEGIN
    SELECT r.rollup_id INTO id FROM bidim.rollup r WHERE r.view OPERATOR(pg_catalog.=) refresh_rollup.view
       OR r.total_view OPERATOR(pg_catalog.=) refresh_rollup.view;
    IF id IS NULL THEN
        RAISE EXCEPTION '"%" is not a rollup view', view USING ERRCODE = 'undefined_object',
            HINT = 'bidim.rollups lists the rollups you may read.';
    END IF;
    PERFORM bidim.refresh_rollup_step(id, 'advance');
    COMMIT;
    PERFORM bidim.refresh_rollup_step(id, 'materialize');
END
$$;
COMMENT ON PROCEDURE bidim.refresh_rollup(pg_catalog.regclass) IS
    'bidim: materialize a rollup''s rows older than its refresh lag and the buckets changed since (CALL, outside a transaction block)';

CREATE VIEW bidim.rollups WITH (security_barrier) AS
SELECT r.rollup_id, r.rel, r.view, r.total_view, r.bucket, r.columns, r.refresh_lag, r.drop_after,
       r.watermark AS materialized_until,
       (SELECT pg_catalog.count(DISTINCT i.bucket) FROM bidim.rollup_invalid i
        WHERE i.rollup_id OPERATOR(pg_catalog.=) r.rollup_id) AS pending_buckets,
       r.buckets_materialized, r.rows_rolled_up, r.last_refresh,
       (SELECT j.job_id FROM bidim.job j WHERE j.kind OPERATOR(pg_catalog.=) 'rollup'
          AND j.rollup_id OPERATOR(pg_catalog.=) r.rollup_id) AS job_id,
       r.data, r.total_data
FROM bidim.rollup r
WHERE pg_catalog.has_table_privilege(r.rel, 'SELECT');
COMMENT ON VIEW bidim.rollups IS 'bidim: rollups of bidim tables: table, views, bucket width, columns, how far they are materialized, pending changed buckets, job';
GRANT SELECT ON bidim.rollups TO PUBLIC;

-- A dropped rollup view (or its table, CASCADE) takes its rollup along.
CREATE FUNCTION bidim._rollup_on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    o record;
BEGIN
    FOR o IN SELECT r.rollup_id FROM bidim.rollup r, pg_catalog.pg_event_trigger_dropped_objects() d
             WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
               AND d.objsubid OPERATOR(pg_catalog.=) 0
               AND (d.objid OPERATOR(pg_catalog.=) r.view::pg_catalog.oid
                    OR d.objid OPERATOR(pg_catalog.=) r.total_view::pg_catalog.oid
                    OR d.objid OPERATOR(pg_catalog.=) r.rel::pg_catalog.oid)
    LOOP
        PERFORM bidim._rollup_forget(o.rollup_id);
    END LOOP;
END
$$;
CREATE FUNCTION bidim._rollup_forget(id pg_catalog.int4) RETURNS void
LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'bidim_rollup_forget';
REVOKE ALL ON FUNCTION bidim._rollup_on_sql_drop() FROM PUBLIC;
REVOKE ALL ON FUNCTION bidim._rollup_forget(pg_catalog.int4) FROM PUBLIC;
CREATE EVENT TRIGGER bidim_rollup_sql_drop ON sql_drop EXECUTE FUNCTION bidim._rollup_on_sql_drop();
