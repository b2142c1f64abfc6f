//! What a worker checkpointed and committed, read independently: the group's committed
//! offsets, the changelogs, and the partition stores in a stopped worker's data dir.

use super::{read_all, TestEnv};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;

/// The consumer group's committed offset per partition of `topic` (partitions without one are
/// left out).
pub fn group_committed(env: &TestEnv, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..md.topics()[0].partitions().len() as i32 {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .filter_map(|e| {
            e.offset()
                .to_raw()
                .filter(|o| *o >= 0)
                .map(|o| (e.partition(), o))
        })
        .collect()
}

/// The end (high watermark) of each partition of `topic`.
pub fn topic_ends(env: &TestEnv, topic: &str) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    (0..md.topics()[0].partitions().len() as i32)
        .map(|p| {
            let (_, high) = c
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap();
            (p, high)
        })
        .collect()
}

/// The turnstile counts the changelog says were checkpointed: the latest `COUNT` per station
/// in `TURNSTILE_SUMMARY`, read back with a plain consumer.
pub fn changelog_turnstile(env: &TestEnv) -> BTreeMap<i32, i64> {
    let mut latest = BTreeMap::new();
    for (_, v) in read_all(
        &env.kafka.brokers,
        cta_stream::transit::models::topics::TURNSTILE_SUMMARY,
    ) {
        let v: serde_json::Value = serde_json::from_slice(&v.unwrap()).unwrap();
        latest.insert(
            v["STATION_ID"].as_i64().unwrap() as i32,
            v["COUNT"].as_i64().unwrap(),
        );
    }
    latest
}

/// The turnstile table's source offsets summed over its 4 partition stores in `dir` (what the
/// last completed checkpoint covers), read with the worker stopped.
pub fn stored_total(dir: &std::path::Path, app_id: &str) -> i64 {
    use cta_stream::stream::table::store::{PartitionStore, StoreIdentity};
    let table = cta_stream::transit::tables::TURNSTILE;
    (0..4)
        .map(|p| {
            let identity = StoreIdentity {
                app_id: app_id.to_string(),
                table: table.to_string(),
                partition: p,
                partitions: 4,
            };
            let path = dir.join(app_id).join(table).join(p.to_string());
            let store = PartitionStore::open(&path, &identity).unwrap();
            store.offsets().unwrap().source.unwrap_or(0)
        })
        .sum()
}

/// Offsets on every changelog of `app_id` (high minus low watermark, summed over 4
/// partitions each): what a cold restore reads through.
pub fn changelog_offsets(env: &TestEnv, app_id: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .create()
        .unwrap();
    let mut n = 0;
    for t in cta_stream::transit::changelog_topics(app_id) {
        for p in 0..4 {
            let (lo, hi) = c.fetch_watermarks(&t, p, Duration::from_secs(10)).unwrap();
            n += hi - lo;
        }
    }
    n
}
