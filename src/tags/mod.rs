//! Tags: `tagset` and `tagquery` types, operators, GIN operator class, describe-tags.
//!
//! * [`model`]: the tag set (parsing, canonical text, binary form), pure Rust.
//! * [`query`]: the query language (parser, canonical printer, evaluator), pure Rust.
//! * [`gin`]: index entries of sets and queries, partial matches, consistent logic,
//!   pure Rust.
//! * [`sql`]: the SQL types, operators, GIN support functions and the describe-tags
//!   dictionary, a thin layer over the three above.

pub mod dictionary;
pub mod gin;
pub mod model;
pub mod query;
pub mod sql;

#[cfg(test)]
mod tests;
