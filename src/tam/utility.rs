//! The utility hook: `bidim.*` storage parameters in `CREATE TABLE` / `ALTER TABLE`.
//!
//! PostgreSQL rejects storage parameters it does not know, so the hook takes the
//! `bidim.*` ones out of the statement before PostgreSQL (and Citus, whose hook comes
//! after ours) sees it, lets the statement run, and then applies them with
//! [`super::api::configure`], which also writes them into the table's definition
//! (`super::options`). That is how a Citus shard, created from the coordinator's
//! definition, gets its table's settings.

use super::api::{self, ConfigArgs};
use super::options::{self, Parsed, Setting};
use super::{citus, config};
use crate::error::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{CStr, CString};

static mut PREV_UTILITY: pg_sys::ProcessUtility_hook_type = None;

/// Chains the hook (every backend that loads the library).
pub fn install() {
    // SAFETY: chaining a hook once per process, on PostgreSQL's main thread.
    unsafe {
        PREV_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

/// What to do once the statement has run.
enum After {
    Nothing,
    /// A new table (if it did not exist before) gets these settings.
    Configure {
        rv: *mut pg_sys::RangeVar,
        existed: bool,
        settings: Vec<(Setting, String)>,
    },
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    let mut pstmt = pstmt;
    // SAFETY: pstmt is the statement PostgreSQL is about to run; when the tree is
    // read-only it is copied before anything in it changes.
    let after = unsafe {
        let stmt = (*pstmt).utilityStmt;
        match (*stmt).type_ {
            pg_sys::NodeTag::T_CreateStmt
                if !(*(stmt as *mut pg_sys::CreateStmt)).options.is_null() =>
            {
                if read_only_tree {
                    pstmt = pg_sys::copyObjectImpl(pstmt.cast()).cast();
                }
                create_table((*pstmt).utilityStmt.cast())
            }
            pg_sys::NodeTag::T_AlterTableStmt if sets_options(stmt) => {
                if read_only_tree {
                    pstmt = pg_sys::copyObjectImpl(pstmt.cast()).cast();
                }
                if alter_table((*pstmt).utilityStmt.cast()) {
                    // Every subcommand was bidim's and is done.
                    return;
                }
                After::Nothing
            }
            _ => After::Nothing,
        }
    };
    // SAFETY: the next hook (or PostgreSQL) with the caller's arguments.
    unsafe {
        match PREV_UTILITY {
            Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| {
                prev(
                    pstmt,
                    query_string,
                    read_only_tree,
                    context,
                    params,
                    query_env,
                    dest,
                    qc,
                )
            }),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    }
    match after {
        After::Nothing => {}
        After::Configure {
            rv,
            existed,
            settings,
        } => {
            if !existed {
                // SAFETY: the statement made the table; the CCI makes it visible here.
                let rel = unsafe {
                    pg_sys::CommandCounterIncrement();
                    created_table(rv)
                };
                if let Some(rel) = rel.filter(|r| api::is_bidim_table(*r)) {
                    api::configure(rel, &config_args(&settings));
                }
            }
        }
    }
}

/// The table access method a `CREATE TABLE` names (or the default one).
unsafe fn creates_bidim(stmt: *mut pg_sys::Node) -> bool {
    // SAFETY: stmt is a CreateStmt; the names are NUL-terminated strings.
    unsafe {
        let c = stmt as *mut pg_sys::CreateStmt;
        if !(*c).partspec.is_null() {
            return false;
        }
        let am = if (*c).accessMethod.is_null() {
            pg_sys::default_table_access_method
        } else {
            (*c).accessMethod
        };
        !am.is_null() && CStr::from_ptr(am).to_bytes() == b"bidim"
    }
}

/// Whether an `ALTER TABLE` sets or resets storage parameters.
unsafe fn sets_options(stmt: *mut pg_sys::Node) -> bool {
    // SAFETY: stmt is an AlterTableStmt; its cmds are AlterTableCmds.
    unsafe {
        let a = stmt as *mut pg_sys::AlterTableStmt;
        (0..pg_sys::list_length((*a).cmds)).any(|i| {
            let c = pg_sys::list_nth((*a).cmds, i) as *mut pg_sys::AlterTableCmd;
            matches!(
                (*c).subtype,
                pg_sys::AlterTableType::AT_SetRelOptions
                    | pg_sys::AlterTableType::AT_ResetRelOptions
            )
        })
    }
}

/// The parameter `def` names.
unsafe fn parsed(def: *mut pg_sys::DefElem) -> Parsed {
    // SAFETY: DefElem names are NUL-terminated strings (the namespace may be NULL).
    unsafe {
        let ns = (!(*def).defnamespace.is_null()).then(|| {
            CStr::from_ptr((*def).defnamespace)
                .to_string_lossy()
                .into_owned()
        });
        let name = CStr::from_ptr((*def).defname).to_string_lossy();
        options::parse(ns.as_deref(), &name)
    }
}

unsafe fn defs(list: *mut pg_sys::List) -> Vec<*mut pg_sys::DefElem> {
    // SAFETY: a List of DefElem (or NIL).
    unsafe {
        (0..pg_sys::list_length(list))
            .map(|i| pg_sys::list_nth(list, i) as *mut pg_sys::DefElem)
            .collect()
    }
}

/// Takes the bidim parameters out of `list`: (the rest, ours as (setting, value or
/// None for RESET)); an unknown `bidim.*` name is an error.
unsafe fn take_ours(
    list: *mut pg_sys::List,
) -> (*mut pg_sys::List, Vec<(Setting, Option<String>)>) {
    let mut rest = std::ptr::null_mut();
    let mut ours = Vec::new();
    // SAFETY: DefElems of a statement; defGetString gives any argument as text.
    unsafe {
        for d in defs(list) {
            match parsed(d) {
                Parsed::Other => rest = pg_sys::lappend(rest, d.cast()),
                Parsed::Unknown(name) => raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("unrecognized parameter \"{name}\""),
                    Some("bidim's storage parameters are bidim.key_column, bidim.time_column, bidim.hot_chunk_rows, bidim.partition_interval and bidim.convert_after."),
                ),
                Parsed::Ours(s) => {
                    let value = (!(*d).arg.is_null()).then(|| {
                        let arg = (*d).arg;
                        // `bidim.time_column = time` parses as the type name `time`,
                        // which defGetString would qualify (pg_catalog.time): the
                        // column is the name as written.
                        if (*arg).type_ == pg_sys::NodeTag::T_TypeName {
                            let names = (*(arg as *mut pg_sys::TypeName)).names;
                            let last = pg_sys::list_nth(names, pg_sys::list_length(names) - 1);
                            CStr::from_ptr((*(last as *mut pg_sys::String)).sval)
                                .to_string_lossy()
                                .into_owned()
                        } else {
                            CStr::from_ptr(pg_sys::defGetString(d))
                                .to_string_lossy()
                                .into_owned()
                        }
                    });
                    ours.push((s, value));
                }
            }
        }
    }
    (rest, ours)
}

fn must_have_value(s: Setting, v: Option<String>) -> String {
    v.unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "parameter \"{}{}\" needs a value",
                options::PREFIX,
                s.name()
            ),
            None,
        )
    })
}

unsafe fn create_table(c: *mut pg_sys::CreateStmt) -> After {
    // SAFETY: c is the statement's own (or copied) CreateStmt.
    unsafe {
        let (rest, ours) = take_ours((*c).options);
        if !ours.is_empty() && !creates_bidim(c.cast()) {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "bidim.* storage parameters apply only to tables created USING bidim",
                None,
            );
        }
        if !rest.is_null() && creates_bidim(c.cast()) {
            raise(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "a bidim table takes no storage parameters but bidim.*",
                Some("Its rows are stored in chunks, which bidim sets up itself."),
            );
        }
        (*c).options = rest;
        if ours.is_empty() {
            return After::Nothing;
        }
        let settings = ours
            .into_iter()
            .map(|(s, v)| (s, must_have_value(s, v)))
            .collect();
        // CREATE TABLE IF NOT EXISTS of a table that exists leaves it as it is.
        let existed = (*c).if_not_exists && created_table((*c).relation).is_some();
        After::Configure {
            rv: (*c).relation,
            existed,
            settings,
        }
    }
}

/// The table a `CREATE TABLE` of `rv` makes: looked up in the schema it is created in
/// (a temporary table of the same name, first on the search path, is not it).
unsafe fn created_table(rv: *mut pg_sys::RangeVar) -> Option<pg_sys::Oid> {
    // SAFETY: catalog lookups by name; rv is the statement's RangeVar.
    unsafe {
        let ns = pg_sys::RangeVarGetCreationNamespace(rv);
        let rel = pg_sys::get_relname_relid((*rv).relname, ns);
        (rel != pg_sys::InvalidOid).then_some(rel)
    }
}

/// Applies the bidim parameters of an `ALTER TABLE` and removes them from it; true
/// when nothing is left for PostgreSQL to do.
unsafe fn alter_table(a: *mut pg_sys::AlterTableStmt) -> bool {
    // SAFETY: a is the statement's own (or copied) AlterTableStmt.
    unsafe {
        let rel = pg_sys::RangeVarGetRelidExtended(
            (*a).relation,
            pg_sys::NoLock as _,
            if (*a).missing_ok {
                pg_sys::RVROption::RVR_MISSING_OK as _
            } else {
                0
            },
            None,
            std::ptr::null_mut(),
        );
        if rel == pg_sys::InvalidOid {
            return false;
        }
        let bidim = api::is_bidim_table(rel);
        let mut kept = std::ptr::null_mut();
        let mut settings: Vec<(Setting, Option<String>)> = Vec::new();
        for i in 0..pg_sys::list_length((*a).cmds) {
            let cmd = pg_sys::list_nth((*a).cmds, i) as *mut pg_sys::AlterTableCmd;
            let sub = (*cmd).subtype;
            if sub != pg_sys::AlterTableType::AT_SetRelOptions
                && sub != pg_sys::AlterTableType::AT_ResetRelOptions
            {
                kept = pg_sys::lappend(kept, cmd.cast());
                continue;
            }
            let (rest, ours) = take_ours((*cmd).def as *mut pg_sys::List);
            if !bidim && !ours.is_empty() {
                raise(
                    PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                    format!(
                        "bidim.* storage parameters apply only to bidim tables, and \"{}\" is not one",
                        api::qualified_name(rel)
                    ),
                    None,
                );
            }
            if bidim && !rest.is_null() {
                raise(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!(
                        "bidim table \"{}\" takes no storage parameters but bidim.*",
                        api::qualified_name(rel)
                    ),
                    Some("Its rows are stored in chunks, which bidim sets up itself."),
                );
            }
            let reset = sub == pg_sys::AlterTableType::AT_ResetRelOptions;
            settings.extend(
                ours.into_iter()
                    .map(|(s, v)| (s, if reset { None } else { v })),
            );
            if !rest.is_null() {
                (*cmd).def = rest.cast();
                kept = pg_sys::lappend(kept, cmd.cast());
            }
        }
        if settings.is_empty() {
            return false;
        }
        api::require_owner(rel);
        let args = config_args_reset(&settings);
        api::configure(rel, &args);
        if citus::is_distributed(rel) {
            citus::configure_shards(rel, &args);
        }
        (*a).cmds = kept;
        kept.is_null()
    }
}

/// Text settings as `bidim.configure` arguments (values checked by their parsers).
fn config_args(settings: &[(Setting, String)]) -> ConfigArgs {
    let s: Vec<(Setting, Option<String>)> = settings
        .iter()
        .map(|(k, v)| (*k, Some(v.clone())))
        .collect();
    config_args_reset(&s)
}

/// As [`config_args`]; a `None` value (RESET) puts the default back.
fn config_args_reset(settings: &[(Setting, Option<String>)]) -> ConfigArgs {
    let mut a = ConfigArgs::default();
    for (s, v) in settings {
        match (s, v) {
            (Setting::KeyColumn | Setting::TimeColumn, None) => raise(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("cannot reset {}{}", options::PREFIX, s.name()),
                Some("Set the column instead."),
            ),
            (Setting::KeyColumn, Some(v)) => a.key = Some(v.clone()),
            (Setting::TimeColumn, Some(v)) => a.time = Some(v.clone()),
            (Setting::HotChunkRows, v) => {
                a.rows = Some(match v {
                    Some(v) => options::parse_rows(v).unwrap_or_else(|e| {
                        raise(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, e, None)
                    }),
                    None => config::DEFAULT_HOT_CHUNK_ROWS,
                })
            }
            (Setting::PartitionInterval, v) => {
                let text = v
                    .clone()
                    .unwrap_or_else(|| format!("{} days", config::DEFAULT_PARTITION_DAYS));
                a.width = Some(interval(&text, *s));
            }
            (Setting::ConvertAfter, v) => {
                a.convert_after = Some(interval(v.as_deref().unwrap_or("0"), *s))
            }
        }
    }
    a
}

/// `text` read as an interval, or an error naming the parameter.
fn interval(text: &str, s: Setting) -> pg_sys::Datum {
    let c = CString::new(text).unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid value for {}{}", options::PREFIX, s.name()),
            None,
        )
    });
    // SAFETY: interval's own input function on a NUL-terminated string; a bad value
    // raises PostgreSQL's error naming it.
    unsafe {
        let mut func = pg_sys::InvalidOid;
        let mut ioparam = pg_sys::InvalidOid;
        pg_sys::getTypeInputInfo(pg_sys::INTERVALOID, &mut func, &mut ioparam);
        pg_sys::OidInputFunctionCall(func, c.as_ptr() as *mut _, ioparam, -1)
    }
}
