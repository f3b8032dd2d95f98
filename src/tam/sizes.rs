//! PostgreSQL's size functions count a bidim table's chunks.
//!
//! `pg_total_relation_size`, `pg_table_size` and `pg_relation_size` measure a
//! relation's own files, and a bidim table's own file is empty: its rows are in its
//! chunks. psql's `\dt+`, monitoring queries and Citus (`citus_shards.shard_size`,
//! `citus_table_size`, the rebalancer's `by_disk_size`, all of which send
//! `pg_total_relation_size(shard)` to the workers) would see an empty table. So, while
//! the library is loaded, a planner hook points calls of those functions at bidim's
//! `bidim.pg_*_size` twins: for a bidim table they add its chunks' sizes, for any
//! other relation they return exactly what PostgreSQL's function returns. Only
//! statements whose text names one of them are walked and changed: stored views and
//! rules keep PostgreSQL's functions. The setting
//! `bidim.count_chunks_in_sizes = off` turns it off.

use super::directory_io;
use crate::fmgr::{arg, null};
use pgrx::prelude::*;

static mut PREV_PLANNER: pg_sys::planner_hook_type = None;

/// `bidim.count_chunks_in_sizes`.
pub static COUNT_CHUNKS: pgrx::guc::GucSetting<bool> = pgrx::guc::GucSetting::<bool>::new(true);

// PostgreSQL's functions (pg_proc.dat oids, fixed in every release).
const PG_TOTAL_RELATION_SIZE: u32 = 2286;
const PG_TABLE_SIZE: u32 = 2997;
const PG_RELATION_SIZE_1: u32 = 2325;
const PG_RELATION_SIZE_2: u32 = 2332;

/// Chains the planner hook and defines the setting.
pub fn install() {
    pgrx::guc::GucRegistry::define_bool_guc(
        c"bidim.count_chunks_in_sizes",
        c"pg_total_relation_size, pg_table_size and pg_relation_size count a bidim table's chunks.",
        c"A bidim table's rows are in its chunks; with this off, those functions measure only the table's own (empty) file.",
        &COUNT_CHUNKS,
        pgrx::guc::GucContext::Userset,
        pgrx::guc::GucFlags::default(),
    );
    // SAFETY: chaining a hook once per process, on PostgreSQL's main thread.
    unsafe {
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(planner);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn planner(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: i32,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: query_string is NULL or the statement's NUL-terminated source text.
    if COUNT_CHUNKS.get() && unsafe { mentions_sizes(query_string) } {
        // SAFETY: the planner owns (and may change) the query it is given.
        unsafe { redirect_query(parse) };
    }
    // SAFETY: the next hook (or PostgreSQL's planner) with the caller's arguments.
    unsafe {
        match PREV_PLANNER {
            Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| {
                prev(parse, query_string, cursor_options, bound_params)
            }),
            None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
        }
    }
}

/// Whether the source text can call a size function (each name ends in `_size`): a
/// query that does not name one is not walked at all. Views that call them are
/// expanded into queries that do not name them, and keep PostgreSQL's functions.
unsafe fn mentions_sizes(query_string: *const std::ffi::c_char) -> bool {
    if query_string.is_null() {
        return false;
    }
    // SAFETY: per the contract.
    let text = unsafe { std::ffi::CStr::from_ptr(query_string) }.to_bytes();
    text.windows(5).any(|w| w.eq_ignore_ascii_case(b"_size"))
}

/// The oids of bidim's twins, looked up once a query calls a size function.
struct Twins {
    total: pg_sys::Oid,
    table: pg_sys::Oid,
    rel1: pg_sys::Oid,
    rel2: pg_sys::Oid,
}

unsafe fn twins() -> Option<Twins> {
    // SAFETY: catalog lookups by name and oid; a missing function gives InvalidOid.
    unsafe {
        let ext = pg_sys::get_extension_oid(c"bidim".as_ptr(), true);
        if ext == pg_sys::InvalidOid {
            return None;
        }
        // Only the extension's own functions: a schema named bidim in a database
        // without the extension could hold anybody's.
        let find = |name: &std::ffi::CStr, args: &[pg_sys::Oid]| {
            let names = pg_sys::list_make2_impl(
                pg_sys::NodeTag::T_List,
                pg_sys::ListCell {
                    ptr_value: pg_sys::makeString(c"bidim".as_ptr() as *mut _).cast(),
                },
                pg_sys::ListCell {
                    ptr_value: pg_sys::makeString(name.as_ptr() as *mut _).cast(),
                },
            );
            let f = pg_sys::LookupFuncName(names, args.len() as i32, args.as_ptr(), true);
            (f != pg_sys::InvalidOid
                && pg_sys::getExtensionOfObject(pg_sys::ProcedureRelationId, f) == ext)
                .then_some(f)
        };
        Some(Twins {
            total: find(c"pg_total_relation_size", &[pg_sys::REGCLASSOID])?,
            table: find(c"pg_table_size", &[pg_sys::REGCLASSOID])?,
            rel1: find(c"pg_relation_size", &[pg_sys::REGCLASSOID])?,
            rel2: find(c"pg_relation_size", &[pg_sys::REGCLASSOID, pg_sys::TEXTOID])?,
        })
    }
}

struct Walk {
    twins: Option<Option<Twins>>,
}

/// Points the size functions in `q` (and its subqueries) at the twins.
unsafe fn redirect_query(q: *mut pg_sys::Query) {
    let mut w = Walk { twins: None };
    // SAFETY: a walk over a query tree the planner owns; only FuncExpr oids change.
    unsafe {
        pg_sys::query_tree_walker(q, Some(walker), (&mut w as *mut Walk).cast(), 0);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, ctx: *mut std::ffi::c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: ctx is the Walk of redirect_query; node is a valid node of the tree.
    unsafe {
        let w = &mut *(ctx as *mut Walk);
        match (*node).type_ {
            pg_sys::NodeTag::T_Query => {
                return pg_sys::query_tree_walker(node.cast(), Some(walker), ctx, 0);
            }
            pg_sys::NodeTag::T_FuncExpr => {
                let f = node as *mut pg_sys::FuncExpr;
                let id = (*f).funcid.to_u32();
                if matches!(
                    id,
                    PG_TOTAL_RELATION_SIZE
                        | PG_TABLE_SIZE
                        | PG_RELATION_SIZE_1
                        | PG_RELATION_SIZE_2
                ) {
                    if w.twins.is_none() {
                        w.twins = Some(twins());
                    }
                    if let Some(Some(t)) = &w.twins {
                        (*f).funcid = match id {
                            PG_TOTAL_RELATION_SIZE => t.total,
                            PG_TABLE_SIZE => t.table,
                            PG_RELATION_SIZE_1 => t.rel1,
                            _ => t.rel2,
                        };
                    }
                }
            }
            _ => {}
        }
        pg_sys::expression_tree_walker(node, Some(walker), ctx)
    }
}

/// Which of PostgreSQL's functions a twin stands for.
#[derive(Clone, Copy)]
enum Measure {
    Total,
    Table,
    Fork,
}

/// `measure` of `rel` by PostgreSQL's own function, plus, for a bidim table, the same
/// measure of each of its chunks; NULL when `rel` does not exist.
unsafe fn size(fcinfo: pg_sys::FunctionCallInfo, measure: Measure) -> pg_sys::Datum {
    // SAFETY: arguments per the SQL declarations (regclass, and a fork name for Fork).
    unsafe {
        let (relid, _) = arg(fcinfo, 0);
        let (func, fork) = match measure {
            Measure::Total => (PG_TOTAL_RELATION_SIZE, None),
            Measure::Table => (PG_TABLE_SIZE, None),
            Measure::Fork if (*fcinfo).nargs > 1 => (PG_RELATION_SIZE_2, Some(arg(fcinfo, 1).0)),
            Measure::Fork => (
                PG_RELATION_SIZE_2,
                Some("main".into_datum().expect("text has a datum")),
            ),
        };
        // PostgreSQL's own function, called through fmgr by its fixed oid, on a
        // relation that exists (it would return NULL otherwise).
        let one = |rel: pg_sys::Oid| -> i64 {
            let (f, c) = (pg_sys::Oid::from(func), pg_sys::InvalidOid);
            let d = match fork {
                Some(fork) => pg_sys::OidFunctionCall2Coll(f, c, pg_sys::Datum::from(rel), fork),
                None => pg_sys::OidFunctionCall1Coll(f, c, pg_sys::Datum::from(rel)),
            };
            d.value() as i64
        };
        let rel = pg_sys::Oid::from(relid.value() as u32);
        if !sized(rel) {
            return null(fcinfo);
        }
        let mut total = one(rel);
        if super::api::is_bidim_table(rel) {
            for c in directory_io::read_chunks_latest(rel) {
                if sized(c.chunk_rel) {
                    total += one(c.chunk_rel);
                }
            }
        }
        pg_sys::Datum::from(total)
    }
}

/// Whether `rel` exists (PostgreSQL's size functions return NULL otherwise).
fn sized(rel: pg_sys::Oid) -> bool {
    // SAFETY: a syscache probe by oid.
    unsafe {
        pg_sys::SearchSysCacheExists(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(rel),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        )
    }
}

crate::finfo!(pg_finfo_bidim_pg_total_relation_size);
/// `bidim.pg_total_relation_size(regclass)`.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_pg_total_relation_size(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: called as declared in SQL.
    unsafe { size(fcinfo, Measure::Total) }
}

crate::finfo!(pg_finfo_bidim_pg_table_size);
/// `bidim.pg_table_size(regclass)`.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_pg_table_size(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: called as declared in SQL.
    unsafe { size(fcinfo, Measure::Table) }
}

crate::finfo!(pg_finfo_bidim_pg_relation_size);
/// `bidim.pg_relation_size(regclass [, fork])`.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn bidim_pg_relation_size(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: called as declared in SQL.
    unsafe { size(fcinfo, Measure::Fork) }
}
