//! Per-table settings: the one source of every default, the column types a key or
//! time column may have, the stored `bidim.table_config` row, and the resolved
//! [`TableConfig`] the row path uses (cached per backend), plus the module's GUCs.

use super::cache;
use super::cell;
use super::directory_io::{self, relation_oid, routing_snapshot};
use super::keyrange::KeyKind;
use super::options::{self, Setting};
use super::privilege::as_extension_owner;
use crate::error::{raise, spi_or_raise};
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Settings of one bidim table, resolved to attribute numbers.
#[derive(Clone, Debug)]
pub struct TableConfig {
    pub key_attnum: i16,
    pub time_attnum: i16,
    pub hot_chunk_rows: i64,
    /// Partition width in microseconds.
    pub width: i64,
    /// How the key column compares (routing to key ranges).
    pub key_kind: KeyKind,
}

// Every default and limit of a table's settings, in one place (SQL_API.md gives the
// defaults; the SQL side gets them from here, never writes its own).

/// Rows a hot chunk takes before it is sealed.
pub const DEFAULT_HOT_CHUNK_ROWS: i64 = 1_000_000;
/// Width of a time partition, in days.
pub const DEFAULT_PARTITION_DAYS: i32 = 1;
/// The default partition width, in microseconds.
pub const DEFAULT_WIDTH: i64 = DEFAULT_PARTITION_DAYS as i64 * cell::USECS_PER_DAY;
/// `bidim.configure` warns below these (tiny chunks, tiny partitions).
pub const WARN_BELOW_HOT_CHUNK_ROWS: i64 = 100;
pub const WARN_BELOW_WIDTH: i64 = 60_000_000;

/// Longest text key a row may have: every chunk indexes (key, time) in a btree, whose
/// entries must fit a third of a page (2704 bytes) even when the key does not compress.
pub const MAX_TEXT_KEY_BYTES: usize = 2048;

/// `bidim.max_chunks_per_transaction`.
pub static MAX_CHUNKS_PER_XACT: pgrx::guc::GucSetting<i32> = pgrx::guc::GucSetting::<i32>::new(500);

/// Defines the access method's GUCs of this module.
pub fn define_gucs() {
    pgrx::guc::GucRegistry::define_int_guc(
        c"bidim.max_chunks_per_transaction",
        c"Most chunks one transaction may create in bidim tables.",
        c"Every chunk a transaction creates holds about five locks until it ends; past this many the transaction fails with a clear error instead of exhausting the shared lock table.",
        &MAX_CHUNKS_PER_XACT,
        1,
        1_000_000,
        pgrx::guc::GucContext::Userset,
        pgrx::guc::GucFlags::default(),
    );
}

/// How a key column of type `t` compares, or `None` when `t` cannot be a key type
/// (the one list of key types).
pub fn key_kind_of(t: pg_sys::Oid) -> Option<KeyKind> {
    match t {
        t if t == pg_sys::INT2OID || t == pg_sys::INT4OID || t == pg_sys::INT8OID => {
            Some(KeyKind::Int)
        }
        t if t == pg_sys::TEXTOID || t == pg_sys::VARCHAROID => Some(KeyKind::Text),
        _ => None,
    }
}

/// Type OIDs a key column may have.
pub fn is_key_type(t: pg_sys::Oid) -> bool {
    key_kind_of(t).is_some()
}

pub fn is_time_type(t: pg_sys::Oid) -> bool {
    t == pg_sys::TIMESTAMPTZOID || t == pg_sys::TIMESTAMPOID
}

/// Live columns of a relation: (attnum, name, type).
///
/// # Safety
/// `rel` must be an open relation.
pub unsafe fn columns(rel: pg_sys::Relation) -> Vec<(i16, String, pg_sys::Oid)> {
    // SAFETY: reading the tuple descriptor of an open relation.
    unsafe {
        let desc = (*rel).rd_att;
        let attrs = (*desc).attrs.as_slice((*desc).natts as usize);
        attrs
            .iter()
            .filter(|a| !a.attisdropped)
            .map(|a| {
                let name = std::ffi::CStr::from_ptr(a.attname.data.as_ptr())
                    .to_string_lossy()
                    .into_owned();
                (a.attnum, name, a.atttypid)
            })
            .collect()
    }
}

/// Default key and time columns of a table, or an ERROR with a hint.
///
/// # Safety
/// `rel` must be an open relation.
pub unsafe fn default_columns(rel: pg_sys::Relation) -> (i16, i16) {
    // SAFETY: forwarded.
    let cols = unsafe { columns(rel) };
    let key = cols.iter().find(|c| is_key_type(c.2)).map(|c| c.0);
    let time = cols.iter().find(|c| is_time_type(c.2)).map(|c| c.0);
    match (key, time) {
        (Some(k), Some(t)) => (k, t),
        (None, _) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
            "a bidim table needs a key column of type smallint, integer, bigint, text or varchar",
            Some("Add such a column (for example series_id bigint), or create the table with another access method."),
        ),
        (_, None) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
            "a bidim table needs a time column of type timestamptz or timestamp",
            Some("Add such a column (for example ts timestamptz), or create the table with another access method."),
        ),
    }
}

/// The configuration of an open bidim table (cached per backend).
///
/// # Safety
/// `rel` must be an open bidim table.
pub unsafe fn config(rel: pg_sys::Relation) -> TableConfig {
    // SAFETY: reading the oid of an open relation.
    let facade = unsafe { (*rel).rd_id };
    if let Some(c) = cache::config(facade) {
        return c;
    }
    // SAFETY: forwarded.
    let cols = unsafe { columns(rel) };
    let table = || super::api::qualified_name(facade);
    let kind_of = |attnum: i16| {
        cols.iter()
            .find(|c| c.0 == attnum)
            .and_then(|c| key_kind_of(c.2))
            .unwrap_or_else(|| {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
                    format!("the key column of bidim table \"{}\" is not of type smallint, integer, bigint, text or varchar", table()),
                    Some("Choose another key column with bidim.configure."),
                )
            })
    };
    let cfg = match stored_settings(facade) {
        None => {
            // SAFETY: forwarded.
            let (k, t) = unsafe { default_columns(rel) };
            TableConfig {
                key_attnum: k,
                time_attnum: t,
                hot_chunk_rows: DEFAULT_HOT_CHUNK_ROWS,
                width: DEFAULT_WIDTH,
                key_kind: kind_of(k),
            }
        }
        Some(s) => {
            let find = |n: &str, what: &str| {
                cols.iter()
                    .find(|c| c.1 == n)
                    .map(|c| c.0)
                    .unwrap_or_else(|| {
                        raise(
                            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                            format!("the configured {what} column \"{n}\" of bidim table \"{}\" no longer exists", table()),
                            Some("Configure the table again with bidim.configure."),
                        )
                    })
            };
            let key_attnum = find(&s.key_column, "key");
            TableConfig {
                key_attnum,
                time_attnum: find(&s.time_column, "time"),
                hot_chunk_rows: s.hot_chunk_rows,
                width: s.width,
                key_kind: kind_of(key_attnum),
            }
        }
    };
    cache::set_config(facade, &cfg);
    cfg
}

/// A table's settings as stored (or the defaults): what `bidim.configure` starts from.
pub struct Settings {
    pub key_column: String,
    pub time_column: String,
    pub hot_chunk_rows: i64,
    /// Partition width in microseconds.
    pub width: i64,
    /// The stored interval as (months, days, microseconds), if a row exists.
    pub interval: Option<(i32, i32, i64)>,
    /// Age after which the maintenance job converts sealed chunks, as (months, days,
    /// microseconds); `None`: never.
    pub convert_after: Option<(i32, i32, i64)>,
}

/// The stored settings of `facade`, if it has a configuration row (an invalid stored
/// width is an error naming the table).
pub fn stored_settings(facade: pg_sys::Oid) -> Option<Settings> {
    let mut out = None;
    // SAFETY: the routing snapshot is used at once.
    unsafe {
        directory_io::scan(
            "table_config",
            "table_config_pkey",
            facade,
            routing_snapshot(),
            |r| {
                let iv = r.must("partition_interval", r.interval("partition_interval"));
                let width = cell::width_of(iv.0, iv.1, iv.2).unwrap_or_else(|e| {
                    raise(
                        PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                        format!(
                            "bidim.table_config holds an invalid partition_interval for table {} ({e:?})",
                            facade.to_u32()
                        ),
                        Some("Set it again with bidim.configure."),
                    )
                });
                out = Some(Settings {
                    key_column: r.must("key_column", r.name("key_column")),
                    time_column: r.must("time_column", r.name("time_column")),
                    hot_chunk_rows: r.must("hot_chunk_rows", r.i64("hot_chunk_rows")),
                    width,
                    interval: Some(iv),
                    convert_after: r.interval("convert_after"),
                })
            },
        )
    };
    out
}

/// The stored settings of `facade`, or the defaults (names of the default columns;
/// empty when the table has none of a kind).
pub fn current_settings(facade: pg_sys::Oid) -> Settings {
    let out = stored_settings(facade);
    out.unwrap_or_else(|| {
        // SAFETY: the table is opened and closed around reading its descriptor.
        let cols = unsafe {
            let rel = pg_sys::relation_open(facade, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
            let c = columns(rel);
            pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
            c
        };
        let first = |f: fn(pg_sys::Oid) -> bool| {
            cols.iter()
                .find(|c| f(c.2))
                .map(|c| c.1.clone())
                .unwrap_or_default()
        };
        Settings {
            key_column: first(is_key_type),
            time_column: first(is_time_type),
            hot_chunk_rows: DEFAULT_HOT_CHUNK_ROWS,
            width: DEFAULT_WIDTH,
            interval: None,
            convert_after: None,
        }
    })
}

/// Inserts or updates the configuration row of `facade` (validated by the caller).
pub fn store_config(
    facade: pg_sys::Oid,
    key: &str,
    time: &str,
    rows: i64,
    interval: (i32, i32, i64),
    convert_after: Option<(i32, i32, i64)>,
) {
    let iv = interval_value(interval);
    let after = convert_after.map(interval_value);
    as_extension_owner(|| {
        spi_or_raise(
            Spi::run_with_args(
                "INSERT INTO bidim.table_config AS c
                 VALUES ($1::pg_catalog.regclass, $2::pg_catalog.name, $3::pg_catalog.name, $4, $5, $6)
                 ON CONFLICT ON CONSTRAINT table_config_pkey DO UPDATE
                 SET key_column = excluded.key_column, time_column = excluded.time_column,
                     hot_chunk_rows = excluded.hot_chunk_rows,
                     partition_interval = excluded.partition_interval,
                     convert_after = excluded.convert_after",
                &[
                    facade.into(),
                    key.into(),
                    time.into(),
                    rows.into(),
                    iv.into(),
                    after.into(),
                ],
            ),
            "store the configuration",
        )
    });
    let shown = |v: pgrx::datum::Interval| {
        super::api::output_text(
            pg_sys::INTERVALOID,
            v.into_datum().expect("a non-null interval has a datum"),
        )
    };
    let mut entries = vec![
        options::entry(Setting::KeyColumn, key),
        options::entry(Setting::TimeColumn, time),
        options::entry(Setting::HotChunkRows, &rows.to_string()),
        options::entry(Setting::PartitionInterval, &shown(iv)),
    ];
    if let Some(a) = after {
        entries.push(options::entry(Setting::ConvertAfter, &shown(a)));
    }
    write_reloptions(facade, &entries);
    cache::invalidate_relcache(facade);
    cache::invalidate(facade);
}

/// The `bidim.table_config` row of `facade` as a composite datum (the result of
/// `bidim.configure`).
pub fn config_row_datum(facade: pg_sys::Oid) -> pg_sys::Datum {
    let s = current_settings(facade);
    let iv = interval_value(s.interval.unwrap_or((0, DEFAULT_PARTITION_DAYS, 0)));
    // SAFETY: a row of the table's own row type, formed from its descriptor; name
    // values are zero-padded NAMEDATALEN buffers; the tuple is copied into a datum.
    unsafe {
        let relid = relation_oid("bidim", "table_config");
        let typ = pg_sys::get_rel_type_id(relid);
        let desc = pg_sys::lookup_rowtype_tupdesc(typ, -1);
        let name = |n: &str| {
            let p = pg_sys::palloc0(pg_sys::NAMEDATALEN as usize) as *mut u8;
            let len = n.len().min(pg_sys::NAMEDATALEN as usize - 1);
            std::ptr::copy_nonoverlapping(n.as_ptr(), p, len);
            pg_sys::Datum::from(p)
        };
        let mut values = [
            pg_sys::Datum::from(facade),
            name(&s.key_column),
            name(&s.time_column),
            pg_sys::Datum::from(s.hot_chunk_rows),
            iv.into_datum().expect("a non-null interval has a datum"),
            s.convert_after
                .map(interval_value)
                .and_then(|v| v.into_datum())
                .unwrap_or(pg_sys::Datum::from(0)),
        ];
        let mut nulls = [false, false, false, false, false, s.convert_after.is_none()];
        let tup = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        let d = pg_sys::heap_copy_tuple_as_datum(tup, desc);
        if (*desc).tdrefcount >= 0 {
            pg_sys::DecrTupleDescRefCount(desc);
        }
        d
    }
}

/// A partition interval of (months, days, microseconds) as an SQL interval, or an
/// error naming it.
fn interval_value((months, days, micros): (i32, i32, i64)) -> pgrx::datum::Interval {
    pgrx::datum::Interval::new(months, days, micros).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid partition_interval ({months} months, {days} days, {micros} microseconds): {e:?}"),
            None,
        )
    })
}

/// Replaces the `bidim.*` entries of `facade`'s `pg_class.reloptions` with `entries`
/// (other entries are kept), so the settings travel with the table's definition
/// (`super::options`). PostgreSQL reads stored options without validating them.
fn write_reloptions(facade: pg_sys::Oid, entries: &[String]) {
    // SAFETY: the pg_class row of an existing relation (the caller holds a lock on it)
    // is copied, given a new reloptions array and updated through the catalog API,
    // which also sends the relcache invalidation; every pointer is checked.
    unsafe {
        let class = pg_sys::table_open(
            pg_sys::RelationRelationId,
            pg_sys::RowExclusiveLock as pg_sys::LOCKMODE,
        );
        let tup = pg_sys::SearchSysCacheCopy(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(facade),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        );
        if tup.is_null() {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!("relation with OID {} does not exist", facade.to_u32()),
                None,
            );
        }
        let mut isnull = false;
        let old = pg_sys::SysCacheGetAttr(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            tup,
            pg_sys::Anum_pg_class_reloptions as pg_sys::AttrNumber,
            &mut isnull,
        );
        let mut kept: Vec<String> = Vec::new();
        if !isnull {
            let arr: Vec<Option<String>> =
                Vec::<Option<String>>::from_datum(old, false).unwrap_or_default();
            kept.extend(arr.into_iter().flatten().filter(|e| !options::is_ours(e)));
        }
        kept.extend(entries.iter().cloned());
        let datums: Vec<pg_sys::Datum> = kept
            .iter()
            .map(|e| e.as_str().into_datum().expect("text has a datum"))
            .collect();
        let mut values = [pg_sys::Datum::from(0); pg_sys::Natts_pg_class as usize];
        let mut nulls = [false; pg_sys::Natts_pg_class as usize];
        let mut replace = [false; pg_sys::Natts_pg_class as usize];
        let at = pg_sys::Anum_pg_class_reloptions as usize - 1;
        replace[at] = true;
        if datums.is_empty() {
            nulls[at] = true;
        } else {
            values[at] = pg_sys::Datum::from(pg_sys::construct_array(
                datums.as_ptr() as *mut pg_sys::Datum,
                datums.len() as i32,
                pg_sys::TEXTOID,
                -1,
                false,
                pg_sys::TYPALIGN_INT as std::ffi::c_char,
            ));
        }
        let new = pg_sys::heap_modify_tuple(
            tup,
            (*class).rd_att,
            values.as_mut_ptr(),
            nulls.as_mut_ptr(),
            replace.as_mut_ptr(),
        );
        pg_sys::CatalogTupleUpdate(class, &mut (*new).t_self, new);
        pg_sys::table_close(class, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
        pg_sys::CommandCounterIncrement();
    }
}
