//! The `bidim` table access method: rows partitioned by key range and time.
//!
//! Built in issue #3 (chunk storage) and #4 (key splits, retention, maintenance).
//! Layout to come: `codec` (pure Rust chunk codecs), `directory` (chunk catalog),
//! `handler` (the `TableAmRoutine` callbacks).
