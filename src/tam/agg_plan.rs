//! BidimAgg planning: `GROUP BY` queries on one bidim table with cold chunks get a
//! path that aggregates inside the scan (and, on tables with sealed chunks' block
//! maps, a time-ordered variant that stops early). BidimAgg reads cold batches as decoded
//! column arrays and hot rows from their chunks, and emits partial aggregate states
//! per group; PostgreSQL's own Finalize Aggregate combines them (hashing, spilling to
//! disk under `work_mem`, HAVING, the final functions), as it does above a Partial
//! Aggregate.
//!
//! Taken: `count(*)`, `count(x)`, `sum`/`avg`/`min`/`max` of float8, `min`/`max` of
//! integers, dates and timestamps, `sum`/`avg` of int2 and int4, and
//! `ddsketch_agg(float8)`, with no FILTER, DISTINCT or ORDER BY; grouped by up to four
//! columns of integer, date, timestamp or boolean type, or `date_trunc(unit, column)`
//! of a timestamp(tz) column. Any other query plans as before.

use super::aggregate::{AggKind, MAX_GROUP_COLUMNS};
use super::custom_scan::{self, ON_TIME};
use super::directory_io::planning_chunks;
use super::prune;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use std::ffi::CStr;

/// `bidim.enable_batch_aggregation`: lets the planner use BidimAgg (default on).
pub static ENABLE_BATCH_AGG: GucSetting<bool> = GucSetting::<bool>::new(true);

static mut PREV_UPPER_HOOK: pg_sys::create_upper_paths_hook_type = None;

pub(super) const NAME: &CStr = c"BidimAgg";

static mut PATH_METHODS: pg_sys::CustomPathMethods = pg_sys::CustomPathMethods {
    CustomName: NAME.as_ptr(),
    PlanCustomPath: Some(plan_agg_path),
    ReparameterizeCustomPathByChild: None,
};

/// What a position of BidimAgg's scan tuple holds (3 ints each in the plan: what,
/// kind, attnum).
pub(super) const SLOT_JUNK: i32 = 0;
pub(super) const SLOT_GROUP: i32 = 1;
pub(super) const SLOT_AGG: i32 = 2;
/// Grouping expressions: a column, or `date_trunc(unit, column)` of timestamptz or
/// timestamp.
pub(super) const GROUP_VAR: i32 = 1;
pub(super) const GROUP_TRUNC_TZ: i32 = 2;
pub(super) const GROUP_TRUNC: i32 = 3;
/// Restrictions: on time (checked against the evaluated bounds), on the key (once per
/// cold batch: a batch holds one key), others (every row).
pub(super) const QUAL_TIME: i32 = 0;
pub(super) const QUAL_KEY: i32 = 1;
pub(super) const QUAL_OTHER: i32 = 2;

pub fn install() {
    GucRegistry::define_bool_guc(
        c"bidim.enable_batch_aggregation",
        c"Lets the planner aggregate bidim tables with cold chunks inside the scan (BidimAgg).",
        c"When off, aggregates over bidim tables run row by row above the scan.",
        &ENABLE_BATCH_AGG,
        GucContext::Userset,
        GucFlags::default(),
    );
    // SAFETY: chaining a planner hook, once per process, on PostgreSQL's main thread.
    unsafe {
        PREV_UPPER_HOOK = pg_sys::create_upper_paths_hook;
        pg_sys::create_upper_paths_hook = Some(upper_paths_hook);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn upper_paths_hook(
    root: *mut pg_sys::PlannerInfo,
    stage: pg_sys::UpperRelationKind::Type,
    input_rel: *mut pg_sys::RelOptInfo,
    output_rel: *mut pg_sys::RelOptInfo,
    extra: *mut std::ffi::c_void,
) {
    // SAFETY: chaining to the previous hook with the arguments we were given.
    unsafe {
        if let Some(prev) = PREV_UPPER_HOOK {
            prev(root, stage, input_rel, output_rel, extra);
        }
    }
    if stage != pg_sys::UpperRelationKind::UPPERREL_GROUP_AGG
        || !ENABLE_BATCH_AGG.get()
        || !custom_scan::ENABLE_PRUNING.get()
        || extra.is_null()
    {
        return;
    }
    // SAFETY: the planner's structures for this grouping step; extra is its
    // GroupPathExtraData (UPPERREL_GROUP_AGG).
    unsafe {
        add_paths(
            root,
            input_rel,
            output_rel,
            extra as *mut pg_sys::GroupPathExtraData,
        )
    };
}

fn is_var_of(n: *mut pg_sys::Node, rti: u32) -> Option<*mut pg_sys::Var> {
    // SAFETY: reading a node by its tag.
    unsafe {
        if n.is_null() || (*n).type_ != pg_sys::NodeTag::T_Var {
            return None;
        }
        let v = n as *mut pg_sys::Var;
        ((*v).varno as u32 == rti && (*v).varlevelsup == 0 && (*v).varattno > 0).then_some(v)
    }
}

fn in_catalog(funcid: pg_sys::Oid, name: &str) -> bool {
    // SAFETY: syscache lookups of a function oid.
    unsafe {
        if pg_sys::get_func_namespace(funcid) != pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE) {
            return false;
        }
        let n = pg_sys::get_func_name(funcid);
        !n.is_null() && CStr::from_ptr(n).to_bytes() == name.as_bytes()
    }
}

/// A grouping expression BidimAgg computes: (GROUP_*, attnum).
pub(super) fn group_column(expr: *mut pg_sys::Node, rti: u32) -> Option<(i32, i16)> {
    let groupable = [
        pg_sys::INT2OID,
        pg_sys::INT4OID,
        pg_sys::INT8OID,
        pg_sys::DATEOID,
        pg_sys::TIMESTAMPOID,
        pg_sys::TIMESTAMPTZOID,
        pg_sys::BOOLOID,
        pg_sys::OIDOID,
    ];
    // SAFETY: reading planner nodes by tag.
    unsafe {
        if let Some(v) = is_var_of(expr, rti) {
            return groupable
                .contains(&(*v).vartype)
                .then_some((GROUP_VAR, (*v).varattno));
        }
        if expr.is_null() || (*expr).type_ != pg_sys::NodeTag::T_FuncExpr {
            return None;
        }
        let f = expr as *mut pg_sys::FuncExpr;
        if pg_sys::list_length((*f).args) != 2 || !in_catalog((*f).funcid, "date_trunc") {
            return None;
        }
        let unit = pg_sys::list_nth((*f).args, 0) as *mut pg_sys::Node;
        let col = is_var_of(pg_sys::list_nth((*f).args, 1) as *mut pg_sys::Node, rti)?;
        if (*unit).type_ != pg_sys::NodeTag::T_Const
            || (*(unit as *mut pg_sys::Const)).consttype != pg_sys::TEXTOID
            || (*(unit as *mut pg_sys::Const)).constisnull
        {
            return None;
        }
        match (*col).vartype {
            t if t == pg_sys::TIMESTAMPTZOID => Some((GROUP_TRUNC_TZ, (*col).varattno)),
            t if t == pg_sys::TIMESTAMPOID => Some((GROUP_TRUNC, (*col).varattno)),
            _ => None,
        }
    }
}

/// The aggregate BidimAgg computes for `aggref` and its argument's attnum (0 for
/// `count(*)`).
pub(super) fn agg_kind(aggref: *mut pg_sys::Aggref, rti: u32) -> Option<(AggKind, i16)> {
    // SAFETY: reading an Aggref and catalog entries by oid.
    unsafe {
        let a = &*aggref;
        if !a.aggfilter.is_null()
            || !a.aggdistinct.is_null()
            || !a.aggorder.is_null()
            || !a.aggdirectargs.is_null()
            || a.aggkind != b'n' as std::ffi::c_char
            || a.agglevelsup != 0
            || a.aggvariadic
        {
            return None;
        }
        let nargs = pg_sys::list_length(a.args);
        if a.aggstar {
            return (nargs == 0 && in_catalog(a.aggfnoid, "count"))
                .then_some((AggKind::CountStar, 0));
        }
        if nargs != 1 {
            return None;
        }
        let te = pg_sys::list_nth(a.args, 0) as *mut pg_sys::TargetEntry;
        let var = is_var_of((*te).expr as *mut pg_sys::Node, rti)?;
        let argtype = pg_sys::list_nth_oid(a.aggargtypes, 0);
        let ints = [pg_sys::INT2OID, pg_sys::INT4OID];
        let ordered = [
            pg_sys::INT2OID,
            pg_sys::INT4OID,
            pg_sys::INT8OID,
            pg_sys::DATEOID,
            pg_sys::TIMESTAMPOID,
            pg_sys::TIMESTAMPTZOID,
        ];
        let f8 = argtype == pg_sys::FLOAT8OID;
        let name = |n: &str| in_catalog(a.aggfnoid, n);
        let kind = if name("count") {
            AggKind::Count
        } else if f8 && name("sum") {
            AggKind::SumF8
        } else if f8 && name("avg") {
            AggKind::AvgF8
        } else if f8 && name("max") {
            AggKind::MaxF8
        } else if f8 && name("min") {
            AggKind::MinF8
        } else if ordered.contains(&argtype) && name("max") {
            AggKind::MaxInt
        } else if ordered.contains(&argtype) && name("min") {
            AggKind::MinInt
        } else if ints.contains(&argtype) && name("sum") {
            AggKind::SumInt
        } else if ints.contains(&argtype) && name("avg") {
            AggKind::AvgInt
        } else if f8 && is_our_sketch_agg(a.aggfnoid) {
            AggKind::Sketch
        } else {
            return None;
        };
        // The argument's own type (no implicit cast in between).
        ((*var).vartype == argtype || kind == AggKind::Count).then_some((kind, (*var).varattno))
    }
}

/// Whether `funcid` is this extension's `ddsketch_agg(float8)`.
fn is_our_sketch_agg(funcid: pg_sys::Oid) -> bool {
    // SAFETY: syscache and pg_depend lookups by oid.
    unsafe {
        let n = pg_sys::get_func_name(funcid);
        if n.is_null() || CStr::from_ptr(n).to_bytes() != b"ddsketch_agg" {
            return false;
        }
        let ext = pg_sys::get_extension_oid(c"bidim".as_ptr(), true);
        ext != pg_sys::InvalidOid
            && pg_sys::getExtensionOfObject(pg_sys::ProcedureRelationId, funcid) == ext
    }
}

/// A join that only picks the bidim table's keys: the inner relation's plan runs
/// first and its values of `expr` become a key set (`key = ANY (...)`).
pub(super) struct KeyJoin {
    pub child: *mut pg_sys::Path,
    pub expr: *mut pg_sys::Node,
    /// The join's equality operator, the bidim key on its left, and its right type.
    pub opno: pg_sys::Oid,
    pub elemtype: pg_sys::Oid,
}

/// `joinrel` as a bidim table joined to one other relation by `key = <column of the
/// other>` alone, where the other side cannot repeat a row of the bidim table (a
/// semi-join, `key IN (SELECT id FROM tags WHERE ...)`, or an inner join on a unique
/// column): the bidim table's relation and the key join.
unsafe fn key_join(
    root: *mut pg_sys::PlannerInfo,
    joinrel: *mut pg_sys::RelOptInfo,
) -> Option<(*mut pg_sys::RelOptInfo, KeyJoin)> {
    // SAFETY: planner structures of the query being planned.
    unsafe {
        let relids = (*joinrel).relids;
        if pg_sys::bms_num_members(relids) != 2 {
            return None;
        }
        let a = pg_sys::bms_next_member(relids, -1);
        let b = pg_sys::bms_next_member(relids, a);
        let rel_of = |i: i32| *(*root).simple_rel_array.add(i as usize);
        let rte_of = |i: i32| *(*root).simple_rte_array.add(i as usize);
        let bidim = |i: i32| {
            let rte = rte_of(i);
            (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                && (*rte).relkind == pg_sys::RELKIND_RELATION as std::ffi::c_char
                && custom_scan::bounded_columns_of((*rte).relid).is_some()
        };
        let (fact, other) = if bidim(a) {
            (a, b)
        } else if bidim(b) {
            (b, a)
        } else {
            return None;
        };
        let base = rel_of(fact);
        let inner = rel_of(other);
        if base.is_null()
            || inner.is_null()
            || (*base).reloptkind != pg_sys::RelOptKind::RELOPT_BASEREL
            || (*inner).reloptkind != pg_sys::RelOptKind::RELOPT_BASEREL
            || !(*base).lateral_relids.is_null()
            || !(*inner).lateral_relids.is_null()
            || (*inner).cheapest_total_path.is_null()
            || !(*(*inner).cheapest_total_path).param_info.is_null()
        {
            return None;
        }
        // The join clauses: implied equalities plus the bidim side's other join clauses.
        let mut clauses =
            pg_sys::generate_join_implied_equalities(root, relids, (*base).relids, inner);
        for i in 0..pg_sys::list_length((*base).joininfo) {
            clauses = pg_sys::lappend(clauses, pg_sys::list_nth((*base).joininfo, i));
        }
        if pg_sys::list_length(clauses) != 1 {
            return None;
        }
        let ri = pg_sys::list_nth(clauses, 0) as *mut pg_sys::RestrictInfo;
        let clause = (*ri).clause as *mut pg_sys::Node;
        if (*clause).type_ != pg_sys::NodeTag::T_OpExpr {
            return None;
        }
        let op = clause as *mut pg_sys::OpExpr;
        if pg_sys::list_length((*op).args) != 2 {
            return None;
        }
        let l = pg_sys::list_nth((*op).args, 0) as *mut pg_sys::Node;
        let r = pg_sys::list_nth((*op).args, 1) as *mut pg_sys::Node;
        let rte = rte_of(fact);
        let relation = pg_sys::table_open((*rte).relid, pg_sys::NoLock as pg_sys::LOCKMODE);
        let cfg = super::config::config(relation);
        let desc = (*relation).rd_att;
        let keytype =
            (*desc).attrs.as_slice((*desc).natts as usize)[(cfg.key_attnum - 1) as usize].atttypid;
        pg_sys::table_close(relation, pg_sys::NoLock as pg_sys::LOCKMODE);
        let is_key = |n: *mut pg_sys::Node| {
            is_var_of(n, fact as u32).is_some_and(|v| (*v).varattno == cfg.key_attnum)
        };
        let (expr, opno) = if is_key(l) {
            (r, (*op).opno)
        } else if is_key(r) {
            (l, pg_sys::get_commutator((*op).opno))
        } else {
            return None;
        };
        let ints = [pg_sys::INT2OID, pg_sys::INT4OID, pg_sys::INT8OID];
        let elemtype = pg_sys::exprType(expr);
        if is_var_of(expr, other as u32).is_none()
            || !ints.contains(&keytype)
            || !ints.contains(&elemtype)
            || opno == pg_sys::InvalidOid
            || !pg_sys::op_mergejoinable(opno, keytype)
        {
            return None;
        }
        // No other special join over these relations but a semi-join with the other
        // relation on the inside; without one, the other side must be unique.
        let mut semi = false;
        for i in 0..pg_sys::list_length((*root).join_info_list) {
            let sj = pg_sys::list_nth((*root).join_info_list, i) as *mut pg_sys::SpecialJoinInfo;
            if !pg_sys::bms_overlap((*sj).syn_righthand, relids)
                && !pg_sys::bms_overlap((*sj).syn_lefthand, relids)
            {
                continue;
            }
            if (*sj).jointype == pg_sys::JoinType::JOIN_SEMI
                && pg_sys::bms_equal((*sj).syn_righthand, (*inner).relids)
            {
                semi = true;
            } else {
                return None;
            }
        }
        if !semi
            && !pg_sys::innerrel_is_unique(
                root,
                relids,
                (*base).relids,
                inner,
                pg_sys::JoinType::JOIN_INNER,
                clauses,
                false,
            )
        {
            return None;
        }
        Some((
            base,
            KeyJoin {
                child: (*inner).cheapest_total_path,
                expr,
                opno,
                elemtype,
            },
        ))
    }
}

/// Adds Finalize Aggregate over BidimAgg to `grouped` when the query allows.
unsafe fn add_paths(
    root: *mut pg_sys::PlannerInfo,
    input: *mut pg_sys::RelOptInfo,
    grouped: *mut pg_sys::RelOptInfo,
    extra: *mut pg_sys::GroupPathExtraData,
) {
    // SAFETY: planner structures of the query being planned, in the planner's memory
    // context; the relation is locked by the planner.
    unsafe {
        let parse = (*root).parse;
        if !(*input).lateral_relids.is_null()
            || !(*parse).groupingSets.is_null()
            || (*extra).flags & pg_sys::GROUPING_CAN_PARTIAL_AGG as i32 == 0
            || (*grouped).pathlist.is_null()
            || !pg_sys::ActiveSnapshotSet()
        {
            return;
        }
        // One bidim table, or one joined to another relation only to pick its keys.
        let (base, semi) = match (*input).reloptkind {
            pg_sys::RelOptKind::RELOPT_BASEREL => (input, None),
            pg_sys::RelOptKind::RELOPT_JOINREL => match key_join(root, input) {
                Some((base, semi)) => (base, Some(semi)),
                None => return,
            },
            _ => return,
        };
        let rti = (*base).relid;
        let rte = *(*root).simple_rte_array.add(rti as usize);
        if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION
            || (*rte).relkind != pg_sys::RELKIND_RELATION as std::ffi::c_char
            || (*rte).inh
        {
            return;
        }
        let Some(columns) = custom_scan::bounded_columns_of((*rte).relid) else {
            return;
        };
        let chunks = planning_chunks((*rte).relid);
        // Cold batches are decoded a column at a time and added up in bulk; hot rows
        // come a row at a time, but their groups are found without calling the
        // grouping expressions (a native `date_trunc`) and their states kept without
        // a transition call per row.
        let cold_share = if chunks.rows.is_empty() {
            0.0
        } else {
            chunks.cold as f64 / chunks.rows.len() as f64
        };
        let per_cost = 0.3 * cold_share + 0.9 * (1.0 - cold_share);
        let units = chunks.parallel_units;
        let Some(partial) = partial_target(root, grouped, extra, rti) else {
            return;
        };
        // Every restriction (pseudo-constant ones too: no gating Result runs above an
        // aggregate's input here), none on whole rows or system columns.
        let mut quals: *mut pg_sys::List = std::ptr::null_mut();
        let mut classes: *mut pg_sys::List = std::ptr::null_mut();
        let (exprs, strategies, used) = custom_scan::scan_conditions(base, rti, &columns);
        let rinfos = (*base).baserestrictinfo;
        for i in 0..pg_sys::list_length(rinfos) {
            let ri = pg_sys::list_nth(rinfos, i) as *mut pg_sys::RestrictInfo;
            let class = match used.iter().find(|(u, _)| *u == ri) {
                Some((_, on)) if *on == ON_TIME => QUAL_TIME,
                Some(_) => QUAL_KEY,
                None => QUAL_OTHER,
            };
            quals = pg_sys::lappend(quals, (*ri).clause as *mut std::ffi::c_void);
            classes = pg_sys::lappend_int(classes, class);
        }
        let mut atts: *mut pg_sys::Bitmapset = std::ptr::null_mut();
        pg_sys::pull_varattnos(quals as *mut pg_sys::Node, rti, &mut atts);
        let first = pg_sys::bms_next_member(atts, -1);
        if first >= 0 && first + pg_sys::FirstLowInvalidHeapAttributeNumber <= 0 {
            return;
        }
        // PostgreSQL counts `date_trunc(unit, time)` groups as distinct times; a
        // bounded window holds only so many buckets of the unit.
        let window = custom_scan::constant_time_conds(root, exprs, strategies)
            .and_then(|conds| prune::bounds(&conds));
        let groups = (*(pg_sys::list_nth((*grouped).pathlist, 0) as *mut pg_sys::Path))
            .rows
            .min(group_bound(root, partial, rti, (*input).rows, window).unwrap_or(f64::MAX))
            .max(1.0);
        // The cheapest way to read the rows serially (the base relation's cheapest
        // path may be a Gather when it is joined to another).
        let Some(cheapest) = cheapest_serial(base) else {
            return;
        };
        let partial_rel = pg_sys::fetch_upper_rel(
            root,
            pg_sys::UpperRelationKind::UPPERREL_PARTIAL_GROUP_AGG,
            (*input).relids,
        );
        let cpath =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::CustomPath>()) as *mut pg_sys::CustomPath;
        (*cpath).path.type_ = pg_sys::NodeTag::T_CustomPath;
        (*cpath).path.pathtype = pg_sys::NodeTag::T_CustomScan;
        (*cpath).path.parent = partial_rel;
        (*cpath).path.pathtarget = partial;
        (*cpath).path.rows = groups.min((*input).rows.max(1.0));
        // Decoding a batch's columns and adding them up costs a fraction of handing
        // every row up to an Aggregate; it emits its groups at the end. Under a key
        // join it reads the keys' share of the rows, after running the inner plan.
        let total = match &semi {
            None => cheapest * per_cost + 1.0,
            Some(k) => {
                let share = ((*input).rows / (*base).rows.max(1.0)).clamp(0.0001, 1.0);
                cheapest * per_cost * share + (*k.child).total_cost + 1.0
            }
        };
        (*cpath).path.startup_cost = total;
        (*cpath).path.total_cost = total;
        (*cpath).methods = std::ptr::addr_of!(PATH_METHODS);
        let mut private = pg_sys::lappend(std::ptr::null_mut(), exprs as *mut std::ffi::c_void);
        private = pg_sys::lappend(private, strategies as *mut std::ffi::c_void);
        private = pg_sys::lappend(private, quals as *mut std::ffi::c_void);
        private = pg_sys::lappend(private, classes as *mut std::ffi::c_void);
        private = pg_sys::lappend(
            private,
            pg_sys::lappend_int(std::ptr::null_mut(), rti as i32) as *mut std::ffi::c_void,
        );
        // [.., order, and under a key join: (operator, element type), inner expression]
        let with_order = |order: i32, limit: i32| {
            let mut o = pg_sys::lappend_int(std::ptr::null_mut(), order);
            if limit > 0 {
                o = pg_sys::lappend_int(o, limit);
            }
            let mut l = pg_sys::lappend(pg_sys::list_copy(private), o as *mut std::ffi::c_void);
            if let Some(k) = &semi {
                let mut ops = pg_sys::lappend_oid(std::ptr::null_mut(), k.opno);
                ops = pg_sys::lappend_oid(ops, k.elemtype);
                l = pg_sys::lappend(l, ops as *mut std::ffi::c_void);
                l = pg_sys::lappend(l, k.expr as *mut std::ffi::c_void);
            }
            l
        };
        (*cpath).custom_private = with_order(0, 0);
        if let Some(k) = &semi {
            (*cpath).custom_paths =
                pg_sys::lappend(std::ptr::null_mut(), k.child as *mut std::ffi::c_void);
        }
        // Grouped by time (or a date_trunc of it) alone, in the order the query wants
        // the groups (`ORDER BY 1 DESC LIMIT 5`): a variant that reads cold batches by
        // their time bounds and emits each group once no unread row can fall in it,
        // in order, so a Finalize GroupAggregate needs no sort and a LIMIT stops the
        // reading.
        // Only for a LIMIT without key conditions: it lists every batch in the time
        // range, so with keys the unordered scan through the key index is the way.
        let keyed = semi.is_some()
            || (0..pg_sys::list_length(strategies) / 4)
                .any(|i| pg_sys::list_nth_int(strategies, 4 * i) != ON_TIME);
        let limited = !(*parse).limitCount.is_null();
        let order = if keyed || !limited {
            None
        } else {
            time_order(root, partial, rti, &columns)
        };
        if let Some(order) = order {
            let opath = pg_sys::palloc0(std::mem::size_of::<pg_sys::CustomPath>())
                as *mut pg_sys::CustomPath;
            *opath = *cpath;
            (*opath).path.pathkeys = (*root).group_pathkeys;
            (*opath).path.startup_cost = total * 0.02;
            (*opath).path.total_cost = total * 1.2;
            (*opath).custom_private = with_order(order, groups_limit(root));
            let zero: pg_sys::AggClauseCosts = std::mem::zeroed();
            finalize(
                root,
                grouped,
                extra,
                opath as *mut pg_sys::Path,
                groups,
                &zero,
                true,
            );
        }
        // The parallel variant: participants take chunks, and pieces of the mapped
        // ones, from a shared counter (as BidimScan's), each emits its own partial
        // groups, Gather collects them.
        let workers = if semi.is_none()
            && (*input).consider_parallel
            && (*extra).target_parallel_safe
            && pg_sys::max_parallel_workers_per_gather > 0
        {
            let pages = ((*input).pages as f64).max((*input).tuples / 64.0);
            pg_sys::compute_parallel_worker(
                input,
                pages,
                -1.0,
                pg_sys::max_parallel_workers_per_gather,
            )
        } else {
            0
        };
        // With few units per participant, one of them reads most of the table and the
        // workers' start is not repaid. Mostly cold chunks (a fraction of the bytes of
        // their rows, decoded several times faster than they are read from disk) pay
        // from two units a participant.
        let participants = workers.max(0) as usize + 1;
        let splits = units >= 4 * participants || (cold_share >= 0.5 && units >= 2 * participants);
        // Mostly hot rows in a few unmapped chunks, read whole: a parallel sequential
        // scan, which splits by blocks, is left to read them.
        if !keyed && cold_share < 0.5 && workers > 0 && !splits {
            return;
        }
        let zero: pg_sys::AggClauseCosts = std::mem::zeroed();
        finalize(
            root,
            grouped,
            extra,
            cpath as *mut pg_sys::Path,
            groups,
            &zero,
            false,
        );
        if workers > 0 && splits {
            let divisor = custom_scan::parallel_divisor(workers);
            let ppath = pg_sys::palloc0(std::mem::size_of::<pg_sys::CustomPath>())
                as *mut pg_sys::CustomPath;
            *ppath = *cpath;
            (*ppath).path.parallel_aware = true;
            (*ppath).path.parallel_safe = true;
            (*ppath).path.parallel_workers = workers;
            (*ppath).path.startup_cost = total / divisor;
            (*ppath).path.total_cost = total / divisor;
            let mut rows = (*ppath).path.rows * divisor;
            let gather = pg_sys::create_gather_path(
                root,
                partial_rel,
                ppath as *mut pg_sys::Path,
                partial,
                std::ptr::null_mut(),
                &mut rows,
            );
            finalize(
                root,
                grouped,
                extra,
                gather as *mut pg_sys::Path,
                groups,
                &zero,
                false,
            );
        }
    }
}

/// At most how many groups the grouping expressions of `partial` make over `rows` input
/// rows: a `date_trunc` to a fixed unit makes at most the buckets of the time window
/// (when bounded), every other expression what PostgreSQL estimates for it alone.
unsafe fn group_bound(
    root: *mut pg_sys::PlannerInfo,
    partial: *mut pg_sys::PathTarget,
    rti: u32,
    rows: f64,
    window: Option<(i64, i64)>,
) -> Option<f64> {
    // SAFETY: the partial target partial_target built (its grouping expressions
    // first, each with a sortgroupref); planner estimates of single expressions.
    unsafe {
        let exprs = (*partial).exprs;
        let mut bound = 1.0f64;
        let mut any = false;
        for i in 0..pg_sys::list_length(exprs) {
            if (*partial).sortgrouprefs.is_null() || *(*partial).sortgrouprefs.add(i as usize) == 0
            {
                break;
            }
            let expr = pg_sys::list_nth(exprs, i) as *mut pg_sys::Node;
            let buckets = match (group_column(expr, rti), window) {
                (Some((kind, _)), Some((lo, hi)))
                    if kind != GROUP_VAR && lo > i64::MIN && hi < i64::MAX =>
                {
                    let f = expr as *mut pg_sys::FuncExpr;
                    let unit = pg_sys::list_nth((*f).args, 0) as *mut pg_sys::Const;
                    super::agg_exec::unit_width((*unit).constvalue)
                        .map(|w| (hi.saturating_sub(lo) / w.max(1)) as f64 + 2.0)
                }
                _ => None,
            };
            any |= buckets.is_some();
            bound *= buckets.unwrap_or_else(|| {
                pg_sys::estimate_num_groups(
                    root,
                    pg_sys::lappend(std::ptr::null_mut(), expr as *mut std::ffi::c_void),
                    rows,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            });
        }
        any.then_some(bound)
    }
}

/// What reading `base` costs in one process: its cheapest unparameterized serial
/// path, or a partial path's cost times its participants (the serial path is gone
/// from the path list when a Gather over a partial one beat it).
unsafe fn cheapest_serial(base: *mut pg_sys::RelOptInfo) -> Option<f64> {
    // SAFETY: the relation's path lists, built by the planner.
    unsafe {
        let paths = |list: *mut pg_sys::List| {
            (0..pg_sys::list_length(list))
                .map(move |i| pg_sys::list_nth(list, i) as *mut pg_sys::Path)
        };
        let serial = paths((*base).pathlist)
            .filter(|&p| {
                (*p).param_info.is_null()
                    && (*p).pathtype != pg_sys::NodeTag::T_Gather
                    && (*p).pathtype != pg_sys::NodeTag::T_GatherMerge
            })
            .map(|p| (*p).total_cost);
        let partial = paths((*base).partial_pathlist)
            .filter(|&p| (*p).param_info.is_null())
            .map(|p| (*p).total_cost * custom_scan::parallel_divisor((*p).parallel_workers));
        serial.chain(partial).min_by(f64::total_cmp)
    }
}

/// The time order (1 ascending, -1 descending) the query wants its groups in, when it
/// groups by the (NOT NULL) time column or a `date_trunc` of it alone.
unsafe fn time_order(
    root: *mut pg_sys::PlannerInfo,
    partial: *mut pg_sys::PathTarget,
    rti: u32,
    columns: &[custom_scan::BoundColumn],
) -> Option<i32> {
    // SAFETY: planner structures of the query being planned; catalog lookups.
    unsafe {
        let keys = (*root).group_pathkeys;
        if pg_sys::list_length(keys) != 1 || pg_sys::list_length((*(*root).parse).groupClause) != 1
        {
            return None;
        }
        let time = columns.iter().find(|c| c.0 == ON_TIME)?.1;
        let expr = pg_sys::list_nth((*partial).exprs, 0) as *mut pg_sys::Node;
        let (_, attnum) = group_column(expr, rti)?;
        let rte = *(*root).simple_rte_array.add(rti as usize);
        if attnum != time {
            return None;
        }
        let rel = pg_sys::table_open((*rte).relid, pg_sys::NoLock as pg_sys::LOCKMODE);
        let desc = (*rel).rd_att;
        let notnull =
            (*desc).attrs.as_slice((*desc).natts as usize)[attnum as usize - 1].attnotnull;
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        if !notnull {
            return None;
        }
        let pk = pg_sys::list_nth(keys, 0) as *mut pg_sys::PathKey;
        match (*pk).pk_strategy as u32 {
            pg_sys::BTLessStrategyNumber => Some(1),
            pg_sys::BTGreaterStrategyNumber => Some(-1),
            _ => None,
        }
    }
}

/// How many groups, in the grouping order, the query's output can need (its constant
/// `LIMIT` plus `OFFSET`, plus the one whose first row tells the Finalize
/// GroupAggregate that the last of those is whole), when it shows the groups
/// themselves in that order: no
/// HAVING, DISTINCT, window function or set-returning function between them and the
/// limit. 0 otherwise.
unsafe fn groups_limit(root: *mut pg_sys::PlannerInfo) -> i32 {
    // SAFETY: the query being planned and its pathkeys.
    unsafe {
        let parse = (*root).parse;
        let constant = |e: *mut pg_sys::Node| -> Option<i64> {
            if e.is_null() {
                return Some(0);
            }
            let c = e as *mut pg_sys::Const;
            ((*e).type_ == pg_sys::NodeTag::T_Const
                && !(*c).constisnull
                && (*c).consttype == pg_sys::INT8OID)
                .then(|| (*c).constvalue.value() as i64)
        };
        if (*parse).limitOption != pg_sys::LimitOption::LIMIT_OPTION_COUNT
            || !(*parse).havingQual.is_null()
            || !(*parse).distinctClause.is_null()
            || (*parse).hasWindowFuncs
            || (*parse).hasTargetSRFs
            || !same_pathkeys((*root).sort_pathkeys, (*root).group_pathkeys)
        {
            return 0;
        }
        let (Some(count), Some(offset)) = (
            constant((*parse).limitCount),
            constant((*parse).limitOffset),
        ) else {
            return 0;
        };
        if (*parse).limitCount.is_null() || count <= 0 || offset < 0 {
            return 0;
        }
        i32::try_from(count.saturating_add(offset).saturating_add(1)).unwrap_or(0)
    }
}

/// Whether two pathkey lists are the same (pathkeys are canonical: one node each).
unsafe fn same_pathkeys(a: *mut pg_sys::List, b: *mut pg_sys::List) -> bool {
    // SAFETY: two pathkey lists of the query being planned.
    unsafe {
        pg_sys::list_length(a) == pg_sys::list_length(b)
            && (0..pg_sys::list_length(a)).all(|i| pg_sys::list_nth(a, i) == pg_sys::list_nth(b, i))
    }
}

/// Adds Finalize Aggregates of the partial groups `input` emits to `grouped`: plain,
/// or hashed and sorted (the planner picks; `enable_hashagg` and `enable_sort` apply).
unsafe fn finalize(
    root: *mut pg_sys::PlannerInfo,
    grouped: *mut pg_sys::RelOptInfo,
    extra: *mut pg_sys::GroupPathExtraData,
    input: *mut pg_sys::Path,
    groups: f64,
    zero: &pg_sys::AggClauseCosts,
    sorted_input: bool,
) {
    // SAFETY: planner structures of the grouping step being planned.
    unsafe {
        let group_clause = (*(*root).parse).groupClause;
        let having = (*extra).havingQual as *mut pg_sys::List;
        // (the planner fills the final costs only when it plans partial aggregation)
        let costs = if (*extra).partial_costs_set {
            &(*extra).agg_final_costs
        } else {
            zero
        };
        let mut variants = Vec::new();
        if sorted_input {
            variants.push((pg_sys::AggStrategy::AGG_SORTED, input));
        } else if group_clause.is_null() {
            variants.push((pg_sys::AggStrategy::AGG_PLAIN, input));
        } else {
            if pg_sys::grouping_is_hashable(group_clause) {
                variants.push((pg_sys::AggStrategy::AGG_HASHED, input));
            }
            if pg_sys::grouping_is_sortable(group_clause) {
                let sorted =
                    pg_sys::create_sort_path(root, grouped, input, (*root).group_pathkeys, -1.0);
                variants.push((pg_sys::AggStrategy::AGG_SORTED, sorted as *mut pg_sys::Path));
            }
        }
        for (strategy, input) in variants {
            let path = pg_sys::create_agg_path(
                root,
                grouped,
                input,
                (*grouped).reltarget,
                strategy,
                pg_sys::AggSplit::AGGSPLIT_FINAL_DESERIAL,
                group_clause,
                having,
                costs,
                groups,
            );
            pg_sys::add_path(grouped, path as *mut pg_sys::Path);
        }
    }
}

/// The target BidimAgg emits (as `make_partial_grouping_target` builds it for a
/// Partial Aggregate): the grouping expressions, then the partial aggregates; `None`
/// when one of them is not one BidimAgg computes.
unsafe fn partial_target(
    root: *mut pg_sys::PlannerInfo,
    grouped: *mut pg_sys::RelOptInfo,
    extra: *mut pg_sys::GroupPathExtraData,
    rti: u32,
) -> Option<*mut pg_sys::PathTarget> {
    // SAFETY: the grouping target and clauses of the query being planned.
    unsafe {
        let parse = (*root).parse;
        let target = (*grouped).reltarget;
        let partial = pg_sys::create_empty_pathtarget();
        let mut non_group: *mut pg_sys::List = std::ptr::null_mut();
        let mut ngroup = 0;
        for i in 0..pg_sys::list_length((*target).exprs) {
            let expr = pg_sys::list_nth((*target).exprs, i) as *mut pg_sys::Expr;
            let sgref = if (*target).sortgrouprefs.is_null() {
                0
            } else {
                *(*target).sortgrouprefs.add(i as usize)
            };
            if sgref != 0
                && !(*parse).groupClause.is_null()
                && !pg_sys::get_sortgroupref_clause_noerr(sgref, (*parse).groupClause).is_null()
            {
                group_column(expr as *mut pg_sys::Node, rti)?;
                ngroup += 1;
                pg_sys::add_column_to_pathtarget(partial, expr, sgref);
            } else {
                non_group = pg_sys::lappend(non_group, expr as *mut std::ffi::c_void);
            }
        }
        if ngroup > MAX_GROUP_COLUMNS
            || ngroup != pg_sys::list_length((*parse).groupClause) as usize
        {
            return None;
        }
        if !(*extra).havingQual.is_null() {
            non_group = pg_sys::lappend(non_group, (*extra).havingQual as *mut std::ffi::c_void);
        }
        let pulled = pg_sys::pull_var_clause(
            non_group as *mut pg_sys::Node,
            (pg_sys::PVC_INCLUDE_AGGREGATES
                | pg_sys::PVC_RECURSE_WINDOWFUNCS
                | pg_sys::PVC_INCLUDE_PLACEHOLDERS) as i32,
        );
        pg_sys::add_new_columns_to_pathtarget(partial, pulled);
        let exprs = (*partial).exprs;
        for i in ngroup..pg_sys::list_length(exprs) as usize {
            let cell = (*exprs).elements.add(i);
            let node = (*cell).ptr_value as *mut pg_sys::Node;
            // Columns outside aggregates and grouping expressions: not taken.
            if (*node).type_ != pg_sys::NodeTag::T_Aggref {
                return None;
            }
            agg_kind(node as *mut pg_sys::Aggref, rti)?;
            let copy = pg_sys::palloc(std::mem::size_of::<pg_sys::Aggref>()) as *mut pg_sys::Aggref;
            std::ptr::copy_nonoverlapping(node as *mut pg_sys::Aggref, copy, 1);
            pg_sys::mark_partial_aggref(copy, pg_sys::AggSplit::AGGSPLIT_INITIAL_SERIAL);
            (*cell).ptr_value = copy as *mut std::ffi::c_void;
        }
        Some(pg_sys::set_pathtarget_cost_width(root, partial))
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn plan_agg_path(
    root: *mut pg_sys::PlannerInfo,
    _rel: *mut pg_sys::RelOptInfo,
    best_path: *mut pg_sys::CustomPath,
    tlist: *mut pg_sys::List,
    _clauses: *mut pg_sys::List,
    custom_plans: *mut pg_sys::List,
) -> *mut pg_sys::Plan {
    // SAFETY: building a plan node from the path made in add_paths.
    unsafe {
        let private = (*best_path).custom_private;
        let exprs = pg_sys::list_nth(private, 0) as *mut pg_sys::List;
        let strategies = pg_sys::list_nth(private, 1) as *mut pg_sys::List;
        let quals = pg_sys::list_nth(private, 2) as *mut pg_sys::List;
        let classes = pg_sys::list_nth(private, 3) as *mut pg_sys::List;
        let rti = pg_sys::list_nth_int(pg_sys::list_nth(private, 4) as *mut pg_sys::List, 0) as u32;
        // The scan tuple: the target, then the columns the restrictions read that the
        // target does not hold as plain columns (filled row by row to run them).
        let mut scan_tlist = pg_sys::list_copy(tlist);
        let mut slots: *mut pg_sys::List = std::ptr::null_mut();
        let mut plain: Vec<i16> = Vec::new();
        for i in 0..pg_sys::list_length(tlist) {
            let te = pg_sys::list_nth(tlist, i) as *mut pg_sys::TargetEntry;
            let expr = (*te).expr as *mut pg_sys::Node;
            let (what, kind, attnum) = if (*expr).type_ == pg_sys::NodeTag::T_Aggref {
                let (k, a) = agg_kind(expr as *mut pg_sys::Aggref, rti)
                    .expect("bidim: BidimAgg planned an aggregate it does not compute");
                (SLOT_AGG, k as i32, a)
            } else {
                let (k, a) = group_column(expr, rti)
                    .expect("bidim: BidimAgg planned a grouping it does not compute");
                if k == GROUP_VAR {
                    plain.push(a);
                }
                (SLOT_GROUP, k, a)
            };
            for v in [what, kind, attnum as i32] {
                slots = pg_sys::lappend_int(slots, v);
            }
        }
        // Under a key join, the key column is read to check it against the key set.
        let keyed = pg_sys::list_length(private) > 6;
        let mut filter_vars = quals;
        if keyed {
            let rte = *(*root).simple_rte_array.add(rti as usize);
            let relation = pg_sys::table_open((*rte).relid, pg_sys::NoLock as pg_sys::LOCKMODE);
            let cfg = super::config::config(relation);
            let desc = (*relation).rd_att;
            let att =
                &(*desc).attrs.as_slice((*desc).natts as usize)[(cfg.key_attnum - 1) as usize];
            let var = pg_sys::makeVar(
                rti as i32,
                cfg.key_attnum,
                att.atttypid,
                att.atttypmod,
                att.attcollation,
                0,
            );
            pg_sys::table_close(relation, pg_sys::NoLock as pg_sys::LOCKMODE);
            filter_vars = pg_sys::lappend(pg_sys::list_copy(quals), var as *mut std::ffi::c_void);
        }
        let vars = pg_sys::pull_var_clause(
            filter_vars as *mut pg_sys::Node,
            pg_sys::PVC_RECURSE_PLACEHOLDERS as i32,
        );
        for i in 0..pg_sys::list_length(vars) {
            let v = pg_sys::list_nth(vars, i) as *mut pg_sys::Var;
            if plain.contains(&(*v).varattno) {
                continue;
            }
            plain.push((*v).varattno);
            let te = pg_sys::makeTargetEntry(
                pg_sys::copyObjectImpl(v as *const std::ffi::c_void) as *mut pg_sys::Expr,
                (pg_sys::list_length(scan_tlist) + 1) as i16,
                std::ptr::null_mut(),
                true,
            );
            scan_tlist = pg_sys::lappend(scan_tlist, te as *mut std::ffi::c_void);
            for v in [SLOT_JUNK, 0, (*v).varattno as i32] {
                slots = pg_sys::lappend_int(slots, v);
            }
        }
        let cscan =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::CustomScan>()) as *mut pg_sys::CustomScan;
        (*cscan).scan.plan.type_ = pg_sys::NodeTag::T_CustomScan;
        (*cscan).scan.plan.targetlist = tlist;
        (*cscan).scan.plan.qual = quals;
        (*cscan).scan.scanrelid = rti;
        (*cscan).custom_scan_tlist = scan_tlist;
        // Conditions on columns cold batches keep min/max of skip batches: their
        // operands follow the bounds' in custom_exprs.
        let rte = *(*root).simple_rte_array.add(rti as usize);
        let relation = pg_sys::table_open((*rte).relid, pg_sys::NoLock as pg_sys::LOCKMODE);
        let (col_exprs, col_meta) = custom_scan::column_conditions(quals, rti, relation);
        pg_sys::table_close(relation, pg_sys::NoLock as pg_sys::LOCKMODE);
        (*cscan).custom_exprs = pg_sys::list_concat(pg_sys::list_copy(exprs), col_exprs);
        let mut cp = pg_sys::lappend(std::ptr::null_mut(), strategies as *mut std::ffi::c_void);
        cp = pg_sys::lappend(cp, slots as *mut std::ffi::c_void);
        cp = pg_sys::lappend(cp, classes as *mut std::ffi::c_void);
        cp = pg_sys::lappend(cp, col_meta as *mut std::ffi::c_void);
        cp = pg_sys::lappend(cp, pg_sys::list_nth(private, 5));
        if keyed {
            // (operator, element type, the inner plan's output column holding the keys)
            let child = pg_sys::list_nth(custom_plans, 0) as *mut pg_sys::Plan;
            let expr = pg_sys::list_nth(private, 7) as *mut pg_sys::Node;
            let mut column = 0;
            for i in 0..pg_sys::list_length((*child).targetlist) {
                let te = pg_sys::list_nth((*child).targetlist, i) as *mut pg_sys::TargetEntry;
                if pg_sys::equal(
                    (*te).expr as *const std::ffi::c_void,
                    expr as *const std::ffi::c_void,
                ) {
                    column = (*te).resno as i32;
                    break;
                }
            }
            assert!(
                column > 0,
                "bidim: the key join's inner plan does not return its keys"
            );
            let ops = pg_sys::list_nth(private, 6) as *mut pg_sys::List;
            let mut k = pg_sys::lappend_oid(std::ptr::null_mut(), pg_sys::list_nth_oid(ops, 0));
            k = pg_sys::lappend_oid(k, pg_sys::list_nth_oid(ops, 1));
            k = pg_sys::lappend_oid(k, pg_sys::Oid::from(column as u32));
            cp = pg_sys::lappend(cp, k as *mut std::ffi::c_void);
            (*cscan).custom_plans = custom_plans;
        }
        (*cscan).custom_private = cp;
        (*cscan).methods = std::ptr::addr_of!(super::agg_exec::SCAN_METHODS);
        cscan as *mut pg_sys::Plan
    }
}
