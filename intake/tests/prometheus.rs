//! End to end with a real Prometheus (Debian's 2.42): one Prometheus scrapes itself
//! and an exporter and remote_writes into the intake; a second one has no local data
//! and reads everything through remote_read. Samples in bidim equal what the first
//! holds in its own TSDB, and PromQL answers of the second equal the first's.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

type SeriesSamples = BTreeMap<String, Vec<(i64, u64)>>;

/// A matrix result as labels (JSON text, sorted keys) -> [(ms, value bits)].
fn from_matrix(result: &serde_json::Value) -> SeriesSamples {
    let mut out = BTreeMap::new();
    for s in result.as_array().expect("matrix") {
        let labels: BTreeMap<String, String> =
            serde_json::from_value(s["metric"].clone()).expect("labels");
        let values = s["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|p| {
                let ms = (p[0].as_f64().expect("time") * 1000.0).round() as i64;
                let v: f64 = p[1].as_str().expect("value").parse().expect("float");
                (ms, v.to_bits())
            })
            .collect();
        out.insert(serde_json::to_string(&labels).expect("json"), values);
    }
    out
}

/// The same from bidim: series matching a tagquery, samples in (t - range, t].
fn from_bidim(c: &mut Client, tagquery: &str, t_ms: i64, range_ms: i64) -> SeriesSamples {
    let rows = c
        .query(
            "SELECT s.labels::text, (extract(epoch FROM p.ts) * 1000)::int8, float8send(p.value)
               FROM prometheus.series s JOIN prometheus.points p ON p.series_id = s.id
              WHERE s.labels @@ $1::text::tagquery
                AND p.ts > to_timestamp($2::float8 / 1000) AND p.ts <= to_timestamp($3::float8 / 1000)
              ORDER BY 1, 2",
            &[&tagquery, &((t_ms - range_ms) as f64), &(t_ms as f64)],
        )
        .expect("bidim query");
    let mut out: SeriesSamples = BTreeMap::new();
    for r in rows {
        let text: String = r.get(0);
        let labels: BTreeMap<String, String> = text
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .map(unquote)
            .filter(|t| !t.starts_with("__name__:"))
            .map(|t| {
                let (k, v) = t.split_once(':').expect("key:value");
                (k.to_string(), v.to_string())
            })
            .chain(std::iter::once(("__name__".to_string(), name_of(&text))))
            .collect();
        let bits: Vec<u8> = r.get(2);
        out.entry(serde_json::to_string(&labels).expect("json"))
            .or_default()
            .push((
                r.get(1),
                u64::from_be_bytes(bits.try_into().expect("8 bytes")),
            ));
    }
    out
}

fn name_of(tagset_text: &str) -> String {
    tagset_text
        .trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .map(unquote)
        .find_map(|t| t.strip_prefix("__name__:").map(str::to_string))
        .expect("__name__")
}

fn unquote(t: &str) -> String {
    let t = t.trim();
    if let Some(inner) = t.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        let mut out = String::new();
        let mut esc = false;
        for c in inner.chars() {
            if esc || c != '\\' {
                out.push(c);
                esc = false;
            } else {
                esc = true;
            }
        }
        out
    } else {
        t.to_string()
    }
}

#[test]
fn prometheus_writes_and_reads_back_with_promql() {
    let cluster = cluster();
    let intake = Intake::start(&cluster.conninfo("postgres"), &[]);
    let exporter = Exporter::start(20);
    let writer_cfg = format!(
        "global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ['@SELF@']}}]
  - job_name: exporter
    static_configs: [{{targets: ['127.0.0.1:{}']}}]
remote_write:
  - url: {}/api/v1/write
    queue_config: {{batch_send_deadline: 500ms, min_backoff: 50ms, max_backoff: 1s}}
    metadata_config: {{send: true, send_interval: 2s}}
",
        exporter.port,
        intake.url()
    );
    let p1 = Prometheus::start(&writer_cfg);
    let p2 = Prometheus::start(&format!(
        "global:
  scrape_interval: 1s
remote_read:
  - url: {}/api/v1/read
    read_recent: true
",
        intake.url()
    ));
    std::thread::sleep(Duration::from_secs(12));
    let t = (now_s() - 3.0).floor();
    let t_ms = (t * 1000.0) as i64;
    let mut c = cluster.connect().expect("connect");

    // 1. Samples stored equal Prometheus's own, series by series (wait for the queue).
    for (selector, tagquery) in [
        ("{job=\"exporter\"}", "job:exporter"),
        ("up", "__name__:up"),
        (
            "prometheus_http_requests_total",
            "__name__:prometheus_http_requests_total",
        ),
    ] {
        let want = from_matrix(&p1.query(&format!("{selector}[20s]"), t));
        assert!(
            !want.is_empty() && want.values().any(|v| v.len() >= 3),
            "{selector}: {want:?}"
        );
        let mut got = SeriesSamples::new();
        let ok = wait_until(Duration::from_secs(30), || {
            got = from_bidim(&mut c, tagquery, t_ms, 20_000);
            got == want
        });
        if !ok {
            let missing: Vec<_> = want
                .keys()
                .filter(|k| !got.contains_key(*k))
                .take(3)
                .collect();
            let differ: Vec<_> = want
                .iter()
                .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
                .take(2)
                .map(|(k, v)| (k, v, &got[k]))
                .collect();
            panic!(
                "{selector}: bidim has {} series, Prometheus {}; missing {missing:?}; differ {differ:?}\n{}",
                got.len(),
                want.len(),
                intake.log_text()
            );
        }
        eprintln!("{selector}: {} series equal", want.len());
    }
    // No request was stored twice.
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM (SELECT series_id, ts FROM prometheus.points GROUP BY 1, 2 HAVING count(*) > 1) d"
        ),
        0
    );

    // 2. PromQL through remote_read (second Prometheus) equals PromQL on local storage.
    for q in [
        "up",
        "up{job!=\"prometheus\"}",
        "rate(exporter_requests_total[10s])",
        "sum by (code) (rate(exporter_requests_total[10s]))",
        "increase(exporter_requests_total{code=\"500\"}[15s])",
        "histogram_quantile(0.9, sum by (le) (rate(exporter_latency_seconds_bucket[10s])))",
        "exporter_temperature_celsius{room=\"zürich ☃\"}",
        "avg_over_time(exporter_temperature_celsius[10s])",
        "{__name__=~\"exporter_.*_total\", code!~\"5..\"}",
        "{__name__=\"exporter_requests_total\", path=\"/api/v1/x\\\"q\\\"\", instance_name=~\"host-1.?\"}",
        "count by (job) ({__name__=~\".+\"})",
        "prometheus_tsdb_head_series{job=~\"prom.*\"}",
        "exporter_requests_total{nolabel=\"\"}",
        "count(exporter_requests_total{code!=\"\"})",
    ] {
        let local = p1.query(q, t);
        // A remote_write shard may still be sending the last second: ask again a few
        // times before calling a difference a difference.
        let mut remote = serde_json::Value::Null;
        wait_until(Duration::from_secs(15), || {
            remote = p2.query(q, t);
            remote == local
        });
        assert!(
            local.as_array().is_some_and(|a| !a.is_empty()),
            "{q}: empty on Prometheus"
        );
        assert_eq!(local, remote, "{q}: local storage and remote_read differ");
        eprintln!("{q}: {} series equal", local.as_array().map_or(0, |a| a.len()));
    }

    // 3. Metadata as the protocol sent it.
    wait_for(Duration::from_secs(20), "metadata", || {
        one_i64(
            &mut c,
            "SELECT count(*) FROM prometheus.metric_metadata
              WHERE metric = 'exporter_requests_total' AND type = 'counter' AND help = 'Requests served.'",
        ) == 1
    });
    assert!(intake.metric("bidim_intake_samples_stored_total") > 0.0);
    assert!(intake.metric("bidim_intake_series_created_total") > 50.0);

    // 4. Stale markers: the exporter goes away; Prometheus writes stale NaNs, bidim
    // keeps their bit pattern, and both Prometheus servers stop returning the series.
    drop(exporter);
    wait_for(Duration::from_secs(30), "stale markers", || {
        one_i64(
            &mut c,
            "SELECT count(*) FROM prometheus.points p JOIN prometheus.series s ON s.id = p.series_id
              WHERE s.metric = 'exporter_temperature_celsius' AND float8send(p.value) = '\\x7ff0000000000002'",
        ) >= 20
    });
    std::thread::sleep(Duration::from_secs(3));
    let t2 = now_s() - 1.0;
    let q = "exporter_temperature_celsius";
    assert_eq!(p1.query(q, t2), serde_json::json!([]));
    assert_eq!(p2.query(q, t2), serde_json::json!([]));
    assert_eq!(
        p1.query("up{job=\"exporter\"}", t2),
        p2.query("up{job=\"exporter\"}", t2)
    );

    // 5. The same answers once every chunk is cold (sorted, compressed column by
    // column): values, stale markers included, come back bit for bit.
    let stale =
        "SELECT count(*) FROM prometheus.points WHERE float8send(value) = '\\x7ff0000000000002'";
    let before = one_i64(&mut c, stale);
    c.batch_execute("SELECT bidim.seal('prometheus.points')")
        .expect("seal");
    // Sealed chunks are converted once no transaction that may still write them runs.
    wait_for(Duration::from_secs(30), "cold chunks", || {
        c.batch_execute(
            "SELECT bidim.convert('prometheus.points', older_than => now() + interval '1 day')",
        )
        .expect("convert");
        one_i64(
            &mut c,
            "SELECT count(*) FROM bidim.chunks WHERE rel = 'prometheus.points'::regclass AND state = 'sealed'",
        ) == 0
    });
    assert_eq!(one_i64(&mut c, stale), before);
    for q in [
        "rate(exporter_requests_total[10s])",
        "histogram_quantile(0.9, sum by (le) (rate(exporter_latency_seconds_bucket[10s])))",
        "{__name__=~\"exporter_.*_total\", code!~\"5..\"}",
    ] {
        assert_eq!(p1.query(q, t), p2.query(q, t), "{q}: differ once cold");
    }
    let q = "exporter_temperature_celsius";
    assert_eq!(p1.query(q, t2), p2.query(q, t2));
}

#[test]
fn prometheus_retries_lose_and_duplicate_nothing_across_kill9() {
    let mut cluster = cluster();
    let mut intake = Intake::start(&cluster.conninfo("postgres"), &["--queue-timeout", "5s"]);
    let exporter = Exporter::start(100);
    let t0 = now_s();
    let p1 = Prometheus::start(&format!(
        "global:
  scrape_interval: 1s
scrape_configs:
  - job_name: exporter
    static_configs: [{{targets: ['127.0.0.1:{}']}}]
remote_write:
  - url: {}/api/v1/write
    queue_config: {{batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 1s, max_samples_per_send: 300}}
",
        exporter.port,
        intake.url()
    ));
    std::thread::sleep(Duration::from_secs(5));
    intake.restart(); // kill -9 and start again
    std::thread::sleep(Duration::from_secs(3));
    cluster.kill9_postmaster().expect("kill -9 postmaster");
    std::thread::sleep(Duration::from_secs(2));
    cluster.restart_after_crash().expect("restart");
    std::thread::sleep(Duration::from_secs(3));
    intake.kill9();
    std::thread::sleep(Duration::from_secs(2));
    intake.restart();
    std::thread::sleep(Duration::from_secs(4));
    drop(exporter);
    std::thread::sleep(Duration::from_secs(2));
    // A time already past: Prometheus goes on scraping (failed scrapes of the dropped
    // exporter still write `up` and four more samples), and a scrape between its
    // query and a future `t` reached bidim but not the answer (once seen: 11980
    // against 11985 samples).
    let t = (now_s() - 1.5).floor();
    let range_s = (t - t0).ceil() as i64 + 5;
    let want = from_matrix(&p1.query(&format!("{{job=\"exporter\"}}[{range_s}s]"), t));
    let samples: usize = want.values().map(Vec::len).sum();
    assert!(samples > 300 * 10, "only {samples} samples scraped");
    let mut c = cluster.connect().expect("connect");
    let mut got = SeriesSamples::new();
    let same = wait_until(Duration::from_secs(60), || {
        got = from_bidim(&mut c, "job:exporter", (t * 1000.0) as i64, range_s * 1000);
        // Stale markers are in bidim but not in query results.
        for v in got.values_mut() {
            v.retain(|(_, bits)| *bits != 0x7ff0000000000002);
        }
        got.retain(|_, v| !v.is_empty());
        got == want
    });
    let got_n: usize = got.values().map(Vec::len).sum();
    assert!(
        same,
        "Prometheus holds {samples} samples, bidim {got_n}\n{}",
        intake.log_text()
    );
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM (SELECT series_id, ts FROM prometheus.points GROUP BY 1, 2 HAVING count(*) > 1) d"
        ),
        0
    );
    let refused = intake.log_text().matches(" 503 ").count();
    eprintln!("{samples} samples equal after two intake kills and a PostgreSQL kill ({refused} answers 503)");
}
