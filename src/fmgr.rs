//! Plumbing shared by the version-1 C functions of the SQL layers (`sketch::sql`,
//! `tags::sql`): the `pg_finfo_` record, argument access, varlena in and out.

use pgrx::pg_sys;

/// Declares the `pg_finfo_` record that marks a C function as version 1.
#[macro_export]
macro_rules! finfo {
    ($finfo:ident) => {
        #[no_mangle]
        pub extern "C" fn $finfo() -> &'static pgrx::pg_sys::Pg_finfo_record {
            const V1: pgrx::pg_sys::Pg_finfo_record =
                pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    };
}

/// Argument `i`: (datum, is null).
///
/// # Safety
/// `fcinfo` must be a valid call with more than `i` arguments.
pub unsafe fn arg(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> (pg_sys::Datum, bool) {
    // SAFETY: per the contract, args holds nargs > i entries.
    unsafe {
        let a = &*(*fcinfo).args.as_ptr().add(i);
        (a.value, a.isnull)
    }
}

/// Number of arguments of the call.
///
/// # Safety
/// `fcinfo` must be valid.
pub unsafe fn nargs(fcinfo: pg_sys::FunctionCallInfo) -> usize {
    // SAFETY: per the contract.
    unsafe { (*fcinfo).nargs as usize }
}

/// Returns SQL NULL.
///
/// # Safety
/// `fcinfo` must be valid.
pub unsafe fn null(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: per the contract.
    unsafe { (*fcinfo).isnull = true };
    pg_sys::Datum::from(0)
}

/// The bytes of a (detoasted) varlena datum.
///
/// # Safety
/// `d` must be a non-null varlena datum; the slice lives as long as the current
/// memory context keeps the detoasted copy.
pub unsafe fn varlena_bytes<'a>(d: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: detoasting (which also flattens expanded objects) a valid varlena.
    unsafe {
        let p = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
        let len = pgrx::varlena::varsize_any_exhdr(p);
        std::slice::from_raw_parts(pgrx::varlena::vardata_any(p) as *const u8, len)
    }
}

/// A new varlena holding `bytes`, in the current memory context.
pub fn varlena_of(bytes: &[u8]) -> pg_sys::Datum {
    // SAFETY: palloc of header + payload, then the 4-byte header and a copy.
    unsafe {
        let total = pg_sys::VARHDRSZ + bytes.len();
        let p = pg_sys::palloc(total) as *mut pg_sys::varlena;
        pgrx::set_varsize_4b(p, total as i32);
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            (p as *mut u8).add(pg_sys::VARHDRSZ),
            bytes.len(),
        );
        pg_sys::Datum::from(p)
    }
}
