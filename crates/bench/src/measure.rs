//! What a benchmark phase cost this process: wall time, user+sys CPU (getrusage), CPU split by
//! thread name (so the embedded broker's `rdk:mock` thread can be told apart from the client
//! side), and peak RSS.

use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// librdkafka's name for the mock cluster thread (the embedded broker).
pub const BROKER_THREAD: &str = "rdk:mock";

/// User and system CPU seconds of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuTimes {
    pub user: f64,
    pub sys: f64,
    /// Context switches where a thread gave up the CPU (waiting) ...
    pub voluntary_switches: i64,
    /// ... and where it was preempted: many of these mean other work competed for the cores.
    pub involuntary_switches: i64,
}

impl CpuTimes {
    pub fn total(&self) -> f64 {
        self.user + self.sys
    }
}

fn timeval_secs(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// getrusage(RUSAGE_SELF): every thread of the process, alive or exited.
pub fn process_cpu() -> CpuTimes {
    // SAFETY: getrusage writes into the zeroed struct we pass; RUSAGE_SELF is always valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return CpuTimes::default();
    }
    CpuTimes {
        user: timeval_secs(ru.ru_utime),
        sys: timeval_secs(ru.ru_stime),
        voluntary_switches: ru.ru_nvcsw,
        involuntary_switches: ru.ru_nivcsw,
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds (user+sys) of each live thread, by thread id, with its name.
pub fn thread_cpu() -> HashMap<u32, (String, f64)> {
    let ticks = clock_ticks();
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((name, secs)) = parse_task_stat(&stat, ticks) {
            out.insert(tid, (name, secs));
        }
    }
    out
}

/// Parses `/proc/<pid>/task/<tid>/stat`: the name between the first `(` and the last `)`, then
/// utime and stime (fields 14 and 15, in clock ticks).
pub fn parse_task_stat(stat: &str, ticks_per_sec: f64) -> Option<(String, f64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state), so field 14 is rest[11] and field 15 is rest[12].
    let utime: f64 = rest.get(11)?.parse().ok()?;
    let stime: f64 = rest.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / ticks_per_sec))
}

/// Peak resident set size of the process (VmHWM) in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    status_kib("VmHWM:")
}

/// Current resident set size (VmRSS) in KiB.
pub fn current_rss_kib() -> Option<u64> {
    status_kib("VmRSS:")
}

fn status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Resets the peak RSS to the current RSS (Linux ≥ 4.0); false when not permitted.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Started at the beginning of a phase; [`PhaseMeter::read`] gives what it cost so far.
pub struct PhaseMeter {
    started: Instant,
    cpu: CpuTimes,
    threads: HashMap<u32, (String, f64)>,
    peak_reset: bool,
    rss_at_start_kib: Option<u64>,
}

/// Cost of a phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseCost {
    pub wall_secs: f64,
    /// getrusage delta: all threads of the process, including exited ones.
    pub cpu: CpuTimes,
    /// CPU of the embedded broker's thread (`rdk:mock`) alive at the end of the phase.
    pub broker_thread_cpu_secs: f64,
    /// CPU of the other threads alive at the end of the phase, by thread name.
    pub other_threads: Vec<(String, f64)>,
    /// Peak RSS since the phase started (since process start when the reset was refused).
    pub peak_rss_kib: Option<u64>,
    pub peak_rss_is_phase_only: bool,
    /// RSS when the phase started (what earlier phases and the broker already held).
    pub rss_at_start_kib: Option<u64>,
}

impl PhaseCost {
    /// Process CPU seconds minus the broker thread's: the client side of the phase.
    pub fn cpu_without_broker(&self) -> f64 {
        (self.cpu.total() - self.broker_thread_cpu_secs).max(0.0)
    }

    /// CPU seconds per million records, process-wide.
    pub fn cpu_per_million(&self, records: u64) -> f64 {
        per_million(self.cpu.total(), records)
    }

    /// CPU seconds per million records without the broker thread.
    pub fn cpu_per_million_without_broker(&self, records: u64) -> f64 {
        per_million(self.cpu_without_broker(), records)
    }
}

pub fn per_million(secs: f64, records: u64) -> f64 {
    if records == 0 {
        0.0
    } else {
        secs * 1e6 / records as f64
    }
}

impl PhaseMeter {
    pub fn start() -> Self {
        let peak_reset = reset_peak_rss();
        let rss_at_start_kib = current_rss_kib();
        Self {
            rss_at_start_kib,
            threads: thread_cpu(),
            cpu: process_cpu(),
            started: Instant::now(),
            peak_reset,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn read(&self) -> PhaseCost {
        let wall = self.started.elapsed();
        let cpu = process_cpu();
        let now = thread_cpu();
        let mut by_name: HashMap<String, f64> = HashMap::new();
        let mut broker = 0.0;
        for (tid, (name, secs)) in &now {
            let before = self.threads.get(tid).map_or(0.0, |(_, s)| *s);
            let d = (secs - before).max(0.0);
            if name == BROKER_THREAD {
                broker += d;
            } else {
                *by_name.entry(name.clone()).or_default() += d;
            }
        }
        let mut other_threads: Vec<(String, f64)> =
            by_name.into_iter().filter(|(_, s)| *s > 0.0).collect();
        other_threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        PhaseCost {
            wall_secs: wall.as_secs_f64(),
            cpu: CpuTimes {
                user: (cpu.user - self.cpu.user).max(0.0),
                sys: (cpu.sys - self.cpu.sys).max(0.0),
                voluntary_switches: cpu.voluntary_switches - self.cpu.voluntary_switches,
                involuntary_switches: cpu.involuntary_switches - self.cpu.involuntary_switches,
            },
            broker_thread_cpu_secs: broker,
            other_threads,
            peak_rss_kib: peak_rss_kib(),
            peak_rss_is_phase_only: self.peak_reset,
            rss_at_start_kib: self.rss_at_start_kib,
        }
    }
}

/// `uptime`-style load averages, for the machine notes of a report.
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_stat_with_odd_name() {
        // Field 14/15 = 250/50 ticks; the name contains a space and a parenthesis.
        let stat = "1234 (rdk:broker (1)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        let (name, secs) = parse_task_stat(stat, 100.0).unwrap();
        assert_eq!(name, "rdk:broker (1)");
        assert!((secs - 3.0).abs() < 1e-9, "{secs}");
        assert!(parse_task_stat("garbage", 100.0).is_none());
    }

    #[test]
    fn cpu_and_rss_are_read_from_this_process() {
        let m = PhaseMeter::start();
        // Burn a little CPU so the delta is visibly positive.
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let c = m.read();
        assert!(c.cpu.total() > 0.02, "{:?}", c.cpu);
        assert!(c.cpu.total() < c.wall_secs * 4.0 + 0.05);
        assert!(c.peak_rss_kib.unwrap_or(0) > 0);
        assert!(!thread_cpu().is_empty());
    }

    #[test]
    fn per_million_scales() {
        assert_eq!(per_million(2.0, 1_000_000), 2.0);
        assert_eq!(per_million(1.0, 500_000), 2.0);
        assert_eq!(per_million(1.0, 0), 0.0);
    }
}

/// The machine a report was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct MachineInfo {
    pub date_utc: String,
    pub cpus: usize,
    pub cpu_model: Option<String>,
    pub memory_mib: Option<u64>,
    /// 1, 5 and 15 minute load averages when the run started: above 0.5 per CPU means other
    /// work was competing for the cores.
    pub load_average: Option<String>,
}

impl MachineInfo {
    pub fn now() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string());
        let memory_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .map(|kib| kib / 1024);
        Self {
            date_utc: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_mib,
            load_average: load_average(),
        }
    }
}

impl std::fmt::Display for MachineInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; {} CPUs ({}); {} MiB RAM; load average at start {}",
            self.date_utc,
            self.cpus,
            self.cpu_model.as_deref().unwrap_or("unknown model"),
            self.memory_mib.map_or("?".to_string(), |m| m.to_string()),
            self.load_average.as_deref().unwrap_or("?")
        )
    }
}

/// `12.3 MiB` from KiB.
pub fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}
