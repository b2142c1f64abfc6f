//! The stream worker's flags, turned into the library's [`WorkerOptions`].

use super::parse_duration;
use cta_stream::runner::{WorkerIntegrations, WorkerOptions};

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
    /// Also checkpoint as soon as the worker has caught up (nothing to read for 100 ms after
    /// records were processed), so a burst is durable at once rather than up to
    /// --commit-interval later; at most ten checkpoints a second. false: only the interval (and
    /// every 1,000,000 records).
    #[arg(long, env = "CTA_CHECKPOINT_WHEN_IDLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub checkpoint_when_idle: bool,
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

impl From<ProcessingGuarantee> for cta_stream::stream::Guarantee {
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

impl From<TurnstileKeysArg> for cta_stream::transit::TurnstileKeys {
    fn from(k: TurnstileKeysArg) -> Self {
        match k {
            TurnstileKeysArg::Station => Self::Station,
            TurnstileKeysArg::Other => Self::Other,
        }
    }
}

impl WorkerArgs {
    pub fn options(&self) -> WorkerOptions {
        WorkerOptions {
            app_id: self.app_id.clone(),
            data_dir: self.data_dir.clone(),
            web_addr: self.web_addr,
            commit_interval: self.commit_interval,
            checkpoint_when_idle: self.checkpoint_when_idle,
            advertise_url: self.advertise_url.clone(),
            guarantee: self.processing_guarantee.into(),
            standby_replicas: self.standby_replicas,
            turnstile_keys: self.turnstile_keys.into(),
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
    pub fn options(&self) -> WorkerIntegrations {
        WorkerIntegrations {
            ksql_url: self.ksql_url.clone(),
            ksql_auth: self.ksql_auth.clone(),
        }
    }
}
