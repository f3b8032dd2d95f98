//! The bidim table access method against real servers: an oracle (the same workload on
//! a heap table), MVCC, concurrency, crashes, pg_dump/restore and plans.

use bidim_tests::{crash_ingest, difference, one_i64, Client, Cluster, Rng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

fn create_pair(c: &mut Client, rows: i64, interval: &str) {
    c.batch_execute(&format!(
        "CREATE EXTENSION IF NOT EXISTS bidim;
         DROP TABLE IF EXISTS b, h;
         CREATE TABLE b (series_id bigint, ts timestamptz, value float8, note text) USING bidim;
         SELECT bidim.configure('b', hot_chunk_rows => {rows}, partition_interval => '{interval}');
         CREATE TABLE h (series_id bigint, ts timestamptz, value float8, note text);"
    ))
    .unwrap();
}

#[test]
fn oracle_random_workload_matches_heap() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    create_pair(&mut c, 300, "1 hour");
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for step in 0..120 {
        let op = rng.below(100);
        let a = rng.below(50) as i64;
        let n = 1 + rng.below(400) as i64;
        let sql = match op {
            0..=34 => format!(
                "INSERT INTO {{t}} SELECT (g * 7 + {a}) % 50, timestamptz '2026-01-01' + ((g * 37 + {a} * 1000) % 36000) * interval '1 second', g + {a}, CASE WHEN g % 5 = 0 THEN 'n' || g END FROM generate_series(1, {n}) g"
            ),
            35..=49 => format!(
                "UPDATE {{t}} SET value = value * 2, note = 'u{step}' WHERE series_id = {a}"
            ),
            50..=59 => format!(
                "UPDATE {{t}} SET ts = ts + interval '{} minutes' WHERE series_id % 10 = {}",
                1 + rng.below(300),
                a % 10
            ),
            60..=74 => format!("DELETE FROM {{t}} WHERE series_id = {a} AND value < {}", n * 2),
            75..=79 => format!("DELETE FROM {{t}} WHERE ts < timestamptz '2026-01-01' + interval '{} minutes'", rng.below(120)),
            80..=84 => "UPDATE {t} SET series_id = series_id + 1 WHERE note IS NOT NULL AND series_id < 10".to_string(),
            85..=87 => "SELECT bidim.seal('b') WHERE '{t}' = 'b'".to_string(),
            88 => "TRUNCATE {t}".to_string(),
            _ => "VACUUM {t}".to_string(),
        };
        for t in ["b", "h"] {
            let stmt = sql.replace("{t}", t);
            c.batch_execute(&stmt)
                .unwrap_or_else(|e| panic!("step {step}: {stmt}: {e}"));
        }
        // COPY goes through multi_insert.
        if op.is_multiple_of(7) {
            let mut data = String::new();
            for i in 0..(n * 3) {
                data.push_str(&format!(
                    "{}\t2026-01-01 {:02}:{:02}:{:02}+00\t{}\t\\N\n",
                    (i * 13 + a) % 50,
                    (i * 7 + a) % 24,
                    i % 60,
                    (i * 11) % 60,
                    i
                ));
            }
            for t in ["b", "h"] {
                let mut w = c
                    .copy_in(&format!("COPY {t} (series_id, ts, value, note) FROM STDIN"))
                    .unwrap();
                std::io::Write::write_all(&mut w, data.as_bytes()).unwrap();
                w.finish().unwrap();
            }
        }
        let d = difference(&mut c, "b", "h");
        assert_eq!(
            d, 0,
            "step {step} ({sql}): bidim and heap differ by {d} rows"
        );
    }
    let chunks = one_i64(&mut c, "SELECT count(*) FROM bidim.chunk");
    let sealed = one_i64(
        &mut c,
        "SELECT count(*) FROM bidim.chunks WHERE state = 'sealed'",
    );
    let rows = one_i64(&mut c, "SELECT count(*) FROM b");
    eprintln!("oracle: {rows} rows in {chunks} chunks, {sealed} sealed");
    assert!(
        sealed > 5,
        "the workload should have sealed chunks, saw {sealed}"
    );
    // The ctid of every row is distinct and fetches that row.
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) - count(DISTINCT ctid) FROM b"),
        0
    );
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM b x WHERE NOT EXISTS (SELECT 1 FROM b y WHERE y.ctid = x.ctid AND y.value IS NOT DISTINCT FROM x.value)"
        ),
        0
    );
}

#[test]
fn repeatable_read_is_stable_across_seals_and_concurrent_inserts() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    create_pair(&mut c, 100, "1 day");
    c.batch_execute("INSERT INTO b SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', g FROM generate_series(1, 1000) g")
        .unwrap();
    let mut rr = cluster.connect().unwrap();
    rr.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .unwrap();
    let before = one_i64(&mut rr, "SELECT count(*) FROM b");
    assert_eq!(before, 1000);
    // Others insert (creating and sealing chunks), seal, delete and commit.
    c.batch_execute("INSERT INTO b SELECT g, '2026-01-02'::timestamptz + g * interval '1 s', g FROM generate_series(1, 1000) g")
        .unwrap();
    c.batch_execute("SELECT bidim.seal('b')").unwrap();
    c.batch_execute("DELETE FROM b WHERE series_id < 100")
        .unwrap();
    c.batch_execute("INSERT INTO b VALUES (1, '2026-01-01', 1)")
        .unwrap();
    assert_eq!(one_i64(&mut rr, "SELECT count(*) FROM b"), before);
    // Its own inserts are visible to it, also into a cell another session created.
    rr.batch_execute("INSERT INTO b VALUES (5, '2026-01-02 00:00:01', 5)")
        .unwrap();
    assert_eq!(one_i64(&mut rr, "SELECT count(*) FROM b"), before + 1);
    rr.batch_execute("COMMIT").unwrap();
    // Both batches had series_id 1..1000, so the DELETE took 2 x 99 rows.
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM b"),
        2000 - 2 * 99 + 1 + 1
    );
    // Uncommitted rows are invisible to others, aborted rows never show.
    let mut w = cluster.connect().unwrap();
    w.batch_execute("BEGIN; INSERT INTO b VALUES (77, '2027-01-01', 1)")
        .unwrap();
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM b WHERE ts >= '2027-01-01'"),
        0
    );
    w.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM b WHERE ts >= '2027-01-01'"),
        0
    );
}

/// 8 writers commit (or abort) small batches while 2 readers count and a sealer seals.
#[test]
fn concurrent_writers_readers_and_seals() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE TABLE b (writer int, batch int, n int, ts timestamptz) USING bidim;
         SELECT bidim.configure('b', key_column => 'writer', hot_chunk_rows => 200, partition_interval => '1 hour');",
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let mut c = cluster.connect().unwrap();
            thread::spawn(move || {
                let mut committed = 0i64;
                for batch in 0..40 {
                    let mut tx = c.transaction().unwrap();
                    tx.execute(
                        "INSERT INTO b SELECT $1, $2, g, timestamptz '2026-01-01' + (($2 * 50 + g) % 240) * interval '1 minute' FROM generate_series(1, 25) g",
                        &[&w, &batch],
                    )
                    .unwrap();
                    if batch % 7 == 3 {
                        tx.rollback().unwrap();
                    } else {
                        tx.commit().unwrap();
                        committed += 25;
                    }
                }
                committed
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let mut c = cluster.connect().unwrap();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    let n: i64 = c.query_one("SELECT count(*) FROM b", &[]).unwrap().get(0);
                    assert_eq!(n % 25, 0, "a reader saw a partial batch: {n}");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let sealer = {
        let mut c = cluster.connect().unwrap();
        let stop = stop.clone();
        thread::spawn(move || {
            let mut seals = 0;
            while !stop.load(Ordering::Relaxed) {
                c.batch_execute("SELECT bidim.seal('b')").unwrap();
                seals += 1;
                thread::sleep(Duration::from_millis(20));
            }
            seals
        })
    };
    let committed: i64 = writers.into_iter().map(|h| h.join().unwrap()).sum();
    stop.store(true, Ordering::Relaxed);
    let reads: i32 = readers.into_iter().map(|h| h.join().unwrap()).sum();
    let seals = sealer.join().unwrap();
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM b"), committed);
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM (SELECT writer, batch, n FROM b GROUP BY 1, 2, 3 HAVING count(*) > 1) d"),
        0,
        "duplicated rows"
    );
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM b WHERE batch % 7 = 3"),
        0,
        "aborted rows visible"
    );
    let chunks = one_i64(&mut c, "SELECT count(*) FROM bidim.chunk");
    eprintln!("concurrency: {committed} rows, {chunks} chunks, {reads} reads, {seals} seals");
}

/// Writers that log every acknowledged commit; after a crash, each batch must be
/// there exactly when its commit was acknowledged (in-flight ones may go either way).
#[test]
fn committed_rows_survive_kill9_during_ingest_and_seal() {
    let mut cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE TABLE b (writer int, batch int, n int, ts timestamptz) USING bidim;
         SELECT bidim.configure('b', key_column => 'writer', hot_chunk_rows => 300, partition_interval => '2 hours');",
    )
    .unwrap();
    drop(c);
    let mut acked: Vec<(i32, i32)> = Vec::new();
    let mut aborted: Vec<(i32, i32)> = Vec::new();
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let writers = crash_ingest(&cluster, round, stop.clone());
        // A session sealing in a loop, so the crash also hits seals and chunk creation.
        let sealer = {
            let mut c = cluster.connect().unwrap();
            let stop = stop.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if c.batch_execute("SELECT bidim.seal('b')").is_err() {
                        break;
                    }
                }
            })
        };
        thread::sleep(Duration::from_millis(1500 + 500 * round as u64));
        cluster.kill9_postmaster().expect("kill -9");
        stop.store(true, Ordering::Relaxed);
        for h in writers {
            for (w, b, ok) in h.join().unwrap() {
                if ok {
                    acked.push((w, b));
                } else {
                    aborted.push((w, b));
                }
            }
        }
        sealer.join().unwrap();
        cluster.restart_after_crash().expect("restart");
        let mut c = cluster.connect().unwrap();
        let present: std::collections::HashSet<(i32, i32)> = c
            .query("SELECT writer, batch, count(*) FROM b GROUP BY 1, 2", &[])
            .unwrap()
            .into_iter()
            .map(|r| {
                let n: i64 = r.get(2);
                let key = (r.get::<_, i32>(0), r.get::<_, i32>(1));
                assert_eq!(n, 50, "batch {key:?} is torn: {n} rows");
                key
            })
            .collect();
        for k in &acked {
            assert!(
                present.contains(k),
                "round {round}: acknowledged batch {k:?} lost"
            );
        }
        for k in &aborted {
            assert!(
                !present.contains(k),
                "round {round}: aborted batch {k:?} visible"
            );
        }
        // The table keeps working after recovery.
        c.batch_execute(
            "INSERT INTO b VALUES (-1, -1, -1, '2026-01-01'); DELETE FROM b WHERE writer = -1",
        )
        .unwrap();
        eprintln!(
            "crash round {round}: {} acknowledged batches survive",
            acked.len()
        );
    }
    assert!(
        acked.len() > 20,
        "too little ingest to mean anything: {}",
        acked.len()
    );
}

#[test]
fn pg_dump_and_restore_give_the_same_rows_once() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute("CREATE DATABASE src").unwrap();
    c.batch_execute("CREATE DATABASE dst").unwrap();
    let mut s = cluster.connect_db("src").unwrap();
    create_pair(&mut s, 500, "6 hours");
    s.batch_execute(
        "INSERT INTO b SELECT g % 100, timestamptz '2026-01-01' + g * interval '13 seconds', g, 'x' || g FROM generate_series(1, 20000) g;
         INSERT INTO h SELECT * FROM b;",
    )
    .unwrap();
    // Cold chunks (some rows changed after the conversion) dump as rows of the table.
    s.batch_execute("SELECT bidim.seal('b')").unwrap();
    s.batch_execute("SELECT bidim.convert('b', older_than => '2026-01-02 12:00')")
        .unwrap();
    s.batch_execute(
        "DELETE FROM b WHERE series_id = 7 AND ts < '2026-01-01 06:00';
         DELETE FROM h WHERE series_id = 7 AND ts < '2026-01-01 06:00';
         UPDATE b SET note = 'changed' WHERE series_id = 8;
         UPDATE h SET note = 'changed' WHERE series_id = 8;",
    )
    .unwrap();
    assert!(
        one_i64(
            &mut s,
            "SELECT count(*) FROM bidim.chunks WHERE state = 'cold'"
        ) > 1
    );
    assert_eq!(difference(&mut s, "b", "h"), 0);
    let rows = one_i64(&mut s, "SELECT count(*) FROM h");
    let dump = cluster.dir.join("dump.sql");
    let out = cluster
        .client_tool("pg_dump")
        .arg("-f")
        .arg(&dump)
        .arg("src")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&dump).unwrap();
    assert!(
        !text.contains("bidim_internal"),
        "chunks must not be dumped"
    );
    let out = cluster
        .client_tool("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .arg("-d")
        .arg("dst")
        .arg("-f")
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut d = cluster.connect_db("dst").unwrap();
    assert_eq!(difference(&mut d, "b", "h"), 0);
    assert_eq!(one_i64(&mut d, "SELECT count(*) FROM b"), rows);
    assert_eq!(
        one_i64(
            &mut d,
            "SELECT hot_chunk_rows FROM bidim.table_config WHERE rel = 'b'::regclass"
        ),
        500,
        "configuration restored"
    );
    assert!(one_i64(&mut d, "SELECT count(*) FROM bidim.chunk") > 1);
}

#[test]
fn large_table_with_parallel_plans_answers_right() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE TABLE b (series_id bigint, ts timestamptz, value float8) USING bidim;
         SELECT bidim.configure('b', hot_chunk_rows => 50000, partition_interval => '1 day');
         INSERT INTO b SELECT g % 1000, timestamptz '2026-01-01' + g * interval '1 second', g FROM generate_series(1, 400000) g;
         ANALYZE b;
         SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;",
    )
    .unwrap();
    // Aggregated by the Aggregate node over a parallel sequential scan (whole chunks
    // would split too coarsely for BidimAgg's participants); then, once the sealed
    // chunks have block-range maps (pieces to share), by BidimAgg's participants.
    for (prepare, node) in [
        ("", "Parallel Seq Scan"),
        (
            "SET bidim.enable_batch_aggregation = off",
            "Parallel Seq Scan",
        ),
        (
            "RESET bidim.enable_batch_aggregation; SELECT bidim.seal('b');
             SELECT bidim._maintain() FROM generate_series(1, 3); ANALYZE b",
            "Parallel Custom Scan (BidimAgg)",
        ),
    ] {
        c.batch_execute(prepare).unwrap();
        let plan: Vec<String> = c
            .query(
                "EXPLAIN (COSTS OFF) SELECT count(*), sum(value) FROM b",
                &[],
            )
            .unwrap()
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            plan.iter().any(|l| l.contains(node)),
            "expected {node}: {plan:?}"
        );
        let row = c
            .query_one("SELECT count(*), sum(value) FROM b", &[])
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 400000);
        assert_eq!(row.get::<_, f64>(1), 400000.0 * 400001.0 / 2.0);
        let groups = one_i64(
            &mut c,
            "SELECT count(*) FROM (SELECT series_id, count(*) FROM b GROUP BY 1 HAVING count(*) <> 400) x",
        );
        assert_eq!(groups, 0);
    }
}

/// 10M rows with the default planner settings (parallel workers allowed): every query
/// answers as on a heap table holding the same rows, whatever plan the planner picks;
/// EXPLAIN shows the plan (parallel scans, pruning by time, index by key). The rows
/// are padded past 1 GiB, where ANALYZE's prefetch once failed on the table's own
/// (empty) file.
#[test]
fn ten_million_rows_answer_like_heap() {
    let cluster = Cluster::builder()
        .setting("shared_buffers", "'512MB'")
        .setting("max_wal_size", "'8GB'")
        .start()
        .expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE TABLE b (series_id bigint, ts timestamptz, value float8, pad char(60)) USING bidim;
         SELECT bidim.configure('b', partition_interval => '1 day');
         CREATE TABLE h (series_id bigint, ts timestamptz, value float8, pad char(60));
         INSERT INTO h SELECT g % 1000, timestamptz '2026-01-01' + (g / 1000) * interval '10 seconds', (g % 997) * 0.5, 'p'
         FROM generate_series(0, 9999999) g;
         INSERT INTO b SELECT * FROM h;
         ANALYZE b; ANALYZE h;",
    )
    .unwrap();
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM b"), 10_000_000);
    assert!(
        one_i64(&mut c, "SELECT bidim.table_size('b')") > 1 << 30,
        "the table must pass 1 GiB"
    );
    let queries = [
        "SELECT count(*), sum(value), min(ts), max(ts) FROM {t}",
        "SELECT series_id, count(*), avg(value) FROM {t} GROUP BY 1 ORDER BY 1",
        "SELECT date_trunc('hour', ts) h, count(*), max(value) FROM {t} WHERE ts >= '2026-01-05' AND ts < '2026-01-06 12:00' GROUP BY 1 ORDER BY 1",
        "SELECT ts, value, pad FROM {t} WHERE series_id = 42 AND ts >= '2026-01-10' AND ts < '2026-01-10 06:00' ORDER BY ts",
        "SELECT count(*) FROM {t} WHERE series_id = 7",
        "SELECT count(*) FROM {t} WHERE value > 400 AND ts < '2026-01-03'",
        "SELECT * FROM {t} ORDER BY ts DESC, series_id LIMIT 5",
    ];
    for q in queries {
        let fp = |t: &str| {
            format!(
                "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM ({}) x",
                q.replace("{t}", t)
            )
        };
        let a: Option<String> = c.query_one(fp("b").as_str(), &[]).unwrap().get(0);
        let h: Option<String> = c.query_one(fp("h").as_str(), &[]).unwrap().get(0);
        assert_eq!(a, h, "bidim and heap disagree on {q}");
    }
    let explain = |c: &mut Client, q: &str| -> String {
        c.query(format!("EXPLAIN (COSTS OFF) {q}").as_str(), &[])
            .unwrap()
            .into_iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let full = explain(&mut c, "SELECT count(*), sum(value) FROM b");
    assert!(
        full.contains("Parallel Custom Scan (BidimAgg) on b")
            || full.contains("Parallel Seq Scan on b"),
        "{full}"
    );
    let by_time = explain(
        &mut c,
        "SELECT count(*) FROM b WHERE ts >= '2026-01-05' AND ts < '2026-01-06'",
    );
    assert!(
        (by_time.contains("Custom Scan (BidimScan) on b")
            || by_time.contains("Custom Scan (BidimAgg) on b"))
            && by_time.contains("Chunks: "),
        "{by_time}"
    );
    let by_key = explain(
        &mut c,
        "SELECT * FROM b WHERE series_id = 42 AND ts >= '2026-01-10' AND ts < '2026-01-10 06:00'",
    );
    assert!(by_key.contains("by (key, time) index"), "{by_key}");
    eprintln!("plans:\n{full}\n{by_time}\n{by_key}");
}

/// Retention with readers around and a crash right after: a reader that already read
/// the partitions keeps its consistent answer (the drop waits for it); one whose
/// snapshot predates the drop but reads after it gets a clear error; a kill -9 just
/// after the drop commits loses nothing that should stay.
#[test]
fn drop_before_with_readers_and_a_crash() {
    let mut cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE TABLE b (series_id bigint, ts timestamptz, value float8) USING bidim;
         SELECT bidim.configure('b', hot_chunk_rows => 2000, partition_interval => '1 hour');
         INSERT INTO b SELECT g % 10, timestamptz '2026-01-01' + g * interval '3 seconds', g FROM generate_series(0, 11999) g;",
    )
    .unwrap();
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM bidim.time_partitions"),
        10
    );

    // A REPEATABLE READ reader that has read everything.
    let mut rr = cluster.connect().unwrap();
    rr.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .unwrap();
    assert_eq!(one_i64(&mut rr, "SELECT count(*) FROM b"), 12000);
    let dropper = {
        let mut d = cluster.connect().unwrap();
        thread::spawn(move || -> i64 {
            d.query_one("SELECT bidim.drop_before('b', '2026-01-01 05:00')", &[])
                .unwrap()
                .get(0)
        })
    };
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        one_i64(&mut rr, "SELECT count(*) FROM b"),
        12000,
        "the reader's answer must not change"
    );
    rr.batch_execute("COMMIT").unwrap();
    assert_eq!(dropper.join().unwrap(), 5);
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM b"), 6000);

    // A reader whose snapshot predates the drop but reads after it.
    let mut late = cluster.connect().unwrap();
    late.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .unwrap();
    assert_eq!(
        one_i64(&mut c, "SELECT bidim.drop_before('b', '2026-01-01 07:00')"),
        2
    );
    let err = late.query_one("SELECT count(*) FROM b", &[]).unwrap_err();
    let msg = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(
        msg.contains("was dropped while this query was reading it"),
        "{msg}"
    );
    drop(late);

    // Crash right after a committed drop.
    assert_eq!(
        one_i64(&mut c, "SELECT bidim.drop_before('b', '2026-01-01 08:00')"),
        1
    );
    drop(c);
    cluster.kill9_postmaster().unwrap();
    cluster.restart_after_crash().unwrap();
    let mut c = cluster.connect().unwrap();
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM b"), 2400);
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM b WHERE ts < '2026-01-01 08:00'"
        ),
        0
    );
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM bidim.time_partitions"),
        2
    );
}
