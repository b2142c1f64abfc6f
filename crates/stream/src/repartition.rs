//! Re-keying through a repartition topic (Faust's `group_by`, Kafka Streams' `groupBy`): an
//! upstream agent computes a new key for every record of a source topic and writes the record
//! to the internal topic `{app_id}-{name}-repartition` ([`crate::names::repartition_topic`]),
//! partitioned by that key; downstream agents and tables are declared on that topic, so a table
//! keyed by the new key is exact whatever the source topic is keyed by.
//!
//! Exactly-once state, as for any source: the re-keyed records go out through the checkpoint's
//! producer ([`crate::sink::Sink`]), so the flush before the upstream offsets are committed
//! covers them (and, in exactly-once mode, the transaction does); the repartition topic's
//! offsets are stored with the downstream tables' data.
//!
//! At least once, an upstream crash after producing and before committing produces records
//! again. So each record carries its upstream position (partition, offset) in a small frame
//! before the original value, and the downstream wrapper ([`Repartition::agent`]) keeps, per
//! repartition partition, the highest upstream offset applied per upstream partition in an
//! internal table ([`crate::names::repartition_seen_table`]) checkpointed with the downstream
//! tables; a record at or below it is skipped. Why that is enough: one producer keeps each
//! partition's records in send order (idempotent producer, no gaps), every upstream run starts
//! at a committed offset and re-keys records in offset order with the same key function, so in
//! a repartition partition each run's records from one upstream partition are in increasing
//! offset order, and a record at or below the highest applied one was produced, and applied or
//! skipped, before. The key function must be deterministic.
//!
//! Owns the framing, the upstream agent, the downstream wrapper and the topic check; sending
//! the queued records is the runtime's (and [`crate::testing::TestDriver`]'s).

use crate::agent::Agent;
use crate::app::App;
use crate::config::KafkaConfig;
use crate::declare::FnAgent;
use crate::error::{DecodeError, ErrorKind, Result, StreamError};
use crate::kafka::partition_count;
use crate::names;
use crate::record::Record;
use crate::table::{Table, TableSpec};
use rdkafka::producer::{BaseProducer, Producer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// First byte of a repartition record's value: the frame's version.
const FRAME_VERSION: u8 = 1;
/// Version, upstream partition (i32), upstream offset (i64), value present (0 or 1).
const FRAME_LEN: usize = 1 + 4 + 8 + 1;

/// A re-keyed record waiting to be produced to its repartition topic.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) key: Vec<u8>,
    /// The framed value ([`frame`]).
    pub(crate) value: Vec<u8>,
    pub(crate) timestamp: Option<i64>,
}

/// Records an upstream agent re-keyed, in processing order, until the runtime sends them.
#[derive(Clone, Default)]
pub(crate) struct Outbox(Arc<Mutex<Vec<Outgoing>>>);

impl Outbox {
    fn push(&self, out: Outgoing) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(out);
    }

    /// Everything queued so far, oldest first.
    pub(crate) fn take(&self) -> Vec<Outgoing> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A declared repartition, as the runtime needs it.
#[derive(Clone)]
pub(crate) struct RepartitionSpec {
    pub(crate) source_topic: String,
    pub(crate) topic: String,
    /// Chosen partition count; `None` takes the source topic's.
    pub(crate) partitions: Option<i32>,
    pub(crate) outbox: Outbox,
}

/// The frame of a repartition record's value: its upstream position, then the original value.
pub(crate) fn frame(partition: i32, offset: i64, value: Option<&[u8]>) -> Vec<u8> {
    let body = value.unwrap_or_default();
    let mut out = Vec::with_capacity(FRAME_LEN + body.len());
    out.push(FRAME_VERSION);
    out.extend_from_slice(&partition.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    out.push(u8::from(value.is_some()));
    out.extend_from_slice(body);
    out
}

/// The upstream (partition, offset) and the original value of a framed record.
pub(crate) fn unframe(
    bytes: Option<&[u8]>,
) -> std::result::Result<(i32, i64, Option<&[u8]>), DecodeError> {
    let bytes = bytes.ok_or(DecodeError::Empty)?;
    let not_ours = || {
        DecodeError::Text(format!(
            "not a repartition record ({} bytes, frame version {:?})",
            bytes.len(),
            bytes.first()
        ))
    };
    if bytes.len() < FRAME_LEN || bytes[0] != FRAME_VERSION || bytes[13] > 1 {
        return Err(not_ours());
    }
    let partition = i32::from_be_bytes(bytes[1..5].try_into().map_err(|_| not_ours())?);
    let offset = i64::from_be_bytes(bytes[5..13].try_into().map_err(|_| not_ours())?);
    let value = (bytes[13] == 1).then_some(&bytes[FRAME_LEN..]);
    Ok((partition, offset, value))
}

/// The upstream agent: re-keys each record of the source topic into the outbox.
struct GroupBy<F> {
    source_topic: String,
    /// The repartition topic.
    target: String,
    key: F,
    outbox: Outbox,
}

impl<F> Agent for GroupBy<F>
where
    F: FnMut(&Record<'_>) -> Result<Option<Vec<u8>>> + Send,
{
    fn name(&self) -> &str {
        &self.target
    }

    fn topic(&self) -> &str {
        &self.source_topic
    }

    fn process(&mut self, record: &Record<'_>) -> Result<()> {
        let Some(key) = (self.key)(record)? else {
            return Err(DecodeError::NoKey {
                topic: self.target.clone(),
                reason: "the key function returned none".into(),
            }
            .into());
        };
        self.outbox.push(Outgoing {
            key,
            value: frame(record.partition, record.offset, record.payload),
            timestamp: record.timestamp,
        });
        Ok(())
    }
}

/// A declared repartition topic: declare the downstream tables on [`Repartition::topic`] and
/// its agents with [`Repartition::agent`] / [`Repartition::agent_fn`].
#[derive(Clone)]
pub struct Repartition {
    topic: String,
    seen: Table<i32, i64>,
    skipped: Arc<AtomicU64>,
}

impl Repartition {
    /// The repartition topic, `{app_id}-{name}-repartition`.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Wraps `agent` to consume the repartition topic (whatever topic it names itself): it sees
    /// each upstream record once, with its new key, the original value and timestamp, and the
    /// repartition topic's partition and offset.
    pub fn agent<A: Agent>(&self, agent: A) -> Through<A> {
        Through {
            topic: self.topic.clone(),
            seen: self.seen.clone(),
            skipped: self.skipped.clone(),
            inner: agent,
        }
    }

    /// [`Repartition::agent`] for a closure.
    pub fn agent_fn<F>(&self, f: F) -> Through<FnAgent<F>>
    where
        F: FnMut(&Record<'_>) -> Result<()> + Send,
    {
        self.agent(FnAgent::new(self.topic.clone(), f))
    }

    /// Records skipped downstream because their upstream position was applied already (an
    /// upstream crash between producing and committing), since this process started.
    pub fn duplicates_skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

/// A downstream agent of a repartition topic (see [`Repartition::agent`]).
pub struct Through<A> {
    topic: String,
    seen: Table<i32, i64>,
    skipped: Arc<AtomicU64>,
    inner: A,
}

impl<A: Agent> Agent for Through<A> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn topic(&self) -> &str {
        &self.topic
    }

    fn process(&mut self, record: &Record<'_>) -> Result<()> {
        let (upstream, offset, payload) = unframe(record.payload)?;
        if self
            .seen
            .get(record, &upstream)?
            .is_some_and(|applied| offset <= applied)
        {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let result = self.inner.process(&Record { payload, ..*record });
        if let Err(e) = &result {
            if e.kind() != ErrorKind::Data {
                return result;
            }
        }
        // Applied (or dead-lettered): either way done with.
        self.seen.put(record, upstream, offset)?;
        result
    }

    fn end_batch(&mut self) -> Result<()> {
        self.inner.end_batch()
    }
}

impl App {
    /// Re-keys every record of `source_topic` by `key` into the repartition topic
    /// `{app_id}-{name}-repartition`, created with the source topic's partition count. `key`
    /// returns the new key's bytes (partitioned like Kafka's default partitioner, so a table
    /// keyed by them finds them with [`crate::table::route`]); an error of kind Data or `None`
    /// dead-letters the record to `<source_topic>.dlq` with the reason, any other error stops
    /// the worker. `key` must give the same answer for the same record every time.
    pub fn group_by<F>(&mut self, name: &str, source_topic: &str, key: F) -> Repartition
    where
        F: FnMut(&Record<'_>) -> Result<Option<Vec<u8>>> + Send + 'static,
    {
        self.declare_repartition(name, source_topic, None, key)
    }

    /// [`App::group_by`] into a repartition topic of `partitions` partitions.
    pub fn group_by_into<F>(
        &mut self,
        name: &str,
        source_topic: &str,
        partitions: i32,
        key: F,
    ) -> Repartition
    where
        F: FnMut(&Record<'_>) -> Result<Option<Vec<u8>>> + Send + 'static,
    {
        self.declare_repartition(name, source_topic, Some(partitions.max(1)), key)
    }

    fn declare_repartition<F>(
        &mut self,
        name: &str,
        source_topic: &str,
        partitions: Option<i32>,
        key: F,
    ) -> Repartition
    where
        F: FnMut(&Record<'_>) -> Result<Option<Vec<u8>>> + Send + 'static,
    {
        let topic = names::repartition_topic(&self.config.app_id, name);
        let outbox = Outbox::default();
        self.repartitions.push(RepartitionSpec {
            source_topic: source_topic.to_string(),
            topic: topic.clone(),
            partitions,
            outbox: outbox.clone(),
        });
        self.agent(GroupBy {
            source_topic: source_topic.to_string(),
            target: topic.clone(),
            key,
            outbox,
        });
        let seen = self.table(TableSpec {
            name: names::repartition_seen_table(name),
            source_topic: topic.clone(),
            changelog_topic: None,
        });
        Repartition {
            topic,
            seen,
            skipped: Arc::default(),
        }
    }
}

/// The partition count each repartition topic must have: the chosen one, else its source
/// topic's as `counts` lists it (`None` when the source does not exist yet).
pub(crate) fn wanted_partitions(
    spec: &RepartitionSpec,
    counts: &HashMap<String, i32>,
) -> Option<i32> {
    spec.partitions
        .or_else(|| counts.get(&spec.source_topic).copied())
}

/// The partition count of every repartition topic, after refusing one whose count is not the
/// wanted one (its keys would land elsewhere than the downstream stores expect) or that does
/// not exist, each with a one-line error.
pub(crate) fn check_partitions(
    kafka: &KafkaConfig,
    specs: &[RepartitionSpec],
) -> Result<HashMap<String, i32>> {
    let mut out = HashMap::new();
    if specs.is_empty() {
        return Ok(out);
    }
    let client: BaseProducer = kafka
        .admin()
        .create()
        .map_err(StreamError::kafka("create metadata client"))?;
    for spec in specs {
        let source = partition_count(client.client(), &spec.source_topic)?;
        let wanted = spec.partitions.or(source);
        let Some(actual) = partition_count(client.client(), &spec.topic)? else {
            return Err(StreamError::Config(format!(
                "repartition topic {} does not exist and could not be created",
                spec.topic
            )));
        };
        if let Some(wanted) = wanted.filter(|w| *w != actual) {
            let why = match spec.partitions {
                Some(_) => "the chosen count".to_string(),
                None => format!("as many as its source {}", spec.source_topic),
            };
            return Err(StreamError::Config(format!(
                "repartition topic {} has {actual} partitions but needs {wanted} ({why}); recreate it with {wanted} and reset the downstream state",
                spec.topic
            )));
        }
        out.insert(spec.topic.clone(), actual);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_upstream_position_and_the_value_unchanged() {
        let framed = frame(3, 1_234_567_890_123, Some(b"\x00avro"));
        assert_eq!(
            unframe(Some(&framed)).unwrap(),
            (3, 1_234_567_890_123, Some(&b"\x00avro"[..]))
        );
        let empty = frame(0, 7, Some(b""));
        assert_eq!(unframe(Some(&empty)).unwrap(), (0, 7, Some(&b""[..])));
        let null = frame(1, 0, None);
        assert_eq!(unframe(Some(&null)).unwrap(), (1, 0, None));
        assert!(unframe(None).is_err());
        assert!(unframe(Some(b"\x00avro-from-elsewhere")).is_err());
        assert!(unframe(Some(&framed[..10])).is_err());
    }
}
