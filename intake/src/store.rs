//! PostgreSQL side of the intake: schema setup, series ids (found or created once,
//! cached), and the writers that store batches of requests with one COPY and one
//! commit each, recording each request's digest in the same transaction.

use crate::cache::SeriesCache;
use crate::config::Config;
use crate::decode::Write;
use crate::pgtypes::{Millis, Tagset};
use crate::stats::Stats;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::pin_mut;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};
use tracing::{info, warn};

/// What every session of the intake runs first: names resolve in pg_catalog only (the
/// intake qualifies the rest), and the sessions are recognizable.
const SESSION_SETUP: &str =
    "SET search_path = pg_catalog, pg_temp; SET application_name = 'bidim-intake'";

/// A PostgreSQL identifier, double-quoted.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Qualified names of the intake's tables and of bidim's types.
#[derive(Debug, Clone)]
pub struct Names {
    pub series: String,
    pub points: String,
    pub metadata: String,
    pub requests: String,
    /// The bidim extension's schema, quoted.
    pub ext: String,
}

/// Why storing failed; both answer 503 so Prometheus retries.
#[derive(Debug)]
pub enum StoreError {
    /// The database could not be reached or the transaction failed.
    Database(String),
    /// No room or no commit within --queue-timeout.
    Busy(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Database(m) | StoreError::Busy(m) => f.write_str(m),
        }
    }
}

fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

/// A connection error's full text (tokio-postgres puts the server's message in the source).
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.severity(), d.message()),
        None => e.to_string(),
    }
}

pub async fn connect(conninfo: &str) -> Result<Client, String> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {}", pg_message(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            warn!("database connection closed: {e}");
        }
    });
    // Names are qualified; the search path is pinned anyway.
    client
        .batch_execute(SESSION_SETUP)
        .await
        .map_err(|e| pg_message(&e))?;
    Ok(client)
}

/// Finds bidim's schema and, with --create-schema, creates the tables.
pub async fn prepare(cfg: &Config) -> Result<Names, String> {
    let client = connect(&cfg.database).await?;
    let row = client
        .query_opt(
            "SELECT n.nspname::text FROM pg_catalog.pg_extension e
               JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
              WHERE e.extname = 'bidim'",
            &[],
        )
        .await
        .map_err(|e| pg_message(&e))?;
    let Some(row) = row else {
        return Err(
            "the bidim extension is not installed in this database (CREATE EXTENSION bidim)".into(),
        );
    };
    let ext = quote_ident(row.get::<_, String>(0).as_str());
    let schema = quote_ident(&cfg.schema);
    let names = Names {
        series: format!("{schema}.{}", quote_ident(&cfg.series_table)),
        points: format!("{schema}.{}", quote_ident(&cfg.points_table)),
        metadata: format!("{schema}.metric_metadata"),
        requests: format!("{schema}.intake_requests"),
        ext: ext.clone(),
    };
    if cfg.create_schema {
        let sql = include_str!("../sql/schema.sql")
            .replace("@schema@", &schema)
            .replace("@series@", &quote_ident(&cfg.series_table))
            .replace("@points@", &quote_ident(&cfg.points_table))
            .replace(
                "@series_labels_unique@",
                &quote_ident(&format!("{}_labels_unique", cfg.series_table)),
            )
            .replace(
                "@series_metric_idx@",
                &quote_ident(&format!("{}_metric_idx", cfg.series_table)),
            )
            .replace(
                "@series_labels_idx@",
                &quote_ident(&format!("{}_labels_idx", cfg.series_table)),
            )
            .replace("@ext@", &ext);
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| format!("cannot create the intake's tables: {}", pg_message(&e)))?;
        info!("schema {} ready", cfg.schema);
    }
    // The tables must be there (and the points table a bidim table).
    let am = client
        .query_opt(
            "SELECT a.amname::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_am a ON a.oid = c.relam
              WHERE c.oid = pg_catalog.to_regclass($1)",
            &[&names.points],
        )
        .await
        .map_err(|e| pg_message(&e))?;
    match am {
        None => {
            return Err(format!(
                "table {} does not exist (run with --create-schema to create the intake's tables)",
                names.points
            ))
        }
        Some(r) if r.get::<_, String>(0) != "bidim" => {
            return Err(format!("table {} is not a bidim table", names.points))
        }
        _ => {}
    }
    Ok(names)
}

pub fn pool(conninfo: &str, size: usize) -> Result<Pool, String> {
    let pg: tokio_postgres::Config = conninfo
        .parse()
        .map_err(|e: tokio_postgres::Error| format!("invalid connection string: {e}"))?;
    let mgr = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(size)
        .post_create(deadpool_postgres::Hook::async_fn(|client, _| {
            Box::pin(async move {
                client
                    .batch_execute(SESSION_SETUP)
                    .await
                    .map_err(|e| deadpool_postgres::HookError::Message(pg_message(&e).into()))
            })
        }))
        .build()
        .map_err(|e| e.to_string())
}

/// Series ids for a request's series, in order: from the cache, else found or created
/// in the series table (INSERT ... ON CONFLICT DO NOTHING, then SELECT).
pub async fn series_ids(
    pool: &Pool,
    names: &Names,
    cache: &Mutex<SeriesCache>,
    stats: &Stats,
    w: &Write,
) -> Result<Vec<i64>, StoreError> {
    let fps: Vec<u128> = w.series.iter().map(|s| s.labels.fingerprint()).collect();
    let mut ids = vec![0i64; fps.len()];
    let mut missing: Vec<usize> = Vec::new();
    {
        let mut c = cache.lock().expect("series cache lock");
        let mut seen = HashSet::new();
        for (i, fp) in fps.iter().enumerate() {
            match c.get(*fp) {
                Some(id) => ids[i] = id,
                None => {
                    if seen.insert(*fp) {
                        missing.push(i);
                    }
                }
            }
        }
    }
    if !missing.is_empty() {
        let client = pool.get().await.map_err(db)?;
        let metrics: Vec<&str> = missing
            .iter()
            .map(|&i| w.series[i].labels.metric())
            .collect();
        let sets: Vec<Tagset> = missing
            .iter()
            .map(|&i| Tagset(w.series[i].labels.tagset_bytes()))
            .collect();
        let ext = &names.ext;
        let created = client
            .execute(
                &format!(
                    "INSERT INTO {} (metric, labels)
                     SELECT u.m, u.l FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]), pg_catalog.unnest($2::{ext}.tagset[])) AS u(m, l)
                     ON CONFLICT DO NOTHING",
                    names.series
                ),
                &[&metrics, &sets],
            )
            .await
            .map_err(|e| db(pg_message(&e)))?;
        stats.series_created.inc_by(created);
        let rows = client
            .query(
                &format!(
                    "SELECT u.ord, s.id FROM pg_catalog.unnest($1::{ext}.tagset[]) WITH ORDINALITY AS u(l, ord)
                       JOIN {} s ON s.labels OPERATOR({ext}.=) u.l",
                    names.series
                ),
                &[&sets],
            )
            .await
            .map_err(|e| db(pg_message(&e)))?;
        let mut found: HashMap<u128, i64> = HashMap::with_capacity(rows.len());
        for r in rows {
            let ord: i64 = r.get(0);
            let id: i64 = r.get(1);
            found.insert(fps[missing[(ord - 1) as usize]], id);
        }
        let mut c = cache.lock().expect("series cache lock");
        for (i, fp) in fps.iter().enumerate() {
            if ids[i] == 0 {
                let id = *found.get(fp).ok_or_else(|| {
                    db(format!(
                        "series {:?} was neither created nor found",
                        w.series[i].labels.labels
                    ))
                })?;
                ids[i] = id;
                c.insert(*fp, id);
            }
        }
        stats.series_cached.set(c.len() as i64);
    }
    Ok(ids)
}

/// What a writer did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Its samples were committed now.
    New,
    /// A request with the same digest had been committed: nothing stored.
    Duplicate,
}

/// A request ready to store: series ids resolved.
pub struct Job {
    pub digest: u128,
    pub ids: Vec<i64>,
    pub write: Write,
    pub reply: oneshot::Sender<Result<Stored, String>>,
}

/// Starts `n` writers reading from one bounded queue.
pub fn start_writers(cfg: &Config, names: &Names, stats: Arc<Stats>) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>(cfg.max_inflight.max(1));
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    for n in 0..cfg.writers.max(1) {
        let rx = rx.clone();
        let names = names.clone();
        let stats = stats.clone();
        let conninfo = cfg.database.clone();
        let batch = cfg.batch_size.max(1);
        let window = cfg.dedup_window;
        tokio::spawn(async move { writer(n, rx, names, stats, conninfo, batch, window).await });
    }
    tx
}

async fn writer(
    n: usize,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    names: Names,
    stats: Arc<Stats>,
    conninfo: String,
    batch_size: usize,
    dedup_window: Duration,
) {
    let mut client: Option<Client> = None;
    let mut last_prune = Instant::now();
    loop {
        // Take one job, then whatever else is queued, up to batch_size samples.
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut samples = first.write.samples;
            jobs.push(first);
            while samples < batch_size {
                match rx.try_recv() {
                    Ok(j) => {
                        samples += j.write.samples;
                        jobs.push(j);
                    }
                    Err(_) => break,
                }
            }
        }
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = match connect(&conninfo).await {
                Ok(c) => Some(c),
                Err(e) => {
                    warn!("writer {n}: {e}");
                    for j in jobs {
                        let _ = j.reply.send(Err(e.clone()));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
        }
        let c = client.as_mut().expect("connected above");
        let started = Instant::now();
        match store_batch(c, &names, &jobs).await {
            Ok(outcomes) => {
                stats.batches.inc();
                stats.batch_seconds.observe(started.elapsed().as_secs_f64());
                for (j, o) in jobs.into_iter().zip(outcomes) {
                    match o {
                        Stored::New => {
                            stats.samples_stored.inc_by(j.write.samples as u64);
                            stats.metadata_stored.inc_by(j.write.metadata.len() as u64);
                        }
                        Stored::Duplicate => {
                            stats.samples_duplicate.inc_by(j.write.samples as u64);
                        }
                    }
                    let _ = j.reply.send(Ok(o));
                }
            }
            Err(e) => {
                warn!(
                    "writer {n}: batch of {} requests not stored: {e}",
                    jobs.len()
                );
                for j in jobs {
                    let _ = j.reply.send(Err(e.clone()));
                }
            }
        }
        if last_prune.elapsed() > Duration::from_secs(60) {
            last_prune = Instant::now();
            let sql = format!(
                "DELETE FROM {} WHERE stored_at < pg_catalog.now() - pg_catalog.make_interval(secs => $1)",
                names.requests
            );
            if let Err(e) = c.execute(&sql, &[&dedup_window.as_secs_f64()]).await {
                warn!("writer {n}: pruning request digests: {}", pg_message(&e));
            }
        }
    }
}

/// One transaction: the digests (ON CONFLICT DO NOTHING tells which requests are
/// new), one COPY of the new requests' samples, their metadata, commit.
async fn store_batch(c: &mut Client, names: &Names, jobs: &[Job]) -> Result<Vec<Stored>, String> {
    let tx = c.transaction().await.map_err(|e| pg_message(&e))?;
    // Requests with the same digest in one batch: only the first can be new.
    let mut first_of: HashMap<u128, usize> = HashMap::new();
    for (i, j) in jobs.iter().enumerate() {
        first_of.entry(j.digest).or_insert(i);
    }
    let digests: Vec<Vec<u8>> = first_of.keys().map(|d| d.to_be_bytes().to_vec()).collect();
    let counts: Vec<i32> = first_of
        .values()
        .map(|&i| jobs[i].write.samples.min(i32::MAX as usize) as i32)
        .collect();
    let rows = tx
        .query(
            &format!(
                "INSERT INTO {} (digest, samples)
                 SELECT * FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.bytea[]), pg_catalog.unnest($2::pg_catalog.int4[]))
                 ON CONFLICT DO NOTHING RETURNING digest",
                names.requests
            ),
            &[&digests, &counts],
        )
        .await
        .map_err(|e| pg_message(&e))?;
    let new: HashSet<u128> = rows
        .iter()
        .map(|r| u128::from_be_bytes(r.get::<_, &[u8]>(0).try_into().expect("16-byte digest")))
        .collect();
    let outcomes: Vec<Stored> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| {
            if new.contains(&j.digest) && first_of[&j.digest] == i {
                Stored::New
            } else {
                Stored::Duplicate
            }
        })
        .collect();
    if outcomes.contains(&Stored::New) {
        let sink = tx
            .copy_in(&format!(
                "COPY {} (series_id, ts, value) FROM STDIN (FORMAT binary)",
                names.points
            ))
            .await
            .map_err(|e| pg_message(&e))?;
        let w = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::TIMESTAMPTZ, Type::FLOAT8]);
        pin_mut!(w);
        for (j, _) in jobs
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == Stored::New)
        {
            for (s, id) in j.write.series.iter().zip(&j.ids) {
                for p in &s.samples {
                    w.as_mut()
                        .write(&[id, &Millis(p.timestamp), &p.value])
                        .await
                        .map_err(|e| pg_message(&e))?;
                }
            }
        }
        w.finish().await.map_err(|e| pg_message(&e))?;
        // Metadata: the latest per metric (one row each, so ON CONFLICT sees it once).
        let mut meta: HashMap<&str, (&'static str, &str, &str)> = HashMap::new();
        for (j, _) in jobs
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == Stored::New)
        {
            for m in &j.write.metadata {
                meta.insert(
                    m.metric_family_name.as_str(),
                    (
                        crate::proto::metric_type_name(m.r#type),
                        m.help.as_str(),
                        m.unit.as_str(),
                    ),
                );
            }
        }
        if !meta.is_empty() {
            let metric: Vec<&str> = meta.keys().copied().collect();
            let ty: Vec<&str> = metric.iter().map(|k| meta[k].0).collect();
            let help: Vec<&str> = metric.iter().map(|k| meta[k].1).collect();
            let unit: Vec<&str> = metric.iter().map(|k| meta[k].2).collect();
            tx.execute(
                &format!(
                    "INSERT INTO {m} AS t (metric, type, help, unit)
                     SELECT * FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]), pg_catalog.unnest($2::pg_catalog.text[]),
                                             pg_catalog.unnest($3::pg_catalog.text[]), pg_catalog.unnest($4::pg_catalog.text[]))
                     ON CONFLICT (metric) DO UPDATE SET type = excluded.type, help = excluded.help,
                         unit = excluded.unit, updated_at = pg_catalog.now()
                     WHERE (t.type, t.help, t.unit) IS DISTINCT FROM (excluded.type, excluded.help, excluded.unit)",
                    m = names.metadata
                ),
                &[&metric, &ty, &help, &unit],
            )
            .await
            .map_err(|e| pg_message(&e))?;
        }
    }
    tx.commit().await.map_err(|e| pg_message(&e))?;
    Ok(outcomes)
}
