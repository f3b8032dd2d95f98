//! The `intake` workload: Prometheus-shaped remote_write requests (1000 series x 10
//! samples each) sent by concurrent senders to bidim-intake (into a bidim table) and,
//! the same bytes, to Prometheus's own remote-write receiver; samples per second,
//! peak memory of each receiving process, storage per sample. A churn case makes a
//! tenth of each request's series new.

use bidim_intake::proto::{Label, Sample, TimeSeries, WriteRequest};
use bidim_tests::{free_port, Client, Cluster, Result};
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERIES_PER_REQUEST: usize = 1000;
const SAMPLES_PER_SERIES: usize = 10;
const SENDERS: usize = 4;

/// The requests of one sender, in time order. Each sender owns its series, so no
/// series gets samples out of order.
fn requests(sender: usize, count: usize, churn: bool, start_ms: i64) -> Vec<Vec<u8>> {
    (0..count)
        .map(|k| {
            let timeseries = (0..SERIES_PER_REQUEST)
                .map(|j| {
                    // With churn, series j is replaced by a new one every 10 requests,
                    // a tenth of the series in each request.
                    let generation = if churn { (k + j) / 10 } else { 0 };
                    let l = |n: &str, v: String| Label {
                        name: n.to_string(),
                        value: v,
                    };
                    TimeSeries {
                        labels: vec![
                            l("__name__", format!("node_cpu_seconds_total_{}", j % 10)),
                            l("cpu", (j / 10 % 8).to_string()),
                            l("instance", format!("10.0.{sender}.{}:9100", j / 80)),
                            l("job", "node".into()),
                            l("mode", ["idle", "user", "system", "iowait"][j % 4].into()),
                            l("pod", format!("pod-{sender}-{j}-{generation}")),
                        ],
                        samples: (0..SAMPLES_PER_SERIES)
                            .map(|i| {
                                let n = (k * SAMPLES_PER_SERIES + i) as f64;
                                Sample {
                                    // a counter: increasing, with fractional parts
                                    value: n * 1.25 + (j as f64) * 0.01 + (n * 0.37).sin().abs(),
                                    timestamp: start_ms
                                        + ((k * SAMPLES_PER_SERIES + i) as i64) * 10_000,
                                }
                            })
                            .collect(),
                        ..Default::default()
                    }
                })
                .collect();
            let raw = WriteRequest {
                timeseries,
                metadata: vec![],
            }
            .encode_to_vec();
            snap::raw::Encoder::new()
                .compress_vec(&raw)
                .expect("snappy")
        })
        .collect()
}

/// Sends every sender's requests concurrently; seconds taken and requests refused.
fn send_all(url: &str, bodies: &[Vec<Vec<u8>>]) -> (f64, usize) {
    let start = Instant::now();
    let refused: usize = std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|mine| {
                s.spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(120))
                        .build();
                    let mut refused = 0;
                    for b in mine {
                        loop {
                            let r = agent
                                .post(url)
                                .set("Content-Encoding", "snappy")
                                .set("Content-Type", "application/x-protobuf")
                                .set("X-Prometheus-Remote-Write-Version", "0.1.0")
                                .send_bytes(b);
                            match r {
                                Ok(_) => break,
                                Err(ureq::Error::Status(c, _)) if c >= 500 => {
                                    std::thread::sleep(Duration::from_millis(50))
                                }
                                Err(ureq::Error::Status(_, _)) => {
                                    refused += 1;
                                    break;
                                }
                                Err(e) => panic!("{url}: {e}"),
                            }
                        }
                    }
                    refused
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("sender")).sum()
    });
    (start.elapsed().as_secs_f64(), refused)
}

fn peak_rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn dir_bytes(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => n += dir_bytes(&e.path()),
                Ok(m) => n += m.len(),
                Err(_) => {}
            }
        }
    }
    n
}

fn wait_http(url: &str, child: &mut Child, what: &str) -> Result<()> {
    let start = Instant::now();
    while ureq::get(url).call().is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("{what} exited: {st}"));
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("{what} did not come up"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn intake_binary() -> PathBuf {
    std::env::var_os("BIDIM_INTAKE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/bidim-intake")
        })
}

struct Measured {
    seconds: f64,
    refused: usize,
    rss_mib: f64,
    bytes: u64,
    bytes_after: Option<u64>,
}

fn run_intake(
    cluster: &Cluster,
    c: &mut Client,
    bodies: &[Vec<Vec<u8>>],
    schema: &str,
) -> Result<Measured> {
    let port = free_port();
    let bin = intake_binary();
    let child = Command::new(&bin)
        .args([
            "--database",
            &cluster.conninfo("postgres"),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--schema", schema, "--create-schema"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {} (scripts/bench.sh builds it): {e}",
                bin.display()
            )
        })?;
    let mut child = Killed(child);
    wait_http(
        &format!("http://127.0.0.1:{port}/-/healthy"),
        &mut child.0,
        "bidim-intake",
    )?;
    let (seconds, refused) = send_all(&format!("http://127.0.0.1:{port}/api/v1/write"), bodies);
    let rss_mib = peak_rss_mib(child.0.id());
    drop(child);
    let size = |c: &mut Client| -> Result<u64> {
        let v: i64 = c
            .query_one(
                &format!(
                    "SELECT bidim.table_size('{schema}.points') + pg_total_relation_size('{schema}.series')"
                ),
                &[],
            )
            .map_err(|e| e.to_string())?
            .get(0);
        Ok(v as u64)
    };
    let bytes = size(c)?;
    // Seal, then convert (in later transactions: a chunk sealed by a transaction still
    // running is not ready to convert) until no sealed chunk is left.
    c.batch_execute(&format!("SELECT bidim.seal('{schema}.points')"))
        .map_err(|e| e.to_string())?;
    for _ in 0..100 {
        c.batch_execute(&format!(
            "SELECT bidim.convert('{schema}.points', older_than => now() + interval '1 day')"
        ))
        .map_err(|e| e.to_string())?;
        let left: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM bidim.chunks WHERE rel = '{schema}.points'::regclass AND state <> 'cold'"),
                &[],
            )
            .map_err(|e| e.to_string())?
            .get(0);
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let bytes_after = Some(size(c)?);
    Ok(Measured {
        seconds,
        refused,
        rss_mib,
        bytes,
        bytes_after,
    })
}

fn run_prometheus(bodies: &[Vec<Vec<u8>>]) -> Result<Measured> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, "global: {}\n").map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    let child =
        Command::new(std::env::var("PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".into()))
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--web.enable-admin-api")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start prometheus: {e}"))?;
    let mut child = Killed(child);
    wait_http(
        &format!("http://127.0.0.1:{port}/-/ready"),
        &mut child.0,
        "prometheus",
    )?;
    let (seconds, refused) = send_all(&format!("http://127.0.0.1:{port}/api/v1/write"), bodies);
    let rss_mib = peak_rss_mib(child.0.id());
    let bytes = dir_bytes(&data);
    // A snapshot writes the in-memory head as a compacted block: its size on disk.
    let snap: serde_json::Value = serde_json::from_str(
        &ureq::post(&format!(
            "http://127.0.0.1:{port}/api/v1/admin/tsdb/snapshot"
        ))
        .call()
        .map_err(|e| format!("snapshot: {e}"))?
        .into_string()
        .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let name = snap["data"]["name"]
        .as_str()
        .ok_or("snapshot has no name")?;
    let blocks = dir_bytes(&data.join("snapshots").join(name));
    drop(child);
    Ok(Measured {
        seconds,
        refused,
        rss_mib,
        bytes,
        bytes_after: Some(blocks),
    })
}

pub fn intake_workload(cluster: &Cluster, c: &mut Client, rows: i64) -> Result<()> {
    let per_request = (SERIES_PER_REQUEST * SAMPLES_PER_SERIES) as i64;
    let per_sender = ((rows / per_request) as usize / SENDERS).max(1);
    let samples = (per_sender * SENDERS) as i64 * per_request;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_millis() as i64;
    // The data ends an hour ago (Prometheus refuses samples too far in the future).
    let span_ms = (per_sender * SAMPLES_PER_SERIES) as i64 * 10_000;
    let start_ms = now_ms - 3_600_000 - span_ms;
    println!("\n### intake (Prometheus remote_write)\n");
    println!(
        "{samples} samples in {} requests of {SERIES_PER_REQUEST} series x {SAMPLES_PER_SERIES} samples (snappy protobuf, built before timing), \
         sent by {SENDERS} concurrent senders, each owning its series ({} series in all; {:.1} h of data at 10 s). \
         Churn: a tenth of each request's series are new. bidim-intake: release build, default flags, into a bidim table \
         (storage: `bidim.table_size` of points plus the series table with its indexes, hot then after `bidim.convert`). \
         Prometheus 2.42 (Debian), `--web.enable-remote-write-receiver`, same bytes (storage: its data directory after the load, then a \
         TSDB snapshot, which writes the head as a compacted block). Peak RSS is the receiving process's (PostgreSQL's own memory not included).\n",
        per_sender * SENDERS,
        SERIES_PER_REQUEST * SENDERS,
        span_ms as f64 / 3_600_000.0
    );
    println!("| case | receiver | samples/s | seconds | refused requests | peak RSS MiB | bytes/sample after load | bytes/sample compacted |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for churn in [false, true] {
        eprintln!("== intake: building requests (churn {churn})");
        let bodies: Vec<Vec<Vec<u8>>> = (0..SENDERS)
            .map(|s| requests(s, per_sender, churn, start_ms))
            .collect();
        let case = if churn {
            "churn (10% new series per request)"
        } else {
            "steady series"
        };
        eprintln!("   bidim-intake");
        let schema = if churn { "prom_churn" } else { "prom" };
        let b = run_intake(cluster, c, &bodies, schema)?;
        eprintln!("   prometheus");
        let p = run_prometheus(&bodies)?;
        for (who, m) in [("bidim-intake + bidim", &b), ("Prometheus TSDB", &p)] {
            println!(
                "| {case} | {who} | {:.0} | {:.1} | {} | {:.0} | {:.2} | {} |",
                samples as f64 / m.seconds,
                m.seconds,
                m.refused,
                m.rss_mib,
                m.bytes as f64 / samples as f64,
                m.bytes_after
                    .map(|a| format!("{:.2}", a as f64 / samples as f64))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}
