//! `bench memory`: the worker's resident memory over a long run (default 10M turnstile
//! records).
//!
//! One worker runs the whole time while the records arrive in rounds: each round produces a
//! chunk, waits until the table has counted it, and samples the process's resident set
//! (`VmRSS`) and its peak since the previous sample (`VmHWM`, reset each round). Producing in
//! rounds keeps every chunk within what the broker retains (the embedded broker keeps about
//! 5 MiB per partition, far less than 10M records) and is how a long-running worker sees its
//! input anyway. The final counts must equal the produced counts, else the run fails.

use crate::env::{with_env, BenchEnv, BrokerChoice, ScratchDir};
use crate::measure::{current_rss_kib, mib, peak_rss_kib, reset_peak_rss, MachineInfo, PhaseMeter};
use crate::worker::{wait_for, RunningWorker};
use crate::workload::{as_map, compare_counts, produce_turnstile, Draw};
use crate::{thousands, BenchError, Result};
use cta_stream::stream::AppConfig;
use cta_stream::transit::stations::Dataset;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct MemoryOptions {
    pub records: u64,
    /// Records per round.
    pub chunk: u64,
    pub seed: u64,
    pub partitions: i32,
    pub work_dir: PathBuf,
    /// Upper bound for each round.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Records counted by the worker when sampled.
    pub records: u64,
    pub rss_kib: Option<u64>,
    /// Peak resident set during the round.
    pub peak_kib: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    pub machine: MachineInfo,
    pub broker: String,
    pub embedded: bool,
    pub records: u64,
    pub chunk: u64,
    pub samples: Vec<Sample>,
    pub secs: f64,
    pub cpu_secs: f64,
}

impl MemoryReport {
    /// The highest peak over the run after the first round (the start-up round is reported
    /// on its own: it includes opening the stores and the first fetches).
    pub fn steady_peak_kib(&self) -> Option<u64> {
        self.samples.iter().skip(1).filter_map(|s| s.peak_kib).max()
    }
}

pub async fn run(choice: &BrokerChoice, opts: &MemoryOptions) -> Result<MemoryReport> {
    if opts.records == 0 || opts.chunk == 0 {
        return Err(BenchError::Invalid(
            "--records and --chunk must be at least 1".into(),
        ));
    }
    let machine = MachineInfo::now();
    with_env(choice, async |env| run_on(env, opts, machine).await).await
}

async fn run_on(
    env: &BenchEnv,
    opts: &MemoryOptions,
    machine: MachineInfo,
) -> Result<MemoryReport> {
    let app_id = env
        .fresh_worker_app("cta-bench-memory", opts.partitions)
        .await?;
    let data = ScratchDir::new(&opts.work_dir, &app_id, false)?;
    let dataset = Dataset::builtin();
    let meter = PhaseMeter::start();
    let config = AppConfig::new(&app_id, env.kafka.clone(), &data.path);
    let mut worker = RunningWorker::start(config, &env.registry)?;
    let mut expected: BTreeMap<i32, i64> = BTreeMap::new();
    let mut samples = Vec::new();
    let mut done = 0u64;
    let mut round = 0u64;
    while done < opts.records {
        let n = opts.chunk.min(opts.records - done);
        reset_peak_rss();
        let produced = produce_turnstile(
            &env.kafka,
            &env.registry,
            &dataset,
            n,
            opts.seed.wrapping_add(round),
            Draw::Ridership,
            None,
        )
        .await?;
        for (station, count) in &produced.per_station {
            *expected.entry(*station).or_default() += count;
        }
        done += n;
        round += 1;
        let target = done as i64;
        wait_for(
            "worker",
            opts.timeout,
            Duration::from_millis(20),
            &mut worker,
            |w| {
                let total = w.turnstile_total()?;
                if total > target {
                    return Err(BenchError::Mismatch {
                        phase: "worker",
                        detail: format!("counted {total}, more than the {target} produced"),
                    });
                }
                Ok(total == target)
            },
            |w| {
                format!(
                    "counted {:?} of {target}",
                    w.turnstile_total().unwrap_or(-1)
                )
            },
        )
        .await?;
        let sample = Sample {
            records: done,
            rss_kib: current_rss_kib(),
            peak_kib: peak_rss_kib(),
        };
        tracing::info!(
            records = done,
            rss = %mib(sample.rss_kib),
            peak = %mib(sample.peak_kib),
            "memory"
        );
        samples.push(sample);
    }
    let got = as_map(&worker.tables.turnstile_all()?);
    worker.stop().await?;
    compare_counts(&expected, &got).map_err(|detail| BenchError::Mismatch {
        phase: "worker",
        detail,
    })?;
    let cost = meter.read();
    Ok(MemoryReport {
        machine,
        broker: env.describe(),
        embedded: env.is_embedded(),
        records: done,
        chunk: opts.chunk,
        samples,
        secs: cost.wall_secs,
        cpu_secs: cost.cpu.total(),
    })
}

impl fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== memory: {} turnstile records in rounds of {}, one worker",
            thousands(self.records as f64),
            thousands(self.chunk as f64)
        )?;
        writeln!(f, "machine: {}", self.machine)?;
        writeln!(f, "broker:  {}", self.broker)?;
        // About ten lines whatever the number of rounds.
        let every = self.samples.len().div_ceil(10).max(1);
        for (i, s) in self.samples.iter().enumerate() {
            if i % every == 0 || i + 1 == self.samples.len() {
                writeln!(
                    f,
                    "  after {:>12} records: RSS {:>10}  round peak {:>10}",
                    thousands(s.records as f64),
                    mib(s.rss_kib),
                    mib(s.peak_kib)
                )?;
            }
        }
        writeln!(
            f,
            "peak after the first round: {}; {:.1} s, CPU {:.1} s (producing included)",
            mib(self.steady_peak_kib()),
            self.secs,
            self.cpu_secs
        )?;
        if self.embedded {
            writeln!(f, "note: the broker runs in this process; RSS includes it (the embedded broker keeps ≈ 5 MiB per partition).")?;
        }
        write!(
            f,
            "counts: exact ({} entries)",
            thousands(self.records as f64)
        )
    }
}
