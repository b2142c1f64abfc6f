//! The app: declares topics, tables and agents, then runs them in one consumer group.
//!
//! Runtime shape (Faust's conductor): one group consumer per worker, polled on a dedicated
//! thread; each record is routed by topic to its agents; a checkpoint
//! ([`crate::checkpoint`]) runs every `commit_interval` or `commit_every` records. On
//! assignment, each table partition is restored ([`crate::table::recovery`]) before
//! its source partition is fetched, and the source resumes at the offset stored with the data.

use crate::agent::Agent;
use crate::checkpoint::checkpoint;
use crate::config::KafkaConfig;
use crate::directory::{directory_topic, Directory};
use crate::error::{ErrorKind, Result, StreamError};
use crate::fetch::{FetchHandle, FetchQueue, FetchedMessage};
use crate::kafka::{
    committed_offsets, ensure_topics_from, flush, partition_count, send_blocking, tracked_producer,
    TopicSpec, TrackedProducer,
};
use crate::names;
use crate::record::Positions;
use crate::record::Record;
use crate::sensor::Status;
use crate::shutdown::Shutdown;
use crate::sink::{Guarantee, Sink};
use crate::standby::Standby;
use crate::table::recovery::{parallel_map, Replay, Restorer};
use crate::table::{Table, TableKey, TableRuntime, TableSpec, TableValue};
use crate::window::{WindowedTable, Windows};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Records taken from the fetch queue at a time (fewer when `commit_every` is smaller).
const FETCH_BATCH: usize = 1024;

/// Settings of an app.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Consumer group id and namespace of stores and changelog topics.
    pub app_id: String,
    pub kafka: KafkaConfig,
    pub data_dir: PathBuf,
    /// Checkpoint at least this often while records flow.
    pub commit_interval: Duration,
    /// ... or after this many records, whichever comes first.
    pub commit_every: u64,
    /// Send undecodable records to `<topic>.dlq`.
    pub dead_letter: bool,
    /// Where this worker answers queries (e.g. `http://10.0.0.5:8889`). When set, the worker
    /// announces it with its partitions in the app's directory topic, and learns the others'.
    pub advertise_url: Option<String>,
    /// At least once (default), or exactly once with Kafka transactions ([`Sink`]).
    pub guarantee: Guarantee,
    /// Warm copies kept of each partition on other workers ([`Standby`]); needs the
    /// directory (`advertise_url`).
    pub standby_replicas: u32,
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
            commit_every: 100_000,
            dead_letter: true,
            advertise_url: None,
            guarantee: Guarantee::default(),
            standby_replicas: 0,
        }
    }
}

pub struct App {
    config: AppConfig,
    directory: Option<Directory>,
    agents: Vec<Box<dyn Agent>>,
    tables: Vec<Arc<dyn TableRuntime>>,
    status: Arc<Status>,
}

impl App {
    pub fn new(config: AppConfig) -> Self {
        Self {
            directory: config.advertise_url.as_deref().map(Directory::new),
            config,
            agents: Vec::new(),
            tables: Vec::new(),
            status: Arc::default(),
        }
    }

    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// Declares a table; the returned handle is for agents (writes) and queries (reads).
    pub fn table<K: TableKey, V: TableValue>(&mut self, spec: TableSpec) -> Table<K, V> {
        let t = Table::new(&self.config.app_id, &self.config.data_dir, spec);
        self.tables.push(t.runtime());
        t
    }

    /// Declares a windowed table (and the small table keeping its stream time) on `spec`'s
    /// source topic.
    pub fn windowed_table<K: TableKey, V: TableValue>(
        &mut self,
        spec: TableSpec,
        windows: Windows,
    ) -> WindowedTable<K, V> {
        let time_spec = TableSpec {
            name: format!("{}-stream-time", spec.name),
            source_topic: spec.source_topic.clone(),
            changelog_topic: None,
        };
        let table = self.table(spec);
        let time = self.table(time_spec);
        WindowedTable::new(table, time, windows)
    }

    pub fn agent(&mut self, agent: impl Agent + 'static) {
        self.agents.push(Box::new(agent));
    }

    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    /// The worker directory, when `advertise_url` is set.
    pub fn directory(&self) -> Option<Directory> {
        self.directory.clone()
    }

    /// Source topics, in declaration order without duplicates.
    pub fn source_topics(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.agents
            .iter()
            .map(|a| a.topic().to_string())
            .filter(|t| seen.insert(t.clone()))
            .collect()
    }

    /// Runs until `shutdown`; returns after the final checkpoint.
    pub async fn run(self, shutdown: Shutdown) -> Result<()> {
        let pairs: Vec<(String, String)> = self
            .tables
            .iter()
            .map(|t| {
                (
                    t.changelog_topic().to_string(),
                    t.source_topic().to_string(),
                )
            })
            .collect();
        prepare_topics(
            &self.config.kafka,
            &self.config.app_id,
            &pairs,
            self.directory.is_some(),
        )
        .await?;
        let handle = tokio::task::spawn_blocking(move || self.run_blocking(shutdown));
        handle
            .await
            .map_err(|e| StreamError::Config(format!("worker thread failed: {e}")))?
    }

    fn run_blocking(mut self, shutdown: Shutdown) -> Result<()> {
        let sink = Sink::new(
            &self.config.kafka,
            self.config.guarantee,
            &self.config.app_id,
            &self.config.data_dir,
        )?;
        // Directory adverts are not part of any transaction.
        let adverts = match (&sink, &self.directory) {
            (Sink::Transactional { .. }, Some(_)) => Some(tracked_producer(&self.config.kafka)?),
            _ => None,
        };
        let restorer = Restorer::new(&self.config.kafka, &self.config.app_id)?;
        let topics = self.source_topics();
        let standby = match (self.config.standby_replicas, &self.directory) {
            (0, _) => None,
            (n, Some(d)) => Some(Arc::new(Standby::start(
                &self.config.kafka,
                &self.config.app_id,
                &self.tables,
                d.clone(),
                n,
                shutdown.clone(),
            )?)),
            (n, None) => {
                tracing::warn!(
                    standby_replicas = n,
                    "standby replicas need the worker directory (an advertised query URL); none kept"
                );
                None
            }
        };
        let engine = Engine {
            app_id: self.config.app_id.clone(),
            tables: self.tables.clone(),
            sink,
            adverts,
            restorer,
            positions: Positions::default(),
            status: self.status.clone(),
            partition_counts: HashMap::new(),
            fatal: None,
            owned: Vec::new(),
            directory: self.directory.clone(),
            standby: standby.clone(),
        };
        let follower = match &self.directory {
            Some(d) => Some(d.follow(&self.config.kafka, &self.config.app_id, shutdown.clone())?),
            None => None,
        };
        let context = ConductorContext {
            engine: Mutex::new(engine),
            failed: AtomicBool::new(false),
            fetch: OnceLock::new(),
            incremental: self.config.kafka.incremental_rebalancing(),
        };
        let mut consumer: BaseConsumer<ConductorContext> = self
            .config
            .kafka
            .group_consumer(&self.config.app_id)
            .create_with_context(context)
            .map_err(StreamError::kafka("create consumer"))?;
        // Records come in batches from one queue every assigned partition is forwarded to;
        // an event on the consumer's own queue cuts the batch wait short.
        let batch = usize::try_from(self.config.commit_every)
            .unwrap_or(FETCH_BATCH)
            .clamp(1, FETCH_BATCH);
        let mut fetch = FetchQueue::new(&consumer, batch)?;
        let waker = fetch.handle();
        consumer.set_nonempty_callback(move || waker.wake());
        let _ = consumer.context().fetch.set(fetch.handle());
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topic_refs)
            .map_err(StreamError::kafka("subscribe"))?;
        let watch = crate::health::BrokerWatch::start(
            &self.config.kafka,
            topics.first().map(String::as_str),
            self.status.clone(),
            shutdown.clone(),
        )?;
        self.status.subscribed_now();
        tracing::info!(app_id = %self.config.app_id, topics = ?topics, "worker started");
        self.status.running.store(true, Ordering::Relaxed);

        let mut routes: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, a) in self.agents.iter().enumerate() {
            routes.entry(a.topic().to_string()).or_default().push(i);
        }
        let result = self.poll_loop(&consumer, &mut fetch, &routes, &shutdown);
        self.status.running.store(false, Ordering::Relaxed);
        // Final checkpoint, then leave the group (the revoke callback finds nothing pending).
        let final_result = match result {
            Ok(()) => consumer.context().with_engine(|e| {
                e.checkpoint(&consumer)?;
                e.withdraw()
            }),
            Err(e) => Err(e),
        };
        // The fetch queue goes before its consumer: closing the consumer serves only the
        // consumer's own queue, and a queue must not outlive the client it belongs to.
        drop(fetch);
        consumer.unsubscribe();
        close_consumer(consumer, CLOSE_TIMEOUT);
        shutdown.trigger();
        if let Some(f) = follower {
            let _ = f.join();
        }
        if let Some(s) = standby {
            s.join();
        }
        watch.join();
        tracing::info!("worker stopped");
        final_result
    }

    fn poll_loop(
        &mut self,
        consumer: &BaseConsumer<ConductorContext>,
        fetch: &mut FetchQueue,
        routes: &HashMap<String, Vec<usize>>,
        shutdown: &Shutdown,
    ) -> Result<()> {
        let mut since_commit: u64 = 0;
        let mut last_commit = coarse_now();
        let mut seen_first = false;
        let mut topics = TopicSlots::default();
        let mut progress = BatchProgress::default();
        let ctx = consumer.context();
        while !shutdown.is_triggered() {
            // The consumer's own queue: rebalances (the callback runs here), commit results,
            // errors, and the records of any partition not forwarded to the fetch queue.
            loop {
                match consumer.poll(Duration::ZERO) {
                    None => break,
                    Some(Err(e)) => {
                        if let Some(refused) = StreamError::group_refused(&e) {
                            return Err(refused);
                        }
                        tracing::warn!(error = %e, "consumer error (librdkafka retries)")
                    }
                    Some(Ok(m)) => {
                        if !seen_first {
                            self.status.first_record_seen();
                            seen_first = true;
                        }
                        let slot = topics.by_name(m.topic(), routes);
                        self.process(ctx, &m, &topics.slots[slot].agents)?;
                        progress.record(slot, m.partition(), m.offset());
                        progress.flush(ctx, &topics, &self.status)?;
                        since_commit += 1;
                    }
                }
            }
            // A rebalance callback that failed (it returns nothing through `poll`).
            if ctx.failed.load(Ordering::Relaxed) {
                if let Some(e) = ctx.with_engine(|e| Ok(e.fatal.take()))? {
                    return Err(e);
                }
            }
            let batch = fetch.drain(Duration::from_millis(100));
            if !batch.is_empty() && !seen_first {
                self.status.first_record_seen();
                seen_first = true;
            }
            for i in 0..batch.len() {
                let m = batch.get(i);
                if let Some(code) = m.error() {
                    // Partition errors come this way (e.g. a topic's authorization).
                    let error = rdkafka::error::KafkaError::MessageConsumption(code);
                    if let Some(refused) = StreamError::group_refused(&error) {
                        return Err(refused);
                    }
                    if code != RDKafkaErrorCode::PartitionEOF {
                        tracing::warn!(topic = m.topic(), partition = m.partition(), error = %code, "fetch error (librdkafka retries)");
                    }
                    continue;
                }
                let slot = topics.by_handle(&m, routes);
                self.process(ctx, &m, &topics.slots[slot].agents)?;
                progress.record(slot, m.partition(), m.offset());
                since_commit += 1;
            }
            drop(batch);
            // Positions reach the engine before anything can read them: the next poll (whose
            // rebalance callback checkpoints) or the checkpoint below.
            progress.flush(ctx, &topics, &self.status)?;
            if since_commit > 0
                && (since_commit >= self.config.commit_every
                    || coarse_now().saturating_sub(last_commit) >= self.config.commit_interval)
            {
                ctx.with_engine(|e| e.checkpoint(consumer))?;
                since_commit = 0;
                last_commit = coarse_now();
            }
        }
        Ok(())
    }

    /// Hands one record to `agents`; a record an agent cannot decode goes to the dead-letter
    /// topic (when enabled) and processing goes on.
    fn process<M: Message>(
        &mut self,
        ctx: &ConductorContext,
        m: &M,
        agents: &[usize],
    ) -> Result<()> {
        if agents.is_empty() {
            return Ok(());
        }
        let record = Record::from_message(m);
        for &i in agents {
            if let Err(e) = self.agents[i].process(&record) {
                if e.kind() != ErrorKind::Data {
                    return Err(e);
                }
                ctx.with_engine(|eng| eng.dead_letter(m, &e, self.config.dead_letter))?;
            }
        }
        Ok(())
    }
}

/// The topics the poll loop has seen, each with its agents, found by librdkafka's topic
/// handle (a pointer compare) instead of by name on every record.
#[derive(Default)]
struct TopicSlots {
    slots: Vec<TopicSlot>,
    last: usize,
}

struct TopicSlot {
    handle: usize,
    topic: String,
    agents: Vec<usize>,
}

impl TopicSlots {
    fn by_handle(&mut self, m: &FetchedMessage<'_>, routes: &HashMap<String, Vec<usize>>) -> usize {
        let handle = m.topic_handle();
        if self
            .slots
            .get(self.last)
            .is_some_and(|s| s.handle == handle)
        {
            return self.last;
        }
        self.last = match self.slots.iter().position(|s| s.handle == handle) {
            Some(i) => i,
            None => {
                let i = self.by_name(m.topic(), routes);
                self.slots[i].handle = handle;
                i
            }
        };
        self.last
    }

    fn by_name(&mut self, topic: &str, routes: &HashMap<String, Vec<usize>>) -> usize {
        if let Some(i) = self.slots.iter().position(|s| s.topic == topic) {
            return i;
        }
        self.slots.push(TopicSlot {
            handle: 0,
            topic: topic.to_string(),
            agents: routes.get(topic).cloned().unwrap_or_default(),
        });
        self.slots.len() - 1
    }
}

/// What a batch processed: the next offset per (topic slot, partition) and records per topic,
/// handed to the engine and the status once per batch instead of once per record.
#[derive(Default)]
struct BatchProgress {
    next: Vec<(usize, i32, i64)>,
    counts: Vec<u64>,
}

impl BatchProgress {
    fn record(&mut self, slot: usize, partition: i32, offset: i64) {
        match self
            .next
            .iter_mut()
            .rev()
            .find(|(s, p, _)| *s == slot && *p == partition)
        {
            Some(e) => e.2 = offset + 1,
            None => self.next.push((slot, partition, offset + 1)),
        }
        if self.counts.len() <= slot {
            self.counts.resize(slot + 1, 0);
        }
        self.counts[slot] += 1;
    }

    fn flush(
        &mut self,
        ctx: &ConductorContext,
        topics: &TopicSlots,
        status: &Status,
    ) -> Result<()> {
        if self.next.is_empty() {
            return Ok(());
        }
        ctx.with_engine(|eng| {
            for &(slot, partition, next) in &self.next {
                let topic = &topics.slots[slot].topic;
                match eng.positions.get_mut(topic) {
                    Some(m) => {
                        m.insert(partition, next);
                    }
                    None => {
                        eng.positions
                            .entry(topic.clone())
                            .or_default()
                            .insert(partition, next);
                    }
                }
            }
            Ok(())
        })?;
        for (slot, n) in self.counts.iter_mut().enumerate() {
            if *n > 0 {
                status.add_consumed(&topics.slots[slot].topic, *n);
                *n = 0;
            }
        }
        self.next.clear();
        Ok(())
    }
}

/// Monotonic time since an arbitrary start, with the kernel's tick resolution (a few ms) on
/// Linux: enough for the commit interval, and cheaper per record than `Instant::now`.
fn coarse_now() -> Duration {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the call to fill in.
        if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } == 0 {
            return Duration::new(
                ts.tv_sec.max(0) as u64,
                ts.tv_nsec.clamp(0, 999_999_999) as u32,
            );
        }
    }
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// Creates changelog topics (compacted) with their source topic's partition count.
async fn prepare_topics(
    kafka: &KafkaConfig,
    app_id: &str,
    changelog_and_source: &[(String, String)],
    directory: bool,
) -> Result<()> {
    ensure_topics_from(kafka, |counts| {
        let mut specs = Vec::new();
        for (changelog, source) in changelog_and_source {
            specs.push(TopicSpec {
                name: changelog.clone(),
                partitions: counts.get(source).copied().unwrap_or(4),
                compacted: true,
            });
        }
        if directory {
            specs.push(TopicSpec {
                name: directory_topic(app_id),
                partitions: 1,
                compacted: true,
            });
        }
        specs
    })
    .await
}

/// Everything the poll loop and the rebalance callback share.
struct Engine {
    app_id: String,
    tables: Vec<Arc<dyn TableRuntime>>,
    /// Changelog and dead-letter records.
    sink: Sink,
    /// Directory adverts when the sink is transactional (else the sink's producer sends them).
    adverts: Option<TrackedProducer>,
    restorer: Restorer,
    positions: Positions,
    status: Arc<Status>,
    partition_counts: HashMap<String, i32>,
    /// An error raised inside a callback, returned by the poll loop.
    fatal: Option<StreamError>,
    /// Source partitions assigned to this worker now.
    owned: Vec<(String, i32)>,
    directory: Option<Directory>,
    standby: Option<Arc<Standby>>,
}

impl Engine {
    fn checkpoint<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        checkpoint(
            &self.tables,
            &self.positions,
            &mut self.sink,
            consumer,
            &self.status,
        )
    }

    fn advert_producer(&self) -> &TrackedProducer {
        self.adverts.as_ref().unwrap_or(self.sink.tracker())
    }

    /// Tells the other workers this one owns nothing any more (graceful stop).
    fn withdraw(&mut self) -> Result<()> {
        if let Some(d) = &self.directory {
            let producer = self.advert_producer();
            d.publish(producer, &self.app_id, Vec::new())?;
            flush(producer, Duration::from_secs(10))?;
        }
        Ok(())
    }

    fn dead_letter<M: Message>(&mut self, m: &M, error: &StreamError, enabled: bool) -> Result<()> {
        self.status.decode_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(topic = m.topic(), partition = m.partition(), offset = m.offset(), %error, "record skipped");
        if !enabled {
            return Ok(());
        }
        let mut headers = OwnedHeaders::new();
        if let Some(orig) = m.headers() {
            for h in orig.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let reason = error.to_string();
        let partition = m.partition().to_string();
        let offset = m.offset().to_string();
        for (k, v) in [
            (names::HEADER_DLQ_ERROR, reason.as_str()),
            (names::HEADER_DLQ_TOPIC, m.topic()),
            (names::HEADER_DLQ_PARTITION, partition.as_str()),
            (names::HEADER_DLQ_OFFSET, offset.as_str()),
        ] {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        send_blocking(
            self.sink.producer()?,
            &names::dlq_topic(m.topic()),
            None,
            m.key(),
            m.payload(),
            Some(headers),
            None,
        )?;
        self.status.add_produced(&names::dlq_topic(m.topic()), 1);
        self.status.dead_lettered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn partitions_of<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        topic: &str,
    ) -> Result<i32> {
        if let Some(n) = self.partition_counts.get(topic) {
            return Ok(*n);
        }
        let n = partition_count(consumer.client(), topic)?.unwrap_or(0);
        self.partition_counts.insert(topic.to_string(), n);
        Ok(n)
    }

    /// Restores every table partition of the `added` source partitions and returns where each
    /// of them resumes. With the eager protocol `added` is the whole new assignment (partitions
    /// kept from before keep their open stores); with the incremental one (KIP-848's
    /// `group.protocol=consumer`, or `cooperative-sticky`) it adds to what this worker owns.
    fn on_assign<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        added: &[(String, i32)],
        incremental: bool,
    ) -> Result<HashMap<(String, i32), Offset>> {
        self.status.assignment_began_now();
        // A standby copy of an added partition is closed so its store can open as ours.
        if let Some(s) = &self.standby {
            s.release(added);
        }
        let mut assigned: Vec<(String, i32)> = if incremental {
            self.owned.clone()
        } else {
            Vec::new()
        };
        for a in added {
            if !assigned.contains(a) {
                assigned.push(a.clone());
            }
        }
        let committed = match committed_offsets(consumer, added) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not read committed offsets; using local stores only");
                HashMap::new()
            }
        };
        // Close stores of partitions we no longer own.
        let keep: HashSet<(String, i32)> = assigned.iter().cloned().collect();
        self.owned = assigned.clone();
        let mut closed: Vec<(String, i32)> = Vec::new();
        for t in &self.tables {
            for p in t.open_partitions() {
                let sp = (t.source_topic().to_string(), p);
                if !keep.contains(&sp) {
                    t.close_partition(p);
                    if !closed.contains(&sp) {
                        closed.push(sp);
                    }
                }
            }
        }
        if let Some(s) = &self.standby {
            s.resume(&closed);
        }
        // `recovering` is raised by the restorer only when changelog records must be replayed,
        // so a rebalance with warm stores does not make queries wait.
        let started = Instant::now();
        // Open the stores and ask for the changelogs' watermarks concurrently: one after the
        // other, an assignment of 36 table partitions spent most of its time waiting.
        let mut to_open = Vec::new();
        for (topic, p) in added {
            let n = self.partitions_of(consumer, topic)?;
            for t in &self.tables {
                if t.source_topic() == topic {
                    to_open.push((t.clone(), *p, n));
                }
            }
        }
        tracing::debug!(
            secs = started.elapsed().as_secs_f64(),
            "assignment: partition counts known"
        );
        for r in parallel_map(&to_open, |(t, p, n)| t.open_partition(*p, *n)) {
            r?;
        }
        tracing::debug!(
            secs = started.elapsed().as_secs_f64(),
            stores = to_open.len(),
            "assignment: stores open"
        );
        let changelogs: Vec<(String, i32)> = to_open
            .iter()
            .map(|(t, p, _)| (t.changelog_topic().to_string(), *p))
            .collect();
        self.restorer.prefetch_watermarks(&changelogs);
        tracing::debug!(
            secs = started.elapsed().as_secs_f64(),
            "assignment: changelog watermarks known"
        );
        let mut resume = HashMap::new();
        for (topic, p) in added {
            let key = (topic.clone(), *p);
            let committed = committed.get(&key).copied();
            let mut start: Option<i64> = None;
            for t in self.tables.clone() {
                if t.source_topic() != topic {
                    continue;
                }
                let n = self.partitions_of(consumer, topic)?;
                t.open_partition(*p, n)?;
                let report = self.restorer.replay(
                    t.as_ref(),
                    *p,
                    committed,
                    &self.status,
                    Replay::Restore,
                )?;
                start =
                    Some(start.map_or(report.source_offset, |s: i64| s.min(report.source_offset)));
            }
            let offset = match start.or(committed) {
                Some(o) => {
                    self.positions
                        .entry(key.0.clone())
                        .or_default()
                        .insert(key.1, o);
                    Offset::Offset(o)
                }
                None => Offset::Beginning,
            };
            resume.insert(key, offset);
        }
        self.status.recovering.store(false, Ordering::Relaxed);
        tracing::info!(partitions = assigned.len(), added = added.len(), secs = format!("{:.3}", started.elapsed().as_secs_f64()), app_id = %self.app_id, "partitions assigned and tables ready");
        self.status.set_assigned(assigned.clone());
        if let Some(d) = &self.directory {
            d.publish(self.advert_producer(), &self.app_id, assigned)?;
        }
        Ok(resume)
    }

    /// Checkpoints everything processed so far before `revoked` move to another worker. Eager
    /// protocol: the whole assignment goes (stores stay open until the next assignment shows
    /// which are still ours). Incremental: only `revoked` go; their stores close now.
    fn on_revoke<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        revoked: &[(String, i32)],
        incremental: bool,
    ) -> Result<()> {
        let r = self.checkpoint(consumer);
        if !incremental {
            self.positions.clear();
            self.owned.clear();
            self.status.set_assigned(Vec::new());
            return r;
        }
        for (topic, p) in revoked {
            if let Some(m) = self.positions.get_mut(topic) {
                m.remove(p);
            }
            for t in &self.tables {
                if t.source_topic() == topic {
                    t.close_partition(*p);
                }
            }
        }
        if let Some(s) = &self.standby {
            s.resume(revoked);
        }
        self.owned.retain(|a| !revoked.contains(a));
        self.status.set_assigned(self.owned.clone());
        if let Some(d) = &self.directory {
            d.publish(self.advert_producer(), &self.app_id, self.owned.clone())?;
        }
        r
    }
}

struct ConductorContext {
    engine: Mutex<Engine>,
    /// Where assigned partitions are forwarded (set once the consumer exists).
    fetch: OnceLock<FetchHandle>,
    /// Set with `Engine::fatal`, so the poll loop checks for it without taking the lock.
    failed: AtomicBool,
    /// Incremental (cooperative) rebalancing, from the configuration. Not asked of the
    /// consumer inside the callback: `rebalance_protocol()` there can block for good while the
    /// consumer is closing.
    incremental: bool,
}

impl ConductorContext {
    fn with_engine<T>(&self, f: impl FnOnce(&mut Engine) -> Result<T>) -> Result<T> {
        // The engine is only used from the poll thread (loop and callbacks); the mutex makes
        // that sharing explicit and is never contended.
        let mut g = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// A rebalance callback failed: the poll loop stops with `e` after this poll.
    fn fail(&self, e: StreamError) {
        let _ = self.with_engine(|eng| {
            eng.fatal = Some(e);
            Ok(())
        });
        self.failed.store(true, Ordering::Relaxed);
    }
}

impl ClientContext for ConductorContext {}

/// How long leaving the group may take when the worker stops.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Leaves the group, waiting at most `limit`. rdkafka's drop waits for librdkafka's close
/// without end, and that close waits for the group coordinator: with the brokers gone a
/// stopping worker would never return. So the drop runs on a thread of its own; past the
/// limit it is left to finish (or not) while the worker returns (its process is about to end,
/// or the embedding program goes on without it). The next start is exact either way, since
/// offsets live in the stores.
fn close_consumer(consumer: BaseConsumer<ConductorContext>, limit: Duration) {
    let (done, closed) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("consumer-close".into())
        .spawn(move || {
            drop(consumer);
            let _ = done.send(());
        });
    if spawned.is_err() {
        tracing::warn!("cannot start a thread to close the consumer; not waiting for it");
        return;
    }
    if closed.recv_timeout(limit).is_err() {
        tracing::warn!(
            secs = limit.as_secs(),
            "the consumer did not leave the group in time (brokers unreachable?); not waiting for it"
        );
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ConsumerContext for ConductorContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let incremental = self.incremental;
                let added = partitions(tpl);
                let result = self.with_engine(|e| e.on_assign(consumer, &added, incremental));
                match result {
                    Ok(resume) => {
                        for ((t, p), o) in resume {
                            if let Err(e) = tpl.set_partition_offset(&t, p, o) {
                                tracing::error!(topic = %t, partition = p, error = %e, "cannot set start offset");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "assignment failed");
                        let _ = self.with_engine(|eng| {
                            eng.status.recovering.store(false, Ordering::Relaxed);
                            Ok(())
                        });
                        self.fail(e);
                    }
                }
                // Forwarding first: librdkafka cleared it when these partitions last stopped,
                // and it must be in place before their first fetch.
                if let Some(fetch) = self.fetch.get() {
                    fetch.attach(consumer, tpl);
                }
                let assigned = if incremental {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = assigned {
                    tracing::error!(error = %e, "assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let incremental = self.incremental;
                let revoked = partitions(tpl);
                if let Err(e) = self.with_engine(|e| e.on_revoke(consumer, &revoked, incremental)) {
                    tracing::error!(error = %e, "checkpoint on revoke failed");
                    self.fail(e);
                }
                let unassigned = if incremental {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = unassigned {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error");
                let _ = consumer.unassign();
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {}
}
