//! Topics: the ones a CTA pipeline uses (created on the embedded broker), records written
//! with a plain producer as another system would, and topics read back to their current end.

use super::TestEnv;
use rdkafka::ClientConfig;
use std::time::Duration;

/// A record's key and value bytes.
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Every record of `topic` from the beginning to the current end: (key, value) bytes.
pub fn read_all(brokers: &str, topic: &str) -> Vec<KeyValue> {
    read_all_timed(brokers, topic)
        .into_iter()
        .map(|(k, v, _)| (k, v))
        .collect()
}

/// A record's key, value and timestamp.
pub type Timed = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// Every record of `topic` from the beginning to the current end, with timestamps.
pub fn read_all_timed(brokers: &str, topic: &str) -> Vec<Timed> {
    cta_stream::stream::testing::read_topic(brokers, topic)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp.unwrap_or(0)))
        .collect()
}

/// Topics the simulation writes plus the worker's changelogs, created (see [`TestEnv::create_topics`]).
pub async fn create_all_topics(env: &TestEnv, app_id: &str) {
    create_all_topics_with(env, app_id, 4).await;
}

/// [`create_all_topics`] with `partitions` each (the worker's changelog, repartition and
/// output topics too).
pub async fn create_all_topics_with(env: &TestEnv, app_id: &str, partitions: i32) {
    env.create_topics(&cta_topics(app_id, partitions), partitions)
        .await;
}

/// Every topic of a CTA pipeline of `app_id`: the simulation's and every topic the worker
/// writes (the mock has no CreateTopics; a missing one costs each worker start 15 s).
pub fn cta_topics(app_id: &str, partitions: i32) -> Vec<String> {
    cta_topics_of(&[app_id], partitions)
}

/// [`cta_topics`] of several apps sharing one broker, each topic once.
pub fn cta_topics_of(app_ids: &[&str], partitions: i32) -> Vec<String> {
    let mut topics: Vec<String> = cta_stream::transit::simulation::topic_specs(partitions)
        .into_iter()
        .map(|t| t.name)
        .collect();
    for a in app_ids {
        topics.extend(cta_stream::transit::worker_topics(a));
    }
    topics.sort();
    topics.dedup();
    topics
}

/// Sends one record with a plain producer (as another system would) and waits for delivery.
pub fn produce_raw(brokers: &str, topic: &str, key: Option<&[u8]>, payload: &[u8]) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(payload);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    p.send(rec).map_err(|(e, _)| e).unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
}

/// A station row as the JDBC source connector would publish it, on the Blue Line.
pub fn station_row_json(station_id: i32, name: &str, order: i32) -> Vec<u8> {
    serde_json::to_vec(&cta_stream::transit::stations::ConnectStationRow {
        stop_id: station_id + 1,
        direction_id: "N".into(),
        stop_name: format!("{name} (test-bound)"),
        station_name: name.to_string(),
        station_descriptive_name: name.to_string(),
        station_id,
        order,
        red: false,
        blue: true,
        green: false,
    })
    .unwrap()
}
