//! The intake under retries, crashes and bad input: retried requests are stored once,
//! nothing acknowledged is lost when the intake or PostgreSQL is killed (-9), and
//! malformed requests get a clear 4xx without crashing it or growing its memory.

mod common;
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Request `k`: `series` series, `samples` samples each, timestamps unique to `k`.
fn request(k: i64, series: usize, samples: usize) -> WriteRequest {
    let base = 1_790_000_000_000 + k * 1_000_000;
    WriteRequest {
        timeseries: (0..series)
            .map(|s| TimeSeries {
                labels: labels(&[
                    ("__name__", "load_metric"),
                    ("host", &format!("h{s}")),
                    ("dc", if s % 2 == 0 { "east" } else { "west" }),
                ]),
                samples: (0..samples)
                    .map(|j| Sample {
                        value: (k * 1000 + j as i64) as f64 + s as f64 / 1000.0,
                        timestamp: base + j as i64 * 10_000,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        metadata: vec![],
    }
}

#[test]
fn retried_requests_are_stored_once() {
    let cluster = cluster();
    let intake = Intake::start(&cluster.conninfo("postgres"), &[]);
    let mut c = cluster.connect().expect("connect");
    let b = body(&request(1, 1000, 10));
    assert_eq!(post_write(&intake.url(), &b).0, 204);
    assert_eq!(post_write(&intake.url(), &b).0, 204);
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM prometheus.points"),
        10_000
    );
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM prometheus.series"),
        1000
    );
    assert_eq!(
        intake.metric("bidim_intake_samples_duplicate_total"),
        10_000.0
    );
    // The same new request from four senders at once: stored once, all acknowledged.
    let b = Arc::new(body(&request(2, 1000, 10)));
    let url = intake.url();
    let codes: Vec<u16> = (0..4)
        .map(|_| {
            let (b, url) = (b.clone(), url.clone());
            std::thread::spawn(move || post_write(&url, &b).0)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("sender"))
        .collect();
    assert_eq!(codes, vec![204; 4]);
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM prometheus.points"),
        20_000
    );
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM prometheus.series"),
        1000
    );
    // Values and timestamps as sent.
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM prometheus.points p JOIN prometheus.series s ON s.id = p.series_id
              WHERE s.labels @@ 'host:h7 AND dc:west' AND p.value = 2005.007
                AND p.ts = to_timestamp((1790000000000 + 2 * 1000000 + 5 * 10000) / 1000.0)"
        ),
        1
    );
}

/// A sender that behaves as Prometheus does: the same bytes again after a 5xx or a
/// connection error, until a 2xx.
fn send_until_acknowledged(url: &str, b: &[u8]) -> u32 {
    let mut tries = 0;
    loop {
        tries += 1;
        let (code, text) = post_write(url, b);
        match code {
            200..=299 => return tries,
            400..=499 => panic!("request refused with {code}: {text}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
        assert!(tries < 600, "never acknowledged: {code} {text}");
    }
}

#[test]
fn nothing_acknowledged_is_lost_or_duplicated_across_kill9() {
    let mut cluster = cluster();
    let mut intake = Intake::start(&cluster.conninfo("postgres"), &["--queue-timeout", "5s"]);
    let url = intake.url();
    const N: i64 = 150;
    let done = Arc::new(AtomicBool::new(false));
    let sender = {
        let (url, done) = (url.clone(), done.clone());
        std::thread::spawn(move || {
            let mut retries = 0;
            for k in 0..N {
                retries += send_until_acknowledged(&url, &body(&request(k, 200, 10))) - 1;
            }
            done.store(true, Ordering::Relaxed);
            retries
        })
    };
    // Crash the intake twice and PostgreSQL twice (kill -9 of the postmaster, then
    // `pg_ctl stop -m immediate`) while requests are in flight.
    for round in 0..4 {
        std::thread::sleep(Duration::from_millis(700));
        if done.load(Ordering::Relaxed) {
            break;
        }
        match round % 2 {
            0 => intake.restart(),
            _ => {
                if round == 1 {
                    cluster.kill9_postmaster().expect("kill -9");
                } else {
                    cluster.crash_immediate().expect("immediate stop");
                }
                std::thread::sleep(Duration::from_millis(500));
                cluster.restart_after_crash().expect("restart");
            }
        }
        eprintln!("crash round {round} done");
    }
    let retries = sender.join().expect("sender");
    eprintln!("{retries} retried sends");
    let mut c = cluster.connect().expect("connect");
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM prometheus.points"),
        N * 2000
    );
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM (SELECT DISTINCT series_id, ts FROM prometheus.points) d"
        ),
        N * 2000
    );
    assert_eq!(
        one_i64(&mut c, "SELECT count(*) FROM prometheus.series"),
        200
    );
    assert!(
        retries > 0,
        "no crash happened while a request was in flight"
    );
}

#[test]
fn malformed_requests_get_a_clear_4xx() {
    let cluster = cluster();
    let intake = Intake::start(
        &cluster.conninfo("postgres"),
        &["--max-series-per-request", "5000"],
    );
    let url = intake.url();
    let expect = |b: &[u8], code: u16, words: &str| {
        let (got, text) = post_write(&url, b);
        assert_eq!(got, code, "{text}");
        assert!(text.contains(words), "{text:?} should say {words:?}");
    };
    // Not snappy; snappy of something that is not protobuf; truncated protobuf.
    expect(b"\xff\xff\xff\xff\xff\xff\xff\xff", 400, "snappy");
    expect(
        &snap::raw::Encoder::new()
            .compress_vec(b"\x0f\x01\x02")
            .unwrap(),
        400,
        "WriteRequest",
    );
    let good = bidim_intake_raw(&request(1, 3, 3));
    let cut = &good[..good.len() - 3];
    expect(
        &snap::raw::Encoder::new().compress_vec(cut).unwrap(),
        400,
        "WriteRequest",
    );
    // Invalid UTF-8 in a label value.
    let mut raw = bidim_intake_raw(&request(1, 1, 1));
    let p = raw.windows(2).position(|w| w == b"h0").expect("label");
    raw[p] = 0xc3;
    raw[p + 1] = 0x28;
    expect(
        &snap::raw::Encoder::new().compress_vec(&raw).unwrap(),
        400,
        "WriteRequest",
    );
    // A label too long for a tagset; an invalid label name; no metric name.
    let mut r = request(1, 1, 1);
    r.timeseries[0].labels.push(Label {
        name: "huge".into(),
        value: "x".repeat(100_000),
    });
    expect(&body(&r), 400, "limit of 512");
    let mut r = request(1, 1, 1);
    r.timeseries[0].labels.push(Label {
        name: "bad-name".into(),
        value: "x".into(),
    });
    expect(&body(&r), 400, "invalid label name \"bad-name\"");
    let mut r = request(1, 1, 1);
    r.timeseries[0].labels.remove(0);
    expect(&body(&r), 400, "no metric name");
    // A million series in one request: refused from its size, before decoding.
    let million = WriteRequest {
        timeseries: (0..1_000_000)
            .map(|s| TimeSeries {
                labels: labels(&[("__name__", "m"), ("i", &s.to_string())]),
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1_790_000_000_000,
                }],
                ..Default::default()
            })
            .collect(),
        metadata: vec![],
    };
    expect(&body(&million), 413, "limit");
    // Under the byte limit but over --max-series-per-request.
    let many = WriteRequest {
        timeseries: million.timeseries[..5001].to_vec(),
        metadata: vec![],
    };
    expect(&body(&many), 413, "5001 series");
    // A claimed decompressed size far beyond the limit (a snappy bomb header).
    expect(b"\xff\xff\xff\xff\x0f\x00", 413, "decompresses to");
    // Other encodings are refused.
    let (code, _) = match ureq::post(&format!("{url}/api/v1/write"))
        .set("Content-Encoding", "gzip")
        .send_bytes(b"x")
    {
        Ok(r) => (r.status(), String::new()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(code, 415);
    // Still alive, memory bounded, nothing stored, and a good request still works.
    let rss = intake.peak_rss_kib();
    eprintln!("peak RSS after bad requests: {} MiB", rss / 1024);
    assert!(rss < 512 * 1024, "peak RSS {rss} KiB");
    let mut c = cluster.connect().expect("connect");
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM prometheus.points"), 0);
    assert_eq!(post_write(&url, &body(&request(1, 3, 3))).0, 204);
    assert_eq!(one_i64(&mut c, "SELECT count(*) FROM prometheus.points"), 9);
    assert!(intake.metric("bidim_intake_requests_total") >= 12.0);
}

fn bidim_intake_raw(r: &WriteRequest) -> Vec<u8> {
    use prost::Message;
    r.encode_to_vec()
}

#[test]
fn runs_as_a_role_with_only_table_privileges_and_reads_back() {
    let cluster = cluster();
    // The tables' owner creates them once; the intake then runs as a plain role with
    // the grants docs/prometheus.md lists.
    drop(Intake::start(&cluster.conninfo("postgres"), &[]));
    let mut c = cluster.connect().expect("connect");
    c.batch_execute(
        "CREATE ROLE prom_intake LOGIN;
         GRANT USAGE ON SCHEMA prometheus TO prom_intake;
         GRANT SELECT, INSERT ON prometheus.series, prometheus.points TO prom_intake;
         GRANT SELECT, INSERT, DELETE ON prometheus.intake_requests TO prom_intake;
         GRANT SELECT, INSERT, UPDATE ON prometheus.metric_metadata TO prom_intake;",
    )
    .expect("role");
    let info = cluster
        .conninfo("postgres")
        .replace("user=postgres", "user=prom_intake");
    let intake = Intake::start_plain(&info, &[]);
    let t = 1_790_000_000_000i64;
    let mk = |path: &str, host: &str, v: f64| TimeSeries {
        labels: labels(&[
            ("__name__", "http_requests_total"),
            ("path", path),
            ("host", host),
        ]),
        samples: vec![
            Sample {
                value: v,
                timestamp: t,
            },
            Sample {
                value: v + 1.0,
                timestamp: t + 15_000,
            },
        ],
        ..Default::default()
    };
    let req = WriteRequest {
        timeseries: vec![
            mk("/api/v1/x", "a", 1.0),
            mk("/api/v2/y", "b", 10.0),
            mk("/health", "a", 100.0),
        ],
        metadata: vec![bidim_intake::proto::MetricMetadata {
            r#type: 1,
            metric_family_name: "http_requests_total".into(),
            help: "Requests.".into(),
            unit: String::new(),
        }],
    };
    let (code, text) = post_write(&intake.url(), &body(&req));
    assert_eq!(code, 204, "{text}\n{}", intake.log_text());
    let read = |m: &[(i32, &str, &str)]| -> Vec<String> {
        remote_read(&intake.url(), m, t - 1000, t + 60_000)
            .into_iter()
            .map(|(l, s)| {
                assert_eq!(s.len(), 2, "{l}");
                l
            })
            .collect()
    };
    let name = (0, "__name__", "http_requests_total");
    assert_eq!(read(&[name]).len(), 3);
    assert_eq!(
        read(&[name, (2, "path", "/api/.*")]),
        vec![
            "__name__=http_requests_total,host=a,path=/api/v1/x",
            "__name__=http_requests_total,host=b,path=/api/v2/y"
        ]
    );
    assert_eq!(read(&[name, (3, "path", ".*/x|/h.*")]).len(), 1);
    assert_eq!(read(&[name, (1, "host", "a")]).len(), 1);
    assert_eq!(read(&[name, (0, "zone", "")]).len(), 3);
    assert_eq!(read(&[name, (1, "zone", "")]).len(), 0);
    assert_eq!(
        read(&[(2, "__name__", "http_.*"), (0, "host", "a")]).len(),
        2
    );
    // Outside the time range: nothing.
    assert!(remote_read(&intake.url(), &[name], t + 20_000, t + 60_000).is_empty());
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM prometheus.metric_metadata WHERE type = 'counter'"
        ),
        1
    );
    // The role did not get more than it had: no superuser, owns nothing.
    assert_eq!(
        one_i64(
            &mut c,
            "SELECT count(*) FROM pg_class WHERE relowner = 'prom_intake'::regrole"
        ),
        0
    );
}
