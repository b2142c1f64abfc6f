//! Composition root: wires the transit worker to the web server, and the whole demo
//! (embedded platform + simulation + worker + page) together. Binaries call these.

use crate::platform::{Platform, PlatformError};
use crate::stream::{AppConfig, KafkaConfig, RegistryConfig, Shutdown, StreamError};
use crate::transit::simulation::{self, SimConfig};
use crate::transit::stations::Dataset;
use crate::web::{WebError, WebState};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Web(#[from] WebError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
}

/// Settings of a worker process.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub app_id: String,
    pub data_dir: PathBuf,
    pub web_addr: SocketAddr,
    pub commit_interval: std::time::Duration,
    /// URL other workers use to reach this one's API (default: http://<bound web address>).
    pub advertise_url: Option<String>,
}

/// Runs the worker (agents + tables) and the web server until `shutdown`.
pub async fn run_worker(
    opts: WorkerOptions,
    kafka: KafkaConfig,
    registry: RegistryConfig,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let listener = crate::web::bind(opts.web_addr).await?;
    let bound = listener.local_addr().map_err(|source| WebError::Bind {
        addr: opts.web_addr,
        source,
    })?;
    let mut config = AppConfig::new(&opts.app_id, kafka.clone(), &opts.data_dir);
    config.commit_interval = opts.commit_interval;
    config.advertise_url = Some(
        opts.advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}")),
    );
    let (app, tables) = crate::transit::build_worker(config, &registry)?;
    let state = WebState::new(tables, app.status())
        .with_kafka(kafka)
        .with_directory(app.directory());
    let web = crate::web::serve_listener(listener, state, shutdown.clone(), Default::default());
    let result = app.run(shutdown.clone()).await;
    // Whatever ended the worker ends the web server too.
    shutdown.trigger();
    let _ = web.await;
    Ok(result?)
}

/// Deletes the local stores of `app_id` under `data_dir` (they are rebuilt from the changelogs
/// on start). Other apps' stores in the same directory are left alone.
pub fn reset_state(data_dir: &std::path::Path, app_id: &str) -> Result<(), RunError> {
    let dir = data_dir.join(app_id);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {
            tracing::warn!(dir = %dir.display(), "local state deleted; tables will be restored from their changelogs");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RunError::Stream(StreamError::Io { path: dir, source })),
    }
}

/// Settings of the all-in-one demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub worker: WorkerOptions,
    pub sim: SimConfig,
    pub dataset: Dataset,
    pub registry_addr: SocketAddr,
}

/// Starts the embedded platform, creates the topics, then runs the simulation and the worker
/// side by side until `shutdown` (or until the simulation's `--steps` are done and the worker
/// is stopped).
pub async fn run_demo(opts: DemoOptions, shutdown: Shutdown) -> Result<(), RunError> {
    let mut platform = Platform::start(opts.registry_addr, None).await?;
    let path = platform.advertise()?;
    tracing::info!(discovery = %path.display(), "other binaries started without --brokers will use this platform");
    let partitions = opts.sim.partitions;
    for spec in simulation::topic_specs(partitions) {
        platform
            .broker
            .create_topic(&spec.name, partitions)
            .map_err(PlatformError::from)?;
    }
    for t in crate::transit::changelog_topics(&opts.worker.app_id) {
        platform
            .broker
            .create_topic(&t, partitions)
            .map_err(PlatformError::from)?;
    }
    let addrs = platform.addresses();
    let kafka = KafkaConfig::new(addrs.brokers.clone());
    let registry = RegistryConfig::new(addrs.schema_registry_url.clone());

    let sim = {
        let (kafka, registry, shutdown) = (kafka.clone(), registry.clone(), shutdown.clone());
        let (dataset, cfg) = (opts.dataset.clone(), opts.sim.clone());
        tokio::spawn(
            async move { simulation::run(dataset, cfg, &kafka, &registry, shutdown).await },
        )
    };
    let worker_result = run_worker(opts.worker, kafka, registry, shutdown.clone()).await;
    shutdown.trigger();
    let sim_result = sim
        .await
        .map_err(|e| StreamError::Config(format!("simulation task failed: {e}")))?;
    platform.stop().await;
    worker_result?;
    sim_result?;
    Ok(())
}

/// Hosts only the embedded broker and registry (with the CTA topics created), advertises them
/// for other processes, and waits for `shutdown`.
pub async fn host_platform(
    registry_addr: SocketAddr,
    partitions: i32,
    registry_dir: Option<&std::path::Path>,
    app_id: &str,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let mut platform = Platform::start(registry_addr, registry_dir).await?;
    for spec in simulation::topic_specs(partitions) {
        platform
            .broker
            .create_topic(&spec.name, partitions)
            .map_err(PlatformError::from)?;
    }
    for t in crate::transit::changelog_topics(app_id) {
        platform
            .broker
            .create_topic(&t, partitions)
            .map_err(PlatformError::from)?;
    }
    let path = platform.advertise()?;
    let a = platform.addresses();
    println!(
        "brokers={}\nschema_registry_url={}\ndiscovery_file={}",
        a.brokers,
        a.schema_registry_url,
        path.display()
    );
    tracing::info!(
        "embedded platform running; Ctrl-C to stop (its data is in memory and goes with it)"
    );
    shutdown.wait().await;
    platform.stop().await;
    Ok(())
}
