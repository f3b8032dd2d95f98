//! Label sets: validated and put in the `tagset` binary form (the series' identity),
//! decoded back for remote_read, and label matchers translated to a `tagquery`. Pure.

use crate::proto::{Label, LabelMatcher};

/// The label that holds the metric name.
pub const NAME: &str = "__name__";
/// Longest `name:value` tag a `tagset` takes, in bytes (bidim's `MAX_TAG_BYTES`).
pub const MAX_TAG_BYTES: usize = 512;
/// Most labels in one series (bidim's `MAX_TAGS`).
pub const MAX_LABELS: usize = 1024;

/// A series' labels, checked and sorted as `tagset` sorts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSet {
    /// (name, value), sorted by name (names are unique, so by (name, value)).
    pub labels: Vec<(String, String)>,
}

fn valid_label_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn valid_metric_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 40 {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(40).collect::<String>())
    }
}

impl LabelSet {
    /// Checks a series' labels as Prometheus does (valid names, no duplicates, a metric
    /// name) and as `tagset` needs (tag length, count). Labels with an empty value are
    /// the same as absent ones in Prometheus, so they are dropped.
    pub fn from_proto(labels: Vec<Label>) -> Result<LabelSet, String> {
        if labels.len() > MAX_LABELS {
            return Err(format!(
                "a series has {} labels, more than the limit of {MAX_LABELS}",
                labels.len()
            ));
        }
        let mut out: Vec<(String, String)> = Vec::with_capacity(labels.len());
        for l in labels {
            let ok = if l.name == NAME {
                valid_metric_name(&l.value)
            } else {
                valid_label_name(&l.name)
            };
            if !ok {
                return Err(if l.name == NAME {
                    format!("invalid metric name \"{}\"", shorten(&l.value))
                } else {
                    format!("invalid label name \"{}\"", shorten(&l.name))
                });
            }
            if l.value.contains('\0') {
                return Err(format!(
                    "label \"{}\" has a value with a NUL character",
                    l.name
                ));
            }
            if l.name.len() + 1 + l.value.len() > MAX_TAG_BYTES {
                return Err(format!(
                    "label \"{}\" is {} bytes long with its value, more than the limit of {MAX_TAG_BYTES}",
                    shorten(&l.name),
                    l.name.len() + 1 + l.value.len()
                ));
            }
            if !l.value.is_empty() {
                out.push((l.name, l.value));
            }
        }
        out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(format!("duplicate label name \"{}\"", shorten(&w[0].0)));
        }
        if !out.iter().any(|(n, _)| n == NAME) {
            return Err("a series has no metric name (label __name__)".to_string());
        }
        Ok(LabelSet { labels: out })
    }

    /// The metric name (present: checked by [`LabelSet::from_proto`]).
    pub fn metric(&self) -> &str {
        self.labels
            .iter()
            .find(|(n, _)| n == NAME)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// The `tagset` binary form: version byte 1, then `name:value` NUL-terminated, in
    /// (name, value) byte order.
    pub fn tagset_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            1 + self
                .labels
                .iter()
                .map(|(n, v)| n.len() + v.len() + 2)
                .sum::<usize>(),
        );
        out.push(1);
        for (n, v) in &self.labels {
            out.extend_from_slice(n.as_bytes());
            out.push(b':');
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }

    /// The identity the series cache keys on: a 128-bit hash of the binary form.
    /// Hashed as the bytes stream by, without building them (once per series per
    /// request, before the cache lookup).
    pub fn fingerprint(&self) -> u128 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&[1]);
        for (n, v) in &self.labels {
            h.update(n.as_bytes());
            h.update(b":");
            h.update(v.as_bytes());
            h.update(&[0]);
        }
        h.digest128()
    }
}

/// Labels from a `tagset`'s binary form, as remote_read returns them (sorted by name).
pub fn labels_from_tagset(bytes: &[u8]) -> Result<Vec<Label>, String> {
    let (&v, rest) = bytes.split_first().ok_or("empty tagset")?;
    if v != 1 {
        return Err(format!("tagset format version {v} is not known"));
    }
    let mut out = Vec::new();
    for part in rest.split(|&b| b == 0).filter(|p| !p.is_empty()) {
        let s = std::str::from_utf8(part).map_err(|_| "a tag is not UTF-8".to_string())?;
        let (n, val) = s.split_once(':').unwrap_or((s, ""));
        out.push(Label {
            name: n.to_string(),
            value: val.to_string(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// A regex as a tagquery `/.../` literal: every `/` written `\x2f`, so none ends it.
fn regex_literal(re: &str) -> String {
    let mut out = String::with_capacity(re.len() + 2);
    out.push('/');
    let mut chars = re.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('/') => out.push_str("\\x2f"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '/' => out.push_str("\\x2f"),
            c => out.push(c),
        }
    }
    out.push('/');
    out
}

/// A remote_read query's matchers as one `tagquery`, with Prometheus's meaning: a
/// label with an empty value is an absent label, so `l=""` matches series without `l`
/// and a regex that matches the empty string also matches series without the label.
/// Regexes are fully anchored, in both languages.
pub fn matchers_to_tagquery(matchers: &[LabelMatcher]) -> Result<String, String> {
    if matchers.is_empty() {
        return Err("a query has no label matchers".to_string());
    }
    let mut parts = Vec::with_capacity(matchers.len());
    for m in matchers {
        let name_ok = if m.name == NAME {
            true
        } else {
            valid_label_name(&m.name)
        };
        if !name_ok {
            return Err(format!(
                "invalid label name \"{}\" in a matcher",
                shorten(&m.name)
            ));
        }
        let key = &m.name;
        let part = match m.r#type {
            0 if m.value.is_empty() => format!("NOT {key}:*"),
            0 => format!("{key}:{}", quote(&m.value)),
            1 if m.value.is_empty() => format!("{key}:*"),
            1 => format!("NOT {key}:{}", quote(&m.value)),
            2 | 3 => {
                let re = regex::RegexBuilder::new(&format!("^(?:{})$", m.value))
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| {
                        format!(
                            "invalid regular expression \"{}\": {}",
                            shorten(&m.value),
                            e.to_string().lines().last().unwrap_or("").trim()
                        )
                    })?;
                let lit = regex_literal(&m.value);
                match (m.r#type, re.is_match("")) {
                    (2, false) => format!("{key}:{lit}"),
                    (2, true) => format!("({key}:{lit} OR NOT {key}:*)"),
                    (_, false) => format!("NOT {key}:{lit}"),
                    (_, true) => format!("({key}:* AND NOT {key}:{lit})"),
                }
            }
            t => return Err(format!("unknown matcher type {t}")),
        };
        parts.push(part);
    }
    Ok(parts.join(" AND "))
}

/// The metric name a query pins with `__name__="..."`, if any (for the btree index).
pub fn pinned_metric(matchers: &[LabelMatcher]) -> Option<&str> {
    matchers
        .iter()
        .find(|m| m.r#type == 0 && m.name == NAME && !m.value.is_empty())
        .map(|m| m.value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(n: &str, v: &str) -> Label {
        Label {
            name: n.into(),
            value: v.into(),
        }
    }

    fn m(t: i32, n: &str, v: &str) -> LabelMatcher {
        LabelMatcher {
            r#type: t,
            name: n.into(),
            value: v.into(),
        }
    }

    #[test]
    fn label_sets_are_checked_sorted_and_encoded() {
        let s = LabelSet::from_proto(vec![l("job", "a"), l(NAME, "up"), l("empty", "")]).unwrap();
        assert_eq!(s.metric(), "up");
        assert_eq!(s.tagset_bytes(), b"\x01__name__:up\0job:a\0".to_vec());
        assert_eq!(
            s.fingerprint(),
            xxhash_rust::xxh3::xxh3_128(&s.tagset_bytes())
        );
        assert_eq!(
            labels_from_tagset(&s.tagset_bytes()).unwrap(),
            vec![l(NAME, "up"), l("job", "a")]
        );
        // key order, not text order: "a" sorts before "a0" although "a:" > "a0".
        let s = LabelSet::from_proto(vec![l("a0", "x"), l("a", "y"), l(NAME, "m")]).unwrap();
        assert_eq!(s.labels[1].0, "a");
        for (bad, why) in [
            (vec![l("job", "a")], "no metric name"),
            (
                vec![l(NAME, "up"), l("job", "a"), l("job", "b")],
                "duplicate",
            ),
            (vec![l(NAME, "up"), l("9x", "a")], "invalid label name"),
            (vec![l(NAME, "1up")], "invalid metric name"),
            (
                vec![l(NAME, "up"), l("x", &"v".repeat(600))],
                "limit of 512",
            ),
        ] {
            let e = LabelSet::from_proto(bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn matchers_follow_prometheus_empty_value_rules() {
        let q = |ms: Vec<LabelMatcher>| matchers_to_tagquery(&ms).unwrap();
        assert_eq!(q(vec![m(0, NAME, "up")]), "__name__:\"up\"");
        assert_eq!(q(vec![m(0, "job", "")]), "NOT job:*");
        assert_eq!(q(vec![m(1, "job", "")]), "job:*");
        assert_eq!(q(vec![m(1, "job", "a\"b")]), "NOT job:\"a\\\"b\"");
        assert_eq!(q(vec![m(2, "job", "a.+")]), "job:/a.+/");
        assert_eq!(q(vec![m(2, "job", "a.*")]), "job:/a.*/");
        assert_eq!(q(vec![m(2, "job", ".*")]), "(job:/.*/ OR NOT job:*)");
        assert_eq!(q(vec![m(3, "job", "x|")]), "(job:* AND NOT job:/x|/)");
        assert_eq!(q(vec![m(3, "path", "/a\\/b")]), "NOT path:/\\x2fa\\x2fb/");
        assert!(matchers_to_tagquery(&[m(2, "job", "(")])
            .unwrap_err()
            .contains("invalid regular expression"));
        assert!(matchers_to_tagquery(&[m(7, "job", "x")]).is_err());
        assert!(matchers_to_tagquery(&[]).is_err());
        assert_eq!(
            pinned_metric(&[m(0, "job", "a"), m(0, NAME, "up")]),
            Some("up")
        );
    }
}
