//! Tags: `tagset` and `tagquery` types, operators, GIN operator class, describe-tags.
//!
//! Built in issue #6: a pure Rust core (tag model, query parser, evaluator) and the SQL
//! types, operators and index support over it.
