//! The broker of the core's tests: the embedded one (librdkafka's mock cluster, in this
//! process) by default, or any Kafka-protocol broker named by `CTA_TEST_BROKERS`.
#![allow(dead_code)]

use cta_stream_core::embedded::EmbeddedBroker;
use cta_stream_core::{KafkaConfig, Shutdown};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::time::Duration;

pub struct TestEnv {
    embedded: Option<EmbeddedBroker>,
    pub kafka: KafkaConfig,
}

pub fn env() -> TestEnv {
    // The core's own logs, with RUST_LOG set (e.g. `RUST_LOG=info cargo test -- --nocapture`).
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    match std::env::var("CTA_TEST_BROKERS") {
        Ok(brokers) => TestEnv {
            embedded: None,
            kafka: KafkaConfig::new(brokers),
        },
        Err(_) => {
            let broker = EmbeddedBroker::start(1).unwrap();
            let mut kafka = KafkaConfig::new(broker.bootstrap_servers());
            // The mock has no CreateTopics: the core's changelogs are created on first use.
            kafka.topics_created_on_first_use();
            TestEnv {
                embedded: Some(broker),
                kafka,
            }
        }
    }
}

impl TestEnv {
    /// The embedded broker, for fault injection; `None` on an external one.
    pub fn embedded(&self) -> Option<&EmbeddedBroker> {
        self.embedded.as_ref()
    }

    /// Creates topics on the embedded broker (a real broker gets them from the code under test).
    pub fn create_topics(&self, names: &[String], partitions: i32) {
        if let Some(b) = &self.embedded {
            for n in names {
                b.create_topic(n, partitions).unwrap();
            }
        }
    }
}

/// Triggers a shutdown when dropped, so a failing assertion does not leave an app running.
pub struct StopOnDrop(pub Shutdown);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

/// Produces `n` records over `keys` keys (`k0`, `k1`…), each keyed and valued (JSON) by its
/// key; returns how many of each were produced.
pub fn produce(brokers: &str, topic: &str, n: usize, keys: usize) -> BTreeMap<String, i64> {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..n {
        let k = format!("k{}", (i * 7919) % keys);
        let payload = serde_json::to_vec(&k).unwrap();
        loop {
            match p.send(BaseRecord::to(topic).key(k.as_bytes()).payload(&payload)) {
                Ok(()) => break,
                Err(_) => {
                    p.poll(Duration::from_millis(5));
                }
            }
        }
        *expected.entry(k).or_insert(0) += 1;
    }
    p.flush(Duration::from_secs(30)).unwrap();
    expected
}
