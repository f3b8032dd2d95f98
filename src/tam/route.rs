//! Routing: which cell (key range x time partition) a row belongs to, and which hot
//! chunk takes the cell's rows (found in the directory or created).

use super::cache::{self, HotChunk};
use super::cell::Cell;
use super::config::{self, TableConfig, MAX_TEXT_KEY_BYTES};
use super::delegate::{rel_name, rel_oid};
use super::directory_io::{self, read_chunks, routing_snapshot};
use super::keyrange::{self, Key, KeyKind};
use super::{chunk_store, directory};
use crate::error::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// The cell of the row in `slot`.
pub(super) fn cell_of(
    rel: pg_sys::Relation,
    cfg: &TableConfig,
    slot: *mut pg_sys::TupleTableSlot,
) -> Cell {
    // SAFETY: deforming the slot up to the time/key attribute, then reading its arrays.
    let (time, time_null, key, key_null) = unsafe {
        let need = cfg.time_attnum.max(cfg.key_attnum) as i32;
        if ((*slot).tts_nvalid as i32) < need {
            pg_sys::slot_getsomeattrs_int(slot, need);
        }
        let t = (cfg.time_attnum - 1) as usize;
        let k = (cfg.key_attnum - 1) as usize;
        (
            *(*slot).tts_values.add(t),
            *(*slot).tts_isnull.add(t),
            *(*slot).tts_values.add(k),
            *(*slot).tts_isnull.add(k),
        )
    };
    let cols = || {
        // SAFETY: forwarded open relation.
        unsafe { config::columns(rel) }
    };
    let name_of = |attnum: i16| {
        cols()
            .into_iter()
            .find(|c| c.0 == attnum)
            .map(|c| c.1)
            .unwrap_or_default()
    };
    if time_null || key_null {
        let col = name_of(if time_null {
            cfg.time_attnum
        } else {
            cfg.key_attnum
        });
        raise(
            PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
            format!(
                "null value in column \"{col}\" of bidim table \"{}\"",
                rel_name(rel)
            ),
            Some("The key and time columns of a bidim table route every row to its chunk and cannot be NULL."),
        );
    }
    if cfg.key_kind == KeyKind::Text {
        // SAFETY: a non-null text datum (inline, compressed or external): its raw size
        // is read from its header or TOAST pointer, without detoasting.
        let bytes = unsafe { pg_sys::toast_raw_datum_size(key) } - pg_sys::VARHDRSZ;
        if bytes > MAX_TEXT_KEY_BYTES {
            raise(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "key of {bytes} bytes in column \"{}\" of bidim table \"{}\" is longer than the limit of {MAX_TEXT_KEY_BYTES} bytes",
                    name_of(cfg.key_attnum),
                    rel_name(rel)
                ),
                Some("Keys are indexed in every chunk; use a shorter key (for example a series id, or a hash of the long one)."),
            );
        }
    }
    let t = time.value() as i64;
    let facade = rel_oid(rel);
    let range = with_ranges(facade, cfg.key_kind, |ranges| {
        if ranges.len() == 1 {
            return ranges[0].id;
        }
        // SAFETY: the key attribute was deformed above and is not null.
        let key = unsafe { slot_key(cfg, slot) };
        // The ranges tile the key space (load_ranges checks), so one holds the key.
        keyrange::route(ranges, &key).map_or(0, |r| r.id)
    });
    match Cell::of(range, t, cfg.width) {
        Ok(c) => c,
        Err(_) => raise(
            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
            format!(
                "bidim table \"{}\" cannot store an infinite time in column \"{}\"",
                rel_name(rel),
                name_of(cfg.time_attnum)
            ),
            None,
        ),
    }
}

/// The key of the row in `slot`.
///
/// # Safety
/// The slot must be deformed up to the key column, which must not be null.
pub(super) unsafe fn slot_key(cfg: &TableConfig, slot: *mut pg_sys::TupleTableSlot) -> Key {
    // SAFETY: per the contract; the key's type is one of the kinds' types.
    unsafe {
        let k = (cfg.key_attnum - 1) as usize;
        let d = *(*slot).tts_values.add(k);
        let desc = (*slot).tts_tupleDescriptor;
        let att = &(*desc).attrs.as_slice((*desc).natts as usize)[k];
        datum_key(cfg.key_kind, att.atttypid, d).unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                format!(
                    "bidim: the key column's type {} does not match the table's key kind",
                    att.atttypid.to_u32()
                ),
                None,
            )
        })
    }
}

/// The time of the row in `slot`.
///
/// # Safety
/// The slot must be deformed up to the time column, which must not be null.
pub unsafe fn slot_time(cfg: &TableConfig, slot: *mut pg_sys::TupleTableSlot) -> i64 {
    // SAFETY: per the contract.
    unsafe { (*(*slot).tts_values.add((cfg.time_attnum - 1) as usize)).value() as i64 }
}

/// A key value from a datum of type `typ` (integer types and text-like varlenas).
///
/// # Safety
/// `d` must be a valid, non-null datum of type `typ`.
pub unsafe fn datum_key(kind: KeyKind, typ: pg_sys::Oid, d: pg_sys::Datum) -> Option<Key> {
    match typ {
        t if t == pg_sys::INT2OID => Some(Key::Int(d.value() as i16 as i64)),
        t if t == pg_sys::INT4OID => Some(Key::Int(d.value() as i32 as i64)),
        t if t == pg_sys::INT8OID => Some(Key::Int(d.value() as i64)),
        t if (t == pg_sys::TEXTOID || t == pg_sys::VARCHAROID) && kind == KeyKind::Text => {
            // SAFETY: a text-like varlena; detoasted (if needed) into the current memory
            // context, read as bytes.
            unsafe {
                let p = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
                let len = pgrx::varlena::varsize_any_exhdr(p);
                let data = pgrx::varlena::vardata_any(p) as *const u8;
                Some(Key::Text(std::slice::from_raw_parts(data, len).to_vec()))
            }
        }
        _ => None,
    }
}

/// Reads the active key ranges of `facade` (no rows: the single range 0), sorted.
fn load_ranges(facade: pg_sys::Oid, kind: KeyKind) -> Vec<keyrange::Range> {
    let mut rows = Vec::new();
    // SAFETY: the routing snapshot is used at once.
    unsafe {
        directory_io::scan(
            "key_range",
            "key_range_pkey",
            facade,
            routing_snapshot(),
            |r| {
                if r.must("state", r.text("state")) == "active" {
                    rows.push((
                        r.must("range_id", r.i32("range_id")),
                        r.text("key_lo"),
                        r.text("key_hi"),
                    ));
                }
            },
        )
    };
    let bound = |s: Option<String>| {
        s.map(|s| {
            Key::parse(kind, &s).unwrap_or_else(|| {
                raise(
                    PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                    format!(
                        "bidim.key_range holds the bound \"{s}\", which is not a key of table {}",
                        facade.to_u32()
                    ),
                    None,
                )
            })
        })
    };
    let mut ranges: Vec<keyrange::Range> = rows
        .into_iter()
        .map(|(id, lo, hi)| keyrange::Range {
            id,
            lo: bound(lo),
            hi: bound(hi),
        })
        .collect();
    keyrange::sort(&mut ranges);
    if ranges.is_empty() || !keyrange::tiles(&ranges) {
        if !ranges.is_empty() {
            warning!(
                "bidim: the key ranges of table {} do not tile the key space; routing every row to range 0",
                facade.to_u32()
            );
        }
        ranges = vec![keyrange::whole()];
    }
    ranges
}

/// Runs `f` on the active key ranges of `facade` (cached per backend).
pub fn with_ranges<R>(
    facade: pg_sys::Oid,
    kind: KeyKind,
    f: impl FnOnce(&[keyrange::Range]) -> R,
) -> R {
    match cache::with_ranges(facade, f) {
        Ok(r) => r,
        Err(f) => {
            let ranges = load_ranges(facade, kind);
            let r = f(&ranges);
            cache::set_ranges(facade, ranges);
            r
        }
    }
}

/// The active key range `range_id` of `facade`, if it still exists.
pub fn range(facade: pg_sys::Oid, kind: KeyKind, range_id: i32) -> Option<keyrange::Range> {
    with_ranges(facade, kind, |rs| {
        rs.iter().find(|r| r.id == range_id).cloned()
    })
}

/// The hot chunk of `cell` in `facade`, creating it if the cell has none. `None` when
/// the range has been split since this backend cached the ranges: the caller routes
/// the row again.
pub fn hot_chunk(facade: pg_sys::Oid, cfg: &TableConfig, cell: &Cell) -> Option<HotChunk> {
    if let Some(h) = cache::hot(facade, cell) {
        return Some(h);
    }
    // SAFETY: the routing snapshot is valid until the next snapshot call; read_chunks
    // uses it at once.
    let rows = unsafe { read_chunks(facade, routing_snapshot()) };
    let hot = match directory::hot_of(&rows, cell) {
        Some(r) => HotChunk {
            ordinal: r.chunk_id,
            relid: r.chunk_rel,
            since_check: 0,
            mine: 0,
        },
        None => {
            // Before making a chunk, make sure the range still exists (a split another
            // session committed shows up here at the latest).
            let fresh = load_ranges(facade, cfg.key_kind);
            let Some(range) = fresh.iter().find(|r| r.id == cell.range_id).cloned() else {
                cache::set_ranges(facade, fresh);
                return None;
            };
            chunk_store::create_chunk(facade, cfg, &range, cell)
        }
    };
    cache::remember(facade, cell, &hot);
    Some(hot)
}

/// Partition start, key range bounds and measured time bounds of chunk `ordinal`,
/// which the caller holds locked (RowExclusive, to its transaction's end): from the
/// cache when read in this transaction, else from the directory by the latest
/// snapshot (the maintenance job measures bounds under a conflicting lock, so what is
/// read here stays true while the caller holds its lock).
pub fn chunk_cell(facade: pg_sys::Oid, kind: KeyKind, ordinal: u32) -> Option<cache::ChunkCell> {
    // SAFETY: MyProc is this backend's PGPROC.
    let lxid = unsafe { (*pg_sys::MyProc).lxid };
    if let Some(c) = cache::chunk_cell(facade, ordinal).filter(|c| c.read_in == lxid) {
        return Some(c);
    }
    let rows = directory_io::read_chunks_latest(facade);
    let row = rows.into_iter().find(|r| r.chunk_id == ordinal)?;
    let c = cache::ChunkCell {
        time_lo: row.time_lo,
        key_lo: row.key_lo.as_deref().and_then(|s| Key::parse(kind, s)),
        key_hi: row.key_hi.as_deref().and_then(|s| Key::parse(kind, s)),
        span: row.min_time.zip(row.max_time),
        mapped: row.block_map.is_some(),
        read_in: lxid,
    };
    cache::set_chunk_cell(facade, ordinal, &c);
    Some(c)
}
