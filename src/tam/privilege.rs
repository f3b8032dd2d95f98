//! Who bidim's own SQL runs as, and what names it can reach.
//!
//! Every SQL string bidim runs through SPI goes through one of these two wrappers:
//!
//! * [`pinned`]: as the calling user, with `search_path = pg_catalog, pg_temp`. With
//!   that path no function or operator outside `pg_catalog` can be found (PostgreSQL
//!   never looks for functions or operators in `pg_temp`), and a temporary relation is
//!   found only after `pg_catalog`'s; bidim's own relations are always written with
//!   their schema. A user's trojan function in `public` cannot run inside an insert of
//!   another user.
//! * [`as_extension_owner`]: the same, as the bootstrap superuser inside a
//!   security-restricted operation (what PostgreSQL's own maintenance commands use when
//!   they switch user). Only for writes to bidim's directory and chunk DDL: it never
//!   reads a relation a user controls, never evaluates a user's expression.
//!
//! On error, the transaction (or subtransaction) abort restores both the user and the
//! GUC nest level, as it does for SECURITY DEFINER functions.

use pgrx::pg_sys;

/// The search path bidim's own SQL runs with.
const SAFE_PATH: &std::ffi::CStr = c"pg_catalog, pg_temp";

/// Runs `f` with `search_path` pinned to `pg_catalog, pg_temp`, as the calling user.
pub fn pinned<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: a new GUC nest level with search_path set in it, popped after `f` (as
    // fmgr_security_definer does for a function's SET clause).
    let level = unsafe {
        let level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            SAFE_PATH.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        level
    };
    let r = f();
    // SAFETY: pops exactly the level pushed above.
    unsafe { pg_sys::AtEOXact_GUC(true, level) };
    r
}

/// Runs `f` as role `role` inside a security-restricted operation, with the pinned
/// search path.
pub fn as_role<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let mut user = pg_sys::InvalidOid;
    let mut sec = 0;
    // SAFETY: save/set/restore of the current user id, as SECURITY DEFINER code and
    // ANALYZE do; abort restores it on error.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut sec);
        pg_sys::SetUserIdAndSecContext(
            role,
            sec | (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION)
                as i32,
        );
    }
    let r = pinned(f);
    // SAFETY: restores what was saved above; then makes what `f` wrote visible to the
    // directory reads that follow in this command (as SPI does before each statement).
    unsafe {
        pg_sys::SetUserIdAndSecContext(user, sec);
        pg_sys::CommandCounterIncrement();
    }
    r
}

/// Runs `f` as the bootstrap superuser (owner of bidim's directory tables) inside a
/// security-restricted operation, with the pinned search path.
pub fn as_extension_owner<R>(f: impl FnOnce() -> R) -> R {
    as_role(pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID), f)
}

/// The owner of relation `rel` (an error if it does not exist).
pub fn owner_of(rel: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: a syscache lookup of the relation's pg_class row, released at once.
    unsafe {
        let tup = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(rel),
        );
        if tup.is_null() {
            crate::error::raise(
                pgrx::PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!("relation with OID {} does not exist", rel.to_u32()),
                None,
            );
        }
        let form = pgrx::pg_sys::GETSTRUCT(tup) as pg_sys::Form_pg_class;
        let owner = (*form).relowner;
        pg_sys::ReleaseSysCache(tup);
        owner
    }
}

/// Gives relation `rel` (and its indexes, TOAST table and owned sequences) to `owner`
/// through the catalog API ALTER TABLE ... OWNER TO uses, without name lookups.
pub fn give_to(rel: pg_sys::Oid, owner: pg_sys::Oid) {
    // SAFETY: ATExecChangeOwner on an existing relation (a chunk we created, or hold
    // locked through its table); run as the extension owner, a superuser, whom its
    // ownership checks let through.
    as_extension_owner(|| unsafe {
        pg_sys::ATExecChangeOwner(rel, owner, false, pg_sys::AccessExclusiveLock as i32);
        pg_sys::CommandCounterIncrement();
    });
}
