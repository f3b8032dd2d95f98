//! Storage parameters `bidim.*`: a table's settings written into its definition.
//!
//! *Pure.* `bidim.configure` stores a table's settings in `bidim.table_config` and also
//! writes them into the table's own `pg_class.reloptions` as `bidim.<setting>=<value>`.
//! That makes them part of the table's definition: `\d+` shows them, `pg_dump` and
//! Citus (which builds every shard, moved shard and worker copy from the
//! coordinator's definition) carry them, and `CREATE TABLE ... USING bidim WITH
//! (bidim.hot_chunk_rows = 1000)` / `ALTER TABLE ... SET (bidim....)` set them
//! (`super::utility` takes them out of the statement before PostgreSQL, which does not
//! know them, sees it). This file names them; the shell parses the values.

/// The prefix of every bidim storage parameter.
pub const PREFIX: &str = "bidim.";

/// One setting of a bidim table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    KeyColumn,
    TimeColumn,
    HotChunkRows,
    PartitionInterval,
    ConvertAfter,
}

impl Setting {
    pub const ALL: [Setting; 5] = [
        Setting::KeyColumn,
        Setting::TimeColumn,
        Setting::HotChunkRows,
        Setting::PartitionInterval,
        Setting::ConvertAfter,
    ];

    /// The name after `bidim.` (the same as `bidim.configure`'s argument).
    pub fn name(self) -> &'static str {
        match self {
            Setting::KeyColumn => "key_column",
            Setting::TimeColumn => "time_column",
            Setting::HotChunkRows => "hot_chunk_rows",
            Setting::PartitionInterval => "partition_interval",
            Setting::ConvertAfter => "convert_after",
        }
    }
}

/// What a storage parameter's name means to bidim.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a bidim parameter (PostgreSQL's own, or another namespace).
    Other,
    Ours(Setting),
    /// `bidim.<unknown>`: an error naming it.
    Unknown(String),
}

/// Classifies a parameter written `namespace.name` (`WITH (bidim.x = 1)`) or as one
/// quoted name (`WITH ("bidim.x" = 1)`, as `pg_dump` and Citus write stored options).
pub fn parse(namespace: Option<&str>, name: &str) -> Parsed {
    let rest = match namespace {
        Some(ns) if ns == PREFIX.trim_end_matches('.') => name,
        Some(_) => return Parsed::Other,
        None => match name.strip_prefix(PREFIX) {
            Some(r) => r,
            None => return Parsed::Other,
        },
    };
    Setting::ALL
        .into_iter()
        .find(|s| s.name() == rest)
        .map(Parsed::Ours)
        .unwrap_or_else(|| Parsed::Unknown(format!("{PREFIX}{rest}")))
}

/// One stored entry of `pg_class.reloptions`: `bidim.<name>=<value>`.
pub fn entry(s: Setting, value: &str) -> String {
    format!("{PREFIX}{}={value}", s.name())
}

/// Whether a stored `name=value` entry of `pg_class.reloptions` is bidim's.
pub fn is_ours(entry: &str) -> bool {
    entry.starts_with(PREFIX)
}

/// The value of a `hot_chunk_rows` parameter, or an error naming it.
pub fn parse_rows(value: &str) -> Result<i64, String> {
    value.trim().parse::<i64>().map_err(|_| {
        format!("invalid value for bidim.hot_chunk_rows: \"{value}\" (an integer is expected)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_both_spellings() {
        assert_eq!(
            parse(Some("bidim"), "hot_chunk_rows"),
            Parsed::Ours(Setting::HotChunkRows)
        );
        assert_eq!(
            parse(None, "bidim.partition_interval"),
            Parsed::Ours(Setting::PartitionInterval)
        );
        assert_eq!(parse(None, "fillfactor"), Parsed::Other);
        assert_eq!(parse(Some("toast"), "autovacuum_enabled"), Parsed::Other);
        assert_eq!(
            parse(Some("bidim"), "chunk_rows"),
            Parsed::Unknown("bidim.chunk_rows".into())
        );
        assert_eq!(parse(None, "bidimx"), Parsed::Other);
    }

    #[test]
    fn entries_round_trip() {
        for s in Setting::ALL {
            let e = entry(s, "v");
            assert!(is_ours(&e));
            let (name, value) = e.split_once('=').unwrap();
            assert_eq!(parse(None, name), Parsed::Ours(s));
            assert_eq!(value, "v");
        }
        assert!(!is_ours("fillfactor=50"));
    }

    #[test]
    fn rows_values() {
        assert_eq!(parse_rows(" 1000 "), Ok(1000));
        assert!(parse_rows("1e3").unwrap_err().contains("\"1e3\""));
    }
}
