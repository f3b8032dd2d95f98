//! Chunk relations: their names, creation (a heap relation mirroring the table's
//! physical layout, its (key, time) index, owner, extension membership and directory
//! row), drops (with their ordinals freed for reuse), and keeping chunks in step with
//! their table after ALTER TABLE.
//!
//! Chunks are heap relations `bidim_internal.c<table oid>_<ordinal>` owned by the
//! table's owner, members of the extension (so pg_dump skips them: it dumps the rows
//! through the table); the `bidim_sql_drop` event trigger drops them with their table.

use super::cache::HotChunk;
use super::cell::Cell;
use super::config::TableConfig;
use super::directory::ChunkRow;
use super::directory_io::{self, read_chunks, read_chunks_latest, relation_oid, routing_snapshot};
use super::hot_chunk::{seal_chunks, Sealing};
use super::keyrange::{self, Key};
use super::locks::Lock;
use super::privilege::as_extension_owner;
use super::{cache, config};
use crate::error::{raise, spi_or_raise};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CString;

/// Name of chunk `ordinal` of table `facade` inside schema `bidim_internal`.
pub fn chunk_name(facade: pg_sys::Oid, ordinal: u32) -> String {
    format!("c{}_{}", facade.to_u32(), ordinal)
}

/// The chunk relation of `ordinal`, if it exists (visible to this backend's catalog view).
pub fn chunk_relid(facade: pg_sys::Oid, ordinal: u32) -> Option<pg_sys::Oid> {
    let oid = relation_oid("bidim_internal", &chunk_name(facade, ordinal));
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// `ident` quoted as an SQL identifier where needed.
pub fn quote_ident(ident: &str) -> String {
    let c = std::ffi::CString::new(ident).expect("identifiers hold no NUL");
    // SAFETY: quote_identifier returns its argument or a palloc'd quoted copy, both
    // NUL-terminated.
    unsafe {
        std::ffi::CStr::from_ptr(pg_sys::quote_identifier(c.as_ptr()))
            .to_string_lossy()
            .into_owned()
    }
}

thread_local! {
    /// Chunks this backend created in its current transaction (each holds its locks
    /// until the transaction ends).
    static CHUNKS_THIS_XACT: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// The transaction ended: its chunks' locks are gone (called by [`cache`]'s
/// transaction callback).
pub(super) fn transaction_ended() {
    CHUNKS_THIS_XACT.with(|n| n.set(0));
}

/// Counts one more chunk for this transaction, or refuses past the limit.
fn count_new_chunk(facade: pg_sys::Oid) {
    let limit = config::MAX_CHUNKS_PER_XACT.get();
    let n = CHUNKS_THIS_XACT.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    if n > limit {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "this transaction would create more than {limit} chunks (bidim table \"{}\")",
                super::api::qualified_name(facade)
            ),
            Some("Each new chunk holds its locks until the transaction ends. Write fewer time partitions per transaction, raise partition_interval or hot_chunk_rows with bidim.configure, or raise bidim.max_chunks_per_transaction (and max_locks_per_transaction)."),
        );
    }
}

/// Column definitions mirroring the facade's physical layout, dropped columns
/// included (as placeholders of the same length, alignment and by-value-ness, dropped
/// right after), so that a facade heap tuple is a valid tuple of the chunk and back.
/// Types are printed by `format_type` under the pinned search path, so every type
/// outside `pg_catalog` comes out schema-qualified.
pub(super) fn mirror_columns(facade: pg_sys::Oid) -> MirroredColumns {
    let rows = Spi::connect(|client| {
        let rows = client.select(
            "SELECT a.attnum, pg_catalog.quote_ident(a.attname),
                    CASE WHEN a.attisdropped THEN
                      -- a placeholder of the dropped column's physical shape
                      coalesce((SELECT pg_catalog.format_type(t.oid, NULL) FROM pg_catalog.pg_type t
                                WHERE t.typlen OPERATOR(pg_catalog.=) a.attlen
                                  AND t.typalign OPERATOR(pg_catalog.=) a.attalign
                                  AND t.typbyval OPERATOR(pg_catalog.=) a.attbyval
                                  AND t.typtype OPERATOR(pg_catalog.=) 'b' AND t.typisdefined
                                  AND t.typnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace
                                ORDER BY t.typelem OPERATOR(pg_catalog.<>) 0, t.oid LIMIT 1), 'int4')
                    ELSE pg_catalog.format_type(a.atttypid, a.atttypmod) END,
                    a.attisdropped,
                    CASE WHEN a.attcollation OPERATOR(pg_catalog.<>) 0 THEN
                      (SELECT ' COLLATE ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(n.nspname)
                              OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.collname)
                       FROM pg_catalog.pg_collation c JOIN pg_catalog.pg_namespace n
                         ON n.oid OPERATOR(pg_catalog.=) c.collnamespace
                       WHERE c.oid OPERATOR(pg_catalog.=) a.attcollation) ELSE '' END,
                    -- the column's own compression and storage, where they differ
                    -- from the type's
                    CASE a.attcompression WHEN 'p' THEN ' COMPRESSION pglz'
                                          WHEN 'l' THEN ' COMPRESSION lz4' ELSE '' END,
                    CASE WHEN a.attstorage OPERATOR(pg_catalog.<>) t.typstorage THEN
                      CASE a.attstorage WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL'
                                        WHEN 'm' THEN 'MAIN' ELSE 'EXTENDED' END END
             FROM pg_catalog.pg_attribute a
             LEFT JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
             WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0
             ORDER BY a.attnum",
            None,
            &[facade.into()],
        )?;
        let mut v = Vec::new();
        for r in rows {
            v.push((
                // the query's columns 1-6 are never NULL
                r.get::<i16>(1)?.expect("attnum"),
                r.get::<String>(2)?.expect("column name"),
                r.get::<String>(3)?.expect("column type"),
                r.get::<bool>(4)?.expect("attisdropped"),
                r.get::<String>(5)?.expect("collation clause"),
                r.get::<String>(6)?.expect("compression clause"),
                r.get::<String>(7)?,
            ));
        }
        Ok::<_, pgrx::spi::Error>(v)
    })
    .unwrap_or_else(|e| spi_or_raise(Err(e), "read the columns of the table"));
    let mut m = MirroredColumns::default();
    let mut defs = Vec::new();
    for (num, name, typ, is_dropped, coll, compression, storage) in rows {
        if is_dropped {
            let n = format!("_bidim_dropped_{num}");
            defs.push(format!("{n} {typ}"));
            m.dropped.push(n);
        } else {
            defs.push(format!("{name} {typ}{compression}{coll}"));
            if let Some(st) = storage {
                m.alters
                    .push(format!("ALTER COLUMN {name} SET STORAGE {st}"));
            }
        }
    }
    m.defs = defs.join(", ");
    m
}

/// How to create a chunk that mirrors its table: column definitions (with each
/// column's collation and compression), placeholder columns to drop, and the
/// `ALTER COLUMN ... SET STORAGE` a column needs where it differs from its type.
#[derive(Default)]
pub(super) struct MirroredColumns {
    defs: String,
    dropped: Vec<String>,
    alters: Vec<String>,
}

/// A timestamptz from PostgreSQL's raw microseconds, or an error naming them.
pub fn timestamp(us: i64) -> pgrx::datum::TimestampWithTimeZone {
    pgrx::datum::TimestampWithTimeZone::try_from(us).unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
            format!("bidim: time {us} (microseconds since 2000-01-01) is out of range"),
            None,
        )
    })
}

/// Creates a new hot chunk for `cell` (of key range `range`): its heap relation (owned
/// by the table's owner), its (key, time) index, dependencies and directory row, and
/// seals the cell's earlier hot chunks (this one succeeds them). Runs in the caller's
/// transaction: the chunk exists for others once that commits, and a rollback gives
/// its ordinal back.
pub fn create_chunk(
    facade: pg_sys::Oid,
    cfg: &TableConfig,
    range: &keyrange::Range,
    cell: &Cell,
) -> HotChunk {
    debug_assert_eq!(range.id, cell.range_id);
    let range_id = range.id;
    let key_lo = range.lo.as_ref().and_then(Key::to_text);
    let key_hi = range.hi.as_ref().and_then(Key::to_text);
    count_new_chunk(facade);
    // One chunk maker per table at a time, to its commit: the ordinal counter row is
    // then only ever advanced from its newest committed value.
    Lock::ChunkCreation(facade).acquire();
    let Some(ordinal) = take_ordinal(facade) else {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "bidim table \"{}\" has {} chunks, all its chunk numbers",
                super::api::qualified_name(facade),
                super::tid::MAX_ORDINAL
            ),
            Some("Drop old time partitions (bidim.drop_before; their numbers are reused once no transaction that started before the drop is running), or raise hot_chunk_rows or partition_interval with bidim.configure."),
        );
    };
    let name = chunk_name(facade, ordinal);
    let (key, time) = column_names(facade, cfg);
    let relid = as_extension_owner(|| {
        let m = mirror_columns(facade);
        spi_or_raise(
            Spi::run(&format!(
                "CREATE TABLE bidim_internal.{name} ({}) USING heap",
                m.defs
            )),
            "create a chunk",
        );
        let alters: Vec<String> = m
            .dropped
            .iter()
            .map(|d| format!("DROP COLUMN {d}"))
            .chain(m.alters)
            .collect();
        if !alters.is_empty() {
            spi_or_raise(
                Spi::run(&format!(
                    "ALTER TABLE bidim_internal.{name} {}",
                    alters.join(", ")
                )),
                "create a chunk",
            );
        }
        // The hot chunk's small (key, time) index: BidimScan reads it for queries that
        // name a key; it is at most hot_chunk_rows entries, so it stays cached. The key
        // and time types are built-in, so are their default operator classes.
        spi_or_raise(
            Spi::run(&format!(
                "CREATE INDEX {name}_kt ON bidim_internal.{name} USING btree ({key}, {time})"
            )),
            "index a chunk",
        );
        relation_oid("bidim_internal", &name)
    });
    internal_member(relid);
    // The chunk belongs to the table's owner: autovacuum's ANALYZE of it runs the
    // column types' functions as that owner, never as a superuser.
    super::privilege::give_to(relid, super::privilege::owner_of(facade));
    as_extension_owner(|| {
        spi_or_raise(
            Spi::run_with_args(
                "INSERT INTO bidim.chunk (rel, chunk_id, chunk_rel, range_id, time_lo, time_hi,
                                          key_lo, key_hi)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    facade.into(),
                    (ordinal as i32).into(),
                    relid.into(),
                    range_id.into(),
                    timestamp(cell.time_lo).into(),
                    timestamp(cell.time_hi).into(),
                    key_lo.clone().into(),
                    key_hi.clone().into(),
                ],
            ),
            "record a chunk",
        )
    });
    seal_chunks(
        facade,
        Sealing::Cell {
            cell: *cell,
            except: ordinal,
        },
    );
    // Other backends drop their routing caches for this table when we commit.
    cache::invalidate_relcache(facade);
    HotChunk {
        ordinal,
        relid,
        since_check: 0,
        mine: 0,
    }
}

/// The next chunk ordinal of `facade` ([`directory_io::next_ordinal`]); a reused
/// ordinal's old relation (a converted chunk no snapshot can see any more) is dropped
/// first, so its name is free. The caller holds the chunk-creation lock.
pub(super) fn take_ordinal(facade: pg_sys::Oid) -> Option<u32> {
    let ordinal = directory_io::next_ordinal(facade)?;
    // SAFETY: catches up with catalog changes (a drop of that relation by someone who
    // held the lock before us) before looking the relation up.
    unsafe { pg_sys::AcceptInvalidationMessages() };
    if let Some(old) = chunk_relid(facade, ordinal) {
        // A free ordinal's old relation is a dropped or superseded chunk's: never one
        // the directory lists.
        if directory_io::chunk_listed_latest(facade, ordinal) {
            raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!(
                    "bidim: chunk number {ordinal} of table \"{}\" is free but still listed",
                    super::api::qualified_name(facade)
                ),
                None,
            );
        }
        as_extension_owner(|| drop_internal(old, &chunk_name(facade, ordinal)));
    }
    Some(ordinal)
}

/// Quoted names of the key and time columns (from the table's tuple descriptor).
pub(super) fn column_names(facade: pg_sys::Oid, cfg: &TableConfig) -> (String, String) {
    let name = |attnum: i16| {
        // SAFETY: a syscache lookup of the attribute's name (palloc'd copy or null).
        let p = unsafe { pg_sys::get_attname(facade, attnum, true) };
        if p.is_null() {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!(
                    "bidim: column {attnum} of table \"{}\" is missing",
                    super::api::qualified_name(facade)
                ),
                None,
            )
        }
        // SAFETY: a NUL-terminated palloc'd string.
        quote_ident(&unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy())
    };
    (name(cfg.key_attnum), name(cfg.time_attnum))
}

/// Records `obj` (a relation of `facade`) as a member of the extension: pg_dump skips
/// it (the table's rows are dumped through the table) and a user cannot drop it on its
/// own. It goes when its table goes: TRUNCATE and the `bidim_sql_drop` event trigger
/// drop it (see [`forget_table`]).
pub(super) fn internal_member(obj: pg_sys::Oid) {
    let ext_name = CString::new("bidim").unwrap();
    // SAFETY: a catalog dependency record between existing objects; guarded calls.
    unsafe {
        let ext = pg_sys::get_extension_oid(ext_name.as_ptr(), false);
        let me = pg_sys::ObjectAddress {
            classId: pg_sys::RelationRelationId,
            objectId: obj,
            objectSubId: 0,
        };
        let extension = pg_sys::ObjectAddress {
            classId: pg_sys::ExtensionRelationId,
            objectId: ext,
            objectSubId: 0,
        };
        pg_sys::recordDependencyOn(
            &me,
            &extension,
            pg_sys::DependencyType::DEPENDENCY_EXTENSION,
        );
        pg_sys::CommandCounterIncrement();
    }
}

/// Drops one of our internal relations (a chunk).
pub(super) fn drop_internal(relid: pg_sys::Oid, name: &str) {
    // SAFETY: removes the extension-membership record of a relation we created, so
    // it can be dropped.
    unsafe {
        pg_sys::deleteDependencyRecordsFor(pg_sys::RelationRelationId, relid, false);
        pg_sys::CommandCounterIncrement();
    }
    spi_or_raise(
        Spi::run(&format!("DROP TABLE IF EXISTS bidim_internal.{name}")),
        &format!("drop {name}"),
    );
}

/// Drops every chunk of `facade` and its directory rows (TRUNCATE), in the caller's
/// transaction. The ordinal counter is kept, so TIDs are not reused.
pub fn drop_all_chunks(facade: pg_sys::Oid) {
    // SAFETY: snapshot used at once.
    let rows = unsafe { read_chunks(facade, routing_snapshot()) };
    drop_chunks(facade, rows.iter().collect());
}

/// Drops the given chunks of `facade` (relations and directory rows) in chunk-id
/// order, the order scans open them in, so a drop waiting for a reader never holds a
/// chunk that reader still needs; then makes every backend forget its routing.
pub(super) fn drop_chunks(facade: pg_sys::Oid, mut chunks: Vec<&ChunkRow>) {
    chunks.sort_by_key(|r| r.chunk_id);
    let ids: Vec<i32> = chunks.iter().map(|r| r.chunk_id as i32).collect();
    as_extension_owner(|| {
        for r in &chunks {
            drop_internal(r.chunk_rel, &chunk_name(facade, r.chunk_id));
        }
        spi_or_raise(
            Spi::run_with_args(
                "DELETE FROM bidim.chunk WHERE rel OPERATOR(pg_catalog.=) $1
                   AND chunk_id OPERATOR(pg_catalog.=) ANY ($2)",
                &[facade.into(), ids.clone().into()],
            ),
            "drop chunks",
        );
        // The ordinals go back to the table once no snapshot can hold a TID of theirs
        // (see directory_io::next_ordinal).
        spi_or_raise(
            Spi::run_with_args(
                "INSERT INTO bidim.chunk_free (rel, ordinal, freed_xid)
                 SELECT $1, o, pg_current_xact_id() FROM unnest($2::int4[]) AS o",
                &[facade.into(), ids.into()],
            ),
            "drop chunks",
        );
    });
    cache::invalidate_relcache(facade);
    cache::invalidate(facade);
}

/// Removes everything bidim keeps for table `facade`: chunks, directory rows, ordinal
/// counter and configuration. Runs when the table is dropped (event trigger) and
/// when a new table reuses the oid of one whose clean-up was missed.
pub fn forget_table(facade: pg_sys::Oid) {
    drop_all_chunks(facade);
    // Relations of converted chunks still waiting for their readers to finish.
    for ordinal in directory_io::free_ordinals(facade, u64::MAX) {
        if let Some(relid) = chunk_relid(facade, ordinal) {
            as_extension_owner(|| drop_internal(relid, &chunk_name(facade, ordinal)));
        }
    }
    as_extension_owner(|| {
        for sql in [
            "DELETE FROM bidim.table_config WHERE rel::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
            "DELETE FROM bidim.key_range WHERE rel OPERATOR(pg_catalog.=) $1",
            "DELETE FROM bidim.job WHERE rel::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
            "DELETE FROM bidim.chunk_counter WHERE rel OPERATOR(pg_catalog.=) $1",
            "DELETE FROM bidim.chunk_free WHERE rel OPERATOR(pg_catalog.=) $1",
        ] {
            spi_or_raise(Spi::run_with_args(sql, &[facade.into()]), "forget a table");
        }
    });
    cache::invalidate(facade);
}

/// Whether `facade` has chunks, by the latest snapshot (chunks other transactions
/// committed a moment ago count).
pub fn has_chunks_latest(facade: pg_sys::Oid) -> bool {
    !read_chunks_latest(facade).is_empty()
}

/// After ALTER TABLE on `facade`: chunks follow the table's owner; the key and time
/// columns must still be the ones its chunks were made by (the first two columns of
/// every chunk's index), else the statement is refused.
pub fn after_alter_table(facade: pg_sys::Oid) {
    let rows = read_chunks_latest(facade);
    if rows.is_empty() {
        return;
    }
    let owner = super::privilege::owner_of(facade);
    for r in &rows {
        if super::privilege::owner_of(r.chunk_rel) != owner {
            super::privilege::give_to(r.chunk_rel, owner);
        }
    }
    // The columns the chunks are keyed by, from the newest chunk's index (every chunk
    // of a table is made by the same columns: they cannot change while chunks exist).
    // (Cold chunks have no such index: their batches are keyed by the key column.)
    let made_by = rows
        .iter()
        .rev()
        .find(|r| r.state != super::directory::ChunkState::Cold)
        .and_then(|r| chunk_index_columns(r.chunk_rel));
    cache::invalidate(facade);
    let settings = config::current_settings(facade);
    let attnum = |name: &str| {
        let c = CString::new(name).ok()?;
        // SAFETY: a syscache lookup by relation and column name.
        let n = unsafe { pg_sys::get_attnum(facade, c.as_ptr()) };
        (n > 0).then_some(n)
    };
    let now = attnum(&settings.key_column).zip(attnum(&settings.time_column));
    if made_by.is_some() && now != made_by {
        let table = super::api::qualified_name(facade);
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot drop or rename the key or time column of bidim table \"{table}\" while it holds rows"),
            Some("The rows are partitioned by these columns. TRUNCATE the table first, or copy the rows into a new table."),
        );
    }
    // Only once the key and time columns are known to stay (dropping a column in a
    // chunk drops the index on it).
    sync_column_settings(facade);
}

/// Gives every chunk of `facade` the table's per-column storage and compression
/// (after `ALTER TABLE ... ALTER COLUMN ... SET STORAGE | SET COMPRESSION`), so rows
/// written from now on are stored as the table says, and drops in every chunk the
/// columns the table dropped (a dropped column stays in the physical layout, so
/// chunk and table tuples stay interchangeable, and PostgreSQL's check that a row's
/// descriptor matches the one deforming it holds). Chunk columns keep the name they
/// had when the chunk was made; they are matched by attribute number.
pub(super) fn sync_column_settings(facade: pg_sys::Oid) {
    as_extension_owner(|| {
        let alters: Vec<(String, String)> = spi_or_raise(
            Spi::connect(|client| {
                let rows = client.select(
                    "SELECT c.chunk_rel::regclass::text,
                            string_agg(CASE WHEN fa.attisdropped THEN format('DROP COLUMN %I', ca.attname)
                                       ELSE format('ALTER COLUMN %I SET STORAGE %s, ALTER COLUMN %I SET COMPRESSION %s',
                                              ca.attname,
                                              CASE fa.attstorage WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL'
                                                                 WHEN 'm' THEN 'MAIN' ELSE 'EXTENDED' END,
                                              ca.attname,
                                              CASE fa.attcompression WHEN 'p' THEN 'pglz' WHEN 'l' THEN 'lz4'
                                                                     ELSE 'default' END) END,
                                       ', ' ORDER BY ca.attnum)
                     FROM bidim.chunk c
                     JOIN pg_attribute fa ON fa.attrelid = c.rel AND fa.attnum > 0
                     JOIN pg_attribute ca ON ca.attrelid = c.chunk_rel AND ca.attnum = fa.attnum
                                         AND NOT ca.attisdropped
                     WHERE c.rel = $1 AND c.state <> 'cold'
                       AND (fa.attisdropped
                            OR ca.attstorage <> fa.attstorage OR ca.attcompression <> fa.attcompression)
                     GROUP BY c.chunk_rel",
                    None,
                    &[facade.into()],
                )?;
                let mut v = Vec::new();
                for r in rows {
                    if let (Some(c), Some(a)) = (r.get::<String>(1)?, r.get::<String>(2)?) {
                        v.push((c, a));
                    }
                }
                Ok::<_, pgrx::spi::Error>(v)
            }),
            "read column settings",
        );
        for (chunk, alter) in alters {
            spi_or_raise(
                Spi::run(&format!("ALTER TABLE {chunk} {alter}")),
                "apply column settings to a chunk",
            );
        }
    });
}

/// (key attnum, time attnum) a chunk's (key, time) index is built on.
pub(super) fn chunk_index_columns(chunk: pg_sys::Oid) -> Option<(i16, i16)> {
    // SAFETY: the chunk is opened for its index list, the index for its key columns.
    unsafe {
        let rel = pg_sys::try_table_open(chunk, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        if rel.is_null() {
            return None;
        }
        let list = pg_sys::RelationGetIndexList(rel);
        let out = if pg_sys::list_length(list) > 0 {
            let idx = pg_sys::index_open(
                pg_sys::list_nth_oid(list, 0),
                pg_sys::AccessShareLock as pg_sys::LOCKMODE,
            );
            let ind = (*idx).rd_index;
            let keys = (*ind).indkey.values.as_slice((*ind).indnatts as usize);
            let r = (keys.len() >= 2).then(|| (keys[0], keys[1]));
            pg_sys::index_close(idx, pg_sys::NoLock as pg_sys::LOCKMODE);
            r
        } else {
            None
        };
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        out
    }
}
