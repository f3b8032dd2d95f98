//! The SQL layer of tags: `tagset` and `tagquery` types, operators, the GIN operator
//! class `tagset_ops`, and the describe-tags dictionary.
//!
//! Version-1 C functions over the pure cores in [`super::model`], [`super::query`] and
//! [`super::gin`]. Compiled queries (regexes included) are cached per call site in
//! `fn_extra` for `@@`, and per index scan (through GIN's `extra_data`) for the index;
//! both caches are freed by memory-context reset callbacks.

use super::gin::{self, Plan};
use super::model::{Tag, TagError, TagSet};
use super::query::{self, Compiled, Tri};
use crate::error::raise;
use crate::fmgr::{
    abbreviate, arg, bool_datum, hash_arg_bytes, null, recv_bytes, varlena_bytes, varlena_of,
};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;

pgrx::extension_sql!(
    r#"
CREATE TYPE @extschema@.tagset;
CREATE FUNCTION tagset_in(cstring) RETURNS tagset
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_in';
CREATE FUNCTION tagset_out(tagset) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_out';
CREATE FUNCTION tagset_recv(internal) RETURNS tagset
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_recv';
CREATE FUNCTION tagset_send(tagset) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_send';
CREATE TYPE @extschema@.tagset (
    INPUT = tagset_in, OUTPUT = tagset_out, RECEIVE = tagset_recv, SEND = tagset_send,
    INTERNALLENGTH = VARIABLE, STORAGE = extended
);
COMMENT ON TYPE tagset IS 'bidim: a sorted, de-duplicated set of key:value (or bare) tags';

CREATE TYPE @extschema@.tagquery;
CREATE FUNCTION tagquery_in(cstring) RETURNS tagquery
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagquery_in';
CREATE FUNCTION tagquery_out(tagquery) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagquery_out';
CREATE FUNCTION tagquery_recv(internal) RETURNS tagquery
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagquery_recv';
CREATE FUNCTION tagquery_send(tagquery) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagquery_send';
CREATE TYPE @extschema@.tagquery (
    INPUT = tagquery_in, OUTPUT = tagquery_out, RECEIVE = tagquery_recv, SEND = tagquery_send,
    INTERNALLENGTH = VARIABLE, STORAGE = extended
);
COMMENT ON TYPE tagquery IS 'bidim: a boolean query over tags (AND, OR, NOT, key:value, key:*, globs, IN, /regex/)';

CREATE FUNCTION tagset_contains(tagset, tagset) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_contains';
CREATE FUNCTION tagset_contained(tagset, tagset) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_contained';
CREATE FUNCTION tagset_overlaps(tagset, tagset) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_overlaps';
CREATE FUNCTION tagset_has_key(tagset, text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_has_key';
CREATE FUNCTION tagset_has_any_key(tagset, text[]) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_has_any_key';
CREATE FUNCTION tagset_has_all_keys(tagset, text[]) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_has_all_keys';
CREATE FUNCTION tagset_value(tagset, text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_value';
CREATE FUNCTION tagset_matches(tagset, tagquery) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_matches';
CREATE FUNCTION tagset_cmp(tagset, tagset) RETURNS int4
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_cmp';
CREATE FUNCTION tagset_eq(tagset, tagset) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_eq';
CREATE FUNCTION tagset_ne(tagset, tagset) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_ne';
CREATE FUNCTION tagset_lt(tagset, tagset) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_lt';
CREATE FUNCTION tagset_le(tagset, tagset) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_le';
CREATE FUNCTION tagset_gt(tagset, tagset) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_gt';
CREATE FUNCTION tagset_ge(tagset, tagset) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_ge';
CREATE FUNCTION tagset_hash(tagset) RETURNS int4
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_hash';
CREATE FUNCTION tags(text[]) RETURNS tagset
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_from_array';
CREATE FUNCTION tagset_tags(tagset) RETURNS text[]
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_to_array';
CREATE FUNCTION tagset_keys(tagset) RETURNS text[]
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_keys';
CREATE FUNCTION tagset_count(tagset) RETURNS int4
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_count';
CREATE FUNCTION tagset_each(tagset) RETURNS TABLE (key text, value text)
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN p OPERATOR(pg_catalog.>) 0 THEN pg_catalog.left(t, p OPERATOR(pg_catalog.-) 1) ELSE t END,
           CASE WHEN p OPERATOR(pg_catalog.>) 0 THEN pg_catalog.substr(t, p OPERATOR(pg_catalog.+) 1) END
    FROM pg_catalog.unnest(@extschema@.tagset_tags($1)) WITH ORDINALITY AS u(t, i),
         pg_catalog.strpos(t, ':') AS p
    ORDER BY i
$$;
CREATE CAST (text[] AS tagset) WITH FUNCTION tags(text[]);
CREATE CAST (tagset AS text[]) WITH FUNCTION tagset_tags(tagset);

CREATE OPERATOR @extschema@.@> (LEFTARG = tagset, RIGHTARG = tagset, FUNCTION = tagset_contains,
    COMMUTATOR = <@, RESTRICT = matchingsel, JOIN = matchingjoinsel);
CREATE OPERATOR @extschema@.<@ (LEFTARG = tagset, RIGHTARG = tagset, FUNCTION = tagset_contained,
    COMMUTATOR = @>, RESTRICT = matchingsel, JOIN = matchingjoinsel);
CREATE OPERATOR @extschema@.&& (LEFTARG = tagset, RIGHTARG = tagset, FUNCTION = tagset_overlaps,
    COMMUTATOR = &&, RESTRICT = matchingsel, JOIN = matchingjoinsel);
CREATE OPERATOR @extschema@.? (LEFTARG = tagset, RIGHTARG = text, FUNCTION = tagset_has_key,
    RESTRICT = matchingsel, JOIN = matchingjoinsel);
CREATE OPERATOR @extschema@.?| (LEFTARG = tagset, RIGHTARG = text[], FUNCTION = tagset_has_any_key,
    RESTRICT = matchingsel, JOIN = matchingjoinsel);
CREATE OPERATOR @extschema@.?& (LEFTARG = tagset, RIGHTARG = text[], FUNCTION = tagset_has_all_keys,
    RESTRICT = matchingsel, JOIN = matchingjoinsel);
CREATE OPERATOR @extschema@.-> (LEFTARG = tagset, RIGHTARG = text, FUNCTION = tagset_value);
CREATE OPERATOR @extschema@.@@ (LEFTARG = tagset, RIGHTARG = tagquery, FUNCTION = tagset_matches,
    RESTRICT = matchingsel, JOIN = matchingjoinsel);
CREATE OPERATOR @extschema@.= (LEFTARG = tagset, RIGHTARG = tagset, FUNCTION = tagset_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES);
CREATE OPERATOR @extschema@.<> (LEFTARG = tagset, RIGHTARG = tagset, FUNCTION = tagset_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR @extschema@.< (LEFTARG = tagset, RIGHTARG = tagset, FUNCTION = tagset_lt,
    COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR @extschema@.<= (LEFTARG = tagset, RIGHTARG = tagset, FUNCTION = tagset_le,
    COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR @extschema@.> (LEFTARG = tagset, RIGHTARG = tagset, FUNCTION = tagset_gt,
    COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE OPERATOR @extschema@.>= (LEFTARG = tagset, RIGHTARG = tagset, FUNCTION = tagset_ge,
    COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR CLASS tagset_btree_ops DEFAULT FOR TYPE tagset USING btree AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
    FUNCTION 1 tagset_cmp(tagset, tagset);
CREATE OPERATOR CLASS tagset_hash_ops DEFAULT FOR TYPE tagset USING hash AS
    OPERATOR 1 =, FUNCTION 1 tagset_hash(tagset);

-- GIN: entries K<key> and V<tag>, compared bytewise; all atoms are exact.
CREATE FUNCTION tagset_gin_extract_value(tagset, internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_gin_extract_value';
CREATE FUNCTION tagset_gin_extract_query(tagset, internal, int2, internal, internal, internal, internal)
    RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_gin_extract_query';
CREATE FUNCTION tagset_gin_consistent(internal, int2, tagset, int4, internal, internal, internal, internal)
    RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_gin_consistent';
CREATE FUNCTION tagset_gin_triconsistent(internal, int2, tagset, int4, internal, internal, internal)
    RETURNS "char"
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_gin_triconsistent';
CREATE FUNCTION tagset_gin_compare_partial(text, text, int2, internal) RETURNS int4
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_gin_compare_partial';
CREATE FUNCTION tagset_gin_options(internal) RETURNS void
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'tagset_gin_options';
CREATE OPERATOR CLASS tagset_ops DEFAULT FOR TYPE tagset USING gin AS
    OPERATOR 1 && (tagset, tagset),
    OPERATOR 2 @> (tagset, tagset),
    OPERATOR 7 ? (tagset, text),
    OPERATOR 8 ?| (tagset, text[]),
    OPERATOR 9 ?& (tagset, text[]),
    OPERATOR 10 @@ (tagset, tagquery),
    FUNCTION 1 bttext_pattern_cmp(text, text),
    FUNCTION 2 tagset_gin_extract_value(tagset, internal, internal),
    FUNCTION 3 tagset_gin_extract_query(tagset, internal, int2, internal, internal, internal, internal),
    FUNCTION 4 tagset_gin_consistent(internal, int2, tagset, int4, internal, internal, internal, internal),
    FUNCTION 5 tagset_gin_compare_partial(text, text, int2, internal),
    FUNCTION 6 tagset_gin_triconsistent(internal, int2, tagset, int4, internal, internal, internal),
    FUNCTION 7 tagset_gin_options(internal),
    STORAGE text;
COMMENT ON OPERATOR CLASS tagset_ops USING gin IS
    'bidim: tag inverted index (option key_entries, default true: index each key too, for fast ?, ?|, ?& and key:*)';
"#,
    name = "tags_sql",
);

const S_OVERLAPS: u16 = 1;
const S_CONTAINS: u16 = 2;
const S_HAS_KEY: u16 = 7;
const S_HAS_ANY: u16 = 8;
const S_HAS_ALL: u16 = 9;
const S_MATCHES: u16 = 10;

// ---------------------------------------------------------------------------------
// Helpers

fn tag_fail(kind: &str, input: &str, e: TagError) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
        format!(
            "invalid input syntax for type {kind}: \"{}\": {e}",
            abbreviate(input)
        ),
        None,
    )
}

/// The tag set of a non-null tagset datum.
///
/// # Safety
/// `d` must be a non-null tagset datum.
pub(crate) unsafe fn set_of(d: pg_sys::Datum) -> TagSet {
    // SAFETY: forwarded.
    let bytes = unsafe { varlena_bytes(d) };
    TagSet::decode(bytes)
        .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_DATA_CORRUPTED, e.to_string(), None))
}

fn set_datum(s: &TagSet) -> pg_sys::Datum {
    varlena_of(&s.encode())
}

/// The UTF-8 text of a non-null text datum.
///
/// # Safety
/// `d` must be a non-null text datum.
unsafe fn text_of<'a>(d: pg_sys::Datum) -> &'a str {
    // SAFETY: forwarded; the database encoding is assumed UTF-8 (checked at input).
    std::str::from_utf8(unsafe { varlena_bytes(d) }).unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
            "bidim tags need UTF-8 text",
            None,
        )
    })
}

fn text_datum(s: &str) -> pg_sys::Datum {
    // SAFETY: builds a text varlena from bytes in the current memory context.
    unsafe {
        pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(
            s.as_ptr() as *const std::ffi::c_char,
            s.len() as i32,
        ))
    }
}

/// Elements of a non-null text[] datum (NULL elements are errors).
///
/// # Safety
/// `d` must be a non-null text[] datum.
unsafe fn texts_of(d: pg_sys::Datum, what: &str) -> Vec<String> {
    // SAFETY: forwarded.
    let v = unsafe { Vec::<Option<String>>::from_datum(d, false) }.unwrap_or_default();
    v.into_iter()
        .map(|e| {
            e.unwrap_or_else(|| {
                raise(
                    PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                    format!("{what} must not contain NULL elements"),
                    None,
                )
            })
        })
        .collect()
}

fn parse_query(text: &str) -> query::Query {
    query::parse(text).unwrap_or_else(|e| {
        let code = match e.kind {
            query::QueryErrorKind::Regex => PgSqlErrorCode::ERRCODE_INVALID_REGULAR_EXPRESSION,
            query::QueryErrorKind::Syntax => PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
        };
        raise(
            code,
            format!("invalid input syntax for type tagquery: \"{}\": {e}", abbreviate(text)),
            Some("Write tags as key:value, key:*, key:web-*, key:/regex/, key IN (a, b); combine with AND, OR, NOT and parentheses; quote values with spaces, commas, colons or parentheses."),
        )
    })
}

/// The canonical text stored in a non-null tagquery datum.
///
/// # Safety
/// `d` must be a non-null tagquery datum.
unsafe fn query_text<'a>(d: pg_sys::Datum) -> &'a str {
    // SAFETY: forwarded; tagquery varlenas hold a version byte and UTF-8 text.
    let b = unsafe { varlena_bytes(d) };
    match b.split_first() {
        Some((1, rest)) => std::str::from_utf8(rest).unwrap_or(""),
        _ => raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            "invalid tagquery: unknown format version",
            None,
        ),
    }
}

fn query_datum(q: &query::Query) -> pg_sys::Datum {
    let mut b = vec![1u8];
    b.extend_from_slice(q.to_string().as_bytes());
    varlena_of(&b)
}

/// Registers a callback that drops `boxed` when `cxt` is reset or deleted.
fn free_with<T>(cxt: pg_sys::MemoryContext, boxed: *mut T) {
    #[pg_guard]
    unsafe extern "C-unwind" fn drop_it<T>(arg: *mut std::ffi::c_void) {
        // SAFETY: arg is the Box pointer registered below, dropped exactly once.
        unsafe { drop(Box::from_raw(arg as *mut T)) };
    }
    // SAFETY: a callback record allocated in the same context it watches.
    unsafe {
        let cb = pg_sys::MemoryContextAllocZero(
            cxt,
            std::mem::size_of::<pg_sys::MemoryContextCallback>(),
        ) as *mut pg_sys::MemoryContextCallback;
        (*cb).func = Some(drop_it::<T>);
        (*cb).arg = boxed as *mut std::ffi::c_void;
        pg_sys::MemoryContextRegisterResetCallback(cxt, cb);
    }
}

/// A compiled query cached per call site: `fn_extra` points to it while the query
/// text is the same.
struct Cached {
    text: String,
    compiled: Compiled,
}

/// The compiled query of argument `i`, cached in `fn_extra`.
///
/// # Safety
/// `fcinfo` must be a call whose argument `i` is a non-null tagquery.
unsafe fn cached_query<'a>(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> &'a Compiled {
    // SAFETY: per the contract; fn_extra is ours for this call site and holds a Box
    // freed with fn_mcxt.
    unsafe {
        let text = query_text(arg(fcinfo, i).0);
        let flinfo = (*fcinfo).flinfo;
        let cur = (*flinfo).fn_extra as *mut Cached;
        if !cur.is_null() && (*cur).text == text {
            return &(*cur).compiled;
        }
        let compiled = Compiled::new(parse_query(text)).unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_REGULAR_EXPRESSION,
                format!("invalid regular expression in tagquery \"{text}\": {e}"),
                None,
            )
        });
        let b = Box::into_raw(Box::new(Cached {
            text: text.to_string(),
            compiled,
        }));
        // The previous entry stays until fn_mcxt goes (its callback frees it).
        free_with((*flinfo).fn_mcxt, b);
        (*flinfo).fn_extra = b as *mut std::ffi::c_void;
        &(*b).compiled
    }
}

// ---------------------------------------------------------------------------------
// Type I/O

finfo!(pg_finfo_tagset_in);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_in(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the input function's argument is a C string.
    let text = unsafe { CStr::from_ptr(arg(fcinfo, 0).0.cast_mut_ptr()) }.to_string_lossy();
    match TagSet::parse(&text) {
        Ok(s) => set_datum(&s),
        Err(e) => tag_fail("tagset", &text, e),
    }
}

finfo!(pg_finfo_tagset_out);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_out(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (tagset).
    let s = unsafe { set_of(arg(fcinfo, 0).0) }.to_string();
    let c = std::ffi::CString::new(s).expect("tags have no NUL");
    // SAFETY: copies into a palloc'd C string.
    pg_sys::Datum::from(unsafe { pg_sys::pstrdup(c.as_ptr()) })
}

finfo!(pg_finfo_tagset_recv);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_recv(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: a receive function.
    let b = unsafe { recv_bytes(fcinfo) };
    match TagSet::decode(b) {
        Ok(s) => set_datum(&s),
        Err(e) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            format!("{e} ({} bytes)", b.len()),
            None,
        ),
    }
}

finfo!(pg_finfo_tagset_send);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_send(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (tagset): the binary form is the stored bytes.
    varlena_of(unsafe { varlena_bytes(arg(fcinfo, 0).0) })
}

finfo!(pg_finfo_tagquery_in);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagquery_in(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the input function's argument is a C string.
    let text = unsafe { CStr::from_ptr(arg(fcinfo, 0).0.cast_mut_ptr()) }.to_string_lossy();
    query_datum(&parse_query(&text))
}

finfo!(pg_finfo_tagquery_out);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagquery_out(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (tagquery).
    let t = unsafe { query_text(arg(fcinfo, 0).0) };
    let c = std::ffi::CString::new(t).expect("queries have no NUL");
    // SAFETY: copies into a palloc'd C string.
    pg_sys::Datum::from(unsafe { pg_sys::pstrdup(c.as_ptr()) })
}

finfo!(pg_finfo_tagquery_recv);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagquery_recv(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: a receive function; the binary form is the version byte and the text.
    let b = unsafe { recv_bytes(fcinfo) };
    match b.split_first() {
        Some((1, rest)) => match std::str::from_utf8(rest) {
            Ok(t) => query_datum(&parse_query(t)),
            Err(_) => raise(
                PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
                "invalid binary tagquery: not UTF-8",
                None,
            ),
        },
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            "invalid binary tagquery: unknown format version",
            None,
        ),
    }
}

finfo!(pg_finfo_tagquery_send);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagquery_send(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (tagquery).
    varlena_of(unsafe { varlena_bytes(arg(fcinfo, 0).0) })
}

// ---------------------------------------------------------------------------------
// Operators and functions

finfo!(pg_finfo_tagset_contains);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_contains(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (tagset, tagset).
    unsafe { bool_datum(set_of(arg(fcinfo, 0).0).contains_all(&set_of(arg(fcinfo, 1).0))) }
}

finfo!(pg_finfo_tagset_contained);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_contained(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: STRICT (tagset, tagset).
    unsafe { bool_datum(set_of(arg(fcinfo, 1).0).contains_all(&set_of(arg(fcinfo, 0).0))) }
}

finfo!(pg_finfo_tagset_overlaps);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_overlaps(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (tagset, tagset).
    unsafe { bool_datum(set_of(arg(fcinfo, 0).0).overlaps(&set_of(arg(fcinfo, 1).0))) }
}

finfo!(pg_finfo_tagset_has_key);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_has_key(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (tagset, text).
    unsafe { bool_datum(set_of(arg(fcinfo, 0).0).has_key(text_of(arg(fcinfo, 1).0))) }
}

finfo!(pg_finfo_tagset_has_any_key);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_has_any_key(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: STRICT (tagset, text[]).
    unsafe {
        let s = set_of(arg(fcinfo, 0).0);
        let keys = texts_of(arg(fcinfo, 1).0, "the key array");
        bool_datum(keys.iter().any(|k| s.has_key(k)))
    }
}

finfo!(pg_finfo_tagset_has_all_keys);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_has_all_keys(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: STRICT (tagset, text[]).
    unsafe {
        let s = set_of(arg(fcinfo, 0).0);
        let keys = texts_of(arg(fcinfo, 1).0, "the key array");
        bool_datum(keys.iter().all(|k| s.has_key(k)))
    }
}

finfo!(pg_finfo_tagset_value);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_value(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (tagset, text).
    unsafe {
        let s = set_of(arg(fcinfo, 0).0);
        let key = text_of(arg(fcinfo, 1).0);
        let with: Vec<&Tag> = s
            .with_key(key)
            .iter()
            .filter(|t| t.value().is_some())
            .collect();
        match with.as_slice() {
            [] => null(fcinfo),
            [t] => text_datum(t.value().unwrap_or("")),
            many => raise(
                PgSqlErrorCode::ERRCODE_CARDINALITY_VIOLATION,
                format!("tag key \"{key}\" has {} values in {s}", many.len()),
                Some("Use tagset_each(tags) to list every value of a key."),
            ),
        }
    }
}

finfo!(pg_finfo_tagset_matches);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_matches(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (tagset, tagquery).
    unsafe {
        let q = cached_query(fcinfo, 1);
        bool_datum(q.matches(&set_of(arg(fcinfo, 0).0)))
    }
}

byte_order_functions!(
    (pg_finfo_tagset_cmp, tagset_cmp, crate::fmgr::cmp_datum),
    (pg_finfo_tagset_eq, tagset_eq, |o: std::cmp::Ordering| {
        crate::fmgr::bool_datum(o.is_eq())
    }),
    (pg_finfo_tagset_ne, tagset_ne, |o: std::cmp::Ordering| {
        crate::fmgr::bool_datum(o.is_ne())
    }),
    (pg_finfo_tagset_lt, tagset_lt, |o: std::cmp::Ordering| {
        crate::fmgr::bool_datum(o.is_lt())
    }),
    (pg_finfo_tagset_le, tagset_le, |o: std::cmp::Ordering| {
        crate::fmgr::bool_datum(o.is_le())
    }),
    (pg_finfo_tagset_gt, tagset_gt, |o: std::cmp::Ordering| {
        crate::fmgr::bool_datum(o.is_gt())
    }),
    (pg_finfo_tagset_ge, tagset_ge, |o: std::cmp::Ordering| {
        crate::fmgr::bool_datum(o.is_ge())
    }),
);

finfo!(pg_finfo_tagset_hash);
/// The hash of a value's canonical bytes.
///
/// # Safety
/// PostgreSQL calls it with a non-null value (STRICT).
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_hash(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT: argument 0 is a non-null varlena of the type.
    unsafe { hash_arg_bytes(fcinfo) }
}

finfo!(pg_finfo_tagset_from_array);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_from_array(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: STRICT (text[]).
    let texts = unsafe { texts_of(arg(fcinfo, 0).0, "tags(text[])") };
    match TagSet::from_texts(&texts) {
        Ok(s) => set_datum(&s),
        Err(e) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("cannot make a tagset: {e}"),
            None,
        ),
    }
}

finfo!(pg_finfo_tagset_to_array);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_to_array(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (tagset).
    let s = unsafe { set_of(arg(fcinfo, 0).0) };
    let v: Vec<String> = s.tags().iter().map(|t| t.text().to_string()).collect();
    // SAFETY: builds an array in the current memory context.
    v.into_datum().unwrap_or_else(|| unsafe { null(fcinfo) })
}

finfo!(pg_finfo_tagset_keys);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_keys(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (tagset).
    let s = unsafe { set_of(arg(fcinfo, 0).0) };
    let v: Vec<String> = s.keys().into_iter().map(str::to_string).collect();
    // SAFETY: builds an array in the current memory context.
    v.into_datum().unwrap_or_else(|| unsafe { null(fcinfo) })
}

finfo!(pg_finfo_tagset_count);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_count(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: STRICT (tagset); counts NUL terminators without decoding.
    let b = unsafe { varlena_bytes(arg(fcinfo, 0).0) };
    pg_sys::Datum::from(b.iter().skip(1).filter(|&&c| c == 0).count() as i32)
}

// ---------------------------------------------------------------------------------
// GIN support

/// The operator class options (`tagset_ops(key_entries = false)`), as PostgreSQL lays
/// out local reloptions: a varlena header, then the fields.
#[repr(C)]
struct GinOptions {
    vl_len_: i32,
    key_entries: bool,
}

finfo!(pg_finfo_tagset_gin_options);
/// `tagset_gin_options(internal)`: declares the operator class options.
///
/// # Safety
/// PostgreSQL calls it with a `local_relopts *`.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_gin_options(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: registers one bool option in the caller's local_relopts.
    unsafe {
        let relopts = arg(fcinfo, 0).0.cast_mut_ptr::<pg_sys::local_relopts>();
        pg_sys::init_local_reloptions(relopts, std::mem::size_of::<GinOptions>());
        pg_sys::add_local_bool_reloption(
            relopts,
            c"key_entries".as_ptr(),
            c"index every tag key as well as every tag (fast key-presence lookups, larger index)"
                .as_ptr(),
            true,
            std::mem::offset_of!(GinOptions, key_entries) as i32,
        );
    }
    pg_sys::Datum::from(0)
}

/// Whether this index has key entries (the `key_entries` option, default true).
///
/// # Safety
/// `fcinfo` must be a call of one of the operator class's support functions.
unsafe fn key_entries(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    // SAFETY: PostgreSQL attaches the index's opclass options to its support
    // functions' FmgrInfo; the bytea has the GinOptions layout registered above.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if flinfo.is_null() || !pg_sys::has_fn_opclass_options(flinfo) {
            return true;
        }
        let opts = pg_sys::get_fn_opclass_options(flinfo) as *const GinOptions;
        opts.is_null() || (*opts).key_entries
    }
}

/// Writes `entries` as a palloc'd array of text datums; returns it and sets `*n`.
///
/// # Safety
/// `n` must be a valid int32 out-parameter.
unsafe fn entry_array(entries: &[String], n: *mut i32) -> *mut pg_sys::Datum {
    // SAFETY: palloc of a datum array, filled with palloc'd texts.
    unsafe {
        *n = entries.len() as i32;
        if entries.is_empty() {
            return std::ptr::null_mut();
        }
        let out = pg_sys::palloc(std::mem::size_of::<pg_sys::Datum>() * entries.len())
            as *mut pg_sys::Datum;
        for (i, e) in entries.iter().enumerate() {
            *out.add(i) = text_datum(e);
        }
        out
    }
}

finfo!(pg_finfo_tagset_gin_extract_value);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_gin_extract_value(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: GIN calls (tagset, int32 *nentries, bool **nullFlags).
    unsafe {
        let bytes = varlena_bytes(arg(fcinfo, 0).0);
        let entries = gin::extract_encoded(bytes, key_entries(fcinfo));
        let n = arg(fcinfo, 1).0.cast_mut_ptr::<i32>();
        pg_sys::Datum::from(entry_array(&entries, n))
    }
}

/// What an index scan keeps for `@@`: the compiled query and its plan; every entry's
/// `extra_data` points to an [`EntryExtra`].
struct ScanQuery {
    compiled: Compiled,
    plan: Plan,
}

#[repr(C)]
struct EntryExtra {
    shared: *const ScanQuery,
    index: usize,
}

finfo!(pg_finfo_tagset_gin_extract_query);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_gin_extract_query(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: GIN calls (query, int32 *nentries, StrategyNumber, bool **pmatch,
    // Pointer **extra_data, bool **nullFlags, int32 *searchMode); out-parameters are
    // filled with palloc'd arrays in the scan's memory context.
    unsafe {
        let q = arg(fcinfo, 0).0;
        let n = arg(fcinfo, 1).0.cast_mut_ptr::<i32>();
        let strategy = arg(fcinfo, 2).0.value() as u16;
        let pmatch = arg(fcinfo, 3).0.cast_mut_ptr::<*mut bool>();
        let extra = arg(fcinfo, 4).0.cast_mut_ptr::<*mut pg_sys::Pointer>();
        let mode = arg(fcinfo, 6).0.cast_mut_ptr::<i32>();
        *mode = pg_sys::GIN_SEARCH_MODE_DEFAULT as i32;
        let keys = key_entries(fcinfo);
        // Key lookups without key entries are partial matches on V<key>:.
        let key_lookups = |ks: &[String], pmatch: *mut *mut bool| -> Vec<String> {
            let es: Vec<gin::QueryEntry> = ks
                .iter()
                .flat_map(|k| gin::has_key_entries(k, keys))
                .collect();
            if !keys {
                let pm = pg_sys::palloc0(es.len().max(1)) as *mut bool;
                for (i, e) in es.iter().enumerate() {
                    *pm.add(i) = e.partial.is_some();
                }
                *pmatch = pm;
            }
            es.into_iter().map(|e| e.text).collect()
        };
        let entries: Vec<String> = match strategy {
            S_OVERLAPS | S_CONTAINS => {
                let s = set_of(q);
                if strategy == S_CONTAINS && s.is_empty() {
                    *mode = pg_sys::GIN_SEARCH_MODE_ALL as i32;
                }
                s.tags().iter().map(|t| gin::tag_entry(t.text())).collect()
            }
            S_HAS_KEY => key_lookups(&[text_of(q).to_string()], pmatch),
            S_HAS_ANY | S_HAS_ALL => {
                let mut ks = texts_of(q, "the key array");
                if strategy == S_HAS_ALL && ks.is_empty() {
                    *mode = pg_sys::GIN_SEARCH_MODE_ALL as i32;
                }
                ks.sort();
                ks.dedup();
                key_lookups(&ks, pmatch)
            }
            S_MATCHES => {
                let text = query_text(q);
                let compiled = Compiled::new(parse_query(text)).unwrap_or_else(|e| {
                    raise(
                        PgSqlErrorCode::ERRCODE_INVALID_REGULAR_EXPRESSION,
                        format!("invalid regular expression in tagquery \"{text}\": {e}"),
                        None,
                    )
                });
                let plan = gin::plan(&compiled.query, keys);
                if !plan.needs_entry {
                    *mode = pg_sys::GIN_SEARCH_MODE_ALL as i32;
                }
                let texts: Vec<String> = plan.entries.iter().map(|e| e.text.clone()).collect();
                let partial: Vec<bool> = plan.entries.iter().map(|e| e.partial.is_some()).collect();
                let shared = Box::into_raw(Box::new(ScanQuery { compiled, plan }));
                free_with(pg_sys::CurrentMemoryContext, shared);
                let k = texts.len();
                let pm = pg_sys::palloc0(k.max(1)) as *mut bool;
                let ex = pg_sys::palloc0(std::mem::size_of::<pg_sys::Pointer>() * k.max(1))
                    as *mut pg_sys::Pointer;
                for (i, &is_partial) in partial.iter().enumerate() {
                    *pm.add(i) = is_partial;
                    let e = pg_sys::palloc(std::mem::size_of::<EntryExtra>()) as *mut EntryExtra;
                    (*e).shared = shared;
                    (*e).index = i;
                    *ex.add(i) = e as pg_sys::Pointer;
                }
                *pmatch = pm;
                *extra = ex;
                texts
            }
            other => raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("tagset_ops: unknown strategy {other}"),
                None,
            ),
        };
        pg_sys::Datum::from(entry_array(&entries, n))
    }
}

finfo!(pg_finfo_tagset_gin_compare_partial);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_gin_compare_partial(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: GIN calls (text partial_key, text key, StrategyNumber, Pointer extra_data)
    // with the extra_data extract_query made for this entry.
    unsafe {
        let key = varlena_bytes(arg(fcinfo, 1).0);
        let extra = arg(fcinfo, 3).0.cast_mut_ptr::<EntryExtra>();
        if extra.is_null() {
            let partial = varlena_bytes(arg(fcinfo, 0).0);
            return pg_sys::Datum::from(if key.starts_with(partial) { 0i32 } else { 1 });
        }
        let shared = &*(*extra).shared;
        let e = &shared.plan.entries[(*extra).index];
        pg_sys::Datum::from(gin::partial_matches(e, Some(&shared.compiled), key))
    }
}

/// Three-valued consistency for every strategy.
///
/// # Safety
/// `check` must hold `n` entries; `extra` is extract_query's extra_data.
unsafe fn tri_consistent(
    strategy: u16,
    check: &[Tri],
    extra: *mut pg_sys::Pointer,
    keys: bool,
) -> Tri {
    let any = |c: &[Tri]| c.iter().fold(Tri::False, |acc, &t| acc.or(t));
    let all = |c: &[Tri]| c.iter().fold(Tri::True, |acc, &t| acc.and(t));
    match strategy {
        S_OVERLAPS | S_HAS_KEY | S_HAS_ANY => any(check),
        S_CONTAINS => all(check),
        // Each key is one entry, or two (bare tag, any value) without key entries.
        S_HAS_ALL => {
            let per_key: Vec<Tri> = check.chunks(if keys { 1 } else { 2 }).map(any).collect();
            all(&per_key)
        }
        S_MATCHES => {
            // SAFETY: extract_query set every entry's extra_data to an EntryExtra of
            // one live ScanQuery; @@ always has at least one entry.
            let shared = unsafe { &*(*(*extra as *mut EntryExtra)).shared };
            gin::consistent(&shared.compiled.query, &shared.plan, check)
        }
        _ => Tri::Maybe,
    }
}

finfo!(pg_finfo_tagset_gin_consistent);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_gin_consistent(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: GIN calls (bool check[], StrategyNumber, query, int32 nkeys, Pointer
    // extra_data[], bool *recheck, Datum queryKeys[], bool nullFlags[]).
    unsafe {
        let check = arg(fcinfo, 0).0.cast_mut_ptr::<bool>();
        let strategy = arg(fcinfo, 1).0.value() as u16;
        let n = arg(fcinfo, 3).0.value() as i32 as usize;
        let extra = arg(fcinfo, 4).0.cast_mut_ptr::<pg_sys::Pointer>();
        let recheck = arg(fcinfo, 5).0.cast_mut_ptr::<bool>();
        let tri: Vec<Tri> = (0..n)
            .map(|i| if *check.add(i) { Tri::True } else { Tri::False })
            .collect();
        let r = tri_consistent(strategy, &tri, extra, key_entries(fcinfo));
        *recheck = r == Tri::Maybe;
        bool_datum(r != Tri::False)
    }
}

finfo!(pg_finfo_tagset_gin_triconsistent);
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn tagset_gin_triconsistent(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: GIN calls (GinTernaryValue check[], StrategyNumber, query, int32 nkeys,
    // Pointer extra_data[], Datum queryKeys[], bool nullFlags[]).
    unsafe {
        let check = arg(fcinfo, 0).0.cast_mut_ptr::<i8>();
        let strategy = arg(fcinfo, 1).0.value() as u16;
        let n = arg(fcinfo, 3).0.value() as i32 as usize;
        let extra = arg(fcinfo, 4).0.cast_mut_ptr::<pg_sys::Pointer>();
        let tri: Vec<Tri> = (0..n)
            .map(|i| match *check.add(i) as u32 {
                pg_sys::GIN_FALSE => Tri::False,
                pg_sys::GIN_TRUE => Tri::True,
                _ => Tri::Maybe,
            })
            .collect();
        let v = match tri_consistent(strategy, &tri, extra, key_entries(fcinfo)) {
            Tri::False => pg_sys::GIN_FALSE,
            Tri::True => pg_sys::GIN_TRUE,
            Tri::Maybe => pg_sys::GIN_MAYBE,
        };
        pg_sys::Datum::from(v as i8)
    }
}

#[cfg(feature = "pg_test")]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn tagset_text_is_canonical() {
        let t = Spi::get_one::<String>("SELECT '{b:2, a:1,b:2}'::tagset::text").unwrap();
        assert_eq!(t.as_deref(), Some("{a:1,b:2}"));
    }

    #[pg_test]
    fn index_and_scan_agree() {
        Spi::run(
            "CREATE TABLE pgt_series AS SELECT g AS id,
                    tags(ARRAY['env:' || (g % 3), 'svc:web-' || (g % 7)]) AS tags
             FROM generate_series(1, 2000) g;
             CREATE INDEX ON pgt_series USING gin (tags);",
        )
        .unwrap();
        let q = "SELECT count(*) FROM pgt_series WHERE tags @@ 'env:1 AND NOT svc:web-3* OR svc:/web-[56]/'";
        let seq = Spi::get_one::<i64>(q).unwrap();
        Spi::run("SET LOCAL enable_seqscan = off").unwrap();
        let idx = Spi::get_one::<i64>(q).unwrap();
        assert_eq!(seq, idx);
        assert!(seq.unwrap_or(0) > 0);
    }

    #[pg_test(
        error = "invalid input syntax for type tagquery: \"a AND\": expected a tag, found the end of the query at position 6"
    )]
    fn bad_query_is_refused_with_its_position() {
        Spi::run("SELECT 'a AND'::tagquery").unwrap();
    }
}
