//! Flags, each also read from an environment variable.

use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;

/// Prometheus remote storage (remote_write 1.0, remote_read) into bidim tables.
#[derive(Parser, Debug, Clone)]
#[command(name = "bidim-intake", version)]
pub struct Config {
    /// PostgreSQL connection string (libpq key=value or URL form).
    #[arg(
        long,
        env = "BIDIM_INTAKE_DATABASE",
        default_value = "host=127.0.0.1 user=postgres dbname=postgres"
    )]
    pub database: String,
    /// Address to listen on.
    #[arg(long, env = "BIDIM_INTAKE_LISTEN", default_value = "127.0.0.1:9201")]
    pub listen: SocketAddr,
    /// Schema of the intake's tables.
    #[arg(long, env = "BIDIM_INTAKE_SCHEMA", default_value = "prometheus")]
    pub schema: String,
    /// Name of the series table (in --schema).
    #[arg(long, env = "BIDIM_INTAKE_SERIES_TABLE", default_value = "series")]
    pub series_table: String,
    /// Name of the points table (in --schema), a bidim table.
    #[arg(long, env = "BIDIM_INTAKE_POINTS_TABLE", default_value = "points")]
    pub points_table: String,
    /// Create the schema and tables if missing, then serve.
    #[arg(long, env = "BIDIM_INTAKE_CREATE_SCHEMA")]
    pub create_schema: bool,
    /// Most samples committed in one transaction: concurrent write requests are
    /// stored together (one COPY, one commit) up to this many samples.
    #[arg(long, env = "BIDIM_INTAKE_BATCH_SIZE", default_value_t = 50_000)]
    pub batch_size: usize,
    /// Writer connections, each committing one batch at a time.
    #[arg(long, env = "BIDIM_INTAKE_WRITERS", default_value_t = 2)]
    pub writers: usize,
    /// Connections for series lookups and remote_read.
    #[arg(long, env = "BIDIM_INTAKE_READERS", default_value_t = 4)]
    pub readers: usize,
    /// Write requests decoded and held at once (the memory bound: this many times
    /// --max-request-bytes); beyond it requests wait up to --queue-timeout, then get 503.
    #[arg(long, env = "BIDIM_INTAKE_MAX_INFLIGHT", default_value_t = 16)]
    pub max_inflight: usize,
    /// How long a request waits for room or for its commit before a retryable 503.
    #[arg(long, env = "BIDIM_INTAKE_QUEUE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub queue_timeout: Duration,
    /// Largest request body once decompressed, bytes.
    #[arg(long, env = "BIDIM_INTAKE_MAX_REQUEST_BYTES", default_value_t = 8 << 20)]
    pub max_request_bytes: usize,
    /// Most series in one write request.
    #[arg(
        long,
        env = "BIDIM_INTAKE_MAX_SERIES_PER_REQUEST",
        default_value_t = 100_000
    )]
    pub max_series_per_request: usize,
    /// Most samples in one write request.
    #[arg(
        long,
        env = "BIDIM_INTAKE_MAX_SAMPLES_PER_REQUEST",
        default_value_t = 1_000_000
    )]
    pub max_samples_per_request: usize,
    /// Series ids kept in memory (label-set fingerprint -> id).
    #[arg(long, env = "BIDIM_INTAKE_SERIES_CACHE", default_value_t = 1_000_000)]
    pub series_cache: usize,
    /// Most samples one remote_read answer carries (a larger query gets 413).
    #[arg(
        long,
        env = "BIDIM_INTAKE_MAX_READ_SAMPLES",
        default_value_t = 50_000_000
    )]
    pub max_read_samples: usize,
    /// How long digests of stored requests are kept to recognize retries.
    #[arg(long, env = "BIDIM_INTAKE_DEDUP_WINDOW", default_value = "1h", value_parser = parse_duration)]
    pub dedup_window: Duration,
}

/// `250ms`, `30s`, `5m`, `1h` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration (like 250ms, 30s, 5m, 1h)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("\"{s}\" has an unknown unit (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("5 days").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn defaults_parse() {
        let c = Config::parse_from(["bidim-intake"]);
        assert_eq!(c.listen.port(), 9201);
        assert_eq!(c.queue_timeout, Duration::from_secs(30));
    }
}
