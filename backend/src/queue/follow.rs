//! Following one run as it goes: its status changes and its output as it
//! arrives, as a stream of typed events that ends once the run has. The
//! run may be running on any node, so this reads the store (the output a
//! worker writes as it grows, see live_output.rs) every `FOLLOW_POLL`.
//! GET /v1/runs/{id}/stream sends these as server-sent events; any page
//! that shows a run live can use them too.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt as _};
use serde::Serialize;
use tokio::sync::watch;

use crate::store::{RunRow, RunStatus, Store, StoreResult};

/// How often a followed run is read again.
pub const FOLLOW_POLL: Duration = Duration::from_millis(300);

/// Reads failing this many times in a row end the stream.
const MAX_FAILED_READS: u32 = 20;

/// What happens to a followed run, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEvent {
    /// The run's status (or its error, exit code, timings) changed; the
    /// first event is always one.
    Status(RunState),
    /// New output.
    Output(OutputChunk),
    /// The run has ended (as its last status said); nothing follows.
    End(RunState),
}

/// A run's status and timings, as a status event shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunState {
    /// The run.
    pub run_id: String,
    /// Where it is in its life.
    pub status: RunStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// The guest's exit status.
    pub exit_code: Option<i64>,
    /// Attempt number, from 1.
    pub attempt: i64,
    /// Queued (Unix ms).
    pub queued_at: i64,
    /// Started (Unix ms).
    pub started_at: Option<i64>,
    /// Finished (Unix ms).
    pub finished_at: Option<i64>,
    /// Run time in ms.
    pub duration_ms: Option<i64>,
    /// Whether stdout was cut at the cap.
    pub stdout_truncated: bool,
    /// Whether stderr was cut at the cap.
    pub stderr_truncated: bool,
}

impl RunState {
    fn of(run: &RunRow) -> Self {
        Self {
            run_id: run.id.clone(),
            status: run.status,
            error: run.error.clone(),
            exit_code: run.exit_code,
            attempt: run.attempt,
            queued_at: run.queued_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
            duration_ms: run.duration_ms,
            stdout_truncated: run.stdout_truncated,
            stderr_truncated: run.stderr_truncated,
        }
    }
}

/// Which of a run's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Output of one stream: `text` goes at byte `offset` of what was sent
/// before, or, with `reset`, replaces all of it (masking a secret can
/// rewrite the end of what was shown, once more of it arrives).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputChunk {
    /// Which stream.
    pub stream: OutputStream,
    /// Where `text` starts in the stream's output, in bytes.
    pub offset: usize,
    /// The stream's output so far replaces what was sent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
    /// The new output (lossy UTF-8).
    pub text: String,
}

/// The events of one run of `user_id`, starting from `run` as read (so the
/// caller knows it exists); the stream ends after `End`, or when `closing`
/// turns true (the server stops).
pub(super) fn follow(
    store: Arc<dyn Store>,
    user_id: String,
    run: RunRow,
    closing: watch::Receiver<bool>,
) -> BoxStream<'static, RunEvent> {
    let follower = Follower {
        store,
        user_id,
        run_id: run.id.clone(),
        seed: Some(run),
        shown: None,
        sent: Sent::default(),
        pending: VecDeque::new(),
        ended: false,
        closing,
    };
    stream::unfold(follower, |mut follower| async move {
        let event = follower.next().await?;
        Some((event, follower))
    })
    .boxed()
}

struct Follower {
    store: Arc<dyn Store>,
    user_id: String,
    run_id: String,
    /// The run as first read, used for the first look.
    seed: Option<RunRow>,
    /// The state last sent.
    shown: Option<RunState>,
    sent: Sent,
    pending: VecDeque<RunEvent>,
    ended: bool,
    closing: watch::Receiver<bool>,
}

impl Follower {
    async fn next(&mut self) -> Option<RunEvent> {
        let mut failures = 0;
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.ended || *self.closing.borrow() {
                return None;
            }
            let looked = match self.seed.take() {
                Some(run) => self.look(Some(run)).await,
                None => {
                    tokio::select! {
                        _ = tokio::time::sleep(FOLLOW_POLL) => {}
                        _ = self.closing.changed() => return None,
                    }
                    self.look(None).await
                }
            };
            match looked {
                Ok(true) => {}
                // The run is gone (its user deleted): nothing more to tell.
                Ok(false) => return None,
                Err(err) => {
                    failures += 1;
                    tracing::warn!(error = %err, "reading a followed run failed");
                    if failures >= MAX_FAILED_READS {
                        return None;
                    }
                }
            }
        }
    }

    /// Reads the run (unless given) and its output, and queues what changed;
    /// false if the run is gone.
    async fn look(&mut self, run: Option<RunRow>) -> StoreResult<bool> {
        let run = match run {
            Some(run) => run,
            None => match self.store.get_run(&self.user_id, &self.run_id).await? {
                Some(run) => run,
                None => return Ok(false),
            },
        };
        let terminal = run.status.is_terminal();
        let state = RunState::of(&run);
        let changed = self.shown.as_ref() != Some(&state);
        // A change of status comes before the output that follows it; the
        // final status after the last output.
        if changed && !terminal {
            self.pending.push_back(RunEvent::Status(state.clone()));
        }
        // A queued run has no output of this attempt yet. The run is read
        // before its output: output read after an end is the final one.
        if run.status != RunStatus::Queued
            && let Some(logs) = self.store.run_logs(&self.user_id, &run.id).await?
        {
            for (stream, stored) in [
                (OutputStream::Stdout, &logs.stdout),
                (OutputStream::Stderr, &logs.stderr),
            ] {
                if let Some(chunk) = self.sent.diff(stream, stored, terminal) {
                    self.pending.push_back(RunEvent::Output(chunk));
                }
            }
        }
        if changed && terminal {
            self.pending.push_back(RunEvent::Status(state.clone()));
        }
        if terminal {
            self.pending.push_back(RunEvent::End(state.clone()));
            self.ended = true;
        }
        self.shown = Some(state);
        Ok(true)
    }
}

/// The output sent so far, stdout and stderr.
#[derive(Default)]
struct Sent([Vec<u8>; 2]);

impl Sent {
    /// What `stored` adds to what was sent of `stream`, if anything. While
    /// the run goes on, a character cut at the end waits for its last bytes.
    fn diff(&mut self, stream: OutputStream, stored: &[u8], terminal: bool) -> Option<OutputChunk> {
        let sent = &mut self.0[stream as usize];
        let upto = if terminal {
            stored.len()
        } else {
            whole_chars(stored)
        };
        let stored = &stored[..upto];
        if stored == sent.as_slice() {
            return None;
        }
        let chunk = if stored.starts_with(sent) {
            OutputChunk {
                stream,
                offset: sent.len(),
                reset: false,
                text: String::from_utf8_lossy(&stored[sent.len()..]).into_owned(),
            }
        } else {
            OutputChunk {
                stream,
                offset: 0,
                reset: true,
                text: String::from_utf8_lossy(stored).into_owned(),
            }
        };
        *sent = stored.to_vec();
        Some(chunk)
    }
}

/// How much of `bytes` ends on a whole UTF-8 character: all of it but a
/// multi-byte character whose last bytes have not been written yet.
fn whole_chars(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(4) {
        let byte = bytes[len - back];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: the character began earlier
        }
        let needs = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if needs > back { len - back } else { len };
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_sent_as_it_grows_and_again_when_rewritten() {
        let mut sent = Sent::default();
        let out = OutputStream::Stdout;
        let chunk = |offset, reset, text: &str| {
            Some(OutputChunk {
                stream: out,
                offset,
                reset,
                text: text.into(),
            })
        };
        assert_eq!(sent.diff(out, b"", false), None);
        assert_eq!(
            sent.diff(out, b"line 1\n", false),
            chunk(0, false, "line 1\n")
        );
        assert_eq!(sent.diff(out, b"line 1\n", false), None);
        assert_eq!(
            sent.diff(out, b"line 1\nline 2\n", false),
            chunk(7, false, "line 2\n")
        );
        // Masking rewrote the end: everything again.
        assert_eq!(
            sent.diff(out, b"line 1\n[x]\n", false),
            chunk(0, true, "line 1\n[x]\n")
        );
        // The other stream is apart.
        assert_eq!(
            sent.diff(OutputStream::Stderr, b"note", false),
            Some(OutputChunk {
                stream: OutputStream::Stderr,
                offset: 0,
                reset: false,
                text: "note".into(),
            })
        );
        // Half a character waits while running, not at the end.
        let euro = "€".as_bytes();
        let mut more = b"line 1\n[x]\n".to_vec();
        more.extend_from_slice(&euro[..2]);
        assert_eq!(sent.diff(out, &more, false), None);
        assert_eq!(sent.diff(out, &more, true), chunk(11, false, "\u{FFFD}"));
    }

    #[test]
    fn a_cut_character_waits_for_its_last_bytes() {
        let text = "a é €";
        let bytes = text.as_bytes();
        assert_eq!(whole_chars(bytes), bytes.len());
        // "€" is three bytes: with one or two of them, it waits.
        assert_eq!(whole_chars(&bytes[..bytes.len() - 1]), bytes.len() - 3);
        assert_eq!(whole_chars(&bytes[..bytes.len() - 2]), bytes.len() - 3);
        assert_eq!(whole_chars(b"plain"), 5);
        assert_eq!(whole_chars(b""), 0);
    }
}
