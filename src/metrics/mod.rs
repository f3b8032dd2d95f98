//! Metric semantics: what a counter, a gauge and a time series' first and last point
//! mean, as aggregates with combine functions (parallel workers, Citus shards and
//! rollups combine partial states).
//!
//! * [`points`]: the aggregates' state, a bag of (time, value) points, and its binary
//!   form (pure Rust).
//! * [`counter`]: `increase` / `rate` / `delta` with counter resets and Prometheus's
//!   extrapolation rules (pure Rust).
//! * [`gauge`]: time-weighted averages (linear, last observation carried forward) and
//!   first / last (pure Rust).
//! * [`gapfill`]: the rows a gap-filled bucket series holds (pure Rust).
//! * [`sql`]: the version-1 C functions behind the SQL aggregates (`sql/metrics.sql`).

pub mod counter;
pub mod gapfill;
pub mod gauge;
pub mod points;
pub mod sql;

#[cfg(test)]
mod tests;
