//! `BidimScan`: a custom scan that reads only the chunks whose time partition can hold
//! rows matching the query's conditions on the time column.
//!
//! The planner hook (`set_rel_pathlist_hook`) looks at the restrictions of a bidim
//! table for `time_column <op> expression` with `<op>` one of `< <= = >= >` and an
//! expression that is constant during the scan (constants, `now() - interval '1 hour'`,
//! parameters). It offers a `CustomPath` costed by the restrictions' selectivity. The
//! plan keeps every restriction as its filter, so the scan returns exactly what a
//! sequential scan would; pruning only skips chunks that cannot match. The bounds are
//! evaluated at executor start (so generic plans and `now()` prune too) and the chunk
//! list is read from the directory then, never expanded into the plan: planning cost
//! does not grow with the number of chunks. EXPLAIN shows the chunks scanned of the
//! total.

use super::directory::{ChunkRow, ChunkState};
use super::directory_io::{planning_chunks, read_chunks_ending_after};
use super::kept_scans::{self, KeptScans};
use super::keyrange::Key;
use super::prune::{bounds, chunks_to_read, same_reads, Bound, ColumnCond, EQ, GE, GT, LT};
use super::{chunk_scan, config, handler, prune, route};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;

const NAME: &CStr = c"BidimScan";

/// `bidim.enable_pruning`: lets the planner use BidimScan (default on).
pub static ENABLE_PRUNING: GucSetting<bool> = GucSetting::<bool>::new(true);

static mut PREV_PATHLIST_HOOK: pg_sys::set_rel_pathlist_hook_type = None;

static mut PATH_METHODS: pg_sys::CustomPathMethods = pg_sys::CustomPathMethods {
    CustomName: NAME.as_ptr(),
    PlanCustomPath: Some(plan_custom_path),
    ReparameterizeCustomPathByChild: None,
};

static mut SCAN_METHODS: pg_sys::CustomScanMethods = pg_sys::CustomScanMethods {
    CustomName: NAME.as_ptr(),
    CreateCustomScanState: Some(create_scan_state),
};

static mut EXEC_METHODS: pg_sys::CustomExecMethods = pg_sys::CustomExecMethods {
    CustomName: NAME.as_ptr(),
    BeginCustomScan: Some(begin_scan),
    ExecCustomScan: Some(exec_scan),
    EndCustomScan: Some(end_scan),
    ReScanCustomScan: Some(rescan),
    MarkPosCustomScan: None,
    RestrPosCustomScan: None,
    EstimateDSMCustomScan: Some(estimate_dsm),
    InitializeDSMCustomScan: Some(initialize_dsm),
    ReInitializeDSMCustomScan: Some(reinitialize_dsm),
    InitializeWorkerCustomScan: Some(initialize_worker),
    ShutdownCustomScan: None,
    ExplainCustomScan: Some(explain_scan),
};

/// Installs the planner hook and registers the scan's methods (for plan copies sent to
/// parallel workers). Called once per process from `_PG_init`.
pub fn install() {
    GucRegistry::define_bool_guc(
        c"bidim.enable_pruning",
        c"Lets the planner skip bidim chunks that cannot match conditions on the time column.",
        c"When off, bidim tables are always read whole by a sequential scan.",
        &ENABLE_PRUNING,
        GucContext::Userset,
        GucFlags::default(),
    );
    // SAFETY: chaining a planner hook and registering static method tables, once per
    // process, on PostgreSQL's main thread.
    unsafe {
        PREV_PATHLIST_HOOK = pg_sys::set_rel_pathlist_hook;
        pg_sys::set_rel_pathlist_hook = Some(pathlist_hook);
        pg_sys::RegisterCustomScanMethods(std::ptr::addr_of!(SCAN_METHODS));
    }
}

fn strip_relabel(mut n: *mut pg_sys::Node) -> *mut pg_sys::Node {
    // SAFETY: walking down RelabelType nodes of a planner expression.
    unsafe {
        while !n.is_null() && (*n).type_ == pg_sys::NodeTag::T_RelabelType {
            n = (*(n as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
        }
    }
    n
}

fn is_column_var(n: *mut pg_sys::Node, rti: u32, attnum: i16) -> bool {
    let n = strip_relabel(n);
    // SAFETY: reading a Var node's fields after checking its tag.
    unsafe {
        !n.is_null()
            && (*n).type_ == pg_sys::NodeTag::T_Var
            && (*(n as *mut pg_sys::Var)).varno as u32 == rti
            && (*(n as *mut pg_sys::Var)).varattno == attnum
            && (*(n as *mut pg_sys::Var)).varlevelsup == 0
    }
}

/// A restriction usable by the scan: `column <strategy> operand`, with the operator
/// (as if the column were on its left) and the operand's type.
#[derive(Clone, Copy)]
struct Cond {
    strategy: i32,
    operand: *mut pg_sys::Node,
    opno: pg_sys::Oid,
    /// The operand's type (for a key set: the array's element type).
    righttype: pg_sys::Oid,
    /// `column = ANY (array)` (also `column IN (...)`): the operand is an array.
    is_set: bool,
}

/// The condition `clause` puts on column `attnum` of range table entry `rti`, if it
/// compares the column with an expression constant during the scan through an
/// operator of `opfamily` whose left input is `intype` (the right one too, unless
/// `cross_type`: the key column's index takes cross-type keys such as int8 = int4).
fn condition(
    clause: *mut pg_sys::Node,
    rti: u32,
    attnum: i16,
    intype: pg_sys::Oid,
    opfamily: pg_sys::Oid,
    cross_type: bool,
) -> Option<Cond> {
    operand_condition(clause, rti, attnum, intype, opfamily, cross_type, None)
}

/// [`condition`], or with `join` set (the planner's state), the condition a join
/// clause puts on the column: the other side an expression of other relations only
/// (their values become parameters of a nested loop), with no volatile function.
fn operand_condition(
    clause: *mut pg_sys::Node,
    rti: u32,
    attnum: i16,
    intype: pg_sys::Oid,
    opfamily: pg_sys::Oid,
    cross_type: bool,
    join: Option<*mut pg_sys::PlannerInfo>,
) -> Option<Cond> {
    // SAFETY: inspecting planner nodes by tag; catalog lookups by oid.
    unsafe {
        if join.is_none()
            && !clause.is_null()
            && (*clause).type_ == pg_sys::NodeTag::T_ScalarArrayOpExpr
        {
            return set_condition(
                clause as *mut pg_sys::ScalarArrayOpExpr,
                rti,
                attnum,
                intype,
                opfamily,
            );
        }
        if clause.is_null() || (*clause).type_ != pg_sys::NodeTag::T_OpExpr {
            return None;
        }
        let op = clause as *mut pg_sys::OpExpr;
        if pg_sys::list_length((*op).args) != 2 {
            return None;
        }
        let left = pg_sys::list_nth((*op).args, 0) as *mut pg_sys::Node;
        let right = pg_sys::list_nth((*op).args, 1) as *mut pg_sys::Node;
        let (other, var_on_left) = if is_column_var(left, rti, attnum) {
            (right, true)
        } else if is_column_var(right, rti, attnum) {
            (left, false)
        } else {
            return None;
        };
        let usable = match join {
            None => pg_sys::is_pseudo_constant_clause(other),
            Some(root) => {
                let varnos = pg_sys::pull_varnos(root, other);
                !varnos.is_null()
                    && !pg_sys::bms_is_member(rti as i32, varnos)
                    && !pg_sys::contain_volatile_functions(other)
            }
        };
        if !usable || pg_sys::contain_subplans(other) {
            return None;
        }
        let opno = if var_on_left {
            (*op).opno
        } else {
            pg_sys::get_commutator((*op).opno)
        };
        if opno == pg_sys::InvalidOid || !pg_sys::op_in_opfamily(opno, opfamily) {
            return None;
        }
        let (strategy, lefttype, righttype) = op_properties(opno, opfamily);
        if lefttype != intype || (!cross_type && righttype != intype) {
            return None;
        }
        (LT..=GT).contains(&strategy).then_some(Cond {
            strategy,
            operand: other,
            opno,
            righttype,
            is_set: false,
        })
    }
}

/// (strategy, left type, right type) of operator `opno` in `opfamily`, which must hold it.
fn op_properties(opno: pg_sys::Oid, opfamily: pg_sys::Oid) -> (i32, pg_sys::Oid, pg_sys::Oid) {
    let mut strategy = 0;
    let mut lefttype = pg_sys::InvalidOid;
    let mut righttype = pg_sys::InvalidOid;
    // SAFETY: a catalog lookup of an operator the caller checked is in the family.
    unsafe {
        pg_sys::get_op_opfamily_properties(
            opno,
            opfamily,
            false,
            &mut strategy,
            &mut lefttype,
            &mut righttype,
        )
    };
    (strategy, lefttype, righttype)
}

/// The key set `column = ANY (array)` (`column IN (...)` is the same node) puts on
/// column `attnum`: an equality operator of `opfamily` whose left input is `intype`,
/// and an array constant during the scan (a constant, a parameter, an array of
/// parameters).
fn set_condition(
    saop: *mut pg_sys::ScalarArrayOpExpr,
    rti: u32,
    attnum: i16,
    intype: pg_sys::Oid,
    opfamily: pg_sys::Oid,
) -> Option<Cond> {
    // SAFETY: inspecting a ScalarArrayOpExpr's fields; catalog lookups by oid.
    unsafe {
        if !(*saop).useOr || pg_sys::list_length((*saop).args) != 2 {
            return None;
        }
        let left = pg_sys::list_nth((*saop).args, 0) as *mut pg_sys::Node;
        let right = pg_sys::list_nth((*saop).args, 1) as *mut pg_sys::Node;
        if !is_column_var(left, rti, attnum)
            || !pg_sys::is_pseudo_constant_clause(right)
            || pg_sys::contain_subplans(right)
        {
            return None;
        }
        let opno = (*saop).opno;
        if !pg_sys::op_in_opfamily(opno, opfamily) {
            return None;
        }
        let (strategy, lefttype, righttype) = op_properties(opno, opfamily);
        (strategy == EQ && lefttype == intype).then_some(Cond {
            strategy,
            operand: right,
            opno,
            righttype,
            is_set: true,
        })
    }
}

/// Default b-tree operator family and input type of a column type, from the type
/// cache (GetDefaultOpClass scans pg_opclass on every call: 16 buffer reads per
/// rescan of a LATERAL lastpoint).
fn btree_family(coltype: pg_sys::Oid) -> Option<(pg_sys::Oid, pg_sys::Oid)> {
    // SAFETY: the type cache entry of a type oid (kept by the cache; read at once).
    unsafe {
        let t = pg_sys::lookup_type_cache(coltype, pg_sys::TYPECACHE_BTREE_OPFAMILY as i32);
        (!t.is_null() && (*t).btree_opf != pg_sys::InvalidOid)
            .then(|| ((*t).btree_opf, (*t).btree_opintype))
    }
}

/// The time conditions as (strategy, value) when every operand is a constant now, or
/// a stable expression whose value the planner can estimate now (`now() - interval
/// '1 hour'`, Grafana's `ts BETWEEN '...' AND '...'`): for costs only, the scan
/// evaluates the bounds again at executor start.
pub(super) fn constant_time_conds(
    root: *mut pg_sys::PlannerInfo,
    exprs: *mut pg_sys::List,
    strategies: *mut pg_sys::List,
) -> Option<Vec<(i32, Option<i64>)>> {
    let mut out = Vec::new();
    // SAFETY: walking the lists the hook built; reading Const nodes after checking tags.
    unsafe {
        for i in 0..pg_sys::list_length(exprs) {
            if pg_sys::list_nth_int(strategies, 4 * i) != ON_TIME {
                continue;
            }
            let e = strip_relabel(pg_sys::estimate_expression_value(
                root,
                pg_sys::list_nth(exprs, i) as *mut pg_sys::Node,
            ));
            if e.is_null() || (*e).type_ != pg_sys::NodeTag::T_Const {
                return None;
            }
            let k = e as *mut pg_sys::Const;
            let v = (!(*k).constisnull).then(|| (*k).constvalue.value() as i64);
            out.push((pg_sys::list_nth_int(strategies, 4 * i + 1), v));
        }
    }
    Some(out)
}

/// Columns a condition may be on, as stored in the plan.
pub(super) const ON_TIME: i32 = 0;
pub(super) const ON_KEY: i32 = 1;
/// The key column, compared with every element of an array (`= ANY`, `IN`).
pub(super) const ON_KEYSET: i32 = 2;

/// A column conditions may bound: (ON_TIME or ON_KEY, attnum, b-tree family, input type).
pub(super) type BoundColumn = (i32, i16, pg_sys::Oid, pg_sys::Oid);

/// The time and key columns of table `relid` that conditions can bound, if it is a
/// bidim table (opened with NoLock: the planner holds its lock).
pub(super) fn bounded_columns_of(relid: pg_sys::Oid) -> Option<Vec<BoundColumn>> {
    // SAFETY: the planner has locked the relation; opened and closed here.
    unsafe {
        let relation = pg_sys::table_open(relid, pg_sys::NoLock as pg_sys::LOCKMODE);
        let ours = handler::is_bidim(relation);
        let mut columns = Vec::new();
        if ours {
            let cfg = config::config(relation);
            let desc = (*relation).rd_att;
            let attrs = (*desc).attrs.as_slice((*desc).natts as usize);
            for (on, attnum) in [(ON_TIME, cfg.time_attnum), (ON_KEY, cfg.key_attnum)] {
                let coltype = attrs[(attnum - 1) as usize].atttypid;
                if let Some((family, intype)) = btree_family(coltype) {
                    columns.push((on, attnum, family, intype));
                }
            }
        }
        pg_sys::table_close(relation, pg_sys::NoLock as pg_sys::LOCKMODE);
        ours.then_some(columns)
    }
}

/// The conditions of `rel`'s restrictions the scan bounds chunks by: their operands,
/// 4 ints each (column, strategy, operator, right type), and each restriction used with
/// the column it bounds (ON_TIME, ON_KEY or ON_KEYSET).
pub(super) fn scan_conditions(
    rel: *mut pg_sys::RelOptInfo,
    rti: pg_sys::Index,
    columns: &[BoundColumn],
) -> (
    *mut pg_sys::List,
    *mut pg_sys::List,
    Vec<(*mut pg_sys::RestrictInfo, i32)>,
) {
    let mut exprs: *mut pg_sys::List = std::ptr::null_mut();
    let mut strategies: *mut pg_sys::List = std::ptr::null_mut();
    let mut used = Vec::new();
    // SAFETY: the planner's restriction list of a base relation; lists built in the
    // planner's memory context.
    unsafe {
        let n = pg_sys::list_length((*rel).baserestrictinfo);
        for i in 0..n {
            let ri = pg_sys::list_nth((*rel).baserestrictinfo, i) as *mut pg_sys::RestrictInfo;
            let clause = (*ri).clause as *mut pg_sys::Node;
            for &(on, attnum, family, intype) in columns {
                // Time bounds must be of the column's type; key equality may be
                // cross-type (series_id = 42 compares int8 with int4).
                let cond =
                    condition(clause, rti, attnum, intype, family, on == ON_KEY).filter(|c| {
                        if on == ON_TIME {
                            !c.is_set
                        } else {
                            c.strategy == EQ
                        }
                    });
                if let Some(c) = cond {
                    exprs = pg_sys::lappend(exprs, c.operand as *mut std::ffi::c_void);
                    let on = if c.is_set { ON_KEYSET } else { on };
                    strategies = pg_sys::lappend_int(strategies, on);
                    strategies = pg_sys::lappend_int(strategies, c.strategy);
                    strategies = pg_sys::lappend_int(strategies, c.opno.to_u32() as i32);
                    strategies = pg_sys::lappend_int(strategies, c.righttype.to_u32() as i32);
                    used.push((ri, on));
                    break;
                }
            }
        }
    }
    (exprs, strategies, used)
}

#[pg_guard]
unsafe extern "C-unwind" fn pathlist_hook(
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    rti: pg_sys::Index,
    rte: *mut pg_sys::RangeTblEntry,
) {
    // SAFETY: chaining to the previous hook with the arguments we were given.
    unsafe {
        if let Some(prev) = PREV_PATHLIST_HOOK {
            prev(root, rel, rti, rte);
        }
    }
    // SAFETY: planner structures handed to the hook; the relation is already locked
    // by the planner, so opening it with NoLock is safe.
    unsafe {
        if !ENABLE_PRUNING.get()
            || (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION
            || (*rte).relkind != pg_sys::RELKIND_RELATION as std::ffi::c_char
            || (*rel).reloptkind != pg_sys::RelOptKind::RELOPT_BASEREL
        {
            return;
        }
        let Some(columns) = bounded_columns_of((*rte).relid) else {
            return;
        };

        // custom_private: 4 ints per condition (column, strategy, operator, right type).
        let (exprs, strategies, classified) = scan_conditions(rel, rti, &columns);
        let mut used: *mut pg_sys::List = std::ptr::null_mut();
        for (ri, _) in classified {
            used = pg_sys::lappend(used, ri as *mut std::ffi::c_void);
        }
        // One directory read: how many chunks the time bounds keep when they are
        // constants now (all of them otherwise), and over how many key ranges (costs;
        // no chunk goes into the plan).
        let consts = constant_time_conds(root, exprs, strategies);
        // Only when a plan could use it: constant time bounds, or join clauses that
        // might name the key.
        let may_join = (*rel).has_eclass_joins || !(*rel).joininfo.is_null();
        let wanted = (consts.is_some() && !exprs.is_null()) || may_join;
        let directory = (wanted && pg_sys::ActiveSnapshotSet()).then(|| {
            let chunks = planning_chunks((*rte).relid);
            let time = match &consts {
                Some(conds) => bounds(conds),
                None => Some((i64::MIN, i64::MAX)),
            };
            let (kept, ranges, share) = chunks.estimate(time);
            (chunks.rows.len(), kept, ranges.max(1), share)
        });
        let kept_chunks = directory
            .filter(|_| consts.is_some())
            .map(|(total, kept, _, share)| (total, kept, share));
        let directory = directory.map(|(total, kept, ranges, _)| (total, kept, ranges));
        let key_column = columns.iter().find(|c| c.0 == ON_KEY).copied();
        if let Some((_, attnum, family, intype)) = key_column {
            add_parameterized_paths(
                root,
                rel,
                rti,
                (attnum, family, intype),
                exprs,
                strategies,
                directory.map(|(total, kept, ranges)| (kept, ranges, total)),
            );
        }
        // With cold chunks, the scan also serves queries without bounds: it decodes only
        // the columns the query reads, where a sequential scan decodes whole rows.
        let has_cold = pg_sys::ActiveSnapshotSet() && planning_chunks((*rte).relid).cold > 0;
        if exprs.is_null() && !has_cold {
            return;
        }
        let mut base = f64::MAX;
        let paths = (*rel).pathlist;
        for i in 0..pg_sys::list_length(paths) {
            let p = pg_sys::list_nth(paths, i) as *mut pg_sys::Path;
            // The plain scans only (not the parameterized paths added above).
            if (*p).param_info.is_null() {
                base = base.min((*p).total_cost);
            }
        }
        if base == f64::MAX {
            return;
        }
        let sel = pg_sys::clauselist_selectivity(
            root,
            used,
            0,
            pg_sys::JoinType::JOIN_INNER,
            std::ptr::null_mut(),
        )
        .clamp(0.0001, 1.0);
        // Without a key, the scan reads whole chunks: cost it by the share of chunks
        // the bounds keep when they are constants now (one directory read, no chunk
        // in the plan), else by the selectivity.
        let has_key = (0..pg_sys::list_length(strategies) / 4)
            .any(|i| pg_sys::list_nth_int(strategies, 4 * i) != ON_TIME);
        let fraction = if has_key {
            sel
        } else if exprs.is_null() {
            1.0
        } else {
            match kept_chunks {
                Some((0, _, _)) | None => sel,
                // Nothing to skip: the sequential (and parallel) paths are better,
                // unless cold chunks make reading fewer columns worth it.
                Some((_, _, share)) if share >= 1.0 && !has_cold => return,
                // The blocks the kept chunks (and their block-range time maps) leave.
                Some((_, _, share)) => share.max(0.0001),
            }
        };
        // Cold chunks: only the columns the query reads are decoded.
        let fraction = if has_cold { fraction * 0.9 } else { fraction };
        let cpath =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::CustomPath>()) as *mut pg_sys::CustomPath;
        (*cpath).path.type_ = pg_sys::NodeTag::T_CustomPath;
        (*cpath).path.pathtype = pg_sys::NodeTag::T_CustomScan;
        (*cpath).path.parent = rel;
        (*cpath).path.pathtarget = (*rel).reltarget;
        (*cpath).path.param_info = std::ptr::null_mut();
        (*cpath).path.parallel_aware = false;
        (*cpath).path.parallel_safe = false;
        (*cpath).path.parallel_workers = 0;
        (*cpath).path.rows = (*rel).rows;
        (*cpath).path.startup_cost = 0.0;
        // Chunks outside the bounds are skipped; the rest is a sequential scan.
        (*cpath).path.total_cost = base * fraction + 1.0;
        (*cpath).path.pathkeys = std::ptr::null_mut();
        // The scan computes the plan's target list itself (no Result node above it).
        (*cpath).flags = pg_sys::CUSTOMPATH_SUPPORT_PROJECTION;
        (*cpath).custom_paths = std::ptr::null_mut();
        (*cpath).custom_private = private_of(exprs, strategies, 0);
        (*cpath).methods = std::ptr::addr_of!(PATH_METHODS);
        // Time-ordered variants, for one key read newest (or oldest) first
        // (`WHERE series_id = 5 ORDER BY ts DESC LIMIT 1`): chunks in time order, the
        // chunks of a partition merged; a LIMIT stops the reading.
        let groups = pg_sys::list_length(strategies) / 4;
        let one_key = (0..groups).any(|i| pg_sys::list_nth_int(strategies, 4 * i) == ON_KEY)
            && (0..groups).all(|i| pg_sys::list_nth_int(strategies, 4 * i) != ON_KEYSET);
        let time_column = columns.iter().find(|c| c.0 == ON_TIME).copied();
        if let (true, Some((_, attnum, family, intype))) = (
            one_key && pg_sys::has_useful_pathkeys(root, rel),
            time_column,
        ) {
            let var = pg_sys::makeVar(rti as i32, attnum, intype, -1, pg_sys::InvalidOid, 0);
            for (order, strategy) in [(1, LT), (-1, GT)] {
                let opno = pg_sys::get_opfamily_member(family, intype, intype, strategy as i16);
                let keys = pg_sys::build_expression_pathkey(
                    root,
                    var as *mut pg_sys::Expr,
                    std::ptr::null_mut(),
                    opno,
                    (*rel).relids,
                    false,
                );
                let useful = pg_sys::truncate_useless_pathkeys(root, rel, keys);
                if useful.is_null() {
                    continue;
                }
                let ordered = pg_sys::palloc0(std::mem::size_of::<pg_sys::CustomPath>())
                    as *mut pg_sys::CustomPath;
                *ordered = *cpath;
                (*ordered).path.pathkeys = useful;
                // The first row comes after one index descent.
                (*ordered).path.startup_cost = 2.0 * pg_sys::random_page_cost;
                (*ordered).path.total_cost =
                    (*cpath).path.total_cost + (*ordered).path.startup_cost;
                (*ordered).custom_private = private_of(exprs, strategies, order);
                pg_sys::add_path(rel, ordered as *mut pg_sys::Path);
            }
        }
        // Not when a join may name the key: a nested loop through the key's index
        // (above) reads a few series' rows, while a parallel hash join reads every
        // series in the time range, which the costs, pricing each index row as a
        // random page read, too often prefer (cpu-max-all-8: 1022 ms parallel against
        // 38 ms nested loop).
        if key_column.is_none() || !may_join {
            add_partial_path(rel, cpath, fraction, has_cold);
        }
        // Last: add_path frees a path it rejects (the partial path above is a copy).
        pg_sys::add_path(rel, cpath as *mut pg_sys::Path);
    }
}

/// The parallel variant of the pruning scan `cpath` (unordered, not parameterized):
/// participants take the kept chunks one at a time from a shared counter, as a
/// parallel sequential scan of the table takes whole chunks. `fraction` is the share of
/// the table it reads.
unsafe fn add_partial_path(
    rel: *mut pg_sys::RelOptInfo,
    cpath: *mut pg_sys::CustomPath,
    fraction: f64,
    has_cold: bool,
) {
    // SAFETY: planner structures of the relation being planned, in the planner's context.
    unsafe {
        if !(*rel).consider_parallel || pg_sys::max_parallel_workers_per_gather <= 0 {
            return;
        }
        // Cold chunks take few pages for many rows, and decoding them is the work: count
        // their rows as the heap pages they would fill (about 64 TSBS rows a page), so
        // the number of workers follows the rows read.
        let pages = if has_cold {
            ((*rel).pages as f64).max((*rel).tuples / 64.0)
        } else {
            (*rel).pages as f64
        } * fraction;
        let workers = pg_sys::compute_parallel_worker(
            rel,
            pages,
            -1.0,
            pg_sys::max_parallel_workers_per_gather,
        );
        if workers <= 0 {
            return;
        }
        let divisor = parallel_divisor(workers);
        let partial =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::CustomPath>()) as *mut pg_sys::CustomPath;
        *partial = *cpath;
        (*partial).path.parallel_aware = true;
        (*partial).path.parallel_safe = true;
        (*partial).path.parallel_workers = workers;
        (*partial).path.rows = ((*cpath).path.rows / divisor).max(1.0).round();
        // As cost_seqscan: the CPU cost is shared by the participants, the pages are
        // read once whoever reads them.
        let total = (*cpath).path.total_cost;
        let disk = ((*rel).pages as f64 * pg_sys::seq_page_cost * fraction).min(total);
        (*partial).path.total_cost = disk + (total - disk) / divisor;
        pg_sys::add_partial_path(rel, partial as *mut pg_sys::Path);
    }
}

/// A path's private list: the bound expressions, the conditions (4 ints each) and the
/// time order (0 none, 1 ascending, -1 descending).
unsafe fn private_of(
    exprs: *mut pg_sys::List,
    strategies: *mut pg_sys::List,
    order: i32,
) -> *mut pg_sys::List {
    // SAFETY: building planner lists in the current memory context.
    unsafe {
        let mut l = pg_sys::lappend(std::ptr::null_mut(), exprs as *mut std::ffi::c_void);
        l = pg_sys::lappend(l, strategies as *mut std::ffi::c_void);
        pg_sys::lappend(
            l,
            pg_sys::lappend_int(std::ptr::null_mut(), order) as *mut std::ffi::c_void,
        )
    }
}

/// Cost of reading `rows` rows of one key (per outer row of a nested loop, or once):
/// a descent of the (key, time) index of every chunk the time bounds keep in the
/// key's range (`kept`: chunks kept, key ranges they span, chunks in all), then the
/// heap pages those rows are on, as PostgreSQL estimates for index scans (rows of
/// one key lie on distinct pages; `index_pages_fetched` counts what stays cached).
unsafe fn keyed_read_cost(
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    rows: f64,
    kept: Option<(usize, usize, usize)>,
) -> f64 {
    // SAFETY: reads planner fields and cost settings; index_pages_fetched is pure.
    unsafe {
        let (chunks, ranges, total) = kept.unwrap_or((1, 1, 1));
        let per_key_chunks = (chunks as f64 / ranges.max(1) as f64).ceil().max(1.0);
        let pages = ((*rel).pages as f64 * chunks as f64 / total.max(1) as f64).max(1.0);
        let fetched =
            pg_sys::index_pages_fetched(rows, pages as pg_sys::BlockNumber, 0.0, root).min(rows);
        per_key_chunks * (pg_sys::random_page_cost + 50.0 * pg_sys::cpu_operator_cost)
            + fetched * pg_sys::random_page_cost
            + rows
                * (pg_sys::cpu_tuple_cost
                    + pg_sys::cpu_index_tuple_cost
                    + pg_sys::cpu_operator_cost)
    }
}

/// Whether EquivalenceClass member `em` is the key column of `rel` (`arg` points to
/// the key's attribute number).
#[pg_guard]
unsafe extern "C-unwind" fn member_is_key(
    _root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    _ec: *mut pg_sys::EquivalenceClass,
    em: *mut pg_sys::EquivalenceMember,
    arg: *mut std::ffi::c_void,
) -> bool {
    // SAFETY: planner structures; arg is the i16 the caller passed.
    unsafe {
        is_column_var(
            (*em).em_expr as *mut pg_sys::Node,
            (*rel).relid,
            *(arg as *const i16),
        )
    }
}

/// Adds BidimScan paths parameterized by the key: for each join clause `key = <an
/// expression of other relations>` (from equivalence classes, `p.series_id = s.id`,
/// `IN (SELECT ...)` once pulled up, LATERAL references, or loose join clauses), a
/// path that reads, for each outer row, only that key's rows of the chunks its time
/// bounds keep, through their (key, time) indexes. The planner picks it for a nested
/// loop when few outer rows qualify and a hash join over a full scan when many do.
/// `kept`: chunks the constant time bounds keep and the key ranges they span.
unsafe fn add_parameterized_paths(
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    rti: u32,
    (attnum, family, intype): (i16, pg_sys::Oid, pg_sys::Oid),
    exprs: *mut pg_sys::List,
    strategies: *mut pg_sys::List,
    kept: Option<(usize, usize, usize)>,
) {
    // SAFETY: planner structures handed to the hook; lists are copied before appending.
    unsafe {
        let mut clauses: *mut pg_sys::List = std::ptr::null_mut();
        if (*rel).has_eclass_joins {
            let mut a = attnum;
            clauses = pg_sys::generate_implied_equalities_for_column(
                root,
                rel,
                Some(member_is_key),
                &mut a as *mut i16 as *mut std::ffi::c_void,
                (*rel).lateral_referencers,
            );
        }
        clauses = pg_sys::list_concat_copy(clauses, (*rel).joininfo);
        let mut seen: Vec<*mut pg_sys::Bitmapset> = Vec::new();
        for i in 0..pg_sys::list_length(clauses) {
            let ri = pg_sys::list_nth(clauses, i) as *mut pg_sys::RestrictInfo;
            if (*ri).pseudoconstant || !pg_sys::join_clause_is_movable_to(ri, rel) {
                continue;
            }
            let Some(c) = operand_condition(
                (*ri).clause as *mut pg_sys::Node,
                rti,
                attnum,
                intype,
                family,
                true,
                Some(root),
            )
            .filter(|c| c.strategy == EQ) else {
                continue;
            };
            let outer = pg_sys::bms_del_member(
                pg_sys::bms_union((*ri).required_relids, (*rel).lateral_relids),
                rti as i32,
            );
            if outer.is_null() || seen.iter().any(|&o| pg_sys::bms_equal(o, outer)) {
                continue;
            }
            seen.push(outer);
            let ppi = pg_sys::get_baserel_parampathinfo(root, rel, outer);
            let mut e = pg_sys::list_copy(exprs);
            let mut st = pg_sys::list_copy(strategies);
            e = pg_sys::lappend(e, c.operand as *mut std::ffi::c_void);
            for v in [
                ON_KEY,
                EQ,
                c.opno.to_u32() as i32,
                c.righttype.to_u32() as i32,
            ] {
                st = pg_sys::lappend_int(st, v);
            }
            let rows = if ppi.is_null() {
                (*rel).rows
            } else {
                (*ppi).ppi_rows
            }
            .max(1.0);
            let cost = keyed_read_cost(root, rel, rows, kept);
            let cpath = pg_sys::palloc0(std::mem::size_of::<pg_sys::CustomPath>())
                as *mut pg_sys::CustomPath;
            (*cpath).path.type_ = pg_sys::NodeTag::T_CustomPath;
            (*cpath).path.pathtype = pg_sys::NodeTag::T_CustomScan;
            (*cpath).path.parent = rel;
            (*cpath).path.pathtarget = (*rel).reltarget;
            (*cpath).path.param_info = ppi;
            (*cpath).path.rows = rows;
            (*cpath).path.startup_cost = pg_sys::random_page_cost;
            (*cpath).path.total_cost = cost;
            (*cpath).flags = pg_sys::CUSTOMPATH_SUPPORT_PROJECTION;
            (*cpath).methods = std::ptr::addr_of!(PATH_METHODS);
            (*cpath).custom_private = private_of(e, st, 0);
            pg_sys::add_path(rel, cpath as *mut pg_sys::Path);
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn plan_custom_path(
    _root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    best_path: *mut pg_sys::CustomPath,
    tlist: *mut pg_sys::List,
    clauses: *mut pg_sys::List,
    _custom_plans: *mut pg_sys::List,
) -> *mut pg_sys::Plan {
    // SAFETY: building a plan node from the path we made in the hook.
    unsafe {
        let cscan =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::CustomScan>()) as *mut pg_sys::CustomScan;
        (*cscan).scan.plan.type_ = pg_sys::NodeTag::T_CustomScan;
        (*cscan).scan.plan.targetlist = tlist;
        // Every restriction stays a filter: pruning only skips chunks.
        (*cscan).scan.plan.qual = pg_sys::extract_actual_clauses(clauses, false);
        (*cscan).scan.scanrelid = (*rel).relid;
        (*cscan).flags = (*best_path).flags;
        let private = (*best_path).custom_private;
        (*cscan).custom_exprs = pg_sys::list_nth(private, 0) as *mut pg_sys::List;
        // (conditions, order)
        (*cscan).custom_private = pg_sys::list_copy_tail(private, 1);
        (*cscan).methods = std::ptr::addr_of!(SCAN_METHODS);
        cscan as *mut pg_sys::Plan
    }
}

/// Executor state of a BidimScan (also the head of a BidimAgg's state).
#[repr(C)]
pub(super) struct BidimScanState {
    pub(super) css: pg_sys::CustomScanState,
    /// ExprStates of the bound expressions, in the order of `strategies`.
    pub(super) exprs: *mut pg_sys::List,
    pub(super) strategies: *mut pg_sys::List,
    pub(super) scan: pg_sys::TableScanDesc,
    pub(super) started: bool,
    chunks_scanned: i64,
    /// Directory rows the last start considered.
    chunks_total: i64,
    /// Whether the chunks are read through their (key, time) index.
    pub(super) by_index: bool,
    /// Distinct keys the conditions name (EXPLAIN), when they name any.
    keys_named: i64,
    /// Time order of the rows (0 none, 1 ascending, -1 descending).
    pub(super) order: i32,
    /// Cold batches decoded and skipped by their time bounds, over every (re)start.
    batches: (i64, i64, i64),
    /// Tail probes of sealed chunks, and those that found no row in their slice, over
    /// every (re)start; and what the last scan's probes learned, for the next.
    tails: (i64, i64),
    tail_learned: chunk_scan::TailStats,
    /// Blocks of sealed chunks with block-range time maps the last start reads, of the
    /// blocks those chunks have.
    blocks: (i64, i64),
    /// Holds the evaluated bounds (a key may be text) until the next (re)start.
    pub(super) bounds_cxt: pg_sys::MemoryContext,
    /// The directory rows, read once per execution under the query's snapshot and
    /// kept for rescans (a nested loop rescans once per outer row); dropped with the
    /// query's memory context.
    directory: *mut Directory,
    /// A parallel-aware scan's shared chunk counter (null: this participant reads every
    /// chunk it keeps, as a serial scan does).
    pscan: pg_sys::ParallelTableScanDesc,
    /// Conditions of the filter on other columns cold batches keep min/max of: the
    /// ExprStates of their operands, and 3 ints each (attnum, strategy, operand type).
    pub(super) col_exprs: *mut pg_sys::List,
    pub(super) col_meta: *mut pg_sys::List,
    /// The time bounds [time_lo, time_hi) the last start evaluated; `empty`: no row
    /// can match.
    pub(super) time_lo: i64,
    pub(super) time_hi: i64,
    pub(super) empty: bool,
    /// A key set the node computed itself (BidimAgg under a semi-join: the keys its
    /// inner plan returned), as `key = ANY (array)` with this operator and element
    /// type; a zero datum when there is none.
    pub(super) extra_opno: pg_sys::Oid,
    pub(super) extra_type: pg_sys::Oid,
    pub(super) extra_array: pg_sys::Datum,
    /// Whether the node has been rescanned.
    pub(super) rescanned: bool,
    /// Newest first without a lower time bound, over a long directory: the start of
    /// the newest partition (as the planning cache last saw it) where the scan splits
    /// its read (`i64::MIN`: no split). It reads the rows from there on first, through
    /// the directory rows of the partitions that end after it; only if those run out
    /// does it read the older rows (`older`), through every directory row.
    split_at: i64,
    older: bool,
    /// Starts that split their read, and those that went on to the older rows.
    splits: (i64, i64),
    /// Scan keys the last start gave heap's scans of hot and sealed chunks.
    heap_keys: i64,
    /// What a rescan that changes only the key's value needs (query memory).
    fast: *mut FastRescan,
    /// Index scans of hot chunks kept open across rescans, made at the first rescan
    /// (a node that is rescanned is likely rescanned again: a nested loop's inner side).
    kept: *mut KeptScans,
}

/// The directory rows a scan has read: those of the partitions that end after `since`;
/// and the table columns the plan reads ([`needed_columns`], once per execution).
struct Directory {
    since: i64,
    rows: Vec<ChunkRow>,
    needed: Option<Option<Vec<bool>>>,
    /// The table's settings, and the functions of the key operators used so far (a
    /// nested loop restarts the scan once per outer row: no lookups each time).
    cfg: Option<config::TableConfig>,
    opcodes: Vec<(pg_sys::Oid, pg_sys::Oid)>,
}

/// What the last full start of a scan that reads one key through the chunks' index
/// (no key set, no column conditions, not parallel) saw, so that a rescan with only
/// another key value reading the same chunks restarts the paused scan with that value
/// alone ([`fast_restart`]): a nested loop's probe costs its index descent, not a
/// planning of the scan.
struct FastRescan {
    /// Whether the last full start qualifies.
    valid: bool,
    /// Each bound expression: its state, what it bounds, and its operand type (from
    /// `exprs`/`strategies`, read once).
    exprs: Vec<(*mut pg_sys::ExprState, i32, pg_sys::Oid)>,
    /// The values the time conditions had, in expression order.
    time: Vec<Option<i64>>,
    /// The keys that read the same chunks as the recorded one ([`same_reads`]).
    keys: (Option<Key>, Option<Key>),
}

/// Restarts the node's paused scan for a rescan in which only the key's value changed
/// and the new key is read from the same chunks: true when it did (the node is
/// started), false when the full start must run.
///
/// # Safety
/// `st` is our executor node, its bounds context just reset.
unsafe fn fast_restart(st: *mut BidimScanState) -> bool {
    // SAFETY: per the contract; the directory and the record live in the query's memory.
    unsafe {
        let f = (*st).fast;
        if f.is_null() || !(*f).valid || (*st).scan.is_null() || (*st).directory.is_null() {
            return false;
        }
        let f = &*f;
        let econtext = (*st).css.ss.ps.ps_ExprContext;
        let mut key = None;
        let mut times = f.time.iter();
        for &(state, on, righttype) in &f.exprs {
            let old = pg_sys::MemoryContextSwitchTo((*st).bounds_cxt);
            let mut isnull = false;
            let v = ((*state).evalfunc.expect("evalfunc"))(state, econtext, &mut isnull);
            pg_sys::MemoryContextSwitchTo(old);
            if on == ON_TIME {
                if times.next() != Some(&(!isnull).then(|| v.value() as i64)) {
                    return false;
                }
            } else if on == ON_KEY && !isnull && key.is_none() {
                key = Some((righttype, v));
            } else {
                return false;
            }
        }
        let Some((righttype, v)) = key else {
            return false;
        };
        let dir = &*(*st).directory;
        let Some(cfg) = dir.cfg.as_ref() else {
            return false;
        };
        let Some(k) = route::datum_key(cfg.key_kind, righttype, v) else {
            return false;
        };
        // chunks_to_read keeps the same rows for this key
        if !super::keyrange::contains(f.keys.0.as_ref(), f.keys.1.as_ref(), &k) {
            return false;
        }
        chunk_scan::set_key_value((*st).scan, v);
        (*st).started = true;
        true
    }
}

/// The time range a (re)start reads, of the query's `range`: a newest-first read
/// without a lower bound over a long directory ([`prune::split_point`]) reads from
/// the newest partition's start on (a few directory rows, where the newest rows of a
/// series that still reports are), and before it only when that ran out
/// ([`BidimScanState::older`]). The two reads together return what one would, in
/// order, wherever the split is.
///
/// # Safety
/// `st` is our executor node, in a running executor.
unsafe fn split_read(st: *mut BidimScanState, range: Option<(i64, i64)>) -> Option<(i64, i64)> {
    // SAFETY: per the contract.
    unsafe {
        let (lo, hi) = range?;
        if (*st).older {
            let cut = (*st).split_at;
            return (lo < cut.min(hi)).then_some((lo, hi.min(cut)));
        }
        (*st).split_at = i64::MIN;
        // (the cheap checks of prune::split_point before the cache lookup)
        if (*st).order >= 0 || lo > i64::MIN || !(*st).pscan.is_null() {
            return range;
        }
        let plan = planning_chunks((*(*st).css.ss.ss_currentRelation).rd_id);
        let Some(cut) = prune::split_point(
            (*st).order,
            (lo, hi),
            plan.rows.len(),
            plan.newest_partition,
        ) else {
            return range;
        };
        (*st).split_at = cut;
        (*st).splits.0 += 1;
        Some((cut, hi))
    }
}

/// Whether the node's read was split ([`split_read`]) and only its newer part has
/// been read: then the node goes on with the older rows, and true.
///
/// # Safety
/// `st` is our executor node; its scan has returned its last row.
unsafe fn read_older(st: *mut BidimScanState) -> bool {
    // SAFETY: per the contract; the fast-rescan record would name the older read's
    // scan, so the next rescan starts in full.
    unsafe {
        if (*st).older || (*st).split_at == i64::MIN {
            return false;
        }
        pause(st);
        (*st).older = true;
        (*st).splits.1 += 1;
        if !(*st).fast.is_null() {
            (*(*st).fast).valid = false;
        }
        start(st);
        true
    }
}

/// Records what [`fast_restart`] needs after a full start (`qualifies`: the scan reads
/// one key through the chunks' index, nothing else is restricted per row, and it is
/// not parallel), or that it cannot.
///
/// # Safety
/// `st` is our executor node, in a running executor.
unsafe fn record_fast(
    st: *mut BidimScanState,
    qualifies: bool,
    time_conds: &[(i32, Option<i64>)],
    range: Option<(i64, i64)>,
    keys: impl FnOnce((i64, i64)) -> (Option<Key>, Option<Key>),
) {
    // SAFETY: per the contract; the record is made once in the query's memory context.
    unsafe {
        if (*st).fast.is_null() {
            let exprs = (0..pg_sys::list_length((*st).exprs))
                .map(|i| {
                    (
                        pg_sys::list_nth((*st).exprs, i) as *mut pg_sys::ExprState,
                        pg_sys::list_nth_int((*st).strategies, 4 * i),
                        pg_sys::Oid::from(pg_sys::list_nth_int((*st).strategies, 4 * i + 3) as u32),
                    )
                })
                .collect();
            (*st).fast = pgrx::PgMemoryContexts::For((*(*st).css.ss.ps.state).es_query_cxt)
                .leak_and_drop_on_delete(FastRescan {
                    valid: false,
                    exprs,
                    time: Vec::new(),
                    keys: (None, None),
                });
        }
        let f = &mut *(*st).fast;
        f.valid = false;
        let Some(range) = range.filter(|_| qualifies) else {
            return;
        };
        f.time.clear();
        f.time.extend(time_conds.iter().map(|t| t.1));
        f.keys = keys(range);
        f.valid = true;
    }
}

/// The function of operator `opno`, looked up once per execution (`known`: the
/// [`Directory::opcodes`] so far).
fn opcode(known: &mut Vec<(pg_sys::Oid, pg_sys::Oid)>, opno: pg_sys::Oid) -> pg_sys::Oid {
    if let Some(&(_, f)) = known.iter().find(|o| o.0 == opno) {
        return f;
    }
    // SAFETY: a syscache lookup of an operator the plan uses.
    let f = unsafe { pg_sys::get_opcode(opno) };
    known.push((opno, f));
    f
}

#[pg_guard]
unsafe extern "C-unwind" fn create_scan_state(
    _cscan: *mut pg_sys::CustomScan,
) -> *mut pg_sys::Node {
    // SAFETY: a zeroed, palloc'd node whose head is a CustomScanState.
    unsafe {
        let st = pg_sys::palloc0(std::mem::size_of::<BidimScanState>()) as *mut BidimScanState;
        (*st).css.ss.ps.type_ = pg_sys::NodeTag::T_CustomScanState;
        (*st).css.methods = std::ptr::addr_of!(EXEC_METHODS);
        st as *mut pg_sys::Node
    }
}

/// Compiles expressions a scan evaluates once per (re)start (its bounds' and column
/// conditions' operands) for `ps`, interpreted: JIT would compile each into every
/// participant's module (emission is most of a parallel scan's JIT time) to run it
/// once.
///
/// # Safety
/// `ps` must be a plan state being initialized, in the executor's memory context.
pub(super) unsafe fn init_once_exprs(
    exprs: *mut pg_sys::List,
    ps: *mut pg_sys::PlanState,
) -> *mut pg_sys::List {
    // SAFETY: per the contract. Should ExecInitExprList raise, the flags stay cleared,
    // but the query fails and its estate goes with it.
    unsafe {
        let estate = (*ps).state;
        let flags = (*estate).es_jit_flags;
        (*estate).es_jit_flags = 0;
        let list = pg_sys::ExecInitExprList(exprs, ps);
        (*estate).es_jit_flags = flags;
        list
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn begin_scan(
    node: *mut pg_sys::CustomScanState,
    _estate: *mut pg_sys::EState,
    eflags: i32,
) {
    // SAFETY: node is our BidimScanState; its plan is our CustomScan.
    unsafe {
        let st = node as *mut BidimScanState;
        let cscan = (*node).ss.ps.plan as *mut pg_sys::CustomScan;
        (*st).exprs = init_once_exprs((*cscan).custom_exprs, &mut (*node).ss.ps);
        (*st).strategies = pg_sys::list_nth((*cscan).custom_private, 0) as *mut pg_sys::List;
        (*st).order = pg_sys::list_nth_int(
            pg_sys::list_nth((*cscan).custom_private, 1) as *mut pg_sys::List,
            0,
        );
        // PostgreSQL 15 gives a custom scan a virtual scan slot and compiles the
        // filter and projection for it (skipping the deform step). Chunk rows are
        // buffer heap tuples, and so is the test row EvalPlanQual hands the scan after
        // a concurrent update: swap in a buffer-tuple slot and compile them again.
        let rel = (*node).ss.ss_currentRelation;
        pg_sys::ExecInitScanTupleSlot(
            (*node).ss.ps.state,
            &mut (*node).ss,
            (*rel).rd_att,
            &pg_sys::TTSOpsBufferHeapTuple,
        );
        (*node).ss.ps.qual = pg_sys::ExecInitQual((*cscan).scan.plan.qual, &mut (*node).ss.ps);
        let (col_exprs, col_meta) =
            column_conditions((*cscan).scan.plan.qual, (*cscan).scan.scanrelid, rel);
        (*st).col_exprs = init_once_exprs(col_exprs, &mut (*node).ss.ps);
        (*st).col_meta = col_meta;
        pg_sys::ExecAssignScanProjectionInfoWithVarno(
            &mut (*node).ss,
            (*cscan).scan.scanrelid as i32,
        );
        (*st).bounds_cxt = pg_sys::AllocSetContextCreateInternal(
            pg_sys::CurrentMemoryContext,
            c"BidimScan bounds".as_ptr(),
            0,
            8 * 1024,
            8 * 1024 * 1024,
        );
        // Plain EXPLAIN shows the chunks too, unless a bound needs a run-time parameter.
        // A parallel-aware scan starts at its first row, once its shared state is set
        // up (after this); so does a scan whose bounds need an executor parameter (an
        // InitPlan's value, such as a rollup view's watermark, is computed only once
        // the plan runs: its subplan is not even set up yet here).
        let no_exec_params =
            pg_sys::pull_paramids((*cscan).custom_exprs as *mut pg_sys::Expr).is_null();
        let start_now = if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0 {
            no_exec_params
        } else {
            !(*cscan).scan.plan.parallel_aware && no_exec_params
        };
        if start_now {
            start(st);
        }
    }
}

/// The conditions `column <op> operand` of `quals` (the plan's filter on range table
/// entry `rti`, the bidim table `rel`) on columns whose min/max cold batches keep, with
/// an operand constant during the scan and of the column's type (or another integer,
/// or float, type): their operands, and 3 ints each (attnum, strategy, operand type).
pub(super) fn column_conditions(
    quals: *mut pg_sys::List,
    rti: u32,
    rel: pg_sys::Relation,
) -> (*mut pg_sys::List, *mut pg_sys::List) {
    let ints = [pg_sys::INT2OID, pg_sys::INT4OID, pg_sys::INT8OID];
    let floats = [pg_sys::FLOAT4OID, pg_sys::FLOAT8OID];
    let mut exprs: *mut pg_sys::List = std::ptr::null_mut();
    let mut meta: *mut pg_sys::List = std::ptr::null_mut();
    // SAFETY: rel is an open bidim table; quals are planner expressions; lists are
    // built in the current (executor) memory context.
    unsafe {
        // The columns the filter compares (a Var on either side of an operator, or on
        // the left of `= ANY`): type and operator family lookups only for those.
        let mut compared = Vec::new();
        for i in 0..pg_sys::list_length(quals) {
            let clause = pg_sys::list_nth(quals, i) as *mut pg_sys::Node;
            let args = match (*clause).type_ {
                pg_sys::NodeTag::T_OpExpr => (*(clause as *mut pg_sys::OpExpr)).args,
                pg_sys::NodeTag::T_ScalarArrayOpExpr => {
                    (*(clause as *mut pg_sys::ScalarArrayOpExpr)).args
                }
                _ => continue,
            };
            for j in 0..pg_sys::list_length(args) {
                let v = strip_relabel(pg_sys::list_nth(args, j) as *mut pg_sys::Node);
                if !v.is_null() && (*v).type_ == pg_sys::NodeTag::T_Var {
                    compared.push((*(v as *mut pg_sys::Var)).varattno);
                }
            }
        }
        let cfg = config::config(rel);
        compared.retain(|&a| a != cfg.key_attnum && a != cfg.time_attnum);
        if compared.is_empty() {
            return (exprs, meta);
        }
        let desc = (*rel).rd_att;
        let attrs = (*desc).attrs.as_slice((*desc).natts as usize);
        let specs = super::cold::column_specs(desc);
        let columns: Vec<(i16, pg_sys::Oid, pg_sys::Oid, pg_sys::Oid)> =
            super::cold::bounded_columns(&specs, cfg.key_attnum, cfg.time_attnum)
                .into_iter()
                .filter(|&i| compared.contains(&(i as i16 + 1)))
                .filter_map(|i| {
                    let base = pg_sys::getBaseType(attrs[i].atttypid);
                    btree_family(base).map(|(family, intype)| (i as i16 + 1, base, family, intype))
                })
                .collect();
        for i in 0..pg_sys::list_length(quals) {
            let clause = pg_sys::list_nth(quals, i) as *mut pg_sys::Node;
            for &(attnum, base, family, intype) in &columns {
                let Some(c) = condition(clause, rti, attnum, intype, family, true) else {
                    continue;
                };
                let same_group = c.righttype == base
                    || (ints.contains(&base) && ints.contains(&c.righttype))
                    || (floats.contains(&base) && floats.contains(&c.righttype));
                if !c.is_set && same_group {
                    exprs = pg_sys::lappend(exprs, c.operand as *mut std::ffi::c_void);
                    meta = pg_sys::lappend_int(meta, attnum as i32);
                    meta = pg_sys::lappend_int(meta, c.strategy);
                    meta = pg_sys::lappend_int(meta, c.righttype.to_u32() as i32);
                }
                break;
            }
        }
    }
    (exprs, meta)
}

/// Scan keys for heap's scans of hot and sealed chunks from the filter's conditions
/// on other columns (`column <op> value`, the operand of the column's own type: the
/// operator of the type's btree family): heap then passes over the rows that fail
/// them without handing them to the scan (the filter still checks every row it
/// returns). Chunks have the table's attribute numbers.
///
/// # Safety
/// `rel` is the open bidim table; `conds` and `values` are the evaluated conditions.
unsafe fn heap_scan_keys(
    rel: pg_sys::Relation,
    conds: &[ColumnCond],
    values: &[(pg_sys::Oid, pg_sys::Datum)],
) -> Vec<pg_sys::ScanKeyData> {
    // SAFETY: per the contract; type cache and operator lookups of built-in types.
    unsafe {
        let desc = (*rel).rd_att;
        let attrs = (*desc).attrs.as_slice((*desc).natts as usize);
        conds
            .iter()
            .zip(values)
            .filter_map(|(c, &(typ, v))| {
                let a = attrs.get(c.attnum as usize - 1)?;
                // by-value operands only (the keys outlive this start's memory)
                if a.atttypid != typ || !a.attbyval {
                    return None;
                }
                let (family, intype) = btree_family(typ)?;
                let opno = pg_sys::get_opfamily_member(family, intype, intype, c.strategy as i16);
                if opno == pg_sys::InvalidOid {
                    return None;
                }
                Some(index_key(
                    c.attnum,
                    c.strategy,
                    pg_sys::get_opcode(opno),
                    typ,
                    a.attcollation,
                    v,
                    0,
                ))
            })
            .collect()
    }
}

/// A condition's operand as a batch bound (of the operand's type).
fn operand_bound(typ: pg_sys::Oid, d: pg_sys::Datum) -> Option<Bound> {
    let raw = d.value();
    match typ {
        t if t == pg_sys::INT2OID => Some(Bound::Int(raw as u16 as i16 as i64)),
        t if t == pg_sys::INT4OID || t == pg_sys::DATEOID => {
            Some(Bound::Int(raw as u32 as i32 as i64))
        }
        t if t == pg_sys::INT8OID
            || t == pg_sys::TIMEOID
            || t == pg_sys::TIMESTAMPOID
            || t == pg_sys::TIMESTAMPTZOID =>
        {
            Some(Bound::Int(raw as i64))
        }
        t if t == pg_sys::FLOAT4OID => Some(Bound::Float(f32::from_bits(raw as u32) as f64)),
        t if t == pg_sys::FLOAT8OID => Some(Bound::Float(f64::from_bits(raw as u64))),
        _ => None,
    }
}

/// Scan key on column `attno` of a chunk's (key, time) index.
fn index_key(
    attno: i16,
    strategy: i32,
    proc: pg_sys::Oid,
    subtype: pg_sys::Oid,
    collation: pg_sys::Oid,
    arg: pg_sys::Datum,
    flags: i32,
) -> pg_sys::ScanKeyData {
    // SAFETY: fills a zeroed scan key with an operator's function.
    unsafe {
        let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
        pg_sys::ScanKeyEntryInitialize(
            &mut key,
            flags,
            attno,
            strategy as pg_sys::StrategyNumber,
            subtype,
            collation,
            proc,
            arg,
        );
        key
    }
}

/// The non-NULL elements of a non-NULL array datum of `elemtype` (deconstructed into
/// the current memory context).
fn array_elements(array: pg_sys::Datum, elemtype: pg_sys::Oid) -> Vec<pg_sys::Datum> {
    // SAFETY: the datum is a non-NULL array (the operand's type is an array of
    // `elemtype`), detoasted and deconstructed with the element type's own layout.
    unsafe {
        let arr = pg_sys::pg_detoast_datum(array.cast_mut_ptr()) as *mut pg_sys::ArrayType;
        let mut typlen = 0i16;
        let mut typbyval = false;
        let mut typalign = 0 as std::ffi::c_char;
        pg_sys::get_typlenbyvalalign(elemtype, &mut typlen, &mut typbyval, &mut typalign);
        let mut elems: *mut pg_sys::Datum = std::ptr::null_mut();
        let mut nulls: *mut bool = std::ptr::null_mut();
        let mut n = 0i32;
        pg_sys::deconstruct_array(
            arr,
            elemtype,
            typlen as i32,
            typbyval,
            typalign,
            &mut elems,
            &mut nulls,
            &mut n,
        );
        (0..n as usize)
            .filter(|&i| !*nulls.add(i))
            .map(|i| *elems.add(i))
            .collect()
    }
}

/// Evaluates the bounds, picks the chunks that can match and starts scanning them
/// (through their (key, time) index when the query names a key).
pub(super) fn start(st: *mut BidimScanState) {
    // SAFETY: st is our executor node; bounds are evaluated into its own memory
    // context; the relation and snapshot belong to the running executor.
    unsafe {
        let ps = &mut (*st).css.ss.ps;
        let econtext = ps.ps_ExprContext;
        // (a context nothing was allocated in since its last reset needs none)
        if !(*(*st).bounds_cxt).isReset {
            pg_sys::MemoryContextReset((*st).bounds_cxt);
        }
        if !(*st).older && fast_restart(st) {
            return;
        }
        let n = pg_sys::list_length((*st).exprs);
        let mut time_conds = Vec::new();
        let mut key_conds = Vec::new();
        // (operator, element type, array, its non-null elements)
        let mut key_sets: Vec<(pg_sys::Oid, pg_sys::Oid, pg_sys::Datum, Vec<pg_sys::Datum>)> =
            Vec::new();
        let mut impossible = false;
        for i in 0..n {
            let state = pg_sys::list_nth((*st).exprs, i) as *mut pg_sys::ExprState;
            let on = pg_sys::list_nth_int((*st).strategies, 4 * i);
            let strategy = pg_sys::list_nth_int((*st).strategies, 4 * i + 1);
            let opno = pg_sys::Oid::from(pg_sys::list_nth_int((*st).strategies, 4 * i + 2) as u32);
            let righttype =
                pg_sys::Oid::from(pg_sys::list_nth_int((*st).strategies, 4 * i + 3) as u32);
            let old = pg_sys::MemoryContextSwitchTo((*st).bounds_cxt);
            let mut isnull = false;
            let v = ((*state).evalfunc.expect("evalfunc"))(state, econtext, &mut isnull);
            pg_sys::MemoryContextSwitchTo(old);
            if on == ON_TIME {
                time_conds.push((strategy, (!isnull).then(|| v.value() as i64)));
            } else if isnull {
                impossible = true;
            } else if on == ON_KEYSET {
                let old = pg_sys::MemoryContextSwitchTo((*st).bounds_cxt);
                let elems = array_elements(v, righttype);
                pg_sys::MemoryContextSwitchTo(old);
                // No key (an empty list, or only NULLs) matches no row.
                impossible |= elems.is_empty();
                key_sets.push((opno, righttype, v, elems));
            } else {
                key_conds.push((opno, righttype, v));
            }
        }
        if (*st).extra_array.value() != 0 {
            let (opno, elemtype, array) = ((*st).extra_opno, (*st).extra_type, (*st).extra_array);
            let old = pg_sys::MemoryContextSwitchTo((*st).bounds_cxt);
            let elems = array_elements(array, elemtype);
            pg_sys::MemoryContextSwitchTo(old);
            impossible |= elems.is_empty();
            key_sets.push((opno, elemtype, array, elems));
        }
        let mut col_conds = Vec::new();
        // each condition's operand type and value
        let mut col_values = Vec::new();
        for i in 0..pg_sys::list_length((*st).col_exprs) {
            let state = pg_sys::list_nth((*st).col_exprs, i) as *mut pg_sys::ExprState;
            let old = pg_sys::MemoryContextSwitchTo((*st).bounds_cxt);
            let mut isnull = false;
            let v = ((*state).evalfunc.expect("evalfunc"))(state, econtext, &mut isnull);
            pg_sys::MemoryContextSwitchTo(old);
            let typ = pg_sys::Oid::from(pg_sys::list_nth_int((*st).col_meta, 3 * i + 2) as u32);
            if let (false, Some(value)) = (isnull, operand_bound(typ, v)) {
                col_conds.push(ColumnCond {
                    attnum: pg_sys::list_nth_int((*st).col_meta, 3 * i) as i16,
                    strategy: pg_sys::list_nth_int((*st).col_meta, 3 * i + 1),
                    value,
                });
                col_values.push((typ, v));
            }
        }
        let rel = (*st).css.ss.ss_currentRelation;
        let snapshot = (*ps.state).es_snapshot;
        let range = if impossible {
            None
        } else {
            split_read(st, bounds(&time_conds))
        };
        // The directory rows of the partitions that end after the lower time bound,
        // read again only when a rescan's bound is earlier than every read so far.
        let (lo, hi) = range.unwrap_or((i64::MIN, i64::MAX));
        (*st).time_lo = lo;
        (*st).time_hi = hi;
        (*st).empty = range.is_none();
        let since = range.map_or(i64::MAX, |(lo, _)| lo);
        if (*st).directory.is_null() {
            (*st).directory = pgrx::PgMemoryContexts::For((*ps.state).es_query_cxt)
                .leak_and_drop_on_delete(Directory {
                    since: i64::MAX,
                    rows: Vec::new(),
                    needed: None,
                    cfg: None,
                    opcodes: Vec::new(),
                });
        }
        if (*st).kept.is_null() && (*st).rescanned {
            let old = pg_sys::MemoryContextSwitchTo((*ps.state).es_query_cxt);
            (*st).kept = kept_scans::new();
            pg_sys::MemoryContextSwitchTo(old);
        }
        let dir = &mut *(*st).directory;
        if since < dir.since {
            dir.rows = read_chunks_ending_after((*rel).rd_id, since, snapshot);
            dir.since = since;
        }
        let all: &[ChunkRow] = &dir.rows;
        // Key equality also prunes by the key range each chunk was made for.
        let cfg = dir.cfg.get_or_insert_with(|| config::config(rel)).clone();
        let key_collation = {
            let desc = (*rel).rd_att;
            (*desc).attrs.as_slice((*desc).natts as usize)[(cfg.key_attnum - 1) as usize]
                .attcollation
        };
        let bytewise = key_collation == pg_sys::InvalidOid
            || pg_sys::get_collation_isdeterministic(key_collation);
        let cond_keys: Vec<Key> = key_conds
            .iter()
            .filter_map(|&(_, righttype, v)| route::datum_key(cfg.key_kind, righttype, v))
            .collect();
        let set_keys: Vec<Vec<Key>> = key_sets
            .iter()
            .map(|(_, elemtype, _, elems)| {
                elems
                    .iter()
                    .filter_map(|&e| route::datum_key(cfg.key_kind, *elemtype, e))
                    .collect()
            })
            .collect();
        let kept = if bytewise {
            chunks_to_read(all, range, cfg.key_kind, &cond_keys, &set_keys)
        } else {
            chunks_to_read(all, range, cfg.key_kind, &[], &[])
        };
        record_fast(
            st,
            bytewise
                && key_conds.len() == 1
                && cond_keys.len() == 1
                && key_sets.is_empty()
                && col_conds.is_empty()
                && (*st).pscan.is_null()
                && !(*st).older,
            &time_conds,
            range,
            |range| same_reads(all, range, cfg.key_kind, &cond_keys[0]),
        );
        let mut keys = Vec::new();
        if let (false, Some((lo, hi))) = (key_conds.is_empty() && key_sets.is_empty(), range) {
            let desc = (*rel).rd_att;
            let attrs = (*desc).attrs.as_slice((*desc).natts as usize);
            let key_attr = &attrs[(cfg.key_attnum - 1) as usize];
            for &(opno, righttype, v) in &key_conds {
                keys.push(index_key(
                    1,
                    EQ,
                    opcode(&mut dir.opcodes, opno),
                    righttype,
                    key_attr.attcollation,
                    v,
                    0,
                ));
            }
            // btree reads every element of a key set itself (sorted, deduplicated,
            // NULLs dropped): one index scan per chunk for the whole set.
            for &(opno, elemtype, array, _) in &key_sets {
                let flags = pg_sys::SK_SEARCHARRAY as i32;
                keys.push(index_key(
                    1,
                    EQ,
                    opcode(&mut dir.opcodes, opno),
                    elemtype,
                    key_attr.attcollation,
                    array,
                    flags,
                ));
            }
            let time_type = attrs[(cfg.time_attnum - 1) as usize].atttypid;
            // An ordered read has both time keys, unbounded ends included (no stored
            // time is infinite): its tail probes narrow them (chunk_scan::tail_split).
            let ordered = (*st).order != 0;
            let bounded = lo > i64::MIN || hi < i64::MAX || ordered;
            if let Some((family, intype)) = bounded.then(|| btree_family(time_type)).flatten() {
                let mut bound = |strategy: i32, v: i64| {
                    let opno = pg_sys::get_opfamily_member(family, intype, intype, strategy as i16);
                    keys.push(index_key(
                        2,
                        strategy,
                        opcode(&mut dir.opcodes, opno),
                        intype,
                        pg_sys::InvalidOid,
                        pg_sys::Datum::from(v),
                        0,
                    ));
                };
                if lo > i64::MIN || ordered {
                    bound(GE, lo);
                }
                if hi < i64::MAX || ordered {
                    bound(LT, hi);
                }
            }
        }
        let mut named: Vec<&Key> = cond_keys.iter().chain(set_keys.iter().flatten()).collect();
        named.sort_unstable();
        named.dedup();
        (*st).keys_named = named.len() as i64;
        (*st).chunks_total = all.len() as i64;
        (*st).chunks_scanned = kept.len() as i64;
        (*st).by_index = !keys.is_empty();
        if (*st).order != 0 {
            // Chunks in time order (ties: chunk order), one unit per time partition, or
            // per group of partitions that overlap (made before and after the width
            // changed): a unit's chunks are merged by time.
            let parts: Vec<(i64, i64)> = kept.iter().map(|c| (c.time_lo, c.time_hi)).collect();
            let ids: Vec<u32> = kept.iter().map(|c| c.chunk_id).collect();
            let (order, units) = prune::ordered_units(&parts, &ids, (*st).order < 0);
            let ordered: Vec<&ChunkRow> = order.iter().map(|&i| kept[i]).collect();
            let chunks: Vec<(u32, pg_sys::Oid)> =
                ordered.iter().map(|c| (c.chunk_id, c.chunk_rel)).collect();
            if reuse_paused(st, &chunks, &keys, range, &col_conds) {
                return;
            }
            let spans: Vec<(i64, i64)> = ordered.iter().map(|c| c.time_span()).collect();
            let measured: Vec<bool> = ordered
                .iter()
                .map(|c| c.min_time.is_some() && c.max_time.is_some())
                .collect();
            (*st).scan = chunk_scan::begin_ordered_scan_of(
                rel,
                snapshot,
                &chunks,
                &spans,
                &measured,
                &units,
                &keys,
                (*st).order,
                cfg.time_attnum,
            );
            chunk_scan::keep_scans((*st).scan, (*st).kept);
            chunk_scan::resume_tails((*st).scan, (*st).tail_learned);
            chunk_scan::restrict(
                (*st).scan,
                range.unwrap_or((i64::MIN, i64::MAX)),
                needed_of(st),
                &col_conds,
            );
            (*st).started = true;
            return;
        }
        let chosen: Vec<(u32, pg_sys::Oid)> =
            kept.iter().map(|c| (c.chunk_id, c.chunk_rel)).collect();
        if reuse_paused(st, &chosen, &keys, range, &col_conds) {
            return;
        }
        let flags = pg_sys::ScanOptions::SO_TYPE_SEQSCAN
            | pg_sys::ScanOptions::SO_ALLOW_STRAT
            | pg_sys::ScanOptions::SO_ALLOW_SYNC
            | pg_sys::ScanOptions::SO_ALLOW_PAGEMODE;
        // Parallel participants list the same chunks (same snapshot, same bounds) and
        // take them one at a time from the shared counter.
        (*st).scan = chunk_scan::begin_scan_of(
            rel,
            snapshot,
            0,
            std::ptr::null_mut(),
            (*st).pscan,
            flags,
            &chosen,
            &keys,
        );
        chunk_scan::keep_scans((*st).scan, (*st).kept);
        chunk_scan::restrict(
            (*st).scan,
            range.unwrap_or((i64::MIN, i64::MAX)),
            needed_of(st),
            &col_conds,
        );
        // A time window read by heap's scan reads only the blocks of sealed chunks
        // whose block-range time maps overlap it.
        (*st).blocks = (0, 0);
        if keys.is_empty() && (lo, hi) != (i64::MIN, i64::MAX) {
            let maps: Vec<_> = kept
                .iter()
                .map(|c| {
                    c.block_map.as_ref().map(|m| {
                        let b = m.read_for(lo, hi);
                        (*st).blocks.0 += b.runs.iter().map(|r| i64::from(r.1)).sum::<i64>();
                        (*st).blocks.1 += i64::from(m.blocks());
                        b
                    })
                })
                .collect();
            chunk_scan::restrict_blocks((*st).scan, &maps);
        } else if keys.is_empty() && !(*st).pscan.is_null() {
            chunk_scan::share_mapped_chunks((*st).scan, kept.iter().map(|c| c.block_map.as_ref()));
        }
        (*st).heap_keys = 0;
        let heap_read = kept.iter().any(|c| c.state != ChunkState::Cold);
        if keys.is_empty() && heap_read && !col_conds.is_empty() {
            let heap_keys = heap_scan_keys(rel, &col_conds, &col_values);
            chunk_scan::heap_keys((*st).scan, &heap_keys);
            (*st).heap_keys = heap_keys.len() as i64;
        }
        if keys.is_empty() {
            // The blocks the scan reads: a window's ranges of the mapped chunks (counted
            // above), and the measured size of every other chunk (one not measured
            // yet: unknown).
            let windowed = (lo, hi) != (i64::MIN, i64::MAX);
            let others: Option<u64> = kept
                .iter()
                .filter(|c| !(windowed && c.block_map.is_some()))
                .map(|c| c.pages.map(|p| p.max(0) as u64))
                .sum();
            let blocks = others.map(|b| b + (*st).blocks.0 as u64);
            chunk_scan::ring_only_if_large((*st).scan, blocks);
        }
        (*st).started = true;
    }
}

/// The block-range time map of chunk `ordinal` in the directory rows the scan's
/// starts read.
pub(super) fn block_map_of(
    st: *mut BidimScanState,
    ordinal: u32,
) -> Option<super::block_map::BlockMap> {
    // SAFETY: start made the directory (the query's memory context owns it).
    let dir = unsafe { (*st).directory.as_ref() }?;
    dir.rows
        .iter()
        .find(|r| r.chunk_id == ordinal)
        .and_then(|r| r.block_map.clone())
}

/// [`needed_columns`], computed at the first start of the execution (a nested loop
/// starts the scan again for every outer row).
fn needed_of<'a>(st: *mut BidimScanState) -> Option<&'a [bool]> {
    // SAFETY: start made the directory (the query's memory context owns it).
    let dir = unsafe { &mut *(*st).directory };
    dir.needed
        .get_or_insert_with(|| needed_columns(st))
        .as_deref()
}

/// The table columns the plan reads (its target list and filter), one flag per
/// column; `None` when it reads whole rows.
fn needed_columns(st: *mut BidimScanState) -> Option<Vec<bool>> {
    // SAFETY: our node's plan is a CustomScan on one relation; pull_varattnos collects
    // the attribute numbers of its Vars (offset by FirstLowInvalidHeapAttributeNumber).
    unsafe {
        let plan = (*st).css.ss.ps.plan as *mut pg_sys::CustomScan;
        let relid = (*plan).scan.scanrelid;
        let mut bms: *mut pg_sys::Bitmapset = std::ptr::null_mut();
        if !(*plan).custom_scan_tlist.is_null() {
            // BidimAgg: its scan tuple lists every column it reads.
            pg_sys::pull_varattnos(
                (*plan).custom_scan_tlist as *mut pg_sys::Node,
                relid,
                &mut bms,
            );
        } else {
            pg_sys::pull_varattnos(
                (*plan).scan.plan.targetlist as *mut pg_sys::Node,
                relid,
                &mut bms,
            );
            pg_sys::pull_varattnos((*plan).scan.plan.qual as *mut pg_sys::Node, relid, &mut bms);
        }
        let off = pg_sys::FirstLowInvalidHeapAttributeNumber;
        if pg_sys::bms_is_member(-off, bms) {
            return None;
        }
        let desc = (*(*st).css.ss.ss_currentRelation).rd_att;
        Some(
            (1..=(*desc).natts)
                .map(|a| pg_sys::bms_is_member(a - off, bms))
                .collect(),
        )
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn access_next(ss: *mut pg_sys::ScanState) -> *mut pg_sys::TupleTableSlot {
    let st = ss as *mut BidimScanState;
    // SAFETY: ss is our BidimScanState; its scan slot matches the relation.
    unsafe {
        if !(*st).started {
            start(st);
        }
        let slot = (*ss).ss_ScanTupleSlot;
        let mut found = chunk_scan::scan_next(
            (*st).scan,
            pg_sys::ScanDirection::ForwardScanDirection,
            slot,
        );
        if !found && read_older(st) {
            found = chunk_scan::scan_next(
                (*st).scan,
                pg_sys::ScanDirection::ForwardScanDirection,
                slot,
            );
        }
        // Rows a cold batch left out by the column conditions are rows the filter
        // removed (InstrCountFiltered1).
        let filtered = chunk_scan::take_filtered((*st).scan);
        let instr = (*ss).ps.instrument;
        if filtered > 0 && !instr.is_null() {
            (*instr).nfiltered1 += filtered as f64;
        }
        if found {
            slot
        } else {
            std::ptr::null_mut()
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn recheck(
    _ss: *mut pg_sys::ScanState,
    _slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // Every restriction is in the plan's filter, which ExecScan rechecks itself.
    true
}

#[pg_guard]
unsafe extern "C-unwind" fn exec_scan(
    node: *mut pg_sys::CustomScanState,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: the generic scan loop (filter, projection, EvalPlanQual) over our node.
    unsafe { pg_sys::ExecScan(&mut (*node).ss, Some(access_next), Some(recheck)) }
}

/// Restarts the node's paused scan ([`pause`]) with new keys when it reads the same
/// chunks the same way (true: the node is started); else ends it (the caller begins a
/// new one).
fn reuse_paused(
    st: *mut BidimScanState,
    chunks: &[(u32, pg_sys::Oid)],
    keys: &[pg_sys::ScanKeyData],
    range: Option<(i64, i64)>,
    col_conds: &[ColumnCond],
) -> bool {
    // SAFETY: st is our executor node; its scan, if any, is paused.
    unsafe {
        if (*st).scan.is_null() {
            return false;
        }
        let time = range.unwrap_or((i64::MIN, i64::MAX));
        if col_conds.is_empty() && chunk_scan::rekey((*st).scan, chunks, keys, time) {
            (*st).started = true;
            return true;
        }
        stop(st);
        false
    }
}

/// Adds the node's scan's cold batch counts to the node's (the scan is about to be
/// paused or ended); false when the node has no scan.
fn take_counts(st: *mut BidimScanState) -> bool {
    // SAFETY: st is our executor node; its scan, if any, is live.
    unsafe {
        (*st).started = false;
        if (*st).scan.is_null() {
            return false;
        }
        let (r, k, l) = chunk_scan::batch_counts((*st).scan);
        (*st).batches.0 += r;
        (*st).batches.1 += k;
        (*st).batches.2 += l;
        let (p, m) = chunk_scan::take_tail_counts((*st).scan, true);
        (*st).tails.0 += p;
        (*st).tails.1 += m;
        (*st).tail_learned = chunk_scan::tail_stats((*st).scan);
        true
    }
}

/// Pauses the node's scan for a rescan: its counts taken, its reader ended, the scan
/// kept for [`reuse_paused`].
fn pause(st: *mut BidimScanState) {
    if take_counts(st) {
        // SAFETY: st is our executor node with a live scan.
        chunk_scan::pause(unsafe { (*st).scan });
    }
}

pub(super) fn stop(st: *mut BidimScanState) {
    if take_counts(st) {
        // SAFETY: st is our executor node with a live scan, ended once here.
        unsafe {
            chunk_scan::scan_finish((*st).scan);
            (*st).scan = std::ptr::null_mut();
        }
    }
}

/// Ends the node's scan and closes the index scans it kept across rescans.
pub(super) fn finish(st: *mut BidimScanState) {
    stop(st);
    // SAFETY: st is our executor node.
    unsafe { kept_scans::close_all((*st).kept) };
}

#[pg_guard]
unsafe extern "C-unwind" fn end_scan(node: *mut pg_sys::CustomScanState) {
    finish(node as *mut BidimScanState);
}

#[pg_guard]
unsafe extern "C-unwind" fn rescan(node: *mut pg_sys::CustomScanState) {
    // Parameters may have changed: the bounds are evaluated again at the next row (the
    // scan is reused if it reads the same chunks).
    pause(node as *mut BidimScanState);
    // SAFETY: our node.
    unsafe {
        (*(node as *mut BidimScanState)).rescanned = true;
        (*(node as *mut BidimScanState)).older = false;
    }
    // SAFETY: resets the generic scan state of our node.
    unsafe { pg_sys::ExecScanReScan(&mut (*node).ss) };
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn estimate_dsm(
    node: *mut pg_sys::CustomScanState,
    _pcxt: *mut pg_sys::ParallelContext,
) -> pg_sys::Size {
    // SAFETY: our node's relation is open.
    unsafe { chunk_scan::bidim_parallelscan_estimate((*node).ss.ss_currentRelation) }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn initialize_dsm(
    node: *mut pg_sys::CustomScanState,
    _pcxt: *mut pg_sys::ParallelContext,
    coordinate: *mut std::ffi::c_void,
) {
    // SAFETY: coordinate is estimate_dsm's bytes of shared memory for this node.
    unsafe {
        let pscan = coordinate as pg_sys::ParallelTableScanDesc;
        chunk_scan::bidim_parallelscan_initialize((*node).ss.ss_currentRelation, pscan);
        (*(node as *mut BidimScanState)).pscan = pscan;
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn reinitialize_dsm(
    node: *mut pg_sys::CustomScanState,
    _pcxt: *mut pg_sys::ParallelContext,
    coordinate: *mut std::ffi::c_void,
) {
    // SAFETY: as in initialize_dsm; no participant is scanning during a rescan.
    unsafe {
        chunk_scan::bidim_parallelscan_reinitialize(
            (*node).ss.ss_currentRelation,
            coordinate as pg_sys::ParallelTableScanDesc,
        )
    }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn initialize_worker(
    node: *mut pg_sys::CustomScanState,
    _toc: *mut pg_sys::shm_toc,
    coordinate: *mut std::ffi::c_void,
) {
    // SAFETY: the leader's shared state for this node.
    unsafe { (*(node as *mut BidimScanState)).pscan = coordinate as pg_sys::ParallelTableScanDesc };
}

/// Adds the EXPLAIN property `label: text`.
///
/// # Safety
/// `es` must be the EXPLAIN state of a running EXPLAIN.
unsafe fn explain_text(es: *mut pg_sys::ExplainState, label: &CStr, text: String) {
    let text = std::ffi::CString::new(text).expect("no NUL in a number");
    // SAFETY: per the contract; both strings outlive the call (EXPLAIN copies them).
    unsafe { pg_sys::ExplainPropertyText(label.as_ptr(), text.as_ptr(), es) };
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn explain_scan(
    node: *mut pg_sys::CustomScanState,
    _ancestors: *mut pg_sys::List,
    es: *mut pg_sys::ExplainState,
) {
    let st = node as *mut BidimScanState;
    // SAFETY: reading our node; ExplainProperty* copy the strings.
    unsafe {
        if (*st).chunks_total > 0 || (*st).started {
            // The scan read only the directory rows its time bounds need: the total is
            // the table's (as last committed).
            let total = planning_chunks((*(*st).css.ss.ss_currentRelation).rd_id)
                .rows
                .len();
            let text = format!(
                "{} of {}{}{}",
                (*st).chunks_scanned,
                total,
                if (*st).by_index {
                    ", by (key, time) index"
                } else {
                    ""
                },
                match (*st).order {
                    1 => ", oldest first",
                    -1 => ", newest first",
                    _ => "",
                }
            );
            explain_text(es, c"Chunks", text);
            // Cold chunks' batches (EXPLAIN ANALYZE: counted while reading).
            let (mut read, mut skipped, mut clear) = (*st).batches;
            if !(*st).scan.is_null() {
                let (r, k, l) = chunk_scan::batch_counts((*st).scan);
                read += r;
                skipped += k;
                clear += l;
            }
            if read + skipped + clear > 0 {
                let mut text = format!("{read} decoded, {skipped} skipped by their bounds");
                if clear > 0 {
                    text += &format!(", {clear} last rows read undecoded");
                }
                explain_text(es, c"Cold batches", text);
            }
            let (mut probes, mut missed) = (*st).tails;
            if !(*st).scan.is_null() {
                let (p, m) = chunk_scan::take_tail_counts((*st).scan, false);
                probes += p;
                missed += m;
            }
            if (*st).splits.0 > 0 {
                let text = format!(
                    "{} of {} starts read only from the newest partition on",
                    (*st).splits.0 - (*st).splits.1,
                    (*st).splits.0
                );
                explain_text(es, c"Newest partition first", text);
            }
            if probes > 0 {
                let text = format!("{probes}, {missed} found no row in their slice");
                explain_text(es, c"Tail probes", text);
            }
            if (*st).blocks.1 > 0 {
                let text = format!(
                    "{} of {}, by their time ranges",
                    (*st).blocks.0,
                    (*st).blocks.1
                );
                explain_text(es, c"Sealed blocks", text);
            }
            if (*st).heap_keys > 0 {
                let text = format!(
                    "{} (rows of hot and sealed chunks failing them are not counted as removed)",
                    (*st).heap_keys
                );
                explain_text(es, c"Heap keys", text);
            }
            if (*st).by_index {
                pg_sys::ExplainPropertyInteger(
                    c"Keys".as_ptr(),
                    std::ptr::null(),
                    (*st).keys_named,
                    es,
                );
            }
        } else {
            pg_sys::ExplainPropertyText(c"Chunks".as_ptr(), c"chosen at run time".as_ptr(), es);
        }
    }
}

/// The key and time bounds a plan's filter puts on the rows of a bidim table: what
/// [`chunks_to_read`] takes, plus the key values themselves (a batch of a cold chunk
/// holds one key).
pub(super) struct Restriction {
    /// `None`: no row can match.
    pub time: Option<(i64, i64)>,
    /// Every key the conditions name must be the row's (`key = ...`).
    pub keys: Vec<Key>,
    /// The row's key is in each of these sets (`key = ANY (...)`, `key IN (...)`).
    pub sets: Vec<Vec<Key>>,
}

impl Restriction {
    /// Whether a row with key `k` may match (time aside).
    pub fn may_hold_key(&self, k: &Key) -> bool {
        self.keys.iter().all(|x| x == k) && self.sets.iter().all(|s| s.contains(k))
    }
}

/// The restriction the filter `quals` (a plan node's implicit-AND list) of range table
/// entry `rti`, the bidim table `rel`, puts on the rows it passes, with the operands
/// evaluated now: constants, stable expressions and the statement's parameters
/// (`params`). Conditions that need a value known only while the plan runs (a nested
/// loop's or a subquery's parameter) are left out, so every row the filter passes is
/// within the restriction. Keys are left out where the key's collation is not bytewise.
pub(super) fn restriction_of(
    quals: *mut pg_sys::List,
    rti: u32,
    rel: pg_sys::Relation,
    params: pg_sys::ParamListInfo,
) -> Restriction {
    // SAFETY: rel is an open bidim table; quals are planner expressions; operands are
    // compiled and evaluated in a standalone expression context freed below, in the
    // caller's memory context (keys are copied out as Rust values).
    unsafe {
        let cfg = config::config(rel);
        let desc = (*rel).rd_att;
        let attrs = (*desc).attrs.as_slice((*desc).natts as usize);
        let key_collation = attrs[(cfg.key_attnum - 1) as usize].attcollation;
        let bytewise = key_collation == pg_sys::InvalidOid
            || pg_sys::get_collation_isdeterministic(key_collation);
        let mut columns = Vec::new();
        for (on, attnum) in [(ON_TIME, cfg.time_attnum), (ON_KEY, cfg.key_attnum)] {
            if let Some((family, intype)) = btree_family(attrs[(attnum - 1) as usize].atttypid) {
                columns.push((on, attnum, family, intype));
            }
        }
        let econtext = pg_sys::CreateStandaloneExprContext();
        (*econtext).ecxt_param_list_info = params;
        let mut time_conds = Vec::new();
        let mut keys = Vec::new();
        let mut sets = Vec::new();
        let mut impossible = false;
        for i in 0..pg_sys::list_length(quals) {
            let clause = pg_sys::list_nth(quals, i) as *mut pg_sys::Node;
            for &(on, attnum, family, intype) in &columns {
                let Some(c) =
                    condition(clause, rti, attnum, intype, family, on == ON_KEY).filter(|c| {
                        if on == ON_TIME {
                            !c.is_set
                        } else {
                            c.strategy == EQ
                        }
                    })
                else {
                    continue;
                };
                if !pg_sys::pull_paramids(c.operand as *mut pg_sys::Expr).is_null() {
                    break;
                }
                let state = pg_sys::ExecInitExprWithParams(c.operand as *mut pg_sys::Expr, params);
                let mut isnull = false;
                let v = ((*state).evalfunc.expect("evalfunc"))(state, econtext, &mut isnull);
                if on == ON_TIME {
                    time_conds.push((c.strategy, (!isnull).then(|| v.value() as i64)));
                } else if isnull {
                    impossible = true;
                } else if c.is_set {
                    let elems = array_elements(v, c.righttype);
                    impossible |= elems.is_empty();
                    let set: Option<Vec<Key>> = elems
                        .into_iter()
                        .map(|e| route::datum_key(cfg.key_kind, c.righttype, e))
                        .collect();
                    if let (true, Some(set)) = (bytewise, set) {
                        sets.push(set);
                    }
                } else if let (true, Some(k)) =
                    (bytewise, route::datum_key(cfg.key_kind, c.righttype, v))
                {
                    keys.push(k);
                }
                break;
            }
        }
        pg_sys::FreeExprContext(econtext, true);
        Restriction {
            time: if impossible {
                None
            } else {
                bounds(&time_conds)
            },
            keys,
            sets,
        }
    }
}

/// The share of a parallel plan's rows one participant reads, inverted (costsize.c's
/// `get_parallel_divisor`): the workers, plus the leader's part, which shrinks the more
/// workers it collects rows from.
pub(super) fn parallel_divisor(workers: i32) -> f64 {
    let mut divisor = f64::from(workers);
    let leader = 1.0 - 0.3 * f64::from(workers);
    // SAFETY: reading a GUC variable in the backend's own thread.
    if unsafe { pg_sys::parallel_leader_participation } && leader > 0.0 {
        divisor += leader;
    }
    divisor
}
