//! Key-range splits under skewed concurrent ingest, and the background maintenance
//! worker (retention policies, crash of the launcher, clean shutdown), on real servers.

use bidim_tests::{difference, one_i64, process_alive, wait_until, Client, Cluster};
use std::thread;
use std::time::{Duration, Instant};

/// Keys with P(k) ~ 1/k^2 (Zipf, s = 2) from a deterministic uniform in (0, 1): the
/// Weyl sequence n * golden ratio mod 1, which is equidistributed.
fn zipf_key_sql(g: &str, seed: u64) -> String {
    format!("least(10000, floor(1.0 / (((({g}) + {seed}) * 2654435761::numeric % 4294967296 + 0.5) / 4294967296.0)))::bigint")
}

#[test]
fn zipf_ingest_splits_into_balanced_ranges_and_keeps_every_row() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE TABLE b (series_id bigint, ts timestamptz, value float8) USING bidim;
         SELECT bidim.configure('b', hot_chunk_rows => 2000, partition_interval => '1 day');
         CREATE TABLE h (series_id bigint, ts timestamptz, value float8);",
    )
    .unwrap();
    // Two writers at once (concurrent splits), each batch into both tables in one
    // transaction, over two days of time.
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let conninfo = cluster.conninfo("postgres");
            thread::spawn(move || {
                let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
                for batch in 0..20u64 {
                    let seed = w * 1_000_000 + batch * 10_000;
                    let key = zipf_key_sql("g", seed);
                    let rows = format!(
                        "SELECT {key}, timestamptz '2026-05-01' + ((g + {seed}) % 172800) * interval '1 second', g + {seed}
                         FROM generate_series(1, 2000) g"
                    );
                    c.batch_execute(&format!(
                        "BEGIN; INSERT INTO b {rows}; INSERT INTO h {rows}; COMMIT;"
                    ))
                    .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    // Every row reachable: the whole table, per key (key-pruned scans), per time.
    let diff = difference(&mut c, "b", "h");
    assert_eq!(diff, 0);
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM b"), 80_000);
    let keys: Vec<i64> = c
        .query("SELECT DISTINCT series_id FROM h ORDER BY 1 LIMIT 60", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .chain([0, 20_000])
        .collect();
    for k in keys {
        let got = one_i64(
            &mut c,
            &format!("SELECT count(*) FROM b WHERE series_id = {k}"),
        );
        let want = one_i64(
            &mut c,
            &format!("SELECT count(*) FROM h WHERE series_id = {k}"),
        );
        assert_eq!(got, want, "series {k}");
        let got = one_i64(
            &mut c,
            &format!("SELECT count(*) FROM b WHERE series_id = {k} AND ts >= '2026-05-02'"),
        );
        let want = one_i64(
            &mut c,
            &format!("SELECT count(*) FROM h WHERE series_id = {k} AND ts >= '2026-05-02'"),
        );
        assert_eq!(got, want, "series {k} on day 2");
    }
    // The active ranges tile the key space.
    let active = one_i64(
        &mut c,
        "SELECT count(*) FROM bidim.key_ranges WHERE rel = 'b'::regclass AND state = 'active'",
    );
    assert!(
        active >= 4,
        "only {active} key ranges after 80k skewed rows:\n{}",
        cluster
            .psql(
                "postgres",
                "SELECT * FROM bidim.key_ranges ORDER BY range_id;
                 SELECT chunk_id, range_id, partition, rows, state FROM bidim.chunks ORDER BY 1"
            )
            .unwrap()
    );
    let gaps = one_i64(
        &mut c,
        "SELECT count(*) FROM (
           SELECT key_hi, lead(key_lo) OVER (ORDER BY key_lo::bigint NULLS FIRST) AS next_lo,
                  row_number() OVER (ORDER BY key_lo::bigint NULLS FIRST) AS i,
                  count(*) OVER () AS n, key_lo
           FROM bidim.key_ranges WHERE rel = 'b'::regclass AND state = 'active') r
         WHERE (i = 1 AND key_lo IS NOT NULL) OR (i = n AND key_hi IS NOT NULL)
            OR (i < n AND key_hi IS DISTINCT FROM next_lo)",
    );
    assert_eq!(gaps, 0, "active key ranges do not tile the key space");
    // Balance: a range holding several keys holds at most a quarter of the rows (a
    // midpoint split of [1, 10000] would leave nearly all of them in one range), unless
    // its heaviest key alone holds half of it (its next split isolates that key; with
    // two writers a split can be skipped while the other holds the split lock).
    let worst: f64 = c
        .query_one(
            "WITH per_key AS (SELECT series_id, count(*) AS n FROM h GROUP BY 1),
                  per_range AS (
               SELECT r.range_id, sum(k.n) AS n, max(k.n) AS heaviest, count(*) AS keys
               FROM bidim.key_ranges r JOIN per_key k
                 ON (r.key_lo IS NULL OR k.series_id >= r.key_lo::bigint)
                AND (r.key_hi IS NULL OR k.series_id < r.key_hi::bigint)
               WHERE r.rel = 'b'::regclass AND r.state = 'active'
               GROUP BY r.range_id)
             SELECT coalesce(max(n::float8 / (SELECT count(*) FROM h)), 0)
             FROM per_range WHERE keys > 1 AND heaviest * 2 < n",
            &[],
        )
        .unwrap()
        .get(0);
    if worst > 0.25 || std::env::var_os("DUMP").is_some() {
        let dump = cluster
            .psql(
                "postgres",
                "SELECT r.range_id, r.key_lo, r.key_hi, count(*) AS n, count(DISTINCT h.series_id)
                 FROM bidim.key_ranges r JOIN h
                   ON (r.key_lo IS NULL OR h.series_id >= r.key_lo::bigint)
                  AND (r.key_hi IS NULL OR h.series_id < r.key_hi::bigint)
                 WHERE r.rel = 'b'::regclass AND r.state = 'active' GROUP BY 1, 2, 3
                 ORDER BY 2::bigint NULLS FIRST",
            )
            .unwrap();
        assert!(
            worst <= 0.25,
            "a multi-key range holds {worst:.2} of the rows:\n{dump}"
        );
    }
    let alone = one_i64(
        &mut c,
        "SELECT count(*) FROM bidim.key_ranges r
         WHERE r.rel = 'b'::regclass AND r.state = 'active'
           AND r.key_lo IS NULL AND r.key_hi::bigint = 2",
    );
    assert_eq!(
        alone,
        1,
        "series 1 (a third of the rows) should have a range to itself:\n{}",
        cluster
            .psql(
                "postgres",
                "SELECT * FROM bidim.key_ranges ORDER BY range_id"
            )
            .unwrap()
    );
}

fn launcher_pid(c: &mut Client) -> Option<i32> {
    c.query_opt(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'bidim launcher'",
        &[],
    )
    .ok()
    .flatten()
    .map(|r| r.get(0))
}

fn connect_retry(cluster: &Cluster) -> Client {
    let mut last = String::new();
    for _ in 0..200 {
        match cluster.connect() {
            Ok(c) => return c,
            Err(e) => last = e.to_string(),
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("cannot reconnect: {last}");
}

/// Inserts one row an hour for the last `days` days into `p`.
fn load_days(c: &mut Client, days: i64) {
    c.batch_execute(&format!(
        "INSERT INTO p SELECT g % 5, now() - g * interval '1 hour', g FROM generate_series(0, {days} * 24 - 1) g"
    ))
    .unwrap();
}

fn oldest_partition_age_days(c: &mut Client) -> f64 {
    c.query_one(
        "SELECT coalesce(extract(epoch FROM now() - min(time_lo)) / 86400, 0)::float8
         FROM bidim.time_partitions WHERE rel = 'p'::regclass",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn retention_policy_worker_drops_survives_kill9_and_stops_cleanly() {
    let mut cluster = Cluster::builder()
        .setting("bidim.maintenance_naptime", "1")
        .start()
        .expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE TABLE p (series_id bigint, ts timestamptz, value float8) USING bidim;",
    )
    .unwrap();
    load_days(&mut c, 10);
    let total = one_i64(&mut c, "SELECT count(*) FROM p");
    let recent = one_i64(
        &mut c,
        "SELECT count(*) FROM p WHERE ts >= now() - interval '3 days'",
    );
    assert!(oldest_partition_age_days(&mut c) > 9.0);
    c.batch_execute("SELECT bidim.add_retention_policy('p', interval '3 days')")
        .unwrap();
    // The worker applies the policy on its own within a few rounds.
    assert!(
        wait_until(Duration::from_secs(30), || oldest_partition_age_days(
            &mut c
        ) < 5.0),
        "the policy did not drop old partitions; log:\n{}",
        cluster.log()
    );
    let left = one_i64(&mut c, "SELECT count(*) FROM p");
    assert!(left < total);
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM p WHERE ts >= now() - interval '3 days'"
        ),
        recent,
        "rows inside the retention window were lost"
    );
    let (runs, err): (i64, Option<String>) = {
        let r = c
            .query_one(
                "SELECT runs, last_error FROM bidim.jobs WHERE kind = 'retention'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(runs >= 1 && err.is_none(), "runs {runs}, error {err:?}");

    // kill -9 of the launcher: the postmaster restarts the cluster, the launcher comes
    // back and goes on applying the policy.
    let pid = launcher_pid(&mut c).expect("launcher running");
    // SAFETY: kill(2) of a pid read from our own cluster's pg_stat_activity.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    drop(c);
    assert!(wait_until(Duration::from_secs(30), || !process_alive(pid)));
    let mut c = connect_retry(&cluster);
    assert!(
        wait_until(Duration::from_secs(30), || launcher_pid(&mut c)
            .is_some_and(|p| p != pid)),
        "launcher not restarted; log:\n{}",
        cluster.log()
    );
    assert!(cluster
        .log()
        .contains("terminating any other active server processes"));
    load_days(&mut c, 10);
    assert!(
        wait_until(Duration::from_secs(30), || oldest_partition_age_days(
            &mut c
        ) < 5.0),
        "the policy stopped working after the crash"
    );
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM p WHERE ts >= now() - interval '3 days' AND value <= 71"
        ),
        recent * 2,
        "rows inside the retention window were lost"
    );

    // Round workers hold no connection between rounds: DROP DATABASE is not blocked.
    c.batch_execute("CREATE DATABASE other").unwrap();
    let mut o = cluster.connect_db("other").unwrap();
    o.batch_execute("CREATE EXTENSION bidim").unwrap();
    drop(o);
    thread::sleep(Duration::from_secs(3));
    c.batch_execute("DROP DATABASE other").unwrap();

    // pg_ctl stop -m fast: the launcher leaves, the server stops promptly.
    let mark = cluster.log_mark();
    drop(c);
    let t = Instant::now();
    cluster.stop().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
    let log = cluster.log_since(mark);
    assert!(log.contains("bidim launcher shutting down"), "log:\n{log}");
    assert!(log.contains("database system is shut down"), "log:\n{log}");
}
