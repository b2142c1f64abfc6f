//! `bench simulation`: records per second the simulation produces with no sleep between steps
//! (`transit::simulation::run`, the same code path as the `simulation` binary), including topic
//! set-up, the station rows and the final flush.

use crate::env::{BenchEnv, BrokerChoice};
use crate::measure::{MachineInfo, PhaseCost, PhaseMeter};
use crate::{thousands, BenchError, Result};
use cta_stream::stream::Shutdown;
use cta_stream::transit::models::topics;
use cta_stream::transit::simulation::{self, SimConfig, Simulation};
use cta_stream::transit::stations::Dataset;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// 2026-11-24 00:00 in Chicago (UTC−6), a Tuesday: a full weekday of ridership.
pub const WEEKDAY_MIDNIGHT_MS: i64 = 1_795_500_000_000;

#[derive(Debug, Clone)]
pub struct SimSpeedOptions {
    /// Run enough steps to produce at least this many records.
    pub min_records: u64,
    pub time_step: Duration,
    pub seed: u64,
    pub start_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SimSpeedReport {
    pub machine: MachineInfo,
    pub broker: String,
    pub embedded: bool,
    pub steps: u64,
    pub time_step_secs: u64,
    pub produced: BTreeMap<String, u64>,
    pub records: u64,
    pub records_per_sec: f64,
    pub cost: PhaseCost,
}

fn config(opts: &SimSpeedOptions, steps: Option<u64>) -> SimConfig {
    SimConfig {
        time_step: opts.time_step,
        sleep: Duration::ZERO,
        steps,
        seed: opts.seed,
        trains_per_line: 10,
        partitions: 4,
        start_ms: opts.start_ms,
        publish_stations: true,
    }
}

/// Steps needed to produce `min_records`, found by running the (deterministic) simulation
/// without Kafka.
pub fn steps_for(dataset: &Dataset, opts: &SimSpeedOptions) -> Result<u64> {
    let mut sim = Simulation::new(dataset.clone(), &config(opts, None));
    let mut records = dataset.connect_rows().len() as u64;
    for step in 1..=1_000_000u64 {
        let out = sim.step();
        records +=
            (out.arrivals.len() + out.turnstile.len()) as u64 + u64::from(out.weather.is_some());
        if records >= opts.min_records {
            return Ok(step);
        }
    }
    Err(BenchError::Invalid(format!(
        "{} records need more than a million steps; raise --time-step",
        opts.min_records
    )))
}

pub async fn run(choice: &BrokerChoice, opts: &SimSpeedOptions) -> Result<SimSpeedReport> {
    let machine = MachineInfo::now();
    let dataset = Dataset::builtin();
    let steps = steps_for(&dataset, opts)?;
    let env = BenchEnv::start(choice).await?;
    let result = async {
        env.create_topics(&simulation::topic_specs(4)).await?;
        let before = tokio::task::block_in_place(|| env.topic_records(topics::TURNSTILE))?;
        let meter = PhaseMeter::start();
        let report = simulation::run(
            dataset,
            config(opts, Some(steps)),
            &env.kafka,
            &env.registry,
            Shutdown::new(),
        )
        .await?;
        let cost = meter.read();
        let after = tokio::task::block_in_place(|| env.topic_records(topics::TURNSTILE))?;
        let turnstile = report.produced.get(topics::TURNSTILE).copied().unwrap_or(0);
        if (after - before) as u64 != turnstile {
            return Err(BenchError::Mismatch {
                phase: "simulation",
                detail: format!(
                    "reported {turnstile} turnstile records, the topic grew by {}",
                    after - before
                ),
            });
        }
        let records: u64 = report.produced.values().sum();
        Ok(SimSpeedReport {
            machine,
            broker: env.describe(),
            embedded: env.is_embedded(),
            steps: report.steps,
            time_step_secs: opts.time_step.as_secs(),
            records,
            records_per_sec: records as f64 / cost.wall_secs.max(1e-9),
            produced: report.produced,
            cost,
        })
    }
    .await;
    env.stop().await;
    result
}

impl fmt::Display for SimSpeedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "== simulation speed (sleep 0)")?;
        writeln!(f, "machine: {}", self.machine)?;
        writeln!(f, "broker:  {}", self.broker)?;
        let per: Vec<String> = self
            .produced
            .iter()
            .map(|(t, n)| format!("{t} {}", thousands(*n as f64)))
            .collect();
        writeln!(
            f,
            "{} steps of {} s: {} records ({})",
            self.steps,
            self.time_step_secs,
            thousands(self.records as f64),
            per.join(", ")
        )?;
        write!(
            f,
            "{} records/s ({:.3} s); CPU {:.2} s/M records (broker thread {:.2} s in total); peak RSS {}",
            thousands(self.records_per_sec),
            self.cost.wall_secs,
            self.cost.cpu_per_million(self.records),
            self.cost.broker_thread_cpu_secs,
            crate::measure::mib(self.cost.peak_rss_kib)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike};

    #[test]
    fn start_is_a_weekday_midnight_in_chicago() {
        let t = chrono::DateTime::from_timestamp_millis(
            WEEKDAY_MIDNIGHT_MS + simulation::CHICAGO_OFFSET_MS,
        )
        .unwrap()
        .naive_utc();
        assert_eq!((t.year(), t.month(), t.day(), t.hour()), (2026, 11, 24, 0));
        assert_eq!(t.weekday(), chrono::Weekday::Tue);
    }

    #[test]
    fn steps_cover_the_wanted_records() {
        let ds = Dataset::builtin();
        let opts = SimSpeedOptions {
            min_records: 20_000,
            time_step: Duration::from_secs(300),
            seed: 1,
            start_ms: WEEKDAY_MIDNIGHT_MS,
        };
        let steps = steps_for(&ds, &opts).unwrap();
        // Count independently: the same simulation, one step less, stays below.
        let mut sim = Simulation::new(ds.clone(), &config(&opts, None));
        let mut records = ds.connect_rows().len() as u64;
        let mut before_last = 0;
        for _ in 0..steps {
            before_last = records;
            let o = sim.step();
            records +=
                o.arrivals.len() as u64 + o.turnstile.len() as u64 + u64::from(o.weather.is_some());
        }
        assert!(records >= 20_000, "{records}");
        assert!(
            before_last < 20_000,
            "{before_last}: one step fewer would do"
        );
    }
}
