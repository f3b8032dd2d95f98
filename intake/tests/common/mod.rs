//! Shared by the intake's tests: a PostgreSQL cluster with bidim, the intake binary,
//! a real Prometheus (Debian's), a small exporter, remote_write bodies.
#![allow(dead_code)]

#[allow(unused_imports)]
pub use bidim_intake::proto::{Label, Sample, TimeSeries, WriteRequest};
#[allow(unused_imports)]
pub use bidim_tests::{free_port, one_i64, wait_until, Client, Cluster};
use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A cluster with bidim and its extension in database `postgres`.
pub fn cluster() -> Cluster {
    let c = Cluster::builder()
        .setting("bidim.maintenance", "off")
        .start()
        .expect("cluster");
    c.connect()
        .expect("connect")
        .batch_execute("CREATE EXTENSION bidim")
        .expect("create extension");
    c
}

/// The intake binary, running; killed when dropped.
pub struct Intake {
    pub child: Child,
    pub port: u16,
    pub args: Vec<String>,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Intake {
    /// Started with `--create-schema`.
    pub fn start(conninfo: &str, extra: &[&str]) -> Intake {
        let mut with = vec!["--create-schema"];
        with.extend_from_slice(extra);
        Intake::start_plain(conninfo, &with)
    }

    pub fn start_plain(conninfo: &str, extra: &[&str]) -> Intake {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut args = vec![
            "--database".to_string(),
            conninfo.to_string(),
            "--listen".to_string(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = dir.path().join("intake.log");
        let mut i = Intake {
            child: spawn_intake(&args, &log),
            port,
            args,
            log,
            _dir: dir,
        };
        i.wait_healthy();
        i
    }

    fn wait_healthy(&mut self) {
        let url = format!("{}/-/healthy", self.url());
        let ok = wait_until(Duration::from_secs(30), || {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("intake exited ({st}):\n{}", self.log_text());
            }
            ureq::get(&url).call().is_ok()
        });
        assert!(ok, "intake not healthy:\n{}", self.log_text());
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again, same flags and port.
    pub fn restart(&mut self) {
        self.kill9();
        self.child = spawn_intake(&self.args, &self.log);
        self.wait_healthy();
    }

    /// A number from its /metrics (summed over label sets).
    pub fn metric(&self, name: &str) -> f64 {
        let text = ureq::get(&format!("{}/metrics", self.url()))
            .call()
            .expect("metrics")
            .into_string()
            .expect("text");
        text.lines()
            .filter(|l| {
                l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Resident memory high-water mark, KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }
}

fn spawn_intake(args: &[String], log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    Command::new(env!("CARGO_BIN_EXE_bidim-intake"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("spawn bidim-intake")
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// snappy(protobuf(req)).
pub fn body(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy")
}

pub fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    pairs
        .iter()
        .map(|(n, v)| Label {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect()
}

/// A remote_read query: matchers (type, name, value) over [start, end] ms; the series
/// answered, as (labels "k=v,...", [(ms, value)]).
pub fn remote_read(
    url: &str,
    matchers: &[(i32, &str, &str)],
    start: i64,
    end: i64,
) -> Vec<(String, Vec<(i64, f64)>)> {
    use bidim_intake::proto::{LabelMatcher, Query, ReadRequest, ReadResponse};
    let req = ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: start,
            end_timestamp_ms: end,
            matchers: matchers
                .iter()
                .map(|(t, n, v)| LabelMatcher {
                    r#type: *t,
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        }],
        accepted_response_types: vec![0],
    };
    let b = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy");
    let r = ureq::post(&format!("{url}/api/v1/read"))
        .set("Content-Encoding", "snappy")
        .send_bytes(&b)
        .unwrap_or_else(|e| panic!("remote_read: {e}"));
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&read_to_end(r.into_reader()))
        .expect("snappy answer");
    let resp = ReadResponse::decode(raw.as_slice()).expect("ReadResponse");
    resp.results[0]
        .timeseries
        .iter()
        .map(|t| {
            (
                t.labels
                    .iter()
                    .map(|l| format!("{}={}", l.name, l.value))
                    .collect::<Vec<_>>()
                    .join(","),
                t.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
            )
        })
        .collect()
}

/// POSTs a remote_write body; the status code (and body text on errors).
pub fn post_write(url: &str, body: &[u8]) -> (u16, String) {
    post(&format!("{url}/api/v1/write"), body)
}

pub fn post(url: &str, body: &[u8]) -> (u16, String) {
    match ureq::post(url)
        .set("Content-Encoding", "snappy")
        .set("Content-Type", "application/x-protobuf")
        .set("X-Prometheus-Remote-Write-Version", "0.1.0")
        .timeout(Duration::from_secs(120))
        .send_bytes(body)
    {
        Ok(r) => (r.status(), String::new()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// A Prometheus exporter on a free port: `/metrics` serves a counter, a gauge and a
/// histogram over `series` label values (and labels with awkward values).
pub struct Exporter {
    pub port: u16,
    stop: Arc<AtomicBool>,
    pub scrapes: Arc<AtomicU64>,
}

impl Exporter {
    pub fn start(series: usize) -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let scrapes = Arc::new(AtomicU64::new(0));
        let (st, sc) = (stop.clone(), scrapes.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let mut r = BufReader::new(s.try_clone().expect("clone"));
                        let mut line = String::new();
                        while r.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                            line.clear();
                        }
                        let n = sc.fetch_add(1, Ordering::Relaxed) + 1;
                        let text = exposition(series, n);
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                            text.len(),
                            text
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Exporter {
            port,
            stop,
            scrapes,
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The n-th scrape's text: values change with n (a counter that resets every 7
/// scrapes for one series), deterministic.
fn exposition(series: usize, n: u64) -> String {
    let mut t = String::new();
    t.push_str(
        "# HELP exporter_requests_total Requests served.\n# TYPE exporter_requests_total counter\n",
    );
    for s in 0..series {
        for code in ["200", "404", "500"] {
            let v = if s == 0 && code == "500" {
                (n % 7) * 3
            } else {
                n * (s as u64 + 1) * code.len() as u64 + code.as_bytes()[0] as u64
            };
            t.push_str(&format!(
                "exporter_requests_total{{instance_name=\"host-{s}\",code=\"{code}\",path=\"/api/v1/x\\\"q\\\"\"}} {v}\n"
            ));
        }
    }
    t.push_str(
        "# HELP exporter_temperature_celsius A gauge.\n# TYPE exporter_temperature_celsius gauge\n",
    );
    for s in 0..series {
        let v = ((n as f64) * 0.7 + s as f64).sin() * 20.0 + 15.0;
        t.push_str(&format!(
            "exporter_temperature_celsius{{instance_name=\"host-{s}\",room=\"zürich ☃\"}} {v}\n"
        ));
    }
    t.push_str(
        "# HELP exporter_latency_seconds Latency.\n# TYPE exporter_latency_seconds histogram\n",
    );
    let bounds = [0.005, 0.01, 0.05, 0.1, 0.5, 1.0];
    for s in 0..series.min(50) {
        let mut cum = 0u64;
        for (i, b) in bounds.iter().enumerate() {
            cum += n * (i as u64 + 1 + s as u64 % 3);
            t.push_str(&format!(
                "exporter_latency_seconds_bucket{{instance_name=\"host-{s}\",le=\"{b}\"}} {cum}\n"
            ));
        }
        cum += n;
        t.push_str(&format!(
            "exporter_latency_seconds_bucket{{instance_name=\"host-{s}\",le=\"+Inf\"}} {cum}\n"
        ));
        t.push_str(&format!(
            "exporter_latency_seconds_sum{{instance_name=\"host-{s}\"}} {}\n",
            cum as f64 * 0.042
        ));
        t.push_str(&format!(
            "exporter_latency_seconds_count{{instance_name=\"host-{s}\"}} {cum}\n"
        ));
    }
    t
}

/// A Debian Prometheus on a free port with the given config; killed when dropped.
pub struct Prometheus {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

pub fn prometheus_binary() -> String {
    std::env::var("PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".to_string())
}

impl Prometheus {
    pub fn start(config: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config.replace("@SELF@", &format!("127.0.0.1:{port}")))
            .expect("config");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new(prometheus_binary())
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-lifecycle")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn prometheus (apt-get install prometheus; scripts/install-deps.sh does)");
        let p = Prometheus { child, port, dir };
        let ok = wait_until(Duration::from_secs(60), || {
            ureq::get(&format!("http://127.0.0.1:{port}/-/ready"))
                .call()
                .is_ok()
        });
        assert!(ok, "prometheus not ready:\n{}", p.log());
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `/api/v1/query` at `time` (seconds): the `data.result` array.
    pub fn query(&self, promql: &str, time: f64) -> serde_json::Value {
        let r = ureq::get(&format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query("query", promql)
            .query("time", &format!("{time:.3}"))
            .timeout(Duration::from_secs(60))
            .call();
        let text = match r {
            Ok(r) => r.into_string().expect("body"),
            Err(ureq::Error::Status(c, r)) => {
                panic!(
                    "query {promql} failed with {c}: {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("query {promql}: {e}\n{}", self.log()),
        };
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["status"], "success", "{promql}: {text}");
        let mut result = v["data"]["result"].clone();
        if let Some(a) = result.as_array_mut() {
            a.sort_by_key(|s| s["metric"].to_string());
        }
        result
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn read_to_end(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).expect("read");
    v
}
