//! The worker's runtime: one group consumer on a thread of its own (Faust's conductor), set
//! up, run through the poll loop (`poll`), and stopped: on shutdown a last checkpoint, then
//! the group is left within a bound. Also creates the app's internal topics before the start.
//! Assignment and revocation are `rebalance`'s; routing tables are `routing`'s.

use super::rebalance::ConductorContext;
use super::state::WorkerState;
use super::App;
use crate::config::KafkaConfig;
use crate::error::{Result, StreamError};
use crate::fetch::{FetchQueue, FETCH_BATCH};
use crate::identity::group_instance_id;
use crate::kafka::{ensure_topics_from, tracked_producer, TopicSpec};
use crate::names;
use crate::record::Positions;
use crate::repartition::RepartitionSpec;
use crate::shutdown::Shutdown;
use crate::sink::Sink;
use crate::standby::Standby;
use crate::table::recovery::Restorer;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

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
        // Restored while the group is joined and the first assignment's stores open; that
        // assignment waits for it.
        let globals = match crate::global::follow(
            &self.config.kafka,
            &self.config.app_id,
            &self.globals,
            shutdown.clone(),
        )? {
            Some((thread, ready)) => {
                state.globals_ready = Some(ready);
                Some(thread)
            }
            None => None,
        };
        let (consumer, mut fetch) = self.join_group(state, &topics)?;
        let watch = crate::health::BrokerWatch::start(
            &self.config.kafka,
            topics.first().map(String::as_str),
            self.status.clone(),
            shutdown.clone(),
        )?;
        self.status.subscribed_now();
        tracing::info!(app_id = %self.config.app_id, topics = ?topics, "worker started");
        self.status.running.store(true, Ordering::Relaxed);

        let routes = self.routes();
        let result = self.poll_loop(&consumer, &mut fetch, &routes, &shutdown);
        self.status.running.store(false, Ordering::Relaxed);
        // Final checkpoint, then leave the group (the revoke callback finds nothing pending).
        let final_result = result.and_then(|()| {
            consumer.context().with_state(|s| {
                // Not taken by the group: the next start resumes at the group's offsets.
                let _committed = s.checkpoint(&consumer)?;
                s.withdraw();
                Ok(())
            })
        });
        // The fetch queue goes before its consumer: closing the consumer serves only the
        // consumer's own queue, and a queue must not outlive the client it belongs to.
        drop(fetch);
        leave_group(&consumer, CLOSE_TIMEOUT);
        close_consumer(consumer, CLOSE_TIMEOUT);
        shutdown.trigger();
        if let Some(f) = follower {
            let _ = f.join();
        }
        if let Some(s) = standby {
            s.join();
        }
        if let Some(g) = globals {
            let _ = g.join();
        }
        watch.join();
        tracing::info!("worker stopped");
        final_result
    }

    /// The group consumer around the shared `state`, subscribed to `topics`, and the fetch
    /// queue its assigned partitions are forwarded to: records come in batches from that one
    /// queue; an event on the consumer's own queue cuts the batch wait short.
    fn join_group(
        &self,
        state: WorkerState,
        topics: &[String],
    ) -> Result<(BaseConsumer<ConductorContext>, FetchQueue)> {
        let context = ConductorContext {
            state: Mutex::new(state),
            failed: AtomicBool::new(false),
            fetch: OnceLock::new(),
            incremental: self.config.kafka.incremental_rebalancing(),
            reassigned: Mutex::default(),
        };
        let member = group_instance_id(&self.config.app_id, &self.config.data_dir)?;
        let mut consumer: BaseConsumer<ConductorContext> = self
            .config
            .kafka
            .group_member(&self.config.app_id, Some(&member))
            .create_with_context(context)
            .map_err(StreamError::kafka("create consumer"))?;
        let batch = usize::try_from(self.config.commit_every)
            .unwrap_or(FETCH_BATCH)
            .clamp(1, FETCH_BATCH);
        let fetch = FetchQueue::new(&consumer, batch)?;
        let waker = fetch.handle();
        consumer.set_nonempty_callback(move || waker.wake());
        let _ = consumer.context().fetch.set(fetch.handle());
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topic_refs)
            .map_err(StreamError::kafka("subscribe"))?;
        Ok((consumer, fetch))
    }

    /// The agents reading each source topic (indices into `agents`).
    fn routes(&self) -> HashMap<String, Vec<usize>> {
        let mut routes: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, a) in self.agents.iter().enumerate() {
            routes.entry(a.topic().to_string()).or_default().push(i);
        }
        routes
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
            globals_ready: None,
        })
    }
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

/// How long leaving the group, and then closing the consumer, may each take when the worker
/// stops: together within [`crate::GRACEFUL_DEADLINE`] (5 s). A close during a rebalance waits
/// for the group (on the mock, for a killed member's session to expire), and the final
/// checkpoint is done before both.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Unsubscribes and serves the revoke that follows (the rebalance callback), until the consumer
/// owns nothing (or `limit`): only then does librdkafka send LeaveGroup, for a static member
/// too. Closed at once instead, a static member never leaves (librdkafka's close skips it),
/// and its partitions wait for its session timeout, or for ever on a broker that never expires
/// members.
fn leave_group(consumer: &BaseConsumer<ConductorContext>, limit: Duration) {
    consumer.unsubscribe();
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        // A record still queued is dropped unprocessed: its offset was not committed.
        let _ = consumer.poll(Duration::from_millis(10));
        if consumer.assignment().map_or(true, |a| a.count() == 0) {
            // The LeaveGroup request is queued now; give it a moment to go out.
            let _ = consumer.poll(Duration::from_millis(10));
            return;
        }
    }
    tracing::warn!("the consumer still owned partitions when it closed");
}

/// Closes the consumer, waiting at most `limit`. rdkafka's drop waits for librdkafka's close
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
