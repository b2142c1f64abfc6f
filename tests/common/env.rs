//! The broker and registry a test runs against (the embedded platform, or the one named by
//! `CTA_TEST_BROKERS` + `CTA_TEST_SCHEMA_REGISTRY_URL`), and small things every test needs:
//! a simulation config, a free port.

use cta_stream::platform::Platform;
use cta_stream::stream::{KafkaConfig, RegistryConfig};
use std::time::Duration;

pub struct TestEnv {
    pub platform: Option<Platform>,
    pub kafka: KafkaConfig,
    pub registry: RegistryConfig,
}

pub async fn env() -> TestEnv {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    match (
        std::env::var("CTA_TEST_BROKERS"),
        std::env::var("CTA_TEST_SCHEMA_REGISTRY_URL"),
    ) {
        (Ok(b), Ok(u)) => TestEnv {
            platform: None,
            kafka: KafkaConfig::new(b),
            registry: RegistryConfig::new(u),
        },
        _ => embedded_env().await,
    }
}

/// A private embedded platform (broker and registry in this process), whatever
/// `CTA_TEST_BROKERS` says.
pub async fn embedded_env() -> TestEnv {
    let platform = Platform::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let mut kafka = KafkaConfig::new(platform.broker.bootstrap_servers());
    // As the demo and `cta platform` discovery do: the mock has no CreateTopics.
    kafka.topics_created_on_first_use();
    let registry = RegistryConfig::new(platform.registry_url.clone());
    TestEnv {
        platform: Some(platform),
        kafka,
        registry,
    }
}

impl TestEnv {
    /// The same broker and registry, for another task (the platform stays with `self`).
    pub fn clone_clients(&self) -> TestEnv {
        TestEnv {
            platform: None,
            kafka: self.kafka.clone(),
            registry: self.registry.clone(),
        }
    }

    /// Creates topics: on the embedded broker directly (it has no CreateTopics), elsewhere
    /// with CreateTopics when missing (brokers without auto-creation, such as tansu, need
    /// them before the first produce or subscription).
    pub async fn create_topics(&self, names: &[String], partitions: i32) {
        match &self.platform {
            Some(p) => {
                for n in names {
                    p.broker.create_topic(n, partitions).unwrap();
                }
            }
            None => {
                let specs: Vec<cta_stream::stream::kafka::TopicSpec> = names
                    .iter()
                    .map(|n| cta_stream::stream::kafka::TopicSpec {
                        name: n.clone(),
                        partitions,
                        // Short-lived topics: whether a changelog is compacted does not matter.
                        compacted: false,
                    })
                    .collect();
                cta_stream::stream::kafka::ensure_topics(&self.kafka, &specs)
                    .await
                    .unwrap();
            }
        }
    }
}

/// A simulation of `steps` 5-minute steps from `start_ms`, as fast as it goes.
pub fn sim_config_at(
    seed: u64,
    steps: u64,
    start_ms: i64,
) -> cta_stream::transit::simulation::SimConfig {
    cta_stream::transit::simulation::SimConfig {
        time_step: Duration::from_secs(300),
        sleep: Duration::ZERO,
        steps: Some(steps),
        seed,
        start_ms,
        ..Default::default()
    }
}

pub fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}
