//! The worker's state shared by the poll loop and the rebalance callbacks (both run on the
//! poll thread): tables, the sink, positions, what this worker owns, the directory and the
//! standby copies. Checkpointing it is [`crate::checkpoint`]'s job; changing ownership is
//! `rebalance`'s.

use crate::checkpoint::{checkpoint, Outcome};
use crate::directory::Directory;
use crate::emit::Outbox;
use crate::error::{Result, StreamError};
use crate::global::GlobalsReady;
use crate::kafka::{flush, partition_count, send_blocking, TrackedProducer};
use crate::record::Positions;
use crate::repartition::RepartitionSpec;
use crate::sensor::Status;
use crate::sink::Sink;
use crate::standby::Standby;
use crate::table::recovery::Restorer;
use crate::table::route::partition_for;
use crate::table::TableRuntime;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a stopping worker waits for its "owns nothing" advert to be delivered.
const WITHDRAW_TIMEOUT: Duration = Duration::from_secs(1);

/// Everything the poll loop and the rebalance callbacks share.
pub(super) struct WorkerState {
    pub(super) app_id: String,
    pub(super) tables: Vec<Arc<dyn TableRuntime>>,
    /// Output records the next checkpoint sends with the changelogs.
    pub(super) outbox: Arc<Outbox>,
    /// Changelog and dead-letter records.
    pub(super) sink: Sink,
    /// Directory adverts when the sink is transactional (else the sink's producer sends them).
    pub(super) adverts: Option<TrackedProducer>,
    pub(super) restorer: Restorer,
    pub(super) positions: Positions,
    pub(super) status: Arc<Status>,
    pub(super) partition_counts: HashMap<String, i32>,
    /// An error raised inside a callback, returned by the poll loop.
    pub(super) fatal: Option<StreamError>,
    /// Source partitions assigned to this worker now.
    pub(super) owned: Vec<(String, i32)>,
    pub(super) directory: Option<Directory>,
    pub(super) standby: Option<Arc<Standby>>,
    /// Since when the group has refused this worker's offsets (it was removed from the
    /// group); cleared by the next assignment.
    pub(super) fenced_since: Option<std::time::Instant>,
    /// Declared repartition topics with their partition counts.
    pub(super) repartitions: Vec<(RepartitionSpec, i32)>,
    /// Until the first assignment: word of the global copies' first catch-up, which it waits
    /// for.
    pub(super) globals_ready: Option<GlobalsReady>,
}

impl WorkerState {
    /// Checkpoints what was processed ([`crate::checkpoint`]); returns whether the group took
    /// the offsets (and the stores were written). When the group refuses them because this
    /// worker is no longer the owner, its uncommitted work is dropped
    /// ([`WorkerState::drop_uncommitted`]) and records are ignored until the next assignment.
    pub(super) fn checkpoint<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<bool> {
        if self.fenced_since.is_some() {
            return Ok(false);
        }
        // Re-keyed records go first, so the checkpoint's flush covers them.
        self.send_repartitioned()?;
        let outcome = checkpoint(
            &self.tables,
            &self.outbox,
            &self.positions,
            &mut self.sink,
            consumer,
            &self.status,
        )?;
        match outcome {
            Outcome::Committed => return Ok(true),
            Outcome::NotCommitted(e) => {
                tracing::warn!(error = %e, "the group did not take the offsets; stores not written, the next checkpoint sends the changes again");
            }
            Outcome::Fenced(code) => {
                tracing::warn!(error = %code, "the group refused this worker's offsets: it was removed from the group and its partitions may be another worker's now; dropping its uncommitted work until the next assignment");
                self.drop_uncommitted();
                self.fenced_since = Some(std::time::Instant::now());
            }
        }
        Ok(false)
    }

    /// Forgets everything not checkpointed, as a crash would: every open table partition is
    /// closed (its write cache dropped; the store keeps the last checkpoint) and the positions
    /// cleared. Used when the partitions were lost to another member, whose restore must not
    /// meet work this worker did after the hand-over.
    pub(super) fn drop_uncommitted(&mut self) {
        for t in &self.tables {
            for p in t.open_partitions() {
                t.close_partition(p);
            }
        }
        if let Some(s) = &self.standby {
            s.resume(&self.owned);
        }
        // Re-keyed records and closed windows of the dropped work: whoever processes their
        // sources again produces them again.
        for (spec, _) in &self.repartitions {
            drop(spec.outbox.take());
        }
        drop(self.outbox.take());
        self.positions.clear();
        self.owned.clear();
        self.status.set_assigned(Vec::new());
    }

    /// Sends the records `group_by` agents re-keyed since the last call through the sink, each
    /// to the partition Kafka's default partitioner gives its key.
    pub(super) fn send_repartitioned(&mut self) -> Result<()> {
        for (spec, partitions) in &self.repartitions {
            let records = spec.outbox.take();
            if records.is_empty() {
                continue;
            }
            let producer = self.sink.producer()?;
            for r in &records {
                send_blocking(
                    producer,
                    &spec.topic,
                    Some(partition_for(&r.key, *partitions)),
                    Some(&r.key),
                    Some(&r.value),
                    None,
                    r.timestamp,
                )?;
            }
            self.status.add_produced(&spec.topic, records.len() as u64);
        }
        Ok(())
    }

    pub(super) fn advert_producer(&self) -> &TrackedProducer {
        self.adverts.as_ref().unwrap_or(self.sink.tracker())
    }

    /// Tells the other workers this one owns nothing any more (graceful stop). Best effort,
    /// within [`WITHDRAW_TIMEOUT`]: the advert only routes queries, and the partitions' next
    /// owners advertise them anyway; a stop must not fail or outlast its deadline over it.
    pub(super) fn withdraw(&mut self) {
        if let Some(d) = &self.directory {
            let producer = self.advert_producer();
            let sent = d
                .publish(producer, &self.app_id, Vec::new())
                .and_then(|()| flush(producer, WITHDRAW_TIMEOUT));
            if let Err(e) = sent {
                tracing::warn!(error = %e, "could not tell the other workers this one stops; they learn it from the group's next assignment");
            }
        }
    }

    /// Partition count of a source topic, asked of the cluster once.
    pub(super) fn partitions_of<C: ConsumerContext>(
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
}
