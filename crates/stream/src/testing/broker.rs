//! Helpers for tests that run an app against a broker (the embedded one or a real one), as
//! Kafka Streams' test utilities have them: wait until a condition holds ([`eventually`],
//! [`eventually_blocking`]), names no other run uses ([`unique_name`]), and a topic read to its
//! current end by a plain consumer ([`read_topic`]), independent of the app's runtime.
//! Not for production code: the waits panic when their time runs out, as an assertion does.

use super::Output;
use crate::error::{Result, StreamError};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the waits try again.
pub const POLL_EVERY: Duration = Duration::from_millis(50);

/// Runs `probe` until it returns `Ok`, every [`POLL_EVERY`], and returns its value; after
/// `timeout`, panics with `what` and the last `Err` (what was seen instead).
pub async fn eventually<T, E: Debug>(
    what: &str,
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> std::result::Result<T, E>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(seen) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last seen: {seen:?}")
            }
            Err(_) => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}

/// [`eventually`] for code without a runtime: sleeps the thread between tries.
pub fn eventually_blocking<T, E: Debug>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> std::result::Result<T, E>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(seen) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last seen: {seen:?}")
            }
            Err(_) => std::thread::sleep(POLL_EVERY),
        }
    }
}

/// `prefix` followed by this process's id, the time and a counter: a topic, group or app id no
/// other test or run shares, on a broker that outlives the test.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        crate::now_ms(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Every record of `topic` from each partition's start to its end when called, read by a
/// consumer of its own (no group offsets used or committed). Records appended meanwhile are
/// not included. Fails when the topic does not exist or the end is not reached in 2 minutes.
pub fn read_topic(brokers: &str, topic: &str) -> Result<Vec<Output>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "cta-stream-testing-reader")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(StreamError::kafka("create reader"))?;
    let timeout = Duration::from_secs(10);
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(StreamError::kafka("fetch metadata"))?;
    let partitions = md.topics().first().map_or(0, |t| t.partitions().len()) as i32;
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(StreamError::kafka("fetch watermarks"))?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Offset(low))
                .map_err(StreamError::kafka("assign"))?;
            ends.insert(p, high);
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer
        .assign(&tpl)
        .map_err(StreamError::kafka("assign"))?;
    let mut next: HashMap<i32, i64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while ends
        .iter()
        .any(|(p, h)| next.get(p).copied().unwrap_or(0) < *h)
    {
        if Instant::now() >= deadline {
            return Err(StreamError::Kafka {
                op: "read a topic to its end within 2 minutes",
                source: KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut),
            });
        }
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.map_err(StreamError::kafka("read"))?;
        if ends
            .get(&m.partition())
            .is_some_and(|end| m.offset() < *end)
        {
            out.push(Output {
                topic: topic.to_string(),
                partition: m.partition(),
                offset: m.offset(),
                timestamp: m.timestamp().to_millis(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: m.headers().map_or_else(Vec::new, |hs| {
                    hs.iter()
                        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                }),
            });
        }
        next.insert(m.partition(), m.offset() + 1);
    }
    Ok(out)
}
