//! Background maintenance: a launcher and one short-lived worker per database and round.
//!
//! * The **launcher** (`bidim launcher`) is a static background worker registered by
//!   `_PG_init` under `shared_preload_libraries`. It connects to no database; every
//!   `bidim.maintenance_naptime` seconds it lists the databases that accept connections
//!   and starts a round worker for each one whose previous round has finished. The
//!   postmaster restarts it 5 s after a crash; it exits on SIGTERM (`pg_ctl stop`).
//! * A **round worker** (`bidim maintenance`) connects to its database, leaves at once
//!   if the extension is not installed there, runs the due jobs of `bidim.job`
//!   (retention policies, the database's maintenance job) each in its own transaction
//!   through `bidim.run_job`, and exits. It holds no connection between rounds, so
//!   `DROP DATABASE` and `CREATE DATABASE ... TEMPLATE` are not blocked by it.
//!
//! Errors inside a job are caught by `bidim.run_job` and recorded in `bidim.jobs`.

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// `bidim.maintenance`: whether the launcher starts round workers (default on).
pub static ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
/// `bidim.maintenance_naptime`: seconds between rounds (default 60).
pub static NAPTIME: GucSetting<i32> = GucSetting::<i32>::new(60);

/// Defines the GUCs (every process) and, under `shared_preload_libraries`, registers
/// the launcher.
pub fn install(preloading: bool) {
    GucRegistry::define_bool_guc(
        c"bidim.maintenance",
        c"Runs bidim's background maintenance (retention policies, sealing).",
        c"Needs bidim in shared_preload_libraries.",
        &ENABLED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"bidim.maintenance_naptime",
        c"Seconds between two rounds of bidim's background maintenance.",
        c"Each round runs the due jobs listed in bidim.jobs in every database with the extension.",
        &NAPTIME,
        1,
        86_400,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    if preloading {
        BackgroundWorkerBuilder::new("bidim launcher")
            .set_type("bidim launcher")
            .set_library("bidim")
            .set_function("bidim_launcher_main")
            .enable_spi_access()
            .set_start_time(pgrx::bgworkers::BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(Some(Duration::from_secs(5)))
            .load();
    }
}

/// Databases that accept connections and are not templates.
fn databases() -> Vec<pg_sys::Oid> {
    BackgroundWorker::transaction(|| {
        let mut out = Vec::new();
        // SAFETY: a catalog heap scan of pg_database (a shared catalog, readable without
        // a database connection) inside a transaction with an active snapshot.
        unsafe {
            let rel = pg_sys::table_open(
                pg_sys::DatabaseRelationId,
                pg_sys::AccessShareLock as pg_sys::LOCKMODE,
            );
            let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
            loop {
                let tup = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
                if tup.is_null() {
                    break;
                }
                let data = (*tup).t_data;
                let form = (data as *mut u8).add((*data).t_hoff as usize)
                    as *const pg_sys::FormData_pg_database;
                if (*form).datallowconn && !(*form).datistemplate {
                    out.push((*form).oid);
                }
            }
            pg_sys::table_endscan(scan);
            pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        }
        out
    })
}

/// The launcher's main function.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn bidim_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi_by_oid(None, None);
    log!("bidim launcher started");
    let mut rounds: HashMap<u32, pgrx::bgworkers::DynamicBackgroundWorker> = HashMap::new();
    let mut last_start: HashMap<u32, Instant> = HashMap::new();
    loop {
        if BackgroundWorker::sighup_received() {
            // SAFETY: reloads the configuration file in this process, as PostgreSQL's
            // own auxiliary processes do on SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let nap = Duration::from_secs(NAPTIME.get().max(1) as u64);
        if ENABLED.get() {
            // Forget rounds that have finished.
            rounds.retain(|_, w| w.pid().is_ok());
            for db in databases() {
                let key = db.to_u32();
                let due = last_start.get(&key).is_none_or(|t| t.elapsed() >= nap);
                if rounds.contains_key(&key) || !due {
                    continue;
                }
                // SAFETY: reads this process's pid.
                let me = unsafe { pg_sys::MyProcPid };
                let started = BackgroundWorkerBuilder::new("bidim maintenance")
                    .set_type("bidim maintenance")
                    .set_library("bidim")
                    .set_function("bidim_maintenance_main")
                    .enable_spi_access()
                    .set_argument(Some(pg_sys::Datum::from(db)))
                    .set_notify_pid(me)
                    .set_restart_time(None)
                    .load_dynamic();
                last_start.insert(key, Instant::now());
                match started {
                    Ok(w) => {
                        if w.wait_for_startup().is_ok() {
                            rounds.insert(key, w);
                        }
                    }
                    // No free worker slot: try again next round.
                    Err(_) => break,
                }
            }
        }
        // Sleep until the next round is due (a worker's exit sets the latch too).
        let next = last_start
            .values()
            .map(|t| nap.saturating_sub(t.elapsed()))
            .min()
            .unwrap_or(nap)
            .max(Duration::from_millis(100));
        if !BackgroundWorker::wait_latch(Some(next)) {
            break;
        }
    }
    log!("bidim launcher shutting down");
}

unsafe extern "C-unwind" {
    /// PostgreSQL's SIGTERM handler for backends (postgres.c): sets ProcDiePending.
    #[link_name = "die"]
    fn postgres_die(signal: i32);
}

/// A round worker's main function: runs the due jobs of one database, then exits.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn bidim_maintenance_main(arg: pg_sys::Datum) {
    // SIGTERM (pg_ctl stop, pg_terminate_backend) ends the round at the next interrupt
    // check, through PostgreSQL's own die() handler.
    // SAFETY: installing PostgreSQL's standard handler, then unblocking signals, as a
    // background worker's main function must.
    unsafe {
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(postgres_die));
        pg_sys::BackgroundWorkerUnblockSignals();
    }
    let db = pg_sys::Oid::from(arg.value() as u32);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db), None);
    // The round runs as the bootstrap superuser: every statement with the pinned
    // search path (bidim.run_job pins its own too).
    use super::privilege::pinned;
    let installed = BackgroundWorker::transaction(|| {
        pinned(|| {
            Spi::get_one::<bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'bidim')
                    AND pg_catalog.to_regclass('bidim.job') IS NOT NULL",
            )
            .unwrap_or_else(|e| {
                warning!("bidim maintenance: cannot tell whether bidim is installed: {e}");
                None
            })
            .unwrap_or(false)
        })
    });
    if !installed {
        return;
    }
    let due: Vec<i32> = BackgroundWorker::transaction(|| {
        pinned(|| {
            Spi::connect(|client| {
                let rows = client.select(
                "SELECT job_id FROM bidim.job WHERE next_run <= now() ORDER BY next_run, job_id",
                None,
                &[],
            )?;
                let mut v = Vec::new();
                for r in rows {
                    if let Some(id) = r.get::<i32>(1)? {
                        v.push(id);
                    }
                }
                Ok::<_, pgrx::spi::Error>(v)
            })
            .unwrap_or_else(|e| {
                warning!("bidim maintenance: cannot list the due jobs: {e}");
                Vec::new()
            })
        })
    });
    for id in due {
        // A rollup's threshold moves in a transaction of its own first.
        BackgroundWorker::transaction(|| {
            pinned(|| {
                if let Err(e) = Spi::run("SET LOCAL lock_timeout = '10s'") {
                    warning!("bidim maintenance: cannot set lock_timeout: {e}");
                }
                Spi::run_with_args("SELECT bidim._prepare_job($1)", &[id.into()])
                    .unwrap_or_else(|e| warning!("bidim maintenance: job {id}: {e}"));
            })
        });
        BackgroundWorker::transaction(|| {
            pinned(|| {
                if let Err(e) = Spi::run("SET LOCAL lock_timeout = '10s'") {
                    warning!("bidim maintenance: cannot set lock_timeout: {e}");
                }
                Spi::run_with_args("SELECT bidim.run_job($1)", &[id.into()])
                    .unwrap_or_else(|e| warning!("bidim maintenance: job {id}: {e}"));
            })
        });
    }
}
