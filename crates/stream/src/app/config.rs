//! An app's settings: identity, Kafka, where stores live, how often to checkpoint, dead
//! letters, the directory advert, the processing guarantee and standby copies. What each
//! librdkafka key is set to lives in [`crate::config`], not here.

use crate::config::KafkaConfig;
use crate::sink::Guarantee;
use std::path::PathBuf;
use std::time::Duration;

/// Settings of an app.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Consumer group id and namespace of stores and changelog topics.
    pub app_id: String,
    pub kafka: KafkaConfig,
    pub data_dir: PathBuf,
    /// Checkpoint at least this often while records flow.
    pub commit_interval: Duration,
    /// ... or after this many records, whichever comes first (1,000,000 by default). A
    /// checkpoint pauses the agents while it flushes the changelog, commits the offsets and
    /// writes the stores (about 6–20 ms on the embedded broker), so a lower count costs
    /// throughput: at 100,000 a 1M-record backlog took ten checkpoints and the worker about
    /// 15 % longer (BENCHMARKS.md). The write caches hold one entry per key changed since
    /// the last checkpoint, so with keys that rarely repeat a lower count also bounds their
    /// memory.
    pub commit_every: u64,
    /// ... or as soon as the worker has caught up: when nothing arrives for one poll wait
    /// (100 ms) after records were processed (default). So a backlog is durable about 100 ms
    /// after its last record rather than up to `commit_interval` later, at most ten
    /// checkpoints a second however records trickle in. Off: only the interval and the count.
    pub checkpoint_when_idle: bool,
    /// Send undecodable records to `<topic>.dlq`.
    pub dead_letter: bool,
    /// Where this worker answers queries (e.g. `http://10.0.0.5:8889`). When set, the worker
    /// announces it with its partitions in the app's directory topic, and learns the others'.
    pub advertise_url: Option<String>,
    /// At least once (default), or exactly once with Kafka transactions ([`crate::sink::Sink`]).
    pub guarantee: Guarantee,
    /// Warm copies kept of each partition on other workers ([`crate::standby::Standby`]); needs the
    /// directory (`advertise_url`).
    pub standby_replicas: u32,
    /// Run the agents on a thread of their own while the poll thread drains the next batch
    /// (default); off, they run on the poll thread between drains.
    pub agent_thread: bool,
}

impl AppConfig {
    pub fn new(
        app_id: impl Into<String>,
        kafka: KafkaConfig,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            app_id: app_id.into(),
            kafka,
            data_dir: data_dir.into(),
            commit_interval: Duration::from_millis(500),
            commit_every: 1_000_000,
            checkpoint_when_idle: true,
            dead_letter: true,
            advertise_url: None,
            guarantee: Guarantee::default(),
            standby_replicas: 0,
            agent_thread: true,
        }
    }
}
