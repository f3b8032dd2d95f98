//! BidimAgg against a heap oracle: random aggregate queries (aggregates, groupings,
//! conditions, HAVING, time zones, work_mem, parallel plans) over a table with cold
//! and hot rows give the answers the same query gives on a heap table.

use bidim_tests::{one_i64, Cluster, Rng};

/// Answers of `q` (`{t}`: the table) on `b` and on `h`, as sorted text.
fn answers(c: &mut postgres::Client, q: &str) -> (String, String) {
    let run = |c: &mut postgres::Client, t: &str| -> String {
        let sql = format!(
            "SELECT coalesce(string_agg(x::text, ' | ' ORDER BY x::text), '') FROM ({}) x",
            q.replace("{t}", t)
        );
        match c.query_one(&sql, &[]) {
            Ok(row) => row.get(0),
            Err(e) => format!(
                "ERROR {}",
                e.as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_default()
            ),
        }
    };
    (run(c, "b"), run(c, "h"))
}

#[test]
fn random_aggregates_match_heap() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         SET timezone = 'UTC';
         CREATE TABLE b (series_id int, ts timestamptz NOT NULL, v float8, w float8, n bigint, s smallint,
                         d date, flag bool) USING bidim;
         SELECT bidim.configure('b', hot_chunk_rows => 500, partition_interval => '2 hours');
         CREATE TABLE h (LIKE b);
         CREATE TABLE ks (id int PRIMARY KEY, grp int);
         INSERT INTO ks SELECT g, g % 5 FROM generate_series(0, 45) g;
         ANALYZE ks;",
    )
    .unwrap();
    // Values are multiples of 1/8 (float sums are exact in any order), with NaN,
    // infinities and NULLs; w is finite (ddsketch_agg takes finite values only).
    let load = |c: &mut postgres::Client, from: i64, to: i64| {
        for t in ["b", "h"] {
            c.batch_execute(&format!(
                "INSERT INTO {t}
                 SELECT (g * 7) % 41, timestamptz '2026-03-01' + g * interval '11 seconds',
                        CASE g % 97 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN 0::float8
                             WHEN 2 THEN NULL WHEN 3 THEN '-Infinity'::float8
                             ELSE ((g * 13) % 4001 - 2000) * 0.125 END,
                        (g % 613) * 0.5,
                        CASE WHEN g % 11 = 0 THEN NULL ELSE (g * 7919) % 100003 - 50000 END,
                        (g % 700 - 350)::smallint,
                        date '2026-03-01' + (g % 40),
                        CASE WHEN g % 5 = 0 THEN NULL ELSE g % 2 = 0 END
                 FROM generate_series({from}, {to}) g"
            ))
            .unwrap();
        }
    };
    load(&mut c, 1, 20_000);
    c.batch_execute(
        "SELECT bidim.seal('b'); SELECT bidim.convert('b', older_than => '2026-03-03 06:00');",
    )
    .unwrap();
    load(&mut c, 20_001, 24_000);
    c.batch_execute("ANALYZE b; ANALYZE h;").unwrap();
    let cold = one_i64(
        &mut c,
        "SELECT count(*) FROM bidim.chunks WHERE rel = 'b'::regclass AND state = 'cold'",
    );
    assert!(cold >= 10, "expected cold chunks, saw {cold}");

    let aggs = [
        "count(*)",
        "count(v)",
        "sum(v)",
        "avg(v)",
        "max(v)",
        "min(v)",
        "count(n)",
        "max(n)",
        "min(n)",
        "sum(s)",
        "avg(s)",
        "max(s)",
        "min(ts)",
        "max(ts)",
        "max(d)",
        "min(d)",
        "avg(w)",
        "sum(w)",
        "approx_percentile(ddsketch_agg(w), 0.9)",
        "count(flag)",
        "max(v) - min(w)",
        "sum(s) * 2",
    ];
    let groupings = [
        "",
        "series_id",
        "date_trunc('hour', ts)",
        "date_trunc('minute', ts)",
        "series_id, date_trunc('hour', ts)",
        "d",
        "flag",
        "s, series_id",
        "ts",
        "date_trunc('day', ts), d, series_id",
        "date_trunc('month', ts)",
    ];
    let conds = [
        "",
        "ts >= '2026-03-02 01:00' AND ts < '2026-03-03 07:30'",
        "ts > '2026-03-03 03:17:30'",
        "series_id = 5",
        "series_id IN (1, 2, 3, 40)",
        "n > 1000",
        "v <= 10 AND w > 5",
        "series_id = ANY ('{7, 8}') AND ts <= '2026-03-02 12:00'",
        "flag",
        "ts BETWEEN '2026-03-01 10:00' AND '2026-03-01 18:00' AND s < 0",
        "date_trunc('hour', ts) = '2026-03-02 05:00'",
        "ts < '2026-01-01'",
        "series_id IN (SELECT id FROM ks WHERE grp = 2)",
        "series_id IN (SELECT id FROM ks WHERE grp IN (1, 4)) AND ts > '2026-03-02 20:00'",
    ];
    let zones = ["UTC", "UTC", "Asia/Kathmandu", "Europe/Paris"];
    let mut rng = Rng(0x0bad_cafe_d00d_f00d);
    let mut used = 0;
    let mut ordered = 0;
    for i in 0..70 {
        let g = groupings[rng.below(groupings.len() as u64) as usize];
        let mut list: Vec<&str> = (0..1 + rng.below(4))
            .map(|_| aggs[rng.below(aggs.len() as u64) as usize])
            .collect();
        list.dedup();
        let cond = conds[rng.below(conds.len() as u64) as usize];
        let zone = zones[rng.below(zones.len() as u64) as usize];
        let work_mem = if rng.below(4) == 0 { "64kB" } else { "4MB" };
        let parallel = rng.below(3) == 0;
        let having = if !g.is_empty() && rng.below(4) == 0 {
            " HAVING count(*) > 3"
        } else {
            ""
        };
        let select = if g.is_empty() {
            list.join(", ")
        } else {
            format!("{g}, {}", list.join(", "))
        };
        // Groups by time alone, newest or oldest first with a LIMIT (BidimAgg's
        // time-ordered variant).
        let by_time = [
            "ts",
            "date_trunc('hour', ts)",
            "date_trunc('minute', ts)",
            "date_trunc('month', ts)",
        ];
        let order = if by_time.contains(&g) && rng.below(2) == 0 {
            format!(
                " ORDER BY 1 {} LIMIT {}",
                if rng.below(2) == 0 { "DESC" } else { "ASC" },
                1 + rng.below(20)
            )
        } else {
            String::new()
        };
        let q = format!(
            "SELECT {select} FROM {{t}}{}{}{}{order}",
            if cond.is_empty() {
                String::new()
            } else {
                format!(" WHERE {cond}")
            },
            if g.is_empty() {
                String::new()
            } else {
                format!(" GROUP BY {g}")
            },
            having
        );
        c.batch_execute(&format!(
            "SET timezone = '{zone}'; SET work_mem = '{work_mem}';
             SET parallel_setup_cost = {0}; SET parallel_tuple_cost = {0};
             SET min_parallel_table_scan_size = {1};",
            if parallel { "0" } else { "1000" },
            if parallel { "0" } else { "'8MB'" },
        ))
        .unwrap();
        let plan: String = c
            .query(
                &format!("EXPLAIN (COSTS OFF) {}", q.replace("{t}", "b")),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n");
        if plan.contains("BidimAgg") {
            used += 1;
        }
        if plan.contains("Group order") {
            ordered += 1;
        }
        let (got, want) = answers(&mut c, &q);
        assert_eq!(
            got, want,
            "query {i} ({q}; timezone {zone}, work_mem {work_mem}, parallel {parallel}) differs; plan:\n{plan}"
        );
        // The same query with BidimAgg off (the row-by-row aggregate over BidimScan).
        c.batch_execute("SET bidim.enable_batch_aggregation = off")
            .unwrap();
        let (off, _) = answers(&mut c, &q);
        c.batch_execute("RESET bidim.enable_batch_aggregation")
            .unwrap();
        assert_eq!(off, want, "query {i} ({q}) differs with BidimAgg off");
    }
    eprintln!(
        "batch aggregation oracle: {used} of 70 queries ran through BidimAgg, {ordered} in time order"
    );
    assert!(
        ordered >= 3,
        "BidimAgg ran in time order only {ordered} times"
    );
    assert!(used >= 35, "BidimAgg ran only {used} of 70 queries");
}
