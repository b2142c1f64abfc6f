//! `bench`: performance measurements of the pipeline (see BENCHMARKS.md). Flags only; the
//! work is in this crate's library (`cta_stream_bench`).

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use cta_stream::stream::{KafkaConfig, RegistryConfig};
use cta_stream_bench::env::BrokerChoice;
use cta_stream_bench::flush::{self, FlushOptions};
use cta_stream_bench::http::{self, HttpOptions};
use cta_stream_bench::latency::{self, LatencyOptions};
use cta_stream_bench::memory::{self, MemoryOptions};
use cta_stream_bench::recovery::{self, Build, RecoveryOptions};
use cta_stream_bench::simspeed::{self, SimSpeedOptions, WEEKDAY_MIDNIGHT_MS};
use cta_stream_bench::throughput::{self, ThroughputOptions};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    version,
    about = "Benchmarks: worker throughput vs a raw consumer, recovery, simulation speed, HTTP"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce N turnstile records, then time a raw consumer and the worker over them.
    Throughput(ThroughputArgs),
    /// Warm restart with short and long changelogs behind the checkpoint; cold restore.
    Recovery(RecoveryArgs),
    /// Records per second the simulation produces with no sleep.
    Simulation(SimulationArgs),
    /// Requests per second and latency of the JSON API and the page on loopback.
    Http(HttpArgs),
    /// Produce → visible latency of a turnstile entry (JSON API, live page) under a steady load.
    Latency(LatencyArgs),
    /// Latency of the checkpoint's producer flush for a few batch sizes.
    Flush(FlushArgs),
    /// The worker's resident memory over a long run (records produced in rounds).
    Memory(MemoryArgs),
}

#[derive(Args)]
struct LatencyArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    common: CommonArgs,
    /// Background turnstile records per second, one run each, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000u64, 10_000, 100_000])]
    rates: Vec<u64>,
    /// Seconds each rate runs.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration_secs: u64,
    /// Probe entries per second (each waits until the previous one is visible).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    probes_per_sec: u32,
}

#[derive(Args)]
struct MemoryArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Turnstile records in total.
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    records: u64,
    /// Records per round; a round must fit in what the broker retains (the embedded one keeps
    /// about 5 MiB per partition: 2M of these records on 4 partitions when measured).
    #[arg(long, default_value_t = 500_000, value_parser = clap::value_parser!(u64).range(1..))]
    chunk: u64,
    /// Partitions of the turnstile topic (when this run creates it).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=1024))]
    partitions: i32,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct FlushArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Records sent before each flush, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 20, 95])]
    batch: Vec<usize>,
    /// Flushes per batch size.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    rounds: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CommonArgs {
    /// Parent directory of the worker's data dirs (default: the system temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Upper bound of each measured phase, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

impl CommonArgs {
    fn work_dir(&self) -> PathBuf {
        self.work_dir.clone().unwrap_or_else(std::env::temp_dir)
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

#[derive(Args)]
struct RecoveryArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Changelog lengths (records) to measure warm restarts with, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 1_000_000])]
    changelog: Vec<u64>,
    /// Warm restarts per length.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    restarts: u32,
    /// Skip the cold restores.
    #[arg(long)]
    no_cold: bool,
    /// How to build the changelog: `seeded` writes the history straight to the changelog in
    /// the worker's format, then runs the worker on top; `worker` lets the worker's own
    /// checkpoints write all of it (slow for long changelogs).
    #[arg(long, value_enum, default_value_t = BuildArg::Seeded)]
    build: BuildArg,
    /// `seeded`: source records the worker processes on top of the history.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    source_records: u64,
    /// `worker`: checkpoint every this many records while building the changelog.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    commit_every: u64,
    /// Extra librdkafka property for every client, repeatable (KEY=VALUE), e.g.
    /// -X session.timeout.ms=3000 to see how the group's timeouts shape the restart.
    #[arg(short = 'X', long = "kafka-property", value_name = "KEY=VALUE", value_parser = parse_property)]
    kafka_properties: Vec<(String, String)>,
    /// Keep the data dirs.
    #[arg(long)]
    keep_data: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BuildArg {
    Seeded,
    Worker,
}

#[derive(Args)]
struct SimulationArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Run enough steps for at least this many records.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    min_records: u64,
    /// Simulated time per step, in seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    time_step_secs: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct HttpArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    connections: u64,
    /// Seconds of load per path.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    duration_secs: u64,
    /// Paths to load, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["/api/turnstile".to_string(), "/".to_string()])]
    paths: Vec<String>,
    /// Simulated 5-minute steps to fill the tables with before the load.
    #[arg(long, default_value_t = 288)]
    sim_steps: u64,
    /// Also run `wrk` (apt-get install wrk) with the same connections and duration.
    #[arg(long)]
    wrk: bool,
}

#[derive(Args, Clone)]
struct BrokerArgs {
    /// Kafka bootstrap servers of an external broker (default: the embedded platform in this
    /// process). Its turnstile topic must be empty.
    #[arg(long, env = "CTA_BENCH_BROKERS", requires = "schema_registry_url")]
    brokers: Option<String>,
    /// Schema Registry URL of the external broker's registry.
    #[arg(long, env = "CTA_BENCH_SCHEMA_REGISTRY_URL", requires = "brokers")]
    schema_registry_url: Option<String>,
    /// Extra librdkafka property for every client, repeatable (KEY=VALUE), e.g.
    /// -X fetch.queue.backoff.ms=10 or the SASL settings of an external broker.
    #[arg(short = 'X', long = "kafka-property", value_name = "KEY=VALUE", value_parser = parse_property)]
    kafka_properties: Vec<(String, String)>,
}

impl BrokerArgs {
    fn choice(&self) -> BrokerChoice {
        match (&self.brokers, &self.schema_registry_url) {
            (Some(b), Some(u)) => {
                let mut kafka = KafkaConfig::new(b.clone());
                kafka.extra = self.kafka_properties.clone();
                BrokerChoice::External {
                    kafka,
                    registry: RegistryConfig::new(u.clone()),
                }
            }
            _ => BrokerChoice::Embedded {
                extra: self.kafka_properties.clone(),
            },
        }
    }
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

#[derive(Args)]
struct ThroughputArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Turnstile records to produce and consume.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    records: u64,
    /// Seed of the station draw.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Partitions of the turnstile topic (when this run creates it).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=1024))]
    partitions: i32,
    /// Parent directory of the worker's data dir (default: the system temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the worker's data dir after the run.
    #[arg(long)]
    keep_data: bool,
    /// Upper bound of each measured phase, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Control FIFO of `perf record --control fifo:PATH -D -1`: profiling is enabled for the
    /// worker phase only.
    #[arg(long)]
    perf_control_fifo: Option<PathBuf>,
    /// The worker's checkpoint interval with its unit, e.g. 100ms (default: the worker's own, as `worker
    /// --commit-interval` defaults); the worker checkpoints about 0.1 s after catching up (its
    /// checkpoint once idle), so the interval matters only while records flow.
    #[arg(long, value_parser = humantime::parse_duration)]
    commit_interval: Option<Duration>,
    /// The worker's checkpoint count: also checkpoint after this many records (default: the
    /// worker's own, `AppConfig::commit_every`).
    #[arg(long)]
    commit_every: Option<u64>,
    /// Run the worker's agents on its poll thread, not on a thread of their own (the worker's
    /// way before the agents got one; to compare the two in one session).
    #[arg(long)]
    agents_inline: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // As the worker binaries do: the measured worker runs with the same allocator settings.
    cta_stream::stream::memory::limit_malloc_arenas();
    let cli = Cli::parse();
    cta_stream::logging::init();
    match cli.command {
        Command::Throughput(a) => {
            let opts = ThroughputOptions {
                records: a.records,
                seed: a.seed,
                partitions: a.partitions,
                work_dir: a.work_dir.unwrap_or_else(std::env::temp_dir),
                keep_data: a.keep_data,
                timeout: Duration::from_secs(a.timeout_secs),
                perf_control: a.perf_control_fifo.clone(),
                commit_interval: a.commit_interval,
                commit_every: a.commit_every,
                agents_inline: a.agents_inline,
            };
            let report = throughput::run(&a.broker.choice(), &opts)
                .await
                .context("throughput benchmark failed")?;
            print_report(&report, a.json)
        }
        Command::Recovery(a) => {
            let opts = RecoveryOptions {
                lengths: a.changelog.clone(),
                restarts: a.restarts,
                cold: !a.no_cold,
                build: match a.build {
                    BuildArg::Seeded => Build::Seeded,
                    BuildArg::Worker => Build::Worker,
                },
                source_records: a.source_records,
                commit_every: a.commit_every,
                seed: 7,
                work_dir: a.common.work_dir(),
                keep_data: a.keep_data,
                timeout: a.common.timeout(),
                kafka_extra: a.kafka_properties.clone(),
            };
            let report = recovery::run(&opts)
                .await
                .context("recovery benchmark failed")?;
            print_report(&report, a.common.json)
        }
        Command::Simulation(a) => {
            let opts = SimSpeedOptions {
                min_records: a.min_records,
                time_step: Duration::from_secs(a.time_step_secs),
                seed: 7,
                start_ms: WEEKDAY_MIDNIGHT_MS,
            };
            let report = simspeed::run(&a.broker.choice(), &opts)
                .await
                .context("simulation benchmark failed")?;
            print_report(&report, a.json)
        }
        Command::Flush(a) => {
            let opts = FlushOptions {
                batch_sizes: a.batch.clone(),
                rounds: a.rounds as usize,
            };
            let report = flush::run(&a.broker.choice(), &opts)
                .await
                .context("flush benchmark failed")?;
            print_report(&report, a.json)
        }
        Command::Memory(a) => {
            let opts = MemoryOptions {
                records: a.records,
                chunk: a.chunk,
                seed: 7,
                partitions: a.partitions,
                work_dir: a.common.work_dir(),
                timeout: a.common.timeout(),
            };
            let report = memory::run(&a.broker.choice(), &opts)
                .await
                .context("memory benchmark failed")?;
            print_report(&report, a.common.json)
        }
        Command::Latency(a) => {
            let opts = LatencyOptions {
                rates: a.rates.clone(),
                duration: Duration::from_secs(a.duration_secs),
                probes_per_sec: a.probes_per_sec,
                work_dir: a.common.work_dir(),
                timeout: a.common.timeout(),
            };
            let report = latency::run(&a.broker.choice(), &opts)
                .await
                .context("latency benchmark failed")?;
            print_report(&report, a.common.json)
        }
        Command::Http(a) => {
            let opts = HttpOptions {
                connections: a.connections as usize,
                duration: Duration::from_secs(a.duration_secs),
                paths: a.paths.clone(),
                sim_steps: a.sim_steps,
                wrk: a.wrk,
                work_dir: a.common.work_dir(),
                timeout: a.common.timeout(),
            };
            let report = http::run(&opts).await.context("http benchmark failed")?;
            print_report(&report, a.common.json)
        }
    }
}

fn print_report<T: std::fmt::Display + serde::Serialize>(r: &T, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        println!("{r}");
    }
    Ok(())
}
