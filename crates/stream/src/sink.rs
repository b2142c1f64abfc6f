//! Where the worker's outputs (changelog and dead-letter records) go, under the app's
//! processing guarantee.
//!
//! - [`Guarantee::AtLeastOnce`] (default): outputs go through an idempotent producer; the
//!   tables are still exact after a crash because the store keeps its source offset with the
//!   data and recovery applies only completed checkpoints. Downstream readers of the changelog
//!   may see a checkpoint's records again after a crash.
//! - [`Guarantee::ExactlyOnce`]: outputs and the source offsets are committed in one Kafka
//!   transaction per checkpoint (Kafka Streams' `exactly_once_v2`): a `read_committed` reader
//!   sees each output once. Needs a broker that implements transactions.

use crate::config::KafkaConfig;
use crate::error::{Result, StreamError};
use crate::identity::transactional_id;
use crate::kafka::{producer_error, tracked_producer_with, TrackedProducer};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::TopicPartitionList;
use std::path::Path;
use std::time::Duration;

/// Processing guarantee of an app's outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Guarantee {
    #[default]
    AtLeastOnce,
    ExactlyOnce,
}

/// How long a transaction step may wait for the brokers (a broker outage shorter than this is
/// waited out).
const TXN_TIMEOUT: Duration = Duration::from_secs(60);

/// The producer of the app's outputs.
pub enum Sink {
    Plain(TrackedProducer),
    Transactional {
        producer: TrackedProducer,
        /// A transaction is begun and not yet committed.
        open: bool,
    },
}

impl Sink {
    /// Creates the producer; in exactly-once mode also registers its transactional id (which
    /// fences a previous incarnation of this worker and aborts its open transaction).
    pub fn new(
        kafka: &KafkaConfig,
        guarantee: Guarantee,
        app_id: &str,
        data_dir: &Path,
    ) -> Result<Self> {
        match guarantee {
            Guarantee::AtLeastOnce => Ok(Sink::Plain(tracked_producer_with(kafka.producer())?)),
            Guarantee::ExactlyOnce => {
                let id = transactional_id(app_id, data_dir)?;
                let producer = tracked_producer_with(kafka.transactional_producer(&id))?;
                producer
                    .init_transactions(TXN_TIMEOUT)
                    .map_err(StreamError::kafka("init transactions"))?;
                tracing::info!(transactional_id = %id, "exactly-once: outputs and offsets commit in Kafka transactions");
                Ok(Sink::Transactional {
                    producer,
                    open: false,
                })
            }
        }
    }

    /// The producer to send outputs with; in exactly-once mode a transaction is begun first
    /// when none is open.
    pub fn producer(&mut self) -> Result<&TrackedProducer> {
        match self {
            Sink::Plain(p) => Ok(p),
            Sink::Transactional { producer, open } => {
                if !*open {
                    if let Err(e) = producer.begin_transaction() {
                        return Err(producer_error(producer, "begin transaction", e));
                    }
                    *open = true;
                }
                Ok(producer)
            }
        }
    }

    /// Delivery bookkeeping (last offsets) without starting a transaction.
    pub fn tracker(&self) -> &TrackedProducer {
        match self {
            Sink::Plain(p) | Sink::Transactional { producer: p, .. } => p,
        }
    }

    /// In exactly-once mode, adds `offsets` (the next source offsets to read) to the open
    /// transaction and commits it, after the caller flushed the outputs; returns `true` then.
    /// In at-least-once mode does nothing and returns `false` (the caller commits the offsets
    /// to the group after the store is written).
    ///
    /// A transaction that cannot commit is aborted and the error returned: the worker must
    /// stop, since its in-memory state includes the aborted updates; a restart resumes from
    /// the last committed transaction.
    pub fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        offsets: &TopicPartitionList,
    ) -> Result<bool> {
        if matches!(self, Sink::Plain(_)) {
            return Ok(false);
        }
        if offsets.count() > 0 {
            let metadata = consumer.group_metadata().ok_or_else(|| {
                StreamError::Config("exactly-once needs the consumer's group metadata".into())
            })?;
            let producer = self.producer()?;
            let sent = producer.send_offsets_to_transaction(offsets, &metadata, TXN_TIMEOUT);
            if let Err(e) = sent {
                return Err(self.abort("send offsets to transaction", e));
            }
        }
        let Sink::Transactional { producer, open } = self else {
            return Ok(false);
        };
        if !*open {
            return Ok(true);
        }
        loop {
            match producer.commit_transaction(TXN_TIMEOUT) {
                Ok(()) => {
                    *open = false;
                    return Ok(true);
                }
                Err(KafkaError::Transaction(e)) if e.is_retriable() => {
                    tracing::warn!(error = %e, "transaction commit not yet possible; retrying");
                }
                Err(e) => return Err(self.abort("commit transaction", e)),
            }
        }
    }

    fn abort(&mut self, op: &'static str, error: KafkaError) -> StreamError {
        if let Sink::Transactional { producer, open } = self {
            let fatal = matches!(&error, KafkaError::Transaction(e) if e.is_fatal());
            if *open && !fatal {
                if let Err(e) = producer.abort_transaction(TXN_TIMEOUT) {
                    tracing::error!(error = %e, "could not abort the transaction; the broker aborts it at its timeout");
                }
            }
            *open = false;
        }
        producer_error(self.tracker(), op, error)
    }
}
