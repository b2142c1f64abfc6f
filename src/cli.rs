//! Command-line pieces shared by the binaries: connection flags with env-var fallbacks and
//! discovery of the embedded platform, and logging set-up.

use crate::platform;
use crate::stream::{KafkaConfig, RegistryConfig};

/// How to reach Kafka and the Schema Registry.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnectArgs {
    /// Kafka bootstrap servers (host:port,...). Without it (and without
    /// --schema-registry-url), the embedded platform started by `cta` or `cta platform` on this
    /// machine is found through its discovery file.
    #[arg(long, env = "CTA_BROKERS")]
    pub brokers: Option<String>,

    /// Schema Registry URL, e.g. http://localhost:8081.
    #[arg(long, env = "CTA_SCHEMA_REGISTRY_URL")]
    pub schema_registry_url: Option<String>,

    /// Schema Registry basic auth as user:password (Confluent Cloud: API key:secret).
    #[arg(long, env = "CTA_SCHEMA_REGISTRY_AUTH", hide_env_values = true)]
    pub schema_registry_auth: Option<String>,

    /// Extra librdkafka property, repeatable: -X security.protocol=SASL_SSL -X sasl.mechanism=PLAIN
    #[arg(short = 'X', long = "kafka-property", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub kafka_properties: Vec<(String, String)>,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("--brokers is set but --schema-registry-url is not; give both (or neither, to use the embedded platform)")]
    MissingRegistry,
    #[error("--schema-registry-url is set but --brokers is not; give both (or neither, to use the embedded platform)")]
    MissingBrokers,
    #[error("no --brokers given and no embedded platform is running (looked for {0}); start one with `cargo run --release --bin cta -- platform`, or run everything with `cargo run --release`")]
    NoPlatform(String),
}

impl ConnectArgs {
    pub fn resolve(&self) -> Result<(KafkaConfig, RegistryConfig), ConnectError> {
        let (brokers, url) = match (&self.brokers, &self.schema_registry_url) {
            (Some(b), Some(u)) => (b.clone(), u.clone()),
            (Some(_), None) => return Err(ConnectError::MissingRegistry),
            (None, Some(_)) => return Err(ConnectError::MissingBrokers),
            (None, None) => {
                let found = platform::discover().ok_or_else(|| {
                    ConnectError::NoPlatform(platform::discovery_path().display().to_string())
                })?;
                tracing::info!(brokers = %found.brokers, registry = %found.schema_registry_url, "using the embedded platform");
                (found.brokers, found.schema_registry_url)
            }
        };
        let mut kafka = KafkaConfig::new(brokers);
        kafka.extra = self.kafka_properties.clone();
        let mut registry = RegistryConfig::new(url);
        registry.basic_auth = self.schema_registry_auth.clone();
        Ok((kafka, registry))
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("'{s}': {e} (examples: 5s, 300ms, 5m)"))
}

/// Flags of the stream worker.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Consumer group id; also names the state stores and changelog topics.
    #[arg(long, env = "CTA_APP_ID", default_value = "cta-stream")]
    pub app_id: String,
    /// Directory of the RocksDB table stores (one per table partition).
    #[arg(long, env = "CTA_DATA_DIR", default_value = "cta-data")]
    pub data_dir: std::path::PathBuf,
    /// Address of the status page and JSON API.
    #[arg(long, env = "CTA_WEB_ADDR", default_value = "127.0.0.1:8889")]
    pub web_addr: std::net::SocketAddr,
    /// How often table changes are checkpointed (changelog, store, offsets), e.g. 500ms.
    #[arg(long, env = "CTA_COMMIT_INTERVAL", default_value = "500ms", value_parser = parse_duration)]
    pub commit_interval: std::time::Duration,
    /// URL other workers use to reach this worker's API for partitions it owns (default:
    /// http://<bound --web-addr>; set it when binding 0.0.0.0 or behind NAT).
    #[arg(long, env = "CTA_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// Delete this app's local table stores before starting, so they are rebuilt from their
    /// changelogs (for a corrupt or mismatched data dir).
    #[arg(long)]
    pub reset_state: bool,
}

impl WorkerArgs {
    pub fn options(&self) -> crate::runner::WorkerOptions {
        crate::runner::WorkerOptions {
            app_id: self.app_id.clone(),
            data_dir: self.data_dir.clone(),
            web_addr: self.web_addr,
            commit_interval: self.commit_interval,
            advertise_url: self.advertise_url.clone(),
        }
    }
}

/// Flags of the simulation.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Simulated time per step.
    #[arg(long, env = "CTA_TIME_STEP", default_value = "5m", value_parser = parse_duration)]
    pub time_step: std::time::Duration,
    /// Real time to sleep between steps (0 for as fast as possible).
    #[arg(long, env = "CTA_SLEEP", default_value = "5s", value_parser = parse_duration)]
    pub sleep: std::time::Duration,
    /// Stop after this many steps (default: run until Ctrl-C).
    #[arg(long, env = "CTA_STEPS")]
    pub steps: Option<u64>,
    /// Random seed; the same seed and --start give the same records.
    #[arg(long, env = "CTA_SEED")]
    pub seed: Option<u64>,
    /// Trains per line.
    #[arg(long, env = "CTA_TRAINS_PER_LINE", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=999))]
    pub trains_per_line: u16,
    /// Partitions of the topics the simulation creates.
    #[arg(long, env = "CTA_PARTITIONS", default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub partitions: i32,
    /// Simulated start time, RFC 3339 (default: now).
    #[arg(long, env = "CTA_START")]
    pub start: Option<String>,
    /// Station CSV with the columns of data/stations.csv (default: the built-in dataset).
    #[arg(long, env = "CTA_STATIONS_CSV")]
    pub stations_csv: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArgError {
    #[error("--start '{0}': not an RFC 3339 time such as 2026-11-24T08:00:00-06:00")]
    Start(String),
    #[error("--stations-csv: {0}")]
    Stations(#[from] crate::transit::stations::DatasetError),
}

impl SimArgs {
    pub fn config(&self) -> Result<crate::transit::simulation::SimConfig, ArgError> {
        let start_ms = match &self.start {
            Some(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| ArgError::Start(s.clone()))?
                .timestamp_millis(),
            None => crate::stream::now_ms(),
        };
        let seed = self.seed.unwrap_or_else(rand::random);
        tracing::info!(seed, "simulation seed (pass --seed to repeat this run)");
        Ok(crate::transit::simulation::SimConfig {
            time_step: self.time_step,
            sleep: self.sleep,
            steps: self.steps,
            seed,
            trains_per_line: self.trains_per_line as usize,
            partitions: self.partitions,
            start_ms,
            publish_stations: true,
        })
    }

    pub fn dataset(&self) -> Result<crate::transit::stations::Dataset, ArgError> {
        Ok(match &self.stations_csv {
            Some(p) => crate::transit::stations::Dataset::load(p)?,
            None => crate::transit::stations::Dataset::builtin(),
        })
    }
}
