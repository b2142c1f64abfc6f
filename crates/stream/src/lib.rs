//! A small Faust-style stream-processing core: agents consume topics, tables keep partitioned
//! state in RocksDB with a Kafka changelog, and one checkpoint procedure commits both. It knows
//! nothing about the application built on it; being its own crate, the compiler keeps it so.
//!
//! # Public surface
//! - [`App`] and [`AppConfig`] (with [`KafkaConfig`]): declare tables and agents, run them in
//!   one consumer group until a [`Shutdown`] fires.
//! - [`Agent`]: a per-topic record handler; [`Record`] is what it receives.
//! - [`Table`] (declared by a [`TableSpec`]), [`WindowedTable`] with [`Windows`] and
//!   [`WindowKey`]: partitioned tables with changelogs and exact recovery.
//! - [`codec`]: JSON and Confluent-framed Avro ([`AvroDecoder`], [`AvroEncoder`],
//!   [`RegistryConfig`]).
//! - [`StreamError`] with one classification ([`ErrorKind`] and [`RetryHint`]), [`Result`].
//! - [`Status`] / [`StatusSnapshot`]: counters and recovery state for a web layer;
//!   [`Directory`]: which worker owns which partition, for routed queries.
//! - [`memory`]: the process's malloc arena cap, for binaries that run a worker.
//! - [`kafka`], [`names`], [`table`]: thin client helpers, reserved names and store access for
//!   applications that create their own topics, producers or read stores offline.
//! - Short declarations on [`App`]: `agent_fn(topic, |record| ...)` ([`FnAgent`]),
//!   `table_on(name, topic)`, `windowed_table_on(..)`; reads by key from anywhere
//!   ([`Table::value`], partition by Kafka's partitioner: [`table::route`]).
//! - Re-keying through a repartition topic (Faust's `group_by`): `app.group_by(name, topic,
//!   key_fn)` returns a [`Repartition`]; declare the downstream tables on its topic and its
//!   agents with [`Repartition::agent`] (each upstream record applied once, see `repartition`).
//! - [`view`]: web views of tables (list, one key), routed to the owning worker through the
//!   [`directory`] (its [`directory::Advert`]s).
//! - [`testing`]: a test driver that runs an app's agents and tables without a broker.
//! - [`embedded`]: an in-process mock Kafka for the examples (`examples/`).
//! - [`global`]: `App::global_table(&table)`, a copy of a whole table on every worker,
//!   followed from its changelog (Faust's GlobalTable, Kafka Streams' GlobalKTable).
//! - `join`: `App::join(topic, &table, key, f)`, a stream-table (left) join with a
//!   co-partitioned [`Table`] or a [`GlobalTable`] ([`JoinTable`]).
//! - [`session`]: `App::session_table(spec, sessions)`, session windows per key (records at
//!   most a gap apart form one session; a record bridging two merges them).
//! - [`timer`]: `App::timer(topic, schedule, callback)` runs a callback per owned partition
//!   on a wall-clock interval or as stream time passes ([`Schedule`], [`Tick`]), on the poll
//!   thread, its table writes checkpointed like an agent's.
//! - [`emit`]: `App::emit_final(&windowed_table, topic, encode)` writes each window once when
//!   it closes (after its grace), exactly once under the exactly-once guarantee.
//!
//! # Layout (private modules)
//! - `app`: the builder and the worker's runtime (poll loop, rebalances, dead letters).
//! - `agent`, `record`: record handlers and what they see.
//! - `table/`: stores, write caches, changelog recovery; `window`: windowed tables.
//! - `checkpoint`: the single commit procedure (changelog → flush → group offsets → stores);
//!   `sink`: its producer, plain or transactional (the processing guarantee); `identity`: the
//!   transactional and static group member ids a worker keeps in its data dir.
//! - `config`: librdkafka settings in one place; `fetch`: the poll loop's batched consumption.
//! - `repartition`: `group_by`'s upstream agent, the downstream wrapper that skips records an
//!   upstream crash produced twice, the repartition topic's partition check.
//! - `directory`: partition ownership; `standby`: warm copies of other workers' partitions;
//!   `follow`: the changelog-following loop standby copies and global tables share.
//! - `sensor`: counters; `health`: whether the brokers answer; `shutdown`: the stop signal.
//!
//! Dependency rule: this crate depends on no application crate (see `cargo tree`).

mod agent;
mod app;
mod checkpoint;
pub mod codec;
mod config;
mod declare;
pub mod directory;
pub mod embedded;
pub mod emit;
mod error;
mod fetch;
mod follow;
pub mod global;
mod health;
mod identity;
mod join;
pub mod kafka;
pub mod memory;
pub mod names;
mod record;
mod repartition;
mod sensor;
pub mod session;
mod shutdown;
mod sink;
mod standby;
pub mod table;
pub mod testing;
pub mod timer;
pub mod view;
mod window;

pub use agent::Agent;
pub use app::{App, AppConfig};
pub use codec::{AvroDecoder, AvroEncoder, RegistryConfig};
pub use config::KafkaConfig;
pub use declare::FnAgent;
pub use directory::Directory;
pub use error::{DecodeError, ErrorKind, Result, RetryHint, StreamError};
pub use fetch::{FetchQueue, FETCH_BATCH};
pub use global::GlobalTable;
pub use join::JoinTable;
pub use record::{At, Record};
pub use repartition::{Repartition, Through};
pub use sensor::{Status, StatusSnapshot};
pub use session::{Session, SessionTable, Sessions};
pub use shutdown::{Shutdown, GRACEFUL_DEADLINE};
pub use sink::Guarantee;
pub use table::{Table, TableSpec};
pub use testing::{TestDriver, TestRecord};
pub use timer::{Schedule, Tick};
pub use view::table_view;
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
