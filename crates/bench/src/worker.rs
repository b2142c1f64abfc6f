//! The CTA worker (exactly as `transit::build_worker` declares it) run as a task, with the
//! probes the benchmarks wait on: readiness (`Status::recovering` false and a non-empty
//! assignment, as crates/stream/src/sensor.rs reports), the turnstile total, and the source offsets
//! stored durably with the table data.

use crate::env::{BenchEnv, ScratchDir};
use crate::{BenchError, Result};
use cta_stream::stream::table::TableRuntime;
use cta_stream::stream::{AppConfig, KafkaConfig, RegistryConfig, Shutdown, Status, StreamError};
use cta_stream::transit::agents::{TransitTables, TurnstileCounts};
use cta_stream::transit::simulation::{self, SimConfig};
use cta_stream::transit::stations::Dataset;
use cta_stream::transit::TurnstileKeys;
use cta_stream::web::WebState;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct RunningWorker {
    pub tables: TransitTables,
    pub status: Arc<Status>,
    /// The worker's checkpoint interval.
    pub commit_interval: Duration,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<std::result::Result<(), StreamError>>>,
}

impl RunningWorker {
    /// Builds the worker and starts it. Must run inside the tokio runtime.
    pub fn start(config: AppConfig, registry: &RegistryConfig) -> Result<Self> {
        Self::start_keyed(config, registry, TurnstileKeys::Station)
    }

    /// [`RunningWorker::start`] with turnstile records keyed as `keys` says (`Other`: counted
    /// through the repartition topic).
    pub fn start_keyed(
        config: AppConfig,
        registry: &RegistryConfig,
        keys: TurnstileKeys,
    ) -> Result<Self> {
        let commit_interval = config.commit_interval;
        let (app, tables) = cta_stream::transit::build_worker_with(config, registry, None, keys)?;
        let status = app.status();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        Ok(Self {
            tables,
            status,
            commit_interval,
            shutdown,
            task: Some(task),
        })
    }

    /// Errors when the worker task has ended on its own.
    pub async fn check_alive(&mut self, phase: &'static str) -> Result<()> {
        let finished = self.task.as_ref().is_none_or(|t| t.is_finished());
        if !finished {
            return Ok(());
        }
        let detail = match self.task.take() {
            None => "already stopped".to_string(),
            Some(t) => match t.await {
                Ok(Ok(())) => "returned without being asked to stop".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("task failed: {e}"),
            },
        };
        Err(BenchError::WorkerStopped { phase, detail })
    }

    /// Partitions assigned and every table partition restored.
    pub fn ready(&self) -> bool {
        let s = self.status.snapshot();
        !s.recovering && !s.assigned.is_empty()
    }

    pub fn recovering(&self) -> bool {
        self.status.recovering.load(Ordering::Relaxed)
    }

    /// Sum of the turnstile table's counts (cache included: what queries see).
    pub fn turnstile_total(&self) -> Result<i64> {
        Ok(self.tables.turnstile_all()?.iter().map(|s| s.count).sum())
    }

    /// Sum over the turnstile table's open partitions of the source offset stored in RocksDB
    /// with the data: equals the records processed once their checkpoint is complete
    /// (changelog flushed, store written).
    pub fn durable_source_offsets(&self) -> Result<i64> {
        let TurnstileCounts::Native(t) = &self.tables.turnstile else {
            return Err(StreamError::Config(
                "the benchmark worker counts turnstile entries itself".into(),
            )
            .into());
        };
        let mut sum = 0;
        for p in TableRuntime::open_partitions(t) {
            sum += TableRuntime::offsets(t, p)?.source.unwrap_or(0);
        }
        Ok(sum)
    }

    /// Serves this worker's page and API on a free loopback port until `shutdown`.
    pub async fn serve_web(
        &self,
        shutdown: &Shutdown,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let state = WebState::new(self.tables.clone(), self.status.clone());
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Ok(cta_stream::web::serve(addr, state, shutdown.clone()).await?)
    }

    /// Asks the worker to stop and waits for its final checkpoint. Returns how long that took.
    pub async fn stop(mut self) -> Result<Duration> {
        let began = Instant::now();
        self.shutdown.trigger();
        if let Some(t) = self.task.take() {
            t.await
                .map_err(|e| StreamError::Config(format!("worker task failed: {e}")))??;
        }
        Ok(began.elapsed())
    }
}

/// What a worker's tables hold before a measurement: `steps` simulated 5-minute steps from
/// `start_ms` (stations, trains, turnstile entries, weather), 10 trains per line, 4 partitions.
#[derive(Debug, Clone, Copy)]
pub struct Fill {
    pub steps: u64,
    pub seed: u64,
    pub start_ms: i64,
}

/// Runs the simulation for `fill`, then starts a worker `app_id` on `kafka` (its stores in a
/// scratch dir under `work_dir`) and waits until it consumed every simulated record. Returns
/// the worker, its data dir and the number of records.
pub async fn filled_worker(
    env: &BenchEnv,
    app_id: &str,
    kafka: KafkaConfig,
    fill: Fill,
    work_dir: &Path,
    timeout: Duration,
) -> Result<(RunningWorker, ScratchDir, u64)> {
    let sim = simulation::run(
        Dataset::builtin(),
        SimConfig {
            time_step: Duration::from_secs(300),
            sleep: Duration::ZERO,
            steps: Some(fill.steps),
            seed: fill.seed,
            trains_per_line: 10,
            partitions: 4,
            start_ms: fill.start_ms,
            publish_stations: true,
        },
        &env.kafka,
        &env.registry,
        Shutdown::new(),
    )
    .await?;
    let total: u64 = sim.produced.values().sum();
    let data = ScratchDir::new(work_dir, app_id, false)?;
    let mut w = RunningWorker::start(AppConfig::new(app_id, kafka, &data.path), &env.registry)?;
    // `consumed` is exact once a checkpoint follows the last record.
    wait_for(
        "worker catching up with the simulation",
        timeout,
        Duration::from_millis(50),
        &mut w,
        |w| Ok(w.status.snapshot().consumed >= total),
        |w| format!("consumed {} of {total}", w.status.snapshot().consumed),
    )
    .await?;
    Ok((w, data, total))
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        // An error path dropped a running worker: ask it to stop rather than leak it.
        self.shutdown.trigger();
    }
}

/// Polls `probe` every `every` until it returns true, failing after `timeout`.
pub async fn wait_for(
    phase: &'static str,
    timeout: Duration,
    every: Duration,
    worker: &mut RunningWorker,
    mut probe: impl FnMut(&RunningWorker) -> Result<bool>,
    detail: impl Fn(&RunningWorker) -> String,
) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        worker.check_alive(phase).await?;
        if probe(worker)? {
            return Ok(Instant::now());
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout {
                phase,
                after: timeout,
                detail: detail(worker),
            });
        }
        tokio::time::sleep(every).await;
    }
}
