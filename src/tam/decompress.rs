//! Changing cold rows. Before an UPDATE, DELETE, MERGE or SELECT ... FOR UPDATE/SHARE
//! on a bidim table with cold chunks starts, the batches whose rows it may change are
//! moved back into hot chunks of their cells, in its transaction (TimescaleDB's way
//! since 2.11). The statement then runs on heap rows: update chains, row locks,
//! triggers, RETURNING and EvalPlanQual behave exactly as on any other row.
//!
//! *Which batches*: for each scan of a target table in the plan, the key and time bounds
//! its filter implies (evaluated now: constants, stable expressions, parameters), then,
//! when the filter can run outside the plan (no subquery, no run-time parameter, no
//! volatile function), the filter itself on the batch's rows: a batch none of whose
//! rows passes stays cold. Every row the statement can reach passes its scan's filter,
//! so it is in a batch moved here. A MERGE, or a join that alone picks the rows, moves
//! every batch of the table.
//!
//! *Visibility*: batches are read under the statement's snapshot and taken (their batch
//! rows deleted: heap's row lock makes a batch one transaction's) at command id C, their
//! rows inserted at C through the table's insert path; then the command counter is
//! incremented and another pass runs under a new snapshot (in REPEATABLE READ the
//! transaction's, at the new command id), until a pass finds nothing to move; the
//! statement runs with that pass's snapshot. It sees the moved rows and not their
//! batches, the hot chunks they went to (routing may pick one another transaction made
//! after the first snapshot), and rows of chunks converted meanwhile (the next pass
//! moves their batches). A batch another transaction took after the statement's
//! snapshot is waited for; in READ COMMITTED its rows are then in that transaction's
//! hot chunks, which the next snapshot sees; in REPEATABLE READ and SERIALIZABLE it is
//! a serialization failure, as a concurrent update of a row is. A later pass reads only
//! cold chunks the passes before did not (those converted since): a cold chunk's
//! batches never change, they only go.

use super::cold_scan;
use super::config::{self, TableConfig};
use super::custom_scan::{restriction_of, Restriction};
use super::delegate::{close_chunk, heap_call, open_chunk, rel_name};
use super::directory::ChunkState;
use super::directory_io::{planning_chunks, read_chunks};
use super::prune::chunks_to_read;
use super::{handler, hot_chunk, route};
use crate::error::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;

static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;

/// Installs the executor-start hook. Called once per process from `_PG_init`.
pub fn install() {
    // SAFETY: chaining a hook once per process, on PostgreSQL's main thread.
    unsafe {
        PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_start(qd: *mut pg_sys::QueryDesc, eflags: i32) {
    let snapshot = if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 == 0 {
        make_changeable(qd)
    } else {
        std::ptr::null_mut()
    };
    // SAFETY: qd is the executor's query descriptor; the snapshot swapped in is a
    // registered copy that outlives the call (the executor registers it again for
    // itself), and the caller's is put back after.
    unsafe {
        let theirs = (*qd).snapshot;
        if !snapshot.is_null() {
            (*qd).snapshot = snapshot;
        }
        match PREV_EXECUTOR_START {
            Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(qd, eflags)),
            None => pg_sys::standard_ExecutorStart(qd, eflags),
        }
        if !snapshot.is_null() {
            (*qd).snapshot = theirs;
            pg_sys::UnregisterSnapshot(snapshot);
        }
    }
}

/// What a statement moved, and the cold chunks its passes read.
#[derive(Default)]
struct Moved {
    batches: i64,
    rows: i64,
    /// Cold chunks read by earlier passes: a cold chunk's batches never change (they
    /// only go), so a later pass reads only chunks converted since.
    read_before: Vec<pg_sys::Oid>,
    /// Cold chunks read by this pass.
    read_now: Vec<pg_sys::Oid>,
}

/// Moves the batches the statement `qd` may change to hot chunks; returns the snapshot
/// the statement must run with then (registered), or null when nothing moved and no
/// batch was taken by another transaction.
fn make_changeable(qd: *mut pg_sys::QueryDesc) -> pg_sys::Snapshot {
    // SAFETY: the plan and range table of the statement about to start; its relations
    // are locked (by planning or AcquireExecutorLocks).
    unsafe {
        let stmt = (*qd).plannedstmt;
        // A SELECT without row locks or a data-modifying WITH changes no row.
        if (*stmt).commandType == pg_sys::CmdType::CMD_SELECT
            && !(*stmt).hasModifyingCTE
            && (*stmt).rowMarks.is_null()
        {
            return std::ptr::null_mut();
        }
        if (*qd).snapshot.is_null() || pg_sys::XactReadOnly || pg_sys::RecoveryInProgress() {
            // (a read-only transaction gets PostgreSQL's own error for the statement)
            return std::ptr::null_mut();
        }
        let plan = PlanNodes::of(stmt);
        let mut tables: Vec<(u32, pg_sys::Oid)> = Vec::new();
        for &rti in &plan.targets {
            let rte =
                pg_sys::list_nth((*stmt).rtable, rti as i32 - 1) as *mut pg_sys::RangeTblEntry;
            if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION
                || (*rte).relkind != pg_sys::RELKIND_RELATION as std::ffi::c_char
                || tables.iter().any(|t| t.0 == rti)
            {
                continue;
            }
            let rel = pg_sys::table_open((*rte).relid, pg_sys::NoLock as pg_sys::LOCKMODE);
            let ours = handler::is_bidim(rel);
            pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
            if ours && planning_chunks((*rte).relid).cold > 0 {
                tables.push((rti, (*rte).relid));
            }
        }
        if tables.is_empty() {
            return std::ptr::null_mut();
        }
        // Nothing moves for a statement its user may not run (the executor checks
        // again, as it always does).
        pg_sys::ExecCheckRTPerms((*stmt).rtable, true);
        // Passes until one finds nothing to move: each after the first runs under a new
        // snapshot, which sees what the passes before moved (and the hot chunks their
        // rows went to, maybe made by another transaction after the snapshot before),
        // the rows of batches other transactions took meanwhile, and chunks converted
        // meanwhile (whose batches it then moves).
        let mut moved = Moved::default();
        let mut snapshot = (*qd).snapshot;
        let mut passes = 0;
        loop {
            let cid = pg_sys::GetCurrentCommandId(true);
            let before = moved.batches;
            let mut taken_meanwhile = false;
            for &(rti, relid) in &tables {
                taken_meanwhile |=
                    move_batches(&plan, rti, relid, snapshot, (*qd).params, cid, &mut moved);
            }
            let read_now = std::mem::take(&mut moved.read_now);
            moved.read_before.extend(read_now);
            if moved.batches == before && !taken_meanwhile {
                break;
            }
            passes += 1;
            if passes > 100 {
                raise(
                    PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
                    "could not serialize access due to concurrent conversions of cold rows",
                    Some("Other transactions kept converting or changing the rows this statement changes. Retry the transaction."),
                );
            }
            if moved.batches > before {
                pg_sys::CommandCounterIncrement();
            }
            if snapshot != (*qd).snapshot {
                pg_sys::UnregisterSnapshot(snapshot);
            }
            // (REPEATABLE READ: the transaction's snapshot, at the new command id)
            snapshot = transaction_snapshot_copy();
        }
        if passes == 0 {
            return std::ptr::null_mut();
        }
        pgrx::debug1!(
            "bidim: moved {} cold batches ({} rows) to hot chunks for this statement",
            moved.batches,
            moved.rows
        );
        snapshot
    }
}

/// A registered private copy of the transaction snapshot (in READ COMMITTED a new one).
fn transaction_snapshot_copy() -> pg_sys::Snapshot {
    // SAFETY: PushCopiedSnapshot copies; registering the copy keeps it when it is
    // popped off the active stack.
    unsafe {
        pg_sys::PushCopiedSnapshot(pg_sys::GetTransactionSnapshot());
        let copy = pg_sys::RegisterSnapshot(pg_sys::GetActiveSnapshot());
        pg_sys::PopActiveSnapshot();
        copy
    }
}

/// The plan's nodes a decision needs: the tables its UPDATE, DELETE, MERGE (also in
/// WITH) and row locks change, and every scan of a table with its filter.
struct PlanNodes {
    targets: Vec<u32>,
    /// Tables locked FOR UPDATE/SHARE NOWAIT or SKIP LOCKED: a batch another
    /// transaction holds is left cold (its rows then count as locked).
    no_wait: Vec<u32>,
    /// (range table index, filter, whether the filter has WHERE CURRENT OF)
    scans: Vec<(u32, *mut pg_sys::List, bool)>,
}

impl PlanNodes {
    fn of(stmt: *mut pg_sys::PlannedStmt) -> PlanNodes {
        let mut nodes = PlanNodes {
            targets: Vec::new(),
            no_wait: Vec::new(),
            scans: Vec::new(),
        };
        // SAFETY: reading the planned statement's lists.
        unsafe {
            nodes.walk((*stmt).planTree);
            for i in 0..pg_sys::list_length((*stmt).subplans) {
                nodes.walk(pg_sys::list_nth((*stmt).subplans, i) as *mut pg_sys::Plan);
            }
            for i in 0..pg_sys::list_length((*stmt).rowMarks) {
                let rm = pg_sys::list_nth((*stmt).rowMarks, i) as *mut pg_sys::PlanRowMark;
                if (*rm).markType <= pg_sys::RowMarkType::ROW_MARK_KEYSHARE && !(*rm).isParent {
                    nodes.targets.push((*rm).rti);
                    if (*rm).waitPolicy != pg_sys::LockWaitPolicy::LockWaitBlock {
                        nodes.no_wait.push((*rm).rti);
                    }
                }
            }
        }
        nodes
    }

    fn walk(&mut self, plan: *mut pg_sys::Plan) {
        use pg_sys::NodeTag::*;
        if plan.is_null() {
            return;
        }
        let each = |list: *mut pg_sys::List, me: &mut PlanNodes| {
            // SAFETY: a list of plan nodes.
            for i in 0..unsafe { pg_sys::list_length(list) } {
                me.walk(unsafe { pg_sys::list_nth(list, i) } as *mut pg_sys::Plan);
            }
        };
        // SAFETY: plan nodes read by their tags.
        unsafe {
            match (*plan).type_ {
                T_ModifyTable => {
                    let mt = plan as *mut pg_sys::ModifyTable;
                    if matches!(
                        (*mt).operation,
                        pg_sys::CmdType::CMD_UPDATE
                            | pg_sys::CmdType::CMD_DELETE
                            | pg_sys::CmdType::CMD_MERGE
                    ) {
                        let list = (*mt).resultRelations;
                        for i in 0..pg_sys::list_length(list) {
                            self.targets.push(pg_sys::list_nth_int(list, i) as u32);
                        }
                    }
                }
                T_SeqScan | T_SampleScan | T_IndexScan | T_IndexOnlyScan | T_BitmapHeapScan
                | T_TidRangeScan | T_CustomScan => {
                    let scan = plan as *mut pg_sys::Scan;
                    self.scans.push(((*scan).scanrelid, (*plan).qual, false));
                }
                T_TidScan => {
                    let ts = plan as *mut pg_sys::TidScan;
                    let quals = pg_sys::list_concat_copy((*plan).qual, (*ts).tidquals);
                    let current_of = (0..pg_sys::list_length((*ts).tidquals)).any(|i| {
                        (*(pg_sys::list_nth((*ts).tidquals, i) as *mut pg_sys::Node)).type_
                            == T_CurrentOfExpr
                    });
                    self.scans.push(((*ts).scan.scanrelid, quals, current_of));
                }
                _ => {}
            }
            match (*plan).type_ {
                T_Append => each((*(plan as *mut pg_sys::Append)).appendplans, self),
                T_MergeAppend => each((*(plan as *mut pg_sys::MergeAppend)).mergeplans, self),
                T_SubqueryScan => self.walk((*(plan as *mut pg_sys::SubqueryScan)).subplan),
                T_CustomScan => each((*(plan as *mut pg_sys::CustomScan)).custom_plans, self),
                _ => {}
            }
            self.walk((*plan).lefttree);
            self.walk((*plan).righttree);
        }
    }
}

/// Moves the batches of table `relid` (range table index `rti`) that the statement's
/// scans of it may reach. True when a batch had been taken by another transaction
/// after `snapshot` (READ COMMITTED: the statement needs a newer snapshot).
fn move_batches(
    plan: &PlanNodes,
    rti: u32,
    relid: pg_sys::Oid,
    snapshot: pg_sys::Snapshot,
    params: pg_sys::ParamListInfo,
    cid: pg_sys::CommandId,
    moved: &mut Moved,
) -> bool {
    let scans: Vec<(*mut pg_sys::List, bool)> = plan
        .scans
        .iter()
        .filter(|s| s.0 == rti)
        .map(|s| (s.1, s.2))
        .collect();
    if scans.iter().any(|s| s.1) {
        // WHERE CURRENT OF names a row a cursor read: a cold one cannot be changed
        // (the tuple callbacks say so), a hot one needs nothing.
        return false;
    }
    // SAFETY: the table is locked by the statement; opened and closed here.
    let rel = unsafe { pg_sys::table_open(relid, pg_sys::NoLock as pg_sys::LOCKMODE) };
    // SAFETY: rel is an open bidim table.
    let cfg = unsafe { config::config(rel) };
    let wait = !plan.no_wait.contains(&rti);
    let mut taken = false;
    let every = Restriction {
        time: Some((i64::MIN, i64::MAX)),
        keys: Vec::new(),
        sets: Vec::new(),
    };
    if scans.is_empty() {
        taken |= move_matching(rel, &cfg, &every, None, snapshot, cid, wait, moved);
    }
    for (quals, _) in scans {
        let restriction = restriction_of(quals, rti, rel, params);
        let filter = RowFilter::new(quals, params);
        taken |= move_matching(
            rel,
            &cfg,
            &restriction,
            filter.as_ref(),
            snapshot,
            cid,
            wait,
            moved,
        );
        if let Some(f) = filter {
            f.free();
        }
    }
    // SAFETY: opened above.
    unsafe { pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE) };
    taken
}

/// A scan's filter run on cold rows (when it can run outside the plan).
struct RowFilter {
    state: *mut pg_sys::ExprState,
    econtext: *mut pg_sys::ExprContext,
}

impl RowFilter {
    fn new(quals: *mut pg_sys::List, params: pg_sys::ParamListInfo) -> Option<RowFilter> {
        // SAFETY: inspecting and compiling planner expressions (no parent plan: Vars
        // of the scanned table read the context's scan tuple).
        unsafe {
            let node = quals as *mut pg_sys::Node;
            if quals.is_null()
                || pg_sys::contain_subplans(node)
                || pg_sys::contain_volatile_functions(node)
                || !pg_sys::pull_paramids(quals as *mut pg_sys::Expr).is_null()
            {
                return None;
            }
            let econtext = pg_sys::CreateStandaloneExprContext();
            (*econtext).ecxt_param_list_info = params;
            Some(RowFilter {
                state: pg_sys::ExecInitQual(quals, std::ptr::null_mut()),
                econtext,
            })
        }
    }

    /// Whether the row in `slot` passes.
    fn passes(&self, slot: *mut pg_sys::TupleTableSlot) -> bool {
        // SAFETY: evaluates the compiled filter in the context's per-row memory, reset
        // after each row.
        unsafe {
            (*self.econtext).ecxt_scantuple = slot;
            let old = pg_sys::MemoryContextSwitchTo((*self.econtext).ecxt_per_tuple_memory);
            let mut isnull = false;
            let v =
                ((*self.state).evalfunc.expect("evalfunc"))(self.state, self.econtext, &mut isnull);
            pg_sys::MemoryContextSwitchTo(old);
            pg_sys::MemoryContextReset((*self.econtext).ecxt_per_tuple_memory);
            !isnull && v.value() != 0
        }
    }

    fn free(self) {
        // SAFETY: the context made in new, freed once.
        unsafe { pg_sys::FreeExprContext(self.econtext, true) };
    }
}

/// Moves the batches of the cold chunks of `rel` within `restriction` that hold a row
/// passing `filter` (every batch within it when there is none). Without `wait`, a batch
/// another transaction is taking stays cold.
#[allow(clippy::too_many_arguments)]
fn move_matching(
    rel: pg_sys::Relation,
    cfg: &TableConfig,
    restriction: &Restriction,
    filter: Option<&RowFilter>,
    snapshot: pg_sys::Snapshot,
    cid: pg_sys::CommandId,
    wait: bool,
    moved: &mut Moved,
) -> bool {
    let Some(time) = restriction.time else {
        return false;
    };
    // SAFETY: the snapshot is registered by the caller.
    let all = unsafe { read_chunks(super::delegate::rel_oid(rel), snapshot) };
    let cold: Vec<_> = all
        .into_iter()
        .filter(|c| c.state == ChunkState::Cold)
        .collect();
    let kept = chunks_to_read(
        &cold,
        restriction.time,
        cfg.key_kind,
        &restriction.keys,
        &restriction.sets,
    );
    let mut taken = false;
    let mut slots: Vec<*mut pg_sys::TupleTableSlot> = Vec::new();
    for c in kept {
        if moved.read_before.contains(&c.chunk_rel) {
            continue;
        }
        moved.read_now.push(c.chunk_rel);
        let chunk = open_chunk(c.chunk_rel, pg_sys::RowExclusiveLock);
        let cs = cold_scan::begin(
            chunk,
            rel,
            c.chunk_id,
            snapshot,
            &[],
            false,
            time,
            None,
            &[],
        );
        // SAFETY: the batch key is a valid datum of its type while the batch row is held.
        while let Some((mut tid, key)) =
            cold_scan::next_batch(cs, |d, t| unsafe { route::datum_key(cfg.key_kind, t, d) })
        {
            if key.is_some_and(|k| !restriction.may_hold_key(&k)) {
                continue;
            }
            let n = cold_scan::decode_batch(cs, false);
            while slots.len() < n as usize {
                // SAFETY: a virtual slot of the table's descriptor, dropped below.
                slots.push(unsafe {
                    pg_sys::MakeSingleTupleTableSlot((*rel).rd_att, &pg_sys::TTSOpsVirtual)
                });
            }
            if let Some(f) = filter {
                let any = (0..n).any(|r| {
                    cold_scan::batch_row(cs, r, slots[0]);
                    f.passes(slots[0])
                });
                if !any {
                    continue;
                }
            }
            // SAFETY: zeroed failure data heap fills in.
            let mut tmfd: pg_sys::TM_FailureData = unsafe { std::mem::zeroed() };
            let result = heap_call!(tuple_delete(
                chunk,
                &mut tid,
                cid,
                snapshot,
                std::ptr::null_mut(),
                wait,
                &mut tmfd,
                false
            ));
            match result {
                pg_sys::TM_Result::TM_Ok => {
                    for r in 0..n {
                        cold_scan::batch_row(cs, r, slots[r as usize]);
                    }
                    hot_chunk::insert_rows(rel, cfg, &slots[..n as usize], cid, 0);
                    moved.batches += 1;
                    moved.rows += i64::from(n);
                }
                // moved by this statement already (another scan of the table); or
                // (NOWAIT, SKIP LOCKED) being taken by another transaction
                pg_sys::TM_Result::TM_SelfModified | pg_sys::TM_Result::TM_BeingModified => {}
                pg_sys::TM_Result::TM_Updated | pg_sys::TM_Result::TM_Deleted => {
                    // SAFETY: reads this backend's isolation level.
                    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
                        raise(
                            PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
                            format!(
                                "could not serialize access due to a concurrent change of cold rows of bidim table \"{}\"",
                                rel_name(rel)
                            ),
                            Some("Another transaction changed rows stored in the same batch. Retry the transaction."),
                        );
                    }
                    taken = true;
                }
                other => raise(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    format!("bidim: unexpected result {other} taking a batch of a cold chunk"),
                    None,
                ),
            }
        }
        cold_scan::end(cs);
        close_chunk(chunk);
    }
    for s in slots {
        // SAFETY: made above, dropped once.
        unsafe { pg_sys::ExecDropSingleTupleTableSlot(s) };
    }
    taken
}
