//! Where the CPU went during a phase of a bench: roost's own threads, the
//! bench's load generator, and the machine as a whole, including the time
//! the hypervisor gave the vCPUs to somebody else (steal).
//!
//! Why: on a shared virtual machine the same code can run at half speed
//! when the host is busy, so a rate alone says little. The CPU roost spent
//! per run does not depend on how much the host took away, and the steal
//! share says how much it did. Linux only (`/proc`); elsewhere every
//! figure is `None`.

use std::collections::{HashMap, HashSet};

/// The whole machine's CPU time by kind, from `/proc/stat`, in clock ticks.
#[derive(Clone, Copy)]
pub struct MachineTimes {
    busy: u64,
    idle: u64,
    steal: u64,
}

/// Shares of the machine's time between two samples (0–1 each).
#[derive(Clone, Copy, Debug)]
pub struct MachineShare {
    pub busy: f64,
    pub idle: f64,
    pub steal: f64,
}

impl MachineTimes {
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|line| line.starts_with("cpu "))?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|field| field.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is
        // already counted in user).
        let field = |n: usize| ticks.get(n).copied().unwrap_or(0);
        Some(Self {
            busy: field(0) + field(1) + field(2) + field(5) + field(6),
            idle: field(3) + field(4),
            steal: field(7),
        })
    }

    pub fn since(&self, earlier: &Self) -> Option<MachineShare> {
        let busy = self.busy.checked_sub(earlier.busy)? as f64;
        let idle = self.idle.checked_sub(earlier.idle)? as f64;
        let steal = self.steal.checked_sub(earlier.steal)? as f64;
        let all = busy + idle + steal;
        (all > 0.0).then(|| MachineShare {
            busy: busy / all,
            idle: idle / all,
            steal: steal / all,
        })
    }
}

/// This process's threads: id → their name and times so far, from
/// `/proc/self/task/*/schedstat` (exact, unlike the 10 ms ticks of `stat`).
#[derive(Default)]
pub struct ThreadTimes(HashMap<u32, ThreadSample>);

/// One thread's name and nanoseconds so far: on a CPU, and runnable but
/// waiting for one (the other threads, and the host, had them all).
struct ThreadSample {
    name: String,
    on_cpu: u64,
    waiting: u64,
}

/// Which of a thread's times to add up.
#[derive(Clone, Copy)]
pub enum ThreadTime {
    OnCpu,
    Waiting,
}

impl ThreadTimes {
    pub fn now() -> Self {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return Self::default();
        };
        let mut threads = HashMap::new();
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            // "<ns on a CPU> <ns waiting on a run queue> <time slices>"
            let schedstat =
                std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            let mut times = schedstat.split_whitespace().map(str::parse::<u64>);
            if let (Some(Ok(on_cpu)), Some(Ok(waiting))) = (times.next(), times.next()) {
                let name = name.trim().to_string();
                threads.insert(
                    tid,
                    ThreadSample {
                        name,
                        on_cpu,
                        waiting,
                    },
                );
            }
        }
        Self(threads)
    }

    /// Seconds of `time` since `earlier` of the threads `counted` picks,
    /// summed by thread name (with any trailing number dropped, so a
    /// pool's threads add up), largest first. A thread that ended in
    /// between is not counted.
    pub fn by_name_since(
        &self,
        earlier: &Self,
        time: ThreadTime,
        counted: impl Fn(u32, &str) -> bool,
    ) -> Vec<(String, f64)> {
        let mut by_name: HashMap<String, f64> = HashMap::new();
        for (tid, sample) in &self.0 {
            let name = sample.name.as_str();
            if counted(*tid, name) {
                let spent = sample
                    .get(time)
                    .saturating_sub(earlier.time(*tid, name, time));
                let pool = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
                *by_name.entry(pool.to_string()).or_default() += spent as f64 / 1e9;
            }
        }
        let mut by_name: Vec<_> = by_name.into_iter().collect();
        by_name.sort_by(|a, b| b.1.total_cmp(&a.1));
        by_name
    }

    pub fn ids(&self) -> HashSet<u32> {
        self.0.keys().copied().collect()
    }

    /// Thread `tid`'s nanoseconds of `time` in this sample, if it is the
    /// same thread (a new thread can take an ended one's id); else 0.
    fn time(&self, tid: u32, name: &str, time: ThreadTime) -> u64 {
        self.0
            .get(&tid)
            .filter(|then| then.name == name)
            .map_or(0, |then| then.get(time))
    }
}

impl ThreadSample {
    fn get(&self, time: ThreadTime) -> u64 {
        match time {
            ThreadTime::OnCpu => self.on_cpu,
            ThreadTime::Waiting => self.waiting,
        }
    }
}

/// A phase's CPU account: roost's threads, the load generator's, and the
/// machine's shares.
pub struct PhaseCpu {
    /// CPU seconds on the bench's client threads.
    pub client_secs: f64,
    /// roost's CPU seconds by thread name, largest first.
    pub server_threads: Vec<(String, f64)>,
    /// Seconds roost's threads were ready to run but waited for a CPU, by
    /// thread name, largest first. A thread others wait for (the SQLite
    /// writer) holds them all up while it waits.
    pub server_waiting: Vec<(String, f64)>,
    /// CPU seconds of the database's processes, where counted.
    pub database_secs: Option<f64>,
    pub machine: Option<MachineShare>,
}

/// Tells roost's threads from the bench's: every thread started after
/// `before_server` (taken just before the server was built) that is not
/// one of the client runtime's (`client_thread_name`) is roost's.
pub struct CpuAccount {
    before_server: HashSet<u32>,
    client_thread_name: &'static str,
    /// The name of the database's processes, when it runs on this machine.
    database: Option<&'static str>,
}

/// A point to measure a phase from.
pub struct Mark {
    threads: ThreadTimes,
    machine: Option<MachineTimes>,
    database: Option<ProcessesCpu>,
}

impl CpuAccount {
    pub fn new(before_server: &ThreadTimes, client_thread_name: &'static str) -> Self {
        Self {
            before_server: before_server.ids(),
            client_thread_name,
            database: None,
        }
    }

    /// Also counts the CPU of the processes named `comm` (the database's,
    /// on this machine) in each phase.
    pub fn with_database(self, comm: &'static str) -> Self {
        Self {
            database: Some(comm),
            ..self
        }
    }

    pub fn mark(&self) -> Mark {
        Mark {
            threads: ThreadTimes::now(),
            machine: MachineTimes::now(),
            database: self.database.map(ProcessesCpu::now),
        }
    }

    pub fn since(&self, start: &Mark) -> PhaseCpu {
        let end = self.mark();
        let is_client = |name: &str| name.starts_with(self.client_thread_name);
        let is_server =
            |tid: u32, name: &str| !self.before_server.contains(&tid) && !is_client(name);
        let server_threads =
            end.threads
                .by_name_since(&start.threads, ThreadTime::OnCpu, is_server);
        let server_waiting =
            end.threads
                .by_name_since(&start.threads, ThreadTime::Waiting, is_server);
        let clients = end
            .threads
            .by_name_since(&start.threads, ThreadTime::OnCpu, |_, name| is_client(name));
        PhaseCpu {
            server_waiting,
            server_threads,
            client_secs: clients.iter().map(|(_, secs)| secs).sum(),
            database_secs: end
                .database
                .zip(start.database.as_ref())
                .and_then(|(end, start)| end.secs_since(start)),
            machine: end
                .machine
                .zip(start.machine)
                .and_then(|(end, start)| end.since(&start)),
        }
    }
}

impl PhaseCpu {
    /// CPU seconds on roost's threads.
    pub fn server_secs(&self) -> f64 {
        self.server_threads.iter().map(|(_, secs)| secs).sum()
    }

    /// One line for the bench's table: CPU per item (µs) and the machine.
    pub fn describe(&self, items: usize, item: &str) -> String {
        let per = |secs: f64| secs * 1e6 / items as f64;
        let machine = match self.machine {
            Some(m) => format!(
                "; machine {:.0}% busy, {:.0}% idle, {:.0}% stolen by the hypervisor",
                m.busy * 100.0,
                m.idle * 100.0,
                m.steal * 100.0
            ),
            None => String::new(),
        };
        let threads = |times: &[(String, f64)]| {
            let named: Vec<String> = times
                .iter()
                .take(4)
                .map(|(name, secs)| format!("{name} {:.0}", per(*secs)))
                .collect();
            named.join(", ")
        };
        let database = self.database_secs.map_or(String::new(), |secs| {
            format!(", database {:.0} µs", per(secs))
        });
        format!(
            "CPU per {item}: roost {:.0} µs ({}), bench clients {:.0} µs{database}{machine}\n  \
             waiting for a CPU per {item}: {}",
            per(self.server_secs()),
            threads(&self.server_threads),
            per(self.client_secs),
            threads(&self.server_waiting)
        )
    }

    pub fn json(&self, items: usize) -> serde_json::Value {
        let per_item = |times: &[(String, f64)]| {
            times
                .iter()
                .map(|(name, secs)| (name.clone(), serde_json::json!(secs * 1e6 / items as f64)))
                .collect::<serde_json::Map<_, _>>()
        };
        serde_json::json!({
            "roost_cpu_us_per_item": self.server_secs() * 1e6 / items as f64,
            "client_cpu_us_per_item": self.client_secs * 1e6 / items as f64,
            "database_cpu_us_per_item": self.database_secs.map(|secs| secs * 1e6 / items as f64),
            "roost_cpu_us_per_item_by_thread": per_item(&self.server_threads),
            "roost_waiting_for_cpu_us_per_item_by_thread": per_item(&self.server_waiting),
            "machine_busy_share": self.machine.map(|m| m.busy),
            "machine_idle_share": self.machine.map(|m| m.idle),
            "machine_steal_share": self.machine.map(|m| m.steal),
        })
    }
}

/// CPU seconds (user and system) process `pid` has spent so far, from
/// `/proc/<pid>/stat` (in clock ticks, 10 ms each on Linux).
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so
    // the fields are counted from the last ')'. utime and stime are the
    // 14th and 15th fields, the 12th and 13th after the state.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks_per_sec())
}

/// `getconf CLK_TCK`, or 100 (Linux's) if it cannot say.
fn clock_ticks_per_sec() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|ticks| ticks.trim().parse().ok())
            .filter(|ticks: &f64| *ticks > 0.0)
            .unwrap_or(100.0)
    })
}

/// The CPU time of every process named `comm` (PostgreSQL's server
/// processes are all `postgres`): pid → nanoseconds on a CPU so far, from
/// `/proc/<pid>/schedstat`. Needs the right to read other users' `/proc`
/// entries (root, on these machines); empty where it has none.
pub struct ProcessesCpu(HashMap<u32, u64>);

impl ProcessesCpu {
    pub fn now(comm: &str) -> Self {
        let mut times = HashMap::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Self(times);
        };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
                continue;
            };
            let named = std::fs::read_to_string(entry.path().join("comm"))
                .is_ok_and(|name| name.trim() == comm);
            let on_cpu = std::fs::read_to_string(entry.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok());
            if let (true, Some(on_cpu)) = (named, on_cpu) {
                times.insert(pid, on_cpu);
            }
        }
        Self(times)
    }

    /// CPU seconds since `earlier` of the processes alive now (one started
    /// in between counts whole; one that ended is lost), or None if none
    /// could be read.
    pub fn secs_since(&self, earlier: &Self) -> Option<f64> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(pid, now)| now.saturating_sub(earlier.0.get(pid).copied().unwrap_or(0)))
                .sum::<u64>() as f64
                / 1e9
        })
    }
}
