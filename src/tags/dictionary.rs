//! The describe-tags dictionary: per table, series counts by key and by tag, kept by
//! statement triggers so listings never scan the series.
//!
//! Security: the trigger reads only the transition tables PostgreSQL hands it in its
//! `TriggerData` (never a relation by name), checks it fires as the statement-level
//! AFTER trigger `enable_tag_dictionary` made, and writes the dictionary rows of the
//! table it fires on through [`crate::tam::privilege::as_extension_owner`]. Enabling
//! reads the table as the calling owner, never as a superuser.

use crate::error::raise;
use crate::fmgr::{arg, null};
use crate::tam::api::{qualified_name, require_owner};
use crate::tam::directory_io;
use crate::tam::privilege::{as_extension_owner, pinned};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::HashMap;

pgrx::extension_sql_file!(
    "../../sql/tags_dictionary.sql",
    name = "tags_dictionary",
    requires = ["tags_sql", "tam_catalog"]
);

const TRIGGERS: [(&str, &str); 4] = [
    (
        "bidim_tag_dict_ins",
        "AFTER INSERT ON {t} REFERENCING NEW TABLE AS bidim_new_rows",
    ),
    (
        "bidim_tag_dict_upd",
        "AFTER UPDATE ON {t} REFERENCING OLD TABLE AS bidim_old_rows NEW TABLE AS bidim_new_rows",
    ),
    (
        "bidim_tag_dict_del",
        "AFTER DELETE ON {t} REFERENCING OLD TABLE AS bidim_old_rows",
    ),
    ("bidim_tag_dict_trunc", "AFTER TRUNCATE ON {t}"),
];

/// Series counts to add: (key, tag) -> delta; tag "" counts series having the key.
type Deltas = HashMap<(String, String), i64>;

fn add_set(deltas: &mut Deltas, set: &super::model::TagSet, sign: i64) {
    for t in set.tags() {
        *deltas
            .entry((t.key().to_string(), t.text().to_string()))
            .or_default() += sign;
    }
    for k in set.keys() {
        *deltas.entry((k.to_string(), String::new())).or_default() += sign;
    }
}

/// Writes `deltas` into the dictionary of `rel` (as the extension owner).
fn apply(rel: pg_sys::Oid, deltas: Deltas, prune: bool) {
    let mut keys = Vec::with_capacity(deltas.len());
    let mut tags = Vec::with_capacity(deltas.len());
    let mut counts = Vec::with_capacity(deltas.len());
    for ((k, t), n) in deltas {
        if n != 0 {
            keys.push(k);
            tags.push(t);
            counts.push(n);
        }
    }
    as_extension_owner(|| {
        if !keys.is_empty() {
            Spi::run_with_args(
                "INSERT INTO bidim.tag_dict AS o (rel, key, tag, series)
                 SELECT $1::oid::regclass, u.k, u.t, u.n
                 FROM unnest($2::text[], $3::text[], $4::int8[]) AS u(k, t, n)
                 ON CONFLICT (rel, key, tag) DO UPDATE SET series = o.series + excluded.series",
                &[rel.into(), keys.into(), tags.into(), counts.into()],
            )
            .unwrap_or_else(|e| error!("bidim: cannot update the tag dictionary: {e}"));
        }
        if prune {
            Spi::run_with_args(
                "DELETE FROM bidim.tag_dict WHERE rel = $1::oid::regclass AND series <= 0",
                &[rel.into()],
            )
            .unwrap_or_else(|e| error!("bidim: cannot update the tag dictionary: {e}"));
        }
    });
}

/// The registered tagset column of `rel`, if it has a dictionary.
fn registered_column(rel: pg_sys::Oid) -> Option<String> {
    let mut col = None;
    // SAFETY: the catalog snapshot is fine for a row written by DDL-like calls.
    unsafe {
        directory_io::scan(
            "tag_dictionary",
            "tag_dictionary_pkey",
            rel,
            pg_sys::GetTransactionSnapshot(),
            |r| col = r.name("column_name"),
        )
    };
    col
}

/// The schema of extension bidim (pg_extension.extnamespace).
fn extension_schema() -> pg_sys::Oid {
    // SAFETY: a catalog scan of pg_extension by oid; the row's struct is read before
    // the scan ends.
    unsafe {
        let ext = pg_sys::get_extension_oid(c"bidim".as_ptr(), false);
        let rel = pg_sys::table_open(
            pg_sys::ExtensionRelationId,
            pg_sys::AccessShareLock as pg_sys::LOCKMODE,
        );
        let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
        pg_sys::ScanKeyInit(
            &mut key,
            pg_sys::Anum_pg_extension_oid as i16,
            pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
            pg_sys::F_OIDEQ.into(),
            pg_sys::Datum::from(ext),
        );
        let sc = pg_sys::systable_beginscan(
            rel,
            pg_sys::Oid::from(pg_sys::ExtensionOidIndexId),
            true,
            std::ptr::null_mut(),
            1,
            &mut key,
        );
        let tup = pg_sys::systable_getnext(sc);
        let nsp = if tup.is_null() {
            pg_sys::InvalidOid
        } else {
            (*(pg_sys::GETSTRUCT(tup) as pg_sys::Form_pg_extension)).extnamespace
        };
        pg_sys::systable_endscan(sc);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        nsp
    }
}

/// The oid of type `tagset` (in the extension's schema).
fn tagset_type() -> pg_sys::Oid {
    let nsp = extension_schema();
    // SAFETY: a syscache lookup by name inside the extension's own schema.
    unsafe {
        pg_sys::GetSysCacheOid(
            pg_sys::SysCacheIdentifier::TYPENAMENSP as i32,
            pg_sys::Anum_pg_type_oid as i16,
            pg_sys::Datum::from(c"tagset".as_ptr()),
            pg_sys::Datum::from(nsp),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        )
    }
}

/// Attribute number of live column `name` of `rel` if it is of type tagset.
fn tagset_column(rel: pg_sys::Oid, name: &str) -> Result<i16, String> {
    let c = std::ffi::CString::new(name).map_err(|_| "bad name".to_string())?;
    // SAFETY: syscache lookups by relation and column name.
    let (attnum, typ) = unsafe {
        let n = pg_sys::get_attnum(rel, c.as_ptr());
        if n <= 0 {
            return Err(format!(
                "column \"{name}\" of relation \"{}\" does not exist",
                qualified_name(rel)
            ));
        }
        (n, pg_sys::get_atttype(rel, n))
    };
    if typ != tagset_type() {
        return Err(format!(
            "column \"{name}\" of relation \"{}\" is of type {}, not tagset",
            qualified_name(rel),
            crate::tam::api::output_text(pg_sys::REGTYPEOID, pg_sys::Datum::from(typ))
        ));
    }
    Ok(attnum)
}

/// Adds the tags of every row of a transition table to `deltas` with `sign`.
///
/// # Safety
/// `store` must be a transition tuplestore of relation `rel`.
unsafe fn read_transition(
    rel: pg_sys::Relation,
    store: *mut pg_sys::Tuplestorestate,
    attnum: i16,
    sign: i64,
    deltas: &mut Deltas,
) {
    // SAFETY: a read pointer of our own over the tuplestore (as a named tuplestore scan
    // makes one), a slot of the relation's descriptor, released at the end.
    unsafe {
        let ptr = pg_sys::tuplestore_alloc_read_pointer(store, 0);
        pg_sys::tuplestore_select_read_pointer(store, ptr);
        pg_sys::tuplestore_rescan(store);
        let slot = pg_sys::MakeSingleTupleTableSlot((*rel).rd_att, &pg_sys::TTSOpsMinimalTuple);
        while pg_sys::tuplestore_gettupleslot(store, true, false, slot) {
            let mut isnull = false;
            let d = pg_sys::slot_getattr(slot, attnum as i32, &mut isnull);
            if !isnull {
                add_set(deltas, &super::sql::set_of(d), sign);
            }
        }
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::tuplestore_select_read_pointer(store, 0);
    }
}

fn misuse() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
        "bidim._tag_dict_trigger must fire as the statement trigger bidim.enable_tag_dictionary creates",
        Some("Use bidim.enable_tag_dictionary(table, column)."),
    )
}

finfo!(pg_finfo_bidim_tag_dict_trigger);
/// The dictionary's statement trigger.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_tag_dict_trigger(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: the context of a trigger call is its TriggerData (checked by tag).
    let td = unsafe {
        let ctx = (*fcinfo).context;
        if ctx.is_null() || (*ctx).type_ != pg_sys::NodeTag::T_TriggerData {
            misuse();
        }
        ctx as *mut pg_sys::TriggerData
    };
    // SAFETY: a valid TriggerData from the trigger manager.
    let (event, rel, old, new) = unsafe {
        (
            (*td).tg_event,
            (*td).tg_relation,
            (*td).tg_oldtable,
            (*td).tg_newtable,
        )
    };
    let after = event & pg_sys::TRIGGER_EVENT_TIMINGMASK == pg_sys::TRIGGER_EVENT_AFTER;
    let per_row = event & pg_sys::TRIGGER_EVENT_ROW != 0;
    if !after || per_row {
        misuse();
    }
    // SAFETY: the relation the trigger fires on is open.
    let relid = unsafe { (*rel).rd_id };
    let Some(col) = registered_column(relid) else {
        // A trigger returns a null pointer, not SQL NULL.
        return pg_sys::Datum::from(0);
    };
    let op = event & pg_sys::TRIGGER_EVENT_OPMASK;
    if op == pg_sys::TRIGGER_EVENT_TRUNCATE {
        as_extension_owner(|| {
            Spi::run_with_args(
                "DELETE FROM bidim.tag_dict WHERE rel = $1::oid::regclass",
                &[relid.into()],
            )
            .unwrap_or_else(|e| error!("bidim: cannot update the tag dictionary: {e}"));
        });
        // A trigger returns a null pointer, not SQL NULL.
        return pg_sys::Datum::from(0);
    }
    let attnum = tagset_column(relid, &col).unwrap_or_else(|_| misuse());
    let (need_old, need_new) = match op {
        pg_sys::TRIGGER_EVENT_INSERT => (false, true),
        pg_sys::TRIGGER_EVENT_DELETE => (true, false),
        pg_sys::TRIGGER_EVENT_UPDATE => (true, true),
        _ => misuse(),
    };
    if (need_old && old.is_null()) || (need_new && new.is_null()) {
        misuse();
    }
    let mut deltas = Deltas::new();
    // SAFETY: the transition tables of this firing, of relation `rel`.
    unsafe {
        if need_new {
            read_transition(rel, new, attnum, 1, &mut deltas);
        }
        if need_old {
            read_transition(rel, old, attnum, -1, &mut deltas);
        }
    }
    apply(relid, deltas, need_old);
    pg_sys::Datum::from(0)
}

/// The table argument: not NULL, an ordinary table the caller owns.
///
/// # Safety
/// `fcinfo`'s first argument must be a regclass.
unsafe fn owned_table(fcinfo: pg_sys::FunctionCallInfo, func: &str) -> pg_sys::Oid {
    // SAFETY: per the contract.
    let rel = unsafe { crate::tam::api::regclass_arg(fcinfo, func) };
    // SAFETY: a syscache lookup of the relation's kind.
    let kind = unsafe { pg_sys::get_rel_relkind(rel) } as u8;
    let name = qualified_name(rel);
    if kind != pg_sys::RELKIND_RELATION && kind != pg_sys::RELKIND_PARTITIONED_TABLE {
        raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("\"{name}\" is not a table"),
            Some("A tag dictionary is kept for a table's tagset column."),
        );
    }
    require_owner(rel);
    rel
}

finfo!(pg_finfo_bidim_enable_tag_dictionary);
/// `bidim.enable_tag_dictionary(rel, column_name)`: creates the triggers and counts
/// the table's series; returns how many rows have tags.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_enable_tag_dictionary(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: (regclass, name) per the SQL declaration.
    let rel = unsafe { owned_table(fcinfo, "bidim.enable_tag_dictionary") };
    if crate::tam::citus::is_distributed(rel) {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "bidim.enable_tag_dictionary: \"{}\" is a Citus table, whose shards' series a dictionary here would not count",
                crate::tam::api::qualified_name(rel)
            ),
            Some("Call bidim.tag_keys, bidim.tag_values and bidim.describe_tags on it directly: they count the shards' series with a distributed query."),
        );
    }
    // SAFETY: as above; a name datum points to a NUL-terminated NameData.
    let col = unsafe {
        let (d, isnull) = arg(fcinfo, 1);
        if isnull {
            raise(
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "bidim.enable_tag_dictionary: column_name must not be NULL",
                None,
            );
        }
        std::ffi::CStr::from_ptr(d.cast_mut_ptr::<std::ffi::c_char>())
            .to_string_lossy()
            .into_owned()
    };
    let attnum = tagset_column(rel, &col).unwrap_or_else(|m| {
        let code = if m.contains("does not exist") {
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN
        } else {
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH
        };
        raise(code, m, None)
    });
    let table = qualified_name(rel);
    if registered_column(rel).is_some() {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("table \"{table}\" already has a tag dictionary"),
            Some("Drop it first with bidim.disable_tag_dictionary."),
        );
    }
    // Triggers first (CREATE TRIGGER locks out writers until we commit), then count.
    // Created as the extension owner: the trigger function is not for PUBLIC to use.
    as_extension_owner(|| {
        for (name, when) in TRIGGERS {
            Spi::run(&format!(
                "CREATE TRIGGER {name} {} FOR EACH STATEMENT EXECUTE FUNCTION bidim._tag_dict_trigger()",
                when.replace("{t}", &table)
            ))
            .unwrap_or_else(|e| error!("bidim: cannot create the tag dictionary triggers: {e}"));
        }
        Spi::run_with_args(
            "INSERT INTO bidim.tag_dictionary VALUES ($1::oid::regclass, $2::name)",
            &[rel.into(), col.as_str().into()],
        )
        .unwrap_or_else(|e| error!("bidim: cannot register the tag dictionary: {e}"));
        Spi::run_with_args(
            "DELETE FROM bidim.tag_dict WHERE rel = $1::oid::regclass",
            &[rel.into()],
        )
        .unwrap_or_else(|e| error!("bidim: cannot register the tag dictionary: {e}"));
    });
    // Count the existing rows as the caller (the owner): a plain read of the column.
    let mut deltas = Deltas::new();
    let mut series = 0i64;
    let quoted = crate::tam::chunk_store::quote_ident(&col);
    let _ = attnum;
    pinned(|| {
        Spi::connect(|client| {
            let mut cursor = client.open_cursor(
                // The cast to text[] is found by type (pg_cast), not by name.
                &format!(
                    "SELECT {quoted}::pg_catalog.text[] FROM {table} WHERE {quoted} IS NOT NULL"
                ),
                &[],
            );
            loop {
                let batch = cursor.fetch(10_000)?;
                if batch.is_empty() {
                    break;
                }
                for row in batch {
                    if let Some(texts) = row.get::<Vec<String>>(1)? {
                        let set = super::model::TagSet::from_texts(&texts)
                            .unwrap_or_else(|e| error!("bidim: {e}"));
                        add_set(&mut deltas, &set, 1);
                        series += 1;
                    }
                }
            }
            Ok::<_, pgrx::spi::Error>(())
        })
        .unwrap_or_else(|e| error!("bidim: cannot count the tags of {table}: {e}"))
    });
    apply(rel, deltas, false);
    pg_sys::Datum::from(series)
}

finfo!(pg_finfo_bidim_disable_tag_dictionary);
/// `bidim.disable_tag_dictionary(rel)`.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_disable_tag_dictionary(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: (regclass) per the SQL declaration.
    let rel = unsafe { owned_table(fcinfo, "bidim.disable_tag_dictionary") };
    let table = qualified_name(rel);
    as_extension_owner(|| {
        for (name, _) in TRIGGERS {
            Spi::run(&format!("DROP TRIGGER IF EXISTS {name} ON {table}"))
                .unwrap_or_else(|e| error!("bidim: cannot drop the tag dictionary: {e}"));
        }
        for sql in [
            "DELETE FROM bidim.tag_dict WHERE rel = $1::oid::regclass",
            "DELETE FROM bidim.tag_dictionary WHERE rel = $1::oid::regclass",
        ] {
            Spi::run_with_args(sql, &[rel.into()])
                .unwrap_or_else(|e| error!("bidim: cannot drop the tag dictionary: {e}"));
        }
    });
    // SAFETY: fcinfo is valid.
    unsafe { null(fcinfo) }
}
