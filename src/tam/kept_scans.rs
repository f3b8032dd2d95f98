//! Index scans of hot and sealed chunks kept open across the rescans of one BidimScan
//! or BidimAgg node. A nested loop rescans the node once per outer row (TSBS
//! `lastpoint`: a thousand rescans reading one row of one chunk each); opening the
//! chunk and its index, beginning the index scan and closing them all again cost
//! about as much as the index descent itself. Kept scans are rescanned with the new
//! keys instead, and closed when the node ends. A kept chunk holds its
//! AccessShareLock until then, as any chunk a running scan reads does.

use super::delegate::release_chunk;
use pgrx::pg_sys;

/// At most this many chunks are kept open per node (a nested loop over a few series
/// reads a few chunks; more than this are opened and closed per rescan as before).
const CAPACITY: usize = 32;

/// One kept index scan of a hot or sealed chunk.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct KeptScan {
    pub relid: pg_sys::Oid,
    pub chunk: pg_sys::Relation,
    pub index: pg_sys::Relation,
    pub scan: pg_sys::IndexScanDesc,
    /// A slot of the chunk's descriptor (a time-ordered merge reads into it), or null.
    pub slot: *mut pg_sys::TupleTableSlot,
    nkeys: i32,
    /// Whether a reader is using it now.
    busy: bool,
}

/// The kept scans of one node (palloc'd in the query's context).
#[repr(C)]
pub(super) struct KeptScans {
    /// Where kept scans allocate (their index scan state, their slot).
    pub cxt: pg_sys::MemoryContext,
    entries: [KeptScan; CAPACITY],
    n: usize,
}

/// A new, empty set of kept scans in the current memory context.
pub(super) fn new() -> *mut KeptScans {
    // SAFETY: a zeroed palloc'd struct (null pointers, no entries); its context is a
    // child of the current one, deleted with it.
    unsafe {
        let k = pg_sys::palloc0(std::mem::size_of::<KeptScans>()) as *mut KeptScans;
        (*k).cxt = pg_sys::AllocSetContextCreateExtended(
            pg_sys::CurrentMemoryContext,
            c"bidim kept chunk scans".as_ptr(),
            pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
            pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        k
    }
}

/// Takes the idle kept scan of chunk `relid` begun with `nkeys` keys (and a slot when
/// `with_slot`), if there is one; the caller rescans it and gives it back with
/// [`give_back`].
pub(super) fn take(
    kept: *mut KeptScans,
    relid: pg_sys::Oid,
    nkeys: i32,
    with_slot: bool,
) -> Option<KeptScan> {
    if kept.is_null() {
        return None;
    }
    // SAFETY: a live set made by new().
    let k = unsafe { &mut *kept };
    let e = k.entries[..k.n].iter_mut().find(|e| {
        !e.busy && e.relid == relid && e.nkeys == nkeys && e.slot.is_null() != with_slot
    })?;
    e.busy = true;
    Some(*e)
}

/// Whether a new scan could be kept (the caller then begins it in [`KeptScans::cxt`]).
pub(super) fn has_room(kept: *mut KeptScans) -> bool {
    // SAFETY: a live set made by new().
    !kept.is_null() && unsafe { (*kept).n } < CAPACITY
}

/// Keeps a scan the caller has just begun (in [`KeptScans::cxt`], after
/// [`has_room`]), in use until given back.
pub(super) fn adopt(
    kept: *mut KeptScans,
    relid: pg_sys::Oid,
    chunk: pg_sys::Relation,
    index: pg_sys::Relation,
    scan: pg_sys::IndexScanDesc,
    slot: *mut pg_sys::TupleTableSlot,
    nkeys: i32,
) {
    // SAFETY: a live set made by new() with room (has_room).
    let k = unsafe { &mut *kept };
    k.entries[k.n] = KeptScan {
        relid,
        chunk,
        index,
        scan,
        slot,
        nkeys,
        busy: true,
    };
    k.n += 1;
}

/// Gives back a reader's index scan: true when it is a kept one (then the caller must
/// not close it, nor its chunk, index or slot).
pub(super) fn give_back(kept: *mut KeptScans, scan: pg_sys::IndexScanDesc) -> bool {
    if kept.is_null() {
        return false;
    }
    // SAFETY: a live set made by new().
    let k = unsafe { &mut *kept };
    let Some(e) = k.entries[..k.n].iter_mut().find(|e| e.scan == scan) else {
        return false;
    };
    e.busy = false;
    if !e.slot.is_null() {
        // SAFETY: the kept slot; clearing it drops its buffer pin until the next use.
        unsafe { pg_sys::ExecClearTuple(e.slot) };
    }
    true
}

/// Ends and closes every kept scan (the node ends); the set stays usable, empty.
pub(super) fn close_all(kept: *mut KeptScans) {
    if kept.is_null() {
        return;
    }
    // SAFETY: a live set made by new(); each entry was begun once and is ended once.
    unsafe {
        let k = &mut *kept;
        for e in &k.entries[..k.n] {
            pg_sys::index_endscan(e.scan);
            if !e.slot.is_null() {
                pg_sys::ExecDropSingleTupleTableSlot(e.slot);
            }
            release_chunk(e.chunk, e.index);
        }
        k.n = 0;
        pg_sys::MemoryContextReset(k.cxt);
    }
}
