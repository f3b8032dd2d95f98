//! Integration-test harness for bidim.
//!
//! A [`Cluster`] is a throwaway PostgreSQL 15 cluster in a temporary directory owned by
//! the `postgres` OS user (initdb refuses root), listening on a free loopback port,
//! with `bidim` in `shared_preload_libraries` unless asked otherwise. Tests connect
//! over real sockets with the `postgres` crate, from as many threads as they like,
//! and can crash the server two ways (`pg_ctl stop -m immediate`, `kill -9` of the
//! postmaster) and restart it. Dropping a `Cluster` stops the server and deletes the
//! directory, also when the test panicked; set `BIDIM_KEEP_CLUSTER=1` to keep it for
//! a post-mortem.
//!
//! The extension must be installed into the server (`cargo pgrx install`); the
//! README's test command does that before running these tests.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use postgres::{Client, NoTls};

/// Errors from the harness are plain strings with the command's output attached:
/// a test that fails to set up should say exactly why.
pub type Result<T> = std::result::Result<T, String>;

/// Where the PostgreSQL 15 binaries live (Debian layout unless `PG_BINDIR` says).
pub fn pg_bindir() -> PathBuf {
    match std::env::var_os("PG_BINDIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from("/usr/lib/postgresql/15/bin"),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A command that runs as the `postgres` OS user when we are root, else as ourselves.
fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("sudo");
        c.arg("-n").arg("-u").arg("postgres").arg("--").arg(program);
        // postgres may not be allowed into our working directory.
        c.current_dir("/");
        c
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// How to build a [`Cluster`].
#[derive(Clone, Debug)]
pub struct ClusterBuilder {
    preload: bool,
    settings: Vec<(String, String)>,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            preload: true,
            settings: Vec::new(),
        }
    }
}

impl ClusterBuilder {
    /// Whether `bidim` goes into `shared_preload_libraries` (default: yes).
    pub fn preload(mut self, yes: bool) -> Self {
        self.preload = yes;
        self
    }

    /// Adds a `postgresql.conf` setting; the value is written as given (quote strings).
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_string(), value.to_string()));
        self
    }

    /// Creates the cluster (initdb) and starts it.
    pub fn start(self) -> Result<Cluster> {
        become_subreaper();
        let bindir = pg_bindir();
        let base = std::env::var_os("BIDIM_TEST_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("bidim-it-")
            .tempdir_in(&base)
            .map_err(|e| format!("cannot create a temp dir in {}: {e}", base.display()))?
            .keep();
        if is_root() {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir))?;
        }
        let data = dir.join("data");
        let mut cluster = Cluster {
            dir,
            data,
            bindir,
            port: 0,
            running: false,
        };
        run(pg_command(&cluster.bindir.join("initdb"))
            .arg("-D")
            .arg(&cluster.data)
            .args([
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-U",
                "postgres",
            ]))?;

        let mut conf = String::from("\n# bidim test harness\n");
        conf.push_str("listen_addresses = '127.0.0.1'\n");
        conf.push_str(&format!(
            "unix_socket_directories = '{}'\n",
            cluster.dir.display()
        ));
        conf.push_str("fsync = on\nlogging_collector = off\n");
        // Crash tests must replay WAL, not find everything already checkpointed.
        conf.push_str("checkpoint_timeout = '1h'\nmax_wal_size = '4GB'\n");
        conf.push_str("shared_buffers = '128MB'\nmax_connections = 50\n");
        if self.preload {
            conf.push_str("shared_preload_libraries = 'bidim'\n");
        }
        for (k, v) in &self.settings {
            conf.push_str(&format!("{k} = {v}\n"));
        }
        cluster.append_conf(&conf)?;
        cluster.start()?;
        Ok(cluster)
    }
}

/// A running (or crashed) throwaway PostgreSQL cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The temp directory holding `data/`, `server.log` and the unix socket.
    pub dir: PathBuf,
    /// The data directory.
    pub data: PathBuf,
    /// The PostgreSQL binaries used.
    pub bindir: PathBuf,
    /// The TCP port on 127.0.0.1 (changes if a restart had to pick another).
    pub port: u16,
    running: bool,
}

impl Cluster {
    /// A started cluster with `bidim` preloaded and default settings.
    pub fn new() -> Result<Cluster> {
        ClusterBuilder::default().start()
    }

    /// Configure a cluster before it starts.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// Path of the server log (all starts append to it).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The whole server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Current length of the log, to read only what comes after it with [`Self::log_since`].
    pub fn log_mark(&self) -> u64 {
        fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0)
    }

    /// The log written since `mark`.
    pub fn log_since(&self, mark: u64) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(self.log_path()) {
            if f.seek(SeekFrom::Start(mark)).is_ok() {
                let _ = f.read_to_string(&mut s);
            }
        }
        s
    }

    fn append_conf(&self, text: &str) -> Result<()> {
        let path = self.data.join("postgresql.conf");
        let mut conf = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        conf.push_str(text);
        fs::write(&path, conf).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Starts the server (on the current port, or a fresh one if that is taken).
    pub fn start(&mut self) -> Result<()> {
        let mut last_err = String::new();
        for _attempt in 0..3 {
            if self.port == 0 || port_in_use(self.port) {
                self.port = free_port();
            }
            let out = pg_command(&self.bindir.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(self.log_path())
                .args(["-w", "-t", "120", "-o"])
                .arg(format!("-p {}", self.port))
                .arg("start")
                .output()
                .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
            if out.status.success() {
                self.running = true;
                return Ok(());
            }
            last_err = format!(
                "pg_ctl start failed: {}\n{}\nlog tail:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail(&self.log(), 30)
            );
            // The port may have been grabbed between our probe and the bind.
            self.port = 0;
        }
        Err(last_err)
    }

    /// Clean shutdown (`pg_ctl stop -m fast`).
    pub fn stop(&mut self) -> Result<()> {
        self.pg_ctl_stop("fast")
    }

    /// Crash: `pg_ctl stop -m immediate` (no shutdown checkpoint; recovery at restart).
    pub fn crash_immediate(&mut self) -> Result<()> {
        self.pg_ctl_stop("immediate")
    }

    fn pg_ctl_stop(&mut self, mode: &str) -> Result<()> {
        let pid = self.postmaster_pid();
        run(pg_command(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "120", "-m", mode, "stop"]))?;
        self.running = false;
        if let Some(pid) = pid {
            wait_gone(pid, Duration::from_secs(30));
        }
        Ok(())
    }

    /// The postmaster's pid, from `postmaster.pid`, if the file exists.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Crash: `kill -9` of the postmaster. Waits until the postmaster is gone and its
    /// orphaned children have noticed and exited (they would hold the shared memory
    /// segment and block a restart), killing stragglers after 30 s. Returns the pid
    /// that was killed.
    pub fn kill9_postmaster(&mut self) -> Result<i32> {
        let pid = self
            .postmaster_pid()
            .ok_or_else(|| "no postmaster.pid: server not running".to_string())?;
        let children = children_of(pid);
        // SAFETY: kill(2) with a pid read from our own cluster's postmaster.pid.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        if rc != 0 {
            return Err(format!(
                "kill -9 {pid} failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        self.running = false;
        // A new postmaster refuses to start while the old pid exists, even as a zombie.
        if !wait_gone(pid, Duration::from_secs(30)) {
            return Err(format!("postmaster {pid} still exists 30 s after SIGKILL"));
        }
        if !children
            .iter()
            .all(|c| wait_gone(*c, Duration::from_secs(30)))
        {
            for c in &children {
                // SAFETY: kill(2) of a process that was a child of our postmaster.
                unsafe { libc::kill(*c, libc::SIGKILL) };
            }
            if !children
                .iter()
                .all(|c| wait_gone(*c, Duration::from_secs(10)))
            {
                return Err("postmaster children survive SIGKILL".to_string());
            }
        }
        Ok(pid)
    }

    /// Restarts after a crash and checks, from the log, that the server really ran
    /// crash recovery. Returns the log of that start.
    pub fn restart_after_crash(&mut self) -> Result<String> {
        let mark = self.log_mark();
        self.start()?;
        let log = self.log_since(mark);
        if !log.contains("not properly shut down") && !log.contains("was interrupted") {
            return Err(format!(
                "restart did not run crash recovery; its log:\n{log}"
            ));
        }
        Ok(log)
    }

    /// Connection string for database `db` as superuser `postgres`.
    pub fn conninfo(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db} connect_timeout=30 application_name=bidim-it",
            self.port
        )
    }

    /// A new connection to database `postgres`.
    pub fn connect(&self) -> Result<Client> {
        self.connect_db("postgres")
    }

    /// A new connection to database `db`.
    pub fn connect_db(&self, db: &str) -> Result<Client> {
        Client::connect(&self.conninfo(db), NoTls)
            .map_err(|e| format!("connect to port {}: {e}", self.port))
    }

    /// A new connection to database `db` as role `user` (the cluster trusts loopback).
    pub fn connect_as(&self, db: &str, user: &str) -> Result<Client> {
        let info = self
            .conninfo(db)
            .replace("user=postgres", &format!("user={user}"));
        Client::connect(&info, NoTls).map_err(|e| format!("connect as {user}: {e}"))
    }

    /// A client program of the server's installation (psql, pg_dump, pg_restore, ...)
    /// already pointed at this cluster: host, port and user set.
    pub fn client_tool(&self, name: &str) -> Command {
        let mut c = Command::new(self.bindir.join(name));
        c.args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string());
        c
    }

    /// Runs SQL through psql (for meta-commands or scripts); returns its stdout.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let out = run(self.client_tool("psql").args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-d",
            db,
            "-c",
            sql,
        ]))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether the server is believed to be running.
    pub fn is_running(&self) -> bool {
        self.running
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl_stop("immediate");
        }
        if std::env::var_os("BIDIM_KEEP_CLUSTER").is_some() {
            eprintln!("keeping test cluster at {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn port_in_use(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_err()
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Alive means: /proc has it and it is not a zombie (a killed postmaster may linger as
/// a zombie where the container's init does not reap).
pub fn process_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => proc_stat_field(&stat, 0).is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Field `i` after the `(comm)` of a /proc/PID/stat line: 0 = state, 1 = ppid.
fn proc_stat_field(stat: &str, i: usize) -> Option<String> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(i).map(str::to_string)
}

/// Makes this process the reaper of orphaned descendants, so a postmaster that
/// `pg_ctl` left behind (and its backends, once it is killed) become our children and
/// we can reap them; some containers' init reaps zombies only now and then, and a
/// zombie postmaster's pid blocks the next start ("lock file already exists").
fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only sets a flag on this process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Waits until `pid` no longer exists, reaping it if it is our zombie child.
pub fn wait_gone(pid: i32, limit: Duration) -> bool {
    wait_until(limit, || {
        let mut status = 0;
        // SAFETY: waitpid on one specific pid with WNOHANG; harmless when it is not
        // our child (ECHILD).
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        !Path::new(&format!("/proc/{pid}")).exists()
    })
}

/// Pids whose parent is `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) {
                if proc_stat_field(&stat, 1).and_then(|p| p.parse::<i32>().ok()) == Some(pid) {
                    out.push(child);
                }
            }
        }
    }
    out
}

/// Polls `cond` every 50 ms until it holds (true) or `limit` passes (false).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// A small deterministic generator (xorshift), so failures replay.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-ish in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The single bigint a query returns (panics with the query on error).
/// The first column of every row of `sql` as text (an EXPLAIN's lines).
pub fn text_rows(c: &mut Client, sql: &str) -> Vec<String> {
    c.query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

pub fn one_i64(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Rows of `a` not in `b` plus rows of `b` not in `a`, as multisets; `a` and `b` are
/// table names or parenthesized subqueries with an alias.
pub fn difference(c: &mut Client, a: &str, b: &str) -> i64 {
    one_i64(
        c,
        &format!(
            "SELECT (SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) x)
                  + (SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a}) y)"
        ),
    )
}

/// Raw bytes sent as a binary-format parameter of whatever type the server expects
/// (to feed a type's receive function arbitrary input).
#[derive(Debug)]
pub struct Raw(pub Vec<u8>);

impl postgres::types::ToSql for Raw {
    fn to_sql(
        &self,
        _ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        out.extend_from_slice(&self.0);
        Ok(postgres::types::IsNull::No)
    }
    fn accepts(_ty: &postgres::types::Type) -> bool {
        true
    }
    postgres::types::to_sql_checked!();
}

/// Four writers for crash tests: each commits batches of 50 rows of
/// `b (writer, batch, n, ts)` (every fifth batch rolled back) until `stop` is set or
/// the server goes away; each returns its (writer, batch, committed) log.
pub fn crash_ingest(
    cluster: &Cluster,
    round: i32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<(i32, i32, bool)>>> {
    (0..4)
        .map(|w| {
            let mut c = cluster.connect().unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut log = Vec::new();
                let mut batch = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let writer = round * 100 + w;
                    let r = (|| -> std::result::Result<bool, postgres::Error> {
                        let mut tx = c.transaction()?;
                        tx.execute(
                            "INSERT INTO b SELECT $1, $2, g, timestamptz '2026-01-01' + (($2 * 31 + g) % 600) * interval '1 minute' FROM generate_series(1, 50) g",
                            &[&writer, &batch],
                        )?;
                        if batch % 5 == 4 {
                            tx.rollback()?;
                            Ok(false)
                        } else {
                            tx.commit()?;
                            Ok(true)
                        }
                    })();
                    match r {
                        Ok(committed) => log.push((writer, batch, committed)),
                        Err(_) => break, // the server went away mid-transaction
                    }
                    batch += 1;
                }
                log
            })
        })
        .collect()
}
