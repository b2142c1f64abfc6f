//! Thin rdkafka helpers: topic creation that tolerates brokers without CreateTopics, partition
//! counts, watermarks, and a producer whose deliveries are tracked per partition.

use crate::config::{KafkaConfig, REQUEST_TIMEOUT};
use crate::error::{Result, StreamError};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientContext, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// A topic the app needs, with its partition count and whether it is a compacted changelog.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub compacted: bool,
}

/// Creates the topics that do not exist yet. Brokers that do not implement CreateTopics (the
/// librdkafka mock) auto-create topics on first use instead; that is logged, not an error.
pub async fn ensure_topics(config: &KafkaConfig, topics: &[TopicSpec]) -> Result<()> {
    ensure_topics_from(config, |_| topics.to_vec()).await
}

/// [`ensure_topics`] for topics derived from the cluster's current partition counts (e.g. a
/// changelog with its source topic's count): `specs` gets the one listing both need.
pub async fn ensure_topics_from(
    config: &KafkaConfig,
    specs: impl FnOnce(&HashMap<String, i32>) -> Vec<TopicSpec>,
) -> Result<()> {
    // The listing goes through a plain client: dropping an AdminClient waits up to 100 ms
    // for its polling thread, which every start paid although topics rarely need creating.
    let lister: BaseProducer = config
        .admin()
        .create()
        .map_err(StreamError::kafka("create metadata client"))?;
    // Only ask for the topics the broker does not know yet (one metadata request for all).
    let counts = tokio::task::block_in_place(|| partition_counts(lister.client()))?;
    let topics = specs(&counts);
    let mut missing = Vec::new();
    for t in &topics {
        // A broker without CreateTopics (the embedded one) creates a topic missing from the
        // listing when asked for it by name. Never elsewhere: Kafka's auto-creation would
        // give it the broker's default partition count.
        let known = match counts.get(&t.name).copied() {
            None if config.creates_topics_on_first_use() => {
                tokio::task::block_in_place(|| partition_count(lister.client(), &t.name))?
            }
            n => n,
        };
        match known {
            Some(n) if n < t.partitions => {
                tracing::warn!(topic = %t.name, partitions = n, wanted = t.partitions, "topic exists with fewer partitions than wanted")
            }
            Some(_) => {}
            None => missing.push(t),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    drop(lister);
    create_topics(config, &missing).await
}

/// Asks the broker to create `missing`. Fails only when no admin client can be made: a broker
/// that cannot create them (no CreateTopics, a timeout, a refusal) is logged, and the topics
/// are left to its auto-creation.
async fn create_topics(config: &KafkaConfig, missing: &[&TopicSpec]) -> Result<()> {
    let new: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|t| {
            let nt = NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(-1));
            if t.compacted {
                nt.set("cleanup.policy", "compact")
            } else {
                nt
            }
        })
        .collect();
    let admin: AdminClient<DefaultClientContext> = config
        .admin()
        .create()
        .map_err(StreamError::kafka("create admin client"))?;
    let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let created = tokio::time::timeout(
        REQUEST_TIMEOUT + Duration::from_secs(5),
        admin.create_topics(new.iter(), &opts),
    )
    .await;
    let Ok(created) = created else {
        let names: Vec<&str> = missing.iter().map(|t| t.name.as_str()).collect();
        tracing::warn!(topics = ?names, "CreateTopics timed out; relying on broker auto-creation");
        return Ok(());
    };
    match created {
        Ok(results) => {
            for r in results {
                match r {
                    Ok(name) => tracing::info!(topic = %name, "created topic"),
                    Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                        tracing::debug!(topic = %name, "topic exists")
                    }
                    Err((name, code)) => {
                        tracing::warn!(topic = %name, error = %code, "could not create topic; relying on broker auto-creation")
                    }
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "CreateTopics not available; relying on broker auto-creation")
        }
    }
    Ok(())
}

/// Number of partitions of `topic`, or `None` when the broker does not know it.
pub fn partition_count<C: ClientContext>(client: &Client<C>, topic: &str) -> Result<Option<i32>> {
    let md = client
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(StreamError::kafka("fetch metadata"))?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len() as i32)
        .filter(|n| *n > 0))
}

/// Partition count of every topic the cluster knows, from one metadata request.
pub fn partition_counts<C: ClientContext>(client: &Client<C>) -> Result<HashMap<String, i32>> {
    let md = client
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .map_err(StreamError::kafka("fetch metadata"))?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}

/// Low and high watermark of a partition.
pub fn watermarks<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64)> {
    consumer
        .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
        .map_err(StreamError::kafka("fetch watermarks"))
}

/// Remembers the outcome of every delivery: the highest offset written per partition and the
/// first error, so a checkpoint can wait for its records and know exactly where they landed.
#[derive(Default)]
pub struct DeliveryTracker {
    inner: Mutex<DeliveryState>,
}

#[derive(Default)]
struct DeliveryState {
    last_offset: HashMap<(String, i32), i64>,
    error: Option<String>,
    delivered: u64,
}

impl DeliveryTracker {
    /// Takes the first delivery error since the last call, if any.
    pub fn take_error(&self) -> Option<String> {
        self.lock().error.take()
    }

    pub fn last_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.lock()
            .last_offset
            .get(&(topic.to_string(), partition))
            .copied()
    }

    pub fn delivered(&self) -> u64 {
        self.lock().delivered
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DeliveryState> {
        // Nothing panics while holding this lock, so poisoning cannot carry a broken state.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut st = self.lock();
        match result {
            Ok(m) => {
                st.delivered += 1;
                let key = (m.topic().to_string(), m.partition());
                let e = st.last_offset.entry(key).or_insert(-1);
                if m.offset() > *e {
                    *e = m.offset();
                }
            }
            Err((err, m)) => {
                if st.error.is_none() {
                    st.error = Some(format!("{} [{}]: {err}", m.topic(), m.partition()));
                }
            }
        }
    }
}

/// The group's committed offsets of `partitions`, as `consumer`'s group id sees them;
/// partitions without a committed offset are left out. Blocking.
pub fn committed_offsets<'a, C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: impl IntoIterator<Item = &'a (String, i32)>,
) -> Result<HashMap<(String, i32), i64>> {
    let mut tpl = TopicPartitionList::new();
    for (t, p) in partitions {
        tpl.add_partition(t, *p);
    }
    let list = consumer
        .committed_offsets(tpl, REQUEST_TIMEOUT)
        .map_err(StreamError::kafka("read committed offsets"))?;
    Ok(list
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
            _ => None,
        })
        .collect())
}

pub type TrackedProducer = ThreadedProducer<DeliveryTracker>;

pub fn tracked_producer(config: &KafkaConfig) -> Result<TrackedProducer> {
    tracked_producer_with(config.producer())
}

/// A tracked producer with the given client settings (e.g. a transactional producer).
pub fn tracked_producer_with(config: rdkafka::ClientConfig) -> Result<TrackedProducer> {
    config
        .create_with_context(DeliveryTracker::default())
        .map_err(StreamError::kafka("create producer"))
}

/// Sends one record, waiting (bounded back-pressure) while the local queue is full.
pub fn send_blocking(
    producer: &TrackedProducer,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    headers: Option<OwnedHeaders>,
    timestamp: Option<i64>,
) -> Result<()> {
    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
    if let Some(p) = partition {
        record = record.partition(p);
    }
    if let Some(k) = key {
        record = record.key(k);
    }
    if let Some(v) = payload {
        record = record.payload(v);
    }
    if let Some(h) = headers {
        record = record.headers(h);
    }
    if let Some(ts) = timestamp {
        record = record.timestamp(ts);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                r,
            )) => {
                record = r;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(producer_error(producer, "produce", e)),
        }
    }
}

/// `error` of a producer call as a [`StreamError`]; when it is librdkafka's generic "fatal
/// error", the producer's recorded fatal error instead (e.g. `ProducerFenced` with its
/// reason), so the one line a worker stops with says what happened.
pub fn producer_error(
    producer: &TrackedProducer,
    op: &'static str,
    error: rdkafka::error::KafkaError,
) -> StreamError {
    let fatal = error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal)
        || matches!(&error, rdkafka::error::KafkaError::Transaction(e) if e.is_fatal());
    fatal
        .then(|| fatal_error(producer, op))
        .flatten()
        .unwrap_or(StreamError::Kafka { op, source: error })
}

/// The producer's fatal error, if it has had one.
fn fatal_error(producer: &TrackedProducer, op: &'static str) -> Option<StreamError> {
    let (code, reason) = producer.client().fatal_error()?;
    Some(StreamError::KafkaFatal { op, code, reason })
}

/// Waits until every record sent so far is delivered, then reports the first failure.
pub fn flush(producer: &TrackedProducer, timeout: Duration) -> Result<()> {
    // The producer's own thread serves delivery reports; waiting for the in-flight count to
    // reach zero returns as soon as the last ack is in (rdkafka's `flush` ends in a 100 ms
    // poll, which made every checkpoint take at least that long).
    let deadline = std::time::Instant::now() + timeout;
    while producer.in_flight_count() > 0 {
        if std::time::Instant::now() >= deadline {
            return Err(StreamError::Kafka {
                op: "flush producer",
                source: rdkafka::error::KafkaError::Flush(RDKafkaErrorCode::RequestTimedOut),
            });
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    if let Some(e) = producer.context().take_error() {
        // A fatal error (a fenced transactional producer) purges what was queued: say that,
        // not the purge.
        if let Some(fatal) = fatal_error(producer, "deliver") {
            return Err(fatal);
        }
        return Err(StreamError::Changelog {
            topic: "delivery".into(),
            reason: e,
        });
    }
    Ok(())
}
