//! The worker's state shared by the poll loop and the rebalance callbacks (both run on the
//! poll thread): tables, the sink, positions, what this worker owns, the directory and the
//! standby copies. Checkpointing it is [`crate::checkpoint`]'s job; changing ownership is
//! `rebalance`'s.

use crate::checkpoint::checkpoint;
use crate::directory::Directory;
use crate::emit::Outbox;
use crate::error::{Result, StreamError};
use crate::kafka::{flush, partition_count, TrackedProducer};
use crate::record::Positions;
use crate::sensor::Status;
use crate::sink::Sink;
use crate::standby::Standby;
use crate::table::recovery::Restorer;
use crate::table::TableRuntime;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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
}

impl WorkerState {
    pub(super) fn checkpoint<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<()> {
        checkpoint(
            &self.tables,
            &self.outbox,
            &self.positions,
            &mut self.sink,
            consumer,
            &self.status,
        )
    }

    pub(super) fn advert_producer(&self) -> &TrackedProducer {
        self.adverts.as_ref().unwrap_or(self.sink.tracker())
    }

    /// Tells the other workers this one owns nothing any more (graceful stop).
    pub(super) fn withdraw(&mut self) -> Result<()> {
        if let Some(d) = &self.directory {
            let producer = self.advert_producer();
            d.publish(producer, &self.app_id, Vec::new())?;
            flush(producer, Duration::from_secs(10))?;
        }
        Ok(())
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
