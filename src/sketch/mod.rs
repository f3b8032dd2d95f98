//! `ddsketch`: relative-error quantile sketch with exact merges.
//!
//! * [`core`]: the sketch (index mapping, bounded stores, quantiles, merges), pure Rust.
//! * [`codec`]: the versioned binary format and the JSON text form, pure Rust.
//! * [`sql`]: the `ddsketch` SQL type, its aggregates (expanded-object state) and
//!   functions: a thin layer of version-1 C functions over the two above.

pub mod codec;
pub mod core;
pub mod sql;

#[cfg(test)]
mod tests;
