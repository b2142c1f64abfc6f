//! Where a benchmark runs: the embedded platform started in this process (default), or an
//! external Kafka-protocol broker and Schema Registry (`--brokers`, `--schema-registry-url`),
//! e.g. `cta platform` in another process, so this process's CPU figures exclude the broker.

use crate::{BenchError, Result};
use cta_stream::platform::{Platform, PlatformError};
use cta_stream::stream::kafka::{ensure_topics, partition_count, watermarks, TopicSpec};
use cta_stream::stream::{KafkaConfig, RegistryConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};

/// Which broker to use.
#[derive(Debug, Clone)]
pub enum BrokerChoice {
    /// The embedded platform, started in this process; `extra` librdkafka properties are
    /// added to every client (as `-X` does for an external broker).
    Embedded { extra: Vec<(String, String)> },
    External {
        kafka: KafkaConfig,
        registry: RegistryConfig,
    },
}

impl BrokerChoice {
    pub fn embedded() -> Self {
        BrokerChoice::Embedded { extra: Vec::new() }
    }
}

/// A broker and registry ready for a benchmark.
pub struct BenchEnv {
    pub platform: Option<Platform>,
    pub kafka: KafkaConfig,
    pub registry: RegistryConfig,
}

impl BenchEnv {
    pub async fn start(choice: &BrokerChoice) -> Result<Self> {
        match choice {
            BrokerChoice::Embedded { extra } => {
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                let platform = Platform::start(addr, None).await?;
                let mut kafka = KafkaConfig::new(platform.broker.bootstrap_servers());
                kafka.extra = extra.clone();
                kafka.prefer_consumer_group_protocol();
                kafka.topics_created_on_first_use();
                let registry = RegistryConfig::new(platform.registry_url.clone());
                Ok(Self {
                    platform: Some(platform),
                    kafka,
                    registry,
                })
            }
            BrokerChoice::External { kafka, registry } => Ok(Self {
                platform: None,
                kafka: kafka.clone(),
                registry: registry.clone(),
            }),
        }
    }

    pub fn is_embedded(&self) -> bool {
        self.platform.is_some()
    }

    /// One line for reports.
    pub fn describe(&self) -> String {
        let extra = if self.kafka.extra.is_empty() {
            String::new()
        } else {
            let props: Vec<String> = self
                .kafka
                .extra
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("; extra librdkafka properties: {}", props.join(" "))
        };
        let groups = if self.kafka.uses_consumer_group_protocol() {
            "; consumer groups: KIP-848 (group.protocol=consumer)"
        } else {
            "; consumer groups: classic"
        };
        self.describe_broker() + groups + &extra
    }

    fn describe_broker(&self) -> String {
        if self.is_embedded() {
            format!(
                "embedded platform in this process (librdkafka mock cluster at {}, registry {}); CPU and RSS figures include the broker",
                self.kafka.brokers, self.registry.url
            )
        } else {
            format!(
                "external broker {} and registry {}; CPU and RSS figures are this process only",
                self.kafka.brokers, self.registry.url
            )
        }
    }

    /// Creates topics: directly on the embedded broker, through CreateTopics otherwise (topics
    /// that exist are left alone).
    pub async fn create_topics(&self, topics: &[TopicSpec]) -> Result<()> {
        match &self.platform {
            Some(p) => {
                for t in topics {
                    p.broker
                        .create_topic(&t.name, t.partitions)
                        .map_err(PlatformError::from)?;
                }
                Ok(())
            }
            None => Ok(ensure_topics(&self.kafka, topics).await?),
        }
    }

    /// A new worker app id (`prefix` made unique) with all its topics created, once the
    /// turnstile topic is known to be empty (a benchmark's counts must be its own).
    pub async fn fresh_worker_app(&self, prefix: &str, partitions: i32) -> Result<String> {
        let app_id = unique(prefix);
        tokio::task::block_in_place(|| {
            self.require_empty(cta_stream::transit::models::topics::TURNSTILE)
        })?;
        self.create_worker_topics(&app_id, partitions).await?;
        Ok(app_id)
    }

    /// The topics the worker reads and writes, with `partitions` each.
    pub async fn create_worker_topics(&self, app_id: &str, partitions: i32) -> Result<()> {
        let mut specs = cta_stream::transit::simulation::topic_specs(partitions);
        specs.extend(app_topic_specs(app_id, partitions));
        self.create_topics(&specs).await
    }

    /// Records held by `topic` (sum over partitions of high − low watermark); 0 when the topic
    /// does not exist. Blocking.
    pub fn topic_records(&self, topic: &str) -> Result<i64> {
        let probe: BaseConsumer = self
            .kafka
            .restore_consumer("cta-bench-probe")
            .create()
            .map_err(cta_stream::stream::StreamError::kafka(
                "create probe consumer",
            ))?;
        let Some(n) = partition_count(probe.client(), topic)? else {
            return Ok(0);
        };
        let mut total = 0;
        for p in 0..n {
            let (low, high) = watermarks(&probe, topic, p)?;
            total += high - low;
        }
        Ok(total)
    }

    /// Fails unless `topic` is empty or missing.
    pub fn require_empty(&self, topic: &str) -> Result<()> {
        let n = self.topic_records(topic)?;
        if n > 0 {
            return Err(BenchError::TopicNotEmpty {
                topic: topic.to_string(),
                records: n,
            });
        }
        Ok(())
    }

    pub async fn stop(self) {
        if let Some(p) = self.platform {
            p.stop().await;
        }
    }
}

/// Partition count of `topic` as seen by a fresh client (blocking).
/// Starts the broker of `choice`, runs `body` on it and stops it, whatever `body` returned.
pub async fn with_env<T>(
    choice: &BrokerChoice,
    body: impl AsyncFnOnce(&BenchEnv) -> Result<T>,
) -> Result<T> {
    let env = BenchEnv::start(choice).await?;
    let result = body(&env).await;
    env.stop().await;
    result
}

pub fn partitions_of(kafka: &KafkaConfig, topic: &str) -> Result<i32> {
    let probe: BaseConsumer = kafka.restore_consumer("cta-bench-probe").create().map_err(
        cta_stream::stream::StreamError::kafka("create probe consumer"),
    )?;
    partition_count(probe.client(), topic)?
        .ok_or_else(|| BenchError::Invalid(format!("topic {topic} does not exist")))
}

/// A fresh, unique name for app ids and data directories.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        cta_stream::stream::now_ms()
    )
}

/// A scratch directory under `base` (created), removed by [`ScratchDir`]'s drop.
pub struct ScratchDir {
    pub path: std::path::PathBuf,
    keep: bool,
}

impl ScratchDir {
    pub fn new(base: &std::path::Path, name: &str, keep: bool) -> Result<Self> {
        let path = base.join(name);
        std::fs::create_dir_all(&path).map_err(|source| BenchError::Io {
            what: format!("create {}", path.display()),
            source,
        })?;
        Ok(Self { path, keep })
    }

    /// Bytes on disk under the directory.
    pub fn size_bytes(&self) -> u64 {
        dir_size(&self.path)
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The changelog and repartition topics of the worker app `app_id`.
fn app_topic_specs(app_id: &str, partitions: i32) -> Vec<TopicSpec> {
    cta_stream::transit::changelog_topics(app_id)
        .into_iter()
        .chain(cta_stream::transit::repartition_topics(app_id))
        .map(|name| TopicSpec {
            compacted: !name.ends_with("-repartition"),
            name,
            partitions,
        })
        .collect()
}
