//! Rollups on real servers: random inserts, late rows, UPDATE and DELETE between
//! refreshes keep the rollup views equal to the same aggregates over raw rows, and a
//! maintenance worker killed (-9) while it materializes loses nothing.

use bidim_tests::{one_i64, process_alive, wait_until, Client, Cluster, Rng};
use std::time::Duration;

/// Rows of the rollup views that differ from the raw oracle (per key, then per
/// bucket): counts, sums (to 1e-9), min, max, first, last, and sketches bin for bin.
fn differences(c: &mut Client, view: &str, width: &str) -> (i64, i64) {
    let oracle = format!(
        "SELECT id, date_bin('{width}', ts, '2000-01-03') AS bucket, count(*) AS rows, count(v) AS v_count,
                sum(v) AS v_sum, min(v) AS v_min, max(v) AS v_max, first(v, ts) AS v_first,
                last(v, ts) AS v_last, ddsketch_agg(v) AS v_sketch
         FROM b GROUP BY 1, 2"
    );
    let same = "(x.v_sketch IS NULL AND o.v_sketch IS NULL) OR (
                    ddsketch_bucket_counts(x.v_sketch) = ddsketch_bucket_counts(o.v_sketch)
                    AND ddsketch_bucket_bounds(x.v_sketch) = ddsketch_bucket_bounds(o.v_sketch)
                    AND ddsketch_count(x.v_sketch) = ddsketch_count(o.v_sketch)
                    AND ddsketch_min(x.v_sketch) = ddsketch_min(o.v_sketch)
                    AND ddsketch_max(x.v_sketch) = ddsketch_max(o.v_sketch))";
    let cond = format!(
        "x.rows IS DISTINCT FROM o.rows OR x.v_count IS DISTINCT FROM o.v_count
         OR abs(x.v_sum - o.v_sum) > 1e-9 * abs(o.v_sum) OR (x.v_sum IS NULL) <> (o.v_sum IS NULL)
         OR x.v_min IS DISTINCT FROM o.v_min OR x.v_max IS DISTINCT FROM o.v_max
         OR x.v_first IS DISTINCT FROM o.v_first OR x.v_last IS DISTINCT FROM o.v_last
         OR NOT ({same})"
    );
    let per_key = one_i64(
        c,
        &format!(
            "SELECT count(*) FROM {view} x FULL JOIN ({oracle}) o USING (id, bucket) WHERE {cond}"
        ),
    );
    let total_oracle = format!(
        "SELECT date_bin('{width}', ts, '2000-01-03') AS bucket, count(*) AS rows, count(v) AS v_count,
                sum(v) AS v_sum, min(v) AS v_min, max(v) AS v_max, first(v, ts) AS v_first,
                last(v, ts) AS v_last, ddsketch_agg(v) AS v_sketch
         FROM b GROUP BY 1"
    );
    let total_cond = &cond;
    let total = one_i64(
        c,
        &format!(
            "SELECT count(*) FROM {view}_total x FULL JOIN ({total_oracle}) o USING (bucket) WHERE {total_cond}"
        ),
    );
    (per_key, total)
}

/// A cluster whose maintenance worker stays idle (the tests refresh themselves), and a
/// connection to it.
fn without_worker() -> (Cluster, Client) {
    let cluster = Cluster::builder()
        .setting("bidim.maintenance", "off")
        .start()
        .expect("cluster");
    let c = cluster.connect().unwrap();
    (cluster, c)
}

fn refresh(c: &mut Client, view: &str) {
    c.batch_execute(&format!("CALL bidim.refresh_rollup('{view}')"))
        .unwrap_or_else(|e| panic!("refresh {view}: {e}"));
}

#[test]
fn random_changes_keep_rollup_views_equal_to_raw() {
    let (_cluster, mut c) = without_worker();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         SET timezone = 'UTC';
         CREATE TABLE b (id int, ts timestamptz, v float8) USING bidim
             WITH (bidim.partition_interval = '2 hours', bidim.hot_chunk_rows = 700);
         SELECT bidim.add_rollup('b', interval '10 minutes', columns => ARRAY['v']);",
    )
    .unwrap();
    let mut rng = Rng(0x5eed_1600);
    // The newest minute loaded so far (minutes after 2026-01-01).
    let mut now = 0u64;
    let mut checks = 0;
    for round in 0..40 {
        let op = rng.below(6);
        match op {
            // New rows: the next 30-90 minutes of 1-8 series, some NULL values.
            0 | 1 => {
                let span = 30 + rng.below(60);
                let series = 1 + rng.below(8);
                let seed = rng.below(1_000_000);
                c.batch_execute(&format!(
                    "INSERT INTO b SELECT s, timestamptz '2026-01-01' + (m * 60 + (s * 7 + m) % 60) * interval '1 second',
                            CASE WHEN (m + s + {seed}) % 37 = 0 THEN NULL ELSE ((m * 31 + s * 17 + {seed}) % 1000) / 10.0 END
                     FROM generate_series({now}, {}) m, generate_series(1, {series}) s",
                    now + span - 1
                ))
                .unwrap();
                now += span;
            }
            // Late rows anywhere in the past.
            2 => {
                let n = 1 + rng.below(20);
                let seed = rng.below(1_000_000);
                c.batch_execute(&format!(
                    "INSERT INTO b SELECT 1 + (g * 13 + {seed}) % 9,
                            timestamptz '2026-01-01' + ((g * 7919 + {seed}) % {}) * interval '1 second', -g
                     FROM generate_series(1, {n}) g",
                    (now.max(1)) * 60
                ))
                .unwrap();
            }
            // UPDATE or DELETE a slice of one series.
            3 => {
                let id = 1 + rng.below(8);
                let at = rng.below(now.max(1));
                c.batch_execute(&format!(
                    "UPDATE b SET v = v * 2 + 1 WHERE id = {id}
                       AND ts >= timestamptz '2026-01-01' + {at} * interval '1 minute'
                       AND ts < timestamptz '2026-01-01' + {} * interval '1 minute'",
                    at + 25
                ))
                .unwrap();
            }
            4 => {
                let id = 1 + rng.below(8);
                let at = rng.below(now.max(1));
                c.batch_execute(&format!(
                    "DELETE FROM b WHERE id = {id}
                       AND ts >= timestamptz '2026-01-01' + {at} * interval '1 minute'
                       AND ts < timestamptz '2026-01-01' + {} * interval '1 minute'",
                    at + 15
                ))
                .unwrap();
            }
            // A refresh (materializes changed buckets and everything up to now).
            _ => refresh(&mut c, "b_10m"),
        }
        if round % 3 == 2 || op == 5 {
            let d = differences(&mut c, "b_10m", "10 minutes");
            assert_eq!(d, (0, 0), "round {round} (op {op})");
            checks += 1;
        }
        if round == 20 {
            // Seal and convert what there is: later changes move rows back from cold.
            c.batch_execute("SELECT bidim.seal('b'); SELECT bidim.convert('b');")
                .unwrap();
        }
    }
    refresh(&mut c, "b_10m");
    assert_eq!(differences(&mut c, "b_10m", "10 minutes"), (0, 0));
    assert_eq!(
        one_i64(&mut c, "SELECT pending_buckets FROM bidim.rollups"),
        0
    );
    assert!(one_i64(&mut c, "SELECT buckets_materialized FROM bidim.rollups") > 0);
    assert!(checks >= 10);
}

#[test]
fn worker_killed_while_materializing_loses_nothing() {
    let mut cluster = Cluster::builder()
        .setting("bidim.maintenance_naptime", "1")
        .start()
        .expect("cluster");
    let mut c = cluster.connect().unwrap();
    // Enough rows that materializing takes a while (one-minute buckets, 40 series).
    c.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE TABLE b (id int, ts timestamptz, v float8) USING bidim;
         INSERT INTO b SELECT s, timestamptz '2026-01-01' + m * interval '10 seconds', (m * s) % 977
         FROM generate_series(0, 3 * 8640 - 1) m, generate_series(1, 40) s;",
    )
    .unwrap();
    // The worker runs the new rollup's job at its next round; catch it materializing
    // (it holds the rollup's refresh lock on the materialized table) and kill it.
    c.batch_execute("SELECT bidim.add_rollup('b', interval '1 minute', columns => ARRAY['v'])")
        .unwrap();
    let mut victim = 0i32;
    let caught = wait_until(Duration::from_secs(60), || {
        let r = c
            .query(
                "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                 WHERE l.relation = 'bidim_rollup.r1'::regclass AND l.mode = 'ShareUpdateExclusiveLock'
                   AND l.granted AND a.backend_type = 'bidim maintenance'",
                &[],
            )
            .unwrap();
        if let Some(row) = r.first() {
            victim = row.get(0);
            true
        } else {
            false
        }
    });
    assert!(
        caught,
        "the maintenance worker never materialized the rollup"
    );
    // SAFETY: a signal to a server process of our own cluster.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    assert!(wait_until(Duration::from_secs(30), || !process_alive(
        victim
    )));
    // The postmaster resets every backend after a crash; reconnect once it is back.
    drop(c);
    let mut c = None;
    assert!(wait_until(Duration::from_secs(60), || {
        c = cluster.connect().ok();
        c.is_some()
    }));
    let mut c = c.unwrap();
    // Nothing half done: the view equals raw rows whatever was committed.
    assert_eq!(differences(&mut c, "b_1m", "1 minute"), (0, 0));
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM b"), 3 * 8640 * 40);
    // The next refresh completes it.
    refresh(&mut c, "b_1m");
    assert_eq!(differences(&mut c, "b_1m", "1 minute"), (0, 0));
    assert_eq!(
        one_i64(&mut c, "SELECT sum(rows)::int8 FROM b_1m_total"),
        3 * 8640 * 40
    );
    assert!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM bidim.rollups WHERE materialized_until > '2026-01-04'"
        ) == 1
    );
    let _ = cluster.stop();
}

/// The open bucket is materialized in steps (to the second, here with no refresh lag):
/// each refresh merges the raw rows since the last one into the bucket's row, late rows,
/// UPDATE and DELETE inside the materialized part are redone, and the views stay equal
/// to raw rows. A reader holding a view makes a step inside the bucket wait for the
/// next refresh rather than queue behind it.
#[test]
fn open_bucket_materialized_in_steps_stays_exact() {
    let (cluster, mut c) = without_worker();
    // Two days of points, every 20 s for 3 series, up to a few seconds ago; one-day
    // buckets, so the newest refresh threshold lies inside today's bucket.
    c.batch_execute(
        "CREATE EXTENSION bidim;
         SET timezone = 'UTC';
         CREATE TABLE b (id int, ts timestamptz, v float8) USING bidim
             WITH (bidim.partition_interval = '6 hours', bidim.hot_chunk_rows = 500);
         INSERT INTO b SELECT s, now() - interval '5 seconds' - g * interval '20 seconds',
                CASE WHEN g % 41 = 0 THEN NULL ELSE (g * 7 + s * 13) % 1000 / 10.0 END
         FROM generate_series(0, 2 * 4320) g, generate_series(1, 3) s;
         SELECT bidim.add_rollup('b', interval '1 day', columns => ARRAY['v'], refresh_lag => interval '0');",
    )
    .unwrap();
    let inside = "SELECT count(*) FROM bidim.rollups
                  WHERE materialized_until <> date_bin('1 day', materialized_until, '2000-01-03')";
    let until = "SELECT extract(epoch FROM materialized_until)::int8 FROM bidim.rollups";
    refresh(&mut c, "b_1d");
    assert_eq!(differences(&mut c, "b_1d", "1 day"), (0, 0));
    assert_eq!(
        one_i64(&mut c, inside),
        1,
        "the threshold is inside today's bucket"
    );
    let mut rng = Rng(0x0be7_1600);
    let mut steps = 0;
    for round in 0..24 {
        let op = rng.below(5);
        let seed = rng.below(1_000_000);
        let sql = match op {
            // New points: the last seconds of 1-4 series (before and after the watermark).
            0 => format!(
                "INSERT INTO b SELECT 1 + (g + {seed}) % 4, now() - (g % 30) * interval '1 second', (g * {seed}) % 500 / 7.0
                 FROM generate_series(1, {}) g",
                10 + seed % 90
            ),
            // Late points inside today's materialized part and in earlier days.
            1 => format!(
                "INSERT INTO b SELECT 1 + g % 3,
                        CASE WHEN g % 2 = 0 THEN date_bin('1 day', now(), '2000-01-03')
                             ELSE now() - interval '1 day' END + ((g * 7919 + {seed}) % 600) * interval '1 second', -g
                 FROM generate_series(1, {}) g",
                1 + seed % 20
            ),
            // UPDATE or DELETE a few minutes of one series, now or earlier today.
            2 => format!(
                "UPDATE b SET v = v * 2 + 1 WHERE id = {}
                   AND ts >= now() - {} * interval '1 minute' AND ts < now() - {} * interval '1 minute'",
                1 + seed % 3,
                5 + seed % 60,
                seed % 5
            ),
            3 => format!(
                "DELETE FROM b WHERE id = {} AND ts >= now() - {} * interval '1 minute'
                   AND ts < now() - {} * interval '1 minute'",
                1 + seed % 3,
                3 + seed % 40,
                seed % 3
            ),
            // A refresh a second later: the threshold moves inside the bucket.
            _ => {
                let before = one_i64(&mut c, until);
                std::thread::sleep(Duration::from_millis(1100));
                refresh(&mut c, "b_1d");
                if one_i64(&mut c, until) > before {
                    steps += 1;
                }
                String::new()
            }
        };
        if !sql.is_empty() {
            c.batch_execute(&sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let d = differences(&mut c, "b_1d", "1 day");
        assert_eq!(d, (0, 0), "round {round} (op {op})");
    }
    std::thread::sleep(Duration::from_millis(1100));
    refresh(&mut c, "b_1d");
    assert_eq!(differences(&mut c, "b_1d", "1 day"), (0, 0));
    assert!(
        steps >= 1,
        "no refresh moved the watermark inside the bucket"
    );
    assert_eq!(
        one_i64(&mut c, "SELECT pending_buckets FROM bidim.rollups"),
        0
    );
    // One row per (key, bucket) and per bucket, whatever the refreshes did.
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM (SELECT id, bucket FROM b_1d GROUP BY 1, 2 HAVING count(*) > 1) x"
        ),
        0
    );

    // A reader inside a transaction that read the view: the next step inside the
    // bucket is skipped at once (no waiting on the reader), then done once it ends.
    let mut reader = cluster.connect().unwrap();
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM b_1d;")
        .unwrap();
    c.batch_execute("INSERT INTO b SELECT 1, now() - interval '1 second', 1.5")
        .unwrap();
    let before = one_i64(&mut c, until);
    std::thread::sleep(Duration::from_millis(1100));
    let started = std::time::Instant::now();
    refresh(&mut c, "b_1d");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        one_i64(&mut c, until),
        before,
        "skipped while the view is read"
    );
    assert_eq!(differences(&mut c, "b_1d", "1 day"), (0, 0));
    reader.batch_execute("COMMIT").unwrap();
    refresh(&mut c, "b_1d");
    assert!(one_i64(&mut c, until) > before);
    assert_eq!(differences(&mut c, "b_1d", "1 day"), (0, 0));
}
