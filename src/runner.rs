//! Composition root: wires the transit worker to the web server, and the whole demo
//! (embedded platform + simulation + worker + page) together; with [`run_simulation`] and
//! [`run_worker_with`], the outside systems of `crate::integrations` (Postgres, Kafka Connect,
//! REST Proxy, ksqlDB) take over parts of the work. Binaries call these.

use crate::integrations::connect::{ConnectApiError, JdbcSource, Registration};
use crate::integrations::ksql::{self, KsqlClient, KsqlError};
use crate::integrations::postgres::{PostgresError, StationsDb};
use crate::integrations::rest_proxy::{RestProxyError, RestProxyTopic};
use crate::platform::{Platform, PlatformError};
use crate::stream::kafka::{ensure_topics, TopicSpec};
use crate::stream::Guarantee;
use crate::stream::{AppConfig, KafkaConfig, RegistryConfig, Shutdown, StreamError};
use crate::transit::simulation::{self, SimConfig, SimError, SimHooks, SimReport};
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
    #[error(transparent)]
    Simulation(#[from] SimError),
    #[error(transparent)]
    Postgres(#[from] PostgresError),
    #[error(transparent)]
    Connect(#[from] ConnectApiError),
    #[error(transparent)]
    RestProxy(#[from] RestProxyError),
    #[error(transparent)]
    Ksql(#[from] KsqlError),
}

impl RunError {
    /// A mistake in the flags (exit code 2), as opposed to a failure at run time.
    pub fn is_config(&self) -> bool {
        match self {
            RunError::Stream(e) => e.is_config(),
            RunError::Postgres(e) => e.is_config(),
            RunError::Connect(e) => e.is_config(),
            RunError::RestProxy(e) => e.is_config(),
            RunError::Ksql(e) => e.is_config(),
            _ => false,
        }
    }
}

/// Settings of a worker process.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub app_id: String,
    pub data_dir: PathBuf,
    pub web_addr: SocketAddr,
    pub commit_interval: std::time::Duration,
    /// Also checkpoint once caught up ([`AppConfig::checkpoint_when_idle`]).
    pub checkpoint_when_idle: bool,
    /// URL other workers use to reach this one's API (default: http://<bound web address>).
    pub advertise_url: Option<String>,
    /// At least once, or exactly once with Kafka transactions.
    pub guarantee: Guarantee,
    /// Warm copies of other workers' partitions kept by this one.
    pub standby_replicas: u32,
    /// How turnstile records are keyed (by station, or re-keyed through a repartition topic).
    pub turnstile_keys: crate::transit::TurnstileKeys,
}

/// Outside systems the worker uses instead of its own code.
#[derive(Debug, Clone, Default)]
pub struct WorkerIntegrations {
    /// ksqlDB computes TURNSTILE_SUMMARY (from `ksql/`); the worker reads it from there.
    pub ksql_url: Option<String>,
    pub ksql_auth: Option<String>,
}

/// Runs the worker (agents + tables) and the web server until `shutdown`.
pub async fn run_worker(
    opts: WorkerOptions,
    kafka: KafkaConfig,
    registry: RegistryConfig,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    run_worker_with(
        opts,
        kafka,
        registry,
        WorkerIntegrations::default(),
        shutdown,
    )
    .await
}

/// Partitions of the turnstile topic when the worker must create it for ksqlDB (the
/// simulation's default).
const KSQL_SOURCE_PARTITIONS: i32 = 4;

/// Submits `ksql/turnstile.sql` to ksqlDB (streams and tables that exist are skipped) and
/// returns the client that reads TURNSTILE_SUMMARY back.
pub async fn prepare_ksql(
    url: &str,
    auth: Option<&str>,
    kafka: &KafkaConfig,
) -> Result<KsqlClient, RunError> {
    let client = KsqlClient::new(url, auth)?;
    let statements = ksql::parse_statements(ksql::TURNSTILE_SQL, ksql::TURNSTILE_SQL_NAME)?;
    // CREATE STREAM needs its topic; create it if the simulation has not yet.
    ensure_topics(
        kafka,
        &[TopicSpec {
            name: crate::transit::models::topics::TURNSTILE.to_string(),
            partitions: KSQL_SOURCE_PARTITIONS,
            compacted: false,
        }],
    )
    .await?;
    let applied = client.apply(&statements).await?;
    tracing::info!(
        url,
        ?applied,
        "ksqlDB statements in place; TURNSTILE_SUMMARY is read from ksqlDB"
    );
    Ok(client)
}

/// [`run_worker`] with the given outside systems.
pub async fn run_worker_with(
    opts: WorkerOptions,
    kafka: KafkaConfig,
    registry: RegistryConfig,
    integrations: WorkerIntegrations,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let external: Option<std::sync::Arc<dyn crate::transit::queries::TurnstileSource>> =
        match &integrations.ksql_url {
            Some(url) => Some(std::sync::Arc::new(
                prepare_ksql(url, integrations.ksql_auth.as_deref(), &kafka).await?,
            )),
            None => None,
        };
    let listener = crate::web::bind(opts.web_addr).await?;
    let bound = listener.local_addr().map_err(|source| WebError::Bind {
        addr: opts.web_addr,
        source,
    })?;
    let mut config = AppConfig::new(&opts.app_id, kafka.clone(), &opts.data_dir);
    config.commit_interval = opts.commit_interval;
    config.checkpoint_when_idle = opts.checkpoint_when_idle;
    config.guarantee = opts.guarantee;
    config.standby_replicas = opts.standby_replicas;
    config.advertise_url = Some(
        opts.advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}")),
    );
    let (app, tables) =
        crate::transit::build_worker_with(config, &registry, external, opts.turnstile_keys)?;
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

/// Outside systems the simulation uses for part of its output.
#[derive(Debug, Clone, Default)]
pub struct SimIntegrations {
    /// Register this JDBC source connector; Kafka Connect publishes the station rows.
    pub connect: Option<JdbcSource>,
    /// Read the station rows from this Postgres URL and publish them natively.
    pub stations_from: Option<String>,
    /// Post weather through this Confluent REST Proxy.
    pub rest_proxy_url: Option<String>,
}

/// Runs the simulation with its outside systems. Everything that can be checked before the
/// first record is (URLs, the Postgres rows, the connector registration), so a mistake stops
/// the run before anything is published.
pub async fn run_simulation(
    dataset: Dataset,
    mut config: SimConfig,
    kafka: &KafkaConfig,
    registry: &RegistryConfig,
    integrations: SimIntegrations,
    shutdown: Shutdown,
) -> Result<SimReport, RunError> {
    // First every check that needs no network, then the systems in order.
    let mut hooks = SimHooks::default();
    if let Some(url) = &integrations.rest_proxy_url {
        hooks.weather = Some(Box::new(RestProxyTopic::weather(url)?));
    }
    let db = match &integrations.stations_from {
        Some(url) => Some(StationsDb::parse(url)?),
        None => None,
    };
    if let Some(source) = &integrations.connect {
        source.validate()?;
    }
    if let Some(db) = db {
        hooks.station_rows = Some(db.read_stations().await?);
    }
    if let Some(source) = &integrations.connect {
        match source.register().await? {
            Registration::Created => {
                tracing::info!(connector = %source.name, "Kafka Connect will publish the station rows")
            }
            Registration::AlreadyExists => {
                tracing::info!(connector = %source.name, "Kafka Connect already publishes the station rows")
            }
        }
        config.publish_stations = false;
    }
    Ok(simulation::run_with(dataset, config, kafka, registry, hooks, shutdown).await?)
}

/// Settings of the all-in-one demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub worker: WorkerOptions,
    pub sim: SimConfig,
    pub dataset: Dataset,
    pub registry_addr: SocketAddr,
    /// librdkafka properties for every client (e.g. `debug=...`).
    pub kafka_properties: Vec<(String, String)>,
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
    for t in crate::transit::worker_topics(&opts.worker.app_id) {
        platform
            .broker
            .create_topic(&t, partitions)
            .map_err(PlatformError::from)?;
    }
    let addrs = platform.addresses();
    let mut kafka = KafkaConfig::new(addrs.brokers.clone());
    kafka.extra = opts.kafka_properties.clone();
    kafka.prefer_consumer_group_protocol();
    kafka.short_fetch_wait();
    kafka.topics_created_on_first_use();
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
    for t in crate::transit::worker_topics(app_id) {
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
