//! The `bidim` table access method: rows partitioned by key range and time.
//!
//! Files follow the life of a row. Pure Rust rules (no PostgreSQL calls; unit-tested
//! with `cargo test`) are marked *pure*; the rest is the PostgreSQL shell around them.
//!
//! | step | files |
//! |---|---|
//! | identity | [`tid`] *pure* (facade TIDs, ordinal reuse), [`cell`] *pure* (`Cell`, time partitions), [`keyrange`] *pure* (key ranges, splits) |
//! | directory | [`directory`] *pure* (`ChunkRow`, `ChunkState`, the rules over rows), [`directory_io`] (rows read through the catalog C API), [`schema`] (SQL objects), [`config`] (settings, every default), [`cache`] (per-backend cache) |
//! | route | [`route`] (row -> cell -> hot chunk) |
//! | hot chunk | [`hot_chunk`] (inserts, sealing), [`seal`] *pure* (when a chunk is full), [`block_map`] *pure* (sealed chunks' block-range time maps), [`split`] (key-range splits), [`chunk_store`] (chunk relations: create, drop, follow ALTER TABLE) |
//! | convert | [`convert`] (sealed -> cold), [`decompress`] (cold -> hot, for a statement that changes cold rows), [`cold`] (batch relation, values <-> codecs), [`codec`] *pure* (the column format and codecs) |
//! | scan | [`chunk_scan`] (scans, one reader per kind of chunk), [`kept_scans`] (chunk index scans kept across rescans), [`cold_scan`] (cold chunks' batches), [`prune`] *pure* (bounds, chunk choice), [`custom_scan`] (`BidimScan`), [`modify`] (rows by TID) |
//! | aggregate | [`agg_plan`] (the `BidimAgg` path under a Finalize Aggregate), [`agg_exec`] (aggregating batches and hot rows into partial states), [`aggregate`] *pure* (the states, as PostgreSQL's transition functions leave them) |
//! | retention | [`retention`] (`drop_before`, policies), [`maintenance`] (the maintenance job), [`worker`] (background workers) |
//! | rollup | [`rollup`] (rollups: creation, logging changed buckets, refresh), [`rollup_rules`] *pure* (buckets, runs, slices) |
//! | scale-out | [`options`] *pure* (`bidim.*` storage parameters), [`utility`] (storage parameters in CREATE/ALTER TABLE), [`citus`] (commands on every shard), [`sizes`] (PostgreSQL's size functions count the chunks) |
//! | shell | [`handler`] (the `TableAmRoutine`), [`delegate`] (heap on a chunk, TIDs, slots), [`relation`] (the table as a whole), [`api`] (SQL functions), [`privilege`] (who bidim's SQL runs as), [`locks`] (advisory locks) |

pub mod agg_exec;
pub mod agg_plan;
pub mod aggregate;
pub mod api;
pub mod block_map;
pub mod cache;
pub mod cell;
pub mod chunk_scan;
pub mod chunk_store;
pub mod citus;
pub mod codec;
pub mod cold;
pub mod cold_scan;
pub mod config;
pub mod convert;
pub mod custom_scan;
pub mod decompress;
pub mod delegate;
pub mod directory;
pub mod directory_io;
pub mod handler;
pub mod hot_chunk;
pub mod kept_scans;
pub mod keyrange;
pub mod locks;
pub mod maintenance;
pub mod modify;
pub mod options;
pub mod plan_directory;
pub mod privilege;
pub mod prune;
pub mod relation;
pub mod retention;
pub mod rollup;
pub mod rollup_rules;
pub mod route;
pub mod schema;
pub mod seal;
pub mod sizes;
pub mod split;
pub mod tid;
pub mod utility;
pub mod worker;
