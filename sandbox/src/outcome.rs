use std::time::Duration;

use serde::Serialize;

/// The limits a run can exceed, each reported on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// The wall-clock budget ran out (busy guest or guest blocked on I/O).
    WallTime,
    /// The guest tried to grow linear memory past its cap.
    Memory,
    /// The guest wrote more stdout or stderr than the cap.
    Output,
    /// The fuel budget ran out.
    Fuel,
    /// The WebAssembly call stack overflowed (runaway recursion).
    Stack,
}

impl Limit {
    /// Stable lower-case name, used in logs and run records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WallTime => "wall_time",
            Self::Memory => "memory",
            Self::Output => "output",
            Self::Fuel => "fuel",
            Self::Stack => "stack",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Termination {
    /// The guest returned from `main` or called `exit`; `code` 0 is success.
    Exited {
        /// Process-style exit status.
        code: i32,
    },
    /// The run was stopped because it exceeded a limit.
    LimitExceeded {
        /// Which limit.
        limit: Limit,
        /// Human-readable detail (the configured value).
        detail: String,
    },
    /// The guest trapped for a reason of its own (panic, `unreachable`,
    /// out-of-bounds access, …).
    Trapped {
        /// The trap description.
        message: String,
    },
}

/// Captured bytes of one output stream, cut at the run's cap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CapturedOutput {
    /// The bytes the guest wrote, up to the cap.
    pub bytes: Vec<u8>,
    /// Whether the guest wrote more than `bytes` holds.
    pub truncated: bool,
    /// The cap in force for this stream.
    pub cap: usize,
}

impl CapturedOutput {
    /// The output as text (lossy UTF-8) with a visible marker when it was cut,
    /// so nobody mistakes a truncated log for a complete one.
    pub fn to_text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.bytes).into_owned();
        if self.truncated {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!(
                "[roost: output truncated at {} bytes]\n",
                self.cap
            ));
        }
        text
    }
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    /// How it ended.
    pub termination: Termination,
    /// Captured standard output.
    pub stdout: CapturedOutput,
    /// Captured standard error.
    pub stderr: CapturedOutput,
    /// Wall time from the start of instantiation to the end of the run.
    pub duration: Duration,
    /// Fuel burnt, when the run had a fuel budget.
    pub fuel_consumed: Option<u64>,
    /// Outbound requests the egress policy refused, in order.
    pub denied_requests: Vec<crate::egress::DeniedRequest>,
}

impl RunOutcome {
    /// True when the guest exited with status 0.
    pub fn succeeded(&self) -> bool {
        self.termination == Termination::Exited { code: 0 }
    }

    /// The limit that stopped the run, if any.
    pub fn limit(&self) -> Option<Limit> {
        match &self.termination {
            Termination::LimitExceeded { limit, .. } => Some(*limit),
            _ => None,
        }
    }

    /// One line for humans: `exited 0 in 3.1ms`, `limit exceeded: memory …`.
    pub fn summary(&self) -> String {
        let what = match &self.termination {
            Termination::Exited { code } => format!("exited with status {code}"),
            Termination::LimitExceeded { limit, detail } => {
                format!("stopped: {} limit exceeded ({detail})", limit.as_str())
            }
            Termination::Trapped { message } => format!("trapped: {message}"),
        };
        format!("{what} after {:.1?}", self.duration)
    }
}
