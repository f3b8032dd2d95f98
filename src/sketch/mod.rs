//! `ddsketch`: relative-error quantile sketch with exact merges.
//!
//! Built in issue #5: a pure Rust core (index mapping, stores, codec) and the SQL type,
//! aggregates and accessors over it.
