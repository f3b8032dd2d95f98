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

/// At most 80 characters of `s`, for an error message that quotes user input.
pub fn abbreviate(s: &str) -> String {
    // A NUL would end the C string of the error message: show it as \0.
    let s = s.replace('\0', "\\0");
    if s.chars().count() <= 80 {
        s
    } else {
        s.chars().take(77).collect::<String>() + "..."
    }
}

/// The unread bytes of a receive function's StringInfo argument (consumed).
///
/// # Safety
/// Argument 0 must be a `StringInfo`; the slice lives as long as its buffer.
pub unsafe fn recv_bytes<'a>(fcinfo: pg_sys::FunctionCallInfo) -> &'a [u8] {
    // SAFETY: per the contract; cursor..len is the unread part of the buffer.
    unsafe {
        let buf = arg(fcinfo, 0).0.cast_mut_ptr::<pg_sys::StringInfoData>();
        let start = (*buf).cursor as usize;
        let len = (*buf).len as usize;
        let b = std::slice::from_raw_parts(((*buf).data as *const u8).add(start), len - start);
        (*buf).cursor = (*buf).len;
        b
    }
}

/// Compares the bytes of two non-null varlena arguments (a type's canonical binary
/// form: btree order and equality).
///
/// # Safety
/// Arguments 0 and 1 must be non-null varlenas.
pub unsafe fn compare_bytes(fcinfo: pg_sys::FunctionCallInfo) -> std::cmp::Ordering {
    // SAFETY: per the contract; detoasting also flattens expanded objects.
    unsafe { varlena_bytes(arg(fcinfo, 0).0).cmp(varlena_bytes(arg(fcinfo, 1).0)) }
}

unsafe extern "C-unwind" {
    /// PostgreSQL's hash of a byte string (common/hashfn.c), what `hash_any` returns.
    fn hash_bytes(k: *const u8, keylen: i32) -> u32;
}

/// The hash of the bytes of a non-null varlena argument 0.
///
/// # Safety
/// Argument 0 must be a non-null varlena.
pub unsafe fn hash_arg_bytes(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: per the contract; hash_bytes reads exactly the slice.
    unsafe {
        let b = varlena_bytes(arg(fcinfo, 0).0);
        pg_sys::Datum::from(hash_bytes(b.as_ptr(), b.len() as i32))
    }
}

/// Declares btree support functions of a type ordered by its canonical bytes: each
/// `(finfo, name, map)` compares the two arguments' bytes and maps the `Ordering` to
/// the result datum (with [`cmp_datum`] or [`bool_datum`]).
#[macro_export]
macro_rules! byte_order_functions {
    ($(($finfo:ident, $name:ident, $map:expr)),* $(,)?) => {
        $(
            finfo!($finfo);
            /// A comparison of two values by their canonical bytes.
            ///
            /// # Safety
            /// PostgreSQL calls it with two non-null values of the type (STRICT).
            #[pgrx::pg_guard]
            #[no_mangle]
            pub unsafe extern "C-unwind" fn $name(
                fcinfo: pgrx::pg_sys::FunctionCallInfo,
            ) -> pgrx::pg_sys::Datum {
                // SAFETY: STRICT: both arguments are non-null varlenas of the type.
                let o = unsafe { $crate::fmgr::compare_bytes(fcinfo) };
                ($map)(o)
            }
        )*
    };
}

/// A boolean as a datum.
pub fn bool_datum(b: bool) -> pg_sys::Datum {
    pg_sys::Datum::from(b)
}

/// Ordering -> int4 for a btree comparison function.
pub fn cmp_datum(o: std::cmp::Ordering) -> pg_sys::Datum {
    pg_sys::Datum::from(o as i32)
}
