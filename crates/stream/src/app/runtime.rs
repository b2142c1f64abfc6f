//! The worker's runtime: one group consumer on a thread of its own (Faust's conductor),
//! polled in a loop: the consumer's own queue (rebalances, errors) first, then a batch from
//! the fetch queue; each record goes to its topic's agents, and a checkpoint runs every
//! `commit_interval` or `commit_every` records; on shutdown a last checkpoint, then the group
//! is left within a bound. Also creates the app's internal topics before the start.
//! Assignment and revocation are `rebalance`'s; routing tables are `routing`'s.

use super::rebalance::ConductorContext;
use super::routing::{BatchProgress, TopicSlots};
use super::state::WorkerState;
use super::App;
use crate::config::KafkaConfig;
use crate::error::{ErrorKind, Result, StreamError};
use crate::fetch::FetchQueue;
use crate::identity::group_instance_id;
use crate::kafka::{ensure_topics_from, tracked_producer, TopicSpec};
use crate::names;
use crate::record::Positions;
use crate::record::Record;
use crate::repartition::RepartitionSpec;
use crate::shutdown::Shutdown;
use crate::sink::Sink;
use crate::standby::Standby;
use crate::table::recovery::Restorer;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Records taken from the fetch queue at a time (fewer when `commit_every` is smaller).
const FETCH_BATCH: usize = 1024;

impl App {
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
        let prepared = prepare_topics(
            &self.config.kafka,
            &self.config.app_id,
            &pairs,
            &self.repartitions,
            &self.outputs,
            self.directory.is_some(),
        );
        // Creating topics can wait out a broker's CreateTopics timeout (15 s); a stop asked
        // meanwhile ends the worker at once (nothing was processed, nothing to checkpoint).
        tokio::select! {
            r = prepared => r?,
            _ = shutdown.wait() => {
                tracing::info!("stopped while preparing its topics, before processing anything");
                return Ok(());
            }
        }
        let repartition_counts = tokio::task::block_in_place(|| {
            crate::repartition::check_partitions(&self.config.kafka, &self.repartitions)
        })?;
        let handle =
            tokio::task::spawn_blocking(move || self.run_blocking(shutdown, repartition_counts));
        handle
            .await
            .map_err(|e| StreamError::Config(format!("worker thread failed: {e}")))?
    }

    /// The worker thread: builds the consumer around the shared state, polls until
    /// `shutdown`, checkpoints a last time and leaves the group.
    fn run_blocking(
        mut self,
        shutdown: Shutdown,
        repartition_counts: HashMap<String, i32>,
    ) -> Result<()> {
        let mut state = self.worker_state(&shutdown)?;
        state.repartitions = self
            .repartitions
            .iter()
            .map(|r| (r.clone(), repartition_counts[&r.topic]))
            .collect();
        let standby = state.standby.clone();
        let topics = self.source_topics();
        let follower = match &self.directory {
            Some(d) => Some(d.follow(&self.config.kafka, &self.config.app_id, shutdown.clone())?),
            None => None,
        };
        let context = ConductorContext {
            state: Mutex::new(state),
            failed: AtomicBool::new(false),
            fetch: OnceLock::new(),
            incremental: self.config.kafka.incremental_rebalancing(),
        };
        let member = group_instance_id(&self.config.app_id, &self.config.data_dir)?;
        let mut consumer: BaseConsumer<ConductorContext> = self
            .config
            .kafka
            .group_member(&self.config.app_id, Some(&member))
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
            Ok(()) => consumer.context().with_state(|s| {
                // Not taken by the group: the next start resumes at the group's offsets.
                let _committed = s.checkpoint(&consumer)?;
                s.withdraw();
                Ok(())
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

    /// The state the poll loop and the rebalance callbacks share, with its clients: the sink
    /// (changelog and dead-letter records), a producer for directory adverts when the sink is
    /// transactional, the changelog restorer and the standby copies, created in that order.
    fn worker_state(&self, shutdown: &Shutdown) -> Result<WorkerState> {
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
        Ok(WorkerState {
            app_id: self.config.app_id.clone(),
            tables: self.tables.clone(),
            outbox: self.outbox.clone(),
            sink,
            adverts,
            restorer,
            positions: Positions::default(),
            status: self.status.clone(),
            partition_counts: HashMap::new(),
            fatal: None,
            owned: Vec::new(),
            directory: self.directory.clone(),
            standby,
            fenced_since: None,
            repartitions: Vec::new(),
        })
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
        // Latest event time per topic slot in this batch, for the timers' stream time.
        let timed = !self.timers.is_empty();
        let mut latest: Vec<Option<i64>> = Vec::new();
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
                        if ctx.with_state(|s| Ok(s.fenced_since.is_some()))? {
                            continue;
                        }
                        if !seen_first {
                            self.status.first_record_seen();
                            seen_first = true;
                        }
                        let slot = topics.by_name(m.topic(), routes);
                        self.process(ctx, &m, &topics.slots[slot].agents)?;
                        if timed {
                            note_time(&mut latest, slot, m.timestamp().to_millis());
                        }
                        progress.record(slot, m.partition(), m.offset());
                        progress.flush(ctx, &topics, &self.status)?;
                        since_commit += 1;
                    }
                }
            }
            // A rebalance callback that failed (it returns nothing through `poll`).
            if ctx.failed.load(Ordering::Relaxed) {
                if let Some(e) = ctx.with_state(|s| Ok(s.fatal.take()))? {
                    return Err(e);
                }
            }
            let batch = fetch.drain(Duration::from_millis(100));
            if let Some(since) = ctx.with_state(|s| Ok(s.fenced_since))? {
                // Removed from the group: these records' partitions may be another worker's,
                // which reads them itself. Dropped until the group assigns partitions again.
                drop(batch);
                if since.elapsed() > FENCED_LIMIT {
                    return Err(StreamError::Fenced(FENCED_LIMIT.as_secs()));
                }
                continue;
            }
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
                if timed {
                    note_time(&mut latest, slot, m.timestamp().to_millis());
                }
                progress.record(slot, m.partition(), m.offset());
                since_commit += 1;
            }
            drop(batch);
            // Positions reach the worker state before anything can read them: the next poll (whose
            // rebalance callback checkpoints) or the checkpoint below.
            progress.flush(ctx, &topics, &self.status)?;
            if !self.repartitions.is_empty() {
                ctx.with_state(|s| s.send_repartitioned())?;
            }
            if timed {
                for (slot, t) in latest.iter_mut().enumerate() {
                    if let Some(t) = t.take() {
                        self.timers.observe(topics.topic(slot), t);
                    }
                }
                // Timer writes wait in the write caches like an agent's: count them so the
                // checkpoint below (or the next) takes them.
                since_commit += self.fire_timers(ctx)?;
            }
            if since_commit > 0
                && (since_commit >= self.config.commit_every
                    || coarse_now().saturating_sub(last_commit) >= self.config.commit_interval)
            {
                // Not taken by the group: the caches stay and the next checkpoint retries.
                ctx.with_state(|s| s.checkpoint(consumer))?;
                since_commit = 0;
                last_commit = coarse_now();
            }
        }
        Ok(())
    }

    /// Runs the timers due on the partitions this worker has positions for.
    fn fire_timers(&mut self, ctx: &ConductorContext) -> Result<u64> {
        let timers = &self.timers;
        let owned: Vec<crate::timer::Owned> = ctx.with_state(|s| {
            Ok(s.positions
                .iter()
                .filter(|(topic, _)| timers.on_topic(topic))
                .flat_map(|(topic, m)| m.iter().map(move |(p, o)| (topic.clone(), *p, *o)))
                .collect())
        })?;
        self.timers.fire(crate::now_ms(), &owned)
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
                ctx.with_state(|state| state.dead_letter(m, &e, self.config.dead_letter))?;
            }
        }
        Ok(())
    }
}

/// Keeps the latest event time of a topic slot within a batch.
fn note_time(latest: &mut Vec<Option<i64>>, slot: usize, t: Option<i64>) {
    let Some(t) = t else { return };
    if latest.len() <= slot {
        latest.resize(slot + 1, None);
    }
    let cur = &mut latest[slot];
    *cur = Some(cur.map_or(t, |c| c.max(t)));
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

/// Creates repartition topics with their source topic's partition count (or the chosen one),
/// and changelog topics (compacted) and output topics with their source topic's.
async fn prepare_topics(
    kafka: &KafkaConfig,
    app_id: &str,
    changelog_and_source: &[(String, String)],
    repartitions: &[RepartitionSpec],
    output_and_source: &[(String, String)],
    directory: bool,
) -> Result<()> {
    ensure_topics_from(kafka, |counts| {
        let mut specs = Vec::new();
        let mut counts = counts.clone();
        for r in repartitions {
            let partitions = crate::repartition::wanted_partitions(r, &counts).unwrap_or(4);
            counts.entry(r.topic.clone()).or_insert(partitions);
            specs.push(TopicSpec {
                name: r.topic.clone(),
                partitions,
                compacted: false,
            });
        }
        for (changelog, source) in changelog_and_source {
            specs.push(TopicSpec {
                name: changelog.clone(),
                partitions: counts.get(source).copied().unwrap_or(4),
                compacted: true,
            });
        }
        for (output, source) in output_and_source {
            specs.push(TopicSpec {
                name: output.clone(),
                partitions: counts.get(source).copied().unwrap_or(4),
                compacted: false,
            });
        }
        if directory {
            specs.push(TopicSpec {
                name: names::directory_topic(app_id),
                partitions: 1,
                compacted: true,
            });
        }
        specs
    })
    .await
}

/// How long a worker the group removed may wait to be given partitions again before it stops.
const FENCED_LIMIT: Duration = Duration::from_secs(120);

/// How long leaving the group may take when the worker stops. Well inside
/// [`crate::GRACEFUL_DEADLINE`] (5 s): a close during a rebalance waits for the group (on the
/// mock, for a killed member's session to expire), and the final checkpoint is done before it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

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
            "the consumer did not leave the group in time (brokers unreachable, or a rebalance waiting on other members); not waiting for it"
        );
    }
}
