//! Queries that name series, against an oracle: random key sets, joins, LATERAL reads
//! and newest-first reads on a bidim table give exactly what a heap table holding the
//! same rows gives, with custom and generic plans, nested loops and hash joins, before
//! and after late rows, updates, deletes, seals and measured chunk bounds.

use bidim_tests::{one_i64, text_rows, Client, Cluster, Rng};

/// md5 of the rows of `sql`, in the order the query gives them when `ordered`, else
/// sorted.
fn fingerprint(c: &mut Client, sql: &str, ordered: bool) -> String {
    let q = if ordered {
        format!("SELECT md5(string_agg(x::text, ',')) FROM ({sql}) x")
    } else {
        format!("SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM ({sql}) x")
    };
    c.query_one(q.as_str(), &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get::<_, Option<String>>(0)
        .unwrap_or_default()
}

fn same(c: &mut Client, sql: &str, ordered: bool) {
    let b = fingerprint(c, &sql.replace("{t}", "b"), ordered);
    let h = fingerprint(c, &sql.replace("{t}", "h"), ordered);
    assert_eq!(b, h, "bidim and heap differ: {sql}");
}

/// A session on `cluster` with bidim created, UTC times, and two empty tables of
/// (series_id `key_type`, ts, value): `b` with bidim's access method (configured with
/// `settings`), `h` a heap table, the oracle.
fn bidim_and_heap(cluster: &Cluster, key_type: &str, settings: &str) -> Client {
    let mut c = cluster.connect().unwrap();
    c.batch_execute(&format!(
        "CREATE EXTENSION bidim;
         SET timezone = 'UTC';
         CREATE TABLE b (series_id {key_type}, ts timestamptz, value float8) USING bidim;
         SELECT bidim.configure('b', {settings});
         CREATE TABLE h (series_id {key_type}, ts timestamptz, value float8);"
    ))
    .unwrap();
    c
}

/// A prepared newest-first read of table `t`: one series' (`$1`) newest `$2` rows.
fn prepare_last(c: &mut Client, t: &str) -> postgres::Statement {
    c.prepare(&format!(
        "SELECT ts::text, value FROM {t} WHERE series_id = $1::int8 ORDER BY ts DESC, value LIMIT $2::int4"
    ))
    .unwrap()
}

/// The rows of [`prepare_last`]'s statement for series `k`, limit `n`.
fn last_rows(c: &mut Client, last: &postgres::Statement, k: i64, n: i32) -> Vec<(String, f64)> {
    c.query(last, &[&k, &n])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Seals `b`'s hot chunks, measures the sealed ones' bounds as the maintenance job
/// does, and analyzes both tables (one transaction each: bounds are measured once no
/// snapshot predates the seal).
fn seal_and_measure(c: &mut Client) {
    for sql in [
        "SELECT bidim.seal('b')",
        "SELECT bidim._maintain()",
        "SELECT bidim._maintain()",
        "ANALYZE b",
        "ANALYZE h",
    ] {
        c.batch_execute(sql).unwrap();
    }
}

fn key_list(rng: &mut Rng) -> String {
    let n = rng.below(7);
    let mut keys: Vec<String> = (0..n)
        .map(|_| match rng.below(12) {
            0 => "NULL".to_string(),
            1 => "100000".to_string(),
            _ => (rng.below(120) as i64).to_string(),
        })
        .collect();
    if keys.is_empty() {
        keys.push("NULL".to_string());
    }
    keys.join(", ")
}

fn window(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => String::new(),
        1 => format!(
            " AND ts >= timestamptz '2026-03-01' + interval '{} minutes'",
            rng.below(720)
        ),
        _ => {
            let from = rng.below(720);
            format!(
                " AND ts >= timestamptz '2026-03-01' + interval '{from} minutes' AND ts < timestamptz '2026-03-01' + interval '{} minutes'",
                from + 1 + rng.below(180)
            )
        }
    }
}

#[test]
fn named_series_queries_match_heap() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = bidim_and_heap(
        &cluster,
        "bigint",
        "hot_chunk_rows => 1500, partition_interval => '2 hours'",
    );
    c.batch_execute(
        "INSERT INTO b SELECT s, timestamptz '2026-03-01' + t * interval '30 seconds', s * 100000 + t
           FROM generate_series(0, 1439) t, generate_series(1, 100) s ORDER BY t, s;
         INSERT INTO h SELECT * FROM b;
         CREATE TABLE series (id bigint PRIMARY KEY, tags tagset);
         INSERT INTO series SELECT i, format('{host:h%s,rack:r%s}', i, i % 10)::tagset FROM generate_series(1, 110) i;
         CREATE INDEX ON series USING gin (tags);
         ANALYZE b; ANALYZE h; ANALYZE series;",
    )
    .unwrap();
    assert!(one_i64(&mut c, "SELECT count(DISTINCT range_id) FROM bidim.chunks") > 1);
    let mut rng = Rng(0x5eed_cafe_f00d);
    for round in 0..6 {
        for _ in 0..40 {
            let keys = key_list(&mut rng);
            let w = window(&mut rng);
            let k = rng.below(110);
            let n = 1 + rng.below(40);
            match rng.below(7) {
                0 => same(&mut c, &format!("SELECT * FROM {{t}} WHERE series_id IN ({keys}){w}"), false),
                1 => same(
                    &mut c,
                    &format!("SELECT count(*), sum(value) FROM {{t}} WHERE series_id = ANY (ARRAY[{keys}]::int4[]){w}"),
                    false,
                ),
                2 => same(
                    &mut c,
                    &format!("SELECT ts, value FROM {{t}} WHERE series_id = {k}{w} ORDER BY ts DESC, value LIMIT {n}"),
                    true,
                ),
                3 => same(
                    &mut c,
                    &format!("SELECT ts, value FROM {{t}} WHERE series_id = {k}{w} ORDER BY ts, value DESC LIMIT {n}"),
                    true,
                ),
                4 => same(
                    &mut c,
                    &format!(
                        "SELECT s.id, p.ts, p.value FROM series s JOIN {{t}} p ON p.series_id = s.id
                         WHERE s.tags @@ 'rack:r{}'{}",
                        rng.below(10),
                        w.replace("ts", "p.ts")
                    ),
                    false,
                ),
                5 => same(
                    &mut c,
                    &format!(
                        "SELECT s.id, l.ts, l.value FROM series s CROSS JOIN LATERAL
                           (SELECT ts, value FROM {{t}} p WHERE p.series_id = s.id ORDER BY ts DESC, value LIMIT {}) l
                         WHERE s.id % 7 = {}",
                        1 + rng.below(3),
                        rng.below(7)
                    ),
                    false,
                ),
                _ => same(
                    &mut c,
                    &format!(
                        "SELECT count(*), sum(value) FROM {{t}} p WHERE p.series_id IN
                           (SELECT id FROM series WHERE tags @@ 'host:h{k} OR host:h{}'){w}",
                        rng.below(110)
                    ),
                    false,
                ),
            }
        }
        // Generic plans with a key set and a single key as parameters.
        c.batch_execute("SET plan_cache_mode = force_generic_plan")
            .unwrap();
        let mut statements = Vec::new();
        for t in ["b", "h"] {
            let set = c
                .prepare(&format!(
                    "SELECT count(*), sum(value) FROM {t} WHERE series_id = ANY ($1)
                       AND ts >= timestamptz '2026-03-01' + $2::int4 * interval '1 minute'"
                ))
                .unwrap();
            let last = prepare_last(&mut c, t);
            statements.push((set, last));
        }
        for _ in 0..10 {
            let keys: Vec<Option<i64>> = (0..rng.below(6))
                .map(|_| (rng.below(8) != 0).then(|| rng.below(120) as i64))
                .collect();
            let minutes = rng.below(720) as i32;
            let k = rng.below(110) as i64;
            let lim = 1 + rng.below(20) as i32;
            let mut answers = Vec::new();
            for (set, last) in &statements {
                let r = c.query(set, &[&keys, &minutes]).unwrap();
                let s: (i64, Option<f64>) = (r[0].get(0), r[0].get(1));
                answers.push((s, last_rows(&mut c, last, k, lim)));
            }
            assert_eq!(
                answers[0], answers[1],
                "generic plans differ: keys {keys:?} from +{minutes} min, key {k} limit {lim}"
            );
        }
        c.batch_execute("RESET plan_cache_mode").unwrap();
        // Change the rows between rounds: late rows into old partitions, updates of
        // times and keys, deletes, seals, measured bounds, plan shapes.
        let a = rng.below(100) as i64;
        let changes = [
            format!("INSERT INTO {{t}} SELECT {a} + g % 5, timestamptz '2026-03-01' + (g * 97 % 43200) * interval '1 second', -g FROM generate_series(1, 300) g"),
            format!("UPDATE {{t}} SET ts = ts + interval '{} minutes' WHERE series_id = {a} AND value > 0 AND ts < timestamptz '2026-03-01 06:00'", 1 + rng.below(200)),
            format!("UPDATE {{t}} SET ts = ts - interval '3 seconds' WHERE series_id = {} AND value < 0", a + 1),
            format!("DELETE FROM {{t}} WHERE series_id = {} AND ts < timestamptz '2026-03-01 03:00'", a + 2),
            format!("UPDATE {{t}} SET series_id = series_id + 1000 WHERE series_id = {} AND ts > timestamptz '2026-03-01 09:00'", a + 3),
        ];
        for sql in &changes {
            for t in ["b", "h"] {
                c.batch_execute(&sql.replace("{t}", t))
                    .unwrap_or_else(|e| panic!("round {round}: {sql}: {e}"));
            }
        }
        c.batch_execute("SELECT bidim.seal('b'); SELECT bidim._maintain(); SELECT bidim._maintain(); ANALYZE b; ANALYZE h;")
            .unwrap();
        match round % 4 {
            0 => c.batch_execute("SET enable_hashjoin = off; SET enable_mergejoin = off; SET random_page_cost = 1.1").unwrap(),
            1 => c.batch_execute("RESET ALL; SET enable_nestloop = off").unwrap(),
            // Parallel plans wherever they can be had (parallel BidimScans included).
            2 => c.batch_execute("RESET ALL; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2").unwrap(),
            _ => c.batch_execute("RESET ALL").unwrap(),
        }
    }
    assert!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM bidim.chunks WHERE min_time IS NOT NULL"
        ) > 0,
        "the maintenance job measured no chunk"
    );
}

/// The first two numbers of the line of an EXPLAIN ANALYZE of `sql` that holds
/// `label` (`Sealed blocks: x of y`), if it has such a line.
fn explain_pair(c: &mut Client, sql: &str, label: &str) -> Option<(i64, i64)> {
    let plan = text_rows(c, &format!("EXPLAIN (ANALYZE, COSTS OFF) {sql}"));
    let line = plan.iter().find(|l| l.contains(label))?;
    let nums: Vec<i64> = line
        .split(|ch: char| !ch.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    Some((nums[0], nums[1]))
}

/// The blocks of mapped chunks an EXPLAIN ANALYZE of `sql` says it reads, of the blocks
/// those chunks have (`Sealed blocks: x of y`), if it says so.
fn sealed_blocks(c: &mut Client, sql: &str) -> Option<(i64, i64)> {
    explain_pair(c, sql, "Sealed blocks:")
}

/// Sealed chunks' block-range time maps: a time window reads only the blocks whose
/// ranges hold it, and answers stay those of a heap table through late rows, updates
/// (which move rows out of mapped chunks), deletes, new measurements and parallel
/// plans; a REPEATABLE READ transaction keeps its answers across an update and a new
/// measurement.
#[test]
fn block_maps_read_only_the_window() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    // 50 series a minute for 20 hours, about 130 bytes a row: chunks of 20,000 rows
    // take some 330 blocks (about 40 ranges); late rows among them.
    c.batch_execute(
        "CREATE EXTENSION bidim;
         SET timezone = 'UTC';
         CREATE TABLE b (series_id int, ts timestamptz NOT NULL, value float8, pad text) USING bidim;
         SELECT bidim.configure('b', hot_chunk_rows => 20000, partition_interval => '1 day');
         CREATE TABLE h (series_id int, ts timestamptz NOT NULL, value float8, pad text);
         INSERT INTO b SELECT s, timestamptz '2026-03-01' + t * interval '1 minute', s * 10000 + t, repeat('x', 80)
           FROM generate_series(0, 599) t, generate_series(1, 50) s ORDER BY t, s;
         INSERT INTO b SELECT g % 50, timestamptz '2026-03-01' + (g * 7919 % 600) * interval '1 minute' + interval '7 seconds', -g, 'late'
           FROM generate_series(1, 100) g;
         INSERT INTO b SELECT s, timestamptz '2026-03-01' + t * interval '1 minute', s * 10000 + t, repeat('x', 80)
           FROM generate_series(600, 1199) t, generate_series(1, 50) s ORDER BY t, s;
         INSERT INTO b SELECT g % 50, timestamptz '2026-03-01' + (g * 7919 % 1200) * interval '1 minute' + interval '11 seconds', -g, 'later'
           FROM generate_series(101, 200) g;
         INSERT INTO h SELECT * FROM b;
         SELECT bidim.seal('b');",
    )
    .unwrap();
    c.batch_execute("SELECT bidim._maintain(); SELECT bidim._maintain(); ANALYZE b; ANALYZE h")
        .unwrap();
    assert!(one_i64(&mut c, "SELECT count(block_times) FROM bidim.chunk") >= 3);
    // One hour reads a small part of the mapped chunks' blocks (serial plan).
    c.batch_execute("SET max_parallel_workers_per_gather = 0")
        .unwrap();
    let hour = "SELECT count(*), sum(value) FROM b WHERE ts >= '2026-03-01 10:00' AND ts < '2026-03-01 11:00'";
    let (read, total) = sealed_blocks(&mut c, hour).expect("EXPLAIN shows sealed blocks");
    assert!(
        read * 4 < total,
        "an hour of 20 read {read} of {total} blocks"
    );
    same(&mut c, "SELECT count(*), sum(value) FROM {t} WHERE ts >= '2026-03-01 10:00' AND ts < '2026-03-01 11:00'", false);
    // The newest minutes before a time read a few block ranges, not every block.
    let newest = "SELECT date_trunc('minute', ts), max(value) FROM b WHERE ts < '2026-03-01 12:00' GROUP BY 1 ORDER BY 1 DESC LIMIT 3";
    let (read, total) = explain_pair(&mut c, newest, "Sealed block ranges:")
        .unwrap_or_else(|| panic!("no block ranges read: {newest}"));
    assert!(read * 4 < total, "read {read} of {total} ranges");
    // Before every row, after every row: no block.
    assert_eq!(
        sealed_blocks(&mut c, "SELECT count(*) FROM b WHERE ts < '2026-02-28'").map(|b| b.0),
        None,
        "no chunk overlaps"
    );
    // Default planner settings, a window holding nearly every row: the parallel
    // BidimScan path was once read after add_path had freed its serial original (a
    // crash in the planner).
    c.batch_execute("RESET ALL").unwrap();
    for batch in ["off", "on"] {
        c.batch_execute(&format!("SET bidim.enable_batch_aggregation = {batch}"))
            .unwrap();
        same(
            &mut c,
            "SELECT count(*), sum(value) FROM {t} WHERE ts >= timestamptz '2026-03-01 00:13'",
            false,
        );
    }
    c.batch_execute("RESET ALL; SET max_parallel_workers_per_gather = 0")
        .unwrap();
    let mut rng = Rng(0xb10c_0a95);
    for round in 0..5 {
        for _ in 0..30 {
            let from = rng.below(1260) as i64 - 30;
            let len = 1 + rng.below(300);
            let w = format!(
                "ts >= timestamptz '2026-03-01' + interval '{from} minutes' AND ts < timestamptz '2026-03-01' + interval '{} minutes'",
                from + len as i64
            );
            let at = format!("timestamptz '2026-03-01' + interval '{from} minutes'");
            match rng.below(7) {
                // No window: a parallel scan shares the mapped chunks piece by piece.
                5 => same(
                    &mut c,
                    &format!("SELECT * FROM {{t}} WHERE value < {}", len as i64 - 150),
                    false,
                ),
                6 => same(
                    &mut c,
                    "SELECT series_id, count(*), sum(value), max(ts) FROM {t} GROUP BY 1",
                    false,
                ),
                // Time-ordered aggregates (BidimAgg reads mapped block ranges by their
                // times and stops early): newest or oldest groups first.
                3 => same(
                    &mut c,
                    &format!("SELECT date_trunc('minute', ts) m, max(value), count(*) FROM {{t}} WHERE ts < {at} GROUP BY 1 ORDER BY 1 DESC LIMIT {}", 1 + len % 7),
                    true,
                ),
                4 => same(
                    &mut c,
                    &format!("SELECT date_trunc('hour', ts) m, min(value), sum(value), count(*) FROM {{t}} WHERE ts >= {at} GROUP BY 1 ORDER BY 1 LIMIT {}", 1 + len % 4),
                    true,
                ),
                0 => same(&mut c, &format!("SELECT * FROM {{t}} WHERE {w}"), false),
                1 => same(
                    &mut c,
                    &format!(
                        "SELECT series_id, count(*), sum(value) FROM {{t}} WHERE {w} GROUP BY 1"
                    ),
                    false,
                ),
                _ => same(
                    &mut c,
                    &format!(
                        "SELECT count(*), min(ts), max(ts) FROM {{t}} WHERE {w} AND value < 0"
                    ),
                    false,
                ),
            }
        }
        // Updates that keep a row's time in its chunk's bounds, move it by minutes or
        // hours, deletes, more late rows; then seal and measure again.
        let a = rng.below(50);
        let changes = [
            format!("UPDATE {{t}} SET ts = ts + interval '20 seconds' WHERE series_id = {a} AND ts < timestamptz '2026-03-01 05:00'"),
            format!("UPDATE {{t}} SET ts = ts + interval '{} minutes', value = -value WHERE series_id = {} AND value > 0 AND ts >= timestamptz '2026-03-01 12:00'", 1 + rng.below(400), (a + 1) % 50),
            format!("DELETE FROM {{t}} WHERE series_id = {} AND ts < timestamptz '2026-03-01 08:00'", (a + 2) % 50),
            "INSERT INTO {t} SELECT g % 50, timestamptz '2026-03-01' + (g * 31 % 1200) * interval '1 minute' + interval '3 seconds', -1000 - g, 'round' FROM generate_series(1, 50) g".to_string(),
        ];
        for sql in &changes {
            for t in ["b", "h"] {
                c.batch_execute(&sql.replace("{t}", t))
                    .unwrap_or_else(|e| panic!("round {round}: {sql}: {e}"));
            }
        }
        c.batch_execute(
            "SELECT bidim.seal('b'); SELECT bidim._maintain(); SELECT bidim._maintain(); ANALYZE b",
        )
        .unwrap();
        if round % 2 == 1 {
            c.batch_execute("SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2").unwrap();
        } else {
            c.batch_execute("RESET ALL; SET max_parallel_workers_per_gather = 0")
                .unwrap();
        }
    }
    // A REPEATABLE READ reader keeps its rows across an update of mapped rows and a new
    // measurement.
    let mut r = cluster.connect().unwrap();
    let q = "SELECT count(*), sum(value) FROM b WHERE ts >= '2026-03-01 02:00' AND ts < '2026-03-01 03:00'";
    r.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .unwrap();
    let before: (i64, f64) = {
        let row = r.query_one(q, &[]).unwrap();
        (row.get(0), row.get(1))
    };
    c.batch_execute(
        "RESET ALL;
         UPDATE b SET ts = ts + interval '9 hours', value = value + 1 WHERE ts >= '2026-03-01 02:00' AND ts < '2026-03-01 02:30';
         SELECT bidim.seal('b'); SELECT bidim._maintain(); SELECT bidim._maintain();",
    )
    .unwrap();
    let after: (i64, f64) = {
        let row = r.query_one(q, &[]).unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(before, after, "a REPEATABLE READ reader's rows changed");
    r.batch_execute("COMMIT").unwrap();
    let now: i64 = one_i64(&mut c, &q.replace("count(*), sum(value)", "count(*)"));
    assert!(now < before.0, "the update moved rows out of the window");
}

/// Tail probes: a newest-first (oldest-first) read of one key in a sealed chunk reads
/// a thin slice of the chunk's measured span first, then the rest. Answers equal a
/// heap table's for every limit (within the slice, across it, the whole series), for
/// series that report until the end, series that stopped early (their slices are
/// empty: the probes widen, then stop), timestamps many rows share, and time bounds
/// inside and across the slices; EXPLAIN ANALYZE counts the probes and their misses.
#[test]
fn tail_probes_match_heap() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = bidim_and_heap(
        &cluster,
        "int4",
        "hot_chunk_rows => 20000, partition_interval => '1 day'",
    );
    c.batch_execute(
        "-- 1-50 report every 10 s for 12 h; 51-90 only in the first hour; 91 five rows
         -- a timestamp, every 10 s.
         INSERT INTO b SELECT s, timestamptz '2026-03-01' + t * interval '10 seconds', s * 100000 + t
           FROM generate_series(0, 4319) t, generate_series(1, 50) s ORDER BY t, s;
         INSERT INTO b SELECT s, timestamptz '2026-03-01' + t * interval '10 seconds', -s * 100000 - t
           FROM generate_series(0, 359) t, generate_series(51, 90) s;
         INSERT INTO b SELECT 91, timestamptz '2026-03-01' + t * interval '10 seconds', d * 10000 + t
           FROM generate_series(0, 4319) t, generate_series(1, 5) d;
         INSERT INTO h SELECT * FROM b;",
    )
    .unwrap();
    seal_and_measure(&mut c);
    c.batch_execute("SET enable_hashjoin = off; SET enable_mergejoin = off")
        .unwrap();
    assert!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM bidim.chunks WHERE rel = 'b'::regclass AND min_time IS NOT NULL"
        ) > 5,
        "too few measured chunks"
    );
    let bounds = [
        "",
        " AND ts >= timestamptz '2026-03-01 11:59:30'",
        " AND ts < timestamptz '2026-03-01 11:59:55'",
        " AND ts >= timestamptz '2026-03-01 03:00' AND ts < timestamptz '2026-03-01 07:12:05'",
        " AND ts < timestamptz '2026-03-01 00:00:25'",
    ];
    for w in bounds {
        for n in [1, 2, 40, 100000] {
            for dir in ["DESC", ""] {
                same(
                    &mut c,
                    &format!(
                        "SELECT k, l.ts, l.value FROM generate_series(0, 92) k CROSS JOIN LATERAL
                           (SELECT ts, value FROM {{t}} p WHERE p.series_id = k{w} ORDER BY ts {dir}, value LIMIT {n}) l"
                    ),
                    false,
                );
                same(
                    &mut c,
                    &format!("SELECT ts, value FROM {{t}} WHERE series_id = 91{w} ORDER BY ts {dir}, value LIMIT {n}"),
                    true,
                );
            }
        }
    }
    // Series that report until the end find their newest row in the slice.
    let (probes, missed) = explain_pair(
        &mut c,
        "SELECT * FROM generate_series(1, 50) k CROSS JOIN LATERAL
           (SELECT ts FROM b p WHERE p.series_id = k ORDER BY ts DESC LIMIT 1) l",
        "Tail probes:",
    )
    .expect("no tail probes");
    assert!(
        probes >= 50 && missed == 0,
        "{probes} probes, {missed} missed"
    );
    // Series that stopped early miss in every slice: the probes widen, then stop.
    let (probes, missed) = explain_pair(
        &mut c,
        "SELECT * FROM generate_series(51, 90) k CROSS JOIN LATERAL
           (SELECT ts FROM b p WHERE p.series_id = k ORDER BY ts DESC LIMIT 1) l",
        "Tail probes:",
    )
    .expect("no tail probes");
    assert!(
        missed > 8 && probes <= 40,
        "{probes} probes, {missed} missed"
    );
}

/// Newest first without a lower time bound on a table of many partitions: the scan
/// reads from the newest partition's start on first (a few directory rows), and the
/// older partitions only when that runs out. Answers equal a heap table's for series
/// that report until now, series that stopped long ago, a series only in the newest
/// partition, limits within and across the split, an upper bound, rescans (LATERAL,
/// and a prepared statement's generic plan), and after new partitions appear.
#[test]
fn newest_partition_first_matches_heap() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = bidim_and_heap(
        &cluster,
        "int8",
        "hot_chunk_rows => 3000, partition_interval => '1 hour'",
    );
    c.batch_execute(
        "-- 1-10 every minute for 100 hours; 11-15 only in the first 30; 16 only in the
         -- last hour; 17 once an hour.
         INSERT INTO b SELECT s, timestamptz '2026-03-01' + t * interval '1 minute', s * 100000 + t
           FROM generate_series(0, 5999) t, generate_series(1, 10) s ORDER BY t, s;
         INSERT INTO b SELECT s, timestamptz '2026-03-01' + t * interval '1 minute', -s * 100000 - t
           FROM generate_series(0, 1799) t, generate_series(11, 15) s;
         INSERT INTO b SELECT 16, timestamptz '2026-03-01' + t * interval '1 minute', t FROM generate_series(5940, 5999) t;
         INSERT INTO b SELECT 17, timestamptz '2026-03-01' + t * interval '1 hour' + interval '7 minutes', t FROM generate_series(0, 99) t;
         INSERT INTO h SELECT * FROM b;",
    )
    .unwrap();
    seal_and_measure(&mut c);
    assert!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM bidim.chunks WHERE rel = 'b'::regclass"
        ) >= 100
    );
    let bounds = [
        "",
        " AND ts < timestamptz '2026-03-05 03:30'",
        " AND ts < timestamptz '2026-03-02'",
        " AND ts <= timestamptz '2026-03-05 03:00'",
    ];
    for round in 0..2 {
        for w in bounds {
            for n in [1, 2, 70, 100000] {
                same(
                    &mut c,
                    &format!(
                        "SELECT k, l.ts, l.value FROM generate_series(0, 18) k CROSS JOIN LATERAL
                           (SELECT ts, value FROM {{t}} p WHERE p.series_id = k{w} ORDER BY ts DESC, value LIMIT {n}) l"
                    ),
                    false,
                );
                for k in [1, 12, 16, 17] {
                    same(
                        &mut c,
                        &format!("SELECT ts, value FROM {{t}} WHERE series_id = {k}{w} ORDER BY ts DESC, value LIMIT {n}"),
                        true,
                    );
                }
            }
        }
        // A prepared statement's generic plan, run for series in and out of the newest
        // partition in turn.
        c.batch_execute("SET plan_cache_mode = force_generic_plan")
            .unwrap();
        let mut answers = Vec::new();
        for t in ["b", "h"] {
            let last = prepare_last(&mut c, t);
            let mut rows = Vec::new();
            for (k, n) in [
                (1i64, 1i32),
                (12, 1),
                (16, 70),
                (13, 3),
                (17, 2),
                (99, 1),
                (2, 61),
            ] {
                rows.push(last_rows(&mut c, &last, k, n));
            }
            answers.push(rows);
        }
        assert_eq!(
            answers[0], answers[1],
            "generic plans differ (round {round})"
        );
        c.batch_execute("RESET plan_cache_mode").unwrap();
        // New partitions after the planning cache was filled: rows newer than the
        // split the cache names.
        for t in ["b", "h"] {
            c.batch_execute(&format!(
                "INSERT INTO {t} SELECT s, timestamptz '2026-03-05 04:00' + t * interval '1 minute', s * 1000 + t
                   FROM generate_series(0, 89) t, generate_series(1, 3) s"
            ))
            .unwrap();
        }
    }
    // Series that still report are read from the newest partition on; series that
    // stopped go on to the older partitions.
    let plan = text_rows(&mut c, "EXPLAIN (ANALYZE, COSTS OFF) SELECT ts FROM b WHERE series_id = 12 ORDER BY ts DESC LIMIT 1");
    assert!(
        plan.iter()
            .any(|l| l.contains("Newest partition first: 0 of 1 starts")),
        "{plan:#?}"
    );
    let (stayed, starts) = explain_pair(
        &mut c,
        "SELECT ts FROM b WHERE series_id = 3 ORDER BY ts DESC LIMIT 1",
        "Newest partition first:",
    )
    .expect("no split read");
    assert_eq!((stayed, starts), (1, 1));
    let (read, _) = explain_pair(
        &mut c,
        "SELECT ts FROM b WHERE series_id = 3 ORDER BY ts DESC LIMIT 1",
        "Chunks:",
    )
    .unwrap();
    assert!(read <= 3, "{read} chunks read for the newest row");
}

/// Time-ordered reads after the partition width changed: partitions made with the old
/// width overlap the new ones, and their chunks are merged as one unit. Answers equal a
/// heap table's in both directions, for every limit, with a long directory (the
/// newest-first read splits) and a short one.
#[test]
fn ordered_reads_across_changed_widths_match_heap() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = bidim_and_heap(&cluster, "int4", "partition_interval => '1 day'");
    for days in [20, 80] {
        c.batch_execute(&format!(
            "TRUNCATE b; TRUNCATE h;
             SELECT bidim.configure('b', partition_interval => '1 day');
             INSERT INTO b SELECT 1 + i % 2, timestamptz '2026-01-01' + i * interval '1 hour', i
               FROM generate_series(0, 24 * {days}) i;
             SELECT bidim.configure('b', partition_interval => '1 hour');
             INSERT INTO b SELECT 1 + i % 2, timestamptz '2026-01-01' + interval '{days} days' - i * interval '37 minutes', -i
               FROM generate_series(1, 60) i;
             SELECT bidim.configure('b', partition_interval => '1 day');
             INSERT INTO b SELECT 1 + i % 2, timestamptz '2026-01-01' + interval '{days} days' - i * interval '5 hours' + interval '3 minutes', -1000 - i
               FROM generate_series(1, 20) i;
             INSERT INTO h SELECT * FROM b;
             ANALYZE b; ANALYZE h;
             SET enable_sort = off;"
        ))
        .unwrap();
        let plan = text_rows(
            &mut c,
            "EXPLAIN (COSTS OFF) SELECT ts FROM b WHERE series_id = 1 ORDER BY ts DESC LIMIT 3",
        );
        assert!(plan.iter().any(|l| l.contains("newest first")), "{plan:#?}");
        for n in [1, 2, 3, 10, 40, 100000] {
            for dir in ["DESC", ""] {
                for k in [1, 2] {
                    same(
                        &mut c,
                        &format!("SELECT ts, value FROM {{t}} WHERE series_id = {k} ORDER BY ts {dir}, value LIMIT {n}"),
                        true,
                    );
                }
                same(
                    &mut c,
                    &format!(
                        "SELECT k, l.ts, l.value FROM generate_series(0, 3) k CROSS JOIN LATERAL
                           (SELECT ts, value FROM {{t}} p WHERE p.series_id = k ORDER BY ts {dir}, value LIMIT {n}) l"
                    ),
                    false,
                );
            }
        }
        c.batch_execute("RESET enable_sort").unwrap();
    }
}
