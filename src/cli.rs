//! Command-line pieces shared by the binaries: connection flags with env-var fallbacks and
//! discovery of the embedded platform, and logging set-up.

use crate::platform;
use crate::stream::{KafkaConfig, RegistryConfig};
use std::path::PathBuf;

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

    /// PEM file of a CA to trust for the Schema Registry's TLS (besides the system roots).
    #[arg(long, env = "CTA_SCHEMA_REGISTRY_CA", value_name = "FILE")]
    pub schema_registry_ca: Option<PathBuf>,

    #[command(flatten)]
    pub properties: KafkaPropertyArgs,
}

/// librdkafka properties: SASL_SSL, SCRAM, mTLS and anything else librdkafka knows.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KafkaPropertyArgs {
    /// Extra librdkafka property, repeatable: -X security.protocol=SASL_SSL -X sasl.mechanism=PLAIN
    #[arg(short = 'X', long = "kafka-property", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub kafka_properties: Vec<(String, String)>,

    /// librdkafka properties in Java properties format (key=value lines, # comments), e.g. the
    /// client.properties Confluent Cloud gives out. -X wins over the file.
    #[arg(long, env = "CTA_KAFKA_PROPERTIES_FILE", value_name = "FILE")]
    pub kafka_properties_file: Option<PathBuf>,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

/// Configuration errors: the binaries exit with code 2 on these.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("--brokers is set but --schema-registry-url is not; give both (or neither, to use the embedded platform)")]
    MissingRegistry,
    #[error("--schema-registry-url is set but --brokers is not; give both (or neither, to use the embedded platform)")]
    MissingBrokers,
    #[error("no --brokers given and no embedded platform is running (looked for {0}); start one with `cargo run --release --bin cta -- platform`, or run everything with `cargo run --release`")]
    NoPlatform(String),
    #[error("--kafka-properties-file {path}: {reason}")]
    PropertiesFile { path: String, reason: String },
    /// `origin` is `-X` or `--kafka-properties-file FILE line N`; the value is never shown.
    #[error("{origin} {key}: {reason}")]
    KafkaProperty {
        origin: String,
        key: String,
        reason: String,
    },
    #[error("Kafka client properties (-X / --kafka-properties-file) do not work together: {0}")]
    KafkaClient(String),
    #[error("--schema-registry-ca {path}: {reason}")]
    RegistryCa { path: String, reason: String },
    #[error("--schema-registry-url {url}: cannot reach the schema registry: {reason}")]
    RegistryUnreachable { url: String, reason: String },
    #[error("--schema-registry-url {url}: the schema registry refused access (HTTP {status}); check --schema-registry-auth")]
    RegistryAuth { url: String, status: u16 },
    #[error(
        "--schema-registry-url {url}: not a schema registry? GET /subjects answered HTTP {status}"
    )]
    RegistryStatus { url: String, status: u16 },
}

impl KafkaPropertyArgs {
    /// The properties in effect, file first then -X, each checked by librdkafka itself.
    pub fn resolve(&self) -> Result<Vec<(String, String)>, ConnectError> {
        let mut out = Vec::new();
        if let Some(path) = &self.kafka_properties_file {
            let name = path.display().to_string();
            let file = std::fs::File::open(path).map_err(|e| ConnectError::PropertiesFile {
                path: name.clone(),
                reason: e.to_string(),
            })?;
            for line in java_properties::PropertiesIter::new(std::io::BufReader::new(file)) {
                let line = line.map_err(|e| ConnectError::PropertiesFile {
                    path: name.clone(),
                    reason: crate::integrations::flatten(&e.to_string()),
                })?;
                let n = line.line_number();
                if let java_properties::LineContent::KVPair(k, v) = line.consume_content() {
                    let origin = format!("--kafka-properties-file {name} line {n}");
                    if k == "sasl.jaas.config" {
                        // The Java client's form of the SASL credentials.
                        for (k, v) in jaas_credentials(&v).ok_or_else(|| {
                            ConnectError::KafkaProperty {
                                origin: origin.clone(),
                                key: k.clone(),
                                reason: "expected a login module with username='…' password='…'; or give sasl.username and sasl.password".into(),
                            }
                        })? {
                            out.push((k.to_string(), v));
                        }
                        continue;
                    }
                    check_property(&origin, &k, &v)?;
                    out.push((k, v));
                }
            }
        }
        for (k, v) in &self.kafka_properties {
            check_property("-X", k, v)?;
            out.push((k.clone(), v.clone()));
        }
        Ok(out)
    }
}

/// `sasl.username` / `sasl.password` from a Java `sasl.jaas.config` value such as
/// `org.apache.kafka.common.security.plain.PlainLoginModule required username='K' password='S';`.
fn jaas_credentials(value: &str) -> Option<[(&'static str, String); 2]> {
    let option = |name: &str| -> Option<String> {
        let start = value.find(&format!("{name}="))? + name.len() + 1;
        let rest = &value[start..];
        let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let body = &rest[1..];
        Some(body[..body.find(quote)?].to_string())
    };
    Some([
        ("sasl.username", option("username")?),
        ("sasl.password", option("password")?),
    ])
}

/// Sets one property on an empty librdkafka configuration: unknown keys and bad values fail.
fn check_property(origin: &str, key: &str, value: &str) -> Result<(), ConnectError> {
    // Confluent Cloud's client.properties mixes in the Java registry client's keys.
    if key.starts_with("schema.registry.") || key.starts_with("basic.auth.") {
        return Err(ConnectError::KafkaProperty {
            origin: origin.to_string(),
            key: key.to_string(),
            reason: "a Schema Registry setting, not a Kafka client one: use --schema-registry-url, --schema-registry-auth".into(),
        });
    }
    let mut c = rdkafka::ClientConfig::new();
    c.set(key, value);
    match c.create_native_config() {
        Ok(_) => Ok(()),
        Err(e) => Err(ConnectError::KafkaProperty {
            origin: origin.to_string(),
            key: key.to_string(),
            reason: kafka_reason(&e),
        }),
    }
}

/// librdkafka's reason, without the value (it may be a password).
fn kafka_reason(e: &rdkafka::error::KafkaError) -> String {
    match e {
        rdkafka::error::KafkaError::ClientConfig(_, desc, _, _) => {
            crate::integrations::flatten(desc)
        }
        rdkafka::error::KafkaError::ClientCreation(desc) => crate::integrations::flatten(desc),
        other => crate::integrations::flatten(&other.to_string()),
    }
}

/// Creates (and drops) each kind of client with the properties it takes, which runs
/// librdkafka's checks across properties (SASL mechanism, SSL files, a session timeout above
/// max.poll.interval.ms, ...) before anything else starts. Nothing joins a group.
pub fn check_kafka_client(kafka: &KafkaConfig) -> Result<(), ConnectError> {
    if kafka.extra.is_empty() {
        return Ok(());
    }
    let reason = |e: rdkafka::error::KafkaError| ConnectError::KafkaClient(kafka_reason(&e));
    kafka
        .producer()
        .create::<rdkafka::producer::BaseProducer>()
        .map_err(reason)?;
    for consumer in [
        kafka.group_consumer("cta-stream-config-check"),
        kafka.restore_consumer("cta-stream-config-check"),
    ] {
        consumer
            .create::<rdkafka::consumer::BaseConsumer>()
            .map_err(reason)?;
    }
    Ok(())
}

/// Asks the registry for its subjects: fails with the URL named when it cannot be reached, and
/// with the auth flag named when it refuses the credentials.
pub async fn check_registry(registry: &RegistryConfig) -> Result<(), ConnectError> {
    let url = registry.url.clone();
    let unreachable = |reason: String| ConnectError::RegistryUnreachable {
        url: url.clone(),
        reason,
    };
    let client = registry
        .http_client_builder()
        .map_err(|e| unreachable(e.to_string()))?
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| unreachable(crate::integrations::one_line(&e)))?;
    let mut req = client.get(crate::integrations::join(&registry.url, "subjects"));
    if let Some(auth) = &registry.basic_auth {
        let (user, pass) = auth.split_once(':').unwrap_or((auth.as_str(), ""));
        req = req.basic_auth(user, Some(pass));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| unreachable(crate::integrations::one_line(&e)))?;
    let status = resp.status().as_u16();
    match status {
        200..=299 => Ok(()),
        401 | 403 => Err(ConnectError::RegistryAuth { url, status }),
        _ => Err(ConnectError::RegistryStatus { url, status }),
    }
}

impl ConnectArgs {
    /// Kafka and registry settings from the flags (or the embedded platform's discovery file),
    /// with the librdkafka properties and the CA file checked.
    pub fn resolve(&self) -> Result<(KafkaConfig, RegistryConfig), ConnectError> {
        let mut embedded = false;
        let (brokers, url) = match (&self.brokers, &self.schema_registry_url) {
            (Some(b), Some(u)) => (b.clone(), u.clone()),
            (Some(_), None) => return Err(ConnectError::MissingRegistry),
            (None, Some(_)) => return Err(ConnectError::MissingBrokers),
            (None, None) => {
                let found = platform::discover().ok_or_else(|| {
                    ConnectError::NoPlatform(platform::discovery_path().display().to_string())
                })?;
                tracing::info!(brokers = %found.brokers, registry = %found.schema_registry_url, "using the embedded platform");
                embedded = true;
                (found.brokers, found.schema_registry_url)
            }
        };
        let mut kafka = KafkaConfig::new(brokers);
        kafka.extra = self.properties.resolve()?;
        if embedded {
            kafka.prefer_consumer_group_protocol();
            kafka.topics_created_on_first_use();
        }
        let mut registry = RegistryConfig::new(url);
        registry.basic_auth = self.schema_registry_auth.clone();
        if let Some(path) = &self.schema_registry_ca {
            let ca_err = |reason: String| ConnectError::RegistryCa {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            reqwest::Certificate::from_pem(&pem).map_err(|e| {
                ca_err(format!(
                    "not a PEM certificate: {}",
                    crate::integrations::one_line(&e)
                ))
            })?;
            registry.ca_file = Some(path.clone());
        }
        Ok((kafka, registry))
    }

    /// [`ConnectArgs::resolve`], then a librdkafka client built with every property and one
    /// request to the registry: configuration mistakes surface at start, each naming its flag.
    pub async fn connect(&self) -> Result<(KafkaConfig, RegistryConfig), ConnectError> {
        let (kafka, registry) = self.resolve()?;
        check_kafka_client(&kafka)?;
        check_registry(&registry).await?;
        Ok((kafka, registry))
    }
}

/// Whether an error (or one of its causes) is a configuration mistake the user fixes in the
/// flags: the binaries exit with code 2 for those, 1 for everything else.
pub fn is_config_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<ConnectError>() || e.is::<ArgError>() {
            return true;
        }
        if let Some(e) = e.downcast_ref::<crate::runner::RunError>() {
            if e.is_config() {
                return true;
            }
        }
        if let Some(e) = e.downcast_ref::<crate::stream::StreamError>() {
            if e.is_config() {
                return true;
            }
        }
        cur = e.source();
    }
    false
}

/// Exit code for an error: 2 for configuration mistakes, 1 otherwise.
pub fn exit_code(err: &(dyn std::error::Error + 'static)) -> u8 {
    if is_config_error(err) {
        2
    } else {
        1
    }
}

/// A binary's outcome as its exit status: 0, or the error on one line and [`exit_code`].
pub fn report(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Each cause once: many errors name their cause in their own text as well.
            eprintln!("error: {}", crate::integrations::one_line(e.as_ref()));
            std::process::ExitCode::from(exit_code(e.as_ref()))
        }
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

/// A duration flag: whole seconds (`5`) or with a unit (`300ms`, `5s`, `5m`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
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
    /// at-least-once: tables are exact after any crash (offsets are stored with the data), but
    /// changelog and dead-letter readers may see a checkpoint's records twice after a crash.
    /// exactly-once: those records and the consumed offsets commit in one Kafka transaction
    /// per checkpoint, so `read_committed` readers see each once (needs a broker with
    /// transactions; a failed transaction stops the worker, a restart resumes exactly).
    #[arg(long, env = "CTA_PROCESSING_GUARANTEE", value_enum, default_value_t = ProcessingGuarantee::AtLeastOnce)]
    pub processing_guarantee: ProcessingGuarantee,
    /// How the turnstile topic's records are keyed. station: by station id, as this project's
    /// simulation writes them (Avro {station_id}); each station's entries sit in one partition
    /// and are counted where they are read. other: by anything else, e.g. the original CTA
    /// project's producers (Avro {timestamp}); each entry is re-keyed by its value's station id
    /// through the topic {app-id}-turnstile-by-station-repartition (same partition count as the
    /// turnstile topic) and counted from there, exactly: one more produce and consume per entry.
    #[arg(long, env = "CTA_TURNSTILE_KEYS", value_enum, default_value_t = TurnstileKeysArg::Station)]
    pub turnstile_keys: TurnstileKeysArg,
    /// Keep warm copies of this many other workers' partitions (Kafka Streams'
    /// num.standby.replicas): each copy follows its changelog, so when its owner goes the
    /// worker taking the partition over replays seconds of changelog instead of all of it.
    /// Costs disk and a changelog reader per copy; chosen among the live workers.
    #[arg(long, env = "CTA_STANDBY_REPLICAS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=16))]
    pub standby_replicas: u32,
}

/// `--processing-guarantee` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProcessingGuarantee {
    AtLeastOnce,
    ExactlyOnce,
}

impl From<ProcessingGuarantee> for crate::stream::Guarantee {
    fn from(g: ProcessingGuarantee) -> Self {
        match g {
            ProcessingGuarantee::AtLeastOnce => Self::AtLeastOnce,
            ProcessingGuarantee::ExactlyOnce => Self::ExactlyOnce,
        }
    }
}

/// `--turnstile-keys` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TurnstileKeysArg {
    Station,
    Other,
}

impl From<TurnstileKeysArg> for crate::transit::TurnstileKeys {
    fn from(k: TurnstileKeysArg) -> Self {
        match k {
            TurnstileKeysArg::Station => Self::Station,
            TurnstileKeysArg::Other => Self::Other,
        }
    }
}

impl WorkerArgs {
    pub fn options(&self) -> crate::runner::WorkerOptions {
        crate::runner::WorkerOptions {
            app_id: self.app_id.clone(),
            data_dir: self.data_dir.clone(),
            web_addr: self.web_addr,
            commit_interval: self.commit_interval,
            advertise_url: self.advertise_url.clone(),
            guarantee: self.processing_guarantee.into(),
            standby_replicas: self.standby_replicas,
            turnstile_keys: self.turnstile_keys.into(),
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

/// The simulation's links to the rest of a real stack.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SimIntegrationArgs {
    /// Kafka Connect REST URL (e.g. http://localhost:8083): register the JDBC source connector
    /// that publishes the Postgres stations table to org.chicago.cta.stations (an existing
    /// connector of that name is left alone); the simulation then publishes no station rows.
    #[arg(
        long,
        env = "CTA_CONNECT_URL",
        value_name = "URL",
        conflicts_with = "stations_from"
    )]
    pub connect_url: Option<String>,
    /// Name of the connector.
    #[arg(long, env = "CTA_CONNECTOR_NAME", default_value = "stations")]
    pub connector_name: String,
    /// JDBC URL of the stations database as Kafka Connect's workers reach it.
    #[arg(
        long,
        env = "CTA_CONNECT_JDBC_URL",
        default_value = "jdbc:postgresql://postgres:5432/cta"
    )]
    pub connect_jdbc_url: String,
    /// Database user of the connector.
    #[arg(long, env = "CTA_CONNECT_JDBC_USER", default_value = "cta_admin")]
    pub connect_jdbc_user: String,
    /// Database password of the connector.
    #[arg(long, env = "CTA_CONNECT_JDBC_PASSWORD", hide_env_values = true)]
    pub connect_jdbc_password: Option<String>,
    /// Read the station rows from this Postgres database (postgres://user:password@host:port/db,
    /// table `stations` as load_stations.sql creates it) and publish them as the JDBC source
    /// would, without Kafka Connect.
    #[arg(
        long,
        env = "CTA_STATIONS_FROM",
        value_name = "POSTGRES_URL",
        hide_env_values = true
    )]
    pub stations_from: Option<String>,
    /// Confluent REST Proxy URL (e.g. http://localhost:8082): post the weather through it
    /// (REST Proxy v2, Avro) instead of producing it directly.
    #[arg(long, env = "CTA_REST_PROXY_URL", value_name = "URL")]
    pub rest_proxy_url: Option<String>,
}

impl SimIntegrationArgs {
    pub fn options(&self) -> crate::runner::SimIntegrations {
        crate::runner::SimIntegrations {
            connect: self.connect_url.as_ref().map(|url| {
                crate::integrations::connect::JdbcSource {
                    connect_url: url.clone(),
                    name: self.connector_name.clone(),
                    jdbc_url: self.connect_jdbc_url.clone(),
                    user: self.connect_jdbc_user.clone(),
                    password: self.connect_jdbc_password.clone(),
                }
            }),
            stations_from: self.stations_from.clone(),
            rest_proxy_url: self.rest_proxy_url.clone(),
        }
    }
}

/// The worker's links to the rest of a real stack.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct WorkerIntegrationArgs {
    /// ksqlDB server URL (e.g. http://localhost:8088): submit the statements of
    /// ksql/turnstile.sql (skipping streams and tables that exist) and read TURNSTILE_SUMMARY
    /// from ksqlDB instead of counting here.
    #[arg(long, env = "CTA_KSQL_URL", value_name = "URL")]
    pub ksql_url: Option<String>,
    /// ksqlDB basic auth as user:password (Confluent Cloud: API key:secret).
    #[arg(long, env = "CTA_KSQL_AUTH", hide_env_values = true)]
    pub ksql_auth: Option<String>,
}

impl WorkerIntegrationArgs {
    pub fn options(&self) -> crate::runner::WorkerIntegrations {
        crate::runner::WorkerIntegrations {
            ksql_url: self.ksql_url.clone(),
            ksql_auth: self.ksql_auth.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_file_then_x_each_checked() {
        let dir = std::env::temp_dir().join(format!("cta-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.properties");
        std::fs::write(
            &file,
            "# comment\nsecurity.protocol = SASL_SSL\nsasl.mechanisms: PLAIN\nsasl.password=a\\\n  b\n",
        )
        .unwrap();
        let args = KafkaPropertyArgs {
            kafka_properties: vec![("sasl.mechanisms".into(), "SCRAM-SHA-512".into())],
            kafka_properties_file: Some(file.clone()),
        };
        let props = args.resolve().unwrap();
        assert_eq!(
            props,
            vec![
                ("security.protocol".to_string(), "SASL_SSL".to_string()),
                ("sasl.mechanisms".to_string(), "PLAIN".to_string()),
                ("sasl.password".to_string(), "ab".to_string()),
                ("sasl.mechanisms".to_string(), "SCRAM-SHA-512".to_string()),
            ]
        );
        std::fs::write(
            &file,
            "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username='KEY' password=\"S'CRET\";\n",
        )
        .unwrap();
        assert_eq!(
            args.resolve().unwrap()[..2],
            [
                ("sasl.username".to_string(), "KEY".to_string()),
                ("sasl.password".to_string(), "S'CRET".to_string())
            ]
        );
        std::fs::write(&file, "sasl.jaas.config=Module required;\n").unwrap();
        let err = args.resolve().unwrap_err().to_string();
        assert!(err.contains("line 1 sasl.jaas.config: expected"), "{err}");
        std::fs::write(&file, "ok.not=1\n").unwrap();
        let err = args.resolve().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "--kafka-properties-file {} line 1 ok.not: No such configuration property: \"ok.not\"",
                file.display()
            )
        );
        std::fs::write(&file, "schema.registry.url=https://x\n").unwrap();
        let err = args.resolve().unwrap_err().to_string();
        assert!(err.contains("use --schema-registry-url"), "{err}");
        let missing = KafkaPropertyArgs {
            kafka_properties: vec![],
            kafka_properties_file: Some(dir.join("nope")),
        };
        assert!(missing
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("--kafka-properties-file "));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn configuration_errors_exit_2() {
        let e = ConnectError::MissingBrokers;
        assert_eq!(exit_code(&e), 2);
        let run = crate::runner::RunError::Ksql(crate::integrations::ksql::KsqlError::Config(
            "--ksql-url 'x'".into(),
        ));
        assert_eq!(exit_code(&run), 2);
        let other =
            crate::runner::RunError::Ksql(crate::integrations::ksql::KsqlError::Unreachable {
                url: "http://k".into(),
                reason: "refused".into(),
            });
        assert_eq!(exit_code(&other), 1);
        // A consumer group the broker refuses for a configuration reason stops with exit 2
        // (librdkafka would retry it forever); a passing broker fault is left to its retries.
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        let refused = crate::stream::StreamError::group_refused(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::InvalidSessionTimeout,
        ))
        .expect("invalid session timeout is not retried");
        assert!(
            refused.to_string().contains("session.timeout.ms"),
            "{refused}"
        );
        assert_eq!(exit_code(&crate::runner::RunError::Stream(refused)), 2);
        assert!(
            crate::stream::StreamError::group_refused(&KafkaError::MessageConsumption(
                RDKafkaErrorCode::BrokerTransportFailure
            ))
            .is_none()
        );
    }
}
