//! Proves every part of the integration harness works: cluster creation with the
//! extension preloaded (and without), several connections at once, both kinds of
//! crash with a real restart and WAL replay, and no loss of committed rows.

use bidim_tests::{process_alive, Client, Cluster};
use std::thread;

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).expect(sql).get(0)
}

#[test]
fn extension_loads_preloaded_and_not() {
    let cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute("CREATE EXTENSION bidim").unwrap();
    let row = c
        .query_one("SELECT bidim.preloaded(), bidim.version()", &[])
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "bidim should report it was preloaded"
    );
    assert!(!row.get::<_, String>(1).is_empty());
    let libs: String = c
        .query_one("SHOW shared_preload_libraries", &[])
        .unwrap()
        .get(0);
    assert_eq!(libs, "bidim");
    // \dx lists it.
    let dx = cluster.psql("postgres", "\\dx bidim").unwrap();
    assert!(dx.starts_with("bidim|"), "\\dx output: {dx}");

    let plain = Cluster::builder().preload(false).start().expect("cluster");
    let mut c = plain.connect().unwrap();
    c.batch_execute("CREATE EXTENSION bidim").unwrap();
    let pre: bool = c.query_one("SELECT bidim.preloaded()", &[]).unwrap().get(0);
    assert!(
        !pre,
        "without shared_preload_libraries the library loads on demand"
    );
    c.batch_execute("DROP EXTENSION bidim").unwrap();
}

/// Each writer commits `batches` transactions of `rows` rows and returns how many rows
/// it committed; the last transaction of each writer is rolled back.
fn concurrent_ingest(cluster: &Cluster, writers: i32, batches: i32, rows: i32) -> i64 {
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let mut c = cluster.connect().unwrap();
            thread::spawn(move || {
                let mut committed = 0i64;
                for b in 0..batches {
                    let mut tx = c.transaction().unwrap();
                    tx.execute(
                        "INSERT INTO points SELECT $1::int, $2::int, g, random() FROM generate_series(1, $3::int) g",
                        &[&w, &b, &rows],
                    )
                    .unwrap();
                    if b == batches - 1 {
                        tx.rollback().unwrap();
                    } else {
                        tx.commit().unwrap();
                        committed += rows as i64;
                    }
                }
                committed
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

#[test]
fn committed_rows_survive_immediate_stop_and_kill9() {
    let mut cluster = Cluster::new().expect("cluster");
    let mut c = cluster.connect().unwrap();
    c.batch_execute(
        "CREATE TABLE points (writer int, batch int, n int, value float8);
         CREATE EXTENSION bidim;",
    )
    .unwrap();

    // Round 1: concurrent ingest, one transaction left open, then an immediate stop.
    let mut expected = concurrent_ingest(&cluster, 4, 6, 500);
    let mut open = cluster.connect().unwrap();
    open.batch_execute(
        "BEGIN; INSERT INTO points SELECT -1, -1, g, 0 FROM generate_series(1, 1000) g",
    )
    .unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM points"), expected);
    drop(c);
    cluster.crash_immediate().expect("pg_ctl stop -m immediate");
    assert!(
        cluster.connect().is_err(),
        "server must be down after the crash"
    );
    let log = cluster.restart_after_crash().expect("restart");
    assert!(
        log.contains("redo starts at"),
        "recovery replayed no WAL:\n{log}"
    );
    drop(open);
    let mut c = cluster.connect().unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM points"), expected);
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM points WHERE writer = -1"),
        0
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM (SELECT writer, batch, n FROM points GROUP BY 1,2,3 HAVING count(*) > 1) d"),
        0
    );

    // Round 2: more ingest, then kill -9 of the postmaster while a client is connected.
    expected += concurrent_ingest(&cluster, 3, 5, 700);
    let mut open = cluster.connect().unwrap();
    open.batch_execute(
        "BEGIN; INSERT INTO points SELECT -2, -2, g, 0 FROM generate_series(1, 1000) g",
    )
    .unwrap();
    drop(c);
    let pid = cluster.kill9_postmaster().expect("kill -9");
    assert!(!process_alive(pid), "postmaster {pid} must be dead");
    assert!(
        open.simple_query("SELECT 1").is_err(),
        "the open session must be gone"
    );
    let log = cluster
        .restart_after_crash()
        .expect("restart after kill -9");
    assert!(
        log.contains("redo starts at"),
        "recovery replayed no WAL:\n{log}"
    );
    assert_ne!(cluster.postmaster_pid(), Some(pid), "a new postmaster runs");
    let mut c = cluster.connect().unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM points"), expected);
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM points WHERE writer < 0"),
        0
    );
    // The extension is still usable after recovery.
    let pre: bool = c.query_one("SELECT bidim.preloaded()", &[]).unwrap().get(0);
    assert!(pre);
    cluster.stop().expect("clean stop");
}

#[test]
fn failed_test_still_cleans_up_its_cluster() {
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let cluster = Cluster::new().expect("cluster");
        let pid = cluster.postmaster_pid().expect("running");
        *seen.lock().unwrap() = Some((cluster.dir.clone(), pid));
        panic!("a failing test");
    });
    assert!(result.is_err());
    let (dir, pid) = seen.into_inner().unwrap().expect("cluster was started");
    assert!(!dir.exists(), "{} must be removed", dir.display());
    assert!(
        bidim_tests::wait_gone(pid, std::time::Duration::from_secs(10)),
        "postmaster {pid} must be stopped"
    );
}
