//! Attacks on bidim by roles that should not get anywhere: `mallory` (no privileges,
//! her own schema), `inserter` (INSERT only on alice's table), and `alice` as the
//! owner of her own bidim table. After every attack: nobody but `postgres` is a
//! superuser, the attacker's trojan function never ran as anyone but the attacker,
//! and the server did not restart.

use bidim_tests::{difference, one_i64, Client, Cluster, Raw};

/// Creates the roles, alice's table with rows, and mallory's trojan kit.
fn setup(cluster: &Cluster) -> Client {
    let mut su = cluster.connect().unwrap();
    su.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE ROLE alice LOGIN; CREATE ROLE mallory LOGIN; CREATE ROLE inserter LOGIN;
         CREATE SCHEMA alice AUTHORIZATION alice;
         CREATE SCHEMA mallory AUTHORIZATION mallory;
         GRANT USAGE ON SCHEMA alice TO inserter, mallory;
         -- Every run of a trojan function leaves a row: who ran it, as whom.
         CREATE TABLE public.trojan_log (ran_as name, session name);
         GRANT INSERT ON public.trojan_log TO PUBLIC;",
    )
    .unwrap();
    let mut a = cluster.connect_as("postgres", "alice").unwrap();
    a.batch_execute(
        "CREATE TABLE alice.points (series_id bigint, ts timestamptz, value float8) USING bidim;
         SELECT bidim.configure('alice.points', hot_chunk_rows => 100, partition_interval => '1 hour');
         INSERT INTO alice.points SELECT g % 10, timestamptz '2026-01-01' + g * interval '1 minute', g
         FROM generate_series(1, 600) g;
         GRANT INSERT ON alice.points TO inserter;
         GRANT INSERT ON alice.points TO mallory;",
    )
    .unwrap();
    let mut m = cluster.connect_as("postgres", "mallory").unwrap();
    m.batch_execute(
        "CREATE FUNCTION mallory.evil() RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO public.trojan_log VALUES (current_user, session_user);
             IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
                 EXECUTE 'ALTER ROLE mallory SUPERUSER';
             END IF;
             RETURN true;
         END $$;
         GRANT EXECUTE ON FUNCTION mallory.evil() TO PUBLIC;
         GRANT USAGE ON SCHEMA mallory TO PUBLIC;",
    )
    .unwrap();
    su
}

/// The server's message of a failed statement.
fn errmsg(e: postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

fn start_time(c: &mut Client) -> String {
    c.query_one("SELECT pg_postmaster_start_time()::text", &[])
        .unwrap()
        .get(0)
}

/// Nobody escalated: only postgres is a superuser, every trojan run was as its
/// caller, the server never restarted.
fn assert_contained(cluster: &Cluster, started: &str, what: &str) {
    let mut su = cluster.connect().unwrap();
    assert_eq!(start_time(&mut su), started, "{what}: the server restarted");
    let supers: Vec<String> = su
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolsuper ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(supers, vec!["postgres".to_string()], "{what}: {supers:?}");
    let foreign: Vec<(String, String)> = su
        .query(
            "SELECT ran_as::text, session::text FROM trojan_log WHERE ran_as <> 'mallory'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        foreign.is_empty(),
        "{what}: a trojan ran as another role: {foreign:?}"
    );
}

#[test]
fn temp_relations_shadowing_catalogs_do_not_run_as_superuser() {
    let cluster = Cluster::new().unwrap();
    let mut su = setup(&cluster);
    let started = start_time(&mut su);
    // As a role with INSERT only: temporary views named like the catalogs bidim's
    // chunk creation reads, each calling the trojan; then rows that need new chunks.
    let mut m = cluster.connect_as("postgres", "mallory").unwrap();
    for cat in [
        "pg_attribute",
        "pg_class",
        "pg_type",
        "pg_namespace",
        "pg_collation",
        "pg_index",
        "pg_am",
        "pg_roles",
    ] {
        let cols = if cat == "pg_attribute" {
            "attrelid, attname, atttypid, attnum, attlen, attalign, attbyval, atttypmod, \
             attcollation, attisdropped, attnotnull"
        } else {
            "*"
        };
        m.batch_execute(&format!(
            "CREATE TEMP VIEW {cat} AS SELECT {cols} FROM pg_catalog.{cat} WHERE mallory.evil()"
        ))
        .unwrap();
    }
    m.batch_execute("CREATE TEMP TABLE chunk (rel oid); CREATE TEMP TABLE table_config (rel oid);")
        .unwrap();
    for sp in [
        "pg_temp, pg_catalog, mallory",
        "mallory, pg_temp, pg_catalog",
    ] {
        m.batch_execute(&format!("SET search_path = {sp}")).unwrap();
        m.batch_execute(
            "INSERT INTO alice.points SELECT g, timestamptz '2027-03-01' + g * interval '1 hour', g
             FROM generate_series(1, 30) g",
        )
        .unwrap();
        assert_contained(&cluster, &started, &format!("temp views, path {sp}"));
    }
    // The rows went where they belong.
    assert_eq!(
        one_i64(
            &mut su,
            "SELECT count(*) FROM alice.points WHERE ts >= '2027-03-01'"
        ),
        60
    );
}

#[test]
fn shadowing_functions_and_operators_do_not_run_as_superuser_or_as_the_victim() {
    let cluster = Cluster::new().unwrap();
    let mut su = setup(&cluster);
    let started = start_time(&mut su);
    let mut m = cluster.connect_as("postgres", "mallory").unwrap();
    // Functions and operators bidim's SQL used to reach by unqualified name, in a
    // schema placed before pg_catalog; all call the trojan.
    m.batch_execute(
        "CREATE FUNCTION mallory.oideq(oid, oid) RETURNS boolean LANGUAGE sql
             AS 'SELECT mallory.evil() AND $1 OPERATOR(pg_catalog.=) $2';
         CREATE OPERATOR mallory.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = mallory.oideq);
         CREATE FUNCTION mallory.rceq(regclass, oid) RETURNS boolean LANGUAGE sql
             AS 'SELECT mallory.evil() AND $1::oid OPERATOR(pg_catalog.=) $2';
         CREATE OPERATOR mallory.= (LEFTARG = regclass, RIGHTARG = oid, FUNCTION = mallory.rceq);
         CREATE FUNCTION mallory.texteq(text, text) RETURNS boolean LANGUAGE sql
             AS 'SELECT mallory.evil() AND $1 OPERATOR(pg_catalog.=) $2';
         CREATE OPERATOR mallory.= (LEFTARG = text, RIGHTARG = text, FUNCTION = mallory.texteq);
         CREATE FUNCTION mallory.pg_advisory_xact_lock(int, int) RETURNS void LANGUAGE sql
             AS 'SELECT mallory.evil(); SELECT pg_catalog.pg_advisory_xact_lock($1, $2)';
         CREATE FUNCTION mallory.pg_try_advisory_xact_lock(int, int) RETURNS boolean LANGUAGE sql
             AS 'SELECT mallory.evil() AND pg_catalog.pg_try_advisory_xact_lock($1, $2)';
         CREATE FUNCTION mallory.nextval(regclass) RETURNS bigint LANGUAGE sql
             AS 'SELECT CASE WHEN mallory.evil() THEN pg_catalog.nextval($1) END';
         CREATE FUNCTION mallory.now() RETURNS timestamptz LANGUAGE sql
             AS 'SELECT CASE WHEN mallory.evil() THEN pg_catalog.now() END';
         CREATE FUNCTION mallory.format_type(oid, int) RETURNS text LANGUAGE sql
             AS 'SELECT CASE WHEN mallory.evil() THEN pg_catalog.format_type($1, $2) END';
         CREATE FUNCTION mallory.quote_ident(text) RETURNS text LANGUAGE sql
             AS 'SELECT CASE WHEN mallory.evil() THEN pg_catalog.quote_ident($1) END';
         CREATE FUNCTION mallory.format(text, VARIADIC text[]) RETURNS text LANGUAGE sql
             AS 'SELECT CASE WHEN mallory.evil() THEN pg_catalog.format($1, VARIADIC $2) END';
         CREATE FUNCTION mallory.has_table_privilege(oid, text) RETURNS boolean LANGUAGE sql
             AS 'SELECT mallory.evil()';
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA mallory TO PUBLIC;",
    )
    .unwrap();
    // The attacker inserts (new partitions: chunk creation, seals, splits).
    m.batch_execute(
        "SET search_path = mallory, pg_catalog, public;
         INSERT INTO alice.points SELECT g % 50, timestamptz '2027-01-01' + (g % 40) * interval '1 hour', g
         FROM generate_series(1, 3000) g;",
    )
    .unwrap();
    assert_contained(&cluster, &started, "mallory's inserts");
    // The scale-out surface: storage parameters of a table she does not own, the
    // shard runner and the size twins get her nothing.
    for (sql, expect) in [
        (
            "ALTER TABLE alice.points SET (bidim.hot_chunk_rows = 1)",
            "must be owner",
        ),
        (
            "SELECT bidim.on_shards('alice.points', 'ALTER ROLE mallory SUPERUSER')",
            "run_command_on_placements",
        ),
    ] {
        let e = m.batch_execute(sql).unwrap_err();
        assert!(errmsg(e).contains(expect), "{sql}");
    }
    m.batch_execute(
        "SET search_path = mallory, pg_catalog, public;
         SELECT pg_total_relation_size('alice.points'), pg_table_size('alice.points'),
                pg_relation_size('alice.points'), bidim.is_citus_table('alice.points');
         SELECT count(*) FROM bidim.chunks;",
    )
    .unwrap();
    assert_contained(&cluster, &started, "mallory and the scale-out surface");
    m.batch_execute("TRUNCATE trojan_log").ok();
    // The victim, with the attacker's schema on her path, inserts, seals, configures,
    // drops old partitions, reads the views: nothing of mallory's runs as alice.
    let mut a = cluster.connect_as("postgres", "alice").unwrap();
    a.batch_execute(
        "SET search_path = mallory, pg_catalog, public;
         INSERT INTO alice.points SELECT g % 50, timestamptz '2027-02-01' + (g % 40) * interval '1 hour', g
         FROM generate_series(1, 3000) g;
         SELECT bidim.seal('alice.points');
         SELECT bidim.configure('alice.points', hot_chunk_rows => 200);
         SELECT bidim.drop_before('alice.points', '2026-06-01');
         SELECT bidim.add_retention_policy('alice.points', interval '3650 days');
         SELECT bidim.remove_retention_policy('alice.points');
         SELECT count(*) FROM bidim.chunks; SELECT count(*) FROM bidim.key_ranges;
         SELECT * FROM bidim.table_stats('alice.points');
         ALTER TABLE alice.points SET (bidim.hot_chunk_rows = 300, bidim.convert_after = '30 days');
         ALTER TABLE alice.points RESET (bidim.convert_after);
         SELECT pg_total_relation_size('alice.points'), pg_table_size('alice.points'),
                pg_relation_size('alice.points', 'main'), bidim.table_size('alice.points');
         CREATE TABLE alice.p2 (k bigint, ts timestamptz) USING bidim
             WITH (bidim.hot_chunk_rows = 500, bidim.partition_interval = '2 hours');
         DROP TABLE alice.p2;
         UPDATE alice.points SET value = value + 1 WHERE series_id = 3;
         DELETE FROM alice.points WHERE series_id = 4;
         TRUNCATE alice.points;",
    )
    .unwrap();
    let victims = one_i64(
        &mut su,
        "SELECT count(*) FROM trojan_log WHERE ran_as <> 'mallory' OR session <> 'mallory'",
    );
    assert_eq!(victims, 0, "a trojan ran inside alice's statements");
    // The superuser's maintenance round with the same path.
    su.batch_execute(
        "SET search_path = mallory, pg_catalog, public;
         INSERT INTO alice.points VALUES (1, '2020-01-01', 1);
         SELECT bidim._maintain();
         SELECT bidim.run_job(job_id) FROM bidim.job;
         SELECT pg_total_relation_size('alice.points'), pg_table_size(c.oid) FROM pg_class c
         WHERE c.relnamespace OPERATOR(pg_catalog.=) 'alice'::regnamespace;
         CREATE TABLE alice.p3 (k bigint, ts timestamptz) USING bidim WITH (bidim.hot_chunk_rows = 500);
         DROP TABLE alice.p3;",
    )
    .unwrap();
    assert_contained(&cluster, &started, "maintenance");
    assert_eq!(one_i64(&mut su, "SELECT count(*) FROM trojan_log"), 0);
}

#[test]
fn internal_functions_are_not_callable() {
    let cluster = Cluster::new().unwrap();
    let mut su = setup(&cluster);
    let started = start_time(&mut su);
    let mut m = cluster.connect_as("postgres", "mallory").unwrap();
    let callable: Vec<String> = m
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p
             WHERE p.pronamespace = 'bidim'::regnamespace AND p.proname LIKE '\\_%'
               AND has_function_privilege(p.oid, 'EXECUTE')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(callable.is_empty(), "callable by PUBLIC: {callable:?}");
    let oid = one_i64(&mut su, "SELECT 'alice.points'::regclass::oid::int8");
    for call in [
        format!("SELECT bidim._forget_table({oid})"),
        format!("SELECT bidim._after_alter_table({oid})"),
        "SELECT bidim._maintain()".to_string(),
        "SELECT bidim.run_job(1)".to_string(),
    ] {
        let e = m.batch_execute(&call).map_err(errmsg).expect_err(&call);
        assert!(e.contains("permission denied"), "{call}: {e}");
    }
    // The public functions check the caller themselves.
    for call in [
        "SELECT bidim.seal('alice.points')",
        "SELECT bidim.configure('alice.points', hot_chunk_rows => 1)",
        "SELECT bidim.configure('alice.points', partition_interval => '0 s')",
        "SELECT bidim.drop_before('alice.points', 'infinity')",
        "SELECT bidim.add_retention_policy('alice.points', interval '1 s')",
        "SELECT bidim.remove_retention_policy('alice.points')",
        "SELECT bidim.enable_tag_dictionary('alice.points', 'value')",
        "SELECT bidim.disable_tag_dictionary('alice.points')",
    ] {
        let e = m.batch_execute(call).map_err(errmsg).expect_err(call);
        assert!(e.contains("must be owner"), "{call}: {e}");
    }
    // Bad settings by the owner get clear errors, never a stored zero or negative width.
    let mut a = cluster.connect_as("postgres", "alice").unwrap();
    for (call, msg) in [
        ("partition_interval => '0 s'", "at least 1 second"),
        ("partition_interval => '-1 day'", "at least 1 second"),
        ("hot_chunk_rows => -5", "at least 1"),
        ("partition_interval => '1 mon'", "months"),
    ] {
        let sql = format!("SELECT bidim.configure('alice.points', {call})");
        let e = a.batch_execute(&sql).map_err(errmsg).expect_err(&sql);
        assert!(e.contains(msg), "{sql}: {e}");
    }
    assert_contained(&cluster, &started, "internal calls");
}

#[test]
fn directory_views_show_only_readable_tables() {
    let cluster = Cluster::new().unwrap();
    let mut su = setup(&cluster);
    let started = start_time(&mut su);
    let mut m = cluster.connect_as("postgres", "mallory").unwrap();
    m.batch_execute(
        "CREATE FUNCTION mallory.leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS $$
         BEGIN INSERT INTO public.trojan_log VALUES ($1, $1); RETURN true; END $$;",
    )
    .unwrap();
    for q in [
        "SELECT count(*) FROM bidim.chunks",
        "SELECT count(*) FROM bidim.chunks WHERE mallory.leak(rel::text || coalesce(key_lo, '-'))",
        "SELECT count(*) FROM bidim.time_partitions",
        "SELECT count(*) FROM bidim.key_ranges WHERE mallory.leak(rel::text)",
        "SELECT count(*) FROM bidim.jobs WHERE rel IS NOT NULL",
        "SELECT count(*) FROM bidim.chunk",
        "SELECT count(*) FROM bidim.chunk WHERE mallory.leak(rel::text)",
        "SELECT count(*) FROM bidim.table_config",
        "SELECT count(*) FROM bidim.key_range",
    ] {
        assert_eq!(one_i64(&mut m, q), 0, "{q}");
    }
    assert_eq!(
        one_i64(&mut su, "SELECT count(*) FROM trojan_log"),
        0,
        "a leaky function saw rows of a table mallory may not read"
    );
    for q in [
        "SELECT * FROM bidim.table_stats('alice.points')",
        "SELECT bidim.table_size('alice.points')",
    ] {
        let e = m.batch_execute(q).map_err(errmsg).expect_err(q);
        assert!(e.contains("permission denied"), "{q}: {e}");
    }
    // Granted SELECT, the rows appear.
    let mut a = cluster.connect_as("postgres", "alice").unwrap();
    a.batch_execute("GRANT SELECT ON alice.points TO mallory")
        .unwrap();
    assert!(one_i64(&mut m, "SELECT count(*) FROM bidim.chunks") > 0);
    assert_contained(&cluster, &started, "views");
}

#[test]
fn chunks_belong_to_the_table_owner_and_analyze_runs_as_the_owner() {
    let cluster = Cluster::new().unwrap();
    let mut su = setup(&cluster);
    let started = start_time(&mut su);
    // Mallory owns a bidim table with a column whose type's support function (a
    // range's subtype_diff, called by ANALYZE) is her trojan.
    let mut m = cluster.connect_as("postgres", "mallory").unwrap();
    m.batch_execute(
        "CREATE FUNCTION mallory.diff(float8, float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE AS $$
         BEGIN PERFORM mallory.evil(); RETURN $1 - $2; END $$;
         CREATE TYPE mallory.evilrange AS RANGE (subtype = float8, subtype_diff = mallory.diff);
         CREATE TABLE mallory.m (k bigint, ts timestamptz, r mallory.evilrange) USING bidim;
         SELECT bidim.configure('mallory.m', hot_chunk_rows => 100);
         INSERT INTO mallory.m SELECT g % 5, timestamptz '2026-01-01' + g * interval '1 minute',
                                      mallory.evilrange(g, g + 10)
         FROM generate_series(1, 2000) g;
         SELECT bidim.seal('mallory.m');",
    )
    .unwrap();
    let foreign = one_i64(
        &mut su,
        "SELECT count(*) FROM bidim.chunk c JOIN pg_class k ON k.oid = c.chunk_rel
         WHERE k.relowner <> (SELECT relowner FROM pg_class WHERE oid = c.rel)",
    );
    assert_eq!(
        foreign, 0,
        "chunks owned by someone else than their table's owner"
    );
    // Superuser maintenance: database-wide ANALYZE (autovacuum's path) and bidim's own.
    for sql in [
        "ANALYZE",
        "SELECT bidim._maintain()",
        "VACUUM ANALYZE mallory.m",
    ] {
        su.batch_execute(sql).unwrap();
    }
    assert!(
        one_i64(&mut su, "SELECT count(*) FROM trojan_log") > 0,
        "the test's trojan never ran: ANALYZE did not reach the range column"
    );
    assert_contained(&cluster, &started, "ANALYZE of chunks");
    // Owners follow ALTER TABLE ... OWNER TO.
    su.batch_execute("ALTER TABLE alice.points OWNER TO inserter")
        .unwrap();
    let wrong = one_i64(
        &mut su,
        "SELECT count(*) FROM bidim.chunk c JOIN pg_class k ON k.oid = c.chunk_rel
         WHERE c.rel = 'alice.points'::regclass AND k.relowner <> 'inserter'::regrole",
    );
    assert_eq!(wrong, 0);
    // The owner cannot reach chunks by name (bidim_internal is closed).
    let chunk: String = su
        .query_one(
            "SELECT chunk_rel::regclass::text FROM bidim.chunk WHERE rel = 'mallory.m'::regclass LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    for sql in [
        format!("ALTER TABLE {chunk} ADD COLUMN x int"),
        format!("DROP TABLE {chunk}"),
        format!("SELECT * FROM {chunk}"),
    ] {
        let e = m.batch_execute(&sql).map_err(errmsg).expect_err(&sql);
        assert!(e.contains("permission denied"), "{sql}: {e}");
    }
}

#[test]
fn tag_dictionary_cannot_be_turned_against_the_superuser() {
    let cluster = Cluster::new().unwrap();
    let mut su = setup(&cluster);
    let started = start_time(&mut su);
    let mut m = cluster.connect_as("postgres", "mallory").unwrap();
    m.batch_execute(
        "CREATE TABLE mallory.s (id int, tags tagset);
         INSERT INTO mallory.s VALUES (1, '{env:prod}');
         SELECT bidim.enable_tag_dictionary('mallory.s', 'tags');",
    )
    .unwrap();
    // Replace the statement trigger by one without transition tables: refused (the
    // trigger function is not for PUBLIC), and the trojan "transition table" is never
    // read as anyone but mallory.
    m.batch_execute(
        "CREATE TEMP VIEW bidim_new_rows AS SELECT 1 AS id, '{a:b}'::tagset AS tags WHERE mallory.evil();
         CREATE TEMP VIEW bidim_old_rows AS SELECT 1 AS id, '{a:b}'::tagset AS tags WHERE mallory.evil();
         DROP TRIGGER bidim_tag_dict_ins ON mallory.s;",
    )
    .unwrap();
    let e = m
        .batch_execute(
            "CREATE TRIGGER t AFTER INSERT ON mallory.s FOR EACH STATEMENT
             EXECUTE FUNCTION bidim._tag_dict_trigger()",
        )
        .map_err(errmsg)
        .expect_err("trigger function granted to PUBLIC");
    assert!(e.contains("permission denied"), "{e}");
    m.batch_execute(
        "INSERT INTO mallory.s VALUES (2, '{env:dev}');
         UPDATE mallory.s SET tags = '{env:qa}';
         DELETE FROM mallory.s WHERE id = 1;",
    )
    .unwrap();
    // Registration on relations that are not plain tables, or columns of other types.
    m.batch_execute(
        "CREATE VIEW mallory.v AS SELECT id, tags FROM mallory.s WHERE mallory.evil();
         CREATE TABLE mallory.t2 (id int, tags text);",
    )
    .unwrap();
    for (call, msg) in [
        (
            "SELECT bidim.enable_tag_dictionary('mallory.v', 'tags')",
            "not a table",
        ),
        (
            "SELECT bidim.enable_tag_dictionary('mallory.t2', 'tags')",
            "not tagset",
        ),
        (
            "SELECT bidim.enable_tag_dictionary('alice.points', 'value')",
            "must be owner",
        ),
    ] {
        let e = m.batch_execute(call).map_err(errmsg).expect_err(call);
        assert!(e.contains(msg), "{call}: {e}");
    }
    assert_contained(&cluster, &started, "tag dictionary");
    // The remaining triggers kept counting from the real transition tables: the
    // uncounted insert left dev at -1 and the key at 0 (both pruned); the update and
    // delete counted exactly what they changed.
    let mut a = cluster.connect().unwrap();
    let dict: Vec<(String, String, i64)> = a
        .query(
            "SELECT key, tag, series FROM bidim.tag_dict WHERE rel = 'mallory.s'::regclass ORDER BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(dict, vec![("env".to_string(), "env:qa".to_string(), 1)]);
}

#[test]
fn rolled_back_chunks_give_their_numbers_back() {
    let cluster = Cluster::new().unwrap();
    let mut su = setup(&cluster);
    let mut i = cluster.connect_as("postgres", "inserter").unwrap();
    let before = one_i64(
        &mut su,
        "SELECT last_ordinal FROM bidim.chunk_counter WHERE rel = 'alice.points'::regclass",
    );
    // An INSERT-only role opens many partitions and rolls back, again and again.
    for round in 0..5 {
        i.batch_execute(&format!(
            "BEGIN;
             INSERT INTO alice.points SELECT 1, timestamptz '2030-01-01' + ({round} * 100 + g) * interval '1 hour', 1
             FROM generate_series(1, 100) g;
             ROLLBACK;"
        ))
        .unwrap();
    }
    let after = one_i64(
        &mut su,
        "SELECT last_ordinal FROM bidim.chunk_counter WHERE rel = 'alice.points'::regclass",
    );
    assert_eq!(
        before, after,
        "rolled-back chunk creations used up chunk numbers"
    );
    // A crash in the middle of a transaction that made chunks gives them back too.
    let mut c2 = cluster.connect_as("postgres", "inserter").unwrap();
    c2.batch_execute(
        "BEGIN; INSERT INTO alice.points SELECT 1, timestamptz '2031-01-01' + g * interval '1 hour', 1
         FROM generate_series(1, 50) g;",
    )
    .unwrap();
    let mut cluster = cluster;
    cluster.crash_immediate().unwrap();
    cluster.restart_after_crash().unwrap();
    let mut su = cluster.connect().unwrap();
    assert_eq!(
        one_i64(
            &mut su,
            "SELECT last_ordinal FROM bidim.chunk_counter WHERE rel = 'alice.points'::regclass"
        ),
        before
    );
    // The owner still gets new partitions, numbered right after the committed ones.
    let mut a = cluster.connect_as("postgres", "alice").unwrap();
    a.batch_execute("INSERT INTO alice.points VALUES (1, '2032-01-01', 1)")
        .unwrap();
    assert_eq!(
        one_i64(
            &mut su,
            "SELECT max(chunk_id)::int8 FROM bidim.chunk WHERE rel = 'alice.points'::regclass"
        ),
        before + 1
    );
}

/// Runs `sql` on the bidim table `b` and the heap table `h` (`{t}` stands for the
/// table); both must succeed or both fail.
fn both(c: &mut Client, sql: &str) -> Result<(), String> {
    let rb = c.batch_execute(&sql.replace("{t}", "b")).map_err(errmsg);
    let rh = c.batch_execute(&sql.replace("{t}", "h")).map_err(errmsg);
    if rb.is_ok() != rh.is_ok() {
        panic!("{sql}: bidim {rb:?}, heap {rh:?}");
    }
    rb
}

fn fill(c: &mut Client, from: i64) {
    let with_a = format!(
        "INSERT INTO {{t}} (a, k, ts, v)
         SELECT g % 7, g % 13, timestamptz '2026-01-01' + g * interval '1 minute', g
         FROM generate_series({from}, {from} + 399) g"
    );
    if let Err(e) = both(c, &with_a) {
        assert!(e.contains("column \"a\""), "{e}");
        both(
            c,
            &with_a
                .replace("(a, k, ts, v)", "(k, ts, v)")
                .replace("g % 7, ", ""),
        )
        .unwrap();
    }
    // COPY goes through multi_insert (when the key is k, which COPY fills).
    let keyed_by_k = c
        .query_one(
            "SELECT coalesce((SELECT key_column::text FROM bidim.table_config WHERE rel = 'b'::regclass), '')",
            &[],
        )
        .unwrap()
        .get::<_, String>(0)
        == "k";
    for t in ["b", "h"].into_iter().filter(|_| keyed_by_k) {
        let mut w = c
            .copy_in(&format!("COPY {t} (k, ts, v) FROM STDIN"))
            .unwrap();
        use std::io::Write;
        for g in from..from + 50 {
            writeln!(w, "{}\t2026-02-01 00:{:02}:00+00\t{g}", g % 11, g % 60).unwrap();
        }
        w.finish().unwrap();
    }
}

fn same(c: &mut Client, what: &str) {
    let cols = "(SELECT k, ts, v FROM {t}) x".replace("{t}", "b");
    let hcols = "(SELECT k, ts, v FROM {t}) y".replace("{t}", "h");
    assert_eq!(
        difference(c, &cols, &hcols),
        0,
        "{what}: bidim and heap differ"
    );
}

#[test]
fn ddl_on_tables_with_chunks_never_crashes_or_answers_wrong() {
    let cluster = Cluster::new().unwrap();
    let mut su = cluster.connect().unwrap();
    let started = start_time(&mut su);
    su.batch_execute("CREATE EXTENSION bidim").unwrap();
    let reset = |c: &mut Client, configured: bool| {
        c.batch_execute(
            "DROP TABLE IF EXISTS b, h;
             CREATE TABLE b (a int, k bigint, ts timestamptz, ts2 timestamptz, v float8, note text) USING bidim;
             CREATE TABLE h (a int, k bigint, ts timestamptz, ts2 timestamptz, v float8, note text);",
        )
        .unwrap();
        if configured {
            c.batch_execute(
                "SELECT bidim.configure('b', key_column => 'k', time_column => 'ts',
                                        hot_chunk_rows => 50, partition_interval => '1 hour')",
            )
            .unwrap();
        } else {
            c.batch_execute(
                "SELECT bidim.configure('b', hot_chunk_rows => 50, partition_interval => '1 hour')",
            )
            .unwrap();
        }
    };
    // Statements that would change which columns the chunks are keyed by are refused
    // while rows exist (defaults: key a, time ts; configured: key k, time ts).
    let refused = [
        (false, "ALTER TABLE {t} DROP COLUMN a"),
        (false, "ALTER TABLE {t} RENAME COLUMN a TO a2"),
        (true, "ALTER TABLE {t} DROP COLUMN k"),
        (true, "ALTER TABLE {t} RENAME COLUMN k TO kk"),
        (
            true,
            "ALTER TABLE {t} RENAME COLUMN ts TO tmp; ALTER TABLE {t} RENAME COLUMN ts2 TO ts",
        ),
        (true, "ALTER TABLE {t} DROP COLUMN ts"),
    ];
    for (configured, ddl) in refused {
        reset(&mut su, configured);
        fill(&mut su, 0);
        let e = su
            .batch_execute(&format!("BEGIN; {}; COMMIT;", ddl.replace("{t}", "b")))
            .map_err(errmsg)
            .expect_err(ddl);
        su.batch_execute("ROLLBACK").ok();
        assert!(e.contains("key or time column"), "{ddl}: {e}");
        fill(&mut su, 1000);
        same(&mut su, ddl);
    }
    // Allowed DDL in every order, each followed by INSERT, COPY, UPDATE, DELETE.
    let allowed = [
        "ALTER TABLE {t} DROP COLUMN note",
        "ALTER TABLE {t} ADD COLUMN extra int DEFAULT 5",
        "ALTER TABLE {t} DROP COLUMN ts2; ALTER TABLE {t} ADD COLUMN ts2 timestamptz",
        "ALTER TABLE {t} RENAME COLUMN v TO v2; ALTER TABLE {t} RENAME COLUMN v2 TO v",
        "ALTER TABLE {t} RENAME COLUMN note TO tmp; ALTER TABLE {t} RENAME COLUMN ts2 TO note; ALTER TABLE {t} RENAME COLUMN tmp TO ts2",
        "ALTER TABLE {t} DROP COLUMN a",
    ];
    for configured in [true, false] {
        reset(&mut su, configured);
        let mut from = 0;
        for ddl in allowed {
            if !configured && ddl.contains("DROP COLUMN a") {
                continue;
            }
            fill(&mut su, from);
            from += 1000;
            if both(&mut su, ddl).is_err() {
                // Dropping the default key column is refused (above); heap takes it.
                continue;
            }
            fill(&mut su, from);
            from += 1000;
            both(&mut su, "UPDATE {t} SET v = v * 2 WHERE k = 3").unwrap();
            both(
                &mut su,
                "UPDATE {t} SET ts = ts + interval '3 hours' WHERE k = 5",
            )
            .unwrap();
            both(&mut su, "DELETE FROM {t} WHERE k = 7").unwrap();
            same(&mut su, ddl);
        }
        // Reconfigure after rows: the seal threshold and width may change, the columns not.
        let e = su
            .batch_execute("SELECT bidim.configure('b', time_column => 'ts2')")
            .map_err(errmsg)
            .expect_err("time column change with rows");
        assert!(e.contains("while it holds rows"), "{e}");
        su.batch_execute(
            "SELECT bidim.configure('b', hot_chunk_rows => 7, partition_interval => '3 hours')",
        )
        .unwrap();
        fill(&mut su, from);
        same(&mut su, "reconfigured");
        // After TRUNCATE the columns are free again.
        both(&mut su, "TRUNCATE {t}").unwrap();
        su.batch_execute(
            "ALTER TABLE b RENAME COLUMN ts TO ts_old; ALTER TABLE h RENAME COLUMN ts TO ts_old",
        )
        .unwrap();
        let e = su.batch_execute("INSERT INTO b (k, ts_old, ts2) VALUES (1, now(), now())");
        if configured {
            // The configured time column no longer exists: a clear error, no crash.
            let e = errmsg(e.unwrap_err());
            assert!(e.contains("no longer exists"), "{e}");
        }
    }
    // Concurrent configure and insert (the table holds rows from the start, so every
    // attempt to move the time column must be refused, before, during or between the
    // writer's transactions).
    reset(&mut su, true);
    fill(&mut su, 0);
    let conninfo = cluster.conninfo("postgres");
    let writer = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
        for i in 0..40 {
            c.batch_execute(&format!(
                "BEGIN;
                 INSERT INTO b (a, k, ts, v) SELECT 1, g % 9, timestamptz '2026-01-01' + (g + {i} * 97) * interval '7 minutes', g FROM generate_series(1, 50) g;
                 INSERT INTO h (a, k, ts, v) SELECT 1, g % 9, timestamptz '2026-01-01' + (g + {i} * 97) * interval '7 minutes', g FROM generate_series(1, 50) g;
                 COMMIT;"
            ))
            .unwrap();
        }
    });
    let mut c2 = cluster.connect().unwrap();
    for i in 0..40 {
        let _ = c2.batch_execute(&format!(
            "SELECT bidim.configure('b', hot_chunk_rows => {}, partition_interval => '{} hours')",
            10 + i,
            1 + i % 3
        ));
        let e = c2
            .batch_execute("SELECT bidim.configure('b', time_column => 'ts2')")
            .map_err(errmsg)
            .expect_err("time column moved under a writer");
        assert!(e.contains("while it holds rows"), "{e}");
    }
    writer.join().unwrap();
    same(&mut su, "concurrent configure");
    assert_eq!(start_time(&mut su), started, "the server restarted");
}

#[test]
fn sketch_states_count_against_work_mem_and_nul_never_enters_a_tagquery() {
    let cluster = Cluster::new().unwrap();
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         -- 40 groups whose values span 1e-300 .. 1e300: at alpha 0.001 each group's
         -- sketch holds ~690k bins (5.5 MB), 220 MB in all. Groups arrive one after
         -- another: a hash aggregate can only spill groups it has not started.
         CREATE TABLE sk AS
         SELECT g, CASE WHEN i % 2 = 0 THEN 1e-300 ELSE 1e300 END * (1 + i % 7) AS v
         FROM generate_series(1, 40) g, generate_series(1, 20) i ORDER BY g, i;
         ANALYZE sk;
         SET work_mem = '4MB'; SET enable_sort = off; SET max_parallel_workers_per_gather = 0;",
    )
    .unwrap();
    let q = "SELECT g, ddsketch_count(ddsketch_agg(v, 0.001, 1048576)) AS n FROM sk GROUP BY g";
    let plan: Vec<String> = c
        .query(
            &format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {q}"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("HashAggregate"), "{plan}");
    let batches: i64 = plan
        .split("Batches: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        batches > 1,
        "the hash aggregate did not spill under work_mem:\n{plan}"
    );
    // Spilled or not, every group is counted exactly.
    let wrong = one_i64(
        &mut c,
        &format!(
            "SELECT count(*) FROM ({q}) s JOIN (SELECT g, count(*) AS n FROM sk GROUP BY g) t USING (g)
             WHERE s.n <> t.n"
        ),
    );
    assert_eq!(wrong, 0);
    // NUL in a binary tagquery (the text input cannot carry one): refused with a
    // clear error, for every kind of atom.
    for body in [&b"a\0b"[..], b"\"a\0b\"", b"k:/x\0/", b"\0"] {
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(body);
        let e = c
            .query("SELECT $1::tagquery::text", &[&Raw(bytes.clone())])
            .map_err(errmsg)
            .expect_err("a NUL was accepted");
        assert!(e.contains("NUL"), "{bytes:?}: {e}");
    }
    // ... and a tagset's binary form cannot smuggle one either.
    let e = c
        .query(
            "SELECT $1::tagset::text",
            &[&Raw(vec![1, b'a', b'\0', b'b'])],
        )
        .map_err(errmsg)
        .expect_err("a malformed tagset was accepted");
    assert!(e.contains("tagset"), "{e}");
}

#[test]
fn no_role_can_hold_bidims_locks() {
    let cluster = Cluster::new().unwrap();
    let mut su = setup(&cluster);
    let started = start_time(&mut su);
    let oid = one_i64(&mut su, "SELECT 'alice.points'::regclass::oid::int8") as i32;
    let max = one_i64(
        &mut su,
        "SELECT max(chunk_id)::int8 FROM bidim.chunk WHERE rel = 'alice.points'::regclass",
    ) as i32;
    // Mallory holds every advisory lock the SQL functions can name around the table:
    // (table, chunk), (class, table), (table, -1 - range), and the bigint space.
    let mut m = cluster.connect_as("postgres", "mallory").unwrap();
    let mut held = vec![format!("SELECT pg_advisory_lock(1651076461, {oid})")];
    for k in 0..=max + 20 {
        held.push(format!("SELECT pg_advisory_lock({oid}, {k})"));
    }
    for r in 0..10 {
        held.push(format!("SELECT pg_advisory_lock({oid}, {})", -1 - r));
    }
    held.push(format!("SELECT pg_advisory_lock({oid}::int8)"));
    m.batch_execute(&held.join(";")).unwrap();
    // Alice's inserts still seal chunks and open partitions, without waiting.
    let mut a = cluster.connect_as("postgres", "alice").unwrap();
    a.batch_execute(
        "SET lock_timeout = '5s';
         INSERT INTO alice.points SELECT g % 10, timestamptz '2028-01-01' + g * interval '10 seconds', g
         FROM generate_series(1, 2000) g;",
    )
    .unwrap();
    // 6 hourly partitions of ~360 rows with 100-row chunks: more chunks than
    // partitions only if seals (and splits) went through.
    let chunks = one_i64(
        &mut su,
        "SELECT count(*) FROM bidim.chunk WHERE rel = 'alice.points'::regclass AND time_lo >= '2028-01-01'",
    );
    assert!(chunks > 6, "only {chunks} chunks: seals were blocked");
    assert_contained(&cluster, &started, "advisory locks");
}

#[test]
fn rollups_run_as_their_table_owner_and_nobody_else_can_drive_them() {
    let cluster = Cluster::new().unwrap();
    let mut su = setup(&cluster);
    let started = start_time(&mut su);
    // Mallory owns a bidim table and a rollup of it; her materialized table (which she
    // owns) gets a trigger running her trojan, and her session path names her schema
    // (where a trojan `date_bin` and `count` wait).
    let mut m = cluster.connect_as("postgres", "mallory").unwrap();
    m.batch_execute(
        "CREATE TABLE mallory.m (k bigint, ts timestamptz, v float8) USING bidim;
         INSERT INTO mallory.m SELECT g % 5, timestamptz '2026-01-01' + g * interval '1 minute', g
         FROM generate_series(1, 600) g;
         CREATE FUNCTION mallory.date_bin(interval, timestamptz, timestamptz) RETURNS timestamptz
             LANGUAGE plpgsql AS $$ BEGIN PERFORM mallory.evil(); RETURN $2; END $$;
         CREATE FUNCTION mallory.count(float8) RETURNS bigint
             LANGUAGE plpgsql AS $$ BEGIN PERFORM mallory.evil(); RETURN 1; END $$;
         ALTER ROLE mallory SET search_path = mallory, public;
         SELECT bidim.add_rollup('mallory.m', interval '1 hour');
         CREATE FUNCTION mallory.trig() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM mallory.evil(); RETURN NEW; END $$;",
    )
    .unwrap();
    let data: String = su
        .query_one(
            "SELECT data::text FROM bidim.rollups WHERE rel = 'mallory.m'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    // She owns her rollup's relations (and no one else's).
    let foreign = one_i64(
        &mut su,
        "SELECT count(*) FROM bidim.rollup r, LATERAL (VALUES (r.view), (r.total_view), (r.data), (r.total_data)) x(o)
         JOIN pg_class k ON k.oid = x.o::oid WHERE k.relowner <> 'mallory'::regrole",
    );
    assert_eq!(
        foreign, 0,
        "rollup relations not owned by the table's owner"
    );
    m.batch_execute(&format!(
        "CREATE TRIGGER t BEFORE INSERT ON {data} FOR EACH ROW EXECUTE FUNCTION mallory.trig()"
    ))
    .unwrap();
    // The superuser refreshes it (as the worker does): the trigger runs, as mallory.
    su.batch_execute("CALL bidim.refresh_rollup('mallory.m_1h')")
        .unwrap();
    su.batch_execute("SELECT bidim._prepare_job(job_id), bidim.run_job(job_id) FROM bidim.jobs WHERE kind = 'rollup'")
        .unwrap();
    assert!(
        one_i64(&mut su, "SELECT count(*) FROM trojan_log") > 0,
        "the test's trigger never ran"
    );
    assert_eq!(
        one_i64(&mut su, "SELECT sum(rows)::int8 FROM mallory.m_1h_total"),
        600,
        "a trojan date_bin or count was used"
    );
    assert_contained(&cluster, &started, "rollup refresh by the superuser");
    // Alice's table: mallory can neither create, refresh, remove nor read its rollup,
    // nor call the refresh steps on it; the inserter's late rows are logged all the same.
    let mut a = cluster.connect_as("postgres", "alice").unwrap();
    a.batch_execute("SELECT bidim.add_rollup('alice.points', interval '1 hour')")
        .unwrap();
    a.batch_execute("CALL bidim.refresh_rollup('alice.points_1h')")
        .unwrap();
    let id = one_i64(
        &mut su,
        "SELECT rollup_id::int8 FROM bidim.rollups WHERE rel = 'alice.points'::regclass",
    );
    for sql in [
        "SELECT bidim.add_rollup('alice.points', interval '1 day')".to_string(),
        "CALL bidim.refresh_rollup('alice.points_1h')".to_string(),
        "SELECT bidim.remove_rollup('alice.points_1h')".to_string(),
        "SELECT count(*) FROM alice.points_1h".to_string(),
        format!("SELECT bidim.refresh_rollup_step({id}, 'advance')"),
        format!("SELECT bidim.refresh_rollup_step({id}, 'materialize')"),
        format!("SELECT bidim._rollup_sql({id}, 'materialize')"),
        format!("SELECT bidim._rollup_forget({id})"),
        format!("SELECT bidim._rollup_grants({id})"),
        "DELETE FROM bidim.rollup_invalid".to_string(),
        "INSERT INTO bidim.rollup_invalid VALUES (1, now())".to_string(),
        "UPDATE bidim.rollup SET watermark = 'infinity'".to_string(),
    ] {
        let e = m.batch_execute(&sql).map_err(errmsg).expect_err(&sql);
        // (A rollup she may not read is one she cannot name.)
        assert!(
            e.contains("permission denied")
                || e.contains("must be owner")
                || e.contains("is not a rollup view"),
            "{sql}: {e}"
        );
    }
    let mut ins = cluster.connect_as("postgres", "inserter").unwrap();
    ins.batch_execute("INSERT INTO alice.points VALUES (1, '2026-01-01 00:30', -1)")
        .unwrap();
    assert_eq!(
        one_i64(
            &mut su,
            &format!("SELECT count(*) FROM bidim.rollup_invalid WHERE rollup_id = {id}")
        ),
        1
    );
    assert_eq!(
        one_i64(
            &mut su,
            "SELECT (SELECT sum(rows)::int8 FROM alice.points_1h) - (SELECT count(*) FROM alice.points)"
        ),
        0
    );
    assert_contained(&cluster, &started, "rollups of another's table");
}
