//! A test driver without a broker (Kafka Streams' `TopologyTestDriver`, Faust's
//! `agent.test_context()`): the app's real agents and tables, on RocksDB in a temporary
//! directory, fed records by the test instead of a consumer.
//!
//! ```
//! # use cta_stream_core::{App, testing::{TestDriver, TestRecord}};
//! let mut app = App::new(TestDriver::config("counts"));
//! let counts = app.table_on::<String, u64>("counts", "words");
//! let t = counts.clone();
//! app.agent_fn("words", move |r| t.update(r, r.key_str()?.to_string(), |n| n.unwrap_or(0) + 1));
//! let mut driver = TestDriver::new(app)?;
//! driver.pipe(TestRecord::new("words").key("hi"))?;
//! assert_eq!(counts.value(&"hi".to_string())?, Some(1));
//! # Ok::<(), cta_stream_core::StreamError>(())
//! ```
//!
//! What it models: one worker owning every partition of every source topic; offsets per
//! partition; repartition topics (`group_by`), whose records are delivered and processed as
//! soon as the upstream agent re-keys them; the checkpoint (changelog records with the source-offset header, then the store
//! written with the offsets) every `commit_every` records or `commit_interval` of driver time,
//! or on [`TestDriver::checkpoint`] (not once caught up, as a running worker also does: the
//! driver is caught up after every record; call `checkpoint` for that); dead letters for data errors; a crash
//! ([`TestDriver::crash`]) that loses the write caches and unflushed outputs, keeps the stores,
//! and re-reads the source from the offsets the stores hold, as a restarted worker does.
//!
//! What it does not: Kafka itself (rebalances, other workers, transactions, the changelog
//! restore of an empty store), or resetting state kept in an agent's own fields (keep state in
//! tables). Outputs are visible once a checkpoint flushed them, as `read_committed` readers see
//! them in exactly-once mode.
//!
//! Timers ([`crate::timer`]): [`TestDriver::advance_time`] moves wall-clock time and runs the
//! wall-clock timers that fall due; records piped with a timestamp move their topic's stream
//! time, and [`TestDriver::advance_stream_time`] moves it without a record; stream-time
//! timers run after each. Closed windows ([`crate::emit`]) are outputs of their topic, sent
//! by the checkpoint; a crash loses the unsent ones and the timers' schedules. Global tables'
//! copies ([`crate::global`]) take each checkpoint's flushed changelog records after it.
//!
//! For tests on a broker (the [`crate::embedded`] one or a real one), [`eventually`] waits for a
//! condition, [`unique_name`] names topics and apps, and [`read_topic`] reads a topic back.

mod broker;
mod commit;
mod read;
mod record;
mod time;

pub use broker::{eventually, eventually_blocking, read_topic, unique_name, POLL_EVERY};
pub use record::{Output, TestRecord};

use crate::agent::Agent;
use crate::app::{App, AppConfig};
use crate::config::KafkaConfig;
use crate::emit::Outbox;
use crate::error::{ErrorKind, Result, StreamError};
use crate::names;
use crate::record::Record;
use crate::repartition::RepartitionSpec;
use crate::table::route::partition_for;
use crate::table::TableRuntime;
use crate::timer::Timers;
use record::Outputs;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Where the driver's clock starts: 2026-01-01T00:00:00Z.
pub const START_MS: i64 = 1_767_225_600_000;

/// Folder-name prefix of the data dirs [`TestDriver::config`] makes (and the driver deletes).
const TEMP_PREFIX: &str = "cta-stream-driver-";

/// A record as the driver keeps it in its topic partition.
struct Stored {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: i64,
}

type TopicPartition = (String, i32);

/// Runs an app's agents and tables without Kafka.
pub struct TestDriver {
    config: AppConfig,
    agents: Vec<Box<dyn Agent>>,
    routes: HashMap<String, Vec<usize>>,
    tables: Vec<Arc<dyn TableRuntime>>,
    /// Global tables' copies ([`crate::global`]), brought up to date by each checkpoint.
    globals: Vec<Arc<dyn TableRuntime>>,
    repartitions: Vec<RepartitionSpec>,
    timers: Timers,
    outbox: Arc<Outbox>,
    partitions: HashMap<String, i32>,
    topics: HashMap<TopicPartition, Vec<Stored>>,
    /// Next offset to process per source partition.
    positions: BTreeMap<TopicPartition, i64>,
    /// Positions as of the last checkpoint (the group's committed offsets).
    committed: BTreeMap<TopicPartition, i64>,
    outputs: Outputs,
    clock_ms: i64,
    last_checkpoint_ms: i64,
    since_checkpoint: u64,
    round_robin: u64,
    dead_lettered: u64,
}

impl TestDriver {
    /// An [`AppConfig`] for a driven app: a fresh temporary data dir (deleted with the driver)
    /// and a broker address nothing connects to.
    pub fn config(app_id: &str) -> AppConfig {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "{TEMP_PREFIX}{}-{n}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        AppConfig::new(app_id, KafkaConfig::new("test-driver.invalid:9092"), dir)
    }

    /// Drives `app` with one partition per topic.
    pub fn new(app: App) -> Result<Self> {
        Self::with_partitions(app, &[])
    }

    /// Drives `app`; the topics named in `partitions` have that many partitions, the others
    /// one. Every table partition is opened (and its store read) at once.
    pub fn with_partitions(app: App, partitions: &[(&str, i32)]) -> Result<Self> {
        let App {
            config,
            agents,
            tables,
            globals,
            repartitions,
            timers,
            outbox,
            outputs,
            ..
        } = app;
        let mut routes: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, a) in agents.iter().enumerate() {
            routes.entry(a.topic().to_string()).or_default().push(i);
        }
        let mut counts: HashMap<String, i32> = partitions
            .iter()
            .map(|(t, n)| (t.to_string(), (*n).max(1)))
            .collect();
        // A repartition topic has its source's count unless one was chosen.
        for r in &repartitions {
            let n = r
                .partitions
                .unwrap_or_else(|| counts.get(&r.source_topic).copied().unwrap_or(1));
            counts.insert(r.topic.clone(), n);
        }
        for topic in routes
            .keys()
            .map(String::as_str)
            .chain(tables.iter().map(|t| t.source_topic()))
        {
            counts.entry(topic.to_string()).or_insert(1);
        }
        for (output, source) in &outputs {
            let n = counts.get(source).copied().unwrap_or(1);
            counts.entry(output.clone()).or_insert(n);
        }
        let mut driver = Self {
            config,
            agents,
            routes,
            tables,
            globals,
            repartitions,
            timers,
            outbox,
            partitions: counts,
            topics: HashMap::new(),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            outputs: Outputs::default(),
            clock_ms: START_MS,
            last_checkpoint_ms: START_MS,
            since_checkpoint: 0,
            round_robin: 0,
            dead_lettered: 0,
        };
        driver.open_tables()?;
        // The timers see their partitions from the start (wall-clock schedules begin here).
        driver.fire_timers()?;
        Ok(driver)
    }

    /// Opens every partition of every table and positions each source partition at the offset
    /// its stores hold (the lowest when several tables read it).
    fn open_tables(&mut self) -> Result<()> {
        let mut resume: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for t in &self.tables {
            let n = self.partitions[t.source_topic()];
            for p in 0..n {
                let stored = t.open_partition(p, n)?.source.unwrap_or(0);
                let at = resume
                    .entry((t.source_topic().to_string(), p))
                    .or_insert(stored);
                *at = (*at).min(stored);
            }
        }
        self.positions = resume;
        for g in &self.globals {
            let n = self.partitions.get(g.source_topic()).copied().unwrap_or(1);
            for p in 0..n {
                g.open_partition(p, n)?;
            }
        }
        Ok(())
    }

    /// Appends `record` to its topic partition and processes it; returns its offset. An
    /// agent's error of kind Data dead-letters the record; any other is returned (the worker
    /// would stop there, its offset not processed).
    pub fn pipe(&mut self, record: TestRecord) -> Result<i64> {
        let n = self.partition_count(&record.topic);
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for(k, n),
            (None, None) => {
                self.round_robin += 1;
                (self.round_robin % n as u64) as i32
            }
        };
        if !(0..n).contains(&partition) {
            return Err(StreamError::Config(format!(
                "partition {partition} of '{}' does not exist ({n} partitions)",
                record.topic
            )));
        }
        let tp = (record.topic, partition);
        let log = self.topics.entry(tp.clone()).or_default();
        log.push(Stored {
            key: record.key,
            value: record.value,
            timestamp: record.timestamp.unwrap_or(self.clock_ms),
        });
        let offset = log.len() as i64 - 1;
        self.catch_up(&tp)?;
        self.fire_timers()?;
        Ok(offset)
    }

    /// Feeds every record of `records` in order.
    pub fn pipe_all(&mut self, records: impl IntoIterator<Item = TestRecord>) -> Result<()> {
        for r in records {
            self.pipe(r)?;
        }
        Ok(())
    }

    fn partition_count(&self, topic: &str) -> i32 {
        self.partitions.get(topic).copied().unwrap_or(1)
    }

    /// Processes the records of `tp` from its position to the end of what was fed.
    fn catch_up(&mut self, tp: &TopicPartition) -> Result<()> {
        let end = self.topics.get(tp).map_or(0, |l| l.len() as i64);
        let mut next = self.positions.get(tp).copied().unwrap_or(0);
        while next < end {
            self.process(tp, next)?;
            self.deliver_repartitioned()?;
            next += 1;
            self.positions.insert(tp.clone(), next);
            self.since_checkpoint += 1;
            if self.since_checkpoint >= self.config.commit_every {
                self.checkpoint()?;
            }
        }
        Ok(())
    }

    fn process(&mut self, (topic, partition): &TopicPartition, offset: i64) -> Result<()> {
        let Some(agents) = self.routes.get(topic) else {
            return Ok(());
        };
        let stored = &self.topics[&(topic.clone(), *partition)][offset as usize];
        self.timers.observe(topic, stored.timestamp);
        let record = Record {
            topic,
            partition: *partition,
            offset,
            timestamp: Some(stored.timestamp),
            key: stored.key.as_deref(),
            payload: stored.value.as_deref(),
        };
        for &i in agents {
            let Err(e) = self.agents[i].process(&record) else {
                continue;
            };
            if e.kind() != ErrorKind::Data {
                return Err(e);
            }
            self.dead_lettered += 1;
            if self.config.dead_letter {
                let headers = [
                    (names::HEADER_DLQ_ERROR, e.to_string()),
                    (names::HEADER_DLQ_TOPIC, topic.clone()),
                    (names::HEADER_DLQ_PARTITION, partition.to_string()),
                    (names::HEADER_DLQ_OFFSET, offset.to_string()),
                ];
                self.outputs.send(
                    &names::dlq_topic(topic),
                    *partition,
                    stored.key.clone(),
                    stored.value.clone(),
                    headers
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v.into_bytes()))
                        .collect(),
                );
            }
        }
        // Each record is a batch of its own here: what an agent gathered is applied at once.
        for &i in agents {
            self.agents[i].end_batch()?;
        }
        Ok(())
    }

    /// Appends the records `group_by` agents re-keyed to their repartition topic partitions
    /// (Kafka's default partitioner on the new key) and processes them at once: delivered
    /// before the upstream offsets are committed, as a worker's producer may, so a crash then
    /// makes the upstream produce them again.
    fn deliver_repartitioned(&mut self) -> Result<()> {
        for i in 0..self.repartitions.len() {
            let topic = self.repartitions[i].topic.clone();
            let n = self.partition_count(&topic);
            for out in self.repartitions[i].outbox.take() {
                let tp = (topic.clone(), partition_for(&out.key, n));
                self.topics.entry(tp.clone()).or_default().push(Stored {
                    key: Some(out.key),
                    value: Some(out.value),
                    timestamp: out.timestamp.unwrap_or(self.clock_ms),
                });
                self.catch_up(&tp)?;
            }
        }
        Ok(())
    }
}

impl Drop for TestDriver {
    fn drop(&mut self) {
        for t in &self.tables {
            for p in t.open_partitions() {
                t.close_partition(p);
            }
        }
        let dir = &self.config.data_dir;
        let ours = dir.parent() == Some(std::env::temp_dir().as_path())
            && dir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(TEMP_PREFIX));
        if ours {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod repartition_tests;
#[cfg(test)]
mod session_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod timer_tests;
