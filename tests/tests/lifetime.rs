//! A table lives forever: chunk ordinals of dropped chunks are reused once no snapshot
//! can hold a TID of theirs, so a table cycles through more chunks than it has chunk
//! numbers (16 382) and still equals a heap table holding the same rows.

use bidim_tests::{difference, one_i64, Client, Cluster};
use std::time::Instant;

/// Rows per hour: one hot chunk per hourly partition.
const HOUR_ROWS: i64 = 6;

/// Inserts `hours` hours of rows from hour `from` into both tables (INSERT into one
/// table, COPY into the other half of the time, so multi_insert is exercised too).
fn insert_hours(c: &mut Client, from: i64, hours: i64) {
    for t in ["b", "h"] {
        c.batch_execute(&format!(
            "INSERT INTO {t} SELECT g % 2, timestamptz '2000-01-01' + g * interval '10 minutes', g
             FROM generate_series({}, {}) g",
            from * HOUR_ROWS,
            (from + hours) * HOUR_ROWS - 1
        ))
        .unwrap();
    }
}

/// Drops the partitions before hour `until` from both tables.
fn drop_until(c: &mut Client, until: i64) {
    c.batch_execute(&format!(
        "SELECT bidim.drop_before('b', timestamptz '2000-01-01' + {until} * interval '1 hour');
         DELETE FROM h WHERE ts < timestamptz '2000-01-01' + {until} * interval '1 hour';"
    ))
    .unwrap();
}

fn setup(cluster: &Cluster) -> Client {
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE EXTENSION IF NOT EXISTS bidim;
         CREATE TABLE b (k int, ts timestamptz, v bigint) USING bidim;
         SELECT bidim.configure('b', partition_interval => '1 hour');
         CREATE TABLE h (k int, ts timestamptz, v bigint);
         SET bidim.max_chunks_per_transaction = 1000;",
    )
    .unwrap();
    c
}

fn cluster() -> Cluster {
    Cluster::builder()
        .setting("bidim.maintenance", "off")
        .setting("max_locks_per_transaction", "512")
        .setting("bidim.max_chunks_per_transaction", "1000")
        .start()
        .unwrap()
}

/// Cycles `hours` new hourly partitions through the table from several connections,
/// keeping the last 60 hours; returns the next hour.
fn cycle(cluster: &Cluster, c: &mut Client, mut hour: i64, hours: i64) -> i64 {
    let mut writers: Vec<Client> = (0..3).map(|_| cluster.connect().unwrap()).collect();
    let end = hour + hours;
    let mut round = 0;
    while hour < end {
        let w = &mut writers[round % 3];
        let step = 500.min(end - hour);
        insert_hours(w, hour, step);
        hour += step;
        drop_until(w, hour - 60);
        round += 1;
        if round % 8 == 0 {
            assert_eq!(
                difference(c, "b", "h"),
                0,
                "hour {hour}: bidim and heap differ"
            );
        }
    }
    hour
}

#[test]
fn a_table_cycles_through_more_chunks_than_numbers_and_tids_stay_unique() {
    let cluster = cluster();
    let mut c = setup(&cluster);
    let started = Instant::now();
    insert_hours(&mut c, 0, 100);
    // Anchor rows far in the future, in a partition retention never reaches.
    c.batch_execute(
        "INSERT INTO b SELECT 1, timestamptz '2100-01-01' + g * interval '1 minute', -g FROM generate_series(1, 20) g;
         INSERT INTO h SELECT 1, timestamptz '2100-01-01' + g * interval '1 minute', -g FROM generate_series(1, 20) g;",
    )
    .unwrap();
    // A REPEATABLE READ transaction holds a cursor on the anchor rows (and their
    // TIDs) while 2000 chunks come and go: no chunk number is reused meanwhile (its
    // snapshot holds the horizon), so its TIDs can only ever name its own rows.
    let mut reader = cluster.connect().unwrap();
    reader
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ;
             DECLARE cur CURSOR FOR SELECT v FROM b WHERE ts >= '2100-01-01' ORDER BY v;",
        )
        .unwrap();
    let head: Vec<i64> = reader
        .query("FETCH 5 FROM cur", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(head, vec![-20, -19, -18, -17, -16]);
    let held: String = reader
        .query_one(
            "SELECT ctid::text FROM b WHERE ts >= '2100-01-01' AND v = -1",
            &[],
        )
        .unwrap()
        .get(0);
    let before = one_i64(
        &mut c,
        "SELECT last_ordinal FROM bidim.chunk_counter WHERE rel = 'b'::regclass",
    );
    let mut hour = cycle(&cluster, &mut c, 100, 2000);
    let during = one_i64(
        &mut c,
        "SELECT last_ordinal FROM bidim.chunk_counter WHERE rel = 'b'::regclass",
    );
    assert_eq!(
        during - before,
        2000,
        "a chunk number was reused while a snapshot that could reach it was open"
    );
    let rest: Vec<i64> = reader
        .query("FETCH ALL FROM cur", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rest, (-15..=-1).collect::<Vec<i64>>());
    assert_eq!(
        one_i64(
            &mut reader,
            "SELECT count(*) FROM b WHERE ts >= '2100-01-01'"
        ),
        20
    );
    // Its TID names its own row, nothing newer.
    reader
        .batch_execute(&format!("DELETE FROM b WHERE ctid = '{held}'"))
        .unwrap();
    reader.batch_execute("COMMIT").unwrap();
    c.batch_execute("DELETE FROM h WHERE v = -1").unwrap();
    assert_eq!(
        difference(&mut c, "b", "h"),
        0,
        "the ctid DELETE hit another row"
    );
    // Past 16 382 chunks every new chunk reuses a number.
    hour = cycle(&cluster, &mut c, hour, 20_000 - 2100);
    let made = hour + 1;
    assert!(made >= 20_000);
    let max = one_i64(
        &mut c,
        "SELECT max(chunk_id)::int8 FROM bidim.chunk WHERE rel = 'b'::regclass",
    );
    assert!(max <= 16_382, "chunk ordinal {max}");
    let counter = one_i64(
        &mut c,
        "SELECT last_ordinal FROM bidim.chunk_counter WHERE rel = 'b'::regclass",
    );
    assert!(
        counter < made,
        "no number was reused ({counter} for {made} chunks)"
    );
    // COPY still works, and the table equals the heap.
    let mut w = c.copy_in("COPY b FROM STDIN").unwrap();
    use std::io::Write;
    writeln!(w, "1\t2101-01-01 00:00:00+00\t-100").unwrap();
    w.finish().unwrap();
    c.batch_execute("INSERT INTO h VALUES (1, '2101-01-01 00:00:00+00', -100)")
        .unwrap();
    assert_eq!(difference(&mut c, "b", "h"), 0);
    eprintln!(
        "cycled {made} chunks ({} rows) in {:.0} s; chunk numbers used: {counter}",
        hour * HOUR_ROWS,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn chunk_numbers_survive_kill9_in_the_middle_of_a_cycle() {
    let mut cluster = cluster();
    let mut c = setup(&cluster);
    let mut hour = 0;
    for crash in 0..3 {
        hour = cycle(&cluster, &mut c, hour, 600);
        // A transaction that made chunks (and one that reused dropped numbers) is in
        // flight when the postmaster is killed.
        let mut w = cluster.connect().unwrap();
        w.batch_execute(&format!(
            "BEGIN; SELECT bidim.drop_before('b', timestamptz '2000-01-01' + {} * interval '1 hour');
             INSERT INTO b SELECT 1, timestamptz '2000-01-01' + ({hour} + g) * interval '1 hour', 0
             FROM generate_series(0, 99) g;",
            hour - 10
        ))
        .unwrap();
        cluster.kill9_postmaster().unwrap();
        cluster.restart_after_crash().unwrap();
        c = cluster.connect().unwrap();
        c.batch_execute("SET bidim.max_chunks_per_transaction = 1000")
            .unwrap();
        assert_eq!(
            difference(&mut c, "b", "h"),
            0,
            "crash {crash}: committed rows lost or aborted rows kept"
        );
        // Every directory row has its relation and every chunk number is one owner's.
        let orphans = one_i64(
            &mut c,
            "SELECT count(*) FROM bidim.chunk d LEFT JOIN pg_class k ON k.oid = d.chunk_rel
             WHERE k.oid IS NULL",
        );
        assert_eq!(orphans, 0);
        let both = one_i64(
            &mut c,
            "SELECT count(*) FROM bidim.chunk d JOIN bidim.chunk_free f
               ON f.rel = d.rel AND f.ordinal = d.chunk_id",
        );
        assert_eq!(both, 0, "a number is both in use and free");
    }
    let _ = cycle(&cluster, &mut c, hour, 300);
}
