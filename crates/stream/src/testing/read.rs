//! What a test reads back from the driver: the records of a topic partition, positions,
//! the flushed outputs (produced records, changelogs, dead letters).

use super::{Output, TestDriver, TestRecord};
use crate::names;
use std::path::PathBuf;

impl TestDriver {
    /// Every record fed to or produced into a topic partition, in offset order (a repartition
    /// topic's values are framed with their upstream position).
    pub fn records(&self, topic: &str, partition: i32) -> Vec<TestRecord> {
        self.topics
            .get(&(topic.to_string(), partition))
            .map(|log| {
                log.iter()
                    .map(|r| TestRecord {
                        topic: topic.to_string(),
                        key: r.key.clone(),
                        value: r.value.clone(),
                        partition: Some(partition),
                        timestamp: Some(r.timestamp),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Next offset to process of a source partition.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.get(&(topic.to_string(), partition)).copied()
    }

    /// Records skipped for a data error (dead-lettered when the app's `dead_letter` is on).
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered
    }

    /// Every flushed record of `topic`, in the order produced.
    pub fn produced(&self, topic: &str) -> Vec<&Output> {
        self.outputs
            .flushed
            .iter()
            .filter(|o| o.topic == topic)
            .collect()
    }

    /// The flushed changelog records of the table `table`.
    pub fn changelog(&self, table: &str) -> Vec<&Output> {
        self.tables
            .iter()
            .find(|t| t.name() == table)
            .map(|t| self.produced(t.changelog_topic()))
            .unwrap_or_default()
    }

    /// The flushed dead letters of `source_topic`.
    pub fn dead_letters(&self, source_topic: &str) -> Vec<&Output> {
        self.produced(&names::dlq_topic(source_topic))
    }

    /// The data dir of the driven app's stores.
    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }
}
