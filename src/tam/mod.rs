//! The `bidim` table access method: rows partitioned by key range and time.
//!
//! * [`tid`], [`cell`], [`keyrange`]: pure Rust (TID encoding, time partitions, key
//!   ranges and their splits), unit-tested.
//! * [`catalog`]: the chunk directory, configuration, chunk creation, routing cache.
//! * [`handler`]: the `TableAmRoutine` callbacks.
//! * [`scan`]: the `BidimScan` custom scan that prunes chunks by time.
//! * [`worker`]: the maintenance launcher and per-database round workers.
//! * [`api`]: SQL functions (`bidim.configure`, `bidim.seal`, ...), each checking its
//!   caller itself.
//! * [`privilege`]: who bidim's own SQL runs as and with which `search_path`;
//!   [`directory_io`]: the directory read and written through the catalog C API;
//!   [`locks`]: the advisory locks.

pub mod api;
pub mod catalog;
pub mod cell;
pub mod directory_io;
pub mod handler;
pub mod keyrange;
pub mod locks;
pub mod privilege;
pub mod scan;
pub mod tid;
pub mod worker;
