//! The schema registry goes away before the worker has fetched any schema and comes back
//! later (same port, same data dir): the worker waits with backoff, skips nothing, dead-letters
//! nothing, and ends with exact counts.

mod common;

use common::*;
use cta_stream::platform::broker::EmbeddedBroker;
use cta_stream::platform::schema_registry::SchemaRegistry;
use cta_stream::stream::{KafkaConfig, RegistryConfig};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::time::Duration;

async fn serve_registry(
    reg: &SchemaRegistry,
    addr: std::net::SocketAddr,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (_, task) = reg
        .serve(addr, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    (tx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_waits_for_the_registry_and_loses_nothing() {
    let broker = EmbeddedBroker::start(1).unwrap();
    let reg_dir = tempfile::tempdir().unwrap();
    let reg_addr = free_addr();
    let registry = SchemaRegistry::open(Some(reg_dir.path())).unwrap();
    let (stop, task) = serve_registry(&registry, reg_addr).await;
    let env = TestEnv {
        platform: None,
        kafka: KafkaConfig::new(broker.bootstrap_servers()),
        registry: RegistryConfig::new(format!("http://{reg_addr}")),
    };
    let app_id = format!("outage-{}", std::process::id());
    let mut names: Vec<String> = cta_stream::transit::simulation::topic_specs(4)
        .into_iter()
        .map(|t| t.name)
        .collect();
    names.extend(cta_stream::transit::changelog_topics(&app_id));
    for n in &names {
        broker.create_topic(n, 4).unwrap();
    }
    let producer = TurnstileProducer::new(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut expected = BTreeMap::new();
    producer.send(20_000, &mut rng, &mut expected);

    // Registry down before the worker asks for any schema.
    let _ = stop.send(());
    task.await.unwrap();
    drop(registry);

    let dir = tempfile::tempdir().unwrap();
    let worker = spawn_worker(&env, dir.path(), &app_id).await;
    let base = worker.base.clone();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Nothing counted, nothing dead-lettered while the registry is away.
    let (_, st) = get_json(&format!("{base}/api/status")).await;
    assert_eq!(st["total_entries"].as_i64(), Some(0), "{st}");
    assert_eq!(st["worker"]["dead_lettered"].as_u64(), Some(0));

    // Back on the same port with its stored schemas: the worker catches up exactly.
    let registry = SchemaRegistry::open(Some(reg_dir.path())).unwrap();
    let (stop, task) = serve_registry(&registry, reg_addr).await;
    wait_for_counts(&base, &expected, Duration::from_secs(90)).await;
    let (_, st) = get_json(&format!("{base}/api/status")).await;
    assert_eq!(st["worker"]["dead_lettered"].as_u64(), Some(0));
    worker.stop().await;
    let _ = stop.send(());
    task.await.unwrap();
}
