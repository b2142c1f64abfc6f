//! What goes into a [`super::TestDriver`] ([`TestRecord`]: a record with its key, value,
//! partition and timestamp) and what comes out of it ([`Output`]: changelog and dead-letter
//! records, as a reader of those topics would see them).

use crate::codec::json;
use serde::Serialize;

/// A record to feed to the driver. Unset parts get defaults: the partition from the key (Kafka's
/// default partitioner; round robin without a key), the timestamp from the driver's clock.
#[derive(Debug, Clone)]
pub struct TestRecord {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub partition: Option<i32>,
    /// Event time, milliseconds since the epoch.
    pub timestamp: Option<i64>,
}

impl TestRecord {
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            key: None,
            value: None,
            partition: None,
            timestamp: None,
        }
    }

    pub fn key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.key = Some(key.as_ref().to_vec());
        self
    }

    pub fn value(mut self, value: impl AsRef<[u8]>) -> Self {
        self.value = Some(value.as_ref().to_vec());
        self
    }

    /// The value as JSON.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Self {
        self.value(json::encode(value))
    }

    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Event time in milliseconds since the epoch.
    pub fn at(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }
}

/// A record the app produced (and a checkpoint flushed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record's timestamp (ms) as read from a broker ([`super::read_topic`]); `None` for
    /// the driver's outputs.
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    /// `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Output {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The key decoded from JSON (the encoding of table keys in changelogs).
    pub fn json_key<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        json::decode(self.key.as_deref()).ok()
    }

    /// The value decoded from JSON (`None` for a tombstone or another encoding).
    pub fn json_value<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        json::decode(self.value.as_deref()).ok()
    }
}

/// Records produced since the last checkpoint, and those a checkpoint flushed.
#[derive(Default)]
pub(super) struct Outputs {
    pub(super) flushed: Vec<Output>,
    pub(super) pending: Vec<Output>,
}

impl Outputs {
    pub(super) fn send(
        &mut self,
        topic: &str,
        partition: i32,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<(String, Vec<u8>)>,
    ) {
        self.pending.push(Output {
            topic: topic.to_string(),
            partition,
            offset: -1,
            timestamp: None,
            key,
            value,
            headers,
        });
    }

    /// Flushes the pending records: each gets the next offset of its topic partition.
    pub(super) fn flush(&mut self) {
        for mut out in std::mem::take(&mut self.pending) {
            out.offset = self
                .last_offset(&out.topic, out.partition)
                .map_or(0, |o| o + 1);
            self.flushed.push(out);
        }
    }

    /// The last flushed offset of a topic partition.
    pub(super) fn last_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.flushed
            .iter()
            .rev()
            .find(|o| o.topic == topic && o.partition == partition)
            .map(|o| o.offset)
    }
}
