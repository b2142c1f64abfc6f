//! The simulation's flags, turned into the library's [`SimConfig`] and [`SimIntegrations`].

use super::parse_duration;
use cta_stream::runner::SimIntegrations;
use cta_stream::transit::simulation::SimConfig;
use cta_stream::transit::stations::{Dataset, DatasetError};

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
    Stations(#[from] DatasetError),
}

impl SimArgs {
    pub fn config(&self) -> Result<SimConfig, ArgError> {
        let start_ms = match &self.start {
            Some(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| ArgError::Start(s.clone()))?
                .timestamp_millis(),
            None => cta_stream::stream::now_ms(),
        };
        let seed = self.seed.unwrap_or_else(rand::random);
        tracing::info!(seed, "simulation seed (pass --seed to repeat this run)");
        Ok(SimConfig {
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

    pub fn dataset(&self) -> Result<Dataset, ArgError> {
        Ok(match &self.stations_csv {
            Some(p) => Dataset::load(p)?,
            None => Dataset::builtin(),
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
    pub fn options(&self) -> SimIntegrations {
        SimIntegrations {
            connect: self.connect_url.as_ref().map(|url| {
                cta_stream::integrations::connect::JdbcSource {
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
