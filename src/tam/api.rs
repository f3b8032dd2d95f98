//! SQL functions of the access method: configuration, sealing, retention.
//!
//! The public functions are C functions that check their caller themselves (the table
//! is a bidim table, the caller owns it, the arguments are valid) and then do the work
//! with [`super::privilege`]; no internal function is left for PUBLIC to call around
//! the checks. The `bidim._*` functions that remain are for the extension's event
//! triggers and superusers only (REVOKEd from PUBLIC).

use super::{chunk_store, config, hot_chunk, maintenance, retention};
use crate::error::raise;
use crate::fmgr::{arg, null};
use pgrx::pg_sys;
use pgrx::prelude::*;

pgrx::extension_sql_file!(
    "../../sql/tam_api.sql",
    name = "tam_api",
    requires = ["tam_catalog"]
);

/// `schema.name` of relation `rel`, both quoted where needed.
pub fn qualified_name(rel: pg_sys::Oid) -> String {
    // SAFETY: syscache lookups by oid; null results are handled.
    unsafe {
        let name = pg_sys::get_rel_name(rel);
        if name.is_null() {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!("relation with OID {} does not exist", rel.to_u32()),
                None,
            );
        }
        let ns = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(rel));
        let q = |p: *mut std::ffi::c_char| {
            chunk_store::quote_ident(&std::ffi::CStr::from_ptr(p).to_string_lossy())
        };
        format!("{}.{}", q(ns), q(name))
    }
}

/// The text form of a datum of type `typ` (its output function, current settings).
pub fn output_text(typ: pg_sys::Oid, d: pg_sys::Datum) -> String {
    // SAFETY: the type's own output function on a valid datum of that type.
    unsafe {
        let mut func = pg_sys::InvalidOid;
        let mut varlena = false;
        pg_sys::getTypeOutputInfo(typ, &mut func, &mut varlena);
        let p = pg_sys::OidOutputFunctionCall(func, d);
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Whether `rel` uses the bidim access method.
pub fn is_bidim_table(rel: pg_sys::Oid) -> bool {
    // SAFETY: a syscache lookup of the relation's pg_class row, released at once; then
    // the access method's name.
    unsafe {
        let tup = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(rel),
        );
        if tup.is_null() {
            return false;
        }
        let form = pg_sys::GETSTRUCT(tup) as pg_sys::Form_pg_class;
        let am = (*form).relam;
        let kind = (*form).relkind as u8;
        pg_sys::ReleaseSysCache(tup);
        if kind != pg_sys::RELKIND_RELATION || am == pg_sys::InvalidOid {
            return false;
        }
        let name = pg_sys::get_am_name(am);
        !name.is_null() && std::ffi::CStr::from_ptr(name).to_bytes() == b"bidim"
    }
}

/// The first argument of `func`, a regclass that must not be NULL.
///
/// # Safety
/// `fcinfo` must be a call whose first argument is a regclass.
pub unsafe fn regclass_arg(fcinfo: pg_sys::FunctionCallInfo, func: &str) -> pg_sys::Oid {
    // SAFETY: per the contract.
    let (d, isnull) = unsafe { arg(fcinfo, 0) };
    if isnull {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{func}: table must not be NULL"),
            None,
        );
    }
    pg_sys::Oid::from(d.value() as u32)
}

/// The table argument of `func`: not NULL, a bidim table.
///
/// # Safety
/// `fcinfo` must be a call whose first argument is a regclass.
unsafe fn table_arg(fcinfo: pg_sys::FunctionCallInfo, func: &str) -> pg_sys::Oid {
    // SAFETY: per the contract.
    let rel = unsafe { regclass_arg(fcinfo, func) };
    if !is_bidim_table(rel) {
        raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("table \"{}\" is not a bidim table", qualified_name(rel)),
            Some("Create it with CREATE TABLE ... USING bidim."),
        );
    }
    rel
}

/// Raises an error unless the current user owns table `rel` (or is a member of its
/// owning role, as PostgreSQL's own ownership checks allow).
pub fn require_owner(rel: pg_sys::Oid) {
    // SAFETY: an ACL check by oid of the current user.
    if !unsafe { pg_sys::pg_class_ownercheck(rel, pg_sys::GetUserId()) } {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("must be owner of table {}", qualified_name(rel)),
            None,
        );
    }
}

/// A bidim table the caller owns: the first argument of `func`.
///
/// # Safety
/// As [`table_arg`].
pub(super) unsafe fn owned_table_arg(fcinfo: pg_sys::FunctionCallInfo, func: &str) -> pg_sys::Oid {
    // SAFETY: forwarded.
    let rel = unsafe { table_arg(fcinfo, func) };
    require_owner(rel);
    rel
}

/// Argument `i` as an optional `name`.
///
/// # Safety
/// Argument `i` must be of type name.
unsafe fn name_arg(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> Option<String> {
    // SAFETY: per the contract, a name datum points to a NUL-terminated NameData.
    unsafe {
        let (d, isnull) = arg(fcinfo, i);
        (!isnull).then(|| {
            std::ffi::CStr::from_ptr(d.cast_mut_ptr::<std::ffi::c_char>())
                .to_string_lossy()
                .into_owned()
        })
    }
}

/// (attnum, type) of live column `name` of `rel`.
fn column(rel: pg_sys::Oid, name: &str) -> Option<(i16, pg_sys::Oid)> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: syscache lookups by relation and column name.
    unsafe {
        let attnum = pg_sys::get_attnum(rel, c.as_ptr());
        if attnum <= 0 {
            return None;
        }
        Some((attnum, pg_sys::get_atttype(rel, attnum)))
    }
}

fn type_name(t: pg_sys::Oid) -> String {
    // SAFETY: format_type_be returns a palloc'd NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(pg_sys::format_type_be(t)) }
        .to_string_lossy()
        .into_owned()
}

finfo!(pg_finfo_bidim_configure);
/// `bidim.configure(rel, key_column, time_column, hot_chunk_rows, partition_interval)`:
/// validates and stores a table's settings; returns the row now in force.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_configure(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: argument positions and types follow the SQL declaration.
    let rel = unsafe { owned_table_arg(fcinfo, "bidim.configure") };
    let opt = |(d, isnull): (pg_sys::Datum, bool)| (!isnull).then_some(d);
    // SAFETY: as above.
    let args = unsafe {
        ConfigArgs {
            key: name_arg(fcinfo, 1),
            time: name_arg(fcinfo, 2),
            rows: opt(arg(fcinfo, 3)).map(|d| d.value() as i64),
            width: opt(arg(fcinfo, 4)),
            convert_after: opt(arg(fcinfo, 5)),
        }
    };
    configure(rel, &args);
    if super::citus::is_distributed(rel) {
        super::citus::configure_shards(rel, &args);
    }
    config::config_row_datum(rel)
}

/// The arguments of `bidim.configure` (`None`: unchanged); intervals are datums.
#[derive(Default)]
pub struct ConfigArgs {
    pub key: Option<String>,
    pub time: Option<String>,
    pub rows: Option<i64>,
    pub width: Option<pg_sys::Datum>,
    pub convert_after: Option<pg_sys::Datum>,
}

/// Validates and stores the settings of bidim table `rel` (owned by the caller, which
/// the caller checked): `bidim.configure`, and `bidim.*` storage parameters.
pub fn configure(rel: pg_sys::Oid, args: &ConfigArgs) {
    let table = qualified_name(rel);
    // One configure at a time per table, and none while rows go in: the check that
    // the table has no chunks below holds until we commit.
    // SAFETY: a heavyweight lock on the table, kept to commit.
    unsafe { pg_sys::LockRelationOid(rel, pg_sys::ShareRowExclusiveLock as pg_sys::LOCKMODE) };
    let cur = config::current_settings(rel);
    let convert_after = match args.convert_after {
        None => cur.convert_after,
        Some(after) => {
            // SAFETY: an interval datum points to an Interval struct.
            let i = unsafe { &*after.cast_mut_ptr::<pg_sys::Interval>() };
            let us = i64::from(i.month) * 30 * super::cell::USECS_PER_DAY
                + i64::from(i.day) * super::cell::USECS_PER_DAY
                + i.time;
            if us < 0 {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!(
                        "convert_after must not be negative, not {}",
                        output_text(pg_sys::INTERVALOID, after)
                    ),
                    Some("interval '0' turns automatic conversion off."),
                );
            }
            (us > 0).then_some((i.month, i.day, i.time))
        }
    };
    let changes_columns = args.key.as_ref().is_some_and(|k| *k != cur.key_column)
        || args.time.as_ref().is_some_and(|t| *t != cur.time_column);
    if changes_columns && chunk_store::has_chunks_latest(rel) {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot change the key or time column of bidim table \"{table}\" while it holds rows"),
            Some("TRUNCATE it first, or copy the rows into a new table."),
        );
    }
    let key = args.key.clone().unwrap_or(cur.key_column);
    let time = args.time.clone().unwrap_or(cur.time_column);
    let rows = args.rows.unwrap_or(cur.hot_chunk_rows);
    let width_datum = args.width;
    let (months, days, micros) = match width_datum {
        None => (0, 0, cur.width),
        Some(w) => {
            // SAFETY: an interval datum points to an Interval struct.
            let i = unsafe { &*w.cast_mut_ptr::<pg_sys::Interval>() };
            (i.month, i.day, i.time)
        }
    };
    match column(rel, &key) {
        None => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("column \"{key}\" of table \"{table}\" does not exist"),
            None,
        ),
        Some((_, t)) if !config::is_key_type(t) => raise(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!(
                "key column \"{key}\" has type {}, but must be smallint, integer, bigint, text or varchar",
                type_name(t)
            ),
            None,
        ),
        _ => {}
    }
    match column(rel, &time) {
        None => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("column \"{time}\" of table \"{table}\" does not exist"),
            None,
        ),
        Some((_, t)) if !config::is_time_type(t) => raise(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!(
                "time column \"{time}\" has type {}, but must be timestamptz or timestamp",
                type_name(t)
            ),
            None,
        ),
        _ => {}
    }
    if rows < 1 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("hot_chunk_rows must be at least 1, not {rows}"),
            None,
        );
    }
    let shown = || {
        output_text(
            pg_sys::INTERVALOID,
            width_datum.unwrap_or(pg_sys::Datum::from(0)),
        )
    };
    let width = match super::cell::width_of(months, days, micros) {
        Ok(w) => w,
        Err(super::cell::CellError::Months) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "partition_interval must not contain months or years, not {}",
                shown()
            ),
            Some("Use days, for example interval '30 days'."),
        ),
        Err(_) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "partition_interval must be at least 1 second, not {}",
                shown()
            ),
            None,
        ),
    };
    // Settings that make a chunk per handful of rows are allowed (tests use them) but
    // said: every chunk is a relation with an index, made in the inserting transaction.
    if rows < config::WARN_BELOW_HOT_CHUNK_ROWS {
        pgrx::warning!(
            "hot_chunk_rows = {rows} makes a new chunk every {rows} rows of a key range and time partition; each chunk is a relation with an index"
        );
    }
    if width < config::WARN_BELOW_WIDTH {
        pgrx::warning!(
            "a partition_interval of {} seconds makes a new chunk for every key range every {} seconds of data; each chunk is a relation with an index",
            width as f64 / 1e6,
            width as f64 / 1e6
        );
    }
    let interval = if width_datum.is_some() {
        (months, days, micros)
    } else {
        cur.interval
            .unwrap_or((0, config::DEFAULT_PARTITION_DAYS, 0))
    };
    config::store_config(rel, &key, &time, rows, interval, convert_after);
}

finfo!(pg_finfo_bidim_seal);
/// `bidim.seal(rel)`: seals every hot chunk of a table now; returns how many.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_seal(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the first argument is a regclass.
    let rel = unsafe { owned_table_arg(fcinfo, "bidim.seal") };
    if super::citus::is_distributed(rel) {
        return pg_sys::Datum::from(super::citus::call_on_shards(rel, "seal", &[]));
    }
    pg_sys::Datum::from(hot_chunk::seal_chunks(rel, hot_chunk::Sealing::All))
}

finfo!(pg_finfo_bidim_drop_before);
/// `bidim.drop_before(rel, cutoff)`: drops the time partitions wholly before cutoff.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_drop_before(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: (regclass, timestamptz) per the SQL declaration.
    let rel = unsafe { owned_table_arg(fcinfo, "bidim.drop_before") };
    // SAFETY: as above.
    let (cutoff, isnull) = unsafe { arg(fcinfo, 1) };
    if isnull {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "bidim.drop_before: cutoff must not be NULL",
            None,
        );
    }
    // A distributed table's own chunks (rows it held before Citus distributed it)
    // go by the same rule; the count is the shards'.
    let here = retention::drop_before(rel, cutoff.value() as i64);
    if super::citus::is_distributed(rel) {
        return pg_sys::Datum::from(super::citus::call_on_shards(
            rel,
            "drop_before",
            &[super::citus::timestamptz_literal(cutoff)],
        ));
    }
    pg_sys::Datum::from(here)
}

finfo!(pg_finfo_bidim_convert);
/// `bidim.convert(rel, older_than)`: converts the ready sealed chunks holding only rows
/// before older_than into cold chunks; returns how many.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_convert(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: (regclass, timestamptz) per the SQL declaration.
    let rel = unsafe { owned_table_arg(fcinfo, "bidim.convert") };
    // SAFETY: as above.
    let (older_than, isnull) = unsafe { arg(fcinfo, 1) };
    if super::citus::is_distributed(rel) {
        let arg = if isnull {
            "NULL".to_string()
        } else {
            super::citus::timestamptz_literal(older_than)
        };
        return pg_sys::Datum::from(super::citus::call_on_shards(rel, "convert", &[arg]));
    }
    let older_than = if isnull {
        i64::MAX
    } else {
        older_than.value() as i64
    };
    // A chunk's conversion holds about eight locks to commit (the chunk, the batch
    // relation, its TOAST table and indexes): a call converts at most
    // max_locks_per_transaction chunks, so that one call cannot fill the lock table.
    // SAFETY: a GUC variable, read in the backend that owns it.
    let limit = unsafe { pg_sys::max_locks_per_xact }.max(1) as usize;
    let out = super::convert::convert(rel, older_than, true, limit);
    if out.left > 0 {
        pgrx::notice!(
            "bidim.convert converted {} chunks of \"{}\" and left {} more for another call (a call converts at most max_locks_per_transaction chunks: each holds its locks until commit)",
            out.converted,
            qualified_name(rel),
            out.left
        );
    }
    if out.skipped > 0 {
        pgrx::notice!(
            "bidim.convert skipped {} sealed chunks of \"{}\" that are not ready yet (a transaction that may still write them is running); they are converted later",
            out.skipped,
            qualified_name(rel)
        );
    }
    pg_sys::Datum::from(out.converted)
}

finfo!(pg_finfo_bidim_cold_rows);
/// `bidim.cold_rows(rel, chunk_id)`: the rows cold chunk `chunk_id` of `rel` holds now
/// (its batches' row counts under the caller's snapshot: rows moved back to hot chunks
/// by changes no longer count); NULL for a chunk that is not cold or not there. The
/// caller must be allowed to read the table.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_cold_rows(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: (regclass, int4) per the SQL declaration.
    unsafe {
        on_cold_chunk(fcinfo, "bidim.cold_rows", |_, chunk, snapshot| {
            Some(pg_sys::Datum::from(super::cold_scan::live_rows(
                chunk, snapshot,
            )))
        })
    }
}

finfo!(pg_finfo_bidim_cold_column_bytes);
/// `bidim.cold_column_bytes(rel, chunk_id)`: bytes each column of `rel` takes in cold
/// chunk `chunk_id` (an int8 array by attribute number: the encoded columns of its
/// batches visible now); NULL for a chunk that is not cold or not there. The caller
/// must be allowed to read the table.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_cold_column_bytes(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let bytes = |rel: pg_sys::Oid, chunk: pg_sys::Relation, snapshot: pg_sys::Snapshot| {
        // SAFETY: the table passed the checks of on_cold_chunk; its descriptor gives
        // the column count.
        let natts = unsafe {
            let t = pg_sys::relation_open(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
            let n = (*(*t).rd_att).natts as usize;
            pg_sys::relation_close(t, pg_sys::NoLock as pg_sys::LOCKMODE);
            n
        };
        super::cold_scan::column_bytes(chunk, snapshot, natts).into_datum()
    };
    // SAFETY: (regclass, int4) per the SQL declaration.
    unsafe { on_cold_chunk(fcinfo, "bidim.cold_column_bytes", bytes) }
}

/// The result of a function `func(rel regclass, chunk_id int4)` STRICT about a cold
/// chunk: `f` of the bidim table, its open cold chunk `chunk_id` and the caller's
/// snapshot; NULL for a chunk that is not cold or not there. The caller must be
/// allowed to read the table.
///
/// # Safety
/// `fcinfo` is a call of such a function.
unsafe fn on_cold_chunk(
    fcinfo: pg_sys::FunctionCallInfo,
    func: &str,
    f: impl FnOnce(pg_sys::Oid, pg_sys::Relation, pg_sys::Snapshot) -> Option<pg_sys::Datum>,
) -> pg_sys::Datum {
    // SAFETY: (regclass, int4) per the contract (STRICT: neither is NULL).
    let (rel, ordinal) = unsafe { (table_arg(fcinfo, func), arg(fcinfo, 1).0.value() as i32) };
    require_select(rel);
    let result = (ordinal > 0)
        .then(|| super::chunk_store::chunk_relid(rel, ordinal as u32))
        .flatten()
        .and_then(|relid| {
            let chunk = super::delegate::open_chunk(relid, pg_sys::AccessShareLock);
            // SAFETY: the caller's active snapshot, valid during the call.
            let d = super::cold::is_cold(chunk)
                .then(|| f(rel, chunk, unsafe { pg_sys::GetActiveSnapshot() }))
                .flatten();
            super::delegate::close_chunk(chunk);
            d
        });
    result.unwrap_or_else(|| {
        // SAFETY: the function's call info: a NULL result.
        unsafe { (*fcinfo).isnull = true };
        pg_sys::Datum::from(0)
    })
}

/// Raises `insufficient_privilege` unless the current user may read table `rel`.
fn require_select(rel: pg_sys::Oid) {
    // SAFETY: an ACL check by oid of the current user.
    let may_read = unsafe {
        pg_sys::pg_class_aclcheck(
            rel,
            pg_sys::GetUserId(),
            pg_sys::ACL_SELECT as pg_sys::AclMode,
        ) == pg_sys::AclResult::ACLCHECK_OK
    };
    if !may_read {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied for table {}", qualified_name(rel)),
            None,
        );
    }
}

finfo!(pg_finfo_bidim_add_retention_policy);
/// `bidim.add_retention_policy(rel, drop_after, if_not_exists)`: returns the job id.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_add_retention_policy(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: (regclass, interval, boolean) per the SQL declaration.
    let rel = unsafe { owned_table_arg(fcinfo, "bidim.add_retention_policy") };
    // SAFETY: as above.
    let ((after, after_null), (ine, ine_null)) = unsafe { (arg(fcinfo, 1), arg(fcinfo, 2)) };
    let positive = !after_null && {
        // SAFETY: an interval datum points to an Interval struct.
        let i = unsafe { &*after.cast_mut_ptr::<pg_sys::Interval>() };
        // An interval is positive when its span in microseconds is (months as 30
        // days, as PostgreSQL's interval comparison counts them).
        (i.month as i128 * 30 + i.day as i128) * 86_400_000_000 + i.time as i128 > 0
    };
    if !positive {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "bidim.add_retention_policy: drop_after must be a positive interval, not {}",
                if after_null {
                    "NULL".to_string()
                } else {
                    output_text(pg_sys::INTERVALOID, after)
                }
            ),
            None,
        );
    }
    let if_not_exists = !ine_null && ine.value() != 0;
    match retention::add_retention_policy(rel, after, if_not_exists) {
        Some(id) => pg_sys::Datum::from(id),
        // SAFETY: fcinfo is valid.
        None => unsafe { null(fcinfo) },
    }
}

finfo!(pg_finfo_bidim_remove_retention_policy);
/// `bidim.remove_retention_policy(rel, if_exists)`.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_remove_retention_policy(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: (regclass, boolean) per the SQL declaration.
    let rel = unsafe { owned_table_arg(fcinfo, "bidim.remove_retention_policy") };
    // SAFETY: as above.
    let (ie, ie_null) = unsafe { arg(fcinfo, 1) };
    if !retention::remove_retention_policy(rel) {
        let table = qualified_name(rel);
        if !ie_null && ie.value() != 0 {
            pgrx::notice!("table \"{table}\" has no retention policy, skipping");
        } else {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("table \"{table}\" has no retention policy"),
                None,
            );
        }
    }
    // SAFETY: fcinfo is valid.
    unsafe { null(fcinfo) }
}

fn require_superuser(what: &str) {
    // SAFETY: reads the current user's superuser flag.
    if !unsafe { pg_sys::superuser() } {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("must be superuser to {what}"),
            None,
        );
    }
}

finfo!(pg_finfo_bidim_forget_table);
/// `bidim._forget_table(oid)`: the drop event trigger's clean-up of a dropped table.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_forget_table(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    require_superuser("drop the chunks of a table");
    // SAFETY: a STRICT oid argument.
    let rel = pg_sys::Oid::from(unsafe { arg(fcinfo, 0) }.0.value() as u32);
    // A table that still exists is not forgotten (its chunks hold its rows).
    if is_bidim_table(rel) {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
            format!("table \"{}\" still exists", qualified_name(rel)),
            None,
        );
    }
    chunk_store::forget_table(rel);
    // SAFETY: fcinfo is valid.
    unsafe { null(fcinfo) }
}

finfo!(pg_finfo_bidim_after_alter_table);
/// `bidim._after_alter_table(oid)`: run by the ALTER TABLE event trigger.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_after_alter_table(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    require_superuser("run bidim's ALTER TABLE checks");
    // SAFETY: a STRICT oid argument.
    let rel = pg_sys::Oid::from(unsafe { arg(fcinfo, 0) }.0.value() as u32);
    if is_bidim_table(rel) {
        chunk_store::after_alter_table(rel);
    }
    // SAFETY: fcinfo is valid.
    unsafe { null(fcinfo) }
}

finfo!(pg_finfo_bidim_maintain);
/// `bidim._maintain()`: the database's maintenance job (bidim.run_job calls it).
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_maintain(_fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    require_superuser("run bidim maintenance");
    pg_sys::Datum::from(maintenance::maintain())
}
