//! The stream core: a small Faust-style framework that knows nothing about trains.
//!
//! - [`app`]: declare tables and agents, run them in one consumer group.
//! - [`agent`]: per-topic record handlers.
//! - [`table`]: RocksDB-backed partitioned tables with changelogs and recovery.
//! - [`window`]: tumbling and hopping windowed tables with grace and expiry.
//! - [`checkpoint`]: the single commit procedure (changelog → flush → store → offsets);
//!   [`sink`]: its producer, plain or transactional (the processing guarantee).
//! - [`codec`]: JSON and Confluent-framed Avro.
//! - [`config`], [`kafka`]: librdkafka settings in one place, thin client helpers;
//!   [`fetch`]: the poll loop's batched consumption.
//! - [`directory`]: which worker owns which partitions, for routed queries;
//!   [`standby`]: warm copies of other workers' partitions (standby replicas).
//! - [`sensor`]: counters and recovery state for the web layer.
//! - [`health`]: whether the brokers answer (stale data during an outage).
//! - [`names`]: reserved topic, header and metadata names.
//!
//! Dependency rule: `stream` imports nothing from `transit`, `web` or `platform`.

pub mod agent;
pub mod app;
pub mod checkpoint;
pub mod codec;
pub mod config;
pub mod directory;
pub mod error;
pub mod fetch;
pub mod health;
pub mod kafka;
pub mod names;
pub mod record;
pub mod sensor;
pub mod shutdown;
pub mod sink;
pub mod standby;
pub mod table;
pub mod window;

pub use agent::Agent;
pub use app::{App, AppConfig};
pub use codec::{AvroDecoder, AvroEncoder, RegistryConfig};
pub use config::KafkaConfig;
pub use directory::Directory;
pub use error::{DecodeError, ErrorKind, Result, StreamError};
pub use record::Record;
pub use sensor::{Status, StatusSnapshot};
pub use shutdown::Shutdown;
pub use table::{Table, TableSpec};
pub use window::{WindowKey, WindowedTable, Windows};

/// The hash map of the per-record paths (table write caches, source positions): foldhash's
/// seeded hasher is several times cheaper than SipHash for short keys and still randomised per
/// process, so keys read from topics cannot be chosen to collide.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
