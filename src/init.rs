//! Library initialisation: `_PG_init`, and what the library says about itself.
//!
//! The library works both ways: loaded at server start through
//! `shared_preload_libraries = 'bidim'` (needed later for the access method's planner
//! hooks, GUCs in shared memory and the maintenance worker) and loaded on first use by
//! `CREATE EXTENSION bidim` (types and functions only).

use pgrx::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by `_PG_init` when it runs while `shared_preload_libraries` is processed.
/// Backends forked from the postmaster inherit the value.
static LOADED_AT_PRELOAD: AtomicBool = AtomicBool::new(false);

/// Entry point PostgreSQL calls once per process that loads the library.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // SAFETY: a plain read of a `bool` global the postmaster sets while it loads
    // `shared_preload_libraries`; `_PG_init` runs on PostgreSQL's main thread.
    let preloading = unsafe { pg_sys::process_shared_preload_libraries_in_progress };
    LOADED_AT_PRELOAD.store(preloading, Ordering::Relaxed);
    crate::tam::cache::register_callbacks();
    crate::tam::config::define_gucs();
    crate::tam::custom_scan::install();
    crate::tam::decompress::install();
    crate::tam::agg_plan::install();
    crate::tam::agg_exec::install();
    crate::tam::utility::install();
    crate::tam::sizes::install();
    crate::tam::worker::install(preloading);
}

/// Whether this backend's copy of the library was loaded through
/// `shared_preload_libraries` (the table access method's planner hooks and the
/// maintenance worker need it; types and functions do not).
pub fn preloaded() -> bool {
    LOADED_AT_PRELOAD.load(Ordering::Relaxed)
}

#[pg_schema]
mod bidim {
    use pgrx::prelude::*;

    /// The version of the loaded library (not of the SQL objects installed).
    #[pg_extern(immutable, parallel_safe)]
    fn version() -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    /// True when the library was loaded from `shared_preload_libraries`.
    #[pg_extern(stable, parallel_safe)]
    fn preloaded() -> bool {
        super::preloaded()
    }
}
