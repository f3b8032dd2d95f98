//! Cold chunks against real servers: a heap oracle with conversions mixed into a random
//! workload, and kill -9 of the postmaster while chunks convert under ingest.

use bidim_tests::{crash_ingest, difference, one_i64, Cluster, Rng};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Random inserts, COPY, seals, conversions, UPDATEs (in place and across cells),
/// DELETEs, MERGEs and row locks on a bidim table and a heap table with every kind of
/// column; changes reach hot and cold rows alike (a statement moves the cold batches
/// it may change back to hot chunks). After every step the two tables hold the same
/// rows, and keyed, time-ranged and newest-first queries give the same answers.
#[test]
fn oracle_workload_with_conversions_matches_heap() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE TABLE b (series_id bigint, ts timestamptz, value float8, note text, n int,
                         flag bool, tags jsonb, arr int[]) USING bidim;
         SELECT bidim.configure('b', hot_chunk_rows => 300, partition_interval => '1 hour');
         CREATE TABLE h (LIKE b);",
    )
    .unwrap();
    let mut rng = Rng(0x51ed_270b_b1d3_44a7);
    let mut converted = 0;
    for step in 0..90 {
        let op = rng.below(100);
        let a = rng.below(50) as i64;
        let n = 1 + rng.below(400) as i64;
        let sql = match op {
            0..=39 => format!(
                "INSERT INTO {{t}} SELECT (g * 7 + {a}) % 50,
                        timestamptz '2026-01-01' + ((g * 37 + {a} * 1000) % 36000) * interval '1 second',
                        CASE g % 23 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN '-0'::float8 WHEN 2 THEN NULL ELSE (g + {a}) / 3.0 END,
                        CASE WHEN g % 5 = 0 THEN 'n' || (g % 3) WHEN g % 5 = 1 THEN '' END,
                        CASE WHEN g % 9 <> 0 THEN g * {a} END, g % 2 = 0,
                        jsonb_build_object('a', {a}, 'g', g % 4), ARRAY[g, NULL]
                 FROM generate_series(1, {n}) g"
            ),
            40..=49 => format!(
                "UPDATE {{t}} SET value = value * 2, note = 'u{step}' WHERE series_id = {a} AND ts >= '2026-01-01 0{}:00'",
                rng.below(8)
            ),
            50..=57 => format!(
                "UPDATE {{t}} SET ts = ts + interval '{} minutes' WHERE series_id % 10 = {} AND ts >= '2026-01-01 0{}:00'",
                1 + rng.below(300),
                a % 10,
                rng.below(8)
            ),
            58..=65 => format!(
                "DELETE FROM {{t}} WHERE series_id = {a} AND n < {} AND ts < '2026-01-01 0{}:00'",
                n * 20,
                1 + rng.below(9)
            ),
            66..=67 => format!(
                "DELETE FROM {{t}} WHERE series_id IN (SELECT {a} + g FROM generate_series(0, 2) g) AND n % 7 = 1"
            ),
            68..=69 => format!(
                "MERGE INTO {{t}} USING (SELECT {a}::bigint AS id) s ON {{t}}.series_id = s.id AND {{t}}.ts < '2026-01-01 03:00'
                 WHEN MATCHED AND {{t}}.n % 2 = 0 THEN DELETE WHEN MATCHED THEN UPDATE SET n = -{{t}}.n"
            ),
            70..=75 => "SELECT bidim.seal('b') WHERE '{t}' = 'b'".to_string(),
            76..=79 => format!(
                "SELECT count(*) FROM (SELECT * FROM {{t}} WHERE series_id = {a} AND ts < '2026-01-01 04:00' FOR UPDATE) x"
            ),
            80..=86 => {
                "SELECT bidim.convert('b', older_than => '2026-01-01 05:00') WHERE '{t}' = 'b'"
                    .to_string()
            }
            87..=92 => "SELECT bidim.convert('b') WHERE '{t}' = 'b'".to_string(),
            _ => "VACUUM {t}".to_string(),
        };
        for t in ["b", "h"] {
            let stmt = sql.replace("{t}", t);
            c.batch_execute(&stmt)
                .unwrap_or_else(|e| panic!("step {step}: {stmt}: {e}"));
        }
        if op.is_multiple_of(6) {
            let mut data = String::new();
            for i in 0..(n * 3) {
                data.push_str(&format!(
                    "{}\t2026-01-01 {:02}:{:02}:{:02}+00\t{}\t\\N\t{i}\tt\t{{}}\t{{1}}\n",
                    (i * 13 + a) % 50,
                    (i * 7 + a) % 10,
                    i % 60,
                    (i * 11) % 60,
                    i
                ));
            }
            for t in ["b", "h"] {
                let mut w = c.copy_in(&format!("COPY {t} FROM STDIN")).unwrap();
                std::io::Write::write_all(&mut w, data.as_bytes()).unwrap();
                w.finish().unwrap();
            }
        }
        let d = difference(&mut c, "b", "h");
        assert_eq!(
            d, 0,
            "step {step} ({sql}): bidim and heap differ by {d} rows"
        );
        converted = one_i64(
            &mut c,
            "SELECT count(*) FROM bidim.chunks WHERE state = 'cold'",
        );
        for q in [
            format!("SELECT count(*), sum(n), count(note) FROM {{t}} WHERE series_id = {a}"),
            format!("SELECT count(*), sum(n) FROM {{t}} WHERE series_id IN ({a}, {}, 77) AND ts < '2026-01-01 04:30'", (a + 3) % 50),
            "SELECT count(*), sum(n) FROM {t} WHERE ts >= '2026-01-01 02:10' AND ts < '2026-01-01 03:20'".to_string(),
            format!("SELECT count(*), sum(n) FROM {{t}} WHERE n > {} AND value <= {}", a * 97, 10 + a),
            format!("SELECT string_agg(ts::text || coalesce(n::text, '-'), ',') FROM (SELECT ts, n FROM {{t}} WHERE series_id = {a} ORDER BY ts DESC, n LIMIT 5) x"),
        ] {
            let ans: Vec<String> = ["b", "h"]
                .iter()
                .map(|t| {
                    let row = c.query_one(&format!("SELECT x::text FROM ({}) x", q.replace("{t}", t)), &[]).unwrap();
                    row.get::<_, String>(0)
                })
                .collect();
            assert_eq!(ans[0], ans[1], "step {step}: {q}");
        }
    }
    let rows = one_i64(&mut c, "SELECT count(*) FROM b");
    eprintln!("cold oracle: {rows} rows, {converted} cold chunks");
    assert!(
        converted > 3,
        "the workload should have converted chunks, saw {converted}"
    );
    // Every ctid is distinct and fetches its row, cold rows included.
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) - count(DISTINCT ctid) FROM b"),
        0
    );
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM (SELECT ctid, n FROM b WHERE ts < '2026-01-01 05:00' LIMIT 200) x
             WHERE NOT EXISTS (SELECT 1 FROM b y WHERE y.ctid = x.ctid AND y.n IS NOT DISTINCT FROM x.n)"
        ),
        0
    );
}

/// kill -9 of the postmaster while a session converts in a loop (and seals now and
/// then) and four writers commit (and roll back) batches: after each of 3 recoveries every
/// acknowledged batch is there exactly once and no rolled-back one is.
#[test]
fn committed_rows_survive_kill9_during_conversion() {
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
    let mut conversions = 0;
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let writers = crash_ingest(&cluster, round, stop.clone());
        let converted = Arc::new(AtomicI64::new(0));
        let converter = {
            let mut c = cluster.connect().unwrap();
            let stop = stop.clone();
            let converted = converted.clone();
            thread::spawn(move || {
                // Writers seal their chunks as they fill them; a seal of everything
                // now and then, in its own transaction.
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    if i % 10 == 0 && c.batch_execute("SELECT bidim.seal('b')").is_err() {
                        break;
                    }
                    match c.query_one("SELECT bidim.convert('b')", &[]) {
                        Ok(r) => {
                            converted.fetch_add(r.get::<_, i64>(0), Ordering::Relaxed);
                        }
                        Err(_) => break, // the server went away
                    }
                }
            })
        };
        // Kill while conversions are under way: after some have committed.
        thread::sleep(Duration::from_millis(1500 + 700 * round as u64));
        for _ in 0..200 {
            if converted.load(Ordering::Relaxed) > 0 {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        conversions += converted.load(Ordering::Relaxed);
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
        converter.join().unwrap();
        cluster.restart_after_crash().expect("restart");
        let mut c = cluster.connect().unwrap();
        let present: std::collections::HashSet<(i32, i32)> = c
            .query("SELECT writer, batch, count(*) FROM b GROUP BY 1, 2", &[])
            .unwrap()
            .into_iter()
            .map(|r| {
                let n: i64 = r.get(2);
                let key = (r.get::<_, i32>(0), r.get::<_, i32>(1));
                assert_eq!(
                    n, 50,
                    "batch {key:?} has {n} rows, not 50 (lost or duplicated)"
                );
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
        // Converting after recovery works and keeps every row.
        let before = one_i64(&mut c, "SELECT count(*) FROM b");
        c.batch_execute("SELECT bidim.seal('b'); SELECT bidim.convert('b')")
            .unwrap();
        assert_eq!(one_i64(&mut c, "SELECT count(*) FROM b"), before);
        let cold = one_i64(
            &mut c,
            "SELECT count(*) FROM bidim.chunks WHERE state = 'cold'",
        );
        eprintln!(
            "conversion crash round {round}: {} acknowledged batches survive, {cold} cold chunks",
            acked.len()
        );
    }
    assert!(acked.len() > 20, "too little ingest: {}", acked.len());
    assert!(
        conversions > 0,
        "the crash rounds should have converted chunks"
    );
}

/// kill -9 of the postmaster while sessions change cold rows (each transaction adds 1
/// to every row of one key, moving its batches back to hot chunks, and logs that in a
/// heap ledger in the same transaction) and another converts the moved rows again:
/// after each of 3 recoveries no row is lost or duplicated, and every key's rows carry
/// exactly the increments its committed transactions logged.
#[test]
fn cold_row_changes_survive_kill9() {
    let mut cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE TABLE b (k int, ts timestamptz, v int) USING bidim;
         SELECT bidim.configure('b', hot_chunk_rows => 500, partition_interval => '1 hour');
         CREATE TABLE ledger (k int);
         INSERT INTO b SELECT g % 20, timestamptz '2026-01-01' + g * interval '3 seconds', 0
         FROM generate_series(1, 6000) g;
         SELECT bidim.seal('b');",
    )
    .unwrap();
    c.batch_execute("SELECT bidim.convert('b')").unwrap();
    let total = one_i64(&mut c, "SELECT count(*) FROM b");
    drop(c);
    let mut changes = 0;
    for round in 0..3u64 {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicI64::new(0));
        let mut threads = Vec::new();
        for w in 0..2u64 {
            let mut c = cluster.connect().unwrap();
            let (stop, committed) = (stop.clone(), committed.clone());
            threads.push(thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9 + round * 7 + w);
                while !stop.load(Ordering::Relaxed) {
                    let k = rng.below(20);
                    let r = c.batch_execute(&format!(
                        "BEGIN; UPDATE b SET v = v + 1 WHERE k = {k}; INSERT INTO ledger VALUES ({k}); COMMIT;"
                    ));
                    match r {
                        Ok(()) => {
                            committed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if e.as_db_error().is_some() && !c.is_closed() => {
                            // a serialization failure or deadlock: roll back, go on
                            let _ = c.batch_execute("ROLLBACK");
                        }
                        Err(_) => break, // the server went away
                    }
                }
            }));
        }
        {
            let mut c = cluster.connect().unwrap();
            let stop = stop.clone();
            threads.push(thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if c.batch_execute("SELECT bidim.seal('b'); SELECT bidim.convert('b');")
                        .is_err()
                        && c.is_closed()
                    {
                        break;
                    }
                    thread::sleep(Duration::from_millis(50));
                }
            }));
        }
        thread::sleep(Duration::from_millis(1500 + 500 * round));
        for _ in 0..100 {
            if committed.load(Ordering::Relaxed) > 2 {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        cluster.kill9_postmaster().expect("kill -9");
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        changes += committed.load(Ordering::Relaxed);
        cluster.restart_after_crash().expect("restart");
        let mut c = cluster.connect().unwrap();
        assert_eq!(
            one_i64(&mut c, "SELECT count(*) FROM b"),
            total,
            "round {round}: rows lost or duplicated"
        );
        let wrong = one_i64(
            &mut c,
            "SELECT count(*) FROM b LEFT JOIN (SELECT k, count(*) AS n FROM ledger GROUP BY k) l USING (k)
             WHERE b.v <> coalesce(l.n, 0)",
        );
        assert_eq!(
            wrong, 0,
            "round {round}: {wrong} rows do not carry their key's committed increments"
        );
        let cold = one_i64(
            &mut c,
            "SELECT count(*) FROM bidim.chunks WHERE state = 'cold'",
        );
        eprintln!("cold change crash round {round}: {changes} committed changes so far, {cold} cold chunks");
    }
    assert!(changes > 5, "too few committed changes: {changes}");
}

/// A call of `bidim.convert` converts at most `max_locks_per_transaction` chunks (each
/// holds its locks to commit), says with a NOTICE how many it left, and further calls
/// convert the rest with every row kept.
#[test]
fn convert_calls_stay_within_the_lock_budget() {
    let cluster = Cluster::builder()
        .setting("max_locks_per_transaction", "10")
        .start()
        .expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE TABLE b (id int, ts timestamptz, v float8) USING bidim;
         SELECT bidim.configure('b', partition_interval => '1 hour');
         INSERT INTO b SELECT g % 7, timestamptz '2026-01-01' + g * interval '1 minute', g
         FROM generate_series(0, 60 * 25 - 1) g;
         SELECT bidim.seal('b');",
    )
    .unwrap();
    let rows = one_i64(&mut c, "SELECT count(*) FROM b");
    let sealed = one_i64(
        &mut c,
        "SELECT count(*) FROM bidim.chunks WHERE state = 'sealed'",
    );
    assert_eq!(sealed, 25);
    let mut total = 0;
    let mut calls = Vec::new();
    while total < sealed {
        let n = one_i64(&mut c, "SELECT bidim.convert('b')");
        assert!((1..=10).contains(&n), "one call converted {n} chunks");
        total += n;
        calls.push(n);
        assert_eq!(one_i64(&mut c, "SELECT count(*) FROM b"), rows);
    }
    assert_eq!(calls, vec![10, 10, 5]);
    let out = cluster
        .client_tool("psql")
        .args([
            "-X",
            "-d",
            "postgres",
            "-c",
            "INSERT INTO b SELECT 1, timestamptz '2026-01-03' + g * interval '1 hour', g FROM generate_series(0, 11) g",
            "-c",
            "SELECT bidim.seal('b')",
            "-c",
            "SELECT bidim.convert('b')",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.contains("bidim.convert converted 10 chunks of \"public.b\" and left 2 more"),
        "{out}"
    );
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM bidim.chunks WHERE state = 'cold'"
        ),
        35
    );
}

/// Batches up to 4095 rows, cut evenly (a key of 1.5 batches' rows makes two of 0.75),
/// batch rows too big to stay whole (their packed columns split between TOAST and the
/// row), windowed reads that decode a prefix of a batch, cold TIDs with offsets past a
/// heap page's 2048 line pointers, and changes to such rows: every answer equal to a
/// heap table's.
#[test]
fn long_and_wide_batches_match_heap() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE TABLE b (series_id int, ts timestamptz, v float8, w float8, note text, big text)
             USING bidim;
         SELECT bidim.configure('b', hot_chunk_rows => 100000, partition_interval => '7 days');
         CREATE TABLE h (LIKE b);
         SELECT setseed(0.25);
         CREATE TEMP TABLE src AS
         SELECT s AS series_id, timestamptz '2026-01-01' + g * interval '10 seconds' AS ts,
                CASE WHEN g % 97 = 0 THEN NULL ELSE random() END AS v, (g % 50)::float8 AS w,
                CASE WHEN g % 3 = 0 THEN 'n' || (g % 7) END AS note,
                CASE WHEN s = 6 THEN repeat(md5(g::text), 10) END AS big
         FROM (VALUES (1, 1000), (2, 6000), (3, 10000), (4, 4095), (5, 4096), (6, 600)) k(s, n),
              generate_series(1, n) g;
         INSERT INTO b SELECT * FROM src; INSERT INTO h SELECT * FROM src;",
    )
    .unwrap();
    // each its own transaction: a chunk converts once its sealing transaction is past
    c.batch_execute("SELECT bidim.seal('b')").unwrap();
    c.batch_execute("SELECT bidim.convert('b')").unwrap();
    let chunk: String = c
        .query_one(
            "SELECT chunk_rel::regclass::text FROM bidim.chunk WHERE rel = 'b'::regclass AND state = 'cold'",
            &[],
        )
        .unwrap()
        .get(0);
    let sizes = |c: &mut postgres::Client, k: i32| -> Vec<i32> {
        c.query_one(
            &format!("SELECT array_agg(_bidim_rows ORDER BY _bidim_batch) FROM {chunk} WHERE _bidim_key = {k}"),
            &[],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(sizes(&mut c, 1), vec![1000]);
    assert_eq!(sizes(&mut c, 2), vec![3000, 3000]);
    assert_eq!(sizes(&mut c, 3), vec![4095, 2953, 2952]);
    assert_eq!(sizes(&mut c, 4), vec![4095]);
    assert_eq!(sizes(&mut c, 5), vec![2048, 2048]);
    // random floats do not fit a half page: split rows; series 1's 1000 rows do
    assert!(
        one_i64(
            &mut c,
            &format!("SELECT count(*) FROM {chunk} WHERE _bidim_columns_tail IS NOT NULL")
        ) > 0
    );
    let bytes: Vec<i64> = c
        .query_one(
            "SELECT bidim.cold_column_bytes('b', chunk_id) FROM bidim.chunk WHERE rel = 'b'::regclass AND state = 'cold'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(bytes.len(), 6);
    assert!(bytes.iter().all(|&b| b > 0), "{bytes:?}");
    assert!(
        bytes[2] > 8000 * 7,
        "random floats take about 8 bytes: {bytes:?}"
    );
    assert_eq!(difference(&mut c, "b", "h"), 0);
    let mut rng = Rng(0x7f4a_7c15_9e37_79b9);
    for round in 0..60 {
        let a = rng.below(100_000) as i64;
        let len = 1 + rng.below(40_000) as i64;
        let s = 1 + rng.below(6) as i64;
        let window = format!(
            "ts >= timestamptz '2026-01-01' + {a} * interval '1 second' AND ts < timestamptz '2026-01-01' + {} * interval '1 second'",
            a + len
        );
        let queries = [
            format!("SELECT count(*), sum(v), max(note), sum(length(big)) FROM {{t}} WHERE {window}"),
            format!("SELECT count(*), sum(w), min(v) FROM {{t}} WHERE series_id = {s} AND {window}"),
            format!("SELECT string_agg(ts::text || coalesce(v::text, '-'), ',') FROM (SELECT ts, v FROM {{t}} WHERE series_id = {s} AND {window} ORDER BY ts DESC LIMIT 7) x"),
            format!("SELECT string_agg(m::text || ':' || x::text, ',') FROM (SELECT date_trunc('minute', ts) m, max(w) x FROM {{t}} WHERE ts < timestamptz '2026-01-01' + {a} * interval '1 second' GROUP BY 1 ORDER BY 1 DESC LIMIT 4) y"),
            format!("SELECT series_id, count(*), sum(v), max(big) FROM {{t}} WHERE {window} GROUP BY 1 ORDER BY 1"),
        ];
        for q in &queries {
            let ans: Vec<String> = ["b", "h"]
                .iter()
                .map(|t| {
                    c.query(
                        &format!("SELECT x::text FROM ({}) x", q.replace("{t}", t)),
                        &[],
                    )
                    .unwrap_or_else(|e| panic!("round {round}: {q}: {e}"))
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>()
                    .join("|")
                })
                .collect();
            assert_eq!(ans[0], ans[1], "round {round}: {q}");
        }
    }
    // TIDs past offset 2048 fetch their rows
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM (SELECT ctid, ts FROM b WHERE series_id = 3) x
             WHERE (ctid::text::point)[1] > 2048
               AND EXISTS (SELECT 1 FROM b y WHERE y.ctid = x.ctid AND y.ts = x.ts)"
        ),
        4095 - 2048 + 2953 - 2048 + 2952 - 2048
    );
    // changes to rows past offset 2048 of split batch rows, locks, a trigger
    for t in ["b", "h"] {
        c.batch_execute(&format!(
            "UPDATE {t} SET v = -1, big = 'x' WHERE series_id = 3 AND ts = timestamptz '2026-01-01' + 4000 * interval '10 seconds';
             SELECT count(*) FROM (SELECT * FROM {t} WHERE series_id = 4 AND ts > timestamptz '2026-01-01' + 3000 * interval '10 seconds' FOR UPDATE) x;
             DELETE FROM {t} WHERE series_id = 2 AND ts > timestamptz '2026-01-01' + 5990 * interval '10 seconds'"
        ))
        .unwrap();
    }
    assert_eq!(difference(&mut c, "b", "h"), 0);
}
