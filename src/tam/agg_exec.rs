//! BidimAgg execution: reads the chunks BidimScan's bounds keep (cold chunks a
//! decoded batch at a time, hot chunks row by row), checks the restrictions (time
//! against the evaluated bounds, the key once per batch, the rest row by row), adds
//! each row to its group's states ([`super::aggregate`]) and emits one row of partial
//! states per group. When the groups outgrow `work_mem` it emits them early and starts
//! over: the Finalize Aggregate above combines every partial row of a group.

use super::agg_plan::{
    GROUP_TRUNC, GROUP_TRUNC_TZ, GROUP_VAR, NAME, QUAL_KEY, QUAL_OTHER, QUAL_TIME, SLOT_AGG,
    SLOT_GROUP,
};
use super::aggregate::{AggError, AggKind, GroupKey, Groups, State, MAX_GROUP_COLUMNS};
use super::chunk_scan::{self, Block};
use super::cold_scan;
use super::config;
use super::custom_scan::{self, BidimScanState};
use super::delegate::heap_call;
use crate::error::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;

pub(super) static mut SCAN_METHODS: pg_sys::CustomScanMethods = pg_sys::CustomScanMethods {
    CustomName: NAME.as_ptr(),
    CreateCustomScanState: Some(create_state),
};

static mut EXEC_METHODS: pg_sys::CustomExecMethods = pg_sys::CustomExecMethods {
    CustomName: NAME.as_ptr(),
    BeginCustomScan: Some(begin),
    ExecCustomScan: Some(exec),
    EndCustomScan: Some(end),
    ReScanCustomScan: Some(rescan),
    MarkPosCustomScan: None,
    RestrPosCustomScan: None,
    EstimateDSMCustomScan: Some(custom_scan::estimate_dsm),
    InitializeDSMCustomScan: Some(custom_scan::initialize_dsm),
    ReInitializeDSMCustomScan: Some(custom_scan::reinitialize_dsm),
    InitializeWorkerCustomScan: Some(custom_scan::initialize_worker),
    ShutdownCustomScan: None,
    ExplainCustomScan: Some(explain),
};

/// Registers the plan node's methods (for plan copies sent to parallel workers).
pub fn install() {
    // SAFETY: registering a static method table once per process.
    unsafe { pg_sys::RegisterCustomScanMethods(std::ptr::addr_of!(SCAN_METHODS)) };
}

/// Executor state: BidimScan's (bounds, chunk choice, the chunk scan), then ours.
#[repr(C)]
struct BidimAggState {
    scan: BidimScanState,
    exec: *mut AggExec,
}

/// How a grouping expression is computed.
enum Trunc {
    /// The column itself.
    None,
    /// `date_trunc` to a fixed unit in a zone of fixed offset ([`super::aggregate::trunc_fixed`]).
    Native { width: i64, offset: i64 },
    /// `date_trunc` called for each row (other units, zones with daylight saving time).
    Call {
        flinfo: *mut pg_sys::FmgrInfo,
        unit: pg_sys::Datum,
    },
}

impl Trunc {
    /// The grouping value of a non-NULL column value (raw datum bits).
    #[inline]
    fn apply(&self, raw: u64) -> u64 {
        match *self {
            Trunc::None => raw,
            Trunc::Native { width, offset } => {
                super::aggregate::trunc_fixed(raw as i64, width, offset) as u64
            }
            // SAFETY: date_trunc(text, timestamp[tz]) called through its own fmgr info
            // with non-NULL arguments.
            Trunc::Call { flinfo, unit } => unsafe {
                pg_sys::FunctionCall2Coll(
                    flinfo,
                    pg_sys::InvalidOid,
                    unit,
                    pg_sys::Datum::from(raw as usize),
                )
                .value() as u64
            },
        }
    }
}

struct GroupCol {
    attnum: i16,
    pos: usize,
    trunc: Trunc,
}

struct AggCol {
    kind: AggKind,
    attnum: i16,
    pos: usize,
}

struct AggExec {
    groups: Groups,
    gcols: Vec<GroupCol>,
    aggs: Vec<AggCol>,
    /// Scan tuple positions filled with a column's value to run the restrictions.
    junk: Vec<(usize, i16)>,
    time_att: i16,
    check_time: bool,
    time_quals: *mut pg_sys::ExprState,
    key_quals: *mut pg_sys::ExprState,
    other_quals: *mut pg_sys::ExprState,
    /// Hot rows are read into this slot (the table's row type).
    row_slot: *mut pg_sys::TupleTableSlot,
    budget: usize,
    input_done: bool,
    emitting: bool,
    emit_pos: usize,
    rows_hot: i64,
    rows_cold: i64,
    partial_rows: i64,
    flushes: i64,
    /// Per-batch scratch: rows that pass, and their groups.
    sel: Vec<u32>,
    gids: Vec<u32>,
    /// Groups emitted in time order: 1 ascending, -1 descending, 0 in any order.
    order: i32,
    /// Time order under a `LIMIT` that takes the first groups (offset included): how
    /// many (0: no limit). Once a batch shows that many groups, rows of later groups
    /// cannot reach the output and are not added ([`AggExec::limit_rows`]).
    limit: usize,
    /// The group the limit stops at, once known (its key: a time bucket).
    cut: Option<i64>,
    /// Rows of decoded batches left out by the cut.
    rows_cut: i64,
    /// The columns a batch decodes (one flag per table column).
    needed: Vec<bool>,
    /// The last of those (a hot row is deformed up to it), at least 1.
    last_needed: i32,
    /// Hot rows gathered column by column, added a batch at a time; `None` when a
    /// column read is passed by reference (a hot row's values live only while its
    /// buffer is pinned: such rows are added one at a time).
    hot: Option<HotRows>,
    /// Time order: the cold batches to read, and the complete groups to emit.
    ordered: Option<OrderedInput>,
    ready: std::collections::VecDeque<(GroupKey, Vec<State>)>,
    /// Under a key join: the inner plan and the keys it returned.
    keys: Option<KeySet>,
}

/// Rows a hot batch gathers before they are added (as a cold batch's are).
const HOT_BATCH: usize = 256;

/// Hot rows gathered for one [`AggExec::add_rows`] call: column-major, column
/// `attnum`'s rows at `(attnum - 1) * HOT_BATCH ..`, for the columns up to
/// `last_needed`.
struct HotRows {
    /// The columns copied (0-based), all by value.
    atts: Vec<usize>,
    values: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
    n: usize,
}

/// The keys a key join's inner plan returns (integers), checked once per cold batch
/// and per hot row, and handed to the scan as `key = ANY (array)` for pruning.
struct KeySet {
    child: *mut pg_sys::PlanState,
    opno: pg_sys::Oid,
    elemtype: pg_sys::Oid,
    /// The inner plan's output column holding the keys.
    column: i32,
    key_att: i16,
    loaded: bool,
    set: std::collections::HashSet<i64>,
}

/// What a time-ordered BidimAgg reads as one step.
#[derive(Clone, Copy)]
enum Unit {
    /// A cold batch: its chunk (in `chunks`) and its batch row's TID.
    Batch(usize, pg_sys::ItemPointerData),
    /// A block range of a sealed chunk with a block-range time map: the chunk (in
    /// `mapped`), first block and blocks.
    Blocks(usize, u32, u32),
}

/// The cold batches and mapped block ranges of a time-ordered BidimAgg, in reading
/// order: newest last time first (descending), or oldest first time first
/// (ascending).
struct OrderedInput {
    /// (the unit's time bound in reading order, the unit)
    batches: Vec<(i64, Unit)>,
    pos: usize,
    /// Per cold chunk: its relation and a scan decoding its batches by TID.
    chunks: Vec<(pg_sys::Relation, *mut cold_scan::ColdScan)>,
    /// Per mapped sealed chunk: its relation and heap's scan of it (one block range at
    /// a time).
    mapped: Vec<(pg_sys::Relation, pg_sys::TableScanDesc)>,
}

#[pg_guard]
unsafe extern "C-unwind" fn create_state(_cscan: *mut pg_sys::CustomScan) -> *mut pg_sys::Node {
    // SAFETY: a zeroed, palloc'd node whose head is a CustomScanState.
    unsafe {
        let st = pg_sys::palloc0(std::mem::size_of::<BidimAggState>()) as *mut BidimAggState;
        (*st).scan.css.ss.ps.type_ = pg_sys::NodeTag::T_CustomScanState;
        (*st).scan.css.methods = std::ptr::addr_of!(EXEC_METHODS);
        st as *mut pg_sys::Node
    }
}

/// The quals of `quals` whose class is `class`, compiled for `ps`.
unsafe fn quals_of(
    quals: *mut pg_sys::List,
    classes: *mut pg_sys::List,
    class: i32,
    ps: *mut pg_sys::PlanState,
) -> *mut pg_sys::ExprState {
    // SAFETY: parallel lists of the plan; compiled in the executor's context.
    unsafe {
        let mut l: *mut pg_sys::List = std::ptr::null_mut();
        for i in 0..pg_sys::list_length(quals) {
            if pg_sys::list_nth_int(classes, i) == class {
                l = pg_sys::lappend(l, pg_sys::list_nth(quals, i));
            }
        }
        if l.is_null() {
            std::ptr::null_mut()
        } else {
            pg_sys::ExecInitQual(l, ps)
        }
    }
}

/// Microseconds in a `date_trunc` unit BidimAgg truncates to by arithmetic.
pub(super) fn unit_width(unit: pg_sys::Datum) -> Option<i64> {
    // SAFETY: a non-NULL text constant; lowercased and looked up as date_trunc does.
    unsafe {
        let t = pg_sys::pg_detoast_datum_packed(unit.cast_mut_ptr());
        let low = pg_sys::downcase_truncate_identifier(
            pgrx::varlena::vardata_any(t) as *const std::ffi::c_char,
            pgrx::varlena::varsize_any_exhdr(t) as i32,
            false,
        );
        let mut val = 0;
        let kind = pg_sys::DecodeUnits(0, low, &mut val);
        if kind != pg_sys::UNITS as i32 {
            return None;
        }
        match val as u32 {
            pg_sys::DTK_MICROSEC => Some(1),
            pg_sys::DTK_MILLISEC => Some(1_000),
            pg_sys::DTK_SECOND => Some(1_000_000),
            pg_sys::DTK_MINUTE => Some(60_000_000),
            pg_sys::DTK_HOUR => Some(3_600_000_000),
            pg_sys::DTK_DAY => Some(86_400_000_000),
            _ => None,
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn begin(
    node: *mut pg_sys::CustomScanState,
    estate: *mut pg_sys::EState,
    eflags: i32,
) {
    // SAFETY: node is our BidimAggState; its plan is the CustomScan plan_agg_path made.
    unsafe {
        let st = node as *mut BidimAggState;
        let cscan = (*node).ss.ps.plan as *mut pg_sys::CustomScan;
        let ps = &mut (*node).ss.ps as *mut pg_sys::PlanState;
        let scan = &mut (*st).scan;
        // custom_exprs: the bounds' operands, then the column conditions'.
        scan.strategies = pg_sys::list_nth((*cscan).custom_private, 0) as *mut pg_sys::List;
        let nbounds = pg_sys::list_length(scan.strategies) / 4;
        let all = (*cscan).custom_exprs;
        let bounds = pg_sys::list_copy_head(all, nbounds);
        let cols = pg_sys::list_copy_tail(all, nbounds);
        scan.exprs = super::custom_scan::init_once_exprs(bounds, ps);
        scan.col_exprs = super::custom_scan::init_once_exprs(cols, ps);
        scan.col_meta = pg_sys::list_nth((*cscan).custom_private, 3) as *mut pg_sys::List;
        scan.order = 0;
        scan.bounds_cxt = pg_sys::AllocSetContextCreateInternal(
            pg_sys::CurrentMemoryContext,
            c"BidimAgg bounds".as_ptr(),
            0,
            8 * 1024,
            8 * 1024 * 1024,
        );
        // The filter runs here, row by row or batch by batch, never on emitted rows.
        (*node).ss.ps.qual = std::ptr::null_mut();
        let slots = pg_sys::list_nth((*cscan).custom_private, 1) as *mut pg_sys::List;
        let classes = pg_sys::list_nth((*cscan).custom_private, 2) as *mut pg_sys::List;
        let quals = (*cscan).scan.plan.qual;
        let rel = (*node).ss.ss_currentRelation;
        let cfg = config::config(rel);
        let mut kinds = Vec::new();
        let mut gcols = Vec::new();
        let mut aggs = Vec::new();
        let mut junk = Vec::new();
        for pos in 0..(pg_sys::list_length(slots) / 3) as usize {
            let what = pg_sys::list_nth_int(slots, 3 * pos as i32);
            let kind = pg_sys::list_nth_int(slots, 3 * pos as i32 + 1);
            let attnum = pg_sys::list_nth_int(slots, 3 * pos as i32 + 2) as i16;
            if what == SLOT_AGG {
                let kind = AggKind::from_i32(kind).expect("bidim: unknown BidimAgg aggregate");
                kinds.push(kind);
                aggs.push(AggCol { kind, attnum, pos });
            } else if what == SLOT_GROUP {
                let trunc = if kind == GROUP_VAR {
                    Trunc::None
                } else {
                    let te = pg_sys::list_nth((*cscan).custom_scan_tlist, pos as i32)
                        as *mut pg_sys::TargetEntry;
                    let f = (*te).expr as *mut pg_sys::FuncExpr;
                    let unit = (*(pg_sys::list_nth((*f).args, 0) as *mut pg_sys::Const)).constvalue;
                    let mut gmtoff: std::ffi::c_long = 0;
                    let fixed = kind == GROUP_TRUNC
                        || (kind == GROUP_TRUNC_TZ
                            && pg_sys::pg_get_timezone_offset(
                                pg_sys::session_timezone,
                                &mut gmtoff,
                            ));
                    match unit_width(unit) {
                        Some(width) if fixed => Trunc::Native {
                            width,
                            offset: gmtoff as i64 * 1_000_000,
                        },
                        _ => {
                            let flinfo = pg_sys::palloc0(std::mem::size_of::<pg_sys::FmgrInfo>())
                                as *mut pg_sys::FmgrInfo;
                            pg_sys::fmgr_info((*f).funcid, flinfo);
                            Trunc::Call { flinfo, unit }
                        }
                    }
                };
                gcols.push(GroupCol { attnum, pos, trunc });
            } else {
                junk.push((pos, attnum));
            }
        }
        assert!(
            gcols.len() <= MAX_GROUP_COLUMNS,
            "bidim: too many BidimAgg groups"
        );
        let check_time = (0..pg_sys::list_length(classes))
            .any(|i| pg_sys::list_nth_int(classes, i) == QUAL_TIME);
        // (order, and the limit when it has one)
        let order = pg_sys::list_nth((*cscan).custom_private, 4) as *mut pg_sys::List;
        let exec = AggExec {
            groups: Groups::new(kinds),
            gcols,
            aggs,
            junk,
            time_att: cfg.time_attnum,
            check_time,
            time_quals: quals_of(quals, classes, QUAL_TIME, ps),
            key_quals: quals_of(quals, classes, QUAL_KEY, ps),
            other_quals: quals_of(quals, classes, QUAL_OTHER, ps),
            row_slot: pg_sys::ExecAllocTableSlot(
                &mut (*estate).es_tupleTable,
                (*rel).rd_att,
                &pg_sys::TTSOpsBufferHeapTuple,
            ),
            budget: (pg_sys::work_mem as usize * 1024).max(64 * 1024),
            input_done: false,
            emitting: false,
            emit_pos: 0,
            rows_hot: 0,
            rows_cold: 0,
            partial_rows: 0,
            flushes: 0,
            sel: Vec::new(),
            gids: Vec::new(),
            order: pg_sys::list_nth_int(order, 0),
            limit: if pg_sys::list_length(order) > 1 {
                pg_sys::list_nth_int(order, 1).max(0) as usize
            } else {
                0
            },
            cut: None,
            rows_cut: 0,
            needed: Vec::new(),
            last_needed: 1,
            hot: None,
            ordered: None,
            ready: Default::default(),
            keys: None,
        };
        let mut exec = exec;
        if pg_sys::list_length((*cscan).custom_private) > 5 {
            let k = pg_sys::list_nth((*cscan).custom_private, 5) as *mut pg_sys::List;
            let child = pg_sys::ExecInitNode(
                pg_sys::list_nth((*cscan).custom_plans, 0) as *mut pg_sys::Plan,
                estate,
                eflags,
            );
            (*node).custom_ps =
                pg_sys::lappend(std::ptr::null_mut(), child as *mut std::ffi::c_void);
            exec.keys = Some(KeySet {
                child,
                opno: pg_sys::list_nth_oid(k, 0),
                elemtype: pg_sys::list_nth_oid(k, 1),
                column: pg_sys::list_nth_oid(k, 2).to_u32() as i32,
                key_att: cfg.key_attnum,
                loaded: false,
                set: Default::default(),
            });
        }
        exec.needed = needed_columns(cscan, rel);
        // A hot row is deformed up to the last column read (the time and the key are
        // in the scan tuple when checked; counted anyway).
        exec.last_needed = exec
            .needed
            .iter()
            .rposition(|&n| n)
            .map_or(1, |i| i as i32 + 1)
            .max(i32::from(exec.time_att));
        if let Some(k) = &exec.keys {
            exec.last_needed = exec.last_needed.max(i32::from(k.key_att));
        }
        let mut read = exec.needed.clone();
        read[exec.time_att as usize - 1] = true;
        if let Some(k) = &exec.keys {
            read[k.key_att as usize - 1] = true;
        }
        exec.hot = hot_rows(rel, exec.last_needed as usize, &read);
        (*st).exec =
            pgrx::PgMemoryContexts::For((*estate).es_query_cxt).leak_and_drop_on_delete(exec);
        if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0
            && (*(*st).exec).keys.is_none()
            && pg_sys::pull_paramids((*cscan).custom_exprs as *mut pg_sys::Expr).is_null()
        {
            custom_scan::start(&mut (*st).scan);
        }
    }
}

/// The hot-row buffer of a BidimAgg that reads the table columns `read` marks (the
/// last of them: `last`), if every one of them is passed by value.
fn hot_rows(rel: pg_sys::Relation, last: usize, read: &[bool]) -> Option<HotRows> {
    // SAFETY: the relation's tuple descriptor, open for the executor's life.
    let attrs = unsafe {
        let desc = (*rel).rd_att;
        (*desc).attrs.as_slice((*desc).natts as usize)
    };
    let atts: Vec<usize> = (0..last.min(attrs.len()))
        .filter(|&i| read.get(i).copied().unwrap_or(true))
        .collect();
    atts.iter().all(|&i| attrs[i].attbyval).then(|| HotRows {
        atts,
        values: vec![pg_sys::Datum::from(0usize); last * HOT_BATCH],
        nulls: vec![true; last * HOT_BATCH],
        n: 0,
    })
}

/// A row's values: the table's columns at `values[(attnum - 1) * stride]` (column-major
/// batch arrays: `stride` is the batch's row count; one row of a slot: 1).
#[derive(Clone, Copy)]
struct Row {
    values: *const pg_sys::Datum,
    nulls: *const bool,
    stride: usize,
}

impl Row {
    #[inline]
    fn get(self, attnum: i16) -> (u64, bool) {
        // SAFETY: attnum is a column of the table; the arrays hold every column.
        unsafe {
            let i = (attnum as usize - 1) * self.stride;
            ((*self.values.add(i)).value() as u64, *self.nulls.add(i))
        }
    }
}

fn agg_error(e: AggError) -> ! {
    match e {
        AggError::FloatOverflow => raise(
            PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            "value out of range: overflow",
            None,
        ),
        AggError::IntOverflow => raise(
            PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            "bigint out of range",
            None,
        ),
        AggError::Sketch(e) => crate::sketch::sql::fail(e),
    }
}

impl AggExec {
    /// The group key of `row`.
    #[inline]
    fn key_of(&self, row: Row) -> GroupKey {
        let mut key = GroupKey::default();
        for (i, g) in self.gcols.iter().enumerate() {
            let (raw, null) = row.get(g.attnum);
            if null {
                key.nulls |= 1 << i;
            } else {
                key.vals[i] = g.trunc.apply(raw);
            }
        }
        key
    }

    /// Puts `row` (and its group key) into the scan tuple, to run restrictions on it.
    fn fill(&self, slot: *mut pg_sys::TupleTableSlot, row: Row, key: &GroupKey) {
        // SAFETY: the scan slot has one entry per scan tuple position.
        unsafe {
            pg_sys::ExecClearTuple(slot);
            let natts = (*(*slot).tts_tupleDescriptor).natts as usize;
            let values = std::slice::from_raw_parts_mut((*slot).tts_values, natts);
            let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, natts);
            nulls.fill(true);
            for &(pos, attnum) in &self.junk {
                let (raw, null) = row.get(attnum);
                values[pos] = pg_sys::Datum::from(raw as usize);
                nulls[pos] = null;
            }
            for (i, g) in self.gcols.iter().enumerate() {
                values[g.pos] = pg_sys::Datum::from(key.vals[i] as usize);
                nulls[g.pos] = key.nulls & (1 << i) != 0;
            }
            pg_sys::ExecStoreVirtualTuple(slot);
        }
    }

    /// Whether `quals` (may be null) pass for `row`.
    fn passes(
        &self,
        quals: *mut pg_sys::ExprState,
        econtext: *mut pg_sys::ExprContext,
        slot: *mut pg_sys::TupleTableSlot,
        row: Row,
        key: &GroupKey,
    ) -> bool {
        if quals.is_null() {
            return true;
        }
        self.fill(slot, row, key);
        // SAFETY: the quals were compiled for the scan tuple; evaluated in the
        // per-tuple context, which is reset here.
        unsafe {
            (*econtext).ecxt_scantuple = slot;
            pg_sys::ExecQualAndReset(quals, econtext)
        }
    }

    /// Adds the `nrows` rows of column-major arrays `values`/`nulls` (column i's rows
    /// at `i * stride ..`; one row of a slot: its arrays, stride 1) to their groups;
    /// `one_key`: the rows are a cold batch (one key: its restrictions run on the
    /// first row only).
    #[allow(clippy::too_many_arguments)]
    fn add_rows(
        &mut self,
        econtext: *mut pg_sys::ExprContext,
        slot: *mut pg_sys::TupleTableSlot,
        values: *const pg_sys::Datum,
        nulls: *const bool,
        (nrows, stride): (usize, usize),
        one_key: bool,
        bounds: (i64, i64),
    ) {
        let row = |r: usize| Row {
            // SAFETY: r < nrows <= stride; the arrays hold stride x columns entries.
            values: unsafe { values.add(r) },
            nulls: unsafe { nulls.add(r) },
            stride,
        };
        if nrows == 0 {
            return;
        }
        let key_per_row = !self.key_quals.is_null() && !one_key;
        if let Some(k) = &self.keys {
            if one_key {
                let (v, null) = row(0).get(k.key_att);
                if null || !k.set.contains(&(v as i64)) {
                    return;
                }
            }
        }
        let keyset_per_row = self.keys.is_some() && !one_key;
        if one_key && !self.key_quals.is_null() {
            let first = row(0);
            let k = self.key_of(first);
            if !self.passes(self.key_quals, econtext, slot, first, &k) {
                return;
            }
        }
        let (lo, hi) = bounds;
        let mut sel = std::mem::take(&mut self.sel);
        let mut gids = std::mem::take(&mut self.gids);
        sel.clear();
        gids.clear();
        let plain =
            !self.check_time && !key_per_row && !keyset_per_row && self.other_quals.is_null();
        if plain && self.gcols.is_empty() {
            // every row, one group
            sel.extend(0..nrows as u32);
            gids.push(self.groups.group(&GroupKey::default()) as u32);
        } else {
            for r in 0..nrows {
                let rw = row(r);
                if self.check_time {
                    let (t, null) = rw.get(self.time_att);
                    let t = t as i64;
                    if null {
                        continue;
                    }
                    if t == i64::MIN || t == i64::MAX {
                        // infinities: the time restrictions themselves decide
                        let k = self.key_of(rw);
                        if !self.passes(self.time_quals, econtext, slot, rw, &k) {
                            continue;
                        }
                    } else if t < lo || t >= hi {
                        continue;
                    }
                }
                if keyset_per_row {
                    let k = self.keys.as_ref().expect("key set");
                    let (v, null) = rw.get(k.key_att);
                    if null || !k.set.contains(&(v as i64)) {
                        continue;
                    }
                }
                let key = self.key_of(rw);
                if key_per_row && !self.passes(self.key_quals, econtext, slot, rw, &key) {
                    continue;
                }
                if !self.passes(self.other_quals, econtext, slot, rw, &key) {
                    continue;
                }
                sel.push(r as u32);
                gids.push(self.groups.group(&key) as u32);
            }
        }
        if !sel.is_empty() {
            for (i, a) in self.aggs.iter().enumerate() {
                let att = a.attnum;
                let res = if a.kind.has_argument() {
                    self.groups.add_column(i, &sel, &gids, |r| row(r).get(att))
                } else {
                    self.groups.add_column(i, &sel, &gids, |_| (0, false))
                };
                if let Err(e) = res {
                    agg_error(e);
                }
            }
        }
        self.sel = sel;
        self.gids = gids;
    }
}

/// The table columns BidimAgg reads: those its scan tuple names.
fn needed_columns(cscan: *mut pg_sys::CustomScan, rel: pg_sys::Relation) -> Vec<bool> {
    // SAFETY: the plan's scan tuple list; its Vars are of the scanned relation.
    unsafe {
        let mut bms: *mut pg_sys::Bitmapset = std::ptr::null_mut();
        pg_sys::pull_varattnos(
            (*cscan).custom_scan_tlist as *mut pg_sys::Node,
            (*cscan).scan.scanrelid,
            &mut bms,
        );
        let off = pg_sys::FirstLowInvalidHeapAttributeNumber;
        (1..=(*(*rel).rd_att).natts)
            .map(|a| pg_sys::bms_is_member(a - off, bms))
            .collect()
    }
}

impl AggExec {
    /// The group key a time `t` falls in (time-ordered mode: one grouping column).
    fn bucket_of(&self, t: i64) -> i64 {
        self.gcols[0].trunc.apply(t as u64) as i64
    }

    /// Adds the hot row in `row_slot` to its group.
    fn add_hot_row(
        &mut self,
        econtext: *mut pg_sys::ExprContext,
        slot: *mut pg_sys::TupleTableSlot,
        bounds: (i64, i64),
    ) {
        // SAFETY: row_slot holds a row of the table, deformed here up to the last
        // column BidimAgg reads (the others are never looked at).
        let (v, n) = unsafe {
            pg_sys::slot_getsomeattrs(self.row_slot, self.last_needed);
            ((*self.row_slot).tts_values, (*self.row_slot).tts_isnull)
        };
        self.rows_hot += 1;
        let Some(h) = self.hot.as_mut() else {
            self.add_rows(econtext, slot, v, n, (1, 1), false, bounds);
            return;
        };
        for &i in &h.atts {
            // SAFETY: the slot's arrays hold its deformed columns, i among them; the
            // values are by value (hot_rows), so they outlive the buffer pin.
            unsafe {
                h.values[i * HOT_BATCH + h.n] = *v.add(i);
                h.nulls[i * HOT_BATCH + h.n] = *n.add(i);
            }
        }
        h.n += 1;
        if h.n == HOT_BATCH {
            self.flush_hot(econtext, slot, bounds);
        }
    }

    /// Adds the hot rows gathered so far to their groups.
    fn flush_hot(
        &mut self,
        econtext: *mut pg_sys::ExprContext,
        slot: *mut pg_sys::TupleTableSlot,
        bounds: (i64, i64),
    ) {
        let Some(mut h) = self.hot.take() else {
            return;
        };
        if h.n > 0 {
            let (v, n) = (h.values.as_ptr(), h.nulls.as_ptr());
            self.add_rows(econtext, slot, v, n, (h.n, HOT_BATCH), false, bounds);
            h.n = 0;
        }
        self.hot = Some(h);
    }

    /// Adds the decoded batch of `cs` to its groups.
    fn add_batch(
        &mut self,
        econtext: *mut pg_sys::ExprContext,
        slot: *mut pg_sys::TupleTableSlot,
        cs: *mut cold_scan::ColdScan,
        bounds: (i64, i64),
    ) {
        let (v, n, rows, decoded) = cold_scan::batch_values(cs);
        let rows = rows as usize;
        let (from, to) = self.limit_rows(v, n, rows, bounds);
        // rows past `decoded` lie past the window and have only their time decoded
        let decoded = decoded as usize;
        let to = to.min(decoded);
        let from = from.min(to);
        self.rows_cold += decoded as i64;
        self.rows_cut += (decoded - (to - from)) as i64;
        // SAFETY: from <= to <= rows, and every column's rows start `rows` apart: row
        // `from` of each column is at offset `from` of its start.
        let (v, n) = unsafe { (v.add(from), n.add(from)) };
        self.add_rows(econtext, slot, v, n, (to - from, rows), true, bounds);
    }

    /// The rows `from..to` of a decoded cold batch (sorted by time) that can reach the
    /// output of a time-ordered BidimAgg under a limit of n groups. A batch whose rows
    /// all count (no restriction beyond the time window) and that holds n groups
    /// within the window sets the cut at its n-th group in the output's order, if that
    /// is nearer than the cut so far: n groups up to it exist, so the output's first n
    /// are all up to it and later groups are never read. Rows of earlier batches past
    /// the cut may already be in groups; those groups come after the first n.
    fn limit_rows(
        &mut self,
        values: *const pg_sys::Datum,
        nulls: *const bool,
        rows: usize,
        (lo, hi): (i64, i64),
    ) -> (usize, usize) {
        let t = self.time_att as usize - 1;
        if self.limit == 0 || self.order == 0 || !self.needed[t] || rows == 0 {
            return (0, rows);
        }
        // SAFETY: the batch's arrays hold `rows` entries per decoded column, the time
        // column among them (needed).
        let (time, null) = unsafe {
            (
                std::slice::from_raw_parts(values.add(t * rows), rows),
                std::slice::from_raw_parts(nulls.add(t * rows), rows),
            )
        };
        if null.iter().any(|&n| n) {
            return (0, rows);
        }
        let ts = |d: &pg_sys::Datum| d.value() as i64;
        let trunc = &self.gcols[0].trunc;
        let bucket = |d: &pg_sys::Datum| trunc.apply(d.value() as u64) as i64;
        let desc = self.order < 0;
        if self.other_quals.is_null() && self.key_quals.is_null() && self.keys.is_none() {
            // The rows surely in the window (finite times inside it) are a run.
            let a = time.partition_point(|d| ts(d) == i64::MIN || ts(d) < lo);
            let b = a + time[a..].partition_point(|d| ts(d) != i64::MAX && ts(d) < hi);
            // The n-th bucket from the output's first end of that run (n at most 64).
            let mut run = &time[a..b];
            let mut nth = None;
            for k in 1..=self.limit.min(64) {
                let Some(d) = (if desc { run.last() } else { run.first() }) else {
                    break;
                };
                let g = bucket(d);
                if k == self.limit {
                    nth = Some(g);
                    break;
                }
                run = if desc {
                    &run[..run.partition_point(|d| bucket(d) < g)]
                } else {
                    &run[run.partition_point(|d| bucket(d) <= g)..]
                };
            }
            if let Some(g) = nth {
                self.cut = Some(match self.cut {
                    Some(c) if desc => c.max(g),
                    Some(c) => c.min(g),
                    None => g,
                });
            }
        }
        match self.cut {
            None => (0, rows),
            Some(c) if desc => (time.partition_point(|d| bucket(d) < c), rows),
            Some(c) => (0, time.partition_point(|d| bucket(d) <= c)),
        }
    }

    /// Moves the groups no unread row can fall in, sorted in the scan's order, to
    /// `ready`: all of them when `next` (the next batch's time bound) is `None`.
    fn release_complete(&mut self, next: Option<i64>) {
        let desc = self.order < 0;
        let mut done = match next {
            None => self.groups.drain_where(|_| true),
            Some(t) => {
                let edge = self.bucket_of(t);
                self.groups.drain_where(|k| {
                    let b = k.vals[0] as i64;
                    if desc {
                        b > edge
                    } else {
                        b < edge
                    }
                })
            }
        };
        done.sort_by_key(|(k, _)| k.vals[0] as i64);
        if desc {
            done.reverse();
        }
        self.ready.extend(done);
    }
}

/// Time-ordered BidimAgg, first step: every hot row into the groups, then the list of
/// cold batches in reading order.
fn begin_ordered(st: *mut BidimAggState) {
    // SAFETY: st is our executor node, started; relations are opened and kept until
    // end_ordered.
    unsafe {
        let a = &mut *(*st).exec;
        let scan = (*st).scan.scan;
        let econtext = (*st).scan.css.ss.ps.ps_ExprContext;
        let slot = (*st).scan.css.ss.ss_ScanTupleSlot;
        let mut input = OrderedInput {
            batches: Vec::new(),
            pos: 0,
            chunks: Vec::new(),
            mapped: Vec::new(),
        };
        if (*st).scan.empty || scan.is_null() {
            a.ordered = Some(input);
            return;
        }
        let bounds = ((*st).scan.time_lo, (*st).scan.time_hi);
        chunk_scan::skip_cold(scan);
        chunk_scan::skip_mapped(scan);
        loop {
            match chunk_scan::scan_next_block(scan, a.row_slot) {
                Block::End => break,
                Block::Row => a.add_hot_row(econtext, slot, bounds),
                Block::Batch(_) => unreachable!("bidim: a cold batch in a scan that skips them"),
            }
            pgrx::check_for_interrupts!();
        }
        a.flush_hot(econtext, slot, bounds);
        let facade = (*st).scan.css.ss.ss_currentRelation;
        let snapshot = (*(*st).scan.css.ss.ps.state).es_snapshot;
        for (idx, (ordinal, relid)) in chunk_scan::chunk_list(scan).into_iter().enumerate() {
            let rel = pg_sys::try_table_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
            if rel.is_null() {
                raise(
                    PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
                    "bidim: a chunk of the table was dropped while it was being read",
                    None,
                );
            }
            let map = chunk_scan::restricted(scan, idx)
                .then(|| custom_scan::block_map_of(st as *mut BidimScanState, ordinal))
                .flatten();
            if let Some(map) = map {
                // Its block ranges, by their times; blocks past the mapped ones (none
                // are expected) first.
                let hs = super::delegate::heap_scan_of(rel, snapshot, 0);
                let i = input.mapped.len();
                input.mapped.push((rel, hs));
                for (start, count, first, last) in map.ranges_for(bounds.0, bounds.1) {
                    let bound = if a.order < 0 { last } else { first };
                    input.batches.push((bound, Unit::Blocks(i, start, count)));
                }
                let nblocks =
                    pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM);
                if nblocks > map.blocks() {
                    let bound = if a.order < 0 { i64::MAX } else { i64::MIN };
                    let tail = Unit::Blocks(i, map.blocks(), nblocks - map.blocks());
                    input.batches.push((bound, tail));
                }
                continue;
            }
            if !super::cold::is_cold(rel) {
                super::delegate::release_chunk(rel, std::ptr::null_mut());
                continue;
            }
            let cs = cold_scan::begin_for_fetch(rel, facade, ordinal);
            cold_scan::set_needed(cs, &a.needed);
            cold_scan::set_time_hi(cs, bounds.1);
            let i = input.chunks.len();
            input.chunks.push((rel, cs));
            for (tid, tmin, tmax) in cold_scan::batch_spans(rel, snapshot, bounds.0, bounds.1) {
                let bound = if a.order < 0 { tmax } else { tmin };
                input.batches.push((bound, Unit::Batch(i, tid)));
            }
        }
        if a.order < 0 {
            input.batches.sort_by_key(|b| std::cmp::Reverse(b.0));
        } else {
            input.batches.sort_by_key(|b| b.0);
        }
        a.ordered = Some(input);
    }
}

/// Time-ordered BidimAgg: reads batches until some groups are complete (or the input
/// ends); false at the end.
fn advance_ordered(st: *mut BidimAggState) -> bool {
    // SAFETY: st is our executor node; its ordered input was made by begin_ordered.
    unsafe {
        let a = &mut *(*st).exec;
        let econtext = (*st).scan.css.ss.ps.ps_ExprContext;
        let slot = (*st).scan.css.ss.ss_ScanTupleSlot;
        let snapshot = (*(*st).scan.css.ss.ps.state).es_snapshot;
        let bounds = ((*st).scan.time_lo, (*st).scan.time_hi);
        loop {
            let input = a.ordered.as_mut().expect("ordered input");
            if input.pos >= input.batches.len() {
                if a.groups.is_empty() {
                    return false;
                }
                a.release_complete(None);
                return true;
            }
            let (_, unit) = input.batches[input.pos];
            input.pos += 1;
            let next = input.batches.get(input.pos).map(|b| b.0);
            match unit {
                Unit::Batch(chunk, tid) => {
                    let cs = input.chunks[chunk].1;
                    if cold_scan::load_at(cs, snapshot, tid) {
                        a.add_batch(econtext, slot, cs, bounds);
                    }
                }
                Unit::Blocks(chunk, start, count) => {
                    let hs = input.mapped[chunk].1;
                    super::delegate::restart_heap_scan(hs);
                    pg_sys::heap_setscanlimits(hs, start, count);
                    while heap_call!(scan_getnextslot(
                        hs,
                        pg_sys::ScanDirection::ForwardScanDirection,
                        a.row_slot
                    )) {
                        a.add_hot_row(econtext, slot, bounds);
                    }
                    a.flush_hot(econtext, slot, bounds);
                }
            }
            pgrx::check_for_interrupts!();
            a.release_complete(next);
            if !a.ready.is_empty() {
                return true;
            }
        }
    }
}

/// Closes what the time-ordered input holds open.
fn end_ordered(a: &mut AggExec) {
    if let Some(input) = a.ordered.take() {
        for (rel, cs) in input.chunks {
            cold_scan::end(cs);
            super::delegate::release_chunk(rel, std::ptr::null_mut());
        }
        for (rel, hs) in input.mapped {
            heap_call!(scan_end(hs));
            super::delegate::release_chunk(rel, std::ptr::null_mut());
        }
    }
    a.ready.clear();
}

/// Under a key join, runs the inner plan (once per scan start) and hands its keys to
/// the scan as a key set.
fn load_keys(st: *mut BidimAggState) {
    // SAFETY: our node; the inner plan state was made by begin; the array is built in
    // the query's memory context (it lives as long as the scan's index keys).
    unsafe {
        let a = &mut *(*st).exec;
        let Some(k) = a.keys.as_mut() else {
            return;
        };
        if k.loaded {
            return;
        }
        k.set.clear();
        loop {
            let slot = pg_sys::ExecProcNode(k.child);
            if slot.is_null() || (*slot).tts_flags & pg_sys::TTS_FLAG_EMPTY as u16 != 0 {
                break;
            }
            let mut isnull = false;
            let d = pg_sys::slot_getattr(slot, k.column, &mut isnull);
            if !isnull {
                k.set.insert(d.value() as i64);
            }
            pgrx::check_for_interrupts!();
        }
        k.loaded = true;
        let (len, align) = match k.elemtype {
            t if t == pg_sys::INT2OID => (2, b's'),
            t if t == pg_sys::INT4OID => (4, b'i'),
            _ => (8, b'd'),
        };
        let mut elems: Vec<pg_sys::Datum> = k
            .set
            .iter()
            .map(|&v| pg_sys::Datum::from(v as usize))
            .collect();
        let estate = (*st).scan.css.ss.ps.state;
        let old = pg_sys::MemoryContextSwitchTo((*estate).es_query_cxt);
        let array = pg_sys::construct_array(
            elems.as_mut_ptr(),
            elems.len() as i32,
            k.elemtype,
            len,
            true,
            align as std::ffi::c_char,
        );
        pg_sys::MemoryContextSwitchTo(old);
        (*st).scan.extra_opno = k.opno;
        (*st).scan.extra_type = k.elemtype;
        (*st).scan.extra_array = pg_sys::Datum::from(array);
    }
}

/// Reads input until the groups outgrow the budget or the input ends.
fn consume(st: *mut BidimAggState) {
    // SAFETY: st is our executor node, begun and started.
    unsafe {
        let a = &mut *(*st).exec;
        let scan = (*st).scan.scan;
        let econtext = (*st).scan.css.ss.ps.ps_ExprContext;
        let slot = (*st).scan.css.ss.ss_ScanTupleSlot;
        if (*st).scan.empty || scan.is_null() {
            a.input_done = true;
            return;
        }
        let bounds = ((*st).scan.time_lo, (*st).scan.time_hi);
        loop {
            // Hot rows of a heap reader, a buffer at a time (by-value columns).
            let buffered = a.hot.as_mut().and_then(|h| {
                let buf = chunk_scan::RowBuffer {
                    atts: h.atts.as_ptr(),
                    natts: h.atts.len(),
                    values: h.values.as_mut_ptr(),
                    nulls: h.nulls.as_mut_ptr(),
                    stride: HOT_BATCH,
                };
                let n =
                    chunk_scan::heap_rows(scan, a.row_slot, a.last_needed, &buf, h.n, HOT_BATCH)?;
                h.n += n;
                Some((n, h.n == HOT_BATCH))
            });
            if let Some((n, full)) = buffered {
                a.rows_hot += n as i64;
                if full {
                    a.flush_hot(econtext, slot, bounds);
                }
            } else {
                match chunk_scan::scan_next_block(scan, a.row_slot) {
                    Block::End => {
                        a.flush_hot(econtext, slot, bounds);
                        a.input_done = true;
                        return;
                    }
                    Block::Row => a.add_hot_row(econtext, slot, bounds),
                    Block::Batch(cs) => {
                        // rows are added in the order they are read (ties of min and
                        // max resolve as the row-at-a-time Aggregate's)
                        a.flush_hot(econtext, slot, bounds);
                        a.add_batch(econtext, slot, cs, bounds);
                    }
                }
            }
            pgrx::check_for_interrupts!();
            if a.groups.bytes() > a.budget {
                a.flush_hot(econtext, slot, bounds);
                a.flushes += 1;
                return;
            }
        }
    }
}

/// The partial state datum of `s` (in the current memory context).
fn state_datum(kind: AggKind, s: &State) -> Option<pg_sys::Datum> {
    let f8 = |v: f64| pg_sys::Datum::from(v.to_bits() as usize);
    let i8d = |v: i64| pg_sys::Datum::from(v as usize);
    match s {
        State::Count(c) => Some(i8d(*c)),
        State::Float(v) => v.map(f8),
        State::Int(v) => v.map(i8d),
        State::Avg { n, sx, sxx } => Some(array(&[f8(*n), f8(*sx), f8(*sxx)], pg_sys::FLOAT8OID)),
        State::AvgInt { count, sum } => Some(array(&[i8d(*count), i8d(*sum)], pg_sys::INT8OID)),
        State::Sketch(sk) => {
            debug_assert_eq!(kind, AggKind::Sketch);
            sk.as_ref().map(|s| crate::sketch::sql::sketch_datum(s))
        }
    }
}

/// A one-dimensional array of 8-byte by-value elements of type `elem`.
fn array(elems: &[pg_sys::Datum], elem: pg_sys::Oid) -> pg_sys::Datum {
    // SAFETY: construct_array copies the datums into a new palloc'd array.
    unsafe {
        let mut v = elems.to_vec();
        let a = pg_sys::construct_array(
            v.as_mut_ptr(),
            v.len() as i32,
            elem,
            8,
            true,
            b'd' as std::ffi::c_char,
        );
        pg_sys::Datum::from(a)
    }
}

/// Stores a group's key and partial states in the scan slot and returns the node's
/// output row.
unsafe fn emit(
    node: *mut pg_sys::CustomScanState,
    a: &AggExec,
    key: &GroupKey,
    states: &[State],
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: our node; its scan slot has the plan's scan tuple descriptor; by-reference
    // states are built in the per-tuple context, reset before the next row.
    unsafe {
        let ps = &mut (*node).ss.ps;
        let econtext = ps.ps_ExprContext;
        let slot = (*node).ss.ss_ScanTupleSlot;
        pg_sys::ExecClearTuple(slot);
        let natts = (*(*slot).tts_tupleDescriptor).natts as usize;
        let values = std::slice::from_raw_parts_mut((*slot).tts_values, natts);
        let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, natts);
        nulls.fill(true);
        for (i, c) in a.gcols.iter().enumerate() {
            values[c.pos] = pg_sys::Datum::from(key.vals[i] as usize);
            nulls[c.pos] = key.nulls & (1 << i) != 0;
        }
        let old = pg_sys::MemoryContextSwitchTo((*econtext).ecxt_per_tuple_memory);
        for (i, c) in a.aggs.iter().enumerate() {
            if let Some(d) = state_datum(c.kind, &states[i]) {
                values[c.pos] = d;
                nulls[c.pos] = false;
            }
        }
        pg_sys::MemoryContextSwitchTo(old);
        pg_sys::ExecStoreVirtualTuple(slot);
        if ps.ps_ProjInfo.is_null() {
            return slot;
        }
        (*econtext).ecxt_scantuple = slot;
        pg_sys::ExecProject(ps.ps_ProjInfo)
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn exec(
    node: *mut pg_sys::CustomScanState,
) -> *mut pg_sys::TupleTableSlot {
    let st = node as *mut BidimAggState;
    // SAFETY: our node; its scan slot has the plan's scan tuple descriptor.
    unsafe {
        let econtext = (*node).ss.ps.ps_ExprContext;
        pg_sys::MemoryContextReset((*econtext).ecxt_per_tuple_memory);
        if !(*st).scan.started {
            load_keys(st);
            custom_scan::start(&mut (*st).scan);
        }
        let a = &mut *(*st).exec;
        if a.order != 0 {
            if a.ordered.is_none() {
                begin_ordered(st);
            }
            loop {
                if let Some((key, states)) = a.ready.pop_front() {
                    a.partial_rows += 1;
                    return emit(node, a, &key, &states);
                }
                if !advance_ordered(st) {
                    return std::ptr::null_mut();
                }
            }
        }
        loop {
            if a.emitting {
                if a.emit_pos < a.groups.len() {
                    let g = a.emit_pos;
                    a.emit_pos += 1;
                    a.partial_rows += 1;
                    let key = a.groups.keys[g];
                    return emit(node, a, &key, a.groups.states_of(g));
                }
                a.emitting = false;
                a.groups.clear();
            }
            if a.input_done {
                return std::ptr::null_mut();
            }
            consume(st);
            a.emitting = true;
            a.emit_pos = 0;
        }
    }
}

fn reset(st: *mut BidimAggState) {
    // SAFETY: our node; exec was set by begin.
    unsafe {
        let a = &mut *(*st).exec;
        end_ordered(a);
        a.groups.clear();
        if let Some(h) = a.hot.as_mut() {
            h.n = 0;
        }
        a.input_done = false;
        a.emitting = false;
        a.emit_pos = 0;
        a.cut = None;
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn end(node: *mut pg_sys::CustomScanState) {
    // SAFETY: our node; exec was set by begin.
    unsafe {
        let a = &mut *(*(node as *mut BidimAggState)).exec;
        end_ordered(a);
        if let Some(k) = a.keys.as_ref() {
            pg_sys::ExecEndNode(k.child);
        }
    }
    custom_scan::finish(node as *mut BidimScanState);
}

#[pg_guard]
unsafe extern "C-unwind" fn rescan(node: *mut pg_sys::CustomScanState) {
    // Parameters may have changed: bounds, keys and groups start over.
    custom_scan::stop(node as *mut BidimScanState);
    // SAFETY: our node, headed by a BidimScanState.
    unsafe { (*(node as *mut BidimScanState)).rescanned = true };
    reset(node as *mut BidimAggState);
    // SAFETY: our node; the inner plan state was made by begin.
    unsafe {
        if let Some(k) = (*(*(node as *mut BidimAggState)).exec).keys.as_mut() {
            k.loaded = false;
            pg_sys::ExecReScan(k.child);
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn explain(
    node: *mut pg_sys::CustomScanState,
    ancestors: *mut pg_sys::List,
    es: *mut pg_sys::ExplainState,
) {
    // SAFETY: our node; ExplainProperty* copy the strings.
    unsafe {
        custom_scan::explain_scan(node, ancestors, es);
        let st = node as *mut BidimAggState;
        let a = &*(*st).exec;
        let what = a
            .aggs
            .iter()
            .map(|c| format!("{:?}", c.kind))
            .collect::<Vec<_>>()
            .join(", ");
        let text = std::ffi::CString::new(format!(
            "{} by {} grouping column{}",
            what,
            a.gcols.len(),
            if a.gcols.len() == 1 { "" } else { "s" }
        ))
        .expect("no NUL");
        pg_sys::ExplainPropertyText(c"Batch aggregates".as_ptr(), text.as_ptr(), es);
        if let (true, Some(k)) = ((*es).analyze, a.keys.as_ref()) {
            pg_sys::ExplainPropertyInteger(
                c"Keys from the join".as_ptr(),
                std::ptr::null(),
                k.set.len() as i64,
                es,
            );
        }
        if a.order != 0 {
            let text = if a.order < 0 {
                c"newest batches first"
            } else {
                c"oldest batches first"
            };
            pg_sys::ExplainPropertyText(c"Group order".as_ptr(), text.as_ptr(), es);
            if let (true, Some(input)) = ((*es).analyze, a.ordered.as_ref()) {
                // (units read, units in the time range) of cold batches, block ranges
                let count = |blocks: bool, upto: usize| {
                    input.batches[..upto]
                        .iter()
                        .filter(|(_, u)| matches!(u, Unit::Blocks(..)) == blocks)
                        .count()
                };
                let all = input.batches.len();
                for (blocks, label) in [(false, c"Cold batches"), (true, c"Sealed block ranges")] {
                    let (read, total) = (count(blocks, input.pos), count(blocks, all));
                    // Each kind when the time range has some (cold batches also when
                    // it has nothing at all).
                    if total == 0 && (blocks || count(true, all) > 0) {
                        continue;
                    }
                    let verb = if blocks { "read" } else { "decoded" };
                    let text = std::ffi::CString::new(format!(
                        "{read} {verb} of {total} in the time range"
                    ))
                    .expect("no NUL");
                    pg_sys::ExplainPropertyText(label.as_ptr(), text.as_ptr(), es);
                }
            }
        }
        if (*es).analyze {
            let text = std::ffi::CString::new(format!(
                "{} from cold batches{}, {} hot; {} partial groups emitted{}",
                a.rows_cold - a.rows_cut,
                if a.rows_cut > 0 {
                    format!(" ({} more decoded, past the limit)", a.rows_cut)
                } else {
                    String::new()
                },
                a.rows_hot,
                a.partial_rows,
                if a.flushes > 0 {
                    format!(" ({} early, over work_mem)", a.flushes)
                } else {
                    String::new()
                }
            ))
            .expect("no NUL");
            pg_sys::ExplainPropertyText(c"Rows aggregated".as_ptr(), text.as_ptr(), es);
        }
    }
}
