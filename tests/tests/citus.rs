//! bidim tables distributed with Citus 13.2.2, on a real loopback cluster (a coordinator
//! and two workers, `shared_preload_libraries = 'citus,bidim'`): settings reach every
//! shard and follow moves and splits, the coordinator's bidim functions run on every
//! shard, shard sizes are real, answers equal a distributed heap table, and no shard
//! move loses a committed row (logical moves are refused before they start).
//!
//! Citus must be installed (`scripts/test.sh` builds it from `../shared/peers/`); a
//! missing Citus fails these tests, it does not skip them.

use bidim_tests::{difference, one_i64, Client, Cluster};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

struct Citus {
    coordinator: Cluster,
    workers: Vec<Cluster>,
}

fn node() -> Cluster {
    Cluster::builder()
        .setting("shared_preload_libraries", "'citus,bidim'")
        .setting("wal_level", "logical")
        .setting("citus.node_conninfo", "'sslmode=disable'")
        .setting("max_connections", "80")
        .start()
        .expect("a node of the Citus cluster (is Citus installed? scripts/test.sh builds it)")
}

impl Citus {
    fn new() -> Citus {
        let coordinator = node();
        let workers = vec![node(), node()];
        for n in std::iter::once(&coordinator).chain(workers.iter()) {
            n.connect()
                .unwrap()
                .batch_execute("CREATE EXTENSION citus")
                .expect("CREATE EXTENSION citus");
        }
        let mut c = coordinator.connect().unwrap();
        c.batch_execute(&format!(
            "SELECT citus_set_coordinator_host('127.0.0.1', {})",
            coordinator.port
        ))
        .unwrap();
        for w in &workers {
            c.batch_execute(&format!("SELECT citus_add_node('127.0.0.1', {})", w.port))
                .unwrap();
        }
        // Citus creates the extension on the workers too.
        c.batch_execute("CREATE EXTENSION bidim").unwrap();
        Citus {
            coordinator,
            workers,
        }
    }

    fn connect(&self) -> Client {
        self.coordinator.connect().unwrap()
    }
}

/// Each shard placement's setting (hot_chunk_rows, partition_interval), as text.
fn shard_settings(c: &mut Client, table: &str) -> Vec<String> {
    c.query(
        &format!(
            "SELECT success::text || ' ' || result FROM run_command_on_placements('{table}',
               'SELECT hot_chunk_rows || '' '' || partition_interval FROM bidim.table_config WHERE rel = %L::regclass')
             ORDER BY shardid, nodeport"
        ),
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get::<_, String>(0))
    .collect()
}

/// The first column of every row of `sql`, as text, sorted (Citus does not keep the
/// order of a subquery's rows).
fn sorted_texts(c: &mut Client, sql: &str) -> Vec<String> {
    let mut v: Vec<String> = c
        .query(&format!("SELECT x::text FROM ({sql}) x"), &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect();
    v.sort();
    v
}

fn same_answers(c: &mut Client) {
    for q in [
        "SELECT series_id, count(*), round(sum(value)::numeric, 6), min(ts), max(ts) FROM {t} GROUP BY 1",
        "SELECT count(*), round(avg(value)::numeric, 6) FROM {t} WHERE ts >= '2026-01-01 01:00+00' AND ts < '2026-01-01 02:30+00'",
        "SELECT series_id, approx_percentile(ddsketch_agg(value), 0.99)::numeric(20,6) FROM {t} GROUP BY 1",
        "SELECT approx_percentile(ddsketch_agg(value), 0.5)::numeric(20,6) FROM {t} WHERE series_id IN (3, 7, 11)",
        "SELECT * FROM {t} WHERE series_id = 5 ORDER BY ts DESC LIMIT 3",
    ] {
        let b = sorted_texts(c, &q.replace("{t}", "b"));
        let h = sorted_texts(c, &q.replace("{t}", "h"));
        assert!(!b.is_empty(), "{q}");
        assert_eq!(b, h, "{q}");
    }
    assert_eq!(difference(c, "b", "h"), 0);
}

#[test]
fn a_distributed_bidim_table_behaves_as_one() {
    let cluster = Citus::new();
    let mut c = cluster.connect();
    c.batch_execute(
        "CREATE TABLE b (series_id bigint, ts timestamptz, value float8) USING bidim
           WITH (bidim.hot_chunk_rows = 500, bidim.partition_interval = '1 hour');
         CREATE TABLE h (series_id bigint, ts timestamptz, value float8);
         SELECT create_distributed_table('b', 'series_id', shard_count => 4);
         SELECT create_distributed_table('h', 'series_id', colocate_with => 'b');
         INSERT INTO b SELECT g % 40, timestamptz '2026-01-01' + g * interval '1 second', (g * 7919) % 1000 / 10.0
           FROM generate_series(1, 20000) g;
         INSERT INTO h SELECT * FROM b;",
    )
    .unwrap();
    // Settings: from the definition at distribution time, then from ALTER TABLE and
    // bidim.configure on the coordinator.
    let s = shard_settings(&mut c, "b");
    assert_eq!(s.len(), 4);
    assert!(s.iter().all(|x| x == "true 500 01:00:00"), "{s:?}");
    c.batch_execute("ALTER TABLE b SET (bidim.hot_chunk_rows = 800)")
        .unwrap();
    assert!(shard_settings(&mut c, "b")
        .iter()
        .all(|x| x == "true 800 01:00:00"));
    c.batch_execute("SELECT bidim.configure('b', partition_interval => '2 hours')")
        .unwrap();
    assert!(shard_settings(&mut c, "b")
        .iter()
        .all(|x| x == "true 800 02:00:00"));
    let opts: String = c
        .query_one(
            "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = 'b'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(opts.contains("bidim.hot_chunk_rows=800"), "{opts}");
    same_answers(&mut c);

    // Sizes Citus reads are the shards' real sizes.
    let zero = one_i64(
        &mut c,
        "SELECT count(*) FROM citus_shards WHERE table_name = 'b'::regclass AND shard_size = 0",
    );
    assert_eq!(zero, 0);
    let citus_total = one_i64(
        &mut c,
        "SELECT sum(shard_size)::int8 FROM citus_shards WHERE table_name = 'b'::regclass",
    );
    assert_eq!(one_i64(&mut c, "SELECT bidim.table_size('b')"), citus_total);
    // table_stats from the coordinator: the shards' totals.
    assert_eq!(
        one_i64(&mut c, "SELECT chunks FROM bidim.table_stats('b')"),
        one_i64(
            &mut c,
            "SELECT sum(result::int8)::int8 FROM run_command_on_placements('b',
               'SELECT chunks FROM bidim.table_stats(%L)')"
        )
    );
    assert!(one_i64(&mut c, "SELECT chunks FROM bidim.table_stats('b')") >= 40);
    // The views on the coordinator list the shards' chunks and key ranges too.
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM bidim.chunks WHERE rel = 'b'::regclass AND shard IS NOT NULL"
        ),
        one_i64(&mut c, "SELECT chunks FROM bidim.table_stats('b')")
    );
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(DISTINCT shard) FROM bidim.chunks WHERE rel = 'b'::regclass"
        ),
        4
    );
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM bidim.time_partitions WHERE rel = 'b'::regclass"
        ),
        one_i64(&mut c, "SELECT partitions FROM bidim.table_stats('b')")
    );
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM bidim.key_ranges WHERE rel = 'b'::regclass AND shard IS NULL"
        ),
        0
    );

    // seal, convert and drop_before from the coordinator run on every shard.
    assert!(one_i64(&mut c, "SELECT bidim.seal('b')") >= 4);
    assert!(one_i64(&mut c, "SELECT bidim.convert('b', '2026-01-01 04:00+00')") >= 4);
    assert!(one_i64(&mut c, "SELECT cold_chunks FROM bidim.table_stats('b')") >= 4);
    same_answers(&mut c);
    // The same retention per shard on a colocated copy (partitioned as b's rows were
    // when they went in) drops the same partitions.
    c.batch_execute(
        "CREATE TABLE b2 (series_id bigint, ts timestamptz, value float8) USING bidim
           WITH (bidim.hot_chunk_rows = 500, bidim.partition_interval = '1 hour');
         SELECT create_distributed_table('b2', 'series_id', colocate_with => 'b');
         INSERT INTO b2 SELECT * FROM h;",
    )
    .unwrap();
    let dropped = one_i64(
        &mut c,
        "SELECT bidim.drop_before('b', '2026-01-01 02:00+00')",
    );
    let per_shard = one_i64(
        &mut c,
        "SELECT sum(result::int8)::int8 FROM run_command_on_placements('b2',
           'SELECT bidim.drop_before(%L, ''2026-01-01 02:00+00'')')",
    );
    assert!(dropped > 0);
    assert_eq!(dropped, per_shard);
    c.batch_execute("DELETE FROM h WHERE ts < '2026-01-01 02:00+00'")
        .unwrap();
    same_answers(&mut c);
    assert_eq!(difference(&mut c, "b2", "h"), 0);

    // Tags: a distributed series table (colocated with the points), describe-tags
    // counted from its shards equal a local table's dictionary, and the data-model
    // query (tag filter -> points -> p99) equals the heap table's answer.
    // One statement at a time: Citus runs a multi-statement string's DDL differently.
    for sql in [
        "CREATE TABLE series (id bigint PRIMARY KEY, tags tagset)",
        "SELECT create_distributed_table('series', 'id', colocate_with => 'b')",
        "CREATE INDEX ON series USING gin (tags)",
        "INSERT INTO series SELECT g, ('{env:' || CASE WHEN g % 3 = 0 THEN 'prod' ELSE 'dev' END
                                       || ',service:svc-' || g % 5 || ',host:h' || g || '}')::tagset
           FROM generate_series(0, 39) g",
        "CREATE TABLE series_local (id bigint PRIMARY KEY, tags tagset)",
        "INSERT INTO series_local SELECT * FROM series",
        "SELECT bidim.enable_tag_dictionary('series_local', 'tags')",
    ] {
        c.batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    for (f, args) in [
        ("describe_tags", ""),
        ("describe_tags", ", 'env:prod'"),
        ("tag_keys", ""),
        ("tag_values", ", 'service'"),
        ("tag_values", ", 'env', 'service:svc-1'"),
    ] {
        let rows = |c: &mut Client, t: &str| {
            sorted_texts(c, &format!("SELECT * FROM bidim.{f}('{t}'{args})"))
        };
        let (d, l) = (rows(&mut c, "series"), rows(&mut c, "series_local"));
        assert!(!d.is_empty(), "{f}{args}");
        assert_eq!(d, l, "{f}{args}");
    }
    let e = c
        .batch_execute("SELECT bidim.enable_tag_dictionary('series', 'tags')")
        .unwrap_err();
    assert!(format!("{e:?}").contains("is a Citus table"), "{e:?}");
    let p99 = |c: &mut Client, t: &str| -> String {
        c.query_one(
            &format!(
                "SELECT approx_percentile(ddsketch_agg(p.value), 0.99)::text FROM {t} p
                 WHERE p.series_id IN (SELECT id FROM series WHERE tags @@ 'env:prod AND service:svc-1')
                   AND p.ts >= '2026-01-01 03:00+00'"
            ),
            &[],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(p99(&mut c, "b"), p99(&mut c, "h"));
    let plan: Vec<String> = c
        .query(
            "EXPLAIN (VERBOSE) SELECT approx_percentile(ddsketch_agg(p.value), 0.99) FROM b p
             WHERE p.series_id IN (SELECT id FROM series WHERE tags @@ 'env:prod AND service:svc-1')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("Custom Scan (Citus Adaptive)"), "{plan}");
    // The sketches are built on the workers and merged on the coordinator.
    assert!(
        plan.contains("worker_partial_agg") && plan.contains("coord_combine_agg"),
        "{plan}"
    );

    // Logical replication is refused before it starts.
    for sql in [
        "CREATE PUBLICATION p FOR TABLE b",
        "CREATE PUBLICATION p FOR ALL TABLES",
    ] {
        let e = c.batch_execute(sql).unwrap_err();
        assert!(
            format!("{e:?}")
                .contains("logical replication does not carry the rows of bidim tables"),
            "{sql}: {e:?}"
        );
    }
}

#[test]
fn shard_moves_keep_every_committed_row_and_the_settings() {
    let cluster = Citus::new();
    let mut c = cluster.connect();
    for sql in [
        "CREATE TABLE b (series_id bigint, ts timestamptz, value float8) USING bidim
           WITH (bidim.hot_chunk_rows = 300, bidim.partition_interval = '1 hour')",
        "SELECT create_distributed_table('b', 'series_id', shard_count => 4)",
        "INSERT INTO b SELECT g % 40, timestamptz '2026-01-01' + g * interval '1 second', g FROM generate_series(1, 5000) g",
        // With a replica identity, Citus' default mode is a logical move.
        "ALTER TABLE b REPLICA IDENTITY FULL",
    ] {
        c.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    let w1 = cluster.workers[0].port;
    let w2 = cluster.workers[1].port;
    for mode in ["force_logical", "auto", "block_writes"] {
        // Single-row inserts, each acknowledged, while a shard on worker 1 moves.
        let stop = Arc::new(AtomicBool::new(false));
        let conninfo = cluster.coordinator.conninfo("postgres");
        let writer = {
            let stop = stop.clone();
            let mode = mode.to_string();
            thread::spawn(move || {
                let mut w = Client::connect(&conninfo, bidim_tests::NoTls).unwrap();
                let mut acked = Vec::new();
                let base = match mode.as_str() {
                    "force_logical" => 100_000,
                    "auto" => 200_000,
                    _ => 300_000,
                };
                let mut i = 0i64;
                while !stop.load(Ordering::Relaxed) || i < 200 {
                    let v = base + i;
                    match w.execute(
                        "INSERT INTO b VALUES ($1::int8 % 40, timestamptz '2026-01-02' + $1::int8 * interval '1 second', $1::int8::float8)",
                        &[&v],
                    ) {
                        Ok(_) => acked.push(v),
                        Err(e) if i == 0 => eprintln!("{mode}: insert failed: {e:?}"),
                        Err(_) => {}
                    }
                    i += 1;
                }
                acked
            })
        };
        let shard = one_i64(
            &mut c,
            &format!(
                "SELECT shardid FROM citus_shards WHERE table_name = 'b'::regclass AND nodeport = {w1} ORDER BY shardid LIMIT 1"
            ),
        );
        let moved = c.batch_execute(&format!(
            "SELECT citus_move_shard_placement({shard}, '127.0.0.1', {w1}, '127.0.0.1', {w2}, shard_transfer_mode => '{mode}')"
        ));
        stop.store(true, Ordering::Relaxed);
        let acked = writer.join().unwrap();
        match mode {
            "block_writes" => moved.expect("a block_writes move"),
            _ => {
                let e = moved.expect_err("a logical move of a bidim shard is refused");
                assert!(
                    format!("{e:?}").contains("logical replication does not carry"),
                    "{mode}: {e:?}"
                );
            }
        }
        let kept = one_i64(
            &mut c,
            &format!(
                "SELECT count(*) FROM b WHERE value = ANY('{{{}}}'::float8[])",
                acked
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        );
        assert_eq!(kept, acked.len() as i64, "{mode}: acknowledged rows lost");
        assert!(acked.len() >= 200);
    }
    // The moved shard came up with its table's settings; a split's shards too.
    assert!(shard_settings(&mut c, "b")
        .iter()
        .all(|x| x == "true 300 01:00:00"));
    let (shard, lo, hi): (i64, i32, i32) = {
        let r = c
            .query_one(
                "SELECT shardid, shardminvalue::int, shardmaxvalue::int FROM pg_dist_shard
                 WHERE logicalrelid = 'b'::regclass ORDER BY shardid LIMIT 1",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    let before = one_i64(&mut c, "SELECT count(*) FROM b");
    let (n1, n2) = (cluster_node_id(&mut c, w1), cluster_node_id(&mut c, w2));
    c.batch_execute(&format!(
        "SELECT citus_split_shard_by_split_points({shard}, ARRAY['{}'], ARRAY[{n1}, {n2}], shard_transfer_mode => 'block_writes')",
        (lo / 2 + hi / 2),
    ))
    .unwrap();
    let s = shard_settings(&mut c, "b");
    assert_eq!(s.len(), 5);
    assert!(s.iter().all(|x| x == "true 300 01:00:00"), "{s:?}");
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM b"), before);

    // A new node: Citus creates the extension there, the rebalancer moves shards to it
    // (block_writes), and they come up with the table's settings and rows.
    let extra = node();
    extra
        .connect()
        .unwrap()
        .batch_execute("CREATE EXTENSION citus")
        .unwrap();
    c.batch_execute(&format!(
        "SELECT citus_add_node('127.0.0.1', {})",
        extra.port
    ))
    .unwrap();
    c.batch_execute("SELECT rebalance_table_shards('b', shard_transfer_mode => 'block_writes')")
        .unwrap();
    assert!(
        one_i64(
            &mut c,
            &format!(
                "SELECT count(*) FROM citus_shards WHERE table_name = 'b'::regclass AND nodeport = {}",
                extra.port
            )
        ) >= 1
    );
    let s = shard_settings(&mut c, "b");
    assert!(s.iter().all(|x| x == "true 300 01:00:00"), "{s:?}");
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM b"), before);

    // A retention policy, run by the coordinator's job, drops on every shard.
    let job = one_i64(
        &mut c,
        "SELECT bidim.add_retention_policy('b', interval '1 day')::int8",
    );
    let partitions = one_i64(&mut c, "SELECT partitions FROM bidim.table_stats('b')");
    c.batch_execute(&format!("SELECT bidim.run_job({job}::int4)"))
        .unwrap();
    assert_eq!(
        one_i64(&mut c, &format!("SELECT count(*) FROM bidim.jobs WHERE job_id = {job} AND last_error IS NULL AND runs = 1")),
        1
    );
    assert!(partitions > 0);
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM b"), 0);
    assert_eq!(
        one_i64(&mut c, "SELECT chunks FROM bidim.table_stats('b')"),
        0
    );
}

fn cluster_node_id(c: &mut Client, port: u16) -> i64 {
    one_i64(
        c,
        &format!("SELECT nodeid::int8 FROM pg_dist_node WHERE nodeport = {port}"),
    )
}

#[test]
fn metric_aggregates_combine_across_shards() {
    let citus = Citus::new();
    let mut c = citus.connect();
    // Counters with resets in a distributed bidim table and a local heap copy.
    c.batch_execute(
        "CREATE TABLE dist (id int NOT NULL, ts timestamptz NOT NULL, v float8) USING bidim;
         SELECT create_distributed_table('dist', 'id');
         CREATE TABLE loc (id int, ts timestamptz, v float8);
         INSERT INTO loc SELECT id, timestamptz '2026-01-01' + n * interval '10 seconds',
                                ((n * 7 + id * 13) % 500)::float8
         FROM generate_series(1, 40) id, generate_series(0, 719) n;
         INSERT INTO dist SELECT * FROM loc;",
    )
    .unwrap();
    let aggs = "increase(v, ts), rate(v, ts), delta(v, ts),
                increase(v, ts, '2026-01-01', '2026-01-01 02:00'),
                time_weighted_avg(v, ts), time_weighted_avg(v, ts, 'locf'),
                first(v, ts), last(v, ts), first_time(v, ts), last_time(v, ts)";
    // Grouped by the distribution column: each group on one shard.
    let grouped = |t: &str| format!("(SELECT id, {aggs} FROM {t} GROUP BY id) x");
    assert_eq!(difference(&mut c, &grouped("dist"), &grouped("loc")), 0);
    // One group over every shard: the shards' partial states (every point of their
    // series) combined on the coordinator, equal to the local answer.
    let whole = |t: &str| format!("(SELECT {aggs} FROM {t}) x");
    assert_eq!(difference(&mut c, &whole("dist"), &whole("loc")), 0);
    let plan: Vec<String> = c
        .query(
            "EXPLAIN (VERBOSE, COSTS OFF) SELECT increase(v, ts) FROM dist",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    assert!(
        plan.iter().any(|l| l.contains("worker_partial_agg")),
        "the shards do not aggregate: {plan:#?}"
    );
    // A rollup is refused on a distributed table, with the way around it.
    let e = c
        .batch_execute("SELECT bidim.add_rollup('dist', interval '1 hour')")
        .unwrap_err();
    let msg = e.as_db_error().map(|d| d.message().to_string()).unwrap();
    assert!(msg.contains("distributed by Citus"), "{msg}");
}
