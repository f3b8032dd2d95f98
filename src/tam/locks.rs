//! The advisory locks bidim takes, in one place: transaction-scoped, taken through the
//! lock manager's C API (no SQL, so no function name to resolve). They show in
//! `pg_locks` as advisory locks whose `objsubid` is 98, 99 or 100: a lock space the
//! SQL functions `pg_advisory_lock` & co. never use (they use 1 and 2), so no user can
//! hold one of bidim's locks to stall another user's table.

use pgrx::pg_sys;

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
    /// (table oid, second key, lock space).
    fn keys(self) -> (u32, u32, u16) {
        match self {
            Lock::ChunkCreation(t) => (t.to_u32(), 0, 98),
            Lock::Seal(t, ordinal) => (t.to_u32(), ordinal, 99),
            Lock::Split(t, range) => (t.to_u32(), range as u32, 100),
        }
    }

    fn tag(self) -> pg_sys::LOCKTAG {
        let (a, b, space) = self.keys();
        // Like SET_LOCKTAG_ADVISORY: database, key1, key2, space.
        pg_sys::LOCKTAG {
            // SAFETY: reads this backend's database oid.
            locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
            locktag_field2: a,
            locktag_field3: b,
            locktag_field4: space,
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
