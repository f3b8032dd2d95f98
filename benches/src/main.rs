//! bidim's benchmark runner.
//!
//! Starts a tuned throwaway PostgreSQL 15 cluster (bidim preloaded), creates the peer
//! extensions that are installed (`tdigest`, `hll`), runs named workloads whose cases
//! do the same work different ways (heap, heap + btree, bidim, ...), and prints one
//! markdown table: median of several runs per case and its ratio to the workload's
//! reference case.
//!
//! ```text
//! cargo run --release -p bidim-bench -- [--rows N] [--runs K] [--workload NAME]...
//! ```

mod intake;

use bidim_tests::{Client, Cluster, Result};
use std::time::Instant;

/// One way of doing a workload's work.
struct Case {
    name: &'static str,
    /// Run before every timed run (not timed): create the target, indexes, ...
    setup: String,
    /// The timed statement(s).
    timed: String,
    /// After the run (not timed): a query returning the bytes to report, if any.
    size: Option<String>,
}

/// A named workload: data prepared once, then cases timed side by side.
struct Workload {
    name: &'static str,
    description: String,
    /// Rows each timed run processes (for the rows/s column).
    rows: i64,
    /// Run once before all cases (not timed).
    prepare: String,
    /// The first case is the reference the ratios compare against.
    cases: Vec<Case>,
}

struct Options {
    rows: i64,
    runs: usize,
    batches: i64,
    workloads: Vec<String>,
    /// Ingest keys drawn from a Zipf distribution instead of one row per host.
    zipf: bool,
}

fn parse_args() -> std::result::Result<Options, String> {
    let mut o = Options {
        rows: 10_000_000,
        runs: 3,
        batches: 10,
        zipf: false,
        workloads: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--rows" => {
                let v = value("--rows")?;
                o.rows = v
                    .parse()
                    .map_err(|_| format!("--rows: not a number: {v}"))?
            }
            "--runs" => {
                let v = value("--runs")?;
                o.runs = v
                    .parse()
                    .map_err(|_| format!("--runs: not a number: {v}"))?
            }
            "--workload" => o.workloads.push(value("--workload")?),
            "--zipf" => o.zipf = true,
            "--batches" => {
                let v = value("--batches")?;
                o.batches = v
                    .parse()
                    .map_err(|_| format!("--batches: not a number: {v}"))?
            }
            "-h" | "--help" => {
                println!(
                    "usage: bidim-bench [--rows N] [--runs K] [--workload copy|ingest|queries|retention|sketch|tags|chunks|planning|citus|rollups|intake]... [--batches B] [--zipf]\n\
                     copy runs by default; ingest (B batches of N rows), queries and retention only when named;\n\
                     --zipf: ingest keys drawn from Zipf(s=1) over 100000 series instead of 1000 hosts in turn"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    if o.rows < 1000 || o.runs == 0 {
        return Err("--rows must be at least 1000 and --runs at least 1".into());
    }
    Ok(o)
}

const HOSTS: i64 = 1000;

/// `CREATE TABLE` of TSBS's cpu table (`time, tags_id, 10 x float8`) named `name`.
fn cpu_table(name: &str) -> String {
    format!(
        "CREATE TABLE {name} (time timestamptz NOT NULL, tags_id integer NOT NULL, \
         usage_user float8, usage_system float8, usage_idle float8, usage_nice float8, \
         usage_iowait float8, usage_irq float8, usage_softirq float8, usage_steal float8, \
         usage_guest float8, usage_guest_nice float8)"
    )
}

/// The three ways of storing TSBS rows every ingest workload compares, as
/// (case name, SQL that creates table `name`).
fn cpu_cases(name: &str) -> Vec<(&'static str, String)> {
    let t = cpu_table(name);
    vec![
        ("heap", t.clone()),
        (
            "heap + btree(tags_id, time)",
            format!("{t}; CREATE INDEX ON {name} (tags_id, time DESC)"),
        ),
        (
            "bidim",
            format!("{t} USING bidim; SELECT bidim.configure('{name}', key_column => 'tags_id', time_column => 'time')"),
        ),
    ]
}

/// Bytes on disk of table `t`, whatever its access method.
fn size_sql(t: &str) -> String {
    format!(
        "SELECT CASE WHEN (SELECT amname FROM pg_am a JOIN pg_class c ON c.relam = a.oid WHERE c.oid = '{t}'::regclass) = 'bidim' \
         THEN bidim.table_size('{t}') ELSE pg_total_relation_size('{t}') END"
    )
}

/// SQL writing `epochs` TSBS cpu-only epochs (1000 hosts, one row per host every 10 s,
/// in time order, values 0..100 as TSBS truncates them) starting at epoch `first` to a
/// server-side file.
fn tsbs_file_sql(file: &str, first: i64, epochs: i64) -> String {
    tsbs_file_sql_keys(file, first, epochs, "h")
}

/// Zipf (s = 1) keys over 1..100000: log-uniform, P(k) ~ 1/k.
const ZIPF_KEY: &str = "floor(exp(random() * ln(100000)))::int";

/// As [`tsbs_file_sql`], with the key column computed by `key` (`h` = the host).
fn tsbs_file_sql_keys(file: &str, first: i64, epochs: i64, key: &str) -> String {
    format!(
        "COPY (SELECT timestamptz '2016-01-01 00:00:00+00' + make_interval(secs => 10 * e), {key}, \
           floor(random() * 101), floor(random() * 101), floor(random() * 101), floor(random() * 101), \
           floor(random() * 101), floor(random() * 101), floor(random() * 101), floor(random() * 101), \
           floor(random() * 101), floor(random() * 101) \
         FROM generate_series({first}, {last}) e, generate_series(1, {HOSTS}) h ORDER BY e, h) TO '{file}'",
        last = first + epochs - 1
    )
}

/// As [`tsbs_file_sql`], with TSBS's own value shape: every metric of every host is a
/// random walk (steps of about Normal(0, 1) every 10 s, kept within 0..100 by
/// reflection, truncated to integers as TSBS writes them). The query and storage
/// workloads use it: compression depends on it (uniform random values are
/// incompressible below log2(101) bits a value).
fn tsbs_walk_file_sql(file: &str, first: i64, epochs: i64) -> String {
    let last = first + epochs - 1;
    let steps: Vec<String> = (1..=10)
        .map(|k| format!("(random() + random() + random() - 1.5) * 2 AS r{k}"))
        .collect();
    let sums: Vec<String> = (1..=10)
        .map(|k| format!("sum(r{k}) OVER w AS w{k}"))
        .collect();
    // reflect into 0..100 (period 200) and truncate
    let values: Vec<String> = (1..=10)
        .map(|k| {
            let x = format!("((h * {}) % 100 + w{k})", 37 + 11 * k);
            format!("floor(100 - abs(100 - ({x} - 200 * floor({x} / 200))))")
        })
        .collect();
    format!(
        "COPY (SELECT timestamptz '2016-01-01 00:00:00+00' + make_interval(secs => 10 * e), h, {} \
         FROM (SELECT e, h, {} FROM (SELECT e, h, {} FROM generate_series({first}, {last}) e, \
               generate_series(1, {HOSTS}) h) x WINDOW w AS (PARTITION BY h ORDER BY e)) y \
         ORDER BY e, h) TO '{file}'",
        values.join(", "),
        sums.join(", "),
        steps.join(", ")
    )
}

/// COPY of TSBS cpu-only shaped rows into an empty table, each way.
fn copy_workload(rows: i64, file: &str) -> Workload {
    let epochs = rows / HOSTS;
    let size = Some(size_sql("cpu"));
    Workload {
        name: "copy",
        rows: HOSTS * epochs,
        description: format!(
            "COPY of {} TSBS cpu-only rows ({HOSTS} hosts x {epochs} epochs of 10 s, 10 float8) from a server-side file into an empty table",
            HOSTS * epochs
        ),
        prepare: tsbs_file_sql(file, 0, epochs),
        cases: cpu_cases("cpu")
            .into_iter()
            .map(|(name, create)| Case {
                name,
                setup: format!("DROP TABLE IF EXISTS cpu; {create}"),
                timed: format!("COPY cpu FROM '{file}'"),
                size: size.clone(),
            })
            .collect(),
    }
}

/// The seed experiment of the access method: `batches` COPYs of `rows` rows each, later
/// batches later in time, into tables that keep growing; prints every batch's time.
fn ingest_workload(c: &mut Client, rows: i64, batches: i64, zipf: bool, file: &str) -> Result<()> {
    let key = if zipf { ZIPF_KEY } else { "h" };
    let epochs = rows / HOSTS;
    let cases = cpu_cases("ingest");
    let tables: Vec<String> = (0..cases.len()).map(|i| format!("ingest_{i}")).collect();
    for (i, t) in tables.iter().enumerate() {
        let create = &cpu_cases(t)[i].1;
        exec(c, &format!("DROP TABLE IF EXISTS {t}; {create}"))?;
    }
    println!("\n### ingest\n");
    println!(
        "{batches} batches of {} TSBS cpu-only rows ({HOSTS} rows x {epochs} epochs of 10 s; keys: {}), each batch later in time, COPY from a server-side file into tables that keep growing.\n",
        HOSTS * epochs,
        if zipf { "Zipf(s=1) over 100000 series" } else { "the 1000 hosts in turn" }
    );
    let names: Vec<&str> = cases.iter().map(|(n, _)| *n).collect();
    println!("| batch | rows before | {} |", names.join(" s | ") + " s");
    println!("|---:|---:|{}", "---:|".repeat(names.len()));
    let mut first = vec![0f64; names.len()];
    let mut last = vec![0f64; names.len()];
    for b in 0..batches {
        eprintln!("== ingest: generating batch {}", b + 1);
        exec(c, &tsbs_file_sql_keys(file, b * epochs, epochs, key))?;
        let mut cells = Vec::new();
        for (i, t) in tables.iter().enumerate() {
            exec(c, "CHECKPOINT")?;
            let start = Instant::now();
            exec(c, &format!("COPY {t} FROM '{file}'"))?;
            let secs = start.elapsed().as_secs_f64();
            eprintln!("   {} batch {}: {secs:.3} s", names[i], b + 1);
            if b == 0 {
                first[i] = secs;
            }
            last[i] = secs;
            cells.push(format!("{secs:.2}"));
        }
        println!(
            "| {} | {:.1} M | {} |",
            b + 1,
            (b * HOSTS * epochs) as f64 / 1e6,
            cells.join(" | ")
        );
    }
    let total_rows = (batches * HOSTS * epochs) as f64;
    println!("\n| case | last / first batch | size MB | bytes per row |");
    println!("|---|---:|---:|---:|");
    for (i, t) in tables.iter().enumerate() {
        let bytes: i64 = c
            .query_one(&size_sql(t), &[])
            .map_err(|e| e.to_string())?
            .get(0);
        println!(
            "| {} | {:.2}x | {:.0} | {:.1} |",
            names[i],
            last[i] / first[i],
            bytes as f64 / 1048576.0,
            bytes as f64 / total_rows
        );
    }
    Ok(())
}

/// TSBS-like queries on the same rows stored each way; median milliseconds per query.
/// TimescaleDB's cases for the query workload, as TSBS sets them up (12-hour chunks,
/// an index on (tags_id, time DESC)); the compressed one segments by tags_id and
/// orders by time DESC, as TSBS's `--use-compression` does. (case name, SQL creating
/// table `name`, SQL run after loading it.)
fn timescaledb_cases(name: &str) -> Vec<(&'static str, String, String)> {
    let t = cpu_table(name);
    let hyper = format!(
        "{t}; SELECT create_hypertable('{name}', 'time', chunk_time_interval => interval '12 hours');
         CREATE INDEX ON {name} (tags_id, time DESC)"
    );
    vec![
        ("timescaledb", hyper.clone(), String::new()),
        (
            "timescaledb compressed",
            hyper,
            format!(
                "ALTER TABLE {name} SET (timescaledb.compress, timescaledb.compress_segmentby = 'tags_id',
                                         timescaledb.compress_orderby = 'time DESC');
                 SELECT count(compress_chunk(c)) FROM show_chunks('{name}') c"
            ),
        ),
    ]
}

/// Whether TimescaleDB is installed in the server the harness runs
/// (`../shared/peers/build-peers.sh`, called by scripts/bench.sh).
fn timescaledb_installed() -> bool {
    std::process::Command::new(bidim_tests::pg_bindir().join("pg_config"))
        .arg("--pkglibdir")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .is_some_and(|dir| std::path::Path::new(&dir).join("timescaledb.so").exists())
}

fn query_workload(c: &mut Client, rows: i64, runs: usize, file: &str, tsdb: bool) -> Result<()> {
    let epochs = rows / HOSTS;
    let mut cases: Vec<(&str, String, String)> = cpu_cases("{t}")
        .into_iter()
        .map(|(n, sql)| (n, sql, String::new()))
        .collect();
    // bidim with every chunk converted to cold form: sealed here, converted below once
    // the seal is older than every snapshot (as the maintenance worker would).
    let bidim_create = cases.iter().find(|c| c.0 == "bidim").unwrap().1.clone();
    cases.push((
        "bidim cold",
        bidim_create,
        "SELECT bidim.seal('{t}')".to_string(),
    ));
    if tsdb {
        exec(c, "CREATE EXTENSION IF NOT EXISTS timescaledb")?;
        cases.extend(timescaledb_cases("{t}"));
    }
    let tables: Vec<String> = (0..cases.len()).map(|i| format!("q_{i}")).collect();
    eprintln!(
        "== queries: loading {} rows into each table",
        HOSTS * epochs
    );
    exec(c, &tsbs_walk_file_sql(file, 0, epochs))?;
    let mut storage = Vec::new();
    for (t, (name, create, after)) in tables.iter().zip(&cases) {
        let create = create.replace("{t}", t);
        let start = Instant::now();
        exec(
            c,
            &format!("DROP TABLE IF EXISTS {t}; {create}; COPY {t} FROM '{file}'"),
        )?;
        let load = start.elapsed().as_secs_f64();
        let start = Instant::now();
        if !after.is_empty() {
            exec(c, &after.replace("{t}", t))?;
        }
        let mut convert = start.elapsed().as_secs_f64();
        if *name == "bidim cold" {
            // A chunk another session holds (autovacuum's ANALYZE of a freshly loaded
            // chunk) is skipped by a conversion and taken by a later one, as the
            // maintenance worker would: convert until no sealed chunk is left, timing
            // only the conversions.
            for _ in 0..120 {
                let start = Instant::now();
                exec(c, &format!("SELECT bidim.convert('{t}')"))?;
                convert += start.elapsed().as_secs_f64();
                let sealed: i64 = c
                    .query_one(
                        &format!("SELECT count(*) FROM bidim.chunks WHERE rel = '{t}'::regclass AND state <> 'cold'"),
                        &[],
                    )
                    .map_err(|e| e.to_string())?
                    .get(0);
                if sealed == 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
        exec(c, &format!("VACUUM ANALYZE {t}"))?;
        let size = if name.starts_with("timescaledb") {
            format!("SELECT sum(total_bytes)::int8 FROM hypertable_detailed_size('{t}')")
        } else {
            size_sql(t)
        };
        let bytes: i64 = c
            .query_one(size.as_str(), &[])
            .map_err(|e| e.to_string())?
            .get(0);
        storage.push((*name, load, convert, bytes));
    }
    println!("\n### storage\n");
    println!(
        "{} TSBS cpu-only rows ({HOSTS} hosts x {epochs} epochs of 10 s, random-walk values) loaded by COPY from a server-side file; then sealed and converted (bidim cold) or compressed (TimescaleDB, segmentby tags_id, orderby time DESC), then VACUUM ANALYZE. Bytes: the table with its indexes and TOAST, every chunk.\n",
        HOSTS * epochs
    );
    println!("| table | COPY s | convert / compress s | rows/s converted | bytes | bytes a row |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, load, convert, bytes) in &storage {
        let rate = if *convert > 0.01 {
            format!("{:.0}", (HOSTS * epochs) as f64 / convert)
        } else {
            "-".to_string()
        };
        println!(
            "| {name} | {load:.1} | {convert:.1} | {rate} | {bytes} | {:.2} |",
            *bytes as f64 / (HOSTS * epochs) as f64
        );
    }
    if let Some(i) = cases.iter().position(|c| c.0 == "bidim cold") {
        let t = &tables[i];
        println!(
            "\nbidim cold, bytes a row by column (encoded columns, `bidim.cold_column_bytes`):\n"
        );
        println!("| column | bytes a row |");
        println!("|---|---:|");
        let rows = c
            .query(
                &format!(
                    "SELECT a.attname::text, sum(b.bytes)::int8
                     FROM bidim.chunk c,
                          unnest(bidim.cold_column_bytes(c.rel::regclass, c.chunk_id)) WITH ORDINALITY b(bytes, attnum)
                     JOIN pg_attribute a ON a.attrelid = '{t}'::regclass AND a.attnum = b.attnum
                     WHERE c.rel = '{t}'::regclass AND c.state = 'cold' AND NOT a.attisdropped
                     GROUP BY a.attnum, a.attname ORDER BY a.attnum"
                ),
                &[],
            )
            .map_err(|e| e.to_string())?;
        for r in rows {
            let (name, b): (String, i64) = (r.get(0), r.get(1));
            println!("| {name} | {:.2} |", b as f64 / (HOSTS * epochs) as f64);
        }
    }
    // What the maintenance worker does within minutes on a live system: seal the hot
    // chunks of finished partitions, then measure the sealed chunks' time bounds (one
    // transaction per run: bounds are measured once no snapshot predates the seal).
    for _ in 0..8 {
        exec(c, "SELECT bidim._maintain()")?;
    }
    // TSBS's tags table (one row per host; TSBS's queries pick hosts by hostname), with
    // a tagset and its GIN index for the data-model query.
    exec(
        c,
        &format!(
            "DROP TABLE IF EXISTS tags; CREATE TABLE tags (id integer PRIMARY KEY, hostname text, tagset tagset);
             INSERT INTO tags SELECT h, 'host_' || h,
                    format('{{hostname:host_%s,rack:r%s,service:svc-%s,env:%s}}', h, h % 100, h % 20,
                           CASE WHEN h % 3 = 0 THEN 'prod' ELSE 'staging' END)::tagset
             FROM generate_series(1, {HOSTS}) h;
             CREATE INDEX ON tags (hostname); CREATE INDEX ON tags USING gin (tagset); ANALYZE tags"
        ),
    )?;
    // A window in the middle of the data.
    let mid = "timestamptz '2016-01-01 00:00:00+00' + make_interval(secs => 10 * {e})";
    let s = mid.replace("{e}", &(epochs / 2).to_string());
    let queries: Vec<(&str, String)> = vec![
        ("1 host, 1 h, max per minute", format!("SELECT date_trunc('minute', time) m, max(usage_user) FROM {{t}} WHERE tags_id = 42 AND time >= {s} AND time < {s} + interval '1 hour' GROUP BY 1 ORDER BY 1")),
        ("1 host, 12 h, usage_user > 90", format!("SELECT * FROM {{t}} WHERE tags_id = 7 AND usage_user > 90 AND time >= {s} AND time < {s} + interval '12 hours'")),
        ("8 hosts, 8 h, max per hour", format!("SELECT date_trunc('hour', time) h, max(usage_user), max(usage_system) FROM {{t}} WHERE tags_id IN (1, 50, 99, 200, 333, 512, 700, 999) AND time >= {s} AND time < {s} + interval '8 hours' GROUP BY 1 ORDER BY 1")),
        ("all hosts, 1 h, max per host", format!("SELECT tags_id, max(usage_user) FROM {{t}} WHERE time >= {s} AND time < {s} + interval '1 hour' GROUP BY 1")),
        ("1 host, last point", "SELECT * FROM {t} WHERE tags_id = 42 ORDER BY time DESC LIMIT 1".to_string()),
        ("whole table, avg", "SELECT count(*), avg(usage_user) FROM {t}".to_string()),
        // TSBS's own SQL shapes: hosts chosen by a subquery on the tags table.
        ("single-groupby-1-1-1", format!("SELECT date_trunc('minute', time) m, max(usage_user) FROM {{t}} WHERE tags_id IN (SELECT id FROM tags WHERE hostname IN ('host_42')) AND time >= {s} AND time < {s} + interval '1 hour' GROUP BY 1 ORDER BY 1")),
        ("single-groupby-1-1-12", format!("SELECT date_trunc('minute', time) m, max(usage_user) FROM {{t}} WHERE tags_id IN (SELECT id FROM tags WHERE hostname IN ('host_42')) AND time >= {s} AND time < {s} + interval '12 hours' GROUP BY 1 ORDER BY 1")),
        ("single-groupby-1-8-1", format!("SELECT date_trunc('minute', time) m, max(usage_user) FROM {{t}} WHERE tags_id IN (SELECT id FROM tags WHERE hostname IN ('host_1', 'host_50', 'host_99', 'host_200', 'host_333', 'host_512', 'host_700', 'host_999')) AND time >= {s} AND time < {s} + interval '1 hour' GROUP BY 1 ORDER BY 1")),
        ("single-groupby-5-1-1", format!("SELECT date_trunc('minute', time) m, max(usage_user), max(usage_system), max(usage_idle), max(usage_nice), max(usage_iowait) FROM {{t}} WHERE tags_id IN (SELECT id FROM tags WHERE hostname IN ('host_42')) AND time >= {s} AND time < {s} + interval '1 hour' GROUP BY 1 ORDER BY 1")),
        ("single-groupby-5-8-1", format!("SELECT date_trunc('minute', time) m, max(usage_user), max(usage_system), max(usage_idle), max(usage_nice), max(usage_iowait) FROM {{t}} WHERE tags_id IN (SELECT id FROM tags WHERE hostname IN ('host_1', 'host_50', 'host_99', 'host_200', 'host_333', 'host_512', 'host_700', 'host_999')) AND time >= {s} AND time < {s} + interval '1 hour' GROUP BY 1 ORDER BY 1")),
        ("cpu-max-all-8", format!("SELECT date_trunc('hour', time) h, max(usage_user), max(usage_system), max(usage_idle), max(usage_nice), max(usage_iowait), max(usage_irq), max(usage_softirq), max(usage_steal), max(usage_guest), max(usage_guest_nice) FROM {{t}} WHERE tags_id IN (SELECT id FROM tags WHERE hostname IN ('host_1', 'host_50', 'host_99', 'host_200', 'host_333', 'host_512', 'host_700', 'host_999')) AND time >= {s} AND time < {s} + interval '8 hours' GROUP BY 1 ORDER BY 1")),
        ("cpu-max-all-1", format!("SELECT date_trunc('hour', time) h, max(usage_user), max(usage_system), max(usage_idle), max(usage_nice), max(usage_iowait), max(usage_irq), max(usage_softirq), max(usage_steal), max(usage_guest), max(usage_guest_nice) FROM {{t}} WHERE tags_id IN (SELECT id FROM tags WHERE hostname IN ('host_42')) AND time >= {s} AND time < {s} + interval '8 hours' GROUP BY 1 ORDER BY 1")),
        ("double-groupby-1", format!("WITH a AS (SELECT date_trunc('hour', time) h, tags_id, avg(usage_user) u FROM {{t}} WHERE time >= {s} AND time < {s} + interval '12 hours' GROUP BY 1, 2) SELECT h, tags.hostname, u FROM a JOIN tags ON a.tags_id = tags.id ORDER BY h, tags.hostname")),
        ("double-groupby-all", format!("WITH a AS (SELECT date_trunc('hour', time) h, tags_id, avg(usage_user) u1, avg(usage_system) u2, avg(usage_idle) u3, avg(usage_nice) u4, avg(usage_iowait) u5, avg(usage_irq) u6, avg(usage_softirq) u7, avg(usage_steal) u8, avg(usage_guest) u9, avg(usage_guest_nice) u10 FROM {{t}} WHERE time >= {s} AND time < {s} + interval '12 hours' GROUP BY 1, 2) SELECT h, tags.hostname, u1, u2, u3, u4, u5, u6, u7, u8, u9, u10 FROM a JOIN tags ON a.tags_id = tags.id ORDER BY h, tags.hostname")),
        ("high-cpu-all", format!("SELECT * FROM {{t}} WHERE usage_user > 90.0 AND time >= {s} AND time < {s} + interval '12 hours'")),
        ("high-cpu-1", format!("SELECT * FROM {{t}} WHERE usage_user > 90.0 AND time >= {s} AND time < {s} + interval '12 hours' AND tags_id IN (SELECT id FROM tags WHERE hostname IN ('host_7'))")),
        ("lastpoint", "SELECT DISTINCT ON (t.hostname) * FROM tags t INNER JOIN LATERAL (SELECT * FROM {t} c WHERE c.tags_id = t.id ORDER BY time DESC LIMIT 1) AS b ON true ORDER BY t.hostname, b.time DESC".to_string()),
        ("groupby-orderby-limit", format!("SELECT date_trunc('minute', time) m, max(usage_user) FROM {{t}} WHERE time < {s} GROUP BY 1 ORDER BY 1 DESC LIMIT 5")),
        ("p99 per host, 12 h (ddsketch)", format!("SELECT tags_id, approx_percentile(ddsketch_agg(usage_user), 0.99) FROM {{t}} WHERE time >= {s} AND time < {s} + interval '12 hours' GROUP BY tags_id")),
        ("data model: tag query picks series, p99", format!("SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY usage_user) FROM {{t}} p WHERE p.tags_id IN (SELECT id FROM tags WHERE tagset @@ 'env:prod AND rack:r7') AND p.time >= {s} AND p.time < {s} + interval '2 hours'")),
    ];
    println!("\n### queries\n");
    println!(
        "TSBS-like queries on {} rows ({HOSTS} hosts x {epochs} epochs of 10 s) stored each way, after VACUUM ANALYZE; one unmeasured run first, then each table's runs back to back in two passes (tables in order, then reversed), each pass at least half of {runs} runs and more until half a second has passed (at most 100); median per table, ms.\n",
        HOSTS * epochs
    );
    let names: Vec<&str> = cases.iter().map(|(n, _, _)| *n).collect();
    println!("| query | {} |", names.join(" | "));
    println!("|---|{}", "---:|".repeat(names.len()));
    // BIDIM_QUERIES=lastpoint,high-cpu runs the queries whose labels contain one of
    // these (default: all).
    let only = std::env::var("BIDIM_QUERIES").unwrap_or_default();
    for (label, q) in &queries {
        if !only.is_empty() && !only.split(',').any(|w| label.contains(w.trim())) {
            continue;
        }
        // First each table's answer (also the unmeasured warm-up run), then each
        // table's runs back to back (warm, as a stream of one query type), in two
        // passes: tables in order, then in reverse, so drift on this shared machine
        // does not favour the tables measured first. Fast queries get more runs: at
        // least `runs` a table, and more until it has run for a second or 200 times (a
        // median of three sub-millisecond runs moves 20% between runs of one build).
        let mut answers = Vec::new();
        let mut measured = Vec::new();
        for (i, t) in tables.iter().enumerate() {
            // A LATERAL read per host over a heap table without an index is 1000 full
            // scans: left out (TSBS runs lastpoint against indexed tables only).
            if i == 0 && label.starts_with("lastpoint") {
                continue;
            }
            let sql = q.replace("{t}", t);
            let fingerprint =
                format!("SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM ({sql}) x");
            let a: Option<String> = c
                .query_one(fingerprint.as_str(), &[])
                .map_err(|e| format!("{sql}: {e}"))?
                .get(0);
            answers.push(a);
            measured.push((i, sql));
        }
        if answers.iter().any(|a| a != &answers[0]) {
            return Err(format!("the tables answer {label} differently"));
        }
        let mut times = vec![Vec::new(); tables.len()];
        for pass in 0..2 {
            let order: Vec<&(usize, String)> = match pass {
                0 => measured.iter().collect(),
                _ => measured.iter().rev().collect(),
            };
            for (i, sql) in order {
                let began = Instant::now();
                let mut n = 0;
                while n < runs.max(1).div_ceil(2)
                    || (began.elapsed().as_secs_f64() < 0.5 && n < 100)
                {
                    let start = Instant::now();
                    c.query(sql.as_str(), &[])
                        .map_err(|e| format!("{sql}: {e}"))?;
                    times[*i].push(start.elapsed().as_secs_f64() * 1000.0);
                    n += 1;
                }
            }
        }
        let cells: Vec<String> = times
            .iter()
            .map(|t| match t.is_empty() {
                true => "(1000 full scans)".to_string(),
                false => ms_cell(median(t)),
            })
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
    Ok(())
}

/// Retention: drop the oldest of 30 days of TSBS rows, three ways; seconds and WAL.
fn retention_workload(c: &mut Client, rows: i64, file: &str) -> Result<()> {
    let epochs_per_day = 8640;
    let hosts = (rows / (30 * epochs_per_day)).max(1);
    let per_day = hosts * epochs_per_day;
    eprintln!(
        "== retention: {hosts} hosts x 30 days = {} rows",
        per_day * 30
    );
    // One day at a time through a server-side file (a day is 1/30 of the rows), so the
    // full scale needs no second copy of the data on disk.
    let day_file = |d: i64| {
        format!(
            "COPY (SELECT timestamptz '2016-01-01 00:00:00+00' + make_interval(secs => 10 * e), h, \
               floor(random() * 101), floor(random() * 101), floor(random() * 101), floor(random() * 101), \
               floor(random() * 101), floor(random() * 101), floor(random() * 101), floor(random() * 101), \
               floor(random() * 101), floor(random() * 101) \
             FROM generate_series({first}, {last}) e, generate_series(1, {hosts}) h ORDER BY e, h) TO '{file}'",
            first = d * epochs_per_day,
            last = (d + 1) * epochs_per_day - 1
        )
    };
    // BIDIM_RETENTION_CASES=heap,native,bidim picks cases (default: all).
    let wanted =
        std::env::var("BIDIM_RETENTION_CASES").unwrap_or_else(|_| "heap,native,bidim".into());
    let cutoff = "timestamptz '2016-01-02 00:00:00+00'";
    let mut parts = String::new();
    for d in 0..30 {
        parts.push_str(&format!(
            "CREATE TABLE r_part_{d} PARTITION OF r_part FOR VALUES FROM (timestamptz '2016-01-01 00:00:00+00' + interval '{d} days') TO (timestamptz '2016-01-01 00:00:00+00' + interval '{} days');",
            d + 1
        ));
    }
    // (case, untimed set-up, timed statements run one by one: VACUUM cannot share a
    // transaction).
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "heap: DELETE + VACUUM",
            format!("DROP TABLE IF EXISTS r_heap; {}", cpu_table("r_heap")),
            vec![format!("DELETE FROM r_heap WHERE time < {cutoff}"), "VACUUM r_heap".to_string()],
        ),
        (
            "native partitions: DROP TABLE",
            format!(
                "DROP TABLE IF EXISTS r_part; {} PARTITION BY RANGE (time); {parts}",
                cpu_table("r_part")
            ),
            vec!["DROP TABLE r_part_0".to_string()],
        ),
        (
            "bidim: drop_before",
            format!(
                "DROP TABLE IF EXISTS r_bidim; {} USING bidim; SELECT bidim.configure('r_bidim', key_column => 'tags_id', time_column => 'time')",
                cpu_table("r_bidim")
            ),
            vec![format!("SELECT bidim.drop_before('r_bidim', {cutoff})")],
        ),
    ];
    println!("\n### retention\n");
    println!(
        "Drop the oldest day of 30 ({hosts} hosts every 10 s, {per_day} rows a day, {} rows in all); one run each, after a CHECKPOINT.\n",
        per_day * 30
    );
    println!("| case | seconds | WAL bytes |");
    println!("|---|---:|---:|");
    for (name, setup, timed) in &cases {
        let table = if name.starts_with("heap") {
            "r_heap"
        } else if name.starts_with("native") {
            "r_part"
        } else {
            "r_bidim"
        };
        let short = table.trim_start_matches("r_").replace("part", "native");
        if !wanted.split(',').any(|w| w.trim() == short) {
            continue;
        }
        eprintln!("   {name}: loading");
        exec(c, setup)?;
        for d in 0..30 {
            exec(c, &day_file(d))?;
            exec(c, &format!("COPY {table} FROM '{file}'"))?;
        }
        exec(c, "CHECKPOINT")?;
        let before: String = c
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .map_err(|e| e.to_string())?
            .get(0);
        let start = Instant::now();
        for stmt in timed {
            exec(c, stmt)?;
        }
        let secs = start.elapsed().as_secs_f64();
        let wal: i64 = c
            .query_one(
                "SELECT (pg_current_wal_insert_lsn() - $1::text::pg_lsn)::int8",
                &[&before],
            )
            .map_err(|e| e.to_string())?
            .get(0);
        eprintln!("   {name}: {secs:.3} s, {wal} WAL bytes");
        println!("| {name} | {secs:.3} | {wal} |");
        exec(c, "DROP TABLE IF EXISTS r_heap, r_part, r_bidim")?;
    }
    Ok(())
}

/// Percentile aggregates on `rows` lognormal values: avg, percentile_disc, tdigest and
/// ddsketch side by side, over the whole table and GROUP BY 1000 groups; serial and
/// with parallel workers; sketch sizes.
fn sketch_workload(c: &mut Client, rows: i64, runs: usize, peers: bool) -> Result<()> {
    let tdigest = peers
        && c.query_one(
            "SELECT count(*) FROM pg_extension WHERE extname = 'tdigest'",
            &[],
        )
        .map_err(|e| e.to_string())?
        .get::<_, i64>(0)
            > 0;
    eprintln!("== sketch: loading {rows} lognormal rows");
    exec(
        c,
        &format!(
            "DROP TABLE IF EXISTS lat; SELECT setseed(0.5);
             CREATE TABLE lat AS SELECT g % 1000 AS grp,
               exp(sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))::float8 AS x
             FROM generate_series(1, {rows}) g;"
        ),
    )?;
    exec(c, "VACUUM ANALYZE lat")?;
    let mut cases: Vec<(&str, &str, &str)> = vec![
        (
            "avg(x)",
            "SELECT avg(x) FROM lat",
            "SELECT grp, avg(x) FROM lat GROUP BY grp",
        ),
        (
            "percentile_disc(0.99)",
            "SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY x) FROM lat",
            "SELECT grp, percentile_disc(0.99) WITHIN GROUP (ORDER BY x) FROM lat GROUP BY grp",
        ),
    ];
    if tdigest {
        cases.push((
            "tdigest_percentile(x, 100, 0.99)",
            "SELECT tdigest_percentile(x, 100, 0.99) FROM lat",
            "SELECT grp, tdigest_percentile(x, 100, 0.99) FROM lat GROUP BY grp",
        ));
    }
    cases.push((
        "approx_percentile(ddsketch_agg(x), 0.99)",
        "SELECT approx_percentile(ddsketch_agg(x), 0.99) FROM lat",
        "SELECT grp, approx_percentile(ddsketch_agg(x), 0.99) FROM lat GROUP BY grp",
    ));
    println!("\n### sketch\n");
    println!(
        "{rows} lognormal values (exp of a standard normal) in one heap table, 1000 groups; median of {runs} warm runs (one unmeasured run first), ms; ratio to avg(x) in the same column.\n"
    );
    println!("| aggregate | 1 group, serial | ratio | 1000 groups, serial | ratio | 1000 / 1 | 1 group, 2 workers | ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let time = |c: &mut Client, sql: &str, parallel: bool| -> Result<f64> {
        exec(
            c,
            if parallel {
                "SET max_parallel_workers_per_gather = 2"
            } else {
                "SET max_parallel_workers_per_gather = 0"
            },
        )?;
        let mut times = Vec::new();
        for i in 0..=runs.max(1) {
            let start = Instant::now();
            c.query(sql, &[]).map_err(|e| format!("{sql}: {e}"))?;
            if i > 0 {
                times.push(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
        exec(c, "RESET max_parallel_workers_per_gather")?;
        Ok(median(&times))
    };
    let mut base = (0.0, 0.0, 0.0);
    for (i, (name, one, grouped)) in cases.iter().enumerate() {
        eprintln!("   {name}");
        let a = time(c, one, false)?;
        let b = time(c, grouped, false)?;
        let p = time(c, one, true)?;
        if i == 0 {
            base = (a, b, p);
        }
        println!(
            "| `{name}` | {a:.0} | {:.2}x | {b:.0} | {:.2}x | {:.2}x | {p:.0} | {:.2}x |",
            a / base.0,
            b / base.1,
            b / a,
            p / base.2
        );
    }
    let (bytes, bins, p99, exact): (i32, i32, f64, f64) = {
        let r = c
            .query_one(
                "SELECT pg_column_size(s), ddsketch_bins(s), approx_percentile(s, 0.99),
                        (SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY x) FROM lat)
                 FROM (SELECT ddsketch_agg(x) s FROM lat) q",
                &[],
            )
            .map_err(|e| e.to_string())?;
        (r.get(0), r.get(1), r.get(2), r.get(3))
    };
    println!(
        "\nddsketch of all {rows} values: {bytes} bytes on disk for {bins} non-empty bins ({:.2} bytes a bin); p99 {p99:.4} vs exact {exact:.4} (relative error {:.4}).",
        bytes as f64 / bins as f64,
        (p99 - exact).abs() / exact
    );
    if tdigest {
        let t: i32 = c
            .query_one("SELECT pg_column_size(tdigest(x, 100)) FROM lat", &[])
            .map_err(|e| e.to_string())?
            .get(0);
        println!("tdigest(x, 100) of the same values: {t} bytes.");
    }
    exec(c, "DROP TABLE lat")?;
    Ok(())
}

/// Tag queries on `rows` series with 6 tags of cardinalities 3/10/30/200/50000/20,
/// stored as tagset + GIN (tagset_ops), text[] + GIN and jsonb + GIN (jsonb_path_ops).
fn tags_workload(c: &mut Client, rows: i64, runs: usize) -> Result<()> {
    eprintln!("== tags: loading {rows} series three ways");
    let pick = |n: i64, salt: i64| format!("(abs(hashint4((g * {salt} + 1)::int4)) % {n})");
    let (env, region, az, service, host, team) = (
        format!("(ARRAY['prod', 'dev', 'staging'])[1 + {}]", pick(3, 7)),
        pick(10, 11),
        pick(30, 13),
        pick(200, 17),
        pick(50000, 19),
        pick(20, 23),
    );
    exec(
        c,
        &format!(
            "DROP TABLE IF EXISTS tg_src, tg_tagset, tg_text, tg_jsonb;
             CREATE TABLE tg_src AS
             SELECT g AS id, {env} AS env, 'r-' || {region} AS region, 'az-' || {az} AS az,
                    'svc-' || {service} AS service, 'h-' || {host} AS host, 't-' || {team} AS team
             FROM generate_series(1, {rows}) g;
             CREATE TABLE tg_text AS SELECT id, ARRAY['env:' || env, 'region:' || region, 'az:' || az,
                    'service:' || service, 'host:' || host, 'team:' || team] AS tags FROM tg_src;
             CREATE TABLE tg_tagset AS SELECT id, tags(tags) AS tags FROM tg_text;
             CREATE TABLE tg_jsonb AS SELECT id, jsonb_build_object('env', env, 'region', region, 'az', az,
                    'service', service, 'host', host, 'team', team) AS tags FROM tg_src;"
        ),
    )?;
    let mut build = Vec::new();
    for (t, using) in [
        ("tg_tagset", "gin (tags)"),
        ("tg_text", "gin (tags)"),
        ("tg_jsonb", "gin (tags jsonb_path_ops)"),
    ] {
        let start = Instant::now();
        exec(c, &format!("CREATE INDEX {t}_idx ON {t} USING {using}"))?;
        build.push(start.elapsed().as_secs_f64());
        exec(c, &format!("VACUUM ANALYZE {t}"))?;
    }
    exec(c, "SELECT bidim.enable_tag_dictionary('tg_tagset', 'tags')")?;
    let q: Vec<(&str, &str, &str, &str)> = vec![
        (
            "env:prod AND service:svc-17",
            "SELECT count(*) FROM tg_tagset WHERE tags @@ 'env:prod AND service:svc-17'",
            "SELECT count(*) FROM tg_text WHERE tags @> ARRAY['env:prod', 'service:svc-17']",
            r#"SELECT count(*) FROM tg_jsonb WHERE tags @> '{"env": "prod", "service": "svc-17"}'"#,
        ),
        (
            "rare tag host:h-123",
            "SELECT count(*) FROM tg_tagset WHERE tags @@ 'host:h-123'",
            "SELECT count(*) FROM tg_text WHERE tags @> ARRAY['host:h-123']",
            r#"SELECT count(*) FROM tg_jsonb WHERE tags @> '{"host": "h-123"}'"#,
        ),
        (
            "env:prod AND NOT region:r-1",
            "SELECT count(*) FROM tg_tagset WHERE tags @@ 'env:prod AND NOT region:r-1'",
            "SELECT count(*) FROM tg_text WHERE tags @> ARRAY['env:prod'] AND NOT tags @> ARRAY['region:r-1']",
            r#"SELECT count(*) FROM tg_jsonb WHERE tags @> '{"env": "prod"}' AND NOT tags @> '{"region": "r-1"}'"#,
        ),
        (
            "glob service:svc-19*",
            "SELECT count(*) FROM tg_tagset WHERE tags @@ 'service:svc-19*'",
            "SELECT count(*) FROM tg_text WHERE EXISTS (SELECT 1 FROM unnest(tags) t WHERE t LIKE 'service:svc-19%')",
            "SELECT count(*) FROM tg_jsonb WHERE tags ->> 'service' LIKE 'svc-19%'",
        ),
        (
            "glob service:svc-1* (55% of series)",
            "SELECT count(*) FROM tg_tagset WHERE tags @@ 'service:svc-1*'",
            "SELECT count(*) FROM tg_text WHERE EXISTS (SELECT 1 FROM unnest(tags) t WHERE t LIKE 'service:svc-1%')",
            "SELECT count(*) FROM tg_jsonb WHERE tags ->> 'service' LIKE 'svc-1%'",
        ),
        (
            "regex service:/svc-1[0-9]/",
            "SELECT count(*) FROM tg_tagset WHERE tags @@ 'service:/svc-1[0-9]/'",
            "SELECT count(*) FROM tg_text WHERE EXISTS (SELECT 1 FROM unnest(tags) t WHERE t ~ '^service:svc-1[0-9]$')",
            r#"SELECT count(*) FROM tg_jsonb WHERE tags @? '$.service ? (@ like_regex "^svc-1[0-9]$")'"#,
        ),
        (
            "values of az (describe)",
            "SELECT count(*) FROM bidim.tag_values('tg_tagset', 'az')",
            "SELECT count(DISTINCT t) FROM tg_text, unnest(tags) t WHERE t LIKE 'az:%'",
            "SELECT count(DISTINCT tags ->> 'az') FROM tg_jsonb",
        ),
    ];
    println!("\n### tags\n");
    println!(
        "{rows} series, 6 tags each (env 3, region 10, az 30, service 200, host 50000, team 20 values), three ways with a GIN index each; median of {runs} warm runs (one unmeasured run first), ms; rows found in brackets.\n"
    );
    println!("| query | tagset + GIN (tagset_ops) | text[] + GIN | jsonb + GIN (jsonb_path_ops) |");
    println!("|---|---:|---:|---:|");
    for (label, a, b, j) in &q {
        let mut cells = Vec::new();
        for sql in [a, b, j] {
            let n: i64 = c
                .query_one(*sql, &[])
                .map_err(|e| format!("{sql}: {e}"))?
                .get(0);
            let mut times = Vec::new();
            for _ in 0..runs.max(1) {
                let start = Instant::now();
                c.query(*sql, &[]).map_err(|e| format!("{sql}: {e}"))?;
                times.push(start.elapsed().as_secs_f64() * 1000.0);
            }
            cells.push(format!("{:.2} [{n}]", median(&times)));
        }
        println!("| {label} | {} |", cells.join(" | "));
    }
    let sizes: Vec<i64> = ["tg_tagset_idx", "tg_text_idx", "tg_jsonb_idx"]
        .iter()
        .map(|i| {
            c.query_one(&format!("SELECT pg_relation_size('{i}')"), &[])
                .map(|r| r.get::<_, i64>(0))
                .unwrap_or(0)
        })
        .collect();
    println!(
        "| index size, MB | {:.1} | {:.1} | {:.1} |",
        sizes[0] as f64 / 1048576.0,
        sizes[1] as f64 / 1048576.0,
        sizes[2] as f64 / 1048576.0
    );
    println!(
        "| index build, s | {:.1} | {:.1} | {:.1} |",
        build[0], build[1], build[2]
    );
    // The same tagset index without key entries.
    exec(c, "DROP INDEX tg_tagset_idx")?;
    let start = Instant::now();
    exec(
        c,
        "CREATE INDEX tg_tagset_nokeys ON tg_tagset USING gin (tags tagset_ops (key_entries = false))",
    )?;
    let nokeys_build = start.elapsed().as_secs_f64();
    let nokeys: i64 = c
        .query_one("SELECT pg_relation_size('tg_tagset_nokeys')", &[])
        .map_err(|e| e.to_string())?
        .get(0);
    let sel = "SELECT count(*) FROM tg_tagset WHERE tags @@ 'env:prod AND service:svc-17'";
    let mut times = Vec::new();
    c.query(sel, &[]).map_err(|e| e.to_string())?;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        c.query(sel, &[]).map_err(|e| e.to_string())?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "\nWith `tagset_ops (key_entries = false)`: index {:.1} MB, built in {nokeys_build:.1} s; env:prod AND service:svc-17 in {:.2} ms.",
        nokeys as f64 / 1048576.0,
        median(&times)
    );
    exec(c, "DROP TABLE tg_src, tg_tagset, tg_text, tg_jsonb")?;
    Ok(())
}

struct Measured {
    case: &'static str,
    secs: Vec<f64>,
    bytes: Option<i64>,
}

/// Chunk creation: rows spread over many cells, so that nearly every few hundred rows
/// open a new chunk (each a heap relation with an index, made in the inserting
/// transaction). Prints seconds, chunks made and chunks per second per case, heap as
/// the reference.
fn chunks_workload(c: &mut Client, rows: i64, runs: usize) -> Result<()> {
    let rows = rows.min(200_000);
    let insert = |t: &str| {
        format!(
            "INSERT INTO {t} SELECT g % 100, timestamptz '2026-01-01' + g * interval '1 second', g
             FROM generate_series(1, {rows}) g"
        )
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "heap",
            "CREATE TABLE ch (k bigint, ts timestamptz, v float8)".into(),
        ),
        (
            "bidim, hot_chunk_rows 200",
            "CREATE TABLE ch (k bigint, ts timestamptz, v float8) USING bidim;
             SELECT bidim.configure('ch', hot_chunk_rows => 200)"
                .into(),
        ),
        (
            "bidim, 10-minute partitions",
            "CREATE TABLE ch (k bigint, ts timestamptz, v float8) USING bidim;
             SELECT bidim.configure('ch', partition_interval => '10 minutes')"
                .into(),
        ),
    ];
    println!("\n### chunks\n\nINSERT ... SELECT of {rows} rows (100 keys, one row a second) in one statement; chunks made per second\n");
    println!("| case | median s | chunks | chunks/s | rows/s | runs |");
    println!("|---|---:|---:|---:|---:|---|");
    for (name, create) in cases {
        let mut secs = Vec::new();
        let mut chunks = 0i64;
        for _ in 0..runs {
            exec(c, &format!("DROP TABLE IF EXISTS ch; {create}"))?;
            exec(c, "CHECKPOINT")?;
            let t = Instant::now();
            exec(
                c,
                &format!(
                    "SET bidim.max_chunks_per_transaction = 100000; {}",
                    insert("ch")
                ),
            )?;
            secs.push(t.elapsed().as_secs_f64());
            chunks = c
                .query_one(
                    "SELECT count(*) FROM bidim.chunk WHERE rel = 'ch'::regclass",
                    &[],
                )
                .map_err(|e| e.to_string())?
                .get(0);
        }
        let med = median(&secs);
        let runs: Vec<String> = secs.iter().map(|s| format!("{s:.2}")).collect();
        println!(
            "| {name} | {med:.3} | {chunks} | {:.0} | {:.0} k | {} |",
            chunks as f64 / med,
            rows as f64 / med / 1000.0,
            runs.join(", ")
        );
    }
    exec(
        c,
        "DROP TABLE IF EXISTS ch; RESET bidim.max_chunks_per_transaction",
    )
}

/// Planning and execution time as a table grows from 100 to 10,000 chunks (one-hour
/// partitions of 5 series each, sealed and measured as the maintenance job leaves
/// them), with heap + btree(series_id, ts) holding the same rows as the reference.
/// BIDIM_PLANNING_CHUNKS=100,1000 picks the sizes.
fn planning_workload(c: &mut Client, runs: usize) -> Result<()> {
    let sizes: Vec<i64> = std::env::var("BIDIM_PLANNING_CHUNKS")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!("\n### planning\n");
    println!("Planning / execution time (ms, median of {runs} runs after one unmeasured run, EXPLAIN ANALYZE) on tables of 1-hour partitions holding 5 series each; the newest partition is the last hour.\n");
    println!("| chunks | query | bidim planning | bidim execution | heap + btree planning | heap + btree execution |");
    println!("|---:|---|---:|---:|---:|---:|");
    for n in sizes {
        eprintln!("== planning: {n} chunks");
        exec(
            c,
            "DROP TABLE IF EXISTS pl_b, pl_h;
             CREATE TABLE pl_b (series_id int, ts timestamptz, v float8) USING bidim;
             SELECT bidim.configure('pl_b', key_column => 'series_id', time_column => 'ts', partition_interval => '1 hour');
             CREATE TABLE pl_h (series_id int, ts timestamptz, v float8)",
        )?;
        // A statement per 250 partitions: each new chunk holds its locks to commit.
        let mut h = 0;
        while h < n {
            let last = (h + 250).min(n) - 1;
            exec(
                c,
                &format!(
                    "INSERT INTO pl_b SELECT s, timestamptz '2024-01-01' + make_interval(hours => h, mins => s), h
                     FROM generate_series({h}, {last}) h, generate_series(1, 5) s"
                ),
            )?;
            h = last + 1;
        }
        exec(
            c,
            "INSERT INTO pl_h SELECT * FROM pl_b; CREATE INDEX ON pl_h (series_id, ts);
             SELECT bidim.seal('pl_b')",
        )?;
        exec(c, "VACUUM ANALYZE pl_b")?;
        exec(c, "VACUUM ANALYZE pl_h")?;
        // What the maintenance job does over a few minutes: measure every chunk.
        loop {
            exec(c, "SELECT bidim._maintain()")?;
            let left: i64 = c
                .query_one(
                    "SELECT count(*) FROM bidim.chunk WHERE rel = 'pl_b'::regclass AND pages IS NULL",
                    &[],
                )
                .map_err(|e| e.to_string())?
                .get(0);
            if left == 0 {
                break;
            }
        }
        let end = format!("timestamptz '2024-01-01' + interval '{n} hours'");
        let mid = format!("timestamptz '2024-01-01' + interval '{} hours'", n / 2);
        let queries = [
            ("1 series, last 2 h", format!("SELECT * FROM {{t}} WHERE series_id = 3 AND ts >= {end} - interval '2 hours'")),
            ("1 series, 2 h mid-history", format!("SELECT * FROM {{t}} WHERE series_id = 3 AND ts >= {mid} AND ts < {mid} + interval '2 hours'")),
            ("1 series, last point", "SELECT * FROM {t} WHERE series_id = 3 ORDER BY ts DESC LIMIT 1".to_string()),
            ("all series, last 2 h", format!("SELECT count(*) FROM {{t}} WHERE ts >= {end} - interval '2 hours'")),
        ];
        for (label, q) in &queries {
            let mut cells = Vec::new();
            for t in ["pl_b", "pl_h"] {
                let sql = format!("EXPLAIN (ANALYZE, SUMMARY) {}", q.replace("{t}", t));
                let (mut plan, mut run) = (Vec::new(), Vec::new());
                for i in 0..=runs.max(1) {
                    let lines = c
                        .query(sql.as_str(), &[])
                        .map_err(|e| format!("{sql}: {e}"))?;
                    // "Planning Time: 0.123 ms", "Execution Time: 4.567 ms"
                    let ms = |what: &str| {
                        lines
                            .iter()
                            .filter_map(|r| {
                                r.get::<_, String>(0)
                                    .trim()
                                    .strip_prefix(what)
                                    .map(str::to_string)
                            })
                            .find_map(|v| v.trim_end_matches(" ms").trim().parse::<f64>().ok())
                            .unwrap_or(f64::NAN)
                    };
                    if i > 0 {
                        plan.push(ms("Planning Time:"));
                        run.push(ms("Execution Time:"));
                    }
                }
                cells.push(format!("{:.2} | {:.2}", median(&plan), median(&run)));
            }
            println!("| {n} | {label} | {} |", cells.join(" | "));
        }
        drop_planning_tables(c, n)?;
    }
    Ok(())
}

/// Drops the planning workload's tables: a thousand partitions per statement first,
/// since dropping a table drops all its chunks in one transaction, with a few locks
/// each (10,000 chunks need more than the default lock table holds).
fn drop_planning_tables(c: &mut Client, partitions: i64) -> Result<()> {
    for h in (1000..partitions).step_by(1000) {
        exec(
            c,
            &format!(
                "SELECT bidim.drop_before('pl_b', timestamptz '2024-01-01' + interval '{h} hours')"
            ),
        )?;
    }
    exec(c, "DROP TABLE IF EXISTS pl_b, pl_h")
}

/// Milliseconds for a table cell: two decimals below 10 ms, where one would round
/// a 0.34 ms query and a 0.26 ms one to the same 0.3.
fn ms_cell(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn exec(c: &mut Client, sql: &str) -> Result<()> {
    c.batch_execute(sql).map_err(|e| {
        let why = e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_else(|| e.to_string());
        format!("{sql}: {why}")
    })
}

fn run_workload(c: &mut Client, w: &Workload, runs: usize) -> Result<Vec<Measured>> {
    eprintln!("== {}: preparing", w.name);
    exec(c, &w.prepare)?;
    let mut out = Vec::new();
    for case in &w.cases {
        let mut m = Measured {
            case: case.name,
            secs: Vec::new(),
            bytes: None,
        };
        for run in 0..runs {
            exec(c, &case.setup)?;
            exec(c, "CHECKPOINT")?;
            let t = Instant::now();
            exec(c, &case.timed)?;
            let s = t.elapsed().as_secs_f64();
            eprintln!("   {} run {}: {:.3} s", case.name, run + 1, s);
            m.secs.push(s);
            if let Some(q) = &case.size {
                m.bytes = Some(
                    c.query_one(q.as_str(), &[])
                        .map_err(|e| e.to_string())?
                        .get(0),
                );
            }
        }
        out.push(m);
    }
    Ok(out)
}

fn print_table(w: &Workload, results: &[Measured]) {
    println!("\n### {}\n\n{}\n", w.name, w.description);
    println!(
        "| case | median s | rows/s | vs {} | size MB | runs |",
        results[0].case
    );
    println!("|---|---:|---:|---:|---:|---|");
    let reference = median(&results[0].secs);
    for m in results {
        let med = median(&m.secs);
        let runs: Vec<String> = m.secs.iter().map(|s| format!("{s:.2}")).collect();
        println!(
            "| {} | {:.3} | {:.0} k | {:.2}x | {} | {} |",
            m.case,
            med,
            w.rows as f64 / med / 1000.0,
            med / reference,
            m.bytes
                .map(|b| format!("{:.0}", b as f64 / 1048576.0))
                .unwrap_or_else(|| "-".into()),
            runs.join(", ")
        );
    }
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bidim-bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = real_main(&opts) {
        eprintln!("bidim-bench: {e}");
        std::process::exit(1);
    }
}

fn real_main(opts: &Options) -> Result<()> {
    let tsdb = timescaledb_installed();
    let mut builder = Cluster::builder();
    if tsdb {
        builder = builder
            .setting("shared_preload_libraries", "'bidim,timescaledb'")
            .setting("timescaledb.telemetry_level", "off");
    }
    let cluster = builder
        .setting("shared_buffers", "'1GB'")
        .setting("max_wal_size", "'16GB'")
        .setting("checkpoint_timeout", "'30min'")
        .setting("maintenance_work_mem", "'512MB'")
        .setting("work_mem", "'64MB'")
        .start()?;
    let mut c = cluster.connect()?;
    exec(&mut c, "CREATE EXTENSION bidim")?;
    let mut peers = Vec::new();
    for ext in ["tdigest", "hll"] {
        let available: bool = c
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = $1)",
                &[&ext],
            )
            .map_err(|e| e.to_string())?
            .get(0);
        if available {
            exec(&mut c, &format!("CREATE EXTENSION {ext}"))?;
            peers.push(ext);
        }
    }
    let version: String = c
        .query_one("SELECT version()", &[])
        .map_err(|e| e.to_string())?
        .get(0);
    println!("# bidim benchmarks\n");
    println!("- server: {version}");
    println!("- settings: shared_buffers 1GB, max_wal_size 16GB, fsync on, 2 cores");
    println!(
        "- peer extensions loaded: {}",
        if peers.is_empty() {
            "none installed".to_string()
        } else {
            peers.join(", ")
        }
    );
    if tsdb {
        println!("- timescaledb preloaded (built from ../shared/peers/ by scripts/bench.sh)");
    }
    println!("- {} runs per case, median reported", opts.runs);

    let file = cluster.dir.join("cpu.tsv");
    let file = file.to_str().ok_or("temp path is not UTF-8")?;
    let all = vec![copy_workload(opts.rows, file)];
    for name in &opts.workloads {
        if ![
            "ingest",
            "queries",
            "retention",
            "sketch",
            "tags",
            "chunks",
            "planning",
            "citus",
            "rollups",
            "intake",
        ]
        .contains(&name.as_str())
            && !all.iter().any(|w| w.name == name)
        {
            return Err(format!("unknown workload {name}"));
        }
    }
    for w in &all {
        if !opts.workloads.is_empty() && !opts.workloads.iter().any(|n| n == w.name) {
            continue;
        }
        let results = run_workload(&mut c, w, opts.runs)?;
        print_table(w, &results);
    }
    if opts.workloads.iter().any(|n| n == "retention") {
        retention_workload(&mut c, opts.rows, file)?;
    }
    if opts.workloads.iter().any(|n| n == "queries") {
        query_workload(&mut c, opts.rows, opts.runs, file, tsdb)?;
    }
    if opts.workloads.iter().any(|n| n == "chunks") {
        chunks_workload(&mut c, opts.rows, opts.runs)?;
    }
    if opts.workloads.iter().any(|n| n == "planning") {
        planning_workload(&mut c, opts.runs)?;
    }
    if opts.workloads.iter().any(|n| n == "tags") {
        tags_workload(&mut c, opts.rows, opts.runs)?;
    }
    if opts.workloads.iter().any(|n| n == "sketch") {
        sketch_workload(&mut c, opts.rows, opts.runs, !peers.is_empty())?;
    }
    if opts.workloads.iter().any(|n| n == "citus") {
        citus_workload(&mut c, opts.rows, opts.runs, file)?;
    }
    if opts.workloads.iter().any(|n| n == "rollups") {
        rollups_workload(&mut c, opts.rows, opts.runs)?;
    }
    if opts.workloads.iter().any(|n| n == "intake") {
        intake::intake_workload(&cluster, &mut c, opts.rows)?;
    }
    // The batched ingest runs only when asked for: it is long (batches x 3 COPYs).
    if opts.workloads.iter().any(|n| n == "ingest") {
        ingest_workload(&mut c, opts.rows, opts.batches, opts.zipf, file)?;
    }
    Ok(())
}

/// A Citus node for the citus workload: the bench's settings, Citus and bidim preloaded.
fn citus_node() -> Result<Cluster> {
    Cluster::builder()
        .setting("shared_preload_libraries", "'citus,bidim'")
        .setting("citus.node_conninfo", "'sslmode=disable'")
        .setting("shared_buffers", "'1GB'")
        .setting("max_wal_size", "'16GB'")
        .setting("checkpoint_timeout", "'30min'")
        .setting("work_mem", "'64MB'")
        .start()
}

/// Ingest (COPY of TSBS rows from a server-side file) and the p99-per-host query
/// through a Citus coordinator with two workers on this machine, against the same on
/// the single node: the ratio is the coordination's cost (loopback: no scaling).
fn citus_workload(c: &mut Client, rows: i64, runs: usize, file: &str) -> Result<()> {
    let epochs = rows / HOSTS;
    let rows = HOSTS * epochs;
    eprintln!("== citus: starting a coordinator and two workers");
    let nodes = [citus_node()?, citus_node()?, citus_node()?];
    for n in &nodes {
        exec(&mut n.connect()?, "CREATE EXTENSION citus")?;
    }
    let mut d = nodes[0].connect()?;
    exec(
        &mut d,
        &format!(
            "SELECT citus_set_coordinator_host('127.0.0.1', {}); SELECT citus_add_node('127.0.0.1', {}); \
             SELECT citus_add_node('127.0.0.1', {}); CREATE EXTENSION bidim",
            nodes[0].port, nodes[1].port, nodes[2].port
        ),
    )?;
    exec(c, &tsbs_walk_file_sql(file, 0, epochs))?;
    let p99 = "SELECT tags_id, approx_percentile(ddsketch_agg(usage_user), 0.99) FROM cpu \
               WHERE time >= '2016-01-01 06:00+00' AND time < timestamptz '2016-01-01 06:00+00' + interval '12 hours' GROUP BY tags_id";
    let bidim = format!(
        "{} USING bidim WITH (bidim.key_column = tags_id, bidim.time_column = time)",
        cpu_table("cpu")
    );
    let heap = cpu_table("cpu");
    let dist = "SELECT create_distributed_table('cpu', 'tags_id', shard_count => 8)";
    struct Row {
        name: &'static str,
        copy: f64,
        query: f64,
    }
    let mut out: Vec<Row> = Vec::new();
    for (name, create, on_citus) in [
        ("heap, single node", heap.clone(), false),
        ("bidim, single node", bidim.clone(), false),
        (
            "heap, Citus (8 shards, 2 workers)",
            format!("{heap}; {dist}"),
            true,
        ),
        (
            "bidim, Citus (8 shards, 2 workers)",
            format!("{bidim}; {dist}"),
            true,
        ),
    ] {
        let client: &mut Client = if on_citus { &mut d } else { &mut *c };
        let mut copies = Vec::new();
        for run in 0..runs {
            exec(client, &format!("DROP TABLE IF EXISTS cpu; {create}"))?;
            exec(client, "CHECKPOINT")?;
            let t = Instant::now();
            exec(client, &format!("COPY cpu FROM '{file}'"))?;
            copies.push(t.elapsed().as_secs_f64());
            eprintln!("   {name} copy run {}: {:.3} s", run + 1, copies[run]);
        }
        exec(client, "ANALYZE cpu")?;
        exec(client, p99)?;
        let mut queries = Vec::new();
        for _ in 0..runs.max(3) {
            let t = Instant::now();
            exec(client, p99)?;
            queries.push(t.elapsed().as_secs_f64());
        }
        out.push(Row {
            name,
            copy: median(&copies),
            query: median(&queries),
        });
        exec(client, "DROP TABLE cpu")?;
    }
    println!("\n### citus\n\nCOPY of {rows} TSBS cpu-only rows (random-walk values) from a server-side file, and the p99 per host over 12 h (ddsketch), on one node and through a Citus 13.2.2 coordinator with two workers on the same machine (loopback: the difference is the coordination's cost, not scaling)\n");
    println!("| case | COPY s | rows/s | COPY vs single node | coordinator cost per row | p99 query ms | query vs single node |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, r) in out.iter().enumerate() {
        let single = &out[i % 2];
        println!(
            "| {} | {:.2} | {:.0} k | {:.2}x | {} | {:.1} | {:.2}x |",
            r.name,
            r.copy,
            rows as f64 / r.copy / 1000.0,
            r.copy / single.copy,
            if i >= 2 {
                format!("{:.2} us", (r.copy - single.copy) / rows as f64 * 1e6)
            } else {
                "-".into()
            },
            r.query * 1000.0,
            r.query / single.query
        );
    }
    Ok(())
}

/// Rollups (issue 16): 1000 series at one point every 10 s up to now, `rows` points in
/// all (259.2M = 30 days), in a bidim table; a 1-hour rollup of `value` materialized
/// in one refresh (its rate is the ingest it keeps up with); then p99 per series and
/// over all series from the rollup views beside the same answer from raw rows.
fn rollups_workload(c: &mut Client, rows: i64, runs: usize) -> Result<()> {
    const SERIES: i64 = 1000;
    let per_day = SERIES * 8640;
    let days = (rows / per_day).max(1);
    let rows = days * per_day;
    eprintln!("== rollups: loading {rows} rows ({days} days of {SERIES} series every 10 s)");
    exec(
        c,
        "DROP TABLE IF EXISTS m CASCADE;
         CREATE TABLE m (series_id int4 NOT NULL, ts timestamptz NOT NULL, value float8 NOT NULL) USING bidim
             WITH (bidim.partition_interval = '1 hour');
         SELECT setseed(0.25);",
    )?;
    let end: String = c
        .query_one("SELECT now()::text", &[])
        .map_err(|e| e.to_string())?
        .get(0);
    let load = Instant::now();
    for d in (0..days).rev() {
        // Time-major (as points arrive), lognormal latencies in ms.
        exec(
            c,
            &format!(
                "INSERT INTO m SELECT s, t, exp(3 + sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))
                 FROM generate_series(timestamptz '{end}' - interval '{} days' + interval '10 s',
                                      timestamptz '{end}' - interval '{d} days', interval '10 s') t,
                      generate_series(1, {SERIES}) s",
                d + 1
            ),
        )?;
        eprintln!(
            "   day {} loaded ({:.0} s so far)",
            days - d,
            load.elapsed().as_secs_f64()
        );
    }
    let load_s = load.elapsed().as_secs_f64();
    exec(c, "VACUUM ANALYZE m")?;
    let refresh = Instant::now();
    // The refresh is timed here, not left to the background worker.
    exec(
        c,
        "SELECT bidim.add_rollup('m', interval '1 hour', columns => ARRAY['value']);
         UPDATE bidim.job SET next_run = now() + interval '1 day' WHERE kind = 'rollup';",
    )?;
    // A statement of its own: the procedure commits between its two steps.
    exec(c, "CALL bidim.refresh_rollup('m_1h')")?;
    let refresh_s = refresh.elapsed().as_secs_f64();
    let (rolled, buckets): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT rows_rolled_up, buckets_materialized FROM bidim.rollups WHERE view = 'm_1h'::regclass",
                &[],
            )
            .map_err(|e| e.to_string())?;
        (r.get(0), r.get(1))
    };
    let sizes: (i64, i64) = {
        let r = c
            .query_one(
                "SELECT bidim.table_size('m'), pg_total_relation_size(data) + pg_total_relation_size(total_data)
                 FROM bidim.rollups WHERE view = 'm_1h'::regclass",
                &[],
            )
            .map_err(|e| e.to_string())?;
        (r.get(0), r.get(1))
    };
    // Ingest goes on: the points of the time the load and the refresh took, up to now,
    // then one more refresh (what the worker does each round: the open hour's row takes
    // the new points up to a minute ago); the views read the last minute raw.
    let caught_up = c
        .execute(
            &format!(
                "INSERT INTO m SELECT s, t, exp(3 + sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))
                 FROM generate_series(timestamptz '{end}' + interval '10 s', now(), interval '10 s') t,
                      generate_series(1, {SERIES}) s"
            ),
            &[],
        )
        .map_err(|e| e.to_string())?;
    let step = Instant::now();
    exec(c, "CALL bidim.refresh_rollup('m_1h')")?;
    let step_ms = step.elapsed().as_secs_f64() * 1000.0;
    let tail: i64 = c
        .query_one(
            "SELECT count(*) FROM m WHERE ts >= (SELECT materialized_until FROM bidim.rollups WHERE view = 'm_1h'::regclass)",
            &[],
        )
        .map_err(|e| e.to_string())?
        .get(0);
    let (minute, open_rows): (f64, i64) = {
        let r = c
            .query_one(
                "SELECT extract(minute FROM now())::float8,
                        (SELECT value_count FROM m_1h_total ORDER BY bucket DESC LIMIT 1)",
                &[],
            )
            .map_err(|e| e.to_string())?;
        (r.get(0), r.get(1))
    };
    exec(c, "VACUUM ANALYZE bidim_rollup.r1, bidim_rollup.r1_total")?;
    let cases = [
        (
            "p99 of series 42, rollup view m_1h",
            "SELECT approx_percentile(rollup(value_sketch), 0.99) FROM m_1h WHERE series_id = 42",
        ),
        (
            "p99 of series 42, raw ddsketch_agg",
            "SELECT approx_percentile(ddsketch_agg(value), 0.99) FROM m WHERE series_id = 42",
        ),
        (
            "p99 of all series, rollup view m_1h_total",
            "SELECT approx_percentile(rollup(value_sketch), 0.99) FROM m_1h_total",
        ),
        (
            "p99 of all series, raw ddsketch_agg",
            "SELECT approx_percentile(ddsketch_agg(value), 0.99) FROM m",
        ),
    ];
    println!("\n### rollups\n");
    println!(
        "{rows} points: {SERIES} series, one every 10 s, {days} days up to now, in a bidim table with one-hour time partitions (`bidim.partition_interval = '1 hour'`, the rollup's bucket: rows not rolled up yet are in the current partition's chunks; heap chunks, not converted). \
         Load: {load_s:.0} s ({:.0} k rows/s, INSERT ... SELECT a day at a time). \
         `bidim.add_rollup('m', '1 hour')` then `CALL bidim.refresh_rollup('m_1h')`: {refresh_s:.1} s for {rolled} rows into {buckets} (series, hour) buckets \
         = **{:.0} k rows/s materialized**. Raw table {:.0} MB, rollup tables {:.0} MB. \
         Then the points of the time that took, up to now ({caught_up} rows), and one more refresh as the worker runs it each round \
         ({step_ms:.0} ms: the open hour's row takes the new points up to a minute ago; {tail} rows left raw for the views). \
         Queries at minute {minute:.0} of the hour (the open hour holds {open_rows} points); median of {runs} warm runs (one unmeasured first), ms.\n",
        rows as f64 / load_s / 1000.0,
        rolled as f64 / refresh_s / 1000.0,
        sizes.0 as f64 / 1048576.0,
        sizes.1 as f64 / 1048576.0
    );
    println!("| query | median ms | max ms | p99 |");
    println!("|---|---:|---:|---:|");
    let mut answers = Vec::new();
    for (name, sql) in cases {
        eprintln!("   {name}");
        let mut times = Vec::new();
        let mut answer = 0.0;
        let n = if name.contains("all series, raw") {
            runs.min(2)
        } else {
            runs
        };
        for i in 0..=n.max(1) {
            let t = Instant::now();
            answer = c
                .query_one(sql, &[])
                .map_err(|e| format!("{sql}: {e}"))?
                .get::<_, f64>(0);
            if i > 0 {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let max = times.iter().cloned().fold(0.0, f64::max);
        println!(
            "| {name} | {:.1} | {max:.1} | {answer:.4} |",
            median(&times)
        );
        answers.push(answer);
    }
    // The rollup's sketches equal the raw sketches bin for bin.
    let same: (bool, bool) = {
        let r = c
            .query_one(
                "WITH a AS (SELECT rollup(value_sketch) s FROM m_1h WHERE series_id = 42),
                      b AS (SELECT ddsketch_agg(value) s FROM m WHERE series_id = 42),
                      c AS (SELECT rollup(value_sketch) s FROM m_1h_total),
                      d AS (SELECT ddsketch_agg(value) s FROM m)
                 SELECT ddsketch_bucket_counts(a.s) = ddsketch_bucket_counts(b.s) AND ddsketch_bucket_bounds(a.s) = ddsketch_bucket_bounds(b.s)
                          AND ddsketch_count(a.s) = ddsketch_count(b.s) AND ddsketch_min(a.s) = ddsketch_min(b.s) AND ddsketch_max(a.s) = ddsketch_max(b.s),
                        ddsketch_bucket_counts(c.s) = ddsketch_bucket_counts(d.s) AND ddsketch_bucket_bounds(c.s) = ddsketch_bucket_bounds(d.s)
                          AND ddsketch_count(c.s) = ddsketch_count(d.s) AND ddsketch_min(c.s) = ddsketch_min(d.s) AND ddsketch_max(c.s) = ddsketch_max(d.s)
                 FROM a, b, c, d",
                &[],
            )
            .map_err(|e| e.to_string())?;
        (r.get(0), r.get(1))
    };
    println!(
        "\nRollup sketch equals the raw sketch (bins, counts, min, max): series 42 {}, all series {}; p99 rollup {:.4} vs raw {:.4} (series 42), {:.4} vs {:.4} (all).",
        same.0, same.1, answers[0], answers[1], answers[2], answers[3]
    );
    exec(c, "DROP TABLE m CASCADE")?;
    Ok(())
}
