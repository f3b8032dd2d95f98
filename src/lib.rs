//! bidim: a PostgreSQL extension for metrics.
//!
//! Capabilities, one module folder each; pure Rust cores live beside the thin
//! pgrx layer so they are tested with plain `cargo test`:
//!
//! * [`tam`]: the `bidim` table access method (key range x time chunks).
//! * [`sketch`]: the `ddsketch` relative-error quantile sketch.
//! * [`tags`]: `tagset` / `tagquery` types and the GIN inverted index.
//! * [`metrics`]: counter and gauge aggregates (Prometheus semantics), first/last,
//!   gap filling.
//!
//! [`init`] holds `_PG_init` and the SQL functions that describe the library itself.

pub mod error;
#[macro_use]
pub mod fmgr;
pub mod init;
pub mod metrics;
pub mod sketch;
pub mod tags;
pub mod tam;

::pgrx::pg_module_magic!(name, version);

#[cfg(feature = "pg_test")]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn version_matches_crate() {
        let v = Spi::get_one::<String>("SELECT bidim.version()").unwrap();
        assert_eq!(v.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    }

    #[pg_test]
    fn extension_is_listed() {
        let n = Spi::get_one::<i64>("SELECT count(*) FROM pg_extension WHERE extname = 'bidim'")
            .unwrap();
        assert_eq!(n, Some(1));
    }

    #[pg_test]
    fn preload_flag_is_reported() {
        // pgrx's test server preloads the library (see pg_test::postgresql_conf_options).
        let p = Spi::get_one::<bool>("SELECT bidim.preloaded()").unwrap();
        assert_eq!(p, Some(true));
    }
}

/// Required by `cargo pgrx test`: one-off set-up and the test server's settings.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'bidim'"]
    }
}
