//! GIN index entries of tag sets and queries, and the consistent logic. Pure Rust.
//!
//! A tag set's entries are one `K<key>` per distinct key and one `V<tag>` per tag (the
//! tag's full text, `key:value` or the bare `key`), compared bytewise. So `@>`, `&&`,
//! `?`, `?|`, `?&` and the `key:value`, `key:*` and `IN` atoms are decided by exact
//! entries, with no recheck. Glob and regex atoms on values are partial matches over
//! the entries `V<key>:...`: GIN walks the key's values in order from the prefix and
//! asks [`partial_matches`] about each, so they are exact too, and cost the number of
//! distinct values of the key rather than of series.
//!
//! With the operator class option `key_entries = false` the `K<key>` entries are left
//! out (a smaller index: every series' keys are otherwise posted once more); key
//! presence is then the bare tag's entry `V<key>` or a partial match on `V<key>:`.

use super::model::TagSet;
use super::query::{eval3, glob_matches, Atom, Compiled, GlobPart, Query, Tri};
use std::ops::Range;

/// The entry for "key present".
pub fn key_entry(key: &str) -> String {
    format!("K{key}")
}

/// The entry for one tag (its full text).
pub fn tag_entry(tag: &str) -> String {
    format!("V{tag}")
}

/// Entries of a tag set: keys (when `keys`) and tags, sorted and distinct.
pub fn extract_value(set: &TagSet, keys: bool) -> Vec<String> {
    let mut out: Vec<String> = if keys {
        set.keys().into_iter().map(key_entry).collect()
    } else {
        Vec::new()
    };
    out.extend(set.tags().iter().map(|t| tag_entry(t.text())));
    out.sort();
    out.dedup();
    out
}

/// Entries of an encoded tag set, without decoding it fully.
pub fn extract_encoded(bytes: &[u8], keys: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut last_key: Option<&str> = None;
    for t in TagSet::encoded_tags(bytes) {
        let key = t.split(':').next().unwrap_or(t);
        if keys && last_key != Some(key) {
            out.push(key_entry(key));
            last_key = Some(key);
        }
        out.push(tag_entry(t));
    }
    out.sort();
    out.dedup();
    out
}

/// How a partial entry decides about an index entry that starts with its prefix.
#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    /// Every entry with the prefix matches.
    Prefix,
    /// The value (after `V<key>:`) matches a glob.
    Glob(Vec<GlobPart>),
    /// The value matches the `n`th regex atom of the query.
    Regex(usize),
}

/// One entry a query looks up.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryEntry {
    pub text: String,
    /// Partial match: entries starting with `text`, filtered by the matcher; the
    /// value starts after `value_at` bytes.
    pub partial: Option<(Matcher, usize)>,
}

/// A query's entries and, per atom (in order), the range of its entries.
#[derive(Debug, Clone)]
pub struct Plan {
    pub entries: Vec<QueryEntry>,
    pub atoms: Vec<Range<usize>>,
    /// False when the query can match a set that has none of the entries: the index
    /// scan must then visit every item (`GIN_SEARCH_MODE_ALL`).
    pub needs_entry: bool,
}

fn exact(text: String) -> QueryEntry {
    QueryEntry {
        text,
        partial: None,
    }
}

/// The entries that say "the set has key `key`": `K<key>`, or without key entries the
/// bare tag `V<key>` and every `V<key>:...` (a partial match).
pub fn has_key_entries(key: &str, keys: bool) -> Vec<QueryEntry> {
    if keys {
        return vec![exact(key_entry(key))];
    }
    let base = tag_entry(&format!("{key}:"));
    let value_at = base.len();
    vec![
        exact(tag_entry(key)),
        QueryEntry {
            text: base,
            partial: Some((Matcher::Prefix, value_at)),
        },
    ]
}

/// Plans the index lookups of a query (`keys`: the index has key entries).
pub fn plan(q: &Query, keys: bool) -> Plan {
    let mut entries = Vec::new();
    let mut atoms = Vec::new();
    let mut regexes = 0;
    super::query::visit_atoms(q, &mut |a| {
        let start = entries.len();
        match a {
            Atom::Tag { key, value } => entries.push(exact(tag_entry(&match value {
                Some(v) => format!("{key}:{v}"),
                None => key.clone(),
            }))),
            Atom::Has { key } => entries.extend(has_key_entries(key, keys)),
            Atom::Glob { key, parts } => {
                let base = tag_entry(&format!("{key}:"));
                let value_at = base.len();
                let (text, matcher) = match parts.as_slice() {
                    [GlobPart::Lit(p), GlobPart::Star] => (format!("{base}{p}"), Matcher::Prefix),
                    [GlobPart::Lit(p), ..] => (format!("{base}{p}"), Matcher::Glob(parts.clone())),
                    _ => (base, Matcher::Glob(parts.clone())),
                };
                entries.push(QueryEntry {
                    text,
                    partial: Some((matcher, value_at)),
                });
            }
            Atom::Regex { key, .. } => {
                let base = tag_entry(&format!("{key}:"));
                let value_at = base.len();
                entries.push(QueryEntry {
                    text: base,
                    partial: Some((Matcher::Regex(regexes), value_at)),
                });
                regexes += 1;
            }
            Atom::In { key, values, .. } => {
                for v in values {
                    entries.push(exact(tag_entry(&format!("{key}:{v}"))));
                }
            }
        }
        atoms.push(start..entries.len());
    });
    Plan {
        entries,
        atoms,
        needs_entry: super::query::needs_entry(q),
    }
}

/// GIN's comparePartial: 0 = `entry` matches, negative = no match but go on, positive =
/// past the prefix, stop.
pub fn partial_matches(q: &QueryEntry, compiled: Option<&Compiled>, entry: &[u8]) -> i32 {
    let prefix = q.text.as_bytes();
    if !entry.starts_with(prefix) {
        return 1;
    }
    let Some((matcher, value_at)) = &q.partial else {
        return 0;
    };
    let value = std::str::from_utf8(&entry[*value_at..]).unwrap_or("");
    let ok = match matcher {
        Matcher::Prefix => true,
        Matcher::Glob(parts) => glob_matches(parts, value),
        Matcher::Regex(n) => compiled.is_some_and(|c| c.regex(*n).is_match(value)),
    };
    if ok {
        0
    } else {
        -1
    }
}

/// The query's value over per-entry checks (GIN's triConsistent; exact entries make
/// the answer exact when no check is MAYBE).
pub fn consistent(q: &Query, plan: &Plan, check: &[Tri]) -> Tri {
    let mut n = 0;
    eval3(q, &mut |a| {
        let r = plan.atoms[n].clone();
        n += 1;
        let any = r.clone().fold(Tri::False, |acc, i| acc.or(check[i]));
        match a {
            Atom::In { negated: true, .. } => any.negate(),
            _ => any,
        }
    })
}

/// Whether an item with entries `item` (sorted) holds query entry `e`.
pub fn item_has(item: &[String], e: &QueryEntry, compiled: Option<&Compiled>) -> bool {
    if e.partial.is_none() {
        return item.binary_search(&e.text).is_ok();
    }
    item.iter()
        .any(|x| partial_matches(e, compiled, x.as_bytes()) == 0)
}
