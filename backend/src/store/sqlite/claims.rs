//! The SQLite writer's claims: which queued runs a worker may take, under
//! each script's concurrency cap and each key's concurrency limit, counting
//! the runs other workers hold (see held_starts.rs).

use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use super::held_starts::{Held, HeldStarts};
use super::writer_jobs::SQL;
use crate::store::rows::run_from_row;
use crate::store::{NextClaim, RunRow, StoreResult};

/// Who claims, when, and for how long the start may be held (`None`:
/// written at the claim).
pub(super) struct Claimer<'a> {
    pub(super) worker_id: &'a str,
    pub(super) now: i64,
    pub(super) hold_for: Option<Duration>,
}

/// Claims the oldest claimable run for `claimer` (see `claim_runs`).
pub(super) fn claim(
    tx: &Connection,
    held: &mut HeldStarts,
    claimer: &Claimer<'_>,
    wanted: NextClaim,
) -> StoreResult<Option<RunRow>> {
    let one = NextClaim {
        runs: 1,
        workers: 1,
        ..wanted
    };
    Ok(claim_runs(tx, held, claimer, one)?.into_iter().next())
}

/// Claims the oldest claimable runs for `claimer`, to be run one after
/// another: their starts are written now, or held (see held_starts.rs).
/// Several are handed out only when held: a written start would make a run
/// that waits in the worker's hands read as running.
pub(super) fn claim_runs(
    tx: &Connection,
    held: &mut HeldStarts,
    claimer: &Claimer<'_>,
    wanted: NextClaim,
) -> StoreResult<Vec<RunRow>> {
    let wanted = match claimer.hold_for {
        Some(_) => wanted,
        None => NextClaim { runs: 1, ..wanted },
    };
    let picked = pick(tx, held, claimer, &wanted)?;
    let mut runs = Vec::with_capacity(picked.len());
    let mut read = tx.prepare_cached(&SQL.read_run)?;
    for Picked {
        run_id,
        script_id,
        concurrency_key,
    } in picked
    {
        if claimer.hold_for.is_none() {
            tx.prepare_cached(&SQL.start_run)?.execute(params![
                claimer.now,
                claimer.worker_id,
                run_id,
                claimer.now
            ])?;
        }
        let mut rows = read.query(params![run_id])?;
        let Some(mut run) = rows.next()?.map(run_from_row).transpose()? else {
            continue;
        };
        if let Some(window) = claimer.hold_for {
            // The worker gets the run as it will be written: started by it
            // (at the claim, unless its report says when it began).
            run.status = crate::store::RunStatus::Running;
            run.worker_id = Some(claimer.worker_id.to_string());
            run.started_at = Some(claimer.now);
            run.heartbeat_at = Some(claimer.now);
            held.hold(Held {
                run_id,
                script_id,
                concurrency_key,
                worker_id: claimer.worker_id.to_string(),
                started_at: claimer.now,
                window,
                due: Instant::now() + window,
            });
        }
        runs.push(run);
    }
    Ok(runs)
}

/// A run `pick` chose.
struct Picked {
    run_id: String,
    script_id: String,
    concurrency_key: Option<String>,
}

/// The oldest queued runs past their backoff that are not held, of scripts
/// below their concurrency cap, of keys below their concurrency limit and
/// of users not skipped, for the claimer to run one after another.
///
/// A script's cap counts its running runs and the other workers holding
/// runs of it (a worker runs its held runs one at a time); a key's limit
/// the same, plus each run of the key picked here. A run of a key at its
/// limit is passed over, and so are the key's later runs: they start in
/// the order they were queued. The queue is read in claim order until
/// `runs` claimable runs per worker are seen, and the claimer takes its
/// share of those, rounded up.
fn pick(
    tx: &Connection,
    held: &HeldStarts,
    claimer: &Claimer<'_>,
    wanted: &NextClaim,
) -> StoreResult<Vec<Picked>> {
    if !wanted.skip_users.is_empty() {
        let skipped = serde_json::to_string(&wanted.skip_users).expect("ids serialise");
        let others: bool = tx
            .prepare_cached(&SQL.others_queued)?
            .query_row(params![skipped], |row| row.get(0))?;
        if !others {
            return Ok(Vec::new());
        }
    }
    let mut queued = tx.prepare_cached(&SQL.claim_queued)?;
    let mut running = tx.prepare_cached(&SQL.script_running)?;
    let mut key_running = tx.prepare_cached(&SQL.key_running)?;
    let mut rows = queued.query(params![claimer.now])?;
    let look_for = wanted.runs.max(1) * wanted.workers.max(1);
    // Each script met, and whether it is below its cap.
    let mut scripts: Vec<(String, bool)> = Vec::new();
    // Each concurrency key met, and how many of its runs run or are taken.
    let mut keys: Vec<(String, i64)> = Vec::new();
    let mut claimable = Vec::new();
    while let Some(row) = rows.next()? {
        let run_id: String = row.get(0)?;
        if held.holds(&run_id) {
            continue;
        }
        let user_id: String = row.get(2)?;
        if wanted.skip_users.contains(&user_id) {
            continue;
        }
        let script_id: String = row.get(1)?;
        let below_cap = match scripts.iter().find(|(id, _)| *id == script_id) {
            Some((_, below_cap)) => *below_cap,
            None => {
                let running: i64 = running.query_row(params![script_id], |row| row.get(0))?;
                let holders = held.workers_of_script(&script_id, claimer.worker_id);
                let below_cap = running + holders < wanted.per_script_limit;
                scripts.push((script_id.clone(), below_cap));
                below_cap
            }
        };
        if !below_cap {
            continue;
        }
        let concurrency_key: Option<String> = row.get(3)?;
        if let Some(key) = &concurrency_key {
            let limit: i64 = row.get::<_, Option<i64>>(4)?.unwrap_or(1);
            let at = match keys.iter().position(|(k, _)| k == key) {
                Some(at) => at,
                None => {
                    let running: i64 = key_running.query_row(params![key], |row| row.get(0))?;
                    let holders = held.workers_of_key(key, claimer.worker_id);
                    keys.push((key.clone(), running + holders));
                    keys.len() - 1
                }
            };
            if keys[at].1 >= limit {
                continue;
            }
            keys[at].1 += 1;
        }
        claimable.push(Picked {
            run_id,
            script_id,
            concurrency_key,
        });
        if claimable.len() >= look_for {
            break;
        }
    }
    let share = claimable.len().div_ceil(wanted.workers.max(1));
    claimable.truncate(share.min(wanted.runs));
    Ok(claimable)
}
