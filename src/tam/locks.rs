//! The advisory locks bidim takes, in one place: transaction-scoped, taken through the
//! lock manager's C API (no SQL, so no function name to resolve). They show in
//! `pg_locks` as advisory locks with two int4 keys, like `pg_advisory_xact_lock(a, b)`.

use pgrx::pg_sys;

/// First key of table-wide locks (no table oid collides with it as a second key).
const TABLE_CLASS: i32 = 1_651_076_461; // "bidm"

/// What a lock protects.
#[derive(Clone, Copy, Debug)]
pub enum Lock {
    /// Making a new chunk of a table (ordinal allocation): one maker at a time.
    ChunkCreation(pg_sys::Oid),
    /// Sealing chunk `ordinal` of a table (creating its successor).
    Seal(pg_sys::Oid, u32),
    /// Splitting key range `range_id` of a table.
    Split(pg_sys::Oid, i32),
}

impl Lock {
    /// The two int4 keys (as `pg_advisory_xact_lock(int4, int4)` would take them).
    fn keys(self) -> (i32, i32) {
        match self {
            Lock::ChunkCreation(t) => (TABLE_CLASS, t.to_u32() as i32),
            Lock::Seal(t, ordinal) => (t.to_u32() as i32, ordinal as i32),
            // Ordinals are positive: split locks use negative second keys.
            Lock::Split(t, range) => (t.to_u32() as i32, -1 - range),
        }
    }

    fn tag(self) -> pg_sys::LOCKTAG {
        let (a, b) = self.keys();
        // SET_LOCKTAG_INT32: database, key1, key2, 2 (two int4 keys).
        pg_sys::LOCKTAG {
            // SAFETY: reads this backend's database oid.
            locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
            locktag_field2: a as u32,
            locktag_field3: b as u32,
            locktag_field4: 2,
            locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
            locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
        }
    }

    /// Takes the lock until the transaction ends, waiting for it.
    pub fn acquire(self) {
        let tag = self.tag();
        // SAFETY: a transaction-scoped exclusive lock on an advisory tag.
        unsafe {
            pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as i32, false, false);
        }
    }

    /// Takes the lock until the transaction ends if nobody holds it; false if busy.
    pub fn try_acquire(self) -> bool {
        let tag = self.tag();
        // SAFETY: as above, without waiting.
        let r = unsafe { pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as i32, false, true) };
        r != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
    }
}
