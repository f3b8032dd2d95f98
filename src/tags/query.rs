//! The `tagquery` language: parser, canonical printer, evaluator. Pure Rust.
//!
//! ```text
//! query  := or
//! or     := and ("OR" and)*
//! and    := unary ("AND" unary)*
//! unary  := "NOT" unary | "(" query ")" | atom
//! atom   := word ":" "*"                    key present
//!         | word ":" "/" regex "/"          value matches the regex (anchored)
//!         | word ":" pattern                value equals, or matches a * glob
//!         | word ("NOT")? "IN" "(" word ("," word)* ")"
//!         | word                            a bare tag
//! ```
//! Keywords are case-insensitive. A word is a run of characters other than blanks,
//! parentheses, commas, colons (in keys) and double quotes, or a double-quoted string
//! (backslash escapes; a quoted `*` is literal). Values may contain colons. Precedence
//! NOT > AND > OR. `key NOT IN (...)` matches series without the key too.

use super::model::{Tag, TagSet};
use std::fmt;

/// Most atoms in one query.
pub const MAX_ATOMS: usize = 256;
/// Most values in one IN list.
pub const MAX_IN_VALUES: usize = 1024;
/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 64;
/// Longest query text accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// What kind of mistake a query text holds (the SQL layer picks its SQLSTATE by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryErrorKind {
    /// Not a tag query.
    Syntax,
    /// A `/regex/` that does not compile.
    Regex,
}

/// A parse error with the byte position of the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub kind: QueryErrorKind,
    pub message: String,
    pub position: usize,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.message, self.position + 1)
    }
}

fn err<T>(message: impl Into<String>, position: usize) -> Result<T, QueryError> {
    Err(QueryError {
        kind: QueryErrorKind::Syntax,
        message: message.into(),
        position,
    })
}

/// A piece of a glob: literal text or `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GlobPart {
    Lit(String),
    Star,
}

/// A leaf of the query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Atom {
    /// `key:value`, or the bare tag `key` when value is None.
    Tag { key: String, value: Option<String> },
    /// `key:*`.
    Has { key: String },
    /// `key:` glob with at least one `*` (not only `*`).
    Glob { key: String, parts: Vec<GlobPart> },
    /// `key:/re/`.
    Regex { key: String, pattern: String },
    /// `key IN (...)` / `key NOT IN (...)`.
    In {
        key: String,
        values: Vec<String>,
        negated: bool,
    },
}

/// A query tree; AND and OR are n-ary and never directly nest in themselves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Query {
    Atom(Atom),
    Not(Box<Query>),
    And(Vec<Query>),
    Or(Vec<Query>),
}

// ---------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A word; `quoted` words are never keywords nor globs.
    Word {
        text: String,
        quoted: bool,
    },
    Colon,
    LParen,
    RParen,
    Comma,
    /// `/.../` right after a colon.
    Regex(String),
    And,
    Or,
    Not,
    In,
}

fn is_word_byte(c: u8) -> bool {
    !(c.is_ascii_whitespace() || matches!(c, b'(' | b')' | b',' | b':' | b'"'))
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, QueryError> {
    let b = text.as_bytes();
    let mut out: Vec<(Tok, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        match c {
            b'(' => {
                out.push((Tok::LParen, i));
                i += 1;
            }
            b')' => {
                out.push((Tok::RParen, i));
                i += 1;
            }
            b',' => {
                out.push((Tok::Comma, i));
                i += 1;
            }
            b':' => {
                out.push((Tok::Colon, i));
                i += 1;
                // A value follows: it may contain colons; a regex is /.../.
                if b.get(i) == Some(&b'/') {
                    i += 1;
                    let mut s = String::new();
                    loop {
                        match b.get(i) {
                            None => return err("unterminated regular expression", start + 1),
                            Some(b'\\') if b.get(i + 1) == Some(&b'/') => {
                                s.push('/');
                                i += 2;
                            }
                            Some(b'/') => {
                                i += 1;
                                break;
                            }
                            Some(_) => {
                                let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
                                s.push(ch);
                                i += ch.len_utf8();
                            }
                        }
                    }
                    out.push((Tok::Regex(s), start + 1));
                } else if b.get(i) == Some(&b'"') {
                    // handled by the quoted-word branch on the next turn
                } else if i < b.len()
                    && !b[i].is_ascii_whitespace()
                    && !matches!(b[i], b'(' | b')' | b',')
                {
                    let vstart = i;
                    while i < b.len() && (is_word_byte(b[i]) || b[i] == b':') {
                        i += 1;
                    }
                    out.push((
                        Tok::Word {
                            text: text[vstart..i].to_string(),
                            quoted: false,
                        },
                        vstart,
                    ));
                }
            }
            b'"' => {
                i += 1;
                let mut s = String::new();
                loop {
                    match b.get(i) {
                        None => return err("unterminated quoted string", start),
                        Some(b'\\') => {
                            let Some(ch) = text.get(i + 1..).and_then(|r| r.chars().next()) else {
                                return err("unterminated quoted string", start);
                            };
                            s.push(ch);
                            i += 1 + ch.len_utf8();
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(_) => {
                            let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
                            s.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                out.push((
                    Tok::Word {
                        text: s,
                        quoted: true,
                    },
                    start,
                ));
            }
            _ => {
                while i < b.len() && is_word_byte(b[i]) {
                    i += 1;
                }
                let w = &text[start..i];
                let tok = match w.to_ascii_uppercase().as_str() {
                    "AND" => Tok::And,
                    "OR" => Tok::Or,
                    "NOT" => Tok::Not,
                    "IN" => Tok::In,
                    _ => Tok::Word {
                        text: w.to_string(),
                        quoted: false,
                    },
                };
                out.push((tok, start));
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// Parser

struct Parser {
    toks: Vec<(Tok, usize)>,
    at: usize,
    end: usize,
    atoms: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|t| &t.0)
    }
    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |t| t.1)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).map(|t| t.0.clone());
        self.at += 1;
        t
    }

    fn or(&mut self, depth: usize) -> Result<Query, QueryError> {
        let mut parts = vec![self.and(depth)?];
        while self.peek() == Some(&Tok::Or) {
            self.next();
            parts.push(self.and(depth)?);
        }
        Ok(flatten(parts, false))
    }

    fn and(&mut self, depth: usize) -> Result<Query, QueryError> {
        let mut parts = vec![self.unary(depth)?];
        while self.peek() == Some(&Tok::And) {
            self.next();
            parts.push(self.unary(depth)?);
        }
        Ok(flatten(parts, true))
    }

    fn unary(&mut self, depth: usize) -> Result<Query, QueryError> {
        if depth > MAX_DEPTH {
            return err(
                format!("query nests deeper than {MAX_DEPTH} levels"),
                self.pos(),
            );
        }
        match self.peek() {
            Some(Tok::Not) => {
                self.next();
                let q = self.unary(depth + 1)?;
                Ok(match q {
                    Query::Not(inner) => *inner,
                    q => Query::Not(Box::new(q)),
                })
            }
            Some(Tok::LParen) => {
                let open = self.pos();
                self.next();
                let q = self.or(depth + 1)?;
                if self.next() != Some(Tok::RParen) {
                    return err("missing \")\" for the \"(\"", open);
                }
                Ok(q)
            }
            _ => self.atom(),
        }
    }

    fn word(&mut self, what: &str) -> Result<(String, bool, usize), QueryError> {
        let pos = self.pos();
        match self.next() {
            Some(Tok::Word { text, quoted }) => Ok((text, quoted, pos)),
            Some(t) => err(format!("expected {what}, found {}", describe(&t)), pos),
            None => err(format!("expected {what}, found the end of the query"), pos),
        }
    }

    fn atom(&mut self) -> Result<Query, QueryError> {
        let (key, _, kpos) = self.word("a tag")?;
        self.atoms += 1;
        if self.atoms > MAX_ATOMS {
            return err(format!("query has more than {MAX_ATOMS} terms"), kpos);
        }
        if key.is_empty() {
            return err("empty tag key", kpos);
        }
        match self.peek() {
            Some(Tok::Colon) => {
                let cpos = self.pos();
                self.next();
                let vpos = self.pos();
                match self.next() {
                    Some(Tok::Regex(pattern)) => {
                        compile_regex(&pattern).map_err(|why| QueryError {
                            kind: QueryErrorKind::Regex,
                            message: format!("invalid regular expression /{pattern}/: {why}"),
                            position: vpos,
                        })?;
                        Ok(Query::Atom(Atom::Regex { key, pattern }))
                    }
                    Some(Tok::Word { text, quoted }) => {
                        Ok(Query::Atom(value_atom(key, text, quoted)))
                    }
                    _ => err("expected a value after \":\"", cpos + 1),
                }
            }
            Some(Tok::In) => {
                self.next();
                self.in_list(key, false)
            }
            Some(Tok::Not) if matches!(self.toks.get(self.at + 1), Some((Tok::In, _))) => {
                self.next();
                self.next();
                self.in_list(key, true)
            }
            _ => Ok(Query::Atom(Atom::Tag { key, value: None })),
        }
    }

    fn in_list(&mut self, key: String, negated: bool) -> Result<Query, QueryError> {
        let open = self.pos();
        if self.next() != Some(Tok::LParen) {
            return err("expected \"(\" after IN", open);
        }
        let mut values = Vec::new();
        loop {
            let (v, _, vpos) = self.word("a value")?;
            values.push(v);
            if values.len() > MAX_IN_VALUES {
                return err(
                    format!("an IN list holds at most {MAX_IN_VALUES} values"),
                    vpos,
                );
            }
            let pos = self.pos();
            match self.next() {
                Some(Tok::Comma) => continue,
                Some(Tok::RParen) => break,
                _ => return err("expected \",\" or \")\" in the IN list", pos),
            }
        }
        values.sort();
        values.dedup();
        Ok(Query::Atom(Atom::In {
            key,
            values,
            negated,
        }))
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word { text, .. } => format!("\"{text}\""),
        Tok::Colon => "\":\"".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Regex(r) => format!("/{r}/"),
        Tok::And => "AND".into(),
        Tok::Or => "OR".into(),
        Tok::Not => "NOT".into(),
        Tok::In => "IN".into(),
    }
}

/// The atom of `key:text`: a glob if unquoted with a `*`, else an exact value.
fn value_atom(key: String, text: String, quoted: bool) -> Atom {
    if quoted || !text.contains('*') {
        return Atom::Tag {
            key,
            value: Some(text),
        };
    }
    if text.chars().all(|c| c == '*') {
        return Atom::Has { key };
    }
    let mut parts = Vec::new();
    for (i, piece) in text.split('*').enumerate() {
        if i > 0 && parts.last() != Some(&GlobPart::Star) {
            parts.push(GlobPart::Star);
        }
        if !piece.is_empty() {
            parts.push(GlobPart::Lit(piece.to_string()));
        }
    }
    Atom::Glob { key, parts }
}

/// AND/OR of parts, merging nested nodes of the same kind.
fn flatten(parts: Vec<Query>, and: bool) -> Query {
    if parts.len() == 1 {
        return parts.into_iter().next().unwrap();
    }
    let mut out = Vec::new();
    for p in parts {
        match (p, and) {
            (Query::And(inner), true) | (Query::Or(inner), false) => out.extend(inner),
            (p, _) => out.push(p),
        }
    }
    if and {
        Query::And(out)
    } else {
        Query::Or(out)
    }
}

/// Compiles a query regex, anchored, with size limits; errors describe the pattern as
/// the user wrote it.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    let why = |e: regex::Error| match e {
        regex::Error::Syntax(s) => s
            .lines()
            .last()
            .unwrap_or("syntax error")
            .trim()
            .trim_start_matches("error: ")
            .to_string(),
        regex::Error::CompiledTooBig(_) => "it compiles to more than 1 MB".to_string(),
        other => other.to_string(),
    };
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(why)?;
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .map_err(why)
}

/// Parses a query.
pub fn parse(text: &str) -> Result<Query, QueryError> {
    if text.len() > MAX_QUERY_BYTES {
        return err(
            format!("query is longer than {MAX_QUERY_BYTES} bytes"),
            MAX_QUERY_BYTES,
        );
    }
    if let Some(at) = text.find('\0') {
        return err("a query must not contain a NUL character", at);
    }
    let toks = lex(text)?;
    if toks.is_empty() {
        return err("empty query", 0);
    }
    let mut p = Parser {
        toks,
        at: 0,
        end: text.len(),
        atoms: 0,
    };
    let q = p.or(0)?;
    if p.at < p.toks.len() {
        let pos = p.pos();
        let t = p.next().unwrap();
        return err(format!("unexpected {}", describe(&t)), pos);
    }
    Ok(q)
}

// ---------------------------------------------------------------------------------
// Printer

/// Writes a word (key or value) so that it reads back as the same word.
fn word(s: &str, value: bool, out: &mut String) {
    let keyword = matches!(s.to_ascii_uppercase().as_str(), "AND" | "OR" | "NOT" | "IN");
    let plain = !s.is_empty()
        && !keyword
        && !s.starts_with('/')
        && !s.contains('*')
        && s.bytes().all(|c| is_word_byte(c) || (value && c == b':'));
    if plain {
        out.push_str(s);
        return;
    }
    super::model::push_quoted(s, out);
}

fn print_atom(a: &Atom, out: &mut String) {
    match a {
        Atom::Tag { key, value } => {
            word(key, false, out);
            if let Some(v) = value {
                out.push(':');
                word(v, true, out);
            }
        }
        Atom::Has { key } => {
            word(key, false, out);
            out.push_str(":*");
        }
        Atom::Glob { key, parts } => {
            word(key, false, out);
            out.push(':');
            let mut all_plain = true;
            for p in parts {
                if let GlobPart::Lit(l) = p {
                    all_plain &= !l.is_empty()
                        && l.bytes().all(|c| is_word_byte(c) || c == b':')
                        && !l.starts_with('/');
                }
            }
            // Globs print unquoted (a quoted * would be literal); literals that need
            // quoting cannot be globbed, and the parser never produces them.
            let _ = all_plain;
            for p in parts {
                match p {
                    GlobPart::Star => out.push('*'),
                    GlobPart::Lit(l) => out.push_str(l),
                }
            }
        }
        Atom::Regex { key, pattern } => {
            word(key, false, out);
            out.push_str(":/");
            out.push_str(&pattern.replace('/', "\\/"));
            out.push('/');
        }
        Atom::In {
            key,
            values,
            negated,
        } => {
            word(key, false, out);
            out.push_str(if *negated { " NOT IN (" } else { " IN (" });
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                word(v, false, out);
            }
            out.push(')');
        }
    }
}

/// Precedence: OR 1, AND 2, NOT/atom 3.
fn print(q: &Query, parent: u8, out: &mut String) {
    let (mine, parts, sep) = match q {
        Query::Atom(a) => {
            print_atom(a, out);
            return;
        }
        Query::Not(inner) => {
            out.push_str("NOT ");
            print(inner, 3, out);
            return;
        }
        Query::And(p) => (2, p, " AND "),
        Query::Or(p) => (1, p, " OR "),
    };
    let paren = mine <= parent && parent != 0 || (parent == 3);
    if paren {
        out.push('(');
    }
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        print(p, mine, out);
    }
    if paren {
        out.push(')');
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        print(self, 0, &mut s);
        f.write_str(&s)
    }
}

// ---------------------------------------------------------------------------------
// Evaluation

/// Three-valued logic for index checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    False,
    Maybe,
    True,
}

impl Tri {
    /// Three-valued AND.
    pub fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::False, _) | (_, Tri::False) => Tri::False,
            (Tri::Maybe, _) | (_, Tri::Maybe) => Tri::Maybe,
            _ => Tri::True,
        }
    }

    /// Three-valued OR.
    pub fn or(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::True, _) | (_, Tri::True) => Tri::True,
            (Tri::Maybe, _) | (_, Tri::Maybe) => Tri::Maybe,
            _ => Tri::False,
        }
    }

    /// Three-valued NOT.
    pub fn negate(self) -> Tri {
        match self {
            Tri::False => Tri::True,
            Tri::True => Tri::False,
            Tri::Maybe => Tri::Maybe,
        }
    }
}

/// Matches a glob against a value.
pub fn glob_matches(parts: &[GlobPart], v: &str) -> bool {
    // Classic two-pointer wildcard match over literal pieces.
    let mut rest = v;
    let mut anchored = true;
    for (i, p) in parts.iter().enumerate() {
        match p {
            GlobPart::Star => anchored = false,
            GlobPart::Lit(l) => {
                let last = i == parts.len() - 1;
                if anchored {
                    if !rest.starts_with(l.as_str()) {
                        return false;
                    }
                    rest = &rest[l.len()..];
                } else if last {
                    return rest.ends_with(l.as_str());
                } else {
                    match rest.find(l.as_str()) {
                        Some(at) => rest = &rest[at + l.len()..],
                        None => return false,
                    }
                }
                anchored = true;
            }
        }
    }
    !anchored || rest.is_empty() || matches!(parts.last(), Some(GlobPart::Star))
}

/// A query with its regexes compiled once, ready to evaluate many tag sets.
pub struct Compiled {
    pub query: Query,
    regexes: Vec<regex::Regex>,
}

impl Compiled {
    pub fn new(query: Query) -> Result<Compiled, String> {
        let mut regexes = Vec::new();
        let mut err = None;
        visit_atoms(&query, &mut |a| {
            if let Atom::Regex { pattern, .. } = a {
                match compile_regex(pattern) {
                    Ok(r) => regexes.push(r),
                    Err(e) => err = Some(e),
                }
            }
        });
        match err {
            Some(e) => Err(e),
            None => Ok(Compiled { query, regexes }),
        }
    }

    /// Whether the tag set matches.
    pub fn matches(&self, set: &TagSet) -> bool {
        let mut r = 0;
        eval(&self.query, &mut |a| {
            atom_matches(a, set, &self.regexes, &mut r)
        })
    }

    /// The regex of the `n`th regex atom (in atom order).
    pub fn regex(&self, n: usize) -> &regex::Regex {
        &self.regexes[n]
    }
}

/// Calls `f` on every atom in order (left to right).
pub fn visit_atoms(q: &Query, f: &mut impl FnMut(&Atom)) {
    match q {
        Query::Atom(a) => f(a),
        Query::Not(inner) => visit_atoms(inner, f),
        Query::And(p) | Query::Or(p) => p.iter().for_each(|q| visit_atoms(q, f)),
    }
}

fn eval(q: &Query, leaf: &mut impl FnMut(&Atom) -> bool) -> bool {
    match q {
        Query::Atom(a) => leaf(a),
        Query::Not(inner) => !eval(inner, leaf),
        // Every atom is visited (no short cut) so atom numbering stays in step.
        Query::And(p) => p.iter().fold(true, |acc, q| eval(q, leaf) & acc),
        Query::Or(p) => p.iter().fold(false, |acc, q| eval(q, leaf) | acc),
    }
}

/// Evaluates with three-valued leaves (in atom order).
pub fn eval3(q: &Query, leaf: &mut impl FnMut(&Atom) -> Tri) -> Tri {
    match q {
        Query::Atom(a) => leaf(a),
        Query::Not(inner) => eval3(inner, leaf).negate(),
        // Every child is evaluated (no short cut) so atom numbering stays in step.
        Query::And(p) => p.iter().fold(Tri::True, |acc, q| {
            let v = eval3(q, leaf);
            acc.and(v)
        }),
        Query::Or(p) => p.iter().fold(Tri::False, |acc, q| {
            let v = eval3(q, leaf);
            acc.or(v)
        }),
    }
}

fn atom_matches(a: &Atom, set: &TagSet, regexes: &[regex::Regex], next_regex: &mut usize) -> bool {
    match a {
        Atom::Tag { key, value } => Tag::from_parts(key, value.as_deref())
            .map(|t| set.contains(&t))
            .unwrap_or(false),
        Atom::Has { key } => set.has_key(key),
        Atom::Glob { key, parts } => set
            .with_key(key)
            .iter()
            .any(|t| t.value().is_some_and(|v| glob_matches(parts, v))),
        Atom::Regex { key, .. } => {
            let r = &regexes[*next_regex];
            *next_regex += 1;
            set.with_key(key)
                .iter()
                .any(|t| t.value().is_some_and(|v| r.is_match(v)))
        }
        Atom::In {
            key,
            values,
            negated,
        } => {
            let hit = values.iter().any(|v| {
                Tag::from_parts(key, Some(v))
                    .map(|t| set.contains(&t))
                    .unwrap_or(false)
            });
            hit != *negated
        }
    }
}

/// Whether a tag set can match only by holding at least one of the query's index
/// entries: false when the query holds with every atom false (e.g. `NOT a`), which
/// then needs a full index scan.
pub fn needs_entry(q: &Query) -> bool {
    !eval(q, &mut |a| matches!(a, Atom::In { negated: true, .. }))
}
