//! HTTP: `POST /api/v1/write` (remote_write 1.0), `POST /api/v1/read` (remote_read,
//! SAMPLES responses), `GET /metrics`, `GET /-/healthy`, `GET /-/ready`.
//!
//! Status codes follow the remote_write spec: 204 once the samples are committed (or
//! were already, for a retried request), 400/413/415 for a request that can never
//! succeed (Prometheus drops it), 503 when the database is slow or down (Prometheus
//! retries with backoff).

use crate::cache::SeriesCache;
use crate::config::Config;
use crate::decode::{decode_read, decode_write, BodyError, Limits};
use crate::proto::ReadResponse;
use crate::read::{run_query, ReadError};
use crate::stats::Stats;
use crate::store::{series_ids, Job, Names, StoreError};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use deadpool_postgres::Pool;
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::warn;

pub struct App {
    pub cfg: Config,
    pub names: Names,
    pub pool: Pool,
    pub cache: Mutex<SeriesCache>,
    pub stats: Arc<Stats>,
    pub queue: mpsc::Sender<Job>,
    pub write_permits: Arc<Semaphore>,
    pub read_permits: Arc<Semaphore>,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/v1/write", post(write))
        .route("/api/v1/read", post(read))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/-/ready", get(ready))
        .with_state(app)
}

fn answer(app: &App, handler: &'static str, code: StatusCode, msg: String) -> Response {
    app.stats.count(handler, code.as_u16());
    if code.is_client_error() || code.is_server_error() {
        warn!("{handler}: {} {msg}", code.as_u16());
        let mut r = (code, format!("{msg}\n")).into_response();
        if code == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    } else {
        code.into_response()
    }
}

fn body_error(app: &App, handler: &'static str, e: BodyError) -> Response {
    match e {
        BodyError::Bad(m) => answer(app, handler, StatusCode::BAD_REQUEST, m),
        BodyError::TooLarge(m) => answer(app, handler, StatusCode::PAYLOAD_TOO_LARGE, m),
    }
}

/// Prometheus sends `Content-Encoding: snappy`; no header is taken as snappy too.
fn check_encoding(headers: &HeaderMap) -> Result<(), String> {
    match headers.get(header::CONTENT_ENCODING) {
        None => Ok(()),
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"snappy") => Ok(()),
        Some(v) => Err(format!(
            "Content-Encoding {:?} is not supported (snappy only)",
            String::from_utf8_lossy(v.as_bytes())
        )),
    }
}

async fn read_body(app: &App, body: Body) -> Result<Bytes, BodyError> {
    // Snappy's worst case: n + n/6 + 32 bytes for n decompressed.
    let limit = app.cfg.max_request_bytes + app.cfg.max_request_bytes / 6 + 64;
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        BodyError::TooLarge(format!(
            "request body not read: {e} (limit {limit} bytes compressed)"
        ))
    })
}

/// A permit of `permits`, waited for up to --queue-timeout, then a 503.
async fn permit(
    app: &App,
    handler: &'static str,
    permits: &Arc<Semaphore>,
) -> Result<OwnedSemaphorePermit, Response> {
    match tokio::time::timeout(app.cfg.queue_timeout, permits.clone().acquire_owned()).await {
        Ok(Ok(p)) => Ok(p),
        _ => Err(answer(
            app,
            handler,
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many {handler} requests in flight"),
        )),
    }
}

async fn write(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let deadline = Instant::now() + app.cfg.queue_timeout;
    let _permit = match permit(&app, "write", &app.write_permits).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    app.stats.inflight.inc();
    let r = write_inner(&app, headers, body, deadline).await;
    app.stats.inflight.dec();
    r
}

async fn write_inner(
    app: &Arc<App>,
    headers: HeaderMap,
    body: Body,
    deadline: Instant,
) -> Response {
    const H: &str = "write";
    if let Err(m) = check_encoding(&headers) {
        return answer(app, H, StatusCode::UNSUPPORTED_MEDIA_TYPE, m);
    }
    let bytes = match read_body(app, body).await {
        Ok(b) => b,
        Err(e) => return body_error(app, H, e),
    };
    let limits = Limits {
        max_decoded_bytes: app.cfg.max_request_bytes,
        max_series: app.cfg.max_series_per_request,
        max_samples: app.cfg.max_samples_per_request,
    };
    let decoded = tokio::task::spawn_blocking(move || decode_write(&bytes, limits)).await;
    let w = match decoded {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => return body_error(app, H, e),
        Err(e) => {
            return answer(
                app,
                H,
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("decoder failed: {e}"),
            )
        }
    };
    app.stats
        .exemplars_ignored
        .inc_by(w.exemplars_ignored as u64);
    app.stats
        .histograms_ignored
        .inc_by(w.histograms_ignored as u64);
    if w.series.is_empty() && w.metadata.is_empty() {
        return answer(app, H, StatusCode::NO_CONTENT, String::new());
    }
    let ids = match series_ids(&app.pool, &app.names, &app.cache, &app.stats, &w).await {
        Ok(ids) => ids,
        Err(e) => return store_error(app, e),
    };
    let (reply, done) = oneshot::channel();
    let job = Job {
        digest: w.digest,
        ids,
        write: w,
        reply,
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if app.queue.send_timeout(job, left).await.is_err() {
        return store_error(app, StoreError::Busy("the writers are busy".into()));
    }
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, done).await {
        Ok(Ok(Ok(_))) => answer(app, H, StatusCode::NO_CONTENT, String::new()),
        Ok(Ok(Err(e))) => store_error(app, StoreError::Database(e)),
        Ok(Err(_)) => store_error(app, StoreError::Database("writer stopped".into())),
        // The batch may still commit; the retry then finds its digest and stores nothing.
        Err(_) => store_error(
            app,
            StoreError::Busy("no commit within --queue-timeout".into()),
        ),
    }
}

fn store_error(app: &App, e: StoreError) -> Response {
    answer(app, "write", StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

async fn read(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    const H: &str = "read";
    let _permit = match permit(&app, H, &app.read_permits).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(m) = check_encoding(&headers) {
        return answer(&app, H, StatusCode::UNSUPPORTED_MEDIA_TYPE, m);
    }
    let bytes = match read_body(&app, body).await {
        Ok(b) => b,
        Err(e) => return body_error(&app, H, e),
    };
    let req = match decode_read(&bytes, app.cfg.max_request_bytes) {
        Ok(r) => r,
        Err(e) => return body_error(&app, H, e),
    };
    if !req.accepted_response_types.is_empty() && !req.accepted_response_types.contains(&0) {
        return answer(
            &app,
            H,
            StatusCode::BAD_REQUEST,
            format!(
                "response types {:?} are not supported: bidim-intake answers SAMPLES (0) only",
                req.accepted_response_types
            ),
        );
    }
    let mut budget = app.cfg.max_read_samples;
    let mut resp = ReadResponse::default();
    for q in &req.queries {
        let before = budget;
        match run_query(&app.pool, &app.names, q, &mut budget).await {
            Ok(r) => {
                app.stats.read_samples.inc_by((before - budget) as u64);
                resp.results.push(r);
            }
            Err(ReadError::Bad(m)) => return answer(&app, H, StatusCode::BAD_REQUEST, m),
            Err(ReadError::TooLarge(m)) => {
                return answer(&app, H, StatusCode::PAYLOAD_TOO_LARGE, m)
            }
            Err(ReadError::Unavailable(m)) => {
                return answer(&app, H, StatusCode::SERVICE_UNAVAILABLE, m)
            }
        }
    }
    let raw = resp.encode_to_vec();
    let compressed = match snap::raw::Encoder::new().compress_vec(&raw) {
        Ok(c) => c,
        Err(e) => {
            return answer(
                &app,
                H,
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("snappy: {e}"),
            )
        }
    };
    app.stats.count(H, 200);
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-protobuf"),
            (header::CONTENT_ENCODING, "snappy"),
        ],
        compressed,
    )
        .into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.stats.encode(),
    )
        .into_response()
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    match app.pool.get().await {
        Ok(c) => match c.simple_query("SELECT 1").await {
            Ok(_) => (StatusCode::OK, "OK\n").into_response(),
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
        },
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}
