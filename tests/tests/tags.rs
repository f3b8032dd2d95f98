//! Tags in the database: sequential scan, GIN bitmap scan and a brute-force matcher
//! agree on 100k random series (also with a pending list, after cleaning it, after
//! UPDATE/DELETE/VACUUM); describe-tags equals SELECT DISTINCT after random churn.

use bidim_tests::{difference, Client, Cluster, Rng};

const ENVS: [&str; 3] = ["prod", "dev", "staging"];
const AZS: [&str; 4] = ["us-east-1a", "us-east-1b", "eu-west-1a", "ap-south-1"];
const TEAMS: [&str; 3] = ["a", "b", "c"];

fn random_tags(r: &mut Rng) -> Vec<String> {
    let mut t = Vec::new();
    if r.below(50) == 0 {
        return t; // a few empty sets
    }
    t.push(format!("env:{}", ENVS[r.below(3) as usize]));
    t.push(format!("service:svc-{}", r.below(20)));
    t.push(format!("host:h-{}", r.below(1000)));
    t.push(format!("az:{}", AZS[r.below(4) as usize]));
    if r.below(10) == 0 {
        t.push("gpu".to_string());
    }
    for _ in 0..r.below(3) {
        t.push(format!("team:{}", TEAMS[r.below(3) as usize]));
    }
    t.sort();
    t.dedup();
    t
}

fn set_text(tags: &[String]) -> String {
    format!("{{{}}}", tags.join(","))
}

/// A brute-force matcher over a series' tag texts.
type Matcher = Box<dyn Fn(&[String]) -> bool>;

/// A query: its text and its matcher.
struct Q {
    text: String,
    f: Matcher,
}

fn values_of<'a>(tags: &'a [String], key: &str) -> impl Iterator<Item = &'a str> + 'a {
    let prefix = format!("{key}:");
    tags.iter()
        .filter_map(move |t| t.strip_prefix(prefix.as_str()))
}

fn atom(r: &mut Rng) -> Q {
    match r.below(11) {
        0 => {
            let e = ENVS[r.below(3) as usize];
            Q {
                text: format!("env:{e}"),
                f: Box::new(move |t| t.iter().any(|x| x == &format!("env:{e}"))),
            }
        }
        1 => {
            let s = r.below(20);
            Q {
                text: format!("service:svc-{s}"),
                f: Box::new(move |t| t.iter().any(|x| x == &format!("service:svc-{s}"))),
            }
        }
        2 => Q {
            text: "gpu".into(),
            f: Box::new(|t| t.iter().any(|x| x == "gpu")),
        },
        3 => Q {
            text: "team:*".into(),
            f: Box::new(|t| values_of(t, "team").next().is_some()),
        },
        4 => {
            let p = r.below(10);
            Q {
                text: format!("host:h-{p}*"),
                f: Box::new(move |t| {
                    values_of(t, "host").any(|v| v.starts_with(&format!("h-{p}")))
                }),
            }
        }
        5 => Q {
            text: "az:*-1a".into(),
            f: Box::new(|t| values_of(t, "az").any(|v| v.ends_with("-1a"))),
        },
        6 => Q {
            text: "az:*east*".into(),
            f: Box::new(|t| values_of(t, "az").any(|v| v.contains("east"))),
        },
        7 => Q {
            // svc-1 followed by exactly one digit: svc-10 .. svc-19.
            text: "service:/svc-1[0-9]/".into(),
            f: Box::new(|t| {
                values_of(t, "service").any(|v| {
                    v.len() == 6 && v.starts_with("svc-1") && v.as_bytes()[5].is_ascii_digit()
                })
            }),
        },
        8 => {
            let a = TEAMS[r.below(3) as usize];
            let b = TEAMS[r.below(3) as usize];
            Q {
                text: format!("team IN ({a}, {b})"),
                f: Box::new(move |t| values_of(t, "team").any(|v| v == a || v == b)),
            }
        }
        9 => {
            let a = ENVS[r.below(3) as usize];
            Q {
                text: format!("env NOT IN ({a})"),
                f: Box::new(move |t| !values_of(t, "env").any(|v| v == a)),
            }
        }
        _ => Q {
            text: "nosuch:*".into(),
            f: Box::new(|t| values_of(t, "nosuch").next().is_some()),
        },
    }
}

fn query(r: &mut Rng, depth: u32) -> Q {
    if depth == 0 || r.below(3) == 0 {
        return atom(r);
    }
    match r.below(3) {
        0 => {
            let q = query(r, depth - 1);
            Q {
                text: format!("NOT ({})", q.text),
                f: Box::new(move |t| !(q.f)(t)),
            }
        }
        1 => {
            let (a, b) = (query(r, depth - 1), query(r, depth - 1));
            Q {
                text: format!("({}) AND ({})", a.text, b.text),
                f: Box::new(move |t| (a.f)(t) && (b.f)(t)),
            }
        }
        _ => {
            let (a, b) = (query(r, depth - 1), query(r, depth - 1));
            Q {
                text: format!("({}) OR ({})", a.text, b.text),
                f: Box::new(move |t| (a.f)(t) || (b.f)(t)),
            }
        }
    }
}

/// (count, sum of ids) of the rows matching `q`, with the given planner settings.
fn run(c: &mut Client, q: &str, index: bool) -> (i64, i64) {
    let settings = if index {
        "SET enable_seqscan = off; SET enable_bitmapscan = on;"
    } else {
        "SET enable_seqscan = on; SET enable_bitmapscan = off; SET enable_indexscan = off;"
    };
    c.batch_execute(settings).unwrap();
    let row = c
        .query_one(
            "SELECT count(*), coalesce(sum(id), 0)::int8 FROM series WHERE tags @@ $1::text::tagquery",
            &[&q],
        )
        .unwrap_or_else(|e| panic!("{q}: {e}"));
    (row.get(0), row.get(1))
}

fn check_all(
    c: &mut Client,
    data: &std::collections::BTreeMap<i32, Vec<String>>,
    queries: &[Q],
    when: &str,
) {
    for q in queries {
        let want = data
            .iter()
            .filter(|(_, t)| (q.f)(t))
            .fold((0i64, 0i64), |(n, s), (id, _)| (n + 1, s + *id as i64));
        let seq = run(c, &q.text, false);
        let idx = run(c, &q.text, true);
        assert_eq!(
            seq, want,
            "{when}: sequential scan vs oracle for {}",
            q.text
        );
        assert_eq!(idx, want, "{when}: index scan vs oracle for {}", q.text);
    }
    c.batch_execute("RESET enable_seqscan; RESET enable_bitmapscan; RESET enable_indexscan")
        .unwrap();
}

fn insert(c: &mut Client, rows: &[(i32, Vec<String>)]) {
    let ids: Vec<i32> = rows.iter().map(|r| r.0).collect();
    let texts: Vec<String> = rows.iter().map(|r| set_text(&r.1)).collect();
    c.execute(
        "INSERT INTO series SELECT id, t::tagset FROM unnest($1::int4[], $2::text[]) AS u(id, t)",
        &[&ids, &texts],
    )
    .unwrap();
}

#[test]
fn seq_scan_index_scan_and_oracle_agree_on_100k_series() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE TABLE series (id int PRIMARY KEY, tags tagset);",
    )
    .unwrap();
    let mut r = Rng(0x5eed_1234_abcd_0001);
    let mut data = std::collections::BTreeMap::new();
    let rows: Vec<(i32, Vec<String>)> = (1..=100_000).map(|id| (id, random_tags(&mut r))).collect();
    for chunk in rows.chunks(20_000) {
        insert(&mut c, chunk);
    }
    data.extend(rows);
    // fastupdate on with a large pending list limit: later inserts stay pending.
    c.batch_execute(
        "CREATE INDEX series_tags ON series USING gin (tags) WITH (fastupdate = on, gin_pending_list_limit = 65536);
         ANALYZE series;",
    )
    .unwrap();
    let queries: Vec<Q> = (0..120).map(|_| query(&mut r, 3)).collect();
    check_all(&mut c, &data, &queries, "after build");

    // Rows in the pending list.
    let more: Vec<(i32, Vec<String>)> = (100_001..=105_000)
        .map(|id| (id, random_tags(&mut r)))
        .collect();
    insert(&mut c, &more);
    data.extend(more);
    c.batch_execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        .unwrap();
    let pending: i64 = c
        .query_one(
            "SELECT pending_tuples::int8 FROM pgstatginindex('series_tags')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(pending > 0, "the new rows should wait in the pending list");
    check_all(&mut c, &data, &queries[..40], "with a pending list");
    c.batch_execute("SELECT gin_clean_pending_list('series_tags')")
        .unwrap();
    check_all(
        &mut c,
        &data,
        &queries[..40],
        "after gin_clean_pending_list",
    );

    // UPDATE, DELETE, VACUUM.
    let mut changed = Vec::new();
    for id in (1..=105_000).step_by(97) {
        let t = random_tags(&mut r);
        changed.push((id, set_text(&t)));
        data.insert(id, t);
    }
    let ids: Vec<i32> = changed.iter().map(|x| x.0).collect();
    let texts: Vec<String> = changed.iter().map(|x| x.1.clone()).collect();
    c.execute(
        "UPDATE series s SET tags = u.t::tagset FROM unnest($1::int4[], $2::text[]) AS u(id, t) WHERE s.id = u.id",
        &[&ids, &texts],
    )
    .unwrap();
    c.batch_execute("DELETE FROM series WHERE id % 13 = 0")
        .unwrap();
    data.retain(|id, _| id % 13 != 0);
    c.batch_execute("VACUUM series").unwrap();
    check_all(&mut c, &data, &queries, "after UPDATE, DELETE, VACUUM");

    // A positive query reads through the index.
    let plan: Vec<String> = c
        .query(
            "EXPLAIN SELECT id FROM series WHERE tags @@ 'env:prod AND service:svc-7 AND gpu'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        plan.iter().any(|l| l.contains("Bitmap Index Scan")),
        "{plan:?}"
    );
}

#[test]
fn describe_tags_equals_distinct_after_random_churn() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION bidim;
         CREATE TABLE series (id int PRIMARY KEY, tags tagset);",
    )
    .unwrap();
    let mut r = Rng(0xfeed_0000_0000_0042);
    let rows: Vec<(i32, Vec<String>)> = (1..=5_000).map(|id| (id, random_tags(&mut r))).collect();
    insert(&mut c, &rows);
    c.batch_execute("SELECT bidim.enable_tag_dictionary('series', 'tags')")
        .unwrap();
    let mut next = 5_001;
    for step in 0..60 {
        let rollback = r.below(5) == 0;
        c.batch_execute("BEGIN").unwrap();
        match r.below(4) {
            0 => {
                let rows: Vec<(i32, Vec<String>)> = (next..next + 50)
                    .map(|id| (id, random_tags(&mut r)))
                    .collect();
                next += 50;
                insert(&mut c, &rows);
            }
            1 => {
                let t = set_text(&random_tags(&mut r));
                c.execute(
                    "UPDATE series SET tags = $1::text::tagset WHERE id % 37 = $2",
                    &[&t, &(r.below(37) as i32)],
                )
                .unwrap();
            }
            2 => {
                c.execute(
                    "DELETE FROM series WHERE id % 41 = $1",
                    &[&(r.below(41) as i32)],
                )
                .unwrap();
            }
            _ => {
                c.batch_execute("UPDATE series SET tags = tags WHERE id % 7 = 0")
                    .unwrap();
            }
        }
        c.batch_execute(if rollback { "ROLLBACK" } else { "COMMIT" })
            .unwrap();
        if step % 10 == 9 {
            let diff = difference(
                &mut c,
                "(SELECT key, value, series FROM bidim.describe_tags('series')) d",
                "(SELECT e.key, e.value, count(*) FROM series s, tagset_each(s.tags) e GROUP BY 1, 2) e",
            );
            assert_eq!(
                diff, 0,
                "describe_tags differs from SELECT DISTINCT at step {step}"
            );
            let keys = difference(
                &mut c,
                "(SELECT key, series FROM bidim.tag_keys('series')) d",
                "(SELECT k, count(*) FROM series s, unnest(tagset_keys(s.tags)) k GROUP BY 1) e",
            );
            assert_eq!(keys, 0, "tag_keys differs at step {step}");
        }
    }
}
