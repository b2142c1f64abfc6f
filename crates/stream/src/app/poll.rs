//! The poll loop, one round at a time: the consumer's own queue (rebalances, errors), then a
//! batch from the fetch queue, each record to its topic's agents, then the repartitioned
//! records, the timers and, every `commit_interval` or `commit_every` records, a checkpoint.
//! Starting and stopping the loop is `runtime`'s; assignment and revocation `rebalance`'s.

use super::rebalance::ConductorContext;
use super::routing::{BatchProgress, TopicSlots};
use super::App;
use crate::error::{ErrorKind, Result, StreamError};
use crate::fetch::{FetchQueue, Fetched};
use crate::record::Record;
use crate::shutdown::Shutdown;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long a worker the group removed may wait to be given partitions again before it stops.
const FENCED_LIMIT: Duration = Duration::from_secs(120);

/// What the loop carries from one round to the next.
struct Round {
    /// Records (and timer writes) since the last checkpoint.
    since_commit: u64,
    last_commit: Duration,
    seen_first: bool,
    topics: TopicSlots,
    progress: BatchProgress,
    /// Whether the app has timers: only then are event times noted.
    timed: bool,
    /// Latest event time per topic slot in this batch, for the timers' stream time.
    latest: Vec<Option<i64>>,
}

impl Round {
    fn note(&mut self, slot: usize, partition: i32, offset: i64, timestamp: Option<i64>) {
        if self.timed {
            note_time(&mut self.latest, slot, timestamp);
        }
        self.progress.record(slot, partition, offset);
        self.since_commit += 1;
    }
}

impl App {
    pub(super) fn poll_loop(
        &mut self,
        consumer: &BaseConsumer<ConductorContext>,
        fetch: &mut FetchQueue,
        routes: &HashMap<String, Vec<usize>>,
        shutdown: &Shutdown,
    ) -> Result<()> {
        let mut round = Round {
            since_commit: 0,
            last_commit: coarse_now(),
            seen_first: false,
            topics: TopicSlots::default(),
            progress: BatchProgress::default(),
            timed: !self.timers.is_empty(),
            latest: Vec::new(),
        };
        let ctx = consumer.context();
        while !shutdown.is_triggered() {
            self.poll_consumer_queue(consumer, routes, &mut round)?;
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
            self.process_batch(ctx, batch, routes, &mut round)?;
            self.finish_round(consumer, &mut round)?;
        }
        Ok(())
    }

    /// The consumer's own queue: rebalances (the callback runs here), commit results, errors,
    /// and the records of any partition not forwarded to the fetch queue.
    fn poll_consumer_queue(
        &mut self,
        consumer: &BaseConsumer<ConductorContext>,
        routes: &HashMap<String, Vec<usize>>,
        round: &mut Round,
    ) -> Result<()> {
        let ctx = consumer.context();
        loop {
            match consumer.poll(Duration::ZERO) {
                None => return Ok(()),
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
                    if !round.seen_first {
                        self.status.first_record_seen();
                        round.seen_first = true;
                    }
                    let slot = round.topics.by_name(m.topic(), routes);
                    self.process(ctx, &m, &round.topics.slots[slot].agents)?;
                    round.note(slot, m.partition(), m.offset(), m.timestamp().to_millis());
                    round.progress.flush(ctx, &round.topics, &self.status)?;
                }
            }
        }
    }

    /// A batch from the fetch queue, each record to its topic's agents; positions reach the
    /// worker state before anything can read them (the next poll, whose rebalance callback
    /// checkpoints, or the checkpoint of this round).
    fn process_batch(
        &mut self,
        ctx: &ConductorContext,
        batch: Fetched<'_>,
        routes: &HashMap<String, Vec<usize>>,
        round: &mut Round,
    ) -> Result<()> {
        if !batch.is_empty() && !round.seen_first {
            self.status.first_record_seen();
            round.seen_first = true;
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
            let slot = round.topics.by_handle(&m, routes);
            self.process(ctx, &m, &round.topics.slots[slot].agents)?;
            round.note(slot, m.partition(), m.offset(), m.timestamp().to_millis());
        }
        drop(batch);
        round.progress.flush(ctx, &round.topics, &self.status)
    }

    /// After a batch: the repartitioned records out, the timers, and a checkpoint when one is
    /// due.
    fn finish_round(
        &mut self,
        consumer: &BaseConsumer<ConductorContext>,
        round: &mut Round,
    ) -> Result<()> {
        let ctx = consumer.context();
        if !self.repartitions.is_empty() {
            ctx.with_state(|s| s.send_repartitioned())?;
        }
        if round.timed {
            for (slot, t) in round.latest.iter_mut().enumerate() {
                if let Some(t) = t.take() {
                    self.timers.observe(round.topics.topic(slot), t);
                }
            }
            // Timer writes wait in the write caches like an agent's: count them so the
            // checkpoint below (or the next) takes them.
            round.since_commit += self.fire_timers(ctx)?;
        }
        if round.since_commit > 0
            && (round.since_commit >= self.config.commit_every
                || coarse_now().saturating_sub(round.last_commit) >= self.config.commit_interval)
        {
            // Not taken by the group: the caches stay and the next checkpoint retries.
            ctx.with_state(|s| s.checkpoint(consumer))?;
            round.since_commit = 0;
            round.last_commit = coarse_now();
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
