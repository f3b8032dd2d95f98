//! ddsketch in the database: accuracy against `percentile_disc` on 1M rows of several
//! distributions, serial vs parallel, GROUP BY, rollups, dump/restore, binary COPY and
//! corrupt binary input.

use bidim_tests::{Client, Cluster, Raw};

const QS: [f64; 12] = [
    0.0, 0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0,
];

/// Columns `x` of a 1M-row table per distribution (uniform u1, u2 in (0, 1)).
const DISTRIBUTIONS: [(&str, &str); 8] = [
    ("uniform", "u1 * 1000"),
    ("normal", "10 * sqrt(-2 * ln(u1)) * cos(2 * pi() * u2)"),
    ("lognormal", "exp(sqrt(-2 * ln(u1)) * cos(2 * pi() * u2))"),
    ("pareto", "1 / u1"),
    ("exponential", "-ln(u1)"),
    (
        "bimodal",
        "CASE WHEN u2 < 0.5 THEN 10 + sqrt(-2 * ln(u1)) ELSE 1000 + 10 * sqrt(-2 * ln(u1)) END",
    ),
    ("constant", "42"),
    (
        "mixed",
        "CASE g % 3 WHEN 0 THEN 0 WHEN 1 THEN -exp(10 * (u1 - 0.5)) ELSE exp(10 * (u2 - 0.5)) END",
    ),
];

fn load(c: &mut Client, table: &str, expr: &str, rows: i64) {
    c.batch_execute(&format!(
        "SELECT setseed(0.42);
         CREATE TABLE {table} AS
         SELECT g, g % 1000 AS grp, ({expr})::float8 AS x
         FROM (SELECT g, 1 - random() AS u1, random() AS u2 FROM generate_series(1, {rows}) g) r;"
    ))
    .unwrap();
}

#[test]
fn percentiles_are_within_alpha_of_percentile_disc_on_1m_rows() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute("CREATE EXTENSION bidim").unwrap();
    let qs: Vec<f64> = QS.to_vec();
    for (name, expr) in DISTRIBUTIONS {
        load(&mut c, name, expr, 1_000_000);
        let row = c
            .query_one(
                &format!(
                    "SELECT approx_percentiles(ddsketch_agg(x), $1),
                            percentile_disc($1) WITHIN GROUP (ORDER BY x)
                     FROM {name}"
                ),
                &[&qs],
            )
            .unwrap();
        let approx: Vec<f64> = row.get(0);
        let exact: Vec<f64> = row.get(1);
        for ((q, a), e) in qs.iter().zip(&approx).zip(&exact) {
            assert!(
                (a - e).abs() <= 0.01 * e.abs() * (1.0 + 1e-9),
                "{name} q={q}: approx {a} exact {e}"
            );
        }
        c.batch_execute(&format!("DROP TABLE {name}")).unwrap();
    }
}

/// Everything of a sketch but its floating-point sum, as text.
fn shape(c: &mut Client, sketch_sql: &str) -> String {
    c.query_one(
        &format!(
            "SELECT ddsketch_bucket_bounds(s)::text || ddsketch_bucket_counts(s)::text
                    || ddsketch_count(s) || '/' || ddsketch_min(s) || '/' || ddsketch_max(s)
             FROM ({sketch_sql}) q(s)"
        ),
        &[],
    )
    .unwrap()
    .get(0)
}

fn sum_of(c: &mut Client, sketch_sql: &str) -> f64 {
    c.query_one(
        &format!("SELECT ddsketch_sum(s) FROM ({sketch_sql}) q(s)"),
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn parallel_group_by_and_rollups_agree_with_serial() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute("CREATE EXTENSION bidim").unwrap();
    load(&mut c, "t", DISTRIBUTIONS[7].1, 1_000_000);
    c.batch_execute("ANALYZE t").unwrap();
    let whole = "SELECT ddsketch_agg(x) FROM t";
    c.batch_execute("SET max_parallel_workers_per_gather = 0")
        .unwrap();
    let serial = shape(&mut c, whole);
    let serial_sum = sum_of(&mut c, whole);
    c.batch_execute(
        "SET max_parallel_workers_per_gather = 2; SET force_parallel_mode = on;
         SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
         SET min_parallel_table_scan_size = 0;",
    )
    .unwrap();
    let plan: Vec<String> = c
        .query(&format!("EXPLAIN {whole}"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        plan.iter().any(|l| l.contains("Partial Aggregate")),
        "no parallel plan: {plan:?}"
    );
    let parallel = shape(&mut c, whole);
    let parallel_sum = sum_of(&mut c, whole);
    assert_eq!(
        serial, parallel,
        "bins, counts, min and max must be identical"
    );
    assert!((serial_sum - parallel_sum).abs() <= 1e-9 * serial_sum.abs().max(1.0));

    // GROUP BY 1000 groups (parallel too): every group within alpha of its exact answer.
    let bad: i64 = c
        .query_one(
            "SELECT count(*) FROM (
               SELECT grp, approx_percentile(ddsketch_agg(x), 0.99) a,
                      percentile_disc(0.99) WITHIN GROUP (ORDER BY x) e
               FROM t GROUP BY grp) g
             WHERE abs(a - e) > 0.01 * abs(e) * (1 + 1e-9)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(bad, 0);
    let groups: i64 = c
        .query_one(
            "SELECT count(*) FROM (SELECT grp, ddsketch_agg(x) FROM t GROUP BY grp) g",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(groups, 1000);

    // Rollups of rollups equal the sketch of everything.
    c.batch_execute(
        "CREATE TABLE per_grp AS SELECT grp, ddsketch_agg(x) s FROM t GROUP BY grp;
         CREATE TABLE per_tenth AS SELECT grp / 100 AS tenth, rollup(s) s FROM per_grp GROUP BY 1;",
    )
    .unwrap();
    assert_eq!(shape(&mut c, "SELECT rollup(s) FROM per_tenth"), serial);
    assert_eq!(shape(&mut c, "SELECT ddsketch_agg(s) FROM per_grp"), serial);
    let rolled = sum_of(&mut c, "SELECT rollup(s) FROM per_tenth");
    assert!((rolled - serial_sum).abs() <= 1e-9 * serial_sum.abs().max(1.0));
}

#[test]
fn dump_restore_binary_copy_and_corrupt_binary_input() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute("CREATE DATABASE src").unwrap();
    c.batch_execute("CREATE DATABASE dst").unwrap();
    let mut s = cluster.connect_db("src").unwrap();
    s.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE TABLE sk (id int, s ddsketch);
         INSERT INTO sk SELECT g % 50, ddsketch_agg(((g * 7919) % 1000 - 300)::float8 / 7)
         FROM generate_series(1, 100000) g GROUP BY g % 50;
         INSERT INTO sk VALUES (-1, ddsketch_empty()), (-2, NULL);",
    )
    .unwrap();
    let dump = cluster.dir.join("sketches.dump");
    let out = cluster
        .client_tool("pg_dump")
        .arg("-Fc")
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
    let out = cluster
        .client_tool("pg_restore")
        .args(["-d", "dst"])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = |c: &mut Client, t: &str| -> Vec<(i32, Option<String>)> {
        c.query(&format!("SELECT id, s::text FROM {t} ORDER BY id"), &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let original = rows(&mut s, "sk");
    let mut d = cluster.connect_db("dst").unwrap();
    assert_eq!(
        rows(&mut d, "sk"),
        original,
        "pg_dump/pg_restore changed sketches"
    );

    // Binary COPY out and in (send/recv).
    let file = "/tmp/bidim-sketch-copy.bin";
    s.batch_execute(&format!(
        "COPY sk TO '{file}' WITH (FORMAT binary);
         CREATE TABLE sk2 (LIKE sk);
         COPY sk2 FROM '{file}' WITH (FORMAT binary);"
    ))
    .unwrap();
    let _ = std::fs::remove_file(file);
    assert_eq!(
        rows(&mut s, "sk2"),
        original,
        "binary COPY changed sketches"
    );
    let same: bool = s
        .query_one(
            "SELECT bool_and(a.s = b.s) FROM sk a JOIN sk2 b USING (id)",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(same);

    // Corrupt binary input: every truncation and single-byte corruption of a real
    // sketch, plus random bytes, gets an ERROR or a valid sketch, never a crash.
    let good: Vec<u8> = s
        .query_one("SELECT ddsketch_send(s) FROM sk WHERE id = 3", &[])
        .unwrap()
        .get(0);
    let mut inputs: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
    for i in 0..good.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = good.clone();
            b[i] ^= flip;
            inputs.push(b);
        }
    }
    let mut seed = 0x2545F4914F6CDD1Du64;
    for _ in 0..500 {
        let n = (seed % 64) as usize;
        let b: Vec<u8> = (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let mut v = vec![1u8];
        v.extend(b);
        inputs.push(v);
    }
    let mut errors = 0;
    for b in &inputs {
        match s.query_one("SELECT ddsketch_count($1::ddsketch)", &[&Raw(b.clone())]) {
            Ok(_) => {}
            Err(e) => {
                let msg = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_default();
                assert!(msg.contains("ddsketch"), "unexpected error for {b:?}: {e}");
                errors += 1;
            }
        }
    }
    assert!(
        errors > inputs.len() / 2,
        "most corrupt inputs must be refused"
    );
    // The server is still up and the sketches intact.
    assert_eq!(rows(&mut s, "sk"), original);
}
