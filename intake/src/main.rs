//! bidim-intake: a Prometheus remote storage (remote_write 1.0 and remote_read) into
//! bidim tables. See docs/prometheus.md.

use bidim_intake::config::Config;
use clap::Parser;
use tracing::error;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
    let cfg = Config::parse();
    if let Err(e) = bidim_intake::run(cfg).await {
        error!("{e}");
        std::process::exit(1);
    }
}
