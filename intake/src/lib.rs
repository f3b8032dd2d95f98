//! bidim-intake (library part, used by its binary and tests): a Prometheus remote storage (remote_write 1.0 and remote_read) that
//! stores series in a `series(id, metric, labels tagset)` table and samples in a bidim
//! `points(series_id, ts, value)` table. See docs/prometheus.md.

pub mod cache;
pub mod config;
pub mod decode;
pub mod labels;
pub mod pgtypes;
pub mod proto;
pub mod read;
pub mod server;
pub mod stats;
pub mod store;

use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;
use tracing::info;

/// Serves until SIGINT or SIGTERM (requests in flight finish first).
pub async fn run(cfg: config::Config) -> Result<(), String> {
    let names = store::prepare(&cfg).await?;
    let stats = Arc::new(stats::Stats::new());
    let pool = store::pool(&cfg.database, cfg.readers.max(1))?;
    let queue = store::start_writers(&cfg, &names, stats.clone());
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    info!(
        "listening on {} (remote_write: /api/v1/write, remote_read: /api/v1/read), storing into {} and {}",
        cfg.listen, names.series, names.points
    );
    let app = Arc::new(server::App {
        write_permits: Arc::new(Semaphore::new(cfg.max_inflight.max(1))),
        read_permits: Arc::new(Semaphore::new(cfg.readers.max(1) * 2)),
        cache: Mutex::new(cache::SeriesCache::new(cfg.series_cache)),
        cfg,
        names,
        pool,
        stats,
        queue,
    });
    axum::serve(listener, server::router(app))
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            info!("shutting down");
        })
        .await
        .map_err(|e| e.to_string())
}
