//! `bench throughput`: one run, one broker, the same N turnstile records read twice:
//!
//! 1. **raw**: a `BaseConsumer` with the worker's group-consumer settings
//!    ([`KafkaConfig::group_consumer`]), all partitions assigned from the beginning, records
//!    counted and discarded until N were seen, twice: with `BaseConsumer::poll` (one message
//!    per call: the baseline) and in batches from one queue
//!    ([`cta_stream::stream::FetchQueue`], the way the worker itself consumes, batches of the
//!    worker's [`FETCH_BATCH`]), so the
//!    worker is also compared with the fastest plain consumer of the same library; the batch
//!    consumer runs once more after the worker (step 2), and the batch ratios take the faster
//!    of its two runs (on 2 cores its speed moves by half from one run to the next);
//! 2. **worker**: the CTA worker as `transit::build_worker` declares it, with a fresh app id and
//!    data dir, timed from start until the turnstile table's counts sum to N (*caught up*) and
//!    until the checkpoint covering all N is in RocksDB (*durable*: changelog flushed, offsets
//!    committed to the group, store written);
//! 3. **worker, repartitioned**: the same worker with `--turnstile-keys other` (another fresh
//!    app id), so every record is re-keyed by station through the repartition topic: one more
//!    produce and consume per record, measured the same way on the same records (produced
//!    again with the same seed on a second embedded platform, since both workers would write
//!    TURNSTILE_SUMMARY; skipped on an external broker).
//!
//! The headline ratio compares both from their first record to their last (raw: the N-th
//! record seen; worker: caught up), as the issue defines it: consumer start-up (the worker's
//! group join and store opens, the raw consumer's first fetch) is reported apart, not mixed
//! into the per-record speed. The start→durable figure is printed beside it.
//!
//! The counts must equal the produced counts per station, else the run fails.

use crate::env::{partitions_of, unique, with_env, BenchEnv, BrokerChoice, ScratchDir};
use crate::measure::{mib, per_million, MachineInfo, PhaseCost, PhaseMeter};
use crate::worker::{wait_for, RunningWorker};
use crate::workload::{as_map, compare_counts, counts_checksum, produce_turnstile, Draw, Produced};
use crate::{rate, thousands, BenchError, Result};
use cta_stream::stream::{AppConfig, KafkaConfig, StreamError};
use cta_stream::stream::{FetchQueue, FETCH_BATCH};
use cta_stream::transit::models::topics;
use cta_stream::transit::stations::Dataset;
use cta_stream::transit::TurnstileKeys;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ThroughputOptions {
    pub records: u64,
    pub seed: u64,
    /// Partitions of the turnstile topic when this run creates it.
    pub partitions: i32,
    /// Parent of the worker's data dir.
    pub work_dir: PathBuf,
    pub keep_data: bool,
    /// Upper bound for each measured phase.
    pub timeout: Duration,
    /// A `perf record --control fifo:PATH` FIFO: `enable` is written to it when the worker
    /// phase starts and `disable` when it ends, so a profile covers the worker alone.
    pub perf_control: Option<PathBuf>,
    /// The worker's checkpoint interval (`None`: the worker's default, as `worker` starts).
    pub commit_interval: Option<Duration>,
    /// The worker's checkpoint count (`None`: the worker's default).
    pub commit_every: Option<u64>,
    /// The worker's agents on its poll thread (`AppConfig::agent_thread` off).
    pub agents_inline: bool,
}

/// Writes a `perf record --control` command; a profiler that is not listening is not an error.
fn perf_control(path: &Option<PathBuf>, command: &str) {
    if let Some(p) = path {
        if let Err(e) = std::fs::write(p, format!("{command}\n")) {
            tracing::warn!(path = %p.display(), error = %e, "perf control FIFO not writable");
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RawResult {
    /// Consumer created → N records seen.
    pub secs: f64,
    pub records_per_sec: f64,
    /// Consumer created → first record.
    pub first_record_secs: f64,
    /// N / (last record − first record).
    pub records_per_sec_from_first: f64,
    pub payload_bytes: u64,
    pub cost: PhaseCost,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerResult {
    /// Start → partitions assigned and tables ready.
    pub ready_secs: f64,
    /// Start → the first record reached the agents.
    pub first_record_secs: f64,
    /// Start → counts sum to N.
    pub caught_up_secs: f64,
    /// Start → the checkpoint covering all N is stored.
    pub durable_secs: f64,
    /// The worker's checkpoint interval while records flow; once caught up it checkpoints
    /// after one empty poll wait (0.1 s), `AppConfig::checkpoint_when_idle`.
    pub commit_interval_ms: u64,
    /// N / durable_secs: the headline figure.
    pub records_per_sec: f64,
    /// N / (caught_up − ready): processing only, without start-up and the last checkpoint.
    pub processing_records_per_sec: f64,
    /// N / (caught_up − first record): the per-record speed the ratio compares.
    pub records_per_sec_from_first: f64,
    pub cost_at_caught_up: PhaseCost,
    pub cost: PhaseCost,
    pub commits: u64,
    pub stop_secs: f64,
    pub store_bytes: u64,
    /// Checksum of the table's counts, read back after the run.
    pub table_checksum: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputReport {
    pub machine: MachineInfo,
    pub broker: String,
    pub embedded: bool,
    pub records: u64,
    pub partitions: i32,
    pub stations: usize,
    pub produce_records_per_sec: f64,
    pub produce: Produced,
    pub raw: RawResult,
    /// The same consume-and-discard, in batches.
    pub raw_batch: RawResult,
    /// The batch consumer once more, after the worker: its speed moves a lot from one run to
    /// the next on 2 cores, so the batch ratios take the faster of the two runs.
    pub raw_batch_after: RawResult,
    pub worker: WorkerResult,
    /// The worker counting through the repartition topic (embedded broker only: a second
    /// platform in the same run, with the same records).
    pub worker_repartition: Option<WorkerResult>,
    /// Worker ÷ raw records/s, each from its first record to its last (the figure).
    pub ratio: f64,
    /// Worker ÷ raw batch records/s, the same way (the faster of the two batch runs).
    pub ratio_batch: f64,
    /// Worker start→durable ÷ raw batch consumer created→last (the faster of the two runs).
    pub ratio_start_to_durable: f64,
    pub expected_checksum: u64,
    pub table_checksum: u64,
}

/// Runs the whole benchmark; `Err(Mismatch)` when the table's counts are wrong.
pub async fn run(choice: &BrokerChoice, opts: &ThroughputOptions) -> Result<ThroughputReport> {
    if opts.records == 0 {
        return Err(BenchError::Invalid("--records must be at least 1".into()));
    }
    let machine = MachineInfo::now();
    let mut report = with_env(choice, async |env| run_on(env, opts, machine).await).await?;
    // The two workers would share TURNSTILE_SUMMARY (one name for every app id), so the
    // repartitioned one gets a broker of its own, fed the same records.
    if let BrokerChoice::Embedded { .. } = choice {
        let rekeyed = with_env(choice, async |env| run_repartitioned(env, opts).await).await?;
        report.worker_repartition = Some(rekeyed);
    }
    Ok(report)
}

/// The same records (same seed) counted by the worker with `TurnstileKeys::Other`: each is
/// re-keyed by station through the repartition topic.
async fn run_repartitioned(env: &BenchEnv, opts: &ThroughputOptions) -> Result<WorkerResult> {
    let app_id = env
        .fresh_worker_app("cta-bench-rekey", opts.partitions)
        .await?;
    tracing::info!(records = opts.records, "producing turnstile entries again");
    let produced = produce_turnstile(
        &env.kafka,
        &env.registry,
        &Dataset::builtin(),
        opts.records,
        opts.seed,
        Draw::Ridership,
        None,
    )
    .await?;
    tracing::info!("worker, through the repartition topic");
    let data = ScratchDir::new(&opts.work_dir, &app_id, opts.keep_data)?;
    measure_worker(env, &app_id, &data, &produced, opts, TurnstileKeys::Other).await
}

async fn run_on(
    env: &BenchEnv,
    opts: &ThroughputOptions,
    machine: MachineInfo,
) -> Result<ThroughputReport> {
    let app_id = env.fresh_worker_app("cta-bench", opts.partitions).await?;
    let dataset = Dataset::builtin();
    tracing::info!(records = opts.records, "producing turnstile entries");
    let produced = produce_turnstile(
        &env.kafka,
        &env.registry,
        &dataset,
        opts.records,
        opts.seed,
        Draw::Ridership,
        None,
    )
    .await?;
    let partitions = tokio::task::block_in_place(|| partitions_of(&env.kafka, topics::TURNSTILE))?;
    let on_topic = tokio::task::block_in_place(|| env.topic_records(topics::TURNSTILE))?;
    if on_topic != opts.records as i64 {
        return Err(BenchError::Invalid(format!(
            "{} holds {on_topic} records after producing {}",
            topics::TURNSTILE,
            opts.records
        )));
    }

    let raw = raw_phase(env, partitions, opts, RawMode::Poll).await?;
    let raw_batch = raw_phase(env, partitions, opts, RawMode::Batch).await?;

    tracing::info!("worker");
    let data = ScratchDir::new(&opts.work_dir, &app_id, opts.keep_data)?;
    perf_control(&opts.perf_control, "enable");
    let worker = measure_worker(env, &app_id, &data, &produced, opts, TurnstileKeys::Station).await;
    perf_control(&opts.perf_control, "disable");
    let worker = worker?;
    let raw_batch_after = raw_phase(env, partitions, opts, RawMode::Batch).await?;
    let faster = |f: fn(&RawResult) -> f64| f(&raw_batch).max(f(&raw_batch_after));
    let expected_checksum = counts_checksum(&produced.per_station);
    Ok(ThroughputReport {
        machine,
        broker: env.describe(),
        embedded: env.is_embedded(),
        records: opts.records,
        partitions,
        stations: produced.per_station.len(),
        produce_records_per_sec: produced.records as f64 / produced.cost.wall_secs.max(1e-9),
        ratio: quotient(
            worker.records_per_sec_from_first,
            raw.records_per_sec_from_first,
        ),
        ratio_batch: quotient(
            worker.records_per_sec_from_first,
            faster(|r| r.records_per_sec_from_first),
        ),
        ratio_start_to_durable: quotient(worker.records_per_sec, faster(|r| r.records_per_sec)),
        produce: produced,
        raw,
        raw_batch,
        raw_batch_after,
        expected_checksum,
        table_checksum: worker.table_checksum,
        worker,
        worker_repartition: None,
    })
}

/// One raw consumer's run over the topic, from its beginning.
async fn raw_phase(
    env: &BenchEnv,
    partitions: i32,
    opts: &ThroughputOptions,
    mode: RawMode,
) -> Result<RawResult> {
    tracing::info!(?mode, "raw consumer");
    let kafka = env.kafka.clone();
    let (n, timeout) = (opts.records, opts.timeout);
    tokio::task::spawn_blocking(move || raw_consume(&kafka, partitions, n, timeout, mode))
        .await
        .map_err(|e| StreamError::Config(format!("raw consumer task failed: {e}")))?
}

fn quotient(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// How the raw consumer takes its records.
#[derive(Debug, Clone, Copy)]
enum RawMode {
    /// `BaseConsumer::poll`, one message per call.
    Poll,
    /// Batches from one queue the partitions are forwarded to (as the worker consumes).
    Batch,
}

/// Consume-and-discard with the worker's consumer settings until `n` records were seen.
fn raw_consume(
    kafka: &KafkaConfig,
    partitions: i32,
    n: u64,
    timeout: Duration,
    mode: RawMode,
) -> Result<RawResult> {
    let meter = PhaseMeter::start();
    let consumer: BaseConsumer = kafka
        .group_consumer(&unique("cta-bench-raw"))
        .create()
        .map_err(StreamError::kafka("create raw consumer"))?;
    // Know the partitions' leaders before assigning: assigned without them, librdkafka
    // retries the start-offset lookup only after a fixed 500 ms, which would be counted here.
    consumer
        .client()
        .fetch_metadata(Some(topics::TURNSTILE), Duration::from_secs(10))
        .map_err(StreamError::kafka("raw consumer metadata"))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topics::TURNSTILE, p, Offset::Beginning)
            .map_err(StreamError::kafka("assign"))?;
    }
    let mut fetch = match mode {
        RawMode::Poll => None,
        RawMode::Batch => {
            let f = FetchQueue::new(&consumer, FETCH_BATCH)?;
            f.handle().attach(&consumer, &tpl);
            Some(f)
        }
    };
    consumer
        .assign(&tpl)
        .map_err(StreamError::kafka("assign"))?;
    let deadline = Instant::now() + timeout;
    let (mut seen, mut bytes) = (0u64, 0u64);
    let mut first: Option<Instant> = None;
    let mut batch = fetch.as_ref().map(FetchQueue::new_batch);
    while seen < n {
        match (&mut fetch, &mut batch) {
            (Some(f), Some(batch)) => {
                f.drain(Duration::from_millis(100), batch);
                for i in 0..batch.len() {
                    let m = batch.get(i);
                    if m.error().is_none() {
                        first.get_or_insert_with(Instant::now);
                        seen += 1;
                        bytes += m.payload().map_or(0, <[u8]>::len) as u64;
                    }
                }
            }
            _ => match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    first.get_or_insert_with(Instant::now);
                    seen += 1;
                    bytes += m.payload_len() as u64;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "raw consumer error (librdkafka retries)")
                }
                None => {}
            },
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout {
                phase: "raw consumer",
                after: timeout,
                detail: format!("{seen} of {n} records seen"),
            });
        }
    }
    let last = Instant::now();
    let cost = meter.read();
    // Messages go before their queue, the queue before its consumer.
    drop(batch);
    drop(fetch);
    drop(consumer);
    let first = first.unwrap_or(last);
    Ok(RawResult {
        secs: cost.wall_secs,
        records_per_sec: seen as f64 / cost.wall_secs.max(1e-9),
        first_record_secs: first.duration_since(meter.started()).as_secs_f64(),
        records_per_sec_from_first: rate(seen, last.duration_since(first)),
        payload_bytes: bytes,
        cost,
    })
}

async fn measure_worker(
    env: &BenchEnv,
    app_id: &str,
    data: &ScratchDir,
    produced: &Produced,
    opts: &ThroughputOptions,
    keys: TurnstileKeys,
) -> Result<WorkerResult> {
    let n = produced.records as i64;
    let meter = PhaseMeter::start();
    let mut config = AppConfig::new(app_id, env.kafka.clone(), &data.path);
    if let Some(i) = opts.commit_interval {
        config.commit_interval = i;
    }
    if let Some(n) = opts.commit_every {
        config.commit_every = n;
    }
    config.agent_thread = !opts.agents_inline;
    let commit_interval_ms = config.commit_interval.as_millis() as u64;
    let mut w = RunningWorker::start_keyed(config, &env.registry, keys)?;
    // Each probe reads the table (and holds its lock) briefly: 25 ms keeps the interference
    // small and the quantization of the caught-up time under 1 % of a 1M-record run.
    let every = Duration::from_millis(25);
    let mut ready_at: Option<Instant> = None;
    let caught_at = wait_for(
        "worker",
        opts.timeout,
        every,
        &mut w,
        |w| {
            if ready_at.is_none() && w.ready() {
                ready_at = Some(Instant::now());
            }
            let total = w.turnstile_total()?;
            if total > n {
                return Err(BenchError::Mismatch {
                    phase: "worker",
                    detail: format!("the table counts {total} entries, more than the {n} produced"),
                });
            }
            Ok(total == n)
        },
        |w| format!("table total {:?} of {n}", w.turnstile_total().unwrap_or(-1)),
    )
    .await?;
    let cost_at_caught_up = meter.read();
    let durable_at = wait_for(
        "worker checkpoint",
        opts.timeout,
        Duration::from_millis(2),
        &mut w,
        // The checkpoint that wrote the stores counts itself a moment later.
        |w| {
            let counted = w.status.commits.load(std::sync::atomic::Ordering::Relaxed) > 0;
            Ok(counted && w.durable_source_offsets()? >= n)
        },
        |w| {
            format!(
                "stored source offsets {:?} of {n}",
                w.durable_source_offsets().unwrap_or(-1)
            )
        },
    )
    .await?;
    let cost = meter.read();
    let ready_at = ready_at.unwrap_or(caught_at);
    let first_at = w.status.first_record_at().unwrap_or(ready_at);
    let start = meter.started();

    let got = as_map(&w.tables.turnstile_all()?);
    let snapshot = w.status.snapshot();
    let stop = w.stop().await?;
    compare_counts(&produced.per_station, &got).map_err(|detail| BenchError::Mismatch {
        phase: "worker",
        detail,
    })?;
    if snapshot.decode_errors > 0 {
        return Err(BenchError::Mismatch {
            phase: "worker",
            detail: format!("{} records failed to decode", snapshot.decode_errors),
        });
    }
    let secs = |t: Instant| t.duration_since(start).as_secs_f64();
    let durable_secs = secs(durable_at);
    Ok(WorkerResult {
        ready_secs: secs(ready_at),
        first_record_secs: secs(first_at),
        caught_up_secs: secs(caught_at),
        durable_secs,
        commit_interval_ms,
        records_per_sec: rate(produced.records, durable_at.duration_since(start)),
        processing_records_per_sec: rate(produced.records, caught_at.duration_since(ready_at)),
        records_per_sec_from_first: rate(produced.records, caught_at.duration_since(first_at)),
        cost_at_caught_up,
        cost,
        commits: snapshot.commits,
        stop_secs: stop.as_secs_f64(),
        store_bytes: data.size_bytes(),
        table_checksum: counts_checksum(&got),
    })
}

impl fmt::Display for ThroughputReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.records;
        writeln!(
            f,
            "== throughput: {} turnstile records, {} partitions, {} stations",
            thousands(n as f64),
            self.partitions,
            self.stations
        )?;
        writeln!(f, "machine: {}", self.machine)?;
        writeln!(f, "broker:  {}", self.broker)?;
        writeln!(
            f,
            "produce: {} records/s ({:.2} s)",
            thousands(self.produce_records_per_sec),
            self.produce.cost.wall_secs
        )?;
        for (label, r) in [
            ("raw consumer:", &self.raw),
            ("raw, batches:", &self.raw_batch),
            ("batches again:", &self.raw_batch_after),
        ] {
            writeln!(
                f,
                "{label:<15}{:>12} records/s  first record → last ({:.3} s after creation; {} records/s created → last, {:.3} s)",
                thousands(r.records_per_sec_from_first),
                r.first_record_secs,
                thousands(r.records_per_sec),
                r.secs,
            )?;
            writeln!(
                f,
                "               CPU {:.2} s/M records ({:.2} s/M without the broker thread)  peak RSS {} (at phase start {})",
                r.cost.cpu_per_million(n),
                r.cost.cpu_per_million_without_broker(n),
                mib(r.cost.peak_rss_kib),
                mib(r.cost.rss_at_start_kib),
            )?;
        }
        let w = &self.worker;
        writeln!(
            f,
            "worker:        {:>12} records/s  first record → caught up (first record {:.3} s after start)",
            thousands(w.records_per_sec_from_first),
            w.first_record_secs,
        )?;
        writeln!(
            f,
            "               {:>12} records/s  {:.3} s start→durable (ready {:.3} s, caught up {:.3} s, {} checkpoints)",
            thousands(w.records_per_sec),
            w.durable_secs,
            w.ready_secs,
            w.caught_up_secs,
            w.commits,
        )?;
        writeln!(
            f,
            "               {:>12} records/s  processing only (ready → caught up)",
            thousands(w.processing_records_per_sec)
        )?;
        writeln!(
            f,
            "               CPU {:.2} s/M records (user {:.2} s, sys {:.2} s; {:.2} s/M without the broker thread)  peak RSS {} (at phase start {})  stop {:.3} s  store {:.1} MiB",
            w.cost.cpu_per_million(n),
            w.cost.cpu.user,
            w.cost.cpu.sys,
            w.cost.cpu_per_million_without_broker(n),
            mib(w.cost.peak_rss_kib),
            mib(w.cost.rss_at_start_kib),
            w.stop_secs,
            w.store_bytes as f64 / 1048576.0,
        )?;
        let threads: Vec<String> = w
            .cost
            .other_threads
            .iter()
            .take(6)
            .map(|(name, s)| format!("{name} {:.2}", per_million(*s, n)))
            .collect();
        writeln!(
            f,
            "               CPU s/M by thread: broker(rdk:mock) {:.2}; {}",
            per_million(w.cost.broker_thread_cpu_secs, n),
            threads.join(", ")
        )?;
        if let Some(r) = &self.worker_repartition {
            writeln!(
            f,
            "worker, repartitioned: {} records/s first record → caught up; {} records/s start→durable ({:.3} s); CPU {:.2} s/M records ({:.2} s/M without the broker thread)  peak RSS {}",
            thousands(r.records_per_sec_from_first),
            thousands(r.records_per_sec),
            r.durable_secs,
            r.cost.cpu_per_million(n),
            r.cost.cpu_per_million_without_broker(n),
            mib(r.cost.peak_rss_kib),
        )?;
        }
        writeln!(
            f,
            "ratio worker/raw: {:.2} first record → last; worker/raw batches (the faster batch run): {:.2} ({:.2} start→durable ÷ created → last; checkpoint interval {} ms)",
            self.ratio, self.ratio_batch, self.ratio_start_to_durable, self.worker.commit_interval_ms
        )?;
        if self.embedded {
            writeln!(f, "note: the broker runs in this process; CPU and RSS include it. Use --brokers/--schema-registry-url (e.g. `cta platform` in another process) for the worker alone.")?;
        }
        write!(
            f,
            "counts: exact ({} entries over {} stations), checksum {:016x} = {:016x}",
            thousands(n as f64),
            self.stations,
            self.expected_checksum,
            self.table_checksum
        )
    }
}
