//! The `bidim` table access method: rows partitioned by key range and time.
//!
//! * [`tid`], [`cell`], [`keyrange`]: pure Rust (TID encoding, time partitions, key
//!   ranges and their splits), unit-tested.
//! * [`catalog`]: the chunk directory, configuration, chunk creation, routing cache.
//! * [`handler`]: the `TableAmRoutine` callbacks.
//! * [`scan`]: the `BidimScan` custom scan that prunes chunks by time.
//! * [`worker`]: the maintenance launcher and per-database round workers.
//! * [`api`]: SQL functions (`bidim.configure`, `bidim.seal`, ...).

pub mod api;
pub mod catalog;
pub mod cell;
pub mod handler;
pub mod keyrange;
pub mod scan;
pub mod tid;
pub mod worker;
