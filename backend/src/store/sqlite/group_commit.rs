//! SQLite's hot write path: one writer thread that owns a connection and
//! takes the events, claims and finishes of many concurrent callers in
//! turns, one transaction per turn.
//!
//! Why turns: SQLite has a single write lock. When several pool
//! connections want it, the losers sleep in SQLite's busy handler (1 ms,
//! then 2, 5, 10 …), and every commit writes the WAL on its own. Here every
//! hot write is a job on a channel; the writer takes whatever has arrived
//! while it was busy and commits it together. Nobody waits for a batch to
//! fill: a lone job is written at once, and under load the turns grow by
//! themselves (the writer yields its CPU once between two full turns).
//! Each caller is answered once its turn is committed.
//!
//! Why a thread and rusqlite rather than sqlx: sqlx runs each SQLite
//! connection on a thread of its own and hands every statement, and every
//! result row, across a channel, each hand-off two thread wake-ups that cost
//! more than the statements themselves (docs/store-decisions.md). Here the statements run on the thread that owns the
//! connection (rusqlite, over the same libsqlite3 that sqlx links), so a
//! turn costs one wake-up of the writer and one per caller answered,
//! whatever it holds. Everything else in the SQLite store stays on sqlx.
//!
//! Within a turn, events come first, then finishes and heartbeats, then
//! claims, so a claim sees the runs just queued and the slots just freed.
//! A run claimed with a finish may have its start written only with its
//! end (see held_starts.rs). What each job runs is in writer_jobs.rs. A job that fails (an
//! event for a user deleted meanwhile, say) fails alone: the turn is written
//! again with each job in a savepoint, and only its caller gets the error.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::claims::{Claimer, claim};
use super::connection::open_own_connection;
use super::held_starts::{Held, HeldStarts};
use super::run_ends::record;
use super::wal::{WalLimit, checkpoint_loop};
use super::writer_jobs::{SQL, heartbeat, ingest, partial_output, report};
use crate::store::{
    EventIngest, NewEvent, NextClaim, PartialOutput, QueueLimits, Reported, RunFinish, RunReport,
    RunRow, RunStatus, StartedRun, StoreError, StoreResult, now_millis,
};

/// At most this many jobs per turn, so one transaction stays short.
const MAX_BATCH: usize = 512;

/// The handle the store writes through; the writer thread stops when the
/// last handle is dropped.
pub(crate) struct GroupCommit {
    // A std channel: the writer waits on it with a timeout (the end of a
    // held start's window), and sending never blocks.
    jobs: mpsc::Sender<Job>,
    /// How long a start claimed with a finish may stay unwritten, in µs;
    /// 0 writes every start at its claim (see held_starts.rs).
    hold_window_us: Arc<AtomicU64>,
}

type Reply<T> = oneshot::Sender<StoreResult<T>>;

/// A caller's write, its reply, and (once written) its outcome.
enum Job {
    Ingest {
        event: NewEvent,
        /// Refused if the user has this many runs queued.
        limits: Option<QueueLimits>,
        reply: Reply<EventIngest>,
        done: Option<StoreResult<EventIngest>>,
    },
    Claim {
        worker_id: String,
        wanted: NextClaim,
        reply: Reply<Option<RunRow>>,
        done: Option<StoreResult<Option<RunRow>>>,
    },
    /// A worker still runs the run.
    Heartbeat {
        run_id: String,
        worker_id: String,
        reply: Reply<bool>,
        done: Option<StoreResult<bool>>,
    },
    /// A running run's output so far.
    Output {
        run_id: String,
        worker_id: String,
        output: PartialOutput,
        reply: Reply<bool>,
        done: Option<StoreResult<bool>>,
    },
    /// A run begun outside the queue: its start, or (with `ended`) its
    /// whole record.
    Record {
        run: StartedRun,
        ended: Option<RunFinish>,
        reply: Reply<Option<RunStatus>>,
        done: Option<StoreResult<Option<RunStatus>>>,
    },
    /// A worker's reports and give-backs, and then (with `claim`) the runs
    /// it runs next, whose starts may be held (`hold_for`).
    Report {
        worker_id: String,
        reports: Vec<RunReport>,
        unstarted: Vec<String>,
        claim: Option<NextClaim>,
        hold_for: Option<Duration>,
        reply: Reply<Reported>,
        done: Option<StoreResult<Reported>>,
    },
}

impl Job {
    /// Events, then finishes and heartbeats, then claims.
    fn turn_order(&self) -> u8 {
        match self {
            Job::Ingest { .. } => 0,
            Job::Report { .. }
            | Job::Heartbeat { .. }
            | Job::Output { .. }
            | Job::Record { .. } => 1,
            Job::Claim { .. } => 2,
        }
    }

    /// Writes the job in `tx` at the turn's clock `now` and keeps its
    /// outcome; false if it failed. `held` is the runs whose start is not
    /// written yet, as of this job.
    fn write(&mut self, tx: &Connection, now: i64, held: &mut HeldStarts) -> bool {
        match self {
            Job::Ingest {
                event,
                limits,
                done,
                ..
            } => {
                let outcome = ingest(tx, held, event, *limits, now);
                // A full queue is an answer, not a failure: the job wrote
                // nothing, so the turn goes on.
                let ok = matches!(
                    outcome,
                    Ok(_) | Err(StoreError::QueueFull { .. } | StoreError::PayloadQuotaFull { .. })
                );
                *done = Some(outcome);
                ok
            }
            Job::Claim {
                worker_id,
                wanted,
                done,
                ..
            } => {
                let claimer = Claimer {
                    worker_id,
                    now,
                    hold_for: None,
                };
                let outcome = claim(tx, held, &claimer, wanted.clone());
                let ok = outcome.is_ok();
                *done = Some(outcome);
                ok
            }
            Job::Heartbeat {
                run_id,
                worker_id,
                done,
                ..
            } => {
                let outcome = heartbeat(tx, held, run_id, worker_id, now);
                let ok = outcome.is_ok();
                *done = Some(outcome);
                ok
            }
            Job::Output {
                run_id,
                worker_id,
                output,
                done,
                ..
            } => {
                let outcome = partial_output(tx, held, run_id, worker_id, output, now);
                let ok = outcome.is_ok();
                *done = Some(outcome);
                ok
            }
            Job::Record {
                run, ended, done, ..
            } => {
                let outcome = record(tx, held, run, ended.as_ref(), now);
                let ok = outcome.is_ok();
                *done = Some(outcome);
                ok
            }
            Job::Report {
                worker_id,
                reports,
                unstarted,
                claim,
                hold_for,
                done,
                ..
            } => {
                let claimer = Claimer {
                    worker_id,
                    now,
                    hold_for: *hold_for,
                };
                let outcome = report(tx, held, &claimer, reports, unstarted, claim.clone());
                let ok = outcome.is_ok();
                *done = Some(outcome);
                ok
            }
        }
    }

    /// Answers the caller once the turn is committed. (A caller that
    /// stopped waiting gets nothing; what was committed stays committed,
    /// as for any dropped request.)
    fn answer(self) {
        fn send<T>(reply: Reply<T>, done: Option<StoreResult<T>>) {
            let done = done.unwrap_or_else(|| {
                Err(StoreError::Corrupt(
                    "the writer answered a job it did not write".into(),
                ))
            });
            drop(reply.send(done));
        }
        match self {
            Job::Ingest { reply, done, .. } => send(reply, done),
            Job::Claim { reply, done, .. } => send(reply, done),
            Job::Heartbeat { reply, done, .. } => send(reply, done),
            Job::Output { reply, done, .. } => send(reply, done),
            Job::Report { reply, done, .. } => send(reply, done),
            Job::Record { reply, done, .. } => send(reply, done),
        }
    }

    /// The turn was not committed: whatever the job did is gone, and its
    /// caller gets `err`.
    fn refuse(self, err: &rusqlite::Error) {
        let err = || StoreError::Sqlite(clone_error(err));
        match self {
            Job::Ingest { reply, .. } => drop(reply.send(Err(err()))),
            Job::Claim { reply, .. } => drop(reply.send(Err(err()))),
            Job::Heartbeat { reply, .. } => drop(reply.send(Err(err()))),
            Job::Output { reply, .. } => drop(reply.send(Err(err()))),
            Job::Report { reply, .. } => drop(reply.send(Err(err()))),
            Job::Record { reply, .. } => drop(reply.send(Err(err()))),
        }
    }
}

impl GroupCommit {
    /// Opens the writer's own connection to the database file at `path`
    /// (already migrated) and starts the writer thread on it, and the
    /// checkpointer's thread and connection, which copy the WAL back in the
    /// background for as long as the writer runs; the writer itself only
    /// rewinds the WAL once it is longer than `wal_limit` bytes (see
    /// `WalLimit`).
    pub(super) fn start(path: &Path, wal_limit: u64) -> StoreResult<Self> {
        let conn = open_own_connection(path, wal_limit)?;
        let checkpoints = open_own_connection(path, wal_limit)?;
        let (jobs, queue) = mpsc::channel();
        // One pending signal is enough: a round copies everything written
        // before it starts.
        let (wrote, written) = mpsc::sync_channel(1);
        let wal = WalLimit::new(path, wal_limit);
        let thread_failed =
            |err: std::io::Error| StoreError::Writer(format!("thread could not start: {err}"));
        std::thread::Builder::new()
            .name("roost-sqlite-checkpointer".into())
            .spawn({
                let wal = wal.clone();
                move || checkpoint_loop(checkpoints, written, wal)
            })
            .map_err(thread_failed)?;
        std::thread::Builder::new()
            .name("roost-sqlite-writer".into())
            .spawn(move || write_loop(conn, queue, wrote, wal))
            .map_err(thread_failed)?;
        Ok(Self {
            jobs,
            hold_window_us: Arc::default(),
        })
    }

    /// From now on, the run claimed with a finish has its start written
    /// with its end if that comes within `window`, and after `window`
    /// otherwise; `Duration::ZERO` writes every start at its claim.
    pub(super) fn hold_starts(&self, window: Duration) {
        let micros = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        self.hold_window_us.store(micros, Ordering::Relaxed);
    }

    pub(super) async fn heartbeat(&self, run_id: &str, worker_id: &str) -> StoreResult<bool> {
        self.submit(|reply| Job::Heartbeat {
            run_id: run_id.to_string(),
            worker_id: worker_id.to_string(),
            reply,
            done: None,
        })
        .await
    }

    pub(super) async fn partial_output(
        &self,
        run_id: &str,
        worker_id: &str,
        output: &PartialOutput,
    ) -> StoreResult<bool> {
        self.submit(|reply| Job::Output {
            run_id: run_id.to_string(),
            worker_id: worker_id.to_string(),
            output: output.clone(),
            reply,
            done: None,
        })
        .await
    }

    pub(super) async fn ingest_event(
        &self,
        event: &NewEvent,
        limits: Option<QueueLimits>,
    ) -> StoreResult<EventIngest> {
        self.submit(|reply| Job::Ingest {
            event: event.clone(),
            limits,
            reply,
            done: None,
        })
        .await
    }

    pub(super) async fn claim_run(
        &self,
        worker_id: &str,
        per_script_limit: i64,
        skip_users: &[String],
    ) -> StoreResult<Option<RunRow>> {
        self.submit(|reply| Job::Claim {
            worker_id: worker_id.to_string(),
            wanted: NextClaim {
                per_script_limit,
                runs: 1,
                workers: 1,
                skip_users: skip_users.to_vec(),
            },
            reply,
            done: None,
        })
        .await
    }

    pub(super) async fn report_and_claim(
        &self,
        worker_id: &str,
        reports: Vec<RunReport>,
        unstarted: Vec<String>,
        claim: Option<NextClaim>,
    ) -> StoreResult<Reported> {
        self.submit(|reply| Job::Report {
            worker_id: worker_id.to_string(),
            reports,
            unstarted,
            claim,
            hold_for: match self.hold_window_us.load(Ordering::Relaxed) {
                0 => None,
                micros => Some(Duration::from_micros(micros)),
            },
            reply,
            done: None,
        })
        .await
    }

    pub(super) async fn record(
        &self,
        run: &StartedRun,
        ended: Option<&RunFinish>,
    ) -> StoreResult<Option<RunStatus>> {
        self.submit(|reply| Job::Record {
            run: run.clone(),
            ended: ended.cloned(),
            reply,
            done: None,
        })
        .await
    }

    async fn submit<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(job(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Writer("has stopped".into())
}

/// Takes turns until the last handle is dropped; after each turn, tells the
/// checkpointer there is something to copy (dropping `wrote` stops it), and
/// rewinds the WAL once it is too long. Between turns it writes the starts
/// of held runs whose window has ended.
fn write_loop(
    mut conn: Connection,
    queue: mpsc::Receiver<Job>,
    wrote: mpsc::SyncSender<()>,
    mut wal: WalLimit,
) {
    let mut held = HeldStarts::default();
    // How many jobs the last turn took: more than one means callers are
    // arriving together.
    let mut last_len = 0usize;
    // When the writer next looks at the WAL's length.
    let mut next_look = Instant::now();
    loop {
        let first = match held.next_due() {
            None => queue.recv().ok(),
            Some(due) => match queue.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            },
        };
        match first {
            Some(first) => {
                // Under load, the callers running on the other threads get
                // the CPU once before the turn is taken, so it takes their
                // jobs too: fewer, fuller turns (docs/sqlite-queue.md). A
                // lone caller's job is written at once.
                if last_len > 1 {
                    std::thread::yield_now();
                }
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                last_len = batch.len();
                write_turn(&mut conn, batch, &mut held);
            }
            // Every handle is gone (a timeout only ends the wait).
            None if held.is_empty() => return,
            None => {}
        }
        if held.next_due().is_some_and(|due| due <= Instant::now()) {
            write_due_starts(&mut conn, &mut held);
        }
        // Full means a round is already due; gone means the checkpointer
        // stopped (its thread ended), and the rewinds still bound the WAL.
        let _ = wrote.try_send(());
        if Instant::now() >= next_look {
            next_look = Instant::now() + wal.keep(&mut conn);
        }
    }
}

/// How long until the writer tries again to write held starts it could not.
const HELD_START_RETRY: Duration = Duration::from_millis(100);

/// Writes the starts of the held runs whose window has ended, in a
/// transaction of their own. A run cancelled meanwhile is left as it is:
/// its worker's next heartbeat finds it no longer running and stops it.
fn write_due_starts(conn: &mut Connection, held: &mut HeldStarts) {
    let due = held.take_due(Instant::now());
    let written = (|| -> rusqlite::Result<()> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now_millis();
        {
            let mut start = tx.prepare_cached(&SQL.start_run)?;
            for run in &due {
                start.execute(params![run.started_at, run.worker_id, run.run_id, now])?;
            }
        }
        tx.commit()
    })();
    if let Err(err) = written {
        tracing::warn!(error = %err, runs = due.len(), "writing the start of held runs failed; trying again shortly");
        let retry_at = Instant::now() + HELD_START_RETRY;
        held.put_back(due.into_iter().map(|run| Held {
            due: retry_at,
            ..run
        }));
    }
}

/// Writes one turn's jobs in one transaction and answers each once it is
/// committed.
///
/// First without savepoints: a savepoint copies every page it touches to
/// a sub-journal, a cost measured on event-triggered runs
/// (docs/store-decisions.md). If a job fails, the turn is rolled back and written again with
/// each job in a savepoint of its own, so the failing job is rolled back
/// alone and only its caller gets the error.
///
/// `held` changes with the jobs (a claim holds a run, a finish releases
/// it); a turn or job that is rolled back leaves it as it was.
fn write_turn(conn: &mut Connection, mut batch: Vec<Job>, held: &mut HeldStarts) {
    batch.sort_by_key(Job::turn_order);
    let before = held.clone();
    let mut written = write_jobs(conn, &mut batch, held, false);
    if let Ok(false) = written {
        *held = before.clone();
        written = write_jobs(conn, &mut batch, held, true);
    }
    match written {
        Ok(_) => batch.into_iter().for_each(Job::answer),
        Err(err) => {
            *held = before;
            tracing::error!(error = %err, jobs = batch.len(), "a SQLite write turn failed");
            batch.into_iter().for_each(|job| job.refuse(&err));
        }
    }
}

/// Writes `jobs` in one transaction. With `isolate`, each job is in a
/// savepoint and a failing one is rolled back alone; without, the first
/// failure rolls back the whole transaction and returns false. Returns true
/// once committed; an error if the transaction itself failed.
fn write_jobs(
    conn: &mut Connection,
    jobs: &mut [Job],
    held: &mut HeldStarts,
    isolate: bool,
) -> rusqlite::Result<bool> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_millis();
    for job in jobs.iter_mut() {
        if !isolate {
            if !job.write(&tx, now, held) {
                // Dropping the transaction rolls it back.
                return Ok(false);
            }
            continue;
        }
        let savepoint = tx.savepoint()?;
        let before = held.clone();
        if job.write(&savepoint, now, held) {
            savepoint.commit()?;
        } else {
            // Dropped unreleased, a savepoint rolls back.
            *held = before;
        }
    }
    tx.commit()?;
    Ok(true)
}

/// every caller in it, as SQLite's code and message.
fn clone_error(err: &rusqlite::Error) -> rusqlite::Error {
    match err {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}
