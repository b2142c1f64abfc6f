//! An in-process Kafka for the examples, the tests and quick experiments: [`EmbeddedBroker`]
//! (librdkafka's mock cluster, reachable by any Kafka client on loopback), and [`Demo`], one
//! holding an input topic made and filled up front, with the [`AppConfig`] an app needs to run
//! against it.
//!
//! Limits are librdkafka's: data in memory only, no compaction, no transactions honoured, no
//! CreateTopics (the config lets the core's changelogs be created on first use). Not for
//! production.

mod broker;

pub use broker::{BrokerError, EmbeddedBroker};

use crate::app::AppConfig;
use crate::config::KafkaConfig;
use crate::error::{Result, StreamError};
use crate::shutdown::Shutdown;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use std::time::{Duration, Instant};

/// One input record: key, value, timestamp (ms since the epoch).
pub type Input = (String, String, Option<i64>);

/// An embedded broker holding one input topic.
pub struct Demo {
    cluster: EmbeddedBroker,
    records: usize,
}

impl Demo {
    /// Starts the cluster, creates `topic` with `partitions` and produces `records` to it,
    /// partitioned by Kafka's default partitioner (murmur2 of the key).
    pub fn start(topic: &str, partitions: i32, records: Vec<Input>) -> Result<Self> {
        let cluster = EmbeddedBroker::start(1)?;
        cluster.create_topic(topic, partitions)?;
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            // Java clients' default, which the tables' `partition_of` follows.
            .set("partitioner", "murmur2_random")
            .create()
            .map_err(StreamError::kafka("create producer"))?;
        for (key, value, ts) in &records {
            let mut r = BaseRecord::to(topic).key(key).payload(value);
            if let Some(ts) = ts {
                r = r.timestamp(*ts);
            }
            producer.send(r).map_err(|(e, _)| StreamError::Kafka {
                op: "send",
                source: e,
            })?;
            producer.poll(Duration::ZERO);
        }
        producer
            .flush(Duration::from_secs(30))
            .map_err(StreamError::kafka("flush"))?;
        Ok(Self {
            cluster,
            records: records.len(),
        })
    }

    /// Every whitespace-separated word of `text` as a record keyed (and valued) by itself.
    pub fn words(text: &str) -> Vec<Input> {
        text.split_whitespace()
            .map(|w| (w.to_string(), w.to_string(), None))
            .collect()
    }

    /// `<second> <key>` lines as records keyed by `key` at `second` seconds after `base_ms`.
    pub fn timed_keys(text: &str, base_ms: i64) -> Result<Vec<Input>> {
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut parts = line.split_whitespace();
            let (Some(s), Some(key)) = (parts.next(), parts.next()) else {
                return Err(StreamError::Config(format!("not '<second> <key>': {line}")));
            };
            let s: i64 = s
                .parse()
                .map_err(|e| StreamError::Config(format!("bad second in '{line}': {e}")))?;
            out.push((key.to_string(), key.to_string(), Some(base_ms + s * 1000)));
        }
        Ok(out)
    }

    /// How many records were produced.
    pub fn records(&self) -> u64 {
        self.records as u64
    }

    /// The config of an app `app_id` on this cluster, its stores in a fresh temporary folder.
    pub fn config(&self, app_id: &str) -> AppConfig {
        let mut kafka = KafkaConfig::new(self.cluster.bootstrap_servers());
        kafka.topics_created_on_first_use();
        kafka.prefer_consumer_group_protocol();
        kafka.short_fetch_wait();
        let dir = std::env::temp_dir().join(format!(
            "cta-stream-demo-{app_id}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        AppConfig::new(app_id, kafka, dir)
    }

    /// Checks `done` every 50 ms (on a blocking thread) and triggers `shutdown` once it holds,
    /// or after `limit` (then with a message on stderr).
    pub fn stop_when(
        &self,
        shutdown: Shutdown,
        limit: Duration,
        mut done: impl FnMut() -> bool + Send + 'static,
    ) {
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            while !shutdown.is_triggered() && !done() {
                if start.elapsed() > limit {
                    eprintln!("demo: not done after {limit:?}; stopping");
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            shutdown.trigger();
        });
    }
}

/// Reads a table view (`GET url`, see [`crate::view`]) until its values add up to
/// `total`, prints one `key<TAB>value` line per entry (a text key without quotes), then
/// triggers `shutdown`. Gives up after a minute, with a message on stderr.
pub async fn print_table_when(url: String, total: u64, shutdown: Shutdown) {
    let start = Instant::now();
    let client = reqwest::Client::new();
    while !shutdown.is_triggered() && start.elapsed() < Duration::from_secs(60) {
        let entries = match client.get(&url).send().await {
            Ok(r) => r.json::<Vec<serde_json::Value>>().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let sum: u64 = entries.iter().filter_map(|e| e["value"].as_u64()).sum();
        if sum == total {
            for e in &entries {
                match &e["key"] {
                    serde_json::Value::String(k) => println!("{k}\t{}", e["value"]),
                    k => println!("{k}\t{}", e["value"]),
                }
            }
            shutdown.trigger();
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("demo: {url} did not reach a total of {total}; stopping");
    shutdown.trigger();
}
