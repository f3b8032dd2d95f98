//! Property tests of the tags core: the evaluator against a brute-force matcher, the
//! printer against the parser, boolean identities, set operators, and the GIN logic
//! against the evaluator.

use super::gin::{self, consistent, extract_encoded, extract_value, item_has, plan};
use super::model::{Tag, TagSet};
use super::query::{parse, Atom, Compiled, GlobPart, Query, QueryErrorKind, Tri};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------
// Brute-force oracle: linear scans and a regex-free glob matcher.

fn glob_oracle(parts: &[GlobPart], v: &str) -> bool {
    // Dynamic programming over characters: '*' matches any run.
    let pat: Vec<Option<char>> = parts
        .iter()
        .flat_map(|p| match p {
            GlobPart::Star => vec![None],
            GlobPart::Lit(l) => l.chars().map(Some).collect(),
        })
        .collect();
    let s: Vec<char> = v.chars().collect();
    let mut dp = vec![vec![false; s.len() + 1]; pat.len() + 1];
    dp[0][0] = true;
    for i in 1..=pat.len() {
        for j in 0..=s.len() {
            dp[i][j] = match pat[i - 1] {
                None => dp[i - 1][j] || (j > 0 && dp[i][j - 1]),
                Some(c) => j > 0 && dp[i - 1][j - 1] && s[j - 1] == c,
            };
        }
    }
    dp[pat.len()][s.len()]
}

fn oracle(q: &Query, tags: &[String]) -> bool {
    let split = |t: &String| -> (String, Option<String>) {
        match t.find(':') {
            Some(i) => (t[..i].to_string(), Some(t[i + 1..].to_string())),
            None => (t.clone(), None),
        }
    };
    match q {
        Query::Not(i) => !oracle(i, tags),
        Query::And(p) => p.iter().all(|q| oracle(q, tags)),
        Query::Or(p) => p.iter().any(|q| oracle(q, tags)),
        Query::Atom(a) => match a {
            Atom::Tag { key, value } => tags
                .iter()
                .any(|t| split(t) == (key.clone(), value.clone())),
            Atom::Has { key } => tags.iter().any(|t| &split(t).0 == key),
            Atom::Glob { key, parts } => tags.iter().any(|t| {
                let (k, v) = split(t);
                &k == key && v.is_some_and(|v| glob_oracle(parts, &v))
            }),
            Atom::Regex { key, pattern } => {
                let r = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
                tags.iter().any(|t| {
                    let (k, v) = split(t);
                    &k == key && v.is_some_and(|v| r.is_match(&v))
                })
            }
            Atom::In {
                key,
                values,
                negated,
            } => {
                let hit = tags.iter().any(|t| {
                    let (k, v) = split(t);
                    &k == key && v.is_some_and(|v| values.contains(&v))
                });
                hit != *negated
            }
        },
    }
}

// ---------------------------------------------------------------------------------
// Generators over tiny alphabets, so that values collide.

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("env".to_string()),
        Just("ü".to_string()),
        Just("AND".to_string()),
        Just("x y".to_string()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1".to_string()),
        Just("2".to_string()),
        Just("web-1".to_string()),
        Just("web-2".to_string()),
        Just("db-1".to_string()),
        Just("a:b".to_string()),
        Just("é,ç".to_string()),
        Just("(x)".to_string()),
        Just("".to_string()),
        Just("*".to_string()),
        Just("\"q\"".to_string()),
    ]
}

fn tag_text() -> impl Strategy<Value = String> {
    (key(), proptest::option::of(value())).prop_map(|(k, v)| match v {
        Some(v) => format!("{k}:{v}"),
        None => k,
    })
}

fn tag_texts() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(tag_text(), 0..6)
}

fn glob_lit() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("web".to_string()),
        Just("-".to_string()),
        Just("1".to_string()),
        Just("db".to_string()),
    ]
}

fn atom() -> impl Strategy<Value = Query> {
    prop_oneof![
        (key(), proptest::option::of(value()))
            .prop_map(|(key, value)| Query::Atom(Atom::Tag { key, value })),
        key().prop_map(|key| Query::Atom(Atom::Has { key })),
        (
            key(),
            proptest::collection::vec(proptest::option::of(glob_lit()), 1..4)
        )
            .prop_map(|(key, pieces)| {
                // Build a glob with at least one star and one literal.
                let mut parts = vec![GlobPart::Star];
                for p in pieces.into_iter().flatten() {
                    parts.push(GlobPart::Lit(p));
                    parts.push(GlobPart::Star);
                }
                if parts.len() == 1 {
                    parts.push(GlobPart::Lit("web".into()));
                }
                let text: String = parts
                    .iter()
                    .map(|p| match p {
                        GlobPart::Star => "*".to_string(),
                        GlobPart::Lit(l) => l.clone(),
                    })
                    .collect();
                // Normalize through the parser's own glob construction.
                let q = parse(&format!("a:{text}")).unwrap();
                match q {
                    Query::Atom(Atom::Glob { parts, .. }) => Query::Atom(Atom::Glob { key, parts }),
                    Query::Atom(Atom::Has { .. }) => Query::Atom(Atom::Has { key }),
                    other => other,
                }
            }),
        (
            key(),
            prop_oneof![
                Just("web-.*"),
                Just("[0-9]+"),
                Just("(?i)WEB-1"),
                Just(".*:.*")
            ]
        )
            .prop_map(|(key, p)| Query::Atom(Atom::Regex {
                key,
                pattern: p.to_string()
            })),
        (
            key(),
            proptest::collection::vec(value(), 1..3),
            any::<bool>()
        )
            .prop_map(|(key, mut values, negated)| {
                values.sort();
                values.dedup();
                Query::Atom(Atom::In {
                    key,
                    values,
                    negated,
                })
            }),
    ]
}

fn query() -> impl Strategy<Value = Query> {
    atom().prop_recursive(6, 40, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|q| Query::Not(Box::new(q))),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Query::And),
            proptest::collection::vec(inner, 2..4).prop_map(Query::Or),
        ]
    })
}

fn set_of(texts: &[String]) -> TagSet {
    TagSet::from_texts(texts).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn evaluator_agrees_with_brute_force(q in query(), tags in tag_texts()) {
        let set = set_of(&tags);
        let c = Compiled::new(q.clone()).unwrap();
        prop_assert_eq!(c.matches(&set), oracle(&q, &tags), "query {}", q);
    }

    #[test]
    fn printing_then_parsing_keeps_meaning_and_is_canonical(q in query(), tags in tag_texts()) {
        let text = q.to_string();
        let q1 = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        // One round makes it canonical: parse(print(q1)) == q1 and its text is stable.
        let t1 = q1.to_string();
        let q2 = parse(&t1).map_err(|e| TestCaseError::fail(format!("{t1}: {e}")))?;
        prop_assert_eq!(&q2, &q1, "{}", t1);
        prop_assert_eq!(q2.to_string(), t1.clone());
        let set = set_of(&tags);
        prop_assert_eq!(
            Compiled::new(q1).unwrap().matches(&set),
            Compiled::new(q).unwrap().matches(&set),
            "{}", text
        );
    }

    #[test]
    fn de_morgan_holds(a in query(), b in query(), tags in tag_texts()) {
        let set = set_of(&tags);
        let m = |q: Query| Compiled::new(q).unwrap().matches(&set);
        let not = |q: Query| Query::Not(Box::new(q));
        prop_assert_eq!(
            m(not(Query::And(vec![a.clone(), b.clone()]))),
            m(Query::Or(vec![not(a.clone()), not(b.clone())]))
        );
        prop_assert_eq!(
            m(not(Query::Or(vec![a.clone(), b.clone()]))),
            m(Query::And(vec![not(a), not(b)]))
        );
    }

    #[test]
    fn containment_is_symmetric_and_overlap_is_intersection(a in tag_texts(), b in tag_texts()) {
        let (sa, sb) = (set_of(&a), set_of(&b));
        let a_has_b = b.iter().all(|t| a.contains(t));
        prop_assert_eq!(sa.contains_all(&sb), a_has_b);
        let overlap = a.iter().any(|t| b.contains(t));
        prop_assert_eq!(sa.overlaps(&sb), overlap);
        prop_assert_eq!(sb.overlaps(&sa), overlap);
    }

    #[test]
    fn tagset_text_and_binary_round_trip(tags in tag_texts()) {
        let set = set_of(&tags);
        let text = set.to_string();
        prop_assert_eq!(TagSet::parse(&text).unwrap(), set.clone(), "{}", text);
        let bytes = set.encode();
        prop_assert_eq!(TagSet::decode(&bytes).unwrap(), set.clone());
        prop_assert_eq!(extract_encoded(&bytes, true), extract_value(&set, true));
        prop_assert_eq!(extract_encoded(&bytes, false), extract_value(&set, false));
    }

    #[test]
    fn gin_consistent_agrees_with_the_evaluator(q in query(), tags in tag_texts(), maybe in proptest::collection::vec(any::<bool>(), 64), keys in any::<bool>()) {
        let set = set_of(&tags);
        let c = Compiled::new(q.clone()).unwrap();
        let p = plan(&q, keys);
        let item = extract_value(&set, keys);
        let check: Vec<Tri> = p
            .entries
            .iter()
            .map(|e| if item_has(&item, e, Some(&c)) { Tri::True } else { Tri::False })
            .collect();
        let truth = c.matches(&set);
        // Exact entries: the index answer is exact.
        prop_assert_eq!(consistent(&q, &p, &check), if truth { Tri::True } else { Tri::False }, "{}", q);
        // With some checks unknown, a definite answer must still be the truth.
        let fuzzy: Vec<Tri> = check
            .iter()
            .enumerate()
            .map(|(i, &t)| if maybe[i % maybe.len()] { Tri::Maybe } else { t })
            .collect();
        match consistent(&q, &p, &fuzzy) {
            Tri::Maybe => {}
            t => prop_assert_eq!(t, if truth { Tri::True } else { Tri::False }),
        }
        // A set with none of the entries can match only if the plan says so.
        if !p.needs_entry {
            // nothing to check: the scan visits every item
        } else if check.iter().all(|&t| t == Tri::False) {
            prop_assert!(!truth, "{} matched a set holding none of its entries", q);
        }
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let _ = TagSet::decode(&bytes);
        let mut v = vec![1u8];
        v.extend(&bytes);
        let _ = TagSet::decode(&v);
    }

    #[test]
    fn parsers_never_panic(s in "[ -~üé]{0,40}") {
        let _ = parse(&s);
        let _ = TagSet::parse(&s);
    }
}

#[test]
fn tags_split_at_the_first_colon() {
    let t = Tag::parse("env:staging:east").unwrap();
    assert_eq!(t.key(), "env");
    assert_eq!(t.value(), Some("staging:east"));
    let b = Tag::parse("gpu").unwrap();
    assert_eq!((b.key(), b.value()), ("gpu", None));
    assert!(Tag::parse(":x").is_err());
    assert!(Tag::parse("").is_err());
}

#[test]
fn tagset_text_form() {
    let s = TagSet::parse("{env:prod, az:us-east-1a,gpu,env:prod}").unwrap();
    assert_eq!(s.to_string(), "{az:us-east-1a,env:prod,gpu}");
    assert_eq!(TagSet::parse("{}").unwrap().len(), 0);
    assert_eq!(
        TagSet::parse(r#"{"a:x,y","b:\"q\""}"#).unwrap().to_string(),
        r#"{"a:x,y","b:\"q\""}"#
    );
    let e = TagSet::parse("{a,,b}").unwrap_err();
    assert_eq!(e.position, Some(3));
    assert!(TagSet::parse("env:prod").is_err());
    assert!(TagSet::parse("{a").is_err());
    assert!(TagSet::parse("{a} x").is_err());
}

#[test]
fn query_examples_print_canonically() {
    for (input, canonical) in [
        (
            "env:prod AND (az:us-east-1a OR az:us-east-1b) AND NOT host:web-* AND team:*",
            "env:prod AND (az:us-east-1a OR az:us-east-1b) AND NOT host:web-* AND team:*",
        ),
        ("a and b or c", "a AND b OR c"),
        ("a AND (b OR c)", "a AND (b OR c)"),
        ("NOT NOT a", "a"),
        ("NOT (a AND b)", "NOT (a AND b)"),
        ("((a))", "a"),
        ("k in (b, a, a)", "k IN (a, b)"),
        ("k not in (x)", "k NOT IN (x)"),
        ("svc:/web-[0-9]+/", "svc:/web-[0-9]+/"),
        ("url:http://x", "url:http://x"),
        ("name:\"a b\"", "name:\"a b\""),
        ("name:\"x*\"", "name:\"x*\""),
        ("\"and\"", "\"and\""),
        ("k:*east*", "k:*east*"),
    ] {
        let q = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(q.to_string(), canonical, "{input}");
    }
}

#[test]
fn query_errors_show_the_position() {
    for (input, pos, what) in [
        ("a AND", 6, "expected a tag"),
        ("(a OR b", 1, "missing \")\""),
        ("a b", 3, "unexpected"),
        ("k:/[/", 3, "invalid regular expression"),
        ("k IN (a", 8, "expected \",\" or \")\""),
        ("", 1, "empty query"),
        ("k:\"abc", 3, "unterminated"),
    ] {
        let e = parse(input).unwrap_err();
        assert_eq!(e.position + 1, pos, "{input}: {e}");
        assert!(e.message.contains(what), "{input}: {e}");
        let kind = if what == "invalid regular expression" {
            QueryErrorKind::Regex
        } else {
            QueryErrorKind::Syntax
        };
        assert_eq!(e.kind, kind, "{input}: {e}");
    }
}

#[test]
fn globs_match_like_the_oracle() {
    let q = parse("k:*east*").unwrap();
    let Query::Atom(Atom::Glob { parts, .. }) = q else {
        panic!()
    };
    for v in ["east", "us-east-1", "eas", "northeast", "eastern", ""] {
        assert_eq!(
            super::query::glob_matches(&parts, v),
            glob_oracle(&parts, v),
            "{v}"
        );
    }
    let q = parse("k:a*b*a").unwrap();
    let Query::Atom(Atom::Glob { parts, .. }) = q else {
        panic!()
    };
    for v in ["aba", "abba", "ab", "aXbYa", "aa", "abab", "a"] {
        assert_eq!(
            super::query::glob_matches(&parts, v),
            glob_oracle(&parts, v),
            "{v}"
        );
    }
}

#[test]
fn partial_matches_stop_past_the_prefix() {
    let q = parse("svc:web-*").unwrap();
    let p = plan(&q, true);
    let e = &p.entries[0];
    assert_eq!(gin::partial_matches(e, None, b"Vsvc:web-1"), 0);
    assert!(gin::partial_matches(e, None, b"Vsvd:a") > 0);
    let q = parse("svc:*-1").unwrap();
    let p = plan(&q, true);
    let e = &p.entries[0];
    assert_eq!(gin::partial_matches(e, None, b"Vsvc:web-1"), 0);
    assert!(gin::partial_matches(e, None, b"Vsvc:web-2") < 0);
    assert!(gin::partial_matches(e, None, b"Vsvcx:web-1") > 0);
}

#[test]
fn nul_is_refused_in_every_query_form() {
    // A quoted value, a bare tag, a regex: a NUL never gets into a query (its text
    // form could not be printed, dumped or restored).
    for q in ["\"a\0b\"", "env:pr\0d", "k:/a\0/", "\0"] {
        let e = parse(q).expect_err(q);
        assert!(e.to_string().contains("NUL"), "{q:?}: {e}");
    }
    assert!(Tag::parse("a\0b").is_err());
}
