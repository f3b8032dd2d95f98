//! `ddsketch`: relative-error quantile sketch with exact merges.
//!
//! * [`core`]: the sketch (index mapping, bounded stores, quantiles, merges), pure Rust.
//! * [`codec`]: the versioned binary format and the JSON text form, pure Rust.
//!
//! The SQL type, aggregates and functions over them come with issue 5's SQL layer.

pub mod codec;
pub mod core;

#[cfg(test)]
mod tests;
