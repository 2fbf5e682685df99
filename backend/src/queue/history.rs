//! Runs as their user reads and stops them: listed, one with its calls,
//! its output, followed as it goes, cancelled.

use std::sync::Arc;

use futures_util::stream::BoxStream;
use tokio::sync::watch;

use super::follow::RunEvent;
use crate::store::{MethodCallRow, RunFilter, RunLogs, RunRow, RunStatus, Store, StoreResult};

/// Reads and cancels a user's runs.
#[derive(Clone)]
pub struct RunHistory {
    store: Arc<dyn Store>,
    /// Turns true when the server stops: followers let go of their runs,
    /// or their open responses would hold up its graceful stop.
    closing: Arc<watch::Sender<bool>>,
}

/// What cancelling a run did.
#[derive(Debug)]
pub enum Cancelled {
    /// The run was queued or running, and is cancelled.
    Now,
    /// The run had already ended, in this status: nothing changed.
    AlreadyEnded(RunStatus),
}

impl RunHistory {
    /// The runs in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            closing: Arc::new(watch::channel(false).0),
        }
    }

    /// Ends every follower's stream, now and from now on (the server stops).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Turns true when the server stops: other long answers (the
    /// dashboard's live lists) end then too.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// The user's runs, newest first.
    pub async fn list(&self, user_id: &str, filter: &RunFilter) -> StoreResult<Vec<RunRow>> {
        self.store.list_runs(user_id, filter).await
    }

    /// One of the user's runs, with its host-mediated calls.
    pub async fn get(
        &self,
        user_id: &str,
        run_id: &str,
    ) -> StoreResult<Option<(RunRow, Vec<MethodCallRow>)>> {
        let Some(run) = self.store.get_run(user_id, run_id).await? else {
            return Ok(None);
        };
        // The run is the user's (read above), so its calls are too.
        let calls = self.store.method_calls(&run.id).await?;
        Ok(Some((run, calls)))
    }

    /// One of the user's runs, with its output.
    pub async fn logs(
        &self,
        user_id: &str,
        run_id: &str,
    ) -> StoreResult<Option<(RunRow, RunLogs)>> {
        let Some(run) = self.store.get_run(user_id, run_id).await? else {
            return Ok(None);
        };
        let logs = self
            .store
            .run_logs(user_id, run_id)
            .await?
            .unwrap_or_default();
        Ok(Some((run, logs)))
    }

    /// One of the user's runs as it goes: its status whenever it changes,
    /// its output as it arrives, and `End` once it has ended (see
    /// follow.rs); `None` if the user has no such run.
    pub async fn follow(
        &self,
        user_id: &str,
        run_id: &str,
    ) -> StoreResult<Option<BoxStream<'static, RunEvent>>> {
        let Some(run) = self.store.get_run(user_id, run_id).await? else {
            return Ok(None);
        };
        Ok(Some(super::follow::follow(
            self.store.clone(),
            user_id.to_string(),
            run,
            self.closing.subscribe(),
        )))
    }

    /// Cancels one of the user's runs; `None` if the user has no such run.
    pub async fn cancel(&self, user_id: &str, run_id: &str) -> StoreResult<Option<Cancelled>> {
        let Some(run) = self.store.get_run(user_id, run_id).await? else {
            return Ok(None);
        };
        Ok(Some(match self.store.cancel_run(user_id, run_id).await? {
            true => Cancelled::Now,
            false => Cancelled::AlreadyEnded(run.status),
        }))
    }
}
