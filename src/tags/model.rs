//! The `tagset` model: a sorted, de-duplicated set of tags. Pure Rust.
//!
//! A tag is `key:value`, split at the first colon (so `env:staging:east` has key `env`
//! and value `staging:east`), or a bare `value`, which counts as a key without a value
//! (`tagset ? 'gpu'` holds for `{gpu}`). Tags are case-sensitive UTF-8. A set is
//! ordered by (key, value) bytewise, a bare tag before the key's valued tags.
//!
//! Text form: `{env:prod,az:us-east-1a,gpu}`; an element that contains a comma, brace,
//! double quote, backslash or leading/trailing blank is written in double quotes with
//! backslash escapes, as PostgreSQL writes array elements.
//!
//! Binary form (the varlena payload): version byte 1, then each tag's UTF-8 bytes
//! followed by a NUL byte, in set order. Tags cannot contain NUL (PostgreSQL text
//! cannot either), so a decoder only splits at NULs and at each tag's first colon.

use std::cmp::Ordering;
use std::fmt;

/// Longest tag accepted, in bytes.
pub const MAX_TAG_BYTES: usize = 512;
/// Most tags in one set.
pub const MAX_TAGS: usize = 1024;
/// Binary format version.
pub const VERSION: u8 = 1;

/// Why a tag set was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagError {
    pub message: String,
    /// Byte position in the input where the problem is, if it comes from text.
    pub position: Option<usize>,
}

impl TagError {
    pub fn new(message: impl Into<String>, position: Option<usize>) -> TagError {
        TagError {
            message: message.into(),
            position,
        }
    }
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{} at position {}", self.message, p + 1),
            None => write!(f, "{}", self.message),
        }
    }
}

/// One tag, stored as its text with the position of the first colon.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tag {
    text: String,
    colon: Option<usize>,
}

impl Tag {
    /// A tag from its text, checked (non-empty, no empty key, no NUL, not too long).
    pub fn parse(text: &str) -> Result<Tag, TagError> {
        if text.is_empty() {
            return Err(TagError::new("empty tag", None));
        }
        if text.len() > MAX_TAG_BYTES {
            return Err(TagError::new(
                format!(
                    "tag \"{}...\" is {} bytes long, more than the limit of {MAX_TAG_BYTES}",
                    text.chars().take(20).collect::<String>(),
                    text.len()
                ),
                None,
            ));
        }
        if text.contains('\0') {
            return Err(TagError::new("tags cannot contain NUL characters", None));
        }
        let colon = text.find(':');
        if colon == Some(0) {
            return Err(TagError::new(
                format!("tag \"{text}\" has an empty key"),
                None,
            ));
        }
        Ok(Tag {
            text: text.to_string(),
            colon,
        })
    }

    /// A tag from a key and an optional value.
    pub fn from_parts(key: &str, value: Option<&str>) -> Result<Tag, TagError> {
        if key.contains(':') {
            return Err(TagError::new(
                format!("tag key \"{key}\" contains a colon"),
                None,
            ));
        }
        match value {
            None => Tag::parse(key),
            Some(v) => Tag::parse(&format!("{key}:{v}")),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn key(&self) -> &str {
        match self.colon {
            Some(c) => &self.text[..c],
            None => &self.text,
        }
    }

    /// The value; `None` for a bare tag.
    pub fn value(&self) -> Option<&str> {
        self.colon.map(|c| &self.text[c + 1..])
    }
}

impl Ord for Tag {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key()
            .as_bytes()
            .cmp(other.key().as_bytes())
            .then_with(|| {
                self.value()
                    .map(str::as_bytes)
                    .cmp(&other.value().map(str::as_bytes))
            })
    }
}

impl PartialOrd for Tag {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A set of tags, sorted by (key, value) and de-duplicated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TagSet {
    tags: Vec<Tag>,
}

impl TagSet {
    /// A set from tags in any order, with duplicates.
    pub fn new(mut tags: Vec<Tag>) -> Result<TagSet, TagError> {
        tags.sort();
        tags.dedup();
        if tags.len() > MAX_TAGS {
            return Err(TagError::new(
                format!("a tagset holds at most {MAX_TAGS} tags, not {}", tags.len()),
                None,
            ));
        }
        Ok(TagSet { tags })
    }

    /// A set from tag texts.
    pub fn from_texts<S: AsRef<str>>(texts: &[S]) -> Result<TagSet, TagError> {
        let tags = texts
            .iter()
            .map(|t| Tag::parse(t.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        TagSet::new(tags)
    }

    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }

    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// Whether the set holds this exact tag.
    pub fn contains(&self, t: &Tag) -> bool {
        self.tags.binary_search(t).is_ok()
    }

    /// The tags with key `key` (a bare tag `key` first).
    pub fn with_key<'a>(&'a self, key: &str) -> &'a [Tag] {
        let start = self
            .tags
            .partition_point(|t| t.key().as_bytes() < key.as_bytes());
        let end = start
            + self.tags[start..]
                .iter()
                .take_while(|t| t.key() == key)
                .count();
        &self.tags[start..end]
    }

    /// Whether some tag has key `key` (bare or with a value).
    pub fn has_key(&self, key: &str) -> bool {
        !self.with_key(key).is_empty()
    }

    /// Every tag of `other` is in `self`.
    pub fn contains_all(&self, other: &TagSet) -> bool {
        other.tags.iter().all(|t| self.contains(t))
    }

    /// Some tag is in both.
    pub fn overlaps(&self, other: &TagSet) -> bool {
        other.tags.iter().any(|t| self.contains(t))
    }

    /// The distinct keys, in order.
    pub fn keys(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for t in &self.tags {
            if out.last() != Some(&t.key()) {
                out.push(t.key());
            }
        }
        out
    }

    /// The binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(1 + self.tags.iter().map(|t| t.text.len() + 1).sum::<usize>());
        out.push(VERSION);
        for t in &self.tags {
            out.extend_from_slice(t.text.as_bytes());
            out.push(0);
        }
        out
    }

    /// Decodes and validates the binary form.
    pub fn decode(bytes: &[u8]) -> Result<TagSet, TagError> {
        let (&v, rest) = bytes
            .split_first()
            .ok_or_else(|| TagError::new("invalid tagset: empty input", None))?;
        if v != VERSION {
            return Err(TagError::new(
                format!("invalid tagset: unknown format version {v}"),
                None,
            ));
        }
        if !rest.is_empty() && rest.last() != Some(&0) {
            return Err(TagError::new("invalid tagset: truncated", None));
        }
        let mut tags = Vec::new();
        for part in rest
            .split(|&b| b == 0)
            .take(rest.iter().filter(|&&b| b == 0).count())
        {
            let s = std::str::from_utf8(part)
                .map_err(|_| TagError::new("invalid tagset: a tag is not UTF-8", None))?;
            let t = Tag::parse(s)
                .map_err(|e| TagError::new(format!("invalid tagset: {}", e.message), None))?;
            if tags.last().is_some_and(|p: &Tag| p >= &t) {
                return Err(TagError::new("invalid tagset: tags out of order", None));
            }
            tags.push(t);
        }
        if tags.len() > MAX_TAGS {
            return Err(TagError::new("invalid tagset: too many tags", None));
        }
        Ok(TagSet { tags })
    }

    /// Iterates the tag texts of an encoded set without building it (GIN extraction).
    pub fn encoded_tags(bytes: &[u8]) -> impl Iterator<Item = &str> {
        let body = bytes.get(1..).unwrap_or(&[]);
        body.split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| std::str::from_utf8(p).unwrap_or(""))
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<TagSet, TagError> {
        let b = text.as_bytes();
        let mut i = 0;
        let skip_ws = |i: &mut usize| {
            while *i < b.len() && b[*i].is_ascii_whitespace() {
                *i += 1;
            }
        };
        skip_ws(&mut i);
        if i >= b.len() || b[i] != b'{' {
            return Err(TagError::new("a tagset must start with \"{\"", Some(i)));
        }
        i += 1;
        let mut tags = Vec::new();
        skip_ws(&mut i);
        if i < b.len() && b[i] == b'}' {
            i += 1;
        } else {
            loop {
                skip_ws(&mut i);
                let start = i;
                let elem = if i < b.len() && b[i] == b'"' {
                    i += 1;
                    let mut s = Vec::new();
                    loop {
                        match b.get(i) {
                            None => {
                                return Err(TagError::new("unterminated quoted tag", Some(start)))
                            }
                            Some(b'\\') => {
                                let Some(&c) = b.get(i + 1) else {
                                    return Err(TagError::new(
                                        "unterminated quoted tag",
                                        Some(start),
                                    ));
                                };
                                s.push(c);
                                i += 2;
                            }
                            Some(b'"') => {
                                i += 1;
                                break;
                            }
                            Some(&c) => {
                                s.push(c);
                                i += 1;
                            }
                        }
                    }
                    skip_ws(&mut i);
                    String::from_utf8(s)
                        .map_err(|_| TagError::new("tag is not UTF-8", Some(start)))?
                } else {
                    while i < b.len() && !matches!(b[i], b',' | b'}' | b'{' | b'"' | b'\\') {
                        i += 1;
                    }
                    if i < b.len() && matches!(b[i], b'{' | b'"' | b'\\') {
                        return Err(TagError::new(
                            format!("unexpected \"{}\" in a tag (quote the tag)", b[i] as char),
                            Some(i),
                        ));
                    }
                    text[start..i].trim_end().to_string()
                };
                if elem.is_empty() {
                    return Err(TagError::new("empty tag", Some(start)));
                }
                let tag = Tag::parse(&elem).map_err(|e| TagError::new(e.message, Some(start)))?;
                tags.push(tag);
                match b.get(i) {
                    Some(b',') => i += 1,
                    Some(b'}') => {
                        i += 1;
                        break;
                    }
                    _ => return Err(TagError::new("expected \",\" or \"}\"", Some(i))),
                }
            }
        }
        skip_ws(&mut i);
        if i != b.len() {
            return Err(TagError::new("unexpected text after \"}\"", Some(i)));
        }
        TagSet::new(tags)
    }
}

/// Writes `s` as an element of a braces list, quoted when needed.
pub fn quote_element(s: &str, out: &mut String) {
    let needs = s.is_empty()
        || s.starts_with(|c: char| c.is_ascii_whitespace())
        || s.ends_with(|c: char| c.is_ascii_whitespace())
        || s.contains([',', '{', '}', '"', '\\']);
    if !needs {
        out.push_str(s);
        return;
    }
    push_quoted(s, out);
}

/// Writes `s` in double quotes, escaping `"` and `\\` with a backslash.
pub fn push_quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

impl fmt::Display for TagSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::from("{");
        for (i, t) in self.tags.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            quote_element(t.text(), &mut s);
        }
        s.push('}');
        f.write_str(&s)
    }
}
